"""Where a segmentation goes wrong: each wrongly labelled pixel gets exactly one cause.

The causes, checked in this order (the first that applies wins):

1. ``misread digit``: the pixel belongs to a digit placement that is misread as a whole, i.e. more than half of
   its ink is labelled as one or more other digits (needs the generated :class:`~m2nist_seg.data.Layout`);
2. ``overlap``: two or more digits have ink on the pixel (also from the layout);
3. ``boundary``: the pixel lies on a class boundary of the truth (its 3×3 neighbourhood holds another class);
4. ``wrong digit``: a digit pixel predicted as another digit;
5. ``missed ink``: a digit pixel predicted as background;
6. ``spurious digit``: a background pixel predicted as a digit.

Misreads come first because a misread digit's wrong pixels include its edges: checked after ``boundary``, a
whole misread digit would be counted mostly as boundary errors.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from m2nist_seg import data
from m2nist_seg.core.errors import M2NISTError

CAUSES = ("misread digit", "overlap", "boundary", "wrong digit", "missed ink", "spurious digit")
MISREAD_SHARE = 0.5


def boundary_mask(labels: np.ndarray) -> np.ndarray:
    """Bool (N, H, W): pixels whose 3×3 neighbourhood (clipped at the border) holds more than one class."""
    labels = np.asarray(labels)
    padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)), mode="edge")
    height, width = labels.shape[1:]
    edge = np.zeros(labels.shape, dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            edge |= padded[:, dy : dy + height, dx : dx + width] != labels
    return edge


def overlap_mask(layout: data.Layout) -> np.ndarray:
    """Bool (N, 64, 84): pixels where two or more digits of a generated layout have ink."""
    digits, _ = data.mnist_digits()
    inked = np.zeros((len(layout.digit), data.HEIGHT, data.WIDTH), dtype=np.uint8)
    for slot in range(data.MAX_DIGITS):
        box, digit = data.slot_boxes(layout, slot)
        inked[box] += digits[digit] > 0
    return inked >= 2


def example_pixels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Three telling pixels of one label map (64, 84): the inside of a digit, a digit's edge, and background
    away from any digit. Returns (rows, cols), two int arrays (3,), in that order."""
    labels = np.asarray(labels)
    edge = boundary_mask(labels[None])[0]
    digit = labels != data.BACKGROUND
    candidates = (digit & ~edge, digit & edge, ~digit & ~edge)
    points = [np.argwhere(mask)[len(np.argwhere(mask)) // 2] for mask in candidates]
    rows, cols = np.transpose(points)
    return rows, cols


class Misreads(NamedTuple):
    """Digit placements read as another digit: ``mask`` bool (N, 64, 84) marks their own pixels;
    ``placements`` counts the placements with visible ink, ``misread`` the misread ones, and ``digits`` holds
    the indices into :func:`~m2nist_seg.data.mnist_digits` of the misread digits."""

    mask: np.ndarray
    placements: int
    misread: int
    digits: frozenset[int]


def misread_placements(truth: np.ndarray, predicted: np.ndarray, layout: data.Layout) -> Misreads:
    """Find the digit placements of a generated layout whose own pixels are mostly labelled as other digits.

    A placement's own pixels are those of its box that the truth labels with its class (the ink it shows);
    it is misread when more than half of them are predicted as another digit (not background).
    ``truth`` and ``predicted`` are label maps uint8 (N, 64, 84) of the images ``layout`` describes.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    classes = data.mnist_digits()[1]
    mask = np.zeros(truth.shape, dtype=bool)
    placements, misread, digits = 0, 0, set()
    for slot in range(data.MAX_DIGITS):
        box, slot_digits = data.slot_boxes(layout, slot)
        own = truth[box] == classes[slot_digits][:, None, None]
        guess = predicted[box]
        other_digit = own & (guess != truth[box]) & (guess != data.BACKGROUND)
        shown = own.sum(axis=(1, 2))
        is_misread = (shown > 0) & (other_digit.sum(axis=(1, 2)) > MISREAD_SHARE * shown)
        placements += int((shown > 0).sum())
        misread += int(is_misread.sum())
        digits.update(int(d) for d in slot_digits[is_misread])
        image, rows, cols = (index[is_misread] for index in box)
        mask[image, rows, cols] |= own[is_misread]
    return Misreads(mask=mask, placements=placements, misread=misread, digits=frozenset(digits))


def error_causes(truth: np.ndarray, predicted: np.ndarray, layout: data.Layout | None = None) -> np.ndarray:
    """Per-pixel cause codes int8 (N, H, W): -1 where the prediction is right, else an index into :data:`CAUSES`.

    Without a ``layout`` (data not generated here), ``misread digit`` and ``overlap`` cannot be told apart
    and are never assigned.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise M2NISTError(f"truth/predicted: found shapes {truth.shape} and {predicted.shape}, expected equal shapes")
    wrong = truth != predicted
    true_digit, pred_digit = truth != data.BACKGROUND, predicted != data.BACKGROUND
    nowhere = np.zeros_like(wrong)
    misread = misread_placements(truth, predicted, layout).mask if layout is not None else nowhere
    overlap = overlap_mask(layout) if layout is not None else nowhere
    rules = [
        misread,
        overlap,
        boundary_mask(truth),
        true_digit & pred_digit,
        true_digit & ~pred_digit,
        ~true_digit & pred_digit,
    ]
    causes = np.full(truth.shape, -1, dtype=np.int8)
    for code in reversed(range(len(CAUSES))):
        causes[wrong & rules[code]] = code
    return causes


def error_breakdown(truth: np.ndarray, predicted: np.ndarray, layout: data.Layout | None = None) -> pd.DataFrame:
    """A table of the wrongly labelled pixels by cause: columns ``pixels`` and ``share`` (of all errors)."""
    causes = error_causes(truth, predicted, layout)
    counts = np.bincount(causes[causes >= 0].ravel(), minlength=len(CAUSES))
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"pixels": counts, "share": counts / total}, index=pd.Index(CAUSES, name="cause"))
