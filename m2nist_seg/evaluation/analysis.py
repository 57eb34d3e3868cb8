"""Where a segmentation goes wrong: each wrongly labelled pixel gets exactly one cause.

The causes, checked in this order (the first that applies wins):

1. ``misread digit``: the pixel belongs to a digit that is misread as a whole, i.e. more than half of its own
   pixels are labelled as one or more other digits (:func:`is_misread`);
2. ``overlap``: two or more digits have ink on the pixel (needs the generated :class:`~m2nist_seg.data.Layout`);
3. ``boundary``: the pixel lies on a class boundary of the truth (its 3×3 neighbourhood holds another class);
4. ``wrong digit``: a digit pixel predicted as another digit;
5. ``missed ink``: a digit pixel predicted as background;
6. ``spurious digit``: a background pixel predicted as a digit.

Misreads come first because a misread digit's wrong pixels include its edges: checked after ``boundary``, a
whole misread digit would be counted mostly as boundary errors.

Where the digits are: with the generator's layout, each placement's own pixels are those of its 28×28 box that
the truth labels with its class (:func:`misread_placements`). Without one (the real Kaggle data, a drawing), each
digit is a connected component of one class's pixels in the truth, 8-connected (:func:`misread_components`):
MNIST strokes are thin and diagonal strokes touch only at corners, so 4-connectivity would break one digit into
fragments, each judged alone. Two touching digits of the same class count as one digit, and a digit whose own
strokes are broken as several.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage

from m2nist_seg import data
from m2nist_seg.core.errors import M2NISTError

CAUSES = ("misread digit", "overlap", "boundary", "wrong digit", "missed ink", "spurious digit")
MISREAD_SHARE = 0.5
# 8-connectivity: a digit's diagonal strokes, which touch only at corners, stay one digit.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


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
    """Digits read as another digit: ``mask`` bool (N, H, W) marks their own pixels; ``placements`` counts the
    digits with visible ink, ``misread`` the misread ones, and ``digits`` holds the indices into
    :func:`~m2nist_seg.data.mnist_digits` of the misread digits (empty when the digits were found without a
    layout, by :func:`misread_components`)."""

    mask: np.ndarray
    placements: int
    misread: int
    digits: frozenset[int]


def read_as_other_digit(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Bool, the shape of ``truth``: pixels predicted as a digit other than the true class (not background)."""
    return (predicted != truth) & (predicted != data.BACKGROUND)


def is_misread(own: np.ndarray, other_digit: np.ndarray) -> np.ndarray:
    """The misread rule: a digit is misread when more than :data:`MISREAD_SHARE` of its own pixels are read as
    other digits.

    ``own`` bool (..., H, W) marks one digit's pixels per leading index; ``other_digit`` bool, broadcastable to
    it, marks the pixels predicted as another digit (:func:`read_as_other_digit`). Returns bool (...), False
    for a digit with no pixels.
    """
    shown = own.sum(axis=(-2, -1))
    return (shown > 0) & ((own & other_digit).sum(axis=(-2, -1)) > MISREAD_SHARE * shown)


def misread_placements(truth: np.ndarray, predicted: np.ndarray, layout: data.Layout) -> Misreads:
    """Find the digit placements of a generated layout whose own pixels are mostly labelled as other digits.

    A placement's own pixels are those of its box that the truth labels with its class (the ink it shows);
    it is misread by :func:`is_misread`. ``truth`` and ``predicted`` are label maps uint8 (N, 64, 84) of the
    images ``layout`` describes.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    classes = data.mnist_digits()[1]
    other_digit = read_as_other_digit(truth, predicted)
    mask = np.zeros(truth.shape, dtype=bool)
    placements, misread, digits = 0, 0, set()
    for slot in range(data.MAX_DIGITS):
        box, slot_digits = data.slot_boxes(layout, slot)
        own = truth[box] == classes[slot_digits][:, None, None]
        misread_here = is_misread(own, other_digit[box])
        placements += int(own.any(axis=(1, 2)).sum())
        misread += int(misread_here.sum())
        digits.update(int(d) for d in slot_digits[misread_here])
        image, rows, cols = (index[misread_here] for index in box)
        mask[image, rows, cols] |= own[misread_here]
    return Misreads(mask=mask, placements=placements, misread=misread, digits=frozenset(digits))


def misread_components(truth: np.ndarray, predicted: np.ndarray) -> Misreads:
    """Find the digits of label maps without a layout whose own pixels are mostly labelled as other digits.

    Each digit is an 8-connected component of one digit class's pixels in one truth map; it is misread by
    :func:`is_misread`. ``truth`` and ``predicted`` are label maps (N, H, W); ``digits`` of the result is
    empty, since no MNIST digit indices are known.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    other_digit = read_as_other_digit(truth, predicted)
    mask = np.zeros(truth.shape, dtype=bool)
    placements, misread = 0, 0
    for image, labels in enumerate(truth):
        for digit_class in np.unique(labels[labels != data.BACKGROUND]):
            components, count = ndimage.label(labels == digit_class, structure=EIGHT_CONNECTED)
            ids = np.arange(1, count + 1)
            misread_ids = ids[is_misread(components == ids[:, None, None], other_digit[image])]
            placements += count
            misread += len(misread_ids)
            mask[image] |= np.isin(components, misread_ids)
    return Misreads(mask=mask, placements=placements, misread=misread, digits=frozenset())


def error_causes(truth: np.ndarray, predicted: np.ndarray, layout: data.Layout | None = None) -> np.ndarray:
    """Per-pixel cause codes int8 (N, H, W): -1 where the prediction is right, else an index into :data:`CAUSES`.

    With a ``layout``, the digits are its placements (:func:`misread_placements`). Without one (data not
    generated here), the digits are the 8-connected components of each digit class's pixels in each truth map
    (:func:`misread_components`), and ``overlap`` cannot be told and is never assigned.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise M2NISTError(f"truth/predicted: found shapes {truth.shape} and {predicted.shape}, expected equal shapes")
    wrong = truth != predicted
    true_digit, pred_digit = truth != data.BACKGROUND, predicted != data.BACKGROUND
    if layout is None:
        misread, overlap = misread_components(truth, predicted).mask, np.zeros_like(wrong)
    else:
        misread, overlap = misread_placements(truth, predicted, layout).mask, overlap_mask(layout)
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
