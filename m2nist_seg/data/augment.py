"""Augmentation of training batches in the tf.data pipeline: what learners' drawings and scans do to the ink.

Each image of a batch is changed independently, each change with its own probability (:class:`Augmentation`):

- an affine move of the whole image: a shift, a rotation and a scale about its centre (bilinear for the image,
  nearest neighbour for the labels);
- thicker strokes (a 3×3 grey dilation: one pixel more on every side) or thinner ones (a 3×3 grey erosion);
- a binary pen, as the drawing canvas gives: ink of 128 or more becomes 255, fainter ink disappears;
- lower contrast: the ink is scaled by a factor below 1;
- Gaussian noise, then salt-and-pepper noise (pixels set to 255 or 0), last, over the whole image.

Masks follow the ink (:func:`follow_ink`), as in M2NIST, where a pixel is a digit exactly when it has ink: a pixel
that has no ink after a change is background, and a pixel that gained ink takes the digit of an inked neighbour
(3×3). Noise is not ink: it leaves the labels as they are.

:data:`RECIPES` names the recipes that were tried on the validation split (``benchmarks/bench_augment.py``);
:data:`DEFAULT_RECIPE` is the one chosen there, and ``TrainConfig.augmentation`` picks one. The README's section
"Robust to what learners draw" has the scores.

Every random draw is stateless, from a seed of two integers that the training stream derives from the run's seed
and the batch's number, so a resumed run sees exactly the augmented batches of an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import tensorflow as tf

from m2nist_seg.data.shapes import BACKGROUND


@dataclass(frozen=True)
class Augmentation:
    """The probability of each change per image, and its strength."""

    affine: float = 0.5
    max_shift: float = 3.0  # pixels, along each axis
    max_rotation: float = 10.0  # degrees, either way
    max_scale: float = 0.1  # the scale factor lies in [1 − max_scale, 1 + max_scale]
    thicker: float = 0.2
    thinner: float = 0.2
    binary_pen: float = 0.2
    contrast: float = 0.3
    min_contrast: float = 0.6  # the ink is scaled by a factor in [min_contrast, 1]
    noise: float = 0.3
    max_noise_sd: float = 25.0  # the noise's standard deviation lies in [0, max_noise_sd] (pixel values)
    speckle: float = 0.0
    max_speckle: float = 0.06  # salt-and-pepper hits a fraction in [0, max_speckle] of the pixels


RecipeName = Literal["moves", "ink", "ink_speckle", "ink_speckle_strong"]
RECIPES: dict[str, Augmentation] = {
    "moves": Augmentation(thicker=0, thinner=0, binary_pen=0, contrast=0, noise=0),
    "ink": Augmentation(),
    "ink_speckle": Augmentation(thinner=0.3, speckle=0.2),
    "ink_speckle_strong": Augmentation(thicker=0.25, thinner=0.35, binary_pen=0.3, noise=0.4, speckle=0.3),
}
DEFAULT_RECIPE: RecipeName = "ink_speckle"


def follow_ink(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """The labels of changed ink: background where ``images`` has no ink, an inked neighbour's digit where a
    background label now has ink; other labels kept. ``images`` float32 (B, H, W, 1), ``labels`` int32 (B, H, W)."""
    ink = images[..., 0] > 0
    labels = tf.where(ink, labels, BACKGROUND)
    code = tf.cast(tf.where(labels != BACKGROUND, labels + 1, 0), tf.float32)[..., None]
    neighbour = tf.cast(tf.nn.max_pool2d(code, 3, 1, "SAME")[..., 0], tf.int32) - 1
    return tf.where(ink & (labels == BACKGROUND) & (neighbour >= 0), neighbour, labels)


def _chosen(probability: float, batch: int, seed: tf.Tensor) -> tf.Tensor:
    """bool (B, 1, 1, 1): which images of the batch a change with this ``probability`` applies to."""
    return tf.reshape(tf.random.stateless_uniform([batch], seed=seed) < probability, [batch, 1, 1, 1])


def _uniform(low: float, high: float, batch: int, seed: tf.Tensor) -> tf.Tensor:
    return tf.random.stateless_uniform([batch], seed=seed, minval=low, maxval=high)


def _affine(images: tf.Tensor, labels: tf.Tensor, recipe: Augmentation, seeds: tf.Tensor):
    """Shift, rotate and scale each chosen image about its centre; labels by nearest neighbour."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    angle = _uniform(-recipe.max_rotation, recipe.max_rotation, batch, seeds[0]) * (math.pi / 180)
    scale = _uniform(1 - recipe.max_scale, 1 + recipe.max_scale, batch, seeds[1])
    shift_x = _uniform(-recipe.max_shift, recipe.max_shift, batch, seeds[2])
    shift_y = _uniform(-recipe.max_shift, recipe.max_shift, batch, seeds[3])
    moved = tf.reshape(_chosen(recipe.affine, batch, seeds[4]), [batch])
    angle, shift_x, shift_y = (tf.where(moved, value, 0.0) for value in (angle, shift_x, shift_y))
    scale = tf.where(moved, scale, 1.0)
    # The transform maps each output pixel to the input pixel it reads: centre, undo the move, scale, rotate back.
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a0, a1 = tf.cos(angle) / scale, tf.sin(angle) / scale
    b0, b1 = -tf.sin(angle) / scale, tf.cos(angle) / scale
    a2 = cx - a0 * (cx + shift_x) - a1 * (cy + shift_y)
    b2 = cy - b0 * (cx + shift_x) - b1 * (cy + shift_y)
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def warp(tensor: tf.Tensor, fill: float, interpolation: str) -> tf.Tensor:
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=tensor,
            transforms=transforms,
            output_shape=[height, width],
            fill_value=fill,
            interpolation=interpolation,
            fill_mode="CONSTANT",
        )

    images = warp(images, 0.0, "BILINEAR")
    labels = warp(tf.cast(labels, tf.float32)[..., None], float(BACKGROUND), "NEAREST")
    return images, tf.cast(labels[..., 0], tf.int32)


def augment_batch(
    images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, recipe: Augmentation = Augmentation()
) -> tuple[tf.Tensor, tf.Tensor]:
    """Augmented copies of a batch: ``images`` float32 (B, H, W, 1) with raw values 0–255, ``labels`` int32
    (B, H, W), ``seed`` two integers (a stateless seed). Returns the same shapes and dtypes."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=17)
    batch = tf.shape(images)[0]
    images, labels = _affine(images, labels, recipe, seeds[:5])
    thicker = tf.nn.max_pool2d(images, 3, 1, "SAME")
    thinner = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
    thick = _chosen(recipe.thicker, batch, seeds[5])
    thin = _chosen(recipe.thinner, batch, seeds[6]) & ~thick
    images = tf.where(thick, thicker, tf.where(thin, thinner, images))
    images = tf.where(_chosen(recipe.binary_pen, batch, seeds[7]), tf.where(images >= 128, 255.0, 0.0), images)
    factor = tf.reshape(_uniform(recipe.min_contrast, 1.0, batch, seeds[8]), [batch, 1, 1, 1])
    images = tf.where(_chosen(recipe.contrast, batch, seeds[9]), images * factor, images)
    labels = follow_ink(images, labels)
    sd = tf.reshape(_uniform(0.0, recipe.max_noise_sd, batch, seeds[10]), [batch, 1, 1, 1])
    noise = tf.random.stateless_normal(tf.shape(images), seed=seeds[11]) * sd
    noisy = tf.where(_chosen(recipe.noise, batch, seeds[12]), noise, 0.0)
    images = tf.clip_by_value(images + noisy, 0.0, 255.0)
    fraction = tf.reshape(_uniform(0.0, recipe.max_speckle, batch, seeds[13]), [batch, 1, 1, 1])
    hit = tf.random.stateless_uniform(tf.shape(images), seed=seeds[14]) < fraction
    salt = tf.random.stateless_uniform(tf.shape(images), seed=seeds[15]) < 0.5
    speckled = hit & _chosen(recipe.speckle, batch, seeds[16])
    return tf.where(speckled, tf.where(salt, 255.0, 0.0), images), labels
