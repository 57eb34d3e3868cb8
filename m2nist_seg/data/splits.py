"""Seeded train / validation / test splits of M2NIST, from the generator or from Kaggle's files."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.arrays import default_cache_dir, labels_to_masks, load_arrays, masks_to_labels
from m2nist_seg.data.download import M2NIST_SHA256, M2NIST_URL, download
from m2nist_seg.data.generator import GENERATOR_VERSION, Layout, Pool, render, sample_layout

log = logging.getLogger(__name__)

Source = Literal["generated", "kaggle", "download"]
SOURCES = ("generated", "kaggle", "download")
SPLIT_NAMES = ("train", "val", "test")
VAL_FRACTION, TEST_FRACTION = 0.1, 0.2


class Split(NamedTuple):
    """One split of M2NIST: ``images`` uint8 (N, 64, 84) and ``labels`` uint8 (N, 64, 84)."""

    images: np.ndarray
    labels: np.ndarray

    @property
    def masks(self) -> np.ndarray:
        """One-hot masks, uint8 (N, 64, 84, 11)."""
        return labels_to_masks(self.labels)

    def __len__(self) -> int:
        return len(self.images)


class Layouts(NamedTuple):
    """The digit placements behind each split of generated data (see :class:`~m2nist_seg.data.generator.Layout`)."""

    train: Layout
    val: Layout
    test: Layout


class Splits(NamedTuple):
    """Seeded train / validation / test splits, the name of their source, and (for generated data) the
    layouts that drew them: ``layouts.test.digit[i]`` names the MNIST digits of test image ``i``."""

    train: Split
    val: Split
    test: Split
    source: str
    layouts: Layouts | None = None


def split_seeds(seed: int) -> dict[Pool, int]:
    """The generator seed of each split of ``load("generated", seed=seed)``."""
    return {"train": seed, "val": seed + 2, "test": seed + 1}


def generated_split(
    n: int, seed: int = 0, pool: Pool = "train", cache_dir: str | os.PathLike | None = None
) -> tuple[Split, Layout]:
    """``n`` generated images of one digit pool and their layout; the images are cached on disk under a key
    of the parameters (written atomically), the layout is drawn again (it is cheap)."""
    layout = sample_layout(n, seed=seed, pool=pool)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"generated-v{GENERATOR_VERSION}-{pool}-n{n}-seed{seed}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                return Split(cached["images"], cached["labels"]), layout
        except (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile):
            log.warning("cache file %s is unreadable; generating again", path.name)
    images, labels = render(layout)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels)
    return Split(images, labels), layout


def _split_indices(n: int, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = (round(f * n) for f in fractions)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def split_sizes(n: int, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION) -> dict[str, int]:
    """Images per split for ``n`` images in all."""
    n_val, n_test = round(val_fraction * n), round(test_fraction * n)
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def load(
    source: Source = "generated",
    *,
    directory: str | os.PathLike | None = None,
    n: int = 5000,
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    cache_dir: str | os.PathLike | None = None,
    url: str = M2NIST_URL,
    sha256: str | None = M2NIST_SHA256,
) -> Splits:
    """Seeded train / validation / test splits of M2NIST as label maps.

    - ``"generated"`` (default): ``n`` images like Kaggle's 5,000. Each split draws only its own digit pool
      (train, val and test hold disjoint MNIST digits), so validation scores, like test scores, measure
      handwriting the model never saw. Cached on disk; ``Splits.layouts`` holds the placements.
    - ``"kaggle"``: Kaggle's files in ``directory``, split at random with ``seed``.
    - ``"download"``: the public zip at ``url``, cached in ``cache_dir`` (checked against ``sha256`` when
      given), split likewise.
    """
    if source not in SOURCES:
        raise M2NISTError(f"source: found {source!r}, expected one of {', '.join(map(repr, SOURCES))}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise M2NISTError(f"n: found {n!r}, expected a positive integer")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise M2NISTError(f"{name}: found {value!r}, expected a fraction in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise M2NISTError("val_fraction + test_fraction: found ≥ 1, expected room left for a training split")
    if source == "generated":
        sizes, seeds = split_sizes(n, val_fraction, test_fraction), split_seeds(seed)
        drawn = {name: generated_split(sizes[name], seeds[name], name, cache_dir) for name in SPLIT_NAMES}
        splits = Splits(
            *(drawn[name][0] for name in SPLIT_NAMES), source, Layouts(*(drawn[name][1] for name in SPLIT_NAMES))
        )
    else:
        if source == "kaggle":
            if directory is None:
                raise M2NISTError("directory: found None, expected the folder holding Kaggle's .npy files")
            images, masks = load_arrays(directory)
        else:
            images, masks = download(cache_dir, url=url, sha256=sha256)
        labels = masks_to_labels(masks)
        train, val, test = (
            Split(images[i], labels[i]) for i in _split_indices(len(images), (val_fraction, test_fraction), seed)
        )
        splits = Splits(train, val, test, source)
    log.info(
        "M2NIST from source %r: %d train, %d validation, %d test images",
        source,
        len(splits.train),
        len(splits.val),
        len(splits.test),
    )
    return splits
