"""Validators shared by every layer: images, label maps and batch sizes, each checked in one place.

Each raises :class:`~m2nist_seg.core.errors.M2NISTError` naming the argument, what was found and what was
expected, and returns the value in the form the package works with.
"""

from __future__ import annotations

import numpy as np

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.shapes import HEIGHT, IMAGE_SHAPE, NUM_CLASSES, WIDTH


def check_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """``labels`` as an array of class ids 0–10; raise :class:`M2NISTError` naming ``name`` on other values."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise M2NISTError(f"{name}: found dtype {labels.dtype}, expected integer class ids 0–{NUM_CLASSES - 1}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise M2NISTError(
            f"{name}: found values in [{labels.min()}, {labels.max()}], expected class ids 0–{NUM_CLASSES - 1}"
        )
    return labels


def to_uint8_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """Any integer or float array of whole numbers 0–255 (no NaN) → uint8 of the same shape.

    Kaggle's files hold int64 (as released), int32 or float32 pixels; all are accepted. Raises
    :class:`M2NISTError` naming ``name`` on another dtype or on values outside 0–255.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise M2NISTError(f"{name}: found dtype {images.dtype}, expected integer or float pixel values 0–255")
    if np.issubdtype(images.dtype, np.floating) and np.isnan(images).any():
        raise M2NISTError(f"{name}: found NaN, expected pixel values 0–255")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise M2NISTError(f"{name}: found values in [{images.min()}, {images.max()}], expected pixel values 0–255")
    if images.size and not np.array_equal(images, np.round(images)):
        raise M2NISTError(f"{name}: found fractional values, expected whole pixel values 0–255")
    return images.astype(np.uint8)


def check_images(images) -> np.ndarray:
    """``images`` as the models take them: uint8 or float (N, 64, 84), values 0–255 (a trailing channel of 1 is
    dropped, other integer dtypes such as Kaggle's int64 become uint8); raise :class:`M2NISTError` otherwise."""
    if not isinstance(images, np.ndarray):
        raise M2NISTError(f"images: found {type(images).__name__}, expected a numpy array")
    if np.issubdtype(images.dtype, np.integer) and images.dtype != np.uint8:
        images = to_uint8_images(images)  # Kaggle's files hold int64 pixels
    if not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise M2NISTError(f"images: found dtype {images.dtype}, expected integer or float values 0–255")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise M2NISTError(
            f"images: found shape {images.shape}, expected (N, {HEIGHT}, {WIDTH}) or (N, {HEIGHT}, {WIDTH}, 1)"
        )
    if np.issubdtype(images.dtype, np.floating) and images.size and not (0 <= images.min() <= images.max() <= 255):
        raise M2NISTError(
            f"images: found values in [{images.min()}, {images.max()}], expected raw pixel values 0–255 (no NaN)"
        )
    return images


def check_batch_size(batch_size) -> None:
    """Raise :class:`M2NISTError` unless ``batch_size`` is a positive ``int``."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise M2NISTError(f"batch_size: found {batch_size!r}, expected a positive integer")
