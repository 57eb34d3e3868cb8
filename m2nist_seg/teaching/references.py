"""Reference solutions of the exercises that need no training: the notebooks fall back on them, the checks use them.

Each has its exercise's signature:

- :func:`reference_conv_block`, :func:`reference_encoder` and :func:`reference_fcn8_decoder` build the same
  layers as :func:`m2nist_seg.model.build_fcn` does;
- :func:`reference_iou_dice` and :func:`reference_dice_loss` wrap :mod:`m2nist_seg.evaluation.metrics` and
  :mod:`m2nist_seg.model.losses`.

The compile step of the exercise is :func:`m2nist_seg.teaching.exercises.reference_compile`.
"""

from __future__ import annotations

import numpy as np
from keras import layers, ops

from m2nist_seg import model as fcn
from m2nist_seg.data import NUM_CLASSES
from m2nist_seg.evaluation import metrics
from m2nist_seg.model import losses


def reference_conv_block(x, filters: int, convs: int = 1, strided: bool = False):
    """``convs`` × (3×3 Conv2D → BatchNormalization → ReLU), halving the map once.

    ``x``: a Keras tensor (N, H, W, C). With ``strided`` the first convolution has stride 2, otherwise a 2×2
    max pooling ends the block. Returns a Keras tensor (N, H/2, W/2, filters).
    """
    for conv in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and conv == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=fcn.BN_MOMENTUM)(x)
        x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def reference_encoder(image):
    """The encoder of :func:`m2nist_seg.model.build_fcn8` (:func:`m2nist_seg.model.encoder`): ``(pool3, pool4, pool5)``.

    ``image``: a Keras tensor (N, 64, 84, 1) of raw pixel values 0–255. It is scaled by 1/255 and padded to a
    multiple of 32 (64×96), then five blocks give pool3 (N, 8, 12, 64), pool4 (N, 4, 6, 128) and
    pool5 (N, 2, 3, 128).
    """
    pools = fcn.encoder(image)
    return pools[3], pools[4], pools[5]


def reference_fcn8_decoder(pool3, pool4, pool5, num_classes: int = NUM_CLASSES):
    """The FCN-8 decoder of :func:`m2nist_seg.model.build_fcn8` (:func:`m2nist_seg.model.decoder`) and its softmax:
    class probabilities (N, 64, 84, num_classes)."""
    scores = fcn.decoder({3: pool3, 4: pool4, 5: pool5}, "fcn8", num_classes)
    return layers.Softmax(dtype="float32", name="probabilities")(scores)


def reference_iou_dice(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU and Dice, float64 (11,) each, pooled over all pixels of integer label maps (N, 64, 84).

    NaN for a class absent from both ``y_true`` and ``y_pred``.
    """
    scores = metrics.iou_dice(y_true, y_pred)
    return scores.iou, scores.dice


def reference_dice_loss(y_true_onehot, y_pred_probs):
    """1 − mean soft Dice over the digit classes present in the truth: a float32 scalar tensor.

    ``y_true_onehot``: one-hot float32 (B, 64, 84, 11); ``y_pred_probs``: softmax probabilities, same shape.
    The same loss as :class:`m2nist_seg.model.losses.SoftDiceLoss`, which takes integer label maps instead.
    """
    return losses.SoftDiceLoss()(ops.argmax(y_true_onehot, axis=-1), y_pred_probs)
