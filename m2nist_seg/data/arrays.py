"""M2NIST arrays and files: the Kaggle layout, conversions between masks and label maps, validation, ``.npy`` I/O.

- images: ``uint8``, shape ``(N, 64, 84)``, values 0–255;
- masks: ``uint8`` one-hot, shape ``(N, 64, 84, 11)``; channel ``c < 10`` is digit ``c``, channel 10 is background;
- labels: ``uint8`` integer label maps, shape ``(N, 64, 84)``, values 0–10 (the argmax of the masks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.shapes import HEIGHT, IMAGE_SHAPE, NUM_CLASSES, NUM_DIGITS, WIDTH
from m2nist_seg.data.validation import check_labels, to_uint8_images

IMAGES_FILE = "combined.npy"
MASKS_FILE = "segmented.npy"


def default_cache_dir() -> Path:
    """Where downloads and generated data are cached: ``$M2NIST_CACHE`` or ``~/.cache/m2nist_seg``."""
    return Path(os.environ.get("M2NIST_CACHE", Path.home() / ".cache" / "m2nist_seg"))


def labels_to_masks(labels: np.ndarray) -> np.ndarray:
    """Integer label maps (..., H, W) with values 0–10 → one-hot uint8 masks (..., H, W, 11)."""
    labels = check_labels(labels)
    return (labels[..., None] == np.arange(NUM_CLASSES)).view(np.uint8)


def masks_to_labels(masks: np.ndarray) -> np.ndarray:
    """One-hot masks (..., H, W, 11) → integer label maps uint8 (..., H, W)."""
    masks = np.asarray(masks)
    if masks.shape[-1:] != (NUM_CLASSES,):
        raise M2NISTError(f"masks: found shape {masks.shape}, expected a last axis of {NUM_CLASSES} channels")
    return masks.argmax(axis=-1).astype(np.uint8)


def validate_arrays(images: np.ndarray, masks: np.ndarray, origin: str = "arrays") -> tuple[np.ndarray, np.ndarray]:
    """Check M2NIST arrays and return them as uint8.

    ``images`` must be (N, 64, 84) with values 0–255 (any int or float dtype, no NaN); ``masks`` must be
    (N, 64, 84, 11) with values 0/1 and exactly one channel set per pixel. ``origin`` names the arrays in
    error messages. Raises :class:`M2NISTError` on any violation.
    """
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise M2NISTError(f"{origin}: images have shape {images.shape}, expected (N, {HEIGHT}, {WIDTH})")
    if masks.ndim != 4 or masks.shape[1:] != (*IMAGE_SHAPE, NUM_CLASSES):
        raise M2NISTError(f"{origin}: masks have shape {masks.shape}, expected (N, {HEIGHT}, {WIDTH}, {NUM_CLASSES})")
    if len(images) != len(masks):
        raise M2NISTError(f"{origin}: {len(images)} images but {len(masks)} masks, expected the same count")
    if not (np.issubdtype(masks.dtype, np.integer) or np.issubdtype(masks.dtype, np.floating)):
        raise M2NISTError(f"{origin}: masks have dtype {masks.dtype}, expected an integer or float dtype")
    images = to_uint8_images(images, name=f"{origin}: images")
    bad = (masks != 0) & (masks != 1)
    if bad.any():
        raise M2NISTError(f"{origin}: masks contain the value {masks[bad].flat[0]}, expected only 0 and 1")
    masks = masks.astype(np.uint8)
    channels_set = masks.sum(axis=-1, dtype=np.int64)
    if (channels_set != 1).any():
        n, row, col = np.argwhere(channels_set != 1)[0]
        raise M2NISTError(
            f"{origin}: mask of image {n} has {channels_set[n, row, col]} channels set at pixel ({row}, {col}), "
            "expected exactly one (channel 10 is background)"
        )
    return images, masks


def read_npy(path: Path) -> np.ndarray:
    """Load a plain (non-pickled) .npy file, with an :class:`M2NISTError` naming it if it is missing or unreadable."""
    if not path.is_file():
        raise M2NISTError(f"{path}: file not found, expected a .npy file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise M2NISTError(f"{path}: not a readable .npy file ({err}); is it truncated or of another format?") from None


def load_arrays(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read Kaggle's ``combined.npy`` and ``segmented.npy`` from ``directory``.

    Accepts int64 (as released), int32 and float32 files. Returns validated ``(images, masks)``:
    uint8 (N, 64, 84) and uint8 (N, 64, 84, 11).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise M2NISTError(f"{directory}: directory not found, expected one holding {IMAGES_FILE} and {MASKS_FILE}")
    images = read_npy(directory / IMAGES_FILE)
    masks = read_npy(directory / MASKS_FILE)
    return validate_arrays(images, masks, origin=str(directory))


@dataclass(frozen=True)
class Statistics:
    """Summary of a set of label maps.

    ``pixel_share``: float (11,), the share of pixels of each class; ``digits_per_image`` and
    ``classes_per_image``: int (N,), the digits and distinct digit classes visible in each image.
    """

    pixel_share: np.ndarray
    digits_per_image: np.ndarray | None
    classes_per_image: np.ndarray


def statistics(labels: np.ndarray, layout=None) -> Statistics:
    """Class pixel share and per-image digit counts of label maps uint8 (N, 64, 84).

    Digits per image come from the :class:`~m2nist_seg.data.generator.Layout` of generated data (two digits of
    one class are indistinguishable in a label map); without one it is ``None``.
    """
    labels = check_labels(labels)
    counts = np.bincount(labels.ravel(), minlength=NUM_CLASSES)
    present = np.zeros((len(labels), NUM_CLASSES), dtype=bool)
    present[np.repeat(np.arange(len(labels)), labels[0].size if len(labels) else 0), labels.ravel()] = True
    digits = None if layout is None else (layout.digit >= 0).sum(axis=1)
    return Statistics(
        pixel_share=counts / max(labels.size, 1),
        digits_per_image=digits,
        classes_per_image=present[:, :NUM_DIGITS].sum(axis=1),
    )
