"""Where a segmentation goes wrong: each wrongly labelled pixel gets exactly one cause.

The causes, checked in this order:

1. ``overlap``: two or more digits have ink on the pixel (known from a generated :class:`~m2nist_seg.data.Layout`);
2. ``boundary``: the pixel lies on a class boundary of the truth (its 3×3 neighbourhood holds another class);
3. ``wrong digit``: a digit pixel predicted as another digit;
4. ``missed ink``: a digit pixel predicted as background;
5. ``spurious digit``: a background pixel predicted as a digit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from m2nist_seg import data

CAUSES = ("overlap", "boundary", "wrong digit", "missed ink", "spurious digit")


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


def error_causes(truth: np.ndarray, predicted: np.ndarray, layout: data.Layout | None = None) -> np.ndarray:
    """Per-pixel cause codes int8 (N, H, W): -1 where the prediction is right, else an index into :data:`CAUSES`."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth/predicted: found shapes {truth.shape} and {predicted.shape}, expected equal shapes")
    wrong = truth != predicted
    true_digit, pred_digit = truth != data.BACKGROUND, predicted != data.BACKGROUND
    overlap = overlap_mask(layout) if layout is not None else np.zeros_like(wrong)
    rules = [
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
