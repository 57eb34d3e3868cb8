"""Pen strokes as the explorer's drawing board renders them, and the stroke skeletons of handwritten digits.

- :func:`pen_ink`: the board's round pen with a soft edge: full ink up to ``width / 2 - 0.75`` pixels from the
  stroke, then a linear fade over :data:`PEN_EDGE` pixels, like the anti-aliased edges of MNIST strokes;
- :func:`distance_to_polyline` and :func:`distance_to_segments`: each pixel centre's distance to a stroke;
- :func:`thin`: Zhang–Suen thinning of binary shapes to one-pixel-wide skeletons;
- :func:`skeleton_segments` and :func:`skeleton_distance`: a skeleton read as the pen strokes that join its
  8-neighbouring pixels, so that :func:`pen_ink` redraws a digit the way a learner's mouse strokes are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from m2nist_seg.data.shapes import IMAGE_SHAPE

PEN_WIDTH = 3.0
PEN_EDGE = 1.5
# Offsets (row, column) to the neighbours P2…P9 of Zhang & Suen (1984): north, then clockwise.
_NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def pen_ink(distance: np.ndarray, width: float = PEN_WIDTH) -> np.ndarray:
    """Ink float64 of ``distance``'s shape, whole values 0–255, of a pen ``width`` pixels wide at pixels
    ``distance`` pixels from the stroke: 255 up to ``width / 2 - PEN_EDGE / 2``, 0 from ``width / 2 + PEN_EDGE / 2``,
    a linear fade between (128 at ``width / 2``)."""
    return np.round(255 * np.clip((width / 2 - distance) / PEN_EDGE + 0.5, 0, 1))


def pen_reach(width: float = PEN_WIDTH) -> int:
    """Whole pixels from a stroke beyond which a pen ``width`` wide leaves no ink."""
    return math.ceil(width / 2 + PEN_EDGE / 2)


def distance_to_segments(starts: np.ndarray, ends: np.ndarray, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """float64 ``shape``: each pixel centre's distance to the nearest of K segments ``starts[k]`` → ``ends[k]``,
    (K, 2) (row, column) points each, K ≥ 1; a segment whose start is its end is a dot."""
    start, end = (np.asarray(points, dtype=np.float64).reshape(-1, 2) for points in (starts, ends))
    along = end - start
    pixels = np.stack(np.indices(shape), axis=-1)[:, :, None, :].astype(np.float64)
    t = np.clip(((pixels - start) * along).sum(-1) / np.maximum((along**2).sum(-1), 1e-12), 0, 1)
    return np.linalg.norm(pixels - (start + t[..., None] * along), axis=-1).min(axis=-1)


def distance_to_polyline(points: Sequence[tuple[float, float]], shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """float64 ``shape``: each pixel centre's distance to the polyline through ``points`` (K, 2), K ≥ 1."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return distance_to_segments(*((points, points) if len(points) == 1 else (points[:-1], points[1:])), shape)


def _neighbours(shapes: np.ndarray) -> np.ndarray:
    """uint8 (8, ..., H, W): the neighbours P2…P9 of every pixel of bool ``shapes`` (..., H, W), 0 off the edge."""
    padded = np.pad(shapes, [(0, 0)] * (shapes.ndim - 2) + [(1, 1), (1, 1)]).astype(np.uint8)
    height, width = shapes.shape[-2:]
    return np.stack([padded[..., 1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width] for dr, dc in _NEIGHBOURS])


def thin(shapes: np.ndarray) -> np.ndarray:
    """Zhang–Suen thinning (Zhang & Suen, "A fast parallel algorithm for thinning digital patterns", 1984):
    bool ``shapes`` (..., H, W) → bool skeletons of the same shape, one pixel wide and 8-connected like the shapes.

    Each pass runs two sub-iterations that delete, all at once, the shape pixels P1 with 2–6 shape neighbours,
    exactly one 0→1 transition round P2…P9, and (first sub-iteration) P2·P4·P6 = P4·P6·P8 = 0 (south-east
    boundary) or (second) P2·P4·P8 = P2·P6·P8 = 0 (north-west boundary); passes repeat until nothing changes.
    A one-pixel-wide line is left as it is.
    """
    skeleton = np.asarray(shapes, dtype=bool).copy()
    changed = True
    while changed:
        changed = False
        for first in (True, False):
            p2, p3, p4, p5, p6, p7, p8, p9 = ring = _neighbours(skeleton)
            count = ring.sum(axis=0)
            transitions = ((ring == 0) & (np.roll(ring, -1, axis=0) == 1)).sum(axis=0)
            side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0) if first else (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            delete = skeleton & (count >= 2) & (count <= 6) & (transitions == 1) & side
            skeleton &= ~delete
            changed |= bool(delete.any())
    return skeleton


def skeleton_segments(skeleton: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The strokes of a bool skeleton (H, W): a segment between every two 8-neighbouring skeleton pixels, and a
    dot at each pixel with no neighbour. Returns ``(starts, ends)``, float64 (K, 2) (row, column) each."""
    skeleton = np.asarray(skeleton, dtype=bool)
    padded, (height, width) = np.pad(skeleton, 1), skeleton.shape
    starts, ends = [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbouring pair once
        pairs = np.argwhere(skeleton & padded[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width])
        starts.append(pairs)
        ends.append(pairs + (dr, dc))
    alone = np.argwhere(skeleton & (_neighbours(skeleton).sum(axis=0) == 0))
    return np.concatenate([*starts, alone]).astype(np.float64), np.concatenate([*ends, alone]).astype(np.float64)


def skeleton_distance(skeleton: np.ndarray, reach: int) -> np.ndarray:
    """float64 (H, W): each pixel centre's distance to the strokes of bool ``skeleton`` (H, W)
    (:func:`skeleton_segments`), computed within ``reach`` pixels of the skeleton's bounding box and ``inf``
    beyond it and everywhere when the skeleton is empty."""
    distance = np.full(skeleton.shape, np.inf)
    pixels = np.argwhere(skeleton)
    if not len(pixels):
        return distance
    top = np.maximum(pixels.min(axis=0) - reach, 0)
    bottom = np.minimum(pixels.max(axis=0) + reach + 1, skeleton.shape)
    starts, ends = skeleton_segments(skeleton)
    box = tuple(bottom - top)
    distance[top[0] : bottom[0], top[1] : bottom[1]] = distance_to_segments(starts - top, ends - top, box)
    return distance
