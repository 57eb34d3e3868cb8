"""The check of notebook 01's exercise: :func:`check_iou_dice`, per-class IoU and Dice against the package's metrics.

Its hints name the usual mistakes: Dice off by a factor 2, scores averaged per image instead of pooled, smoothing
terms, absent classes scored 0 instead of NaN, asymmetric counting.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from m2nist_seg.data import BACKGROUND, HEIGHT, NUM_CLASSES, WIDTH
from m2nist_seg.evaluation import metrics
from m2nist_seg.teaching.checks.feedback import CheckResult, Fault, call_learner, kind_of, run_check

# IoU and Dice computed in float32 are right to ~1e-7; a smoothing term of 1e-5 shifts a 2-pixel class by ~1e-6.
RTOL, ATOL = 1e-6, 1e-9
SMOOTHING_ATOL = 1e-4  # beyond this, a difference is a wrong formula rather than a smoothing term
_IOU_DICE_CALL = "iou_dice(y_true, y_pred)"


def check_iou_dice(fn: Callable) -> CheckResult:
    """Check ``fn(y_true, y_pred) -> (iou, dice)`` on integer label maps (N, 64, 84) against :func:`metrics.iou_dice`.

    The cases: two designed images (a class of 2 pixels, a class only in y_true, one only in y_pred, classes in
    neither, a class whose per-image mean differs from its pooled score), the same with the arguments swapped,
    and three random label maps. Scores must match to float32 precision, NaN where the reference has NaN.
    """

    def body() -> str:
        cases = _iou_dice_cases()
        for name, y_true, y_pred in cases:
            found = _scores(fn, y_true, y_pred)
            expected = metrics.iou_dice(y_true, y_pred)
            if not (_same(found[0], expected.iou) and _same(found[1], expected.dice)):
                raise Fault(_iou_dice_fault(fn, name, found, y_true, y_pred))
        return f"iou_dice: per-class IoU and Dice pooled over all images, NaN for absent classes ({len(cases)} cases)"

    return run_check(body)


def _designed_label_maps() -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 label maps (2, 64, 84): truth and prediction, mostly background."""
    truth = np.full((2, HEIGHT, WIDTH), BACKGROUND, dtype=np.uint8)
    pred = truth.copy()
    truth[0, :10, :10] = pred[0, :10, :10] = 3  # class 3: 100 pixels right in image 0 ...
    truth[1, 0, :2] = 3  # ... and 1 of 2 right in image 1: pooled IoU 101/102, per-image mean 0.75
    pred[1, 0, 0] = 3
    truth[0, 20, 20:22] = 5  # class 5: 1 of 2 pixels right, where smoothing terms show
    pred[0, 20, 20] = 5
    truth[0, 30, 30] = 1  # class 1: only in the truth
    pred[0, 40, 40:42] = 8  # class 8: only in the prediction
    return truth, pred


def _iou_dice_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    truth, pred = _designed_label_maps()
    rng = np.random.default_rng(0)
    random_truth = rng.integers(0, NUM_CLASSES, (3, HEIGHT, WIDTH), dtype=np.uint8)
    noise = rng.integers(0, NUM_CLASSES, random_truth.shape, dtype=np.uint8)
    random_pred = np.where(rng.random(random_truth.shape) < 0.3, noise, random_truth)
    return [
        ("two designed images", truth, pred),
        ("the designed images with y_true and y_pred swapped", pred, truth),
        ("three random label maps", random_truth, random_pred),
    ]


def _scores(fn: Callable, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fn``'s (iou, dice) as two float64 arrays (11,), or a :class:`Fault` on anything else."""
    result = call_learner(fn, _IOU_DICE_CALL, y_true.copy(), y_pred.copy())
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise Fault(f"{_IOU_DICE_CALL} returned {kind_of(result)}, expected a tuple (iou, dice) of two arrays")
    arrays = []
    for name, value in zip(("iou", "dice"), result):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise Fault(f"{name} is {kind_of(value)}, expected an array of {NUM_CLASSES} per-class scores") from None
        if array.shape != (NUM_CLASSES,):
            what = "not their mean" if array.ndim == 0 else "background (class 10) included"
            raise Fault(f"{name} has shape {array.shape}, expected ({NUM_CLASSES},): one score per class, {what}")
        arrays.append(array)
    return arrays[0], arrays[1]


def _close(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Element-wise: equal up to float32 rounding, or NaN in both."""
    return np.isclose(found, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def _same(found: np.ndarray, expected: np.ndarray) -> bool:
    return bool(_close(found, expected).all())


def _per_image_mean(y_true: np.ndarray, y_pred: np.ndarray) -> metrics.Scores:
    """Each image's scores averaged over the images, skipping the images where a class is absent."""
    scores = metrics.scores_from_confusion(np.stack([metrics.confusion_matrix(t, p) for t, p in zip(y_true, y_pred)]))
    return metrics.Scores(np.nanmean(scores.iou, axis=0), np.nanmean(scores.dice, axis=0))


def _iou_dice_fault(fn: Callable, case: str, found: tuple, y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """Name the fault behind scores ``found`` that differ from the reference on ``case``."""
    iou, dice = found
    expected = metrics.iou_dice(y_true, y_pred)
    scored = ~np.isnan(expected.iou)
    if _same(iou, expected.iou) and _same(2 * dice[scored], expected.dice[scored]):
        return "Dice is exactly half the right value: Dice = 2·overlap / (|true| + |pred|), mind the factor 2"
    per_image = _per_image_mean(y_true, y_pred)
    telling = scored & ~np.isclose(per_image.iou, expected.iou)
    if telling.any() and np.allclose(iou[telling], per_image.iou[telling]):
        c = np.flatnonzero(telling)[0]
        return (
            f"scores averaged per image (class {c}: found IoU {iou[c]:.3f}, pooled over the set "
            f"{expected.iou[c]:.3f}): sum tp, fp and fn over all images, then divide once"
        )
    exact = _same(iou[scored], expected.iou[scored]) and _same(dice[scored], expected.dice[scored])
    near = np.allclose(iou[scored], expected.iou[scored], atol=SMOOTHING_ATOL)
    if not exact and near and np.allclose(dice[scored], expected.dice[scored], atol=SMOOTHING_ATOL):
        c = np.nanargmax(np.where(expected.iou > 0, np.abs(iou / expected.iou - 1), np.nan))
        pixels = np.sum((y_true == c) | (y_pred == c))
        return (
            f"smoothing terms bias small classes (class {c}, {pixels} pixels: found IoU {iou[c]:.7f}, expected "
            f"{expected.iou[c]:.7f}): drop the + 1e-5 and return NaN where tp + fp + fn = 0"
        )
    absent = ~scored & ~(np.isnan(iou) & np.isnan(dice))
    if absent.any():
        c = np.flatnonzero(absent)[0]
        return (
            f"class {c} is in neither map, so it has no score: found IoU {iou[c]:g}, Dice {dice[c]:g}, expected NaN "
            "(0/0): return NaN where tp + fp + fn = 0"
        )
    lost = scored & (np.isnan(iou) | np.isnan(dice))
    if lost.any():
        c = np.flatnonzero(lost)[0]
        where = "y_pred only" if not (y_true == c).any() else "y_true only" if not (y_pred == c).any() else "both"
        return (
            f"class {c} is in {where} but scored NaN, expected IoU {expected.iou[c]:g}: a class is NaN only when it "
            "is in neither map (decide from tp + fp + fn, not from one argument)"
        )
    swapped = _scores(fn, y_pred, y_true)
    if not (_same(swapped[0], iou) and _same(swapped[1], dice)):
        return (
            "your scores change when y_true and y_pred swap places, but IoU and Dice are symmetric: "
            "count false positives and false negatives alike, IoU = tp/(tp+fp+fn)"
        )
    c = np.flatnonzero(~(_close(iou, expected.iou) & _close(dice, expected.dice)))[0]
    return (
        f"on {case}, class {c}: found IoU {iou[c]:.4f}, Dice {dice[c]:.4f}, expected {expected.iou[c]:.4f} and "
        f"{expected.dice[c]:.4f}: IoU = tp/(tp+fp+fn), Dice = 2tp/(2tp+fp+fn), pooled over all images"
    )
