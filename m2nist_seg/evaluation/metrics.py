"""Per-class IoU and Dice, pooled over a whole set of label maps, and a streaming Keras metric.

For class ``c`` with ``tp`` pixels predicted and labelled ``c``, ``fp`` predicted ``c`` but labelled
otherwise and ``fn`` labelled ``c`` but predicted otherwise:

- IoU  = tp / (tp + fp + fn)          (overlap / union)
- Dice = 2·tp / (2·tp + fp + fn)      (2·overlap / (|true| + |pred|))

A class that appears neither in the truth nor in the prediction has no union: its IoU and Dice are **NaN**,
and means over the digits (classes 0–9) skip it. The original tutorial adds ``1e-5`` to numerator and
denominator instead, which scores such a class as 0 and silently drags the mean down on small sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data import CLASS_NAMES, NUM_CLASSES, NUM_DIGITS


def _labels(array, name: str, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """``array`` as integer label maps with values 0 … num_classes − 1, else an error naming ``name``."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.integer):
        raise M2NISTError(f"{name}: found dtype {array.dtype}, expected integer label maps")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise M2NISTError(f"{name}: found values in [{array.min()}, {array.max()}], expected 0–{num_classes - 1}")
    return array


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Pixel counts int64 (num_classes, num_classes): row = true class, column = predicted class.

    ``y_true`` and ``y_pred`` are integer label maps of any (equal) shape.
    """
    y_true, y_pred = _labels(y_true, "y_true", num_classes), _labels(y_pred, "y_pred", num_classes)
    if y_true.shape != y_pred.shape:
        raise M2NISTError(f"y_true/y_pred: found shapes {y_true.shape} and {y_pred.shape}, expected equal shapes")
    index = y_true.ravel().astype(np.intp) * num_classes + y_pred.ravel()
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


@dataclass(frozen=True)
class Scores:
    """Per-class IoU and Dice, float64 (..., num_classes), NaN for classes absent from truth and prediction."""

    iou: np.ndarray
    dice: np.ndarray

    @property
    def mean_digit_iou(self) -> float:
        """Mean IoU over the digit classes 0–9 that occur, ignoring NaN."""
        return float(_nanmean(self.iou[:NUM_DIGITS]))

    @property
    def mean_digit_dice(self) -> float:
        """Mean Dice over the digit classes 0–9 that occur, ignoring NaN."""
        return float(_nanmean(self.dice[:NUM_DIGITS]))


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Means over the last axis ignoring NaN; NaN where all values are NaN (without NumPy's warning)."""
    valid = ~np.isnan(values)
    count = valid.sum(axis=-1)
    total = np.where(valid, values, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def scores_from_confusion(matrix: np.ndarray) -> Scores:
    """Per-class IoU and Dice from a confusion matrix (rows true, columns predicted).

    A stack of matrices (..., C, C) gives scores of shape (..., C).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diagonal(matrix, axis1=-2, axis2=-1)
    size_true, size_pred = matrix.sum(axis=-1), matrix.sum(axis=-2)
    return Scores(iou=_ratio(tp, size_true + size_pred - tp), dice=_ratio(2 * tp, size_true + size_pred))


def iou_dice(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> Scores:
    """Per-class IoU and Dice of integer label maps of any shape, pooled over all pixels."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def per_image_scores(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Each image's mean digit IoU and mean digit Dice: two float64 arrays (N,).

    ``y_true`` and ``y_pred`` are label maps (N, H, W). Digits absent from an image's truth and prediction
    are skipped; an image with no digit at all scores NaN.
    """
    y_true, y_pred = _labels(y_true, "y_true", num_classes), _labels(y_pred, "y_pred", num_classes)
    if y_true.shape != y_pred.shape or y_true.ndim < 2:
        raise M2NISTError(f"y_true/y_pred: found shapes {y_true.shape} and {y_pred.shape}, expected equal (N, H, W)")
    n = len(y_true)
    cells = num_classes * num_classes
    image = np.repeat(np.arange(n, dtype=np.intp), y_true[0].size)
    index = image * cells + y_true.ravel().astype(np.intp) * num_classes + y_pred.ravel()
    matrices = np.bincount(index, minlength=n * cells).reshape(n, num_classes, num_classes)
    scores = scores_from_confusion(matrices)
    return _nanmean(scores.iou[:, :NUM_DIGITS]), _nanmean(scores.dice[:, :NUM_DIGITS])


def report(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> pd.DataFrame:
    """A tidy per-class table: one row per class, columns ``iou``, ``dice``, ``pixel_share`` and ``support``.

    ``support`` is the number of true pixels of the class, ``pixel_share`` its share of all pixels.
    Serialise it with :func:`report_to_json`.
    """
    return report_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def report_from_confusion(matrix: np.ndarray) -> pd.DataFrame:
    """The :func:`report` table from a confusion matrix (rows true, columns predicted)."""
    num_classes = len(matrix)
    scores = scores_from_confusion(matrix)
    support = matrix.sum(axis=1)
    names = CLASS_NAMES if num_classes == NUM_CLASSES else tuple(str(c) for c in range(num_classes))
    return pd.DataFrame(
        {
            "iou": scores.iou,
            "dice": scores.dice,
            "pixel_share": support / max(matrix.sum(), 1),
            "support": support,
        },
        index=pd.Index(names, name="class"),
    )


def report_to_json(table: pd.DataFrame) -> str:
    """The :func:`report` table as JSON: ``{class: {iou, dice, pixel_share, support}}``, NaN as ``null``."""
    records = {
        str(name): {key: (None if pd.isna(value) else value) for key, value in row.items()}
        for name, row in table.astype(object).iterrows()
    }
    return json.dumps(records, indent=2)


@keras.saving.register_keras_serializable(package="m2nist_seg")
class MeanDigitIoU(keras.metrics.Metric):
    """Mean IoU over the digit classes, streamed during ``fit`` and ``evaluate``.

    Accumulates an int64 confusion matrix over batches and computes the same number as
    ``iou_dice(...).mean_digit_iou`` on the whole set. ``y_true``: integer label maps (B, H, W);
    ``y_pred``: class probabilities or scores (B, H, W, num_classes).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "digit_miou", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.matrix = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="int64", name="confusion_matrix"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise M2NISTError("sample_weight: MeanDigitIoU counts pixels and takes no sample weights")
        y_true = tf.reshape(tf.cast(y_true, tf.int64), [-1])
        y_pred = tf.reshape(tf.argmax(y_pred, axis=-1), [-1])
        counts = tf.math.bincount(
            y_true * self.num_classes + y_pred,
            minlength=self.num_classes**2,
            maxlength=self.num_classes**2,
            dtype=tf.int64,
        )
        self.matrix.assign_add(tf.reshape(counts, (self.num_classes, self.num_classes)))

    def result(self):
        matrix = tf.cast(self.matrix, tf.float64)
        tp = tf.linalg.diag_part(matrix)
        union = tf.reduce_sum(matrix, axis=0) + tf.reduce_sum(matrix, axis=1) - tp
        iou = tf.math.divide_no_nan(tp, union)[:NUM_DIGITS]
        present = tf.cast(union[:NUM_DIGITS] > 0, tf.float64)
        return tf.math.divide_no_nan(tf.reduce_sum(iou * present), tf.reduce_sum(present))

    def reset_state(self):
        self.matrix.assign(tf.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
