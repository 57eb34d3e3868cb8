"""How well a model segments images unlike the clean test split: perturbed copies of a split, scored side by side.

Every perturbation takes images uint8 (N, 64, 84) and their label maps uint8 (N, 64, 84) (float or other
integer images of whole values 0–255 are accepted) and returns the perturbed pair, uint8 (N, 64, 84) each.

M2NIST's digit pixels are exactly its ink (image > 0, in the generator and in Kaggle's files alike). Where a
perturbation changes the ink, the mask follows it by :func:`labels_following_ink`: a pixel left without ink
becomes background, and a newly inked pixel takes the label of the nearest digit pixel. So thicker strokes label
their new rim with the stroke's digit, thinner strokes and the binary pen drop the background they uncover, and
a moved image's anti-aliased rim belongs to its digit. Noise is not ink: it leaves the mask unchanged, so there
ink > 0 no longer marks the digits and the table reports no ink-gated score.

The conditions (:data:`CONDITIONS`): clean; strokes 1 or 2 px thicker (grey dilation) or 1 px thinner (grey
erosion) on each side; a binary pen (ink ≥ 128 → 255, fainter ink dropped); each digit thinned to its skeleton
and redrawn with the explorer's drawing-board pen; Gaussian noise (sd 10, 25, 50 grey levels) and
salt-and-pepper noise (1%, 5%, 10% of the pixels); whole-image shifts by ±2 and ±4 px (both axes), scales by 0.9
and 1.1 and rotations by ±10° (bilinear); three overlapping test-pool digits (:func:`overlapping_three`, in
place of the split); and the 10 real Kaggle samples (:func:`real_samples`, skipped with a note when absent).

:data:`CONDITIONS` names the perturbations at their levels (:data:`SPLIT_CONDITIONS`: all but the real samples);
:func:`robustness_table` scores a model under each (one row per condition) and :func:`worst_cases` picks the images
it segments worst.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd
from scipy import ndimage

from m2nist_seg import data
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.options import NON_NEGATIVE_INT, POSITIVE_INT, in_range, require
from m2nist_seg.core.settings import PROJECT_ROOT
from m2nist_seg.data import strokes
from m2nist_seg.data.validation import check_images, check_labels, to_uint8_images
from m2nist_seg.evaluation import evaluate, metrics

BINARY_THRESHOLD = 128
SAMPLE_DIR = PROJECT_ROOT.parent / "shared" / "m2nist-sample"
SAMPLE_FILES = ("combined_10_float32.npy", "segmented_10_int32.npy")
OVERLAP_SPACING = (8, 14)
ROW_SPREAD = 4
MIN_OVERLAP_PIXELS = 10


def _checked(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``images`` and ``labels`` as uint8 (N, 64, 84) each, or :class:`M2NISTError` naming the bad one."""
    images = to_uint8_images(check_images(images))
    labels = check_labels(labels, "labels").astype(np.uint8)
    if labels.shape != images.shape:
        raise M2NISTError(f"labels: found shape {labels.shape}, expected the images' shape {images.shape}")
    return images, labels


def labels_following_ink(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Label maps uint8 (N, 64, 84) that follow the ink of perturbed ``images`` uint8 (N, 64, 84), from the
    ``labels`` uint8 (N, 64, 84) that came with them: a pixel without ink (0) is background, an ink pixel keeps
    its digit label, and an ink pixel labelled background takes the label of its image's nearest digit pixel
    (Euclidean distance; it stays background in an image with no digit pixel)."""
    images, labels = _checked(images, labels)
    nearest = labels.copy()
    for image_nearest, image_labels in zip(nearest, labels):
        digit = image_labels != data.BACKGROUND
        if digit.any():
            rows, cols = ndimage.distance_transform_edt(~digit, return_distances=False, return_indices=True)
            image_nearest[:] = image_labels[rows, cols]
    return np.where(images > 0, nearest, data.BACKGROUND).astype(np.uint8)


def _disk(pixels: int) -> np.ndarray:
    """Bool footprint (1, 2p + 1, 2p + 1): the pixels within ``pixels`` of the centre, for each image alone."""
    rows, cols = np.indices((2 * pixels + 1, 2 * pixels + 1)) - pixels
    return (rows**2 + cols**2 <= pixels**2)[None]


def thicker_strokes(images: np.ndarray, labels: np.ndarray, pixels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Strokes ``pixels`` wider on each side: grey dilation over a disk of radius ``pixels`` (each pixel takes
    the brightest ink within that distance). The newly inked rim takes the label of the nearest digit pixel."""
    images, labels = _checked(images, labels)
    require("pixels", pixels, in_range(1, 10, whole=True))
    thick = ndimage.grey_dilation(images, footprint=_disk(pixels))
    return thick, labels_following_ink(thick, labels)


def thinner_strokes(images: np.ndarray, labels: np.ndarray, pixels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Strokes ``pixels`` narrower on each side: grey erosion over a disk of radius ``pixels`` (each pixel takes
    the faintest ink within that distance). Pixels that lose all their ink become background."""
    images, labels = _checked(images, labels)
    require("pixels", pixels, in_range(1, 10, whole=True))
    thin = ndimage.grey_erosion(images, footprint=_disk(pixels))
    return thin, labels_following_ink(thin, labels)


def binary_pen(
    images: np.ndarray, labels: np.ndarray, threshold: int = BINARY_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Ink as a binary pen draws it: 255 where the ink is at least ``threshold``, else 0. The faint
    anti-aliased rim is dropped, from the image and from the mask."""
    images, labels = _checked(images, labels)
    require("threshold", threshold, in_range(1, 255, whole=True))
    pen = np.where(images >= threshold, 255, 0).astype(np.uint8)
    return pen, labels_following_ink(pen, labels)


def _redraw(image: np.ndarray, labels: np.ndarray, width: float, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`board_strokes` for one image (64, 84)."""
    classes = np.setdiff1d(np.unique(labels), [data.BACKGROUND])
    skeletons = strokes.thin((labels == classes[:, None, None]) & (image >= threshold))
    reach = strokes.pen_reach(width)
    distances = np.stack([*(strokes.skeleton_distance(s, reach) for s in skeletons), np.full(image.shape, np.inf)])
    ink = strokes.pen_ink(distances.min(axis=0), width).astype(np.uint8)
    nearest = np.append(classes, data.BACKGROUND)[distances.argmin(axis=0)]
    return ink, np.where(ink > 0, nearest, data.BACKGROUND).astype(np.uint8)


def board_strokes(
    images: np.ndarray, labels: np.ndarray, width: float = strokes.PEN_WIDTH, threshold: int = BINARY_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Each digit redrawn as the explorer's drawing board draws mouse strokes.

    Per image and digit class, the digit's ink of at least ``threshold`` is thinned to a one-pixel skeleton
    (Zhang–Suen, :func:`~m2nist_seg.data.strokes.thin`); the pen of the board (``width`` pixels wide, soft edge of
    :data:`~m2nist_seg.data.strokes.PEN_EDGE`) then draws a stroke between every two neighbouring skeleton pixels.
    The new ink replaces the old; each inked pixel takes the class of the nearest skeleton (the lower class on a
    tie), the others are background. Digits of one class in one image are thinned together.
    """
    images, labels = _checked(images, labels)
    require("width", width, in_range(0.5, 16))
    require("threshold", threshold, in_range(1, 255, whole=True))
    drawn = [_redraw(image, image_labels, width, threshold) for image, image_labels in zip(images, labels)]
    if not drawn:
        return images.copy(), labels.copy()
    return np.stack([ink for ink, _ in drawn]), np.stack([redrawn for _, redrawn in drawn])


def gaussian_noise(images: np.ndarray, labels: np.ndarray, sd: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise of standard deviation ``sd`` (grey levels) added to every pixel, rounded and clipped to
    0–255 (so about half the background stays 0). The labels are returned unchanged: noise is not ink."""
    images, labels = _checked(images, labels)
    require("sd", sd, in_range(0, 255))
    noise = np.random.default_rng(seed).normal(0.0, sd, images.shape)
    return np.clip(np.round(images + noise), 0, 255).astype(np.uint8), labels


def salt_and_pepper(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A ``fraction`` of the pixels, drawn at random, set to 255 (salt) or 0 (pepper), each with probability ½.
    The labels are returned unchanged: noise is not ink."""
    images, labels = _checked(images, labels)
    require("fraction", fraction, in_range(0, 1))
    rng = np.random.default_rng(seed)
    hit, salt = rng.random(images.shape) < fraction, rng.random(images.shape) < 0.5
    return np.where(hit, np.where(salt, 255, 0), images).astype(np.uint8), labels


def _affine(
    images: np.ndarray, labels: np.ndarray, forward: np.ndarray, offset: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Move whole images by ``forward`` (2, 2), in (row, column) coordinates about the image centre, then by
    ``offset`` pixels: images sampled bilinearly, labels by nearest neighbour, then :func:`labels_following_ink`.
    What moves in from beyond the border is background."""
    images, labels = _checked(images, labels)
    centre = (np.array(data.IMAGE_SHAPE, dtype=np.float64) - 1) / 2
    grid = np.indices(data.IMAGE_SHAPE).reshape(2, -1) - (centre + offset)[:, None]
    source = (np.linalg.inv(forward) @ grid + centre[:, None]).reshape(2, *data.IMAGE_SHAPE)
    bilinear, nearest = np.empty(images.shape), np.empty_like(labels)
    for image, image_labels, moved, moved_labels in zip(images, labels, bilinear, nearest):
        ndimage.map_coordinates(image.astype(np.float64), source, output=moved, order=1, mode="grid-constant")
        ndimage.map_coordinates(
            image_labels, source, output=moved_labels, order=0, mode="grid-constant", cval=data.BACKGROUND
        )
    moved_images = np.clip(np.round(bilinear), 0, 255).astype(np.uint8)
    return moved_images, labels_following_ink(moved_images, nearest)


def shift(images: np.ndarray, labels: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole images moved ``rows`` pixels down and ``cols`` pixels right (negative: up, left); ink pushed past
    the border is lost, from the image and the mask."""
    require("rows", rows, in_range(-data.HEIGHT, data.HEIGHT, whole=True))
    require("cols", cols, in_range(-data.WIDTH, data.WIDTH, whole=True))
    return _affine(images, labels, np.eye(2), (rows, cols))


def scale(images: np.ndarray, labels: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Whole images scaled by ``factor`` about their centre (bilinear; the mask follows the ink)."""
    require("factor", factor, in_range(0.1, 10))
    return _affine(images, labels, factor * np.eye(2))


def rotate(images: np.ndarray, labels: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Whole images rotated by ``degrees`` anticlockwise (as displayed) about their centre (bilinear; the mask
    follows the ink)."""
    require("degrees", degrees, in_range(-360, 360))
    cos, sin = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return _affine(images, labels, np.array([[cos, -sin], [sin, cos]]))


def _crowded_layout(n: int, rng: np.random.Generator) -> data.Layout:
    """Three test-pool digits per image, their boxes ``OVERLAP_SPACING`` columns apart (the recipe keeps 19–37)
    and their rows within ``ROW_SPREAD`` of a common row drawn from the recipe's range [0, 37)."""
    spacing = rng.integers(OVERLAP_SPACING[0], OVERLAP_SPACING[1] + 1, size=n)
    first = rng.integers(0, data.WIDTH - data.DIGIT_SIZE - 2 * spacing + 1)
    row = rng.integers(0, data.ROW_OFFSETS, size=(n, 1)) + rng.integers(-ROW_SPREAD, ROW_SPREAD + 1, (n, 3))
    return data.Layout(
        digit=rng.choice(data.digit_pool("test"), size=(n, data.MAX_DIGITS)).astype(np.int64),
        row=np.clip(row, 0, data.ROW_OFFSETS - 1),
        col=first[:, None] + spacing[:, None] * np.arange(data.MAX_DIGITS),
    )


def _chained_overlap(layout: data.Layout) -> np.ndarray:
    """Bool (N,): whether digits 1 and 2, and digits 2 and 3, each share at least ``MIN_OVERLAP_PIXELS`` ink
    pixels."""
    digits, _ = data.mnist_digits()
    inked = np.zeros((data.MAX_DIGITS, len(layout.digit), *data.IMAGE_SHAPE), dtype=bool)
    for slot in range(data.MAX_DIGITS):
        box, digit = data.slot_boxes(layout, slot)
        inked[slot][box] = digits[digit] > 0
    shared = (inked[:-1] & inked[1:]).sum(axis=(2, 3))
    return (shared >= MIN_OVERLAP_PIXELS).all(axis=0)


def overlapping_three(n: int, seed: int = 0) -> tuple[data.Split, data.Layout]:
    """``n`` images of three overlapping test-pool digits and their layout, rendered by the recipe's
    :func:`~m2nist_seg.data.render` (a shared pixel belongs to the brighter digit).

    The recipe cannot force overlaps (its boxes lie 19–37 columns apart, and MNIST ink mostly fills their middle
    20 columns), so the boxes are placed 8–14 columns apart, within 4 rows of a common row
    (:func:`_crowded_layout`), and a layout is kept only when the middle digit shares at least
    ``MIN_OVERLAP_PIXELS`` ink pixels with each of the others (about 4 in 10 are); layouts are drawn until ``n``
    are kept.
    """
    require("n", n, NON_NEGATIVE_INT)
    rng = np.random.default_rng(seed)
    kept = [_crowded_layout(0, rng)]
    while sum(len(layout.digit) for layout in kept) < n:
        candidates = _crowded_layout(n, rng)
        chosen = np.flatnonzero(_chained_overlap(candidates))
        kept.append(data.Layout(candidates.digit[chosen], candidates.row[chosen], candidates.col[chosen]))
    layout = data.Layout(
        *(np.concatenate([getattr(part, field) for part in kept])[:n] for field in ("digit", "row", "col"))
    )
    return data.Split(*data.render(layout)), layout


def real_samples(directory: str | os.PathLike = SAMPLE_DIR) -> data.Split | None:
    """The 10 real Kaggle M2NIST samples in ``directory`` (``SAMPLE_FILES``) as a split, or None when they
    are absent."""
    images_file, masks_file = (Path(directory) / name for name in SAMPLE_FILES)
    if not (images_file.is_file() and masks_file.is_file()):
        return None
    images, masks = data.validate_arrays(np.load(images_file), np.load(masks_file), origin=str(directory))
    return data.Split(images, data.masks_to_labels(masks))


class Condition(NamedTuple):
    """One row of the table. ``make(split, seed)`` returns the split to score, or None when its data is missing
    (the row then says ``missing``); ``gated``: whether ink > 0 still marks the digit pixels, so that the
    ink-gated score means something."""

    make: Callable[[data.Split, int], data.Split | None]
    gated: bool = True
    missing: str = ""


def _perturbed(perturb: Callable, **levels) -> Condition:
    """A condition applying ``perturb`` at ``levels`` to the split."""
    return Condition(lambda split, seed: data.Split(*perturb(split.images, split.labels, **levels)))


def _noisy(perturb: Callable, **levels) -> Condition:
    """A condition adding noise by ``perturb`` at ``levels``, seeded by the table's seed; no ink gate."""
    return Condition(lambda split, seed: data.Split(*perturb(split.images, split.labels, **levels, seed=seed)), False)


CONDITIONS: dict[str, Condition] = {
    "clean": Condition(lambda split, seed: split),
    "thicker strokes +1 px": _perturbed(thicker_strokes, pixels=1),
    "thicker strokes +2 px": _perturbed(thicker_strokes, pixels=2),
    "thinner strokes -1 px": _perturbed(thinner_strokes, pixels=1),
    "binary pen": _perturbed(binary_pen),
    "drawing-board strokes": _perturbed(board_strokes),
    "gaussian noise sd 10": _noisy(gaussian_noise, sd=10),
    "gaussian noise sd 25": _noisy(gaussian_noise, sd=25),
    "gaussian noise sd 50": _noisy(gaussian_noise, sd=50),
    "salt & pepper 1%": _noisy(salt_and_pepper, fraction=0.01),
    "salt & pepper 5%": _noisy(salt_and_pepper, fraction=0.05),
    "salt & pepper 10%": _noisy(salt_and_pepper, fraction=0.10),
    "shift +2,+2 px": _perturbed(shift, rows=2, cols=2),
    "shift -2,-2 px": _perturbed(shift, rows=-2, cols=-2),
    "shift +4,+4 px": _perturbed(shift, rows=4, cols=4),
    "shift -4,-4 px": _perturbed(shift, rows=-4, cols=-4),
    "scale 0.9": _perturbed(scale, factor=0.9),
    "scale 1.1": _perturbed(scale, factor=1.1),
    "rotate +10°": _perturbed(rotate, degrees=10),
    "rotate -10°": _perturbed(rotate, degrees=-10),
    "three overlapping digits": Condition(lambda split, seed: overlapping_three(len(split), seed)[0]),
    "real Kaggle samples": Condition(
        lambda split, seed: real_samples(SAMPLE_DIR), missing="skipped: no real samples in ../shared/m2nist-sample"
    ),
}
# The conditions made from the split alone: the same rows on every machine (the real samples may be absent).
SPLIT_CONDITIONS: dict[str, Condition] = {name: c for name, c in CONDITIONS.items() if name != "real Kaggle samples"}


_COLUMNS = {
    "images": "int64",
    "mean_digit_iou": "float64",
    "worst_digit": "Int64",
    "worst_digit_iou": "float64",
    "pixel_accuracy": "float64",
    "gated_mean_digit_iou": "float64",
    "note": "str",
}


def robustness_table(
    model: keras.Model | str | os.PathLike,
    split: data.Split,
    seed: int = 0,
    conditions: Mapping[str, Condition] = CONDITIONS,
) -> pd.DataFrame:
    """Scores of ``model`` (a Keras model or an exported ``.onnx`` path) on ``split`` under each condition
    (default :data:`CONDITIONS`; ``seed`` seeds the noise and the overlapping digits).

    One row per condition, indexed by its name: ``images``; the plain FCN's ``mean_digit_iou``, its
    ``worst_digit`` and ``worst_digit_iou`` and ``pixel_accuracy``; ``gated_mean_digit_iou`` with the ink gate
    (NaN under noise, where ink > 0 no longer marks the digits); ``note`` (why a row has no scores). Scores lie in
    [0, 1], NaN where undefined.
    """
    return assess(model, split, seed=seed, conditions=conditions).table


class WorstCases(NamedTuple):
    """The images a model segments worst under one condition, worst first: ``images``, true ``labels`` and
    ``predicted`` (plain) label maps uint8 (K, 64, 84), their mean digit ``iou`` float64 (K,) and their
    ``index`` int64 (K,) in the perturbed split."""

    images: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    iou: np.ndarray
    index: np.ndarray


def worst_cases(
    model: keras.Model | str | os.PathLike,
    split: data.Split,
    count: int = 4,
    seed: int = 0,
    conditions: Mapping[str, Condition] = CONDITIONS,
) -> dict[str, WorstCases]:
    """Per condition (as in :func:`robustness_table`; missing ones left out), the ``count`` images with the
    lowest mean digit IoU of the plain prediction (images without digits last)."""
    return assess(model, split, count, seed, conditions).worst


class Assessment(NamedTuple):
    """What :func:`assess` found: the :func:`robustness_table` and the :func:`worst_cases` of each condition."""

    table: pd.DataFrame
    worst: dict[str, WorstCases]


def assess(
    model: keras.Model | str | os.PathLike,
    split: data.Split,
    count: int = 4,
    seed: int = 0,
    conditions: Mapping[str, Condition] = CONDITIONS,
) -> Assessment:
    """:func:`robustness_table` and :func:`worst_cases` at once, from one prediction of each perturbed split."""
    require("count", count, POSITIVE_INT)
    rows, found = {}, {}
    for name, condition in conditions.items():
        perturbed = condition.make(split, seed)
        if perturbed is None:
            rows[name] = {"images": 0, "note": condition.missing}
            continue
        plain, gated = evaluate.predict_both(model, perturbed.images)
        report = evaluate.report_from_predictions(name, perturbed.labels, plain, gated)
        worst = report["worst_digit"] or {"class": None, "iou": math.nan}
        rows[name] = {
            "images": len(perturbed),
            "mean_digit_iou": report["mean_digit_iou"],
            "worst_digit": worst["class"],
            "worst_digit_iou": worst["iou"],
            "pixel_accuracy": report["pixel_accuracy"],
            "gated_mean_digit_iou": report["ink_gated"]["mean_digit_iou"] if condition.gated else None,
            "note": "",
        }
        iou, _ = metrics.per_image_scores(perturbed.labels, plain)
        index = np.argsort(iou, kind="stable")[:count]
        found[name] = WorstCases(perturbed.images[index], perturbed.labels[index], plain[index], iou[index], index)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(_COLUMNS))
    table.index.name = "condition"
    return Assessment(table.astype(_COLUMNS), found)
