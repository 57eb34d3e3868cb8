"""The tf.data pipeline: numpy splits → batches the model takes."""

from __future__ import annotations

import numpy as np

from m2nist_seg.core.errors import M2NISTError


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
):
    """A batched ``tf.data.Dataset`` of ``(image, label)`` pairs for Keras.

    Yields float32 images (B, 64, 84, 1) with raw values 0–255 (the model scales them) and int32 label maps
    (B, 64, 84). With ``shuffle`` the order is reshuffled every epoch from ``seed``.
    """
    import tensorflow as tf

    images, labels = np.asarray(images), np.asarray(labels)
    if images.shape != labels.shape or images.ndim != 3:
        raise M2NISTError(f"images/labels: found shapes {images.shape} and {labels.shape}, expected both (N, H, W)")
    if batch_size < 1:
        raise M2NISTError(f"batch_size: found {batch_size}, expected ≥ 1")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def to_model_inputs(images, labels):
    """A batch as the model takes it: float32 images (B, H, W, 1) with raw 0–255 values, int32 labels (B, H, W)."""
    import tensorflow as tf

    return tf.cast(images, tf.float32)[..., None], tf.cast(labels, tf.int32)
