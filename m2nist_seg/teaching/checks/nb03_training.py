"""The checks of notebook 03's exercises and its grader: the loss, the compile step, the trained model's score.

- :func:`check_dice_loss`: a soft Dice loss that passes gradients and grows as predictions worsen;
- :func:`check_compiled` and :func:`check_compile`: a model compiled to train on integer label maps;
- :func:`grade`: mean digit IoU on the test split against a pass mark.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from m2nist_seg import data
from m2nist_seg.core import settings
from m2nist_seg.data import BACKGROUND
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.teaching.checks.feedback import (
    NOT_GRADED,
    CheckResult,
    Fault,
    GradeResult,
    call_learner,
    describe_error,
    kind_of,
    run_check,
    say,
)

PERFECT_LOSS, BACKGROUND_LOSS = 0.05, 0.5
DEGRADATION = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of the probability moved from the truth to a shifted mask
_DICE_LOSS_CALL = "dice_loss(y_true_onehot, y_pred_probs)"


# dice_loss ----------------------------------------------------------------------------------------------------


def check_dice_loss(fn: Callable) -> CheckResult:
    """Check ``fn(y_true_onehot, y_pred_probs)``, float32 (B, 64, 84, 11) each, as a soft Dice loss.

    It must return a finite scalar, pass a gradient to ``y_pred_probs``, score ≤ 0.05 for a perfect prediction,
    grow as probability moves from the truth to a shifted mask, and score an all-background prediction ≥ 0.5,
    above a half-right one.
    """

    def body() -> str:
        truth, shifted, background = _dice_loss_masks()
        sequence = [_loss(fn, truth, (1 - share) * truth + share * shifted) for share in DEGRADATION]
        all_background = _loss(fn, truth, background)
        hint = _loss_gradient_fault(fn, truth, (truth + shifted) / 2) or _loss_values_fault(sequence, all_background)
        if hint:
            raise Fault(hint)
        return (
            f"dice_loss: {sequence[0]:.3f} when perfect, grows as predictions worsen, "
            f"{all_background:.2f} for all background, passes gradients"
        )

    return run_check(body)


def _dice_loss_masks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-hot float32 (2, 64, 84, 11): two test images' truth, their digits shifted 4 pixels right, all background."""
    _, labels = data.generate_labels(2, seed=0, pool="test")
    background = np.full_like(labels, BACKGROUND)
    return tuple(data.labels_to_masks(maps).astype(np.float32) for maps in (labels, np.roll(labels, 4, 2), background))


def _loss(fn: Callable, truth: np.ndarray, probabilities: np.ndarray) -> float:
    """``fn``'s loss as a float, or a :class:`Fault` when it is not a finite scalar."""
    value = call_learner(fn, _DICE_LOSS_CALL, tf.constant(truth), tf.constant(probabilities))
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Fault(f"{_DICE_LOSS_CALL} returned {kind_of(value)}, expected a scalar") from None
    if array.ndim:
        raise Fault(f"{_DICE_LOSS_CALL} returned shape {array.shape}, expected a scalar: average the per-class losses")
    if not np.isfinite(array):
        raise Fault(f"{_DICE_LOSS_CALL} returned {array}, expected a finite number: add a small ε to the denominator")
    return float(array)


def _loss_gradient_fault(fn: Callable, truth: np.ndarray, probabilities: np.ndarray) -> str | None:
    probabilities = tf.constant(probabilities)
    with tf.GradientTape() as tape:
        tape.watch(probabilities)
        loss = call_learner(fn, _DICE_LOSS_CALL, tf.constant(truth), probabilities)
    if not tf.is_tensor(loss):
        return (
            f"{_DICE_LOSS_CALL} returned {kind_of(loss)}, not a tensor, so no gradient reaches the model: "
            "compute it with keras.ops (or tf), not numpy"
        )
    gradient = tape.gradient(loss, probabilities)
    if gradient is None or not np.any(gradient.numpy()):
        return (
            "no gradient reaches y_pred_probs: argmax, round or a cast to int cuts the graph; "
            "compute Dice from the probabilities themselves"
        )
    if not np.all(np.isfinite(gradient.numpy())):
        return "the gradient is not finite: add a small ε to the denominator"
    return None


def _loss_values_fault(sequence: list[float], background: float) -> str | None:
    perfect, half = sequence[0], sequence[DEGRADATION.index(0.5)]
    if perfect > PERFECT_LOSS:
        what = "return the loss 1 − Dice, not the Dice score" if perfect > 0.9 else "it must be ≈ 0"
        return f"a perfect prediction scores {perfect:.3f}, expected ≤ {PERFECT_LOSS}: {what}"
    if any(worse <= better for better, worse in zip(sequence, sequence[1:])):
        return (
            f"the loss doesn't grow as predictions worsen ({', '.join(f'{v:.3f}' for v in sequence)} from perfect "
            "to a shifted mask): the Dice numerator is the overlap Σ y_true·y_pred"
        )
    if background < BACKGROUND_LOSS or background <= half:
        return (
            f"an all-background prediction scores only {background:.3f} (a half-right one {half:.3f}), expected "
            "≥ 0.5: average Dice over the digit classes in the truth, not all 11 (background is 94% of the pixels)"
        )
    return None


# compile ------------------------------------------------------------------------------------------------------


def check_compiled(model: keras.Model | None) -> CheckResult:
    """Check that ``model`` is compiled to train here: an optimizer, a loss on integer label maps, MeanDigitIoU.

    The loss and the metrics run once on four generated images (``compute_loss`` / ``compute_metrics``, which
    leave the weights and the optimizer untouched); the metric states are reset afterwards.
    """

    def body() -> str:
        if model is None:
            raise Fault("no model to check: the cell that builds it failed; fix that cell and run it again")
        if getattr(model, "optimizer", None) is None:
            raise Fault("your model is not compiled: call model.compile(optimizer=..., loss=..., metrics=[...])")
        if model.loss is None:
            raise Fault("your model is compiled without a loss: pass loss=, e.g. losses.CombinedLoss()")
        images, labels = data.to_model_inputs(*data.generate_labels(4, pool="test"))
        probabilities = call_learner(model, "your model on four images", images, training=False)
        _compiled_loss(model, images, labels, probabilities)
        names = _compiled_metric_names(model, images, labels, probabilities)
        return f"your model is compiled: {type(model.optimizer).__name__}, a finite loss on label maps, metrics {names}"

    return run_check(body)


def check_compile(fn: Callable, model: keras.Model | None) -> CheckResult:
    """Run a learner's compile step ``fn(model)``, then check the compiled model as :func:`check_compiled` does.

    ``fn`` takes an uncompiled Keras model and compiles it; a stub that raises, or any other error, is one
    ``✗`` line naming it.
    """
    if model is not None:
        try:
            call_learner(fn, f"{getattr(fn, '__name__', 'compile_model')}(model)", model)
        except Fault as fault:
            return CheckResult(False, say(False, str(fault)))
    return check_compiled(model)


def _compiled_loss(model: keras.Model, images, labels, probabilities) -> None:
    """Raise a :class:`Fault` unless the compiled loss gives a finite scalar on integer label maps."""
    try:
        loss = np.asarray(model.compute_loss(x=images, y=labels, y_pred=probabilities, training=False))
    except Exception as error:
        raise Fault(
            "the loss fails on integer label maps (B, 64, 84): use a sparse loss, e.g. losses.CombinedLoss() "
            f"({describe_error(error, limit=80)})"
        ) from None
    finally:
        model.reset_metrics()
    if loss.ndim or not np.isfinite(loss):
        raise Fault(f"the loss gives {loss} on four images, expected a finite number")


def _compiled_metric_names(model: keras.Model, images, labels, probabilities) -> str:
    """The names of the compiled metrics, or a :class:`Fault` when MeanDigitIoU is missing or misnamed."""
    try:
        model.compute_metrics(images, labels, probabilities)
    except Exception as error:
        raise Fault(
            "the metrics fail on integer label maps (B, 64, 84): use metrics=[MeanDigitIoU()] "
            f"({describe_error(error, limit=80)})"
        ) from None
    finally:
        model.reset_metrics()
    found = [inner for metric in model.metrics for inner in getattr(metric, "metrics", None) or [metric]]
    found = [metric for metric in found if metric.name != "loss"]
    names = ", ".join(metric.name for metric in found) or "none"
    digit = [metric for metric in found if isinstance(metric, metrics.MeanDigitIoU)]
    if not digit:
        raise Fault(
            f"metrics lack MeanDigitIoU (found: {names}): add metrics=[MeanDigitIoU()]; "
            "training keeps the epoch with the best val_digit_miou"
        )
    if digit[0].name != "digit_miou":
        raise Fault(f"MeanDigitIoU is named '{digit[0].name}', expected 'digit_miou': training checkpoints on it")
    return names


# grade --------------------------------------------------------------------------------------------------------


def grade(model: keras.Model | None, split: data.Split | None = None, threshold: float = 0.60) -> GradeResult:
    """The local grader: mean digit IoU of ``model`` on ``split`` (default: the 1,000 test images) ≥ ``threshold``.

    Under :func:`m2nist_seg.core.settings.quick_mode` training was shrunk, so the score is reported but not held to
    the threshold: the line starts with ``○``, ``graded`` and ``passed`` are False, and strict mode doesn't raise.
    """
    if model is None:
        return GradeResult(False, say(False, "FAIL: no model to grade: the cell that trains it failed"), np.nan, True)
    test = split if split is not None else data.load().test
    where = f"on the {len(test):,} test images"
    try:
        predicted = evaluate.predict(model, test.images)
    except Exception as error:
        text = f"FAIL: your model doesn't run {where} ({describe_error(error)}): check it with check_model"
        return GradeResult(False, say(False, text), np.nan, True)
    score = metrics.iou_dice(test.labels, predicted).mean_digit_iou
    if settings.quick_mode():
        message = (
            f"{NOT_GRADED} not graded in quick mode: mean digit IoU {score:.3f} {where}; "
            f"the {threshold:.2f} pass mark applies at full settings"
        )
        print(message)
        return GradeResult(False, message, score, False)
    if score >= threshold:
        return GradeResult(True, say(True, f"PASS: mean digit IoU {score:.3f} ≥ {threshold:.2f} {where}"), score, True)
    text = (
        f"FAIL: mean digit IoU {score:.3f} < {threshold:.2f} {where} "
        "(hint: train longer, or check your loss and model with check_dice_loss and check_model)"
    )
    return GradeResult(False, say(False, text), score, True)
