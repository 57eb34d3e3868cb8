"""Auto-checks for the classroom edition's exercises: one check per exercise, one printed line per check.

A check prints ``✓`` and what passed, or ``✗`` and a hint naming the first fault found (what was expected, what
was found, where to look), and returns a :class:`CheckResult`. By default a check never raises, whatever the
learner's code does: an unwritten stub (``raise NotImplementedError``) or any other exception is reported in
the line. With ``M2NIST_STRICT=1`` (:func:`m2nist_seg.core.settings.strict_mode`) a failed check raises
``AssertionError`` after printing, so that CI proves the teacher's solutions pass.

The checks live by notebook, over the shared plumbing of :mod:`~m2nist_seg.teaching.checks.feedback`:

- :mod:`~m2nist_seg.teaching.checks.nb01_metrics`: :func:`check_iou_dice`;
- :mod:`~m2nist_seg.teaching.checks.nb02_model`: :func:`check_conv_block`, :func:`check_encoder`,
  :func:`check_decoder` and :func:`check_model`, the model built piece by piece, then whole;
- :mod:`~m2nist_seg.teaching.checks.nb03_training`: :func:`check_dice_loss`, :func:`check_compiled`,
  :func:`check_compile`, and :func:`grade`, mean digit IoU on the test split against a pass mark.

Under nbgrader, a graded cell after each check calls :func:`autograde`, which fails when the check failed (and
only under autograding, ``M2NIST_AUTOGRADE=1``). None of them imports :mod:`m2nist_seg.training`.
"""

from m2nist_seg.teaching.checks.feedback import CheckResult, GradeResult, autograde
from m2nist_seg.teaching.checks.nb01_metrics import check_iou_dice
from m2nist_seg.teaching.checks.nb02_model import check_conv_block, check_decoder, check_encoder, check_model
from m2nist_seg.teaching.checks.nb03_training import check_compile, check_compiled, check_dice_loss, grade

__all__ = [
    "CheckResult",
    "GradeResult",
    "autograde",
    "check_compile",
    "check_compiled",
    "check_conv_block",
    "check_decoder",
    "check_dice_loss",
    "check_encoder",
    "check_iou_dice",
    "check_model",
    "grade",
]
