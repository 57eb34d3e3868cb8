"""The glue that keeps the classroom notebooks running while an exercise is unfinished, and the compile step.

:func:`reference_compile` compiles a model as notebook 03's compile exercise asks.
The other reference solutions live in :mod:`m2nist_seg.teaching.references` and are re-exported here, so that a
notebook falls back on ``exercises.reference_iou_dice`` and the like.

The glue: :func:`assemble_fcn8` joins an encoder and a decoder into a model, :func:`mine_or_reference` picks the
learner's function once its check passes, and :func:`remember_model` / :func:`recall_model` carry the learner's
model from notebook 02 to the training in notebook 03; :func:`model_to_evaluate` picks the model notebook 04
evaluates. Each prints one line saying what it did.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import keras

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core import settings
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.data import HEIGHT, WIDTH
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.model import losses
from m2nist_seg.teaching.checks.feedback import CheckResult, describe_error, describe_stub
from m2nist_seg.teaching.references import (
    reference_conv_block,
    reference_dice_loss,
    reference_encoder,
    reference_fcn8_decoder,
    reference_iou_dice,
)
from m2nist_seg.training.config import NO_WARMUP_SCHEDULE, TrainConfig
from m2nist_seg.training.runs import MODEL_FILE

__all__ = [
    "DECAY_STEPS",
    "MY_MODEL_PATH",
    "assemble_fcn8",
    "mine_or_reference",
    "model_to_evaluate",
    "recall_model",
    "references_in_use",
    "reference_compile",
    "reference_conv_block",
    "reference_dice_loss",
    "reference_encoder",
    "reference_fcn8_decoder",
    "reference_iou_dice",
    "remember_model",
]

T = TypeVar("T")

MY_MODEL_PATH = settings.RUNS_DIR / "exercises" / "my_fcn8.keras"
# What this Python session (one notebook's kernel) runs on a reference solution for, instead of the learner's.
_references_in_use: set[str] = set()
_DEFAULT_RUN = TrainConfig()
# The default run's length, a fixed horizon for the cosine decay: its epochs of its training images in batches.
DECAY_STEPS = _DEFAULT_RUN.epochs * (data.split_sizes(_DEFAULT_RUN.n_images)["train"] // _DEFAULT_RUN.batch_size)


def reference_compile(model: keras.Model) -> None:
    """Compile ``model`` as notebook 03's compile exercise asks.

    Adam with a learning rate of 8e-3 cosine-decayed over :data:`DECAY_STEPS` steps, without the warm-up of
    :func:`m2nist_seg.training.train.train`'s default (:data:`~m2nist_seg.training.config.NO_WARMUP_SCHEDULE`),
    cross-entropy + soft Dice (:class:`~m2nist_seg.model.losses.CombinedLoss`) and the mean digit IoU metric
    that training checkpoints on.
    """
    schedule = keras.optimizers.schedules.CosineDecay(NO_WARMUP_SCHEDULE["learning_rate"], decay_steps=DECAY_STEPS)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss=losses.CombinedLoss(), metrics=[metrics.MeanDigitIoU()]
    )


def assemble_fcn8(encoder_fn: Callable, decoder_fn: Callable) -> keras.Model | None:
    """``keras.Model`` from raw images (N, 64, 84, 1) to probabilities (N, 64, 84, 11): ``decoder_fn(*encoder_fn(x))``.

    Returns None, printing one ``✗`` line that names the failing function, when either one raises.
    """
    image = keras.Input((HEIGHT, WIDTH, 1), name="image")
    try:
        pool3, pool4, pool5 = encoder_fn(image)
    except Exception as error:
        return _not_assembled(encoder_fn, error)
    try:
        probabilities = decoder_fn(pool3, pool4, pool5)
        return keras.Model(image, probabilities, name="my_fcn8")
    except Exception as error:
        return _not_assembled(decoder_fn, error)


def _not_assembled(fn: Callable, error: Exception) -> None:
    name = getattr(fn, "__name__", repr(fn))
    if isinstance(error, NotImplementedError):
        print(f"✗ no model: {describe_stub(error, name)} (replace `raise NotImplementedError(...)` with your code)")
    else:
        print(f"✗ no model: {name} raised {describe_error(error)}")


def mine_or_reference(result: CheckResult, mine: T, reference: T, what: str) -> T:
    """``mine`` when its check passed, else ``reference``; prints which one the notebook goes on with."""
    _note_reference(what, not result.passed)
    if result.passed:
        print(f"using your {what}")
        return mine
    print(f"using the reference {what} until yours passes")
    return reference


def _note_reference(what: str, in_use: bool) -> None:
    if in_use:
        _references_in_use.add(what)
    else:
        _references_in_use.discard(what)


def references_in_use() -> list[str]:
    """What this notebook still runs on a reference solution for (as :func:`mine_or_reference` and
    :func:`recall_model` chose), sorted; the grader's autograder cell gives no points while it is not empty."""
    return sorted(_references_in_use)


def remember_model(model: keras.Model, result: CheckResult, path: str | os.PathLike = MY_MODEL_PATH) -> Path | None:
    """Save the learner's (untrained) model to ``path`` for notebook 03 when ``result`` passed; return the path.

    The file is written atomically. When ``result`` failed nothing is saved, and a model saved earlier is
    removed, so that notebook 03 never trains a version that no longer passes. Returns None then.
    """
    path = Path(path)
    if not result.passed:
        path.unlink(missing_ok=True)
        print("not saved: notebook 03 will train the reference FCN-8 until yours passes its check")
        return None
    with atomic_path(path) as tmp:
        model.save(tmp)
    print(f"saved your FCN-8 for notebook 03 ({settings.shown_path(path)})")
    return path


def model_to_evaluate(use_mine: bool, path: str | os.PathLike | None = None) -> keras.Model:
    """The model notebook 04 evaluates: the learner's from notebook 03, or the shipped one; prints which.

    With ``use_mine`` and a trained model at ``path`` (default ``runs/notebook/model.keras``), that model. Else the
    shipped model, rebuilt by today's :func:`~m2nist_seg.model.build_fcn8` with the trained weights loaded into it
    (so that a change to the package's wiring would show in every score); when ``use_mine`` asked for a model
    that is not there, the line says so.
    """
    path = Path(path) if path is not None else settings.RUNS_DIR / "notebook" / MODEL_FILE
    if use_mine and path.is_file():
        model = evaluate.load_model(path)
        shown = f"{settings.shown_path(path)}, {fcn.count_params(model):,} parameters"
        print(f"evaluating your model from notebook 03 ({shown})")
        return model
    if use_mine:
        where = settings.shown_path(path)
        print(f"no trained model at {where} yet (run notebook 03 first): evaluating the shipped model instead")
    model = fcn.build_fcn8()
    model.load_weights(settings.SHIPPED_MODEL)
    shipped = settings.shown_path(settings.SHIPPED_MODEL)
    print(f"evaluating the shipped model {shipped} ({fcn.count_params(model):,} parameters), rebuilt by today's code")
    return model


def recall_model(path: str | os.PathLike = MY_MODEL_PATH) -> Callable[[], keras.Model]:
    """A builder of fresh models (no arguments): the learner's model saved at ``path``, else the reference FCN-8.

    The learner's model is loaded without compile settings and cloned, so each call gives newly initialised
    weights; without a saved model the builder is :func:`m2nist_seg.model.build_fcn8`. Prints which one.
    """
    path = Path(path)
    _note_reference("FCN-8", not path.is_file())
    if not path.is_file():
        print("using the reference FCN-8 until yours passes in notebook 02")
        return fcn.build_fcn8
    print("using your FCN-8 from notebook 02")

    def build() -> keras.Model:
        return keras.models.clone_model(keras.models.load_model(path, compile=False))

    return build
