"""M2NIST data: Kaggle's files, the public zip, or the offline generator; splits and the tf.data pipeline.

- :mod:`~m2nist_seg.data.shapes`: the image size and the classes;
- :mod:`~m2nist_seg.data.validation`: the validators every layer shares (images, label maps, batch sizes);
- :mod:`~m2nist_seg.data.arrays`: the Kaggle layout (images uint8 (N, 64, 84), one-hot masks uint8
  (N, 64, 84, 11), label maps uint8 (N, 64, 84) with values 0–10), conversions, validation, ``.npy`` files;
- :mod:`~m2nist_seg.data.download`: the public zip, verified and cached;
- :mod:`~m2nist_seg.data.generator`: M2NIST images drawn from real MNIST digits, offline;
- :mod:`~m2nist_seg.data.strokes`: the drawing board's soft-edged pen and the stroke skeletons of digits;
- :mod:`~m2nist_seg.data.splits`: :func:`load`, the seeded train / validation / test splits;
- :mod:`~m2nist_seg.data.pipeline`: :func:`make_dataset`, batches for Keras.

Training works on label maps (11× smaller than one-hot masks); :func:`labels_to_masks` and
:func:`masks_to_labels` convert between the two.
"""

from m2nist_seg.data.arrays import (
    IMAGES_FILE,
    MASKS_FILE,
    Statistics,
    default_cache_dir,
    labels_to_masks,
    load_arrays,
    masks_to_labels,
    read_npy,
    statistics,
    validate_arrays,
)
from m2nist_seg.data.download import M2NIST_SHA256, M2NIST_URL, download, sha256_of
from m2nist_seg.data.generator import (
    COLUMN_JITTER,
    DIGIT_SIZE,
    GENERATOR_VERSION,
    MAX_DIGITS,
    POOL_SIZES,
    POOLS,
    ROW_OFFSETS,
    Layout,
    Pool,
    digit_pool,
    distort_digits,
    elastic_displacement,
    generate,
    generate_labels,
    mnist_digits,
    render,
    sample_layout,
    slot_boxes,
)
from m2nist_seg.data.pipeline import make_dataset, to_model_inputs
from m2nist_seg.data.shapes import BACKGROUND, CLASS_NAMES, HEIGHT, IMAGE_SHAPE, NUM_CLASSES, NUM_DIGITS, WIDTH
from m2nist_seg.data.splits import (
    SOURCES,
    Layouts,
    Source,
    Split,
    Splits,
    generated_split,
    load,
    split_seeds,
    split_sizes,
)
from m2nist_seg.data.validation import check_batch_size, check_images, check_labels, to_uint8_images

__all__ = [
    "BACKGROUND",
    "CLASS_NAMES",
    "COLUMN_JITTER",
    "DIGIT_SIZE",
    "GENERATOR_VERSION",
    "HEIGHT",
    "IMAGES_FILE",
    "IMAGE_SHAPE",
    "M2NIST_SHA256",
    "M2NIST_URL",
    "MASKS_FILE",
    "MAX_DIGITS",
    "NUM_CLASSES",
    "NUM_DIGITS",
    "POOLS",
    "POOL_SIZES",
    "ROW_OFFSETS",
    "SOURCES",
    "WIDTH",
    "Layout",
    "Layouts",
    "Pool",
    "Source",
    "Split",
    "Splits",
    "Statistics",
    "check_batch_size",
    "check_images",
    "check_labels",
    "default_cache_dir",
    "digit_pool",
    "distort_digits",
    "download",
    "elastic_displacement",
    "generate",
    "generate_labels",
    "generated_split",
    "labels_to_masks",
    "load",
    "load_arrays",
    "make_dataset",
    "mnist_digits",
    "masks_to_labels",
    "read_npy",
    "render",
    "sample_layout",
    "sha256_of",
    "slot_boxes",
    "split_seeds",
    "split_sizes",
    "statistics",
    "to_model_inputs",
    "to_uint8_images",
    "validate_arrays",
]
