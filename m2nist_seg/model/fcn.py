"""The segmentation model: a custom CNN encoder feeding an FCN-8 (or FCN-16 / FCN-32) decoder.

The model takes raw pixel values 0–255, shape (N, H, W, 1), and returns per-pixel class probabilities
(softmax), shape (N, H, W, num_classes). Scaling, padding to a multiple of 32 and the crop back to (H, W)
happen inside the model, so it works for any input size.

Encoder (downsampling path): five blocks of ``3×3 conv → batch norm → ReLU`` (one or two per block) give
block1 and pool2 … pool5 at 1/2 … 1/32 of the padded size. Blocks 2–5 end in 2×2 max pooling; block 1 instead gives
its convolution a stride of 2, so that no layer works at full resolution: a full-resolution block (16 channels
at 64×96) took about a fifth of the inference time on a CPU, and the decoder reads only pool3 and deeper.

Decoder (upsampling path), after Long, Shelhamer & Darrell, "Fully Convolutional Networks" (2015):

- FCN-32: score pool5, upsample ×32;
- FCN-16: score pool5, upsample ×2, add the scored pool4, upsample ×16;
- FCN-8: as FCN-16 up to the fusion with pool4, upsample ×2, add the scored pool3, upsample ×8.

The score layers are linear 1×1 convolutions (no ReLU: scores may be negative) into ``decoder_width``
channels. The ×2 steps are transposed convolutions with 4×4 kernels, as in the paper. The last one maps
the scores to the classes with a kernel as large as its stride (8×8 for FCN-8): each 1/8 cell paints its
own 8×8 tile from its ``decoder_width`` scores, without the paper's overlapping 16×16 kernel, which cost
nearly three times as much on a CPU. A softmax ends the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
import pandas as pd
from keras import layers

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data import HEIGHT, NUM_CLASSES, WIDTH

Variant = Literal["fcn8", "fcn16", "fcn32"]
VARIANTS: tuple[str, ...] = ("fcn8", "fcn16", "fcn32")
DEFAULT_WIDTHS = (16, 32, 64, 128, 128)
DEFAULT_CONVS = (1, 1, 2, 2, 2)
DEFAULT_DECODER_WIDTH = 64
STRIDE = 32
# Batch-norm statistics settle within ~30 steps (Keras default 0.99: ~300), which short CPU runs need.
BN_MOMENTUM = 0.9
SKIPS = {"fcn32": (), "fcn16": (4,), "fcn8": (4, 3)}


def padding_for(height: int, width: int, multiple: int = STRIDE) -> tuple[tuple[int, int], tuple[int, int]]:
    """The ((top, bottom), (left, right)) zero padding that brings (height, width) to a multiple of ``multiple``.

    The padding is split as evenly as possible, the odd pixel going to the bottom / right. The model crops
    exactly the same amounts off its output, so predictions stay aligned with the input.
    """
    pad_h, pad_w = -height % multiple, -width % multiple
    return (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)


@dataclass(frozen=True)
class Stage:
    """One stage of the network: its name, feature-map height, width and channels."""

    name: str
    height: int
    width: int
    channels: int


def feature_shapes(
    input_shape: tuple[int, int] = (HEIGHT, WIDTH),
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    variant: Variant = "fcn8",
    num_classes: int = NUM_CLASSES,
    decoder_width: int = DEFAULT_DECODER_WIDTH,
) -> list[Stage]:
    """The feature-map shape at each stage, from the input to the output, without building a model.

    The encoder stages are ``block1`` (its stride-2 convolution halves the size: there is no pooling layer) and
    ``pool2`` … ``pool5``; the decoder's are ``score_pool5``, one ``fuse_pool{k}`` per skip connection, the last
    upsampling and the cropped ``output``. A pure function of the arguments; a notebook uses it to draw the
    architecture (:func:`m2nist_seg.viz.plots.plot_fcn_wiring`).
    """
    _check_variant(variant)
    height, width = input_shape
    (top, bottom), (left, right) = padding_for(height, width)
    ph, pw = height + top + bottom, width + left + right
    stages = [Stage("input", height, width, 1), Stage("padded", ph, pw, 1)]
    for block, channels in enumerate(widths, start=1):
        stages.append(Stage("block1" if block == 1 else f"pool{block}", ph >> block, pw >> block, channels))
    scale = STRIDE
    stages.append(Stage("score_pool5", ph // scale, pw // scale, decoder_width))
    for skip in SKIPS[variant]:
        scale //= 2
        stages.append(Stage(f"fuse_pool{skip}", ph // scale, pw // scale, decoder_width))
    stages.append(Stage(f"upsample_x{scale}", ph, pw, num_classes))
    stages.append(Stage("output", height, width, num_classes))
    return stages


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise M2NISTError(f"variant: found {variant!r}, expected one of {', '.join(map(repr, VARIANTS))}")


def _conv_bn_relu(x, block: int, conv: int, width: int, strides: int, batch_norm: bool):
    x = layers.Conv2D(
        width, 3, strides=strides, padding="same", use_bias=not batch_norm, name=f"encoder_block{block}_conv{conv}"
    )(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"encoder_block{block}_bn{conv}")(x)
    return layers.ReLU(name=f"encoder_block{block}_relu{conv}")(x)


def _encoder_block(x, block: int, width: int, convs: int, dropout: float, batch_norm: bool):
    """Block 1 halves the size with a stride-2 first convolution; blocks 2–5 end in 2×2 max pooling."""
    stem = block == 1
    for conv in range(1, convs + 1):
        x = _conv_bn_relu(x, block, conv, width, strides=2 if stem and conv == 1 else 1, batch_norm=batch_norm)
    if dropout and block >= 4:
        x = layers.SpatialDropout2D(dropout, name=f"encoder_block{block}_dropout")(x)
    return x if stem else layers.MaxPooling2D(2, name=f"encoder_block{block}_pool")(x)


def _upsample(x, factor: int, channels: int, name: str, kernel: int):
    return layers.Conv2DTranspose(channels, kernel, strides=factor, padding="same", name=name)(x)


def encoder(
    image,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    convs_per_block: tuple[int, ...] = DEFAULT_CONVS,
    dropout: float = 0.0,
    batch_norm: bool = True,
) -> dict[int, keras.KerasTensor]:
    """The encoder on a Keras tensor of raw images (N, H, W, 1), values 0–255: scale by 1/255, pad to a multiple
    of 32, then the five blocks. Returns ``{block: output}``: block1 and pool2 … pool5 at 1/2 … 1/32 of the
    padded size (for 64×84 inputs, pool3 (N, 8, 12, 64), pool4 (N, 4, 6, 128) and pool5 (N, 2, 3, 128))."""
    x = layers.Rescaling(1.0 / 255.0, name="scale")(image)
    x = layers.ZeroPadding2D(padding_for(image.shape[1], image.shape[2]), name="pad")(x)
    pools = {}
    for block, (filters, convs) in enumerate(zip(widths, convs_per_block), start=1):
        x = _encoder_block(x, block, filters, convs, dropout, batch_norm)
        pools[block] = x
    return pools


def decoder(
    pools: Mapping[int, keras.KerasTensor],
    variant: Variant = "fcn8",
    num_classes: int = NUM_CLASSES,
    decoder_width: int = DEFAULT_DECODER_WIDTH,
    padding: tuple[tuple[int, int], tuple[int, int]] = padding_for(HEIGHT, WIDTH),
) -> keras.KerasTensor:
    """The FCN-32/16/8 decoder on the encoder's ``pools`` (:func:`encoder`; FCN-8 reads 3, 4 and 5): linear 1×1
    score layers, ×2 transposed convolutions each followed by the fusion with the next scored skip, the last
    upsampling to the classes, and the crop of the encoder's ``padding``. Returns the class scores before the
    output activation (N, H, W, num_classes)."""
    x = layers.Conv2D(decoder_width, 1, name="decoder_score_pool5")(pools[5])
    factor = STRIDE
    for skip in SKIPS[variant]:
        x = _upsample(x, 2, decoder_width, name=f"decoder_upsample_pool{skip + 1}", kernel=4)
        score = layers.Conv2D(decoder_width, 1, name=f"decoder_score_pool{skip}")(pools[skip])
        x = layers.Add(name=f"decoder_fuse_pool{skip}")([x, score])
        factor //= 2
    x = _upsample(x, factor, num_classes, name=f"decoder_upsample_x{factor}", kernel=factor)
    return layers.Cropping2D(padding, name="crop")(x)


def build_fcn(
    variant: Variant = "fcn8",
    *,
    num_classes: int = NUM_CLASSES,
    input_shape: tuple[int, int] = (HEIGHT, WIDTH),
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    convs_per_block: tuple[int, ...] = DEFAULT_CONVS,
    decoder_width: int = DEFAULT_DECODER_WIDTH,
    dropout: float = 0.0,
    batch_norm: bool = True,
    output_activation: Literal["softmax", "sigmoid"] = "softmax",
) -> keras.Model:
    """Build the encoder with an FCN-8, FCN-16 or FCN-32 decoder.

    Input: float (N, H, W, 1) raw pixel values 0–255. Output: float32 softmax probabilities
    (N, H, W, num_classes); ``output_activation="sigmoid"`` gives the original tutorial's eleven independent
    sigmoids instead (for the comparison in the notebooks, not for use). ``widths`` and ``convs_per_block``
    give each of the five encoder blocks' filters and convolutions; ``dropout`` is spatial dropout after
    blocks 4 and 5. ``batch_norm=False`` gives the encoder convolutions biases instead of batch norm: the
    shape of :func:`fold_batch_norm`'s inference copy.
    """
    _check_variant(variant)
    if len(widths) != 5 or len(convs_per_block) != 5:
        raise M2NISTError(
            f"widths/convs_per_block: found {len(widths)} and {len(convs_per_block)} entries, expected 5 each"
        )
    if not 0 <= dropout < 1:
        raise M2NISTError(f"dropout: found {dropout!r}, expected a rate in [0, 1)")
    if output_activation not in ("softmax", "sigmoid"):
        raise M2NISTError(f"output_activation: found {output_activation!r}, expected 'softmax' or 'sigmoid'")
    height, width = input_shape
    inputs = keras.Input(shape=(height, width, 1), name="image")
    pools = encoder(inputs, widths, convs_per_block, dropout, batch_norm)
    x = decoder(pools, variant, num_classes, decoder_width, padding_for(height, width))
    if output_activation == "softmax":
        outputs = layers.Softmax(dtype="float32", name="probabilities")(x)
    else:
        outputs = layers.Activation("sigmoid", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=variant)


def build_fcn8(**kwargs) -> keras.Model:
    """The default model: :func:`build_fcn` with the FCN-8 decoder. Takes the same keyword arguments."""
    return build_fcn("fcn8", **kwargs)


def fold_batch_norm(model: keras.Model, into: keras.Model | None = None) -> keras.Model:
    """An inference copy of a :func:`build_fcn` model, with each batch norm folded into the convolution before it.

    In inference, conv → batch norm computes γ·(W∗x − μ)/√(σ² + ε) + β: one convolution with kernel W·s and
    bias β − μ·s, where s = γ/√(σ² + ε). The copy gives the same outputs up to float rounding, with two fewer
    passes over every encoder feature map; :func:`m2nist_seg.evaluation.evaluate.predict` runs it. ``into``, an earlier
    copy of the same model, is refreshed with the current weights instead of building a new one.
    """
    if into is None:
        convs = [layer for layer in model.layers if layer.name.startswith("encoder_block") and "_conv" in layer.name]
        blocks = [[conv for conv in convs if conv.name.startswith(f"encoder_block{block}_")] for block in range(1, 6)]
        if model.name not in VARIANTS or not all(blocks) or "decoder_score_pool5" not in [c.name for c in model.layers]:
            raise M2NISTError(f"model {model.name!r}: expected a model built by build_fcn")
        into = build_fcn(
            model.name,
            num_classes=model.output_shape[-1],
            input_shape=tuple(model.input_shape[1:3]),
            widths=tuple(convs[0].filters for convs in blocks),
            convs_per_block=tuple(len(convs) for convs in blocks),
            decoder_width=model.get_layer("decoder_score_pool5").filters,
            dropout=next((layer.rate for layer in model.layers if layer.name.endswith("_dropout")), 0.0),
            batch_norm=False,
        )
        unfolded = {layer.name for layer in model.layers if not isinstance(layer, layers.BatchNormalization)}
        if unfolded != {layer.name for layer in into.layers}:
            raise M2NISTError(f"model {model.name!r}: its layers differ from those build_fcn builds")
    _copy_folded_weights(model, into)
    return into


def _copy_folded_weights(model: keras.Model, folded: keras.Model) -> None:
    for layer in folded.layers:
        if not layer.weights:
            continue
        source = model.get_layer(layer.name)
        if layer.name.startswith("encoder_"):
            norm = model.get_layer(layer.name.replace("_conv", "_bn"))
            gamma, beta, mean, variance = (np.asarray(w) for w in norm.get_weights())
            scale = gamma / np.sqrt(variance + norm.epsilon)
            layer.set_weights([source.get_weights()[0] * scale, beta - mean * scale])
        else:
            layer.set_weights(source.get_weights())


def count_params(model: keras.Model) -> int:
    """The number of weights in ``model``, trainable or not."""
    return int(sum(math.prod(w.shape) for w in model.weights))


def _stage_of(layer: layers.Layer) -> str | None:
    """The :func:`stage_table` row of one of a :func:`build_fcn` model's layers; ``None`` for its input steps."""
    name = layer.name
    if name.startswith("encoder_block"):
        return name.removeprefix("encoder_").split("_")[0]
    if name.startswith("decoder_"):
        return name.removeprefix("decoder_")
    if name == "probabilities":
        return "softmax" if isinstance(layer, layers.Softmax) else "sigmoid"
    if name == "crop" or layer.weights:
        return name
    return None


def stage_table(model: keras.Model) -> pd.DataFrame:
    """A compact summary of a :func:`build_fcn` model: one row per stage instead of one per layer.

    Rows: ``block1`` … ``block5`` of the encoder, the decoder's score, upsample and fuse steps in the order
    they run, ``crop`` and the output activation (``softmax``), then ``total``. Columns: ``output shape``
    (a string such as "8×12×64") and ``parameters`` (summed over the stage's layers, trainable or not; the
    total equals :func:`count_params`). The scaling and padding at the input have no parameters and no row.
    """
    groups: dict[str, list[layers.Layer]] = {}
    for layer in model.layers:
        stage = _stage_of(layer)
        if stage is not None:
            groups.setdefault(stage, []).append(layer)
    rows = {
        stage: {
            "output shape": "×".join(str(size) for size in group[-1].output.shape[1:]),
            "parameters": sum(math.prod(w.shape) for layer in group for w in layer.weights),
        }
        for stage, group in groups.items()
    }
    rows["total"] = {"output shape": "", "parameters": count_params(model)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("stage")
