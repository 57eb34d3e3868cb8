"""The feedback plumbing shared by the exercise checks: verdicts, the one printed line, and faults as hints.

- :class:`CheckResult` and :class:`GradeResult`: what a check returns;
- :func:`say`: prints the ``✓``/``✗`` line, and in strict mode (:func:`m2nist_seg.core.settings.strict_mode`)
  raises ``AssertionError`` after a failure;
- :class:`Fault`, :func:`run_check` and :func:`call_learner`: a check's body raises a :class:`Fault` whose message
  is the hint; any other exception, the learner's or the check's, becomes a hint too, so a check never raises
  outside strict mode;
- :func:`describe_error`, :func:`describe_stub` and :func:`kind_of`: exceptions and values as short phrases;
- :func:`autograde`: the body of each exercise's graded nbgrader cell.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from m2nist_seg.core import settings

PASSED, FAILED, NOT_GRADED = "✓", "✗", "○"


@dataclass(frozen=True)
class CheckResult:
    """A check's verdict and the line it printed."""

    passed: bool
    message: str


@dataclass(frozen=True)
class GradeResult(CheckResult):
    """The grader's verdict: ``score`` is the mean digit IoU; ``graded`` is False in quick mode (no verdict)."""

    score: float
    graded: bool


class Fault(Exception):
    """A fault found in the learner's code; its message is the hint that the check prints."""


def describe_error(error: BaseException, limit: int = 120) -> str:
    """An exception as one short line: its type and its message, whitespace collapsed, cut at ``limit`` characters."""
    text = " ".join(str(error).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def describe_stub(error: NotImplementedError, name: str) -> str:
    """ "<function> is not written yet", naming the stub that raised ``error`` (``name`` unless its message does)."""
    text = " ".join(str(error).split())
    return text if text.endswith("is not written yet") else f"{name} is not written yet"


def kind_of(value: object) -> str:
    """What ``value`` is, for a hint: "None", "a function", "a tuple of 3"."""
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    return "None" if value is None else f"a {type(value).__name__}"


def say(passed: bool, text: str) -> str:
    """Print ``✓ text`` or ``✗ text`` on one line and return it; in strict mode a failure then raises."""
    message = f"{PASSED if passed else FAILED} {' '.join(text.split())}"
    print(message)
    if not passed and settings.strict_mode():
        raise AssertionError(message)
    return message


def autograde(result: CheckResult, references: Sequence[str] = ()) -> None:
    """Under nbgrader's autograding (:func:`m2nist_seg.core.settings.autograding`), raise ``AssertionError`` with
    the check's own line when ``result`` failed, or when the work graded still leans on the reference solutions
    named in ``references``; the exercise then scores 0. Otherwise do nothing: a learner's notebook runs on.

    A :class:`GradeResult` of quick mode (``graded`` False: the training was shortened) counts as passed when the
    model ran, since the pass mark applies at full settings only.
    """
    if not settings.autograding():
        return
    ungraded = isinstance(result, GradeResult) and not result.graded
    if not (result.passed or ungraded):
        raise AssertionError(result.message)
    if references:
        used = ", ".join(references)
        raise AssertionError(f"{FAILED} only your own work is graded: this still uses the reference {used}")


def run_check(body: Callable[[], str]) -> CheckResult:
    """Run a check's ``body``, which returns the success text or raises :class:`Fault` with the hint.

    Warnings (Keras's, or NumPy's on a division by zero in the learner's code) are silenced: the line says it all.
    """
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            success = body()
    except Fault as fault:
        hint = str(fault)
    except Exception as error:
        hint = f"the check could not inspect your code ({describe_error(error)})"
    else:
        return CheckResult(True, say(True, success))
    return CheckResult(False, say(False, hint))


def call_learner(fn: Callable, call: str, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; an exception it raises becomes a :class:`Fault` naming ``call``."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as error:
        unwritten = describe_stub(error, call.split("(")[0])
        raise Fault(f"{unwritten}: replace `raise NotImplementedError(...)` with your code") from None
    except Exception as error:
        raise Fault(f"{call} raised {describe_error(error)}") from None
