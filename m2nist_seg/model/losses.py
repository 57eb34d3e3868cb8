"""Losses for a segmentation task where background is about 94% of the pixels.

A model that predicts background everywhere already scores 0.94 pixel accuracy and 0 digit IoU, and plain
cross-entropy rewards it for a long time. Two remedies, and their sum:

- :class:`SoftDiceLoss` scores the overlap of each digit class directly, whatever its size;
- :class:`WeightedCrossEntropy` weighs each pixel by its true class, with weights from the training split
  (:func:`class_weights`);
- :class:`CombinedLoss` adds the two.

All take ``y_true`` as integer label maps (B, H, W) and ``y_pred`` as softmax probabilities
(B, H, W, num_classes), and serialise with the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data import NUM_CLASSES, NUM_DIGITS

EPSILON = 1e-6


def class_weights(labels: np.ndarray, num_classes: int = NUM_CLASSES, power: float = 0.5) -> np.ndarray:
    """Per-class pixel weights float64 (num_classes,) from **training** label maps (N, H, W).

    ``w_c ∝ (1 / share_c) ** power``, scaled so that the average pixel of the training split weighs 1.
    ``power=0.5`` softens plain inverse frequency, which would weigh a digit pixel ~170× a background one.
    Classes absent from ``labels`` get the largest weight of the present ones.
    """
    counts = np.bincount(np.asarray(labels).ravel(), minlength=num_classes).astype(np.float64)
    if counts.sum() == 0:
        raise M2NISTError("labels: found no pixels, expected training label maps")
    share = counts / counts.sum()
    with np.errstate(divide="ignore"):
        weights = np.where(share > 0, share ** (-power), 0.0)
    weights[share == 0] = weights.max()
    return weights / (share * weights).sum()


def batch_loss(value):
    """One loss for the whole batch, as a one-element vector float32 (1,).

    Keras divides a loss by the number of replicas of a ``tf.distribute`` strategy (each replica's gradients
    are then summed) only when the loss is not a bare scalar; a batch-level loss such as Dice, returned as a
    scalar, would count once per replica. As a vector of one value it is reduced (to itself) and scaled.
    """
    return ops.reshape(value, (1,))


def _one_hot(y_true, num_classes: int):
    return ops.one_hot(ops.cast(y_true, "int32"), num_classes)


@keras.saving.register_keras_serializable(package="m2nist_seg")
class SoftDiceLoss(keras.losses.Loss):
    """1 − mean soft Dice over the digit classes present in the batch's truth, pooled over the batch.

    ``dice_c = (2·Σ p·t + ε) / (Σ p + Σ t + ε)`` with probabilities ``p`` and one-hot truth ``t``. A digit
    absent from the truth would score a free ≈1 and dilute the others, so the mean skips it (cross-entropy
    still punishes predicting it). A batch without digits gives 0.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "soft_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes

    def call(self, y_true, y_pred):
        truth = _one_hot(y_true, self.num_classes)[..., :NUM_DIGITS]
        probs = ops.cast(y_pred, "float32")[..., :NUM_DIGITS]
        axes = tuple(range(len(probs.shape) - 1))
        overlap = ops.sum(truth * probs, axis=axes)
        total = ops.sum(truth, axis=axes) + ops.sum(probs, axis=axes)
        dice = (2.0 * overlap + EPSILON) / (total + EPSILON)
        present = ops.cast(ops.sum(truth, axis=axes) > 0, "float32")
        return batch_loss(ops.sum((1.0 - dice) * present) / ops.maximum(ops.sum(present), 1.0))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="m2nist_seg")
class WeightedCrossEntropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with each pixel weighted by its true class.

    ``class_weights`` (num_classes,) come from :func:`class_weights` on the training split; ``None`` gives
    plain cross-entropy.
    """

    def __init__(self, class_weights: Sequence[float] | None = None, name: str = "weighted_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true, "int32")
        ce = keras.losses.sparse_categorical_crossentropy(labels, ops.cast(y_pred, "float32"))
        if self.class_weights is not None:
            ce = ce * ops.take(ops.convert_to_tensor(self.class_weights, "float32"), labels)
        return ops.mean(ce, axis=tuple(range(1, len(ce.shape))))

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="m2nist_seg")
class CombinedLoss(keras.losses.Loss):
    """``ce_weight · WeightedCrossEntropy + dice_weight · SoftDiceLoss``: per-pixel accuracy and per-class overlap."""

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        num_classes: int = NUM_CLASSES,
        name: str = "ce_dice",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.ce = WeightedCrossEntropy(class_weights)
        self.dice = SoftDiceLoss(num_classes)
        self.ce_weight, self.dice_weight, self.num_classes = float(ce_weight), float(dice_weight), num_classes

    def call(self, y_true, y_pred):
        ce = ops.mean(self.ce.call(y_true, y_pred))
        return self.ce_weight * ce + self.dice_weight * self.dice.call(y_true, y_pred)  # shape (1,), as Dice

    def get_config(self):
        return {
            **super().get_config(),
            "class_weights": self.ce.class_weights,
            "ce_weight": self.ce_weight,
            "dice_weight": self.dice_weight,
            "num_classes": self.num_classes,
        }
