"""The model layer: the FCN architecture and the losses that train it.

- :mod:`~m2nist_seg.model.fcn`: the CNN encoder with its FCN-8/16/32 decoder, batch-norm folding, summaries;
  its public names are re-exported here, so ``from m2nist_seg import model as fcn`` reads ``fcn.build_fcn``;
- :mod:`~m2nist_seg.model.losses`: soft Dice, weighted cross-entropy and their sum, as Keras losses.

It imports :mod:`m2nist_seg.core` and :mod:`m2nist_seg.data` only.
"""

from m2nist_seg.model.fcn import (
    BN_MOMENTUM,
    DEFAULT_CONVS,
    DEFAULT_DECODER_WIDTH,
    DEFAULT_WIDTHS,
    SKIPS,
    STRIDE,
    VARIANTS,
    Stage,
    Variant,
    build_fcn,
    build_fcn8,
    count_params,
    decoder,
    encoder,
    feature_shapes,
    fold_batch_norm,
    padding_for,
    stage_table,
)

__all__ = [
    "BN_MOMENTUM",
    "DEFAULT_CONVS",
    "DEFAULT_DECODER_WIDTH",
    "DEFAULT_WIDTHS",
    "SKIPS",
    "STRIDE",
    "VARIANTS",
    "Stage",
    "Variant",
    "build_fcn",
    "build_fcn8",
    "count_params",
    "decoder",
    "encoder",
    "feature_shapes",
    "fold_batch_norm",
    "padding_for",
    "stage_table",
]
