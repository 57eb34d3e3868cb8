"""Export a segmentation model to ONNX and run it with ONNX Runtime, in float32 or int8.

The exported graph takes float32 images (N, 64, 84), raw pixel values 0–255, and has two outputs, uint8 label
maps (N, 64, 84) each: ``labels``, the argmax of the class scores as :func:`m2nist_seg.evaluation.evaluate.predict`
gives it, and ``ink_gated``, ink-free pixels background and ink pixels their most likely digit. There is no
softmax (argmax needs no exp). The graph is written layer by layer from the Keras model, channels first, so
that no transposes surround the convolutions; batch norm is folded into the convolutions, the input's 1/255
scaling into the first convolution's weights and the zero padding into its pads.

Each transposed convolution becomes a convolution to stride²·C channels and a depth-to-space step that lays
them out as stride × stride pixels (a "sub-pixel" convolution: the same sums, in a form that int8 kernels
cover; ONNX Runtime has no int8 transposed convolution). The last ×8 upsampling, whose kernel equals its
stride, becomes a 1×1 convolution, which each head computes as one matrix product of the features channels
last: the argmax then runs over each tile pixel's contiguous class scores, and only the labels are laid out
as pixels, so that the full-size score map is never built. The ink-gated head's product leaves out the
background class. :class:`OnnxPredictor` runs each head as its own graph, so that neither pays for the other.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import layers

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.data.validation import check_images
from m2nist_seg.evaluation import metrics
from m2nist_seg.evaluation.evaluate import load_model, predict
from m2nist_seg.evaluation.onnx_runtime import HEADS, INPUT, OnnxPredictor, cpu_session, onnx_module

if TYPE_CHECKING:
    import onnx

OPSET = 17
IR_VERSION = 8  # opset 17's IR version; ONNX Runtime 1.30 reads IR versions up to 13
SHIPPED_ONNX = SHIPPED_MODEL.with_suffix(".onnx")
SHIPPED_INT8 = SHIPPED_MODEL.with_suffix(".int8.onnx")
CALIBRATION_IMAGES = 200
MIN_EQUAL_PIXELS = 0.999
MAX_FLOAT_IOU_CHANGE = 0.001
MAX_INT8_IOU_DROP = 0.005
_Box = tuple[int, int, int, int]  # top, left, bottom, right
_NONE: _Box = (0, 0, 0, 0)


@dataclass(frozen=True)
class _Tiles:
    """A convolution whose outputs are tiles² groups of C channels, each one pixel of a tiles × tiles tile
    (depth-to-space's order), over a (height, width) grid; kept unwritten until a consumer says how."""

    source: str
    weight: np.ndarray = field(repr=False)  # (tiles²·C, in, kh, kw)
    bias: np.ndarray = field(repr=False)  # (tiles²·C,)
    pads: list[int]
    name: str
    tiles: int
    grid: tuple[int, int]

    def channels(self, keep: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Weight and bias of the classes ``keep`` only, in every tile pixel."""
        t2 = self.tiles**2
        weight = self.weight.reshape(t2, -1, *self.weight.shape[1:])[:, keep]
        bias = self.bias.reshape(t2, -1)[:, keep]
        return weight.reshape(-1, *self.weight.shape[1:]), bias.reshape(-1)


@dataclass(frozen=True)
class _Value:
    """A channels-first tensor of the graph being written, with steps still owed to it: ``scale`` and ``pad``
    zeros before it (a convolution takes them into its weights and pads), or the unwritten ``tiles``
    convolution that it is, and ``crop`` after that."""

    name: str = ""
    scale: float = 1.0
    pad: _Box = _NONE
    tiles: _Tiles | None = None
    crop: _Box = _NONE


class _Graph:
    """Nodes and weights of the graph being written; each node has one output, named after the node."""

    def __init__(self) -> None:
        self.onnx = onnx_module("onnx")
        self.nodes: list = []
        self.weights: list = []

    def const(self, name: str, value) -> str:
        self.weights.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attributes) -> str:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name

    def conv(self, source: str, weight: np.ndarray, bias: np.ndarray, pads: list[int], name: str, **attrs) -> str:
        inputs = [source, self.const(f"{name}_w", weight.astype(np.float32)), self.const(f"{name}_b", bias)]
        return self.op("Conv", inputs, name, kernel_shape=list(weight.shape[2:]), pads=pads, **attrs)

    def slice(self, name: str, starts: list[int], ends: list[int], axes: list[int], out: str) -> str:
        consts = [
            self.const(f"{out}_{k}", np.array(v, np.int64))
            for k, v in zip(("from", "to", "axes"), (starts, ends, axes))
        ]
        return self.op("Slice", [name, *consts], out)

    def crop(self, name: str, crop: _Box, axes: list[int], out: str) -> str:
        """``name`` less ``crop`` (top, left, bottom, right) pixels on ``axes`` (height, width)."""
        if not any(crop):
            return self.op("Identity", [name], out)
        top, left, bottom, right = crop
        end = np.iinfo(np.int64).max
        return self.slice(name, [top, left], [-bottom or end, -right or end], axes, out)

    def plain(self, value: _Value) -> str:
        """The name of ``value`` with every owed step applied."""
        name = value.name
        if value.tiles is not None:
            tiles = value.tiles
            conv = self.conv(tiles.source, tiles.weight, tiles.bias, tiles.pads, tiles.name)
            name = self.op("DepthToSpace", [conv], f"{tiles.name}_tiled", blocksize=tiles.tiles, mode="DCR")
        if value.scale != 1.0:
            name = self.op("Mul", [name, self.const(f"{name}_factor", np.float32(value.scale))], f"{name}_scaled")
        if any(value.pad):
            top, left, bottom, right = value.pad
            pads = self.const(f"{name}_pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
            name = self.op("Pad", [name, pads], f"{name}_padded")
        return self.crop(name, value.crop, [2, 3], f"{name}_cropped") if any(value.crop) else name


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis of ``size`` pixels: (before, after), the odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _activation(graph: _Graph, layer: layers.Layer, name: str) -> str:
    activation = layer.activation.__name__
    if activation not in ("linear", "relu"):
        raise M2NISTError(f"layer {layer.name!r}: found activation {activation!r}, expected linear or relu")
    return graph.op("Relu", [name], f"{name}_relu") if activation == "relu" else name


def _weights(layer: layers.Layer) -> tuple[np.ndarray, np.ndarray]:
    kernel, *bias = (np.asarray(w, np.float32) for w in layer.get_weights())
    return kernel, bias[0] if bias else np.zeros(layer.filters, np.float32)


def _conv(graph: _Graph, layer: layers.Conv2D, value: _Value) -> str:
    if value.tiles is not None or any(value.crop):
        value = _Value(graph.plain(value))
    kernel, bias = _weights(layer)  # kernel (kh, kw, in, out)
    top, left, bottom, right = value.pad
    if layer.padding == "same":
        _, height, width, _ = layer.input.shape  # with the owed padding
        (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
        (above, below), (before, after) = _same_pads(height, kh, sh), _same_pads(width, kw, sw)
        top, left, bottom, right = top + above, left + before, bottom + below, right + after
    weight = kernel.transpose(3, 2, 0, 1) * np.float32(value.scale)
    attributes = {"strides": list(layer.strides), "dilations": list(layer.dilation_rate)}
    out = graph.conv(value.name, weight, bias, [top, left, bottom, right], layer.name, **attributes)
    return _activation(graph, layer, out)


def _sub_pixel(graph: _Graph, layer: layers.Conv2DTranspose, value: _Value) -> _Value:
    """A transposed convolution as a convolution to stride²·C channels, unwritten (:class:`_Tiles`).

    Output pixel s·m + a takes input pixel m + d through kernel tap a + p − s·d (p: the padding before): a
    convolution over d, one output channel group per (a, b). Kernel = stride gives a 1×1 convolution.
    """
    kernel, bias = _weights(layer)  # kernel (kh, kw, out, in)
    kh, kw, channels, inputs = kernel.shape
    (s, sw), (_, height, width, _) = layer.strides, layer.input.shape
    if s != sw or layer.dilation_rate != (1, 1) or not (layer.padding == "same" or kh == kw == s):
        raise M2NISTError(f"layer {layer.name!r}: expected equal strides, no dilation and 'same' padding")
    pad_top, pad_left = _same_pads(height * s, kh, s)[0], _same_pads(width * s, kw, s)[0]
    lows = [-((size - 1 - pad) // s) for size, pad in ((kh, pad_top), (kw, pad_left))]  # ceil((p − k + 1) / s)
    highs = [(s - 1 + pad) // s for pad in (pad_top, pad_left)]
    weight = np.zeros((s, s, channels, inputs, highs[0] - lows[0] + 1, highs[1] - lows[1] + 1), np.float32)
    for a in range(s):
        for b in range(s):
            for dy in range(lows[0], highs[0] + 1):
                for dx in range(lows[1], highs[1] + 1):
                    ky, kx = a + pad_top - s * dy, b + pad_left - s * dx
                    if 0 <= ky < kh and 0 <= kx < kw:
                        weight[a, b, :, :, dy - lows[0], dx - lows[1]] = kernel[ky, kx]
    tiles = _Tiles(
        source=graph.plain(value),
        weight=weight.reshape(s * s * channels, inputs, *weight.shape[4:]),
        bias=np.tile(bias, s * s),
        pads=[-lows[0], -lows[1], highs[0], highs[1]],
        name=layer.name,
        tiles=s,
        grid=(height, width),
    )
    if layer.activation.__name__ != "linear":
        return _Value(_activation(graph, layer, graph.plain(_Value(tiles=tiles))))
    return _Value(tiles=tiles)


def _max_pool(graph: _Graph, layer: layers.MaxPooling2D, value: _Value) -> str:
    _, height, width, _ = layer.input.shape
    (ph, pw), (sh, sw) = layer.pool_size, layer.strides
    (top, bottom), (left, right) = (0, 0), (0, 0)
    if layer.padding == "same":
        (top, bottom), (left, right) = _same_pads(height, ph, sh), _same_pads(width, pw, sw)
    attributes = {"kernel_shape": [ph, pw], "strides": [sh, sw], "pads": [top, left, bottom, right]}
    return graph.op("MaxPool", [graph.plain(value)], layer.name, **attributes)


def _layer(graph: _Graph, layer: layers.Layer, inputs: list[_Value]) -> _Value:
    """The ONNX nodes of one Keras layer (channels last), on channels-first inputs."""
    value = inputs[0]
    simple = value.tiles is None and not any(value.crop)
    if isinstance(layer, layers.Conv2DTranspose):
        return _sub_pixel(graph, layer, value)
    if isinstance(layer, layers.Conv2D):
        return _Value(_conv(graph, layer, value))
    if isinstance(layer, layers.Rescaling) and np.ndim(layer.scale) == 0 and np.all(np.asarray(layer.offset) == 0):
        value = value if simple else _Value(graph.plain(value))
        return replace(value, scale=value.scale * float(layer.scale))
    if isinstance(layer, layers.ZeroPadding2D):
        value = value if simple else _Value(graph.plain(value))
        (top, bottom), (left, right) = layer.padding
        return replace(value, pad=tuple(p + q for p, q in zip(value.pad, (top, left, bottom, right))))
    if isinstance(layer, layers.Cropping2D):
        value = value if value.scale == 1.0 and not any(value.pad) else _Value(graph.plain(value))
        (top, bottom), (left, right) = layer.cropping
        return replace(value, crop=tuple(p + q for p, q in zip(value.crop, (top, left, bottom, right))))
    if isinstance(layer, layers.SpatialDropout2D | layers.Dropout):
        return value
    if isinstance(layer, layers.ReLU) and layer.max_value is None and not layer.negative_slope and not layer.threshold:
        return _Value(graph.op("Relu", [graph.plain(value)], layer.name))
    if isinstance(layer, layers.MaxPooling2D):
        return _Value(_max_pool(graph, layer, value))
    if isinstance(layer, layers.Add):
        return _Value(graph.op("Add", [graph.plain(v) for v in inputs], layer.name))
    raise M2NISTError(f"layer {layer.name!r}: found {type(layer).__name__}, expected a layer of build_fcn's models")


def _head(graph: _Graph, scores: _Value, classes: int, name: str) -> str:
    """uint8 (N, H, W): the argmax over the first ``classes`` classes of ``scores`` (N, C, H, W), the output
    ``name`` if it is one of :data:`HEADS`. Its other nodes are named ``head_…``: :func:`quantize` leaves them
    in float."""
    prefix, tiles = f"head_{name}", scores.tiles
    out = name if name in HEADS else prefix
    if tiles is None:
        kept = graph.slice(scores.name, [0], [classes], [1], f"{prefix}_scores")
        labels = graph.op("ArgMax", [kept], f"{prefix}_argmax", axis=1, keepdims=0)
        labels = graph.op("Cast", [labels], f"{prefix}_uint8", to=graph.onnx.TensorProto.UINT8)
        return graph.crop(labels, scores.crop, [1, 2], out)
    # Tiles of a 1×1 convolution: a product with the features channels last gives the scores channels last,
    # (N, h, w, t, t, C); the argmax over C, then the tiles laid out as pixels (N, h·t, w·t).
    t, (h, w) = tiles.tiles, tiles.grid
    weight, bias = tiles.channels(slice(0, classes))
    features = graph.op("Transpose", [tiles.source], f"{prefix}_features", perm=[0, 2, 3, 1])
    rows = graph.op(
        "Reshape",
        [features, graph.const(f"{prefix}_rows", np.array([-1, weight.shape[1]], np.int64))],
        f"{prefix}_cells",
    )
    product = graph.op(
        "Gemm",
        [rows, graph.const(f"{prefix}_w", weight[:, :, 0, 0].T.copy()), graph.const(f"{prefix}_b", bias)],
        f"{prefix}_scores",
    )
    shape = graph.const(f"{prefix}_tile_shape", np.array([-1, h, w, t, t, classes], np.int64))
    per_tile = graph.op("Reshape", [product, shape], f"{prefix}_tile_scores")
    labels = graph.op("ArgMax", [per_tile], f"{prefix}_argmax", axis=5, keepdims=0)
    labels = graph.op("Cast", [labels], f"{prefix}_uint8", to=graph.onnx.TensorProto.UINT8)
    labels = graph.op("Transpose", [labels], f"{prefix}_tiles", perm=[0, 1, 3, 2, 4])
    shape = graph.const(f"{prefix}_pixel_shape", np.array([0, h * t, w * t], np.int64))
    return graph.crop(graph.op("Reshape", [labels, shape], f"{prefix}_pixels"), scores.crop, [1, 2], out)


def _inference_model(model: keras.Model) -> keras.Model:
    """``model`` with batch norm folded into its convolutions when it is a build_fcn model, else itself."""
    try:
        return fcn.fold_batch_norm(model)
    except ValueError:
        return model


def to_onnx(model: keras.Model) -> onnx.ModelProto:
    """The float32 ONNX graph (an ``onnx.ModelProto``) of a :func:`m2nist_seg.model.build_fcn` model.

    Input ``images``: float32 (N, H, W), values 0–255. Outputs ``labels`` and ``ink_gated``: uint8 (N, H, W).
    """
    onnx = onnx_module("onnx")
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or model.input_shape[-1] != 1:
        raise M2NISTError(f"model: found {type(model).__name__}, expected a Keras model of one-channel images")
    _, height, width, _ = model.input_shape
    if model.output_shape[1:3] != (height, width):
        raise M2NISTError(f"model: found outputs {model.output_shape}, expected one score map per input pixel")
    inference = _inference_model(model)
    graph = _Graph()
    image = graph.op("Unsqueeze", [INPUT, graph.const("channel_axis", np.array([1], np.int64))], "image")
    values = {id(inference.inputs[0]): _Value(image)}
    last = inference.layers[-1]
    activation = getattr(last, "activation", None)
    monotonic = isinstance(last, layers.Softmax) or getattr(activation, "__name__", "") in ("softmax", "sigmoid")
    for layer in inference.layers[1 : len(inference.layers) - monotonic]:
        inputs = [values[id(tensor)] for tensor in keras.tree.flatten(layer.input)]
        values[id(layer.output)] = _layer(graph, layer, inputs)
    scores = values[id(last.input if monotonic else last.output)]
    if scores.tiles is None or scores.tiles.weight.shape[2:] != (1, 1):  # the heads take plain scores then
        scores = _Value(graph.plain(replace(scores, crop=_NONE)), crop=scores.crop)
    _head(graph, scores, inference.output_shape[-1], "labels")
    digits = _head(graph, scores, data.NUM_DIGITS, "digits")
    ink = graph.op("Greater", [INPUT, graph.const("head_no_ink", np.float32(0))], "head_ink")
    graph.op("Where", [ink, digits, graph.const("head_background", np.uint8(data.BACKGROUND))], "ink_gated")
    uint8, float32 = onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT
    onnx_graph = onnx.helper.make_graph(
        graph.nodes,
        model.name,
        [onnx.helper.make_tensor_value_info(INPUT, float32, ["N", height, width])],
        [onnx.helper.make_tensor_value_info(head, uint8, ["N", height, width]) for head in HEADS],
        graph.weights,
    )
    opset = [onnx.helper.make_opsetid("", OPSET)]
    proto = onnx.helper.make_model(onnx_graph, opset_imports=opset, ir_version=IR_VERSION)
    proto.producer_name = "m2nist_seg.deploy.export"
    onnx.checker.check_model(proto, full_check=True)
    return proto


class _Calibration:
    """ONNX Runtime's calibration reader: batches of float32 images (n, H, W)."""

    def __init__(self, images: np.ndarray, batch_size: int = 50) -> None:
        self.batches = [images[i : i + batch_size].astype(np.float32) for i in range(0, len(images), batch_size)]
        self._next = iter(self.batches)

    def get_next(self) -> dict | None:
        batch = next(self._next, None)
        return None if batch is None else {INPUT: batch}


def _relu_pairs(proto: onnx.ModelProto) -> list[tuple]:
    """(convolution, its ReLU's output, the convolutions reading that output) for each convolution → ReLU
    (→ max pooling) of ``proto`` that only convolutions read."""
    producers = {node.output[0]: node for node in proto.graph.node}
    readers: dict[str, list] = {}
    for node in proto.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    pairs = []
    for relu in (node for node in proto.graph.node if node.op_type == "Relu"):
        conv = producers.get(relu.input[0])
        if conv is None or conv.op_type != "Conv" or len(readers[conv.output[0]]) != 1:
            continue
        after = readers.get(relu.output[0], [])
        if len(after) == 1 and after[0].op_type == "MaxPool":
            after = readers.get(after[0].output[0], [])
        if after and all(node.op_type == "Conv" for node in after):
            pairs.append((conv, relu.output[0], after))
    return pairs


def _channel_peaks(proto: onnx.ModelProto, names: list[str], images: np.ndarray) -> list[np.ndarray]:
    """The largest value of each channel of the tensors ``names`` (N, C, H, W) of ``proto`` on ``images``."""
    if not names:
        return []
    onnx = onnx_module("onnx")
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names)
    session = cpu_session(probe)
    peaks = [np.zeros(0, np.float32)] * len(names)
    for batch in _Calibration(images).batches:
        found = [out.max(axis=(0, 2, 3)) for out in session.run(names, {INPUT: batch})]
        peaks = [np.maximum(peak, new) if peak.size else new for peak, new in zip(peaks, found)]
    return peaks


def _equalised(proto: onnx.ModelProto, images: np.ndarray, max_scale: float = 16.0) -> onnx.ModelProto:
    """A copy of ``proto`` whose ReLU activations reach one calibrated maximum in every channel.

    For each pair of :func:`_relu_pairs`, channel c of the convolution is multiplied by s_c and the readers'
    weights on channel c divided by it: the same function in float, since ReLU and max pooling commute with a
    positive scale per channel. s_c brings the channel's largest value on ``images`` to the largest of all its
    channels (at most ``max_scale`` times), so that a per-tensor uint8 scale resolves every channel as finely as
    the widest one (activation equalisation).
    """
    onnx = onnx_module("onnx")
    pairs = _relu_pairs(proto)
    equalised = onnx.ModelProto()
    equalised.CopyFrom(proto)
    weights = {weight.name: weight for weight in equalised.graph.initializer}

    def rescale(name: str, factor: np.ndarray) -> None:
        value = onnx.numpy_helper.to_array(weights[name]) * factor
        weights[name].CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), name))

    for (conv, _, readers), peak in zip(pairs, _channel_peaks(proto, [name for _, name, _ in pairs], images)):
        if peak.max() <= 0:  # a convolution that calibration never wakes: nothing to equalise
            continue
        scale = peak.max() / np.maximum(peak, peak.max() / max_scale)
        rescale(conv.input[1], scale[:, None, None, None])
        rescale(conv.input[2], scale)
        for reader in readers:
            rescale(reader.input[1], 1 / scale[None, :, None, None])
    return equalised


def quantize(proto: onnx.ModelProto, calibration_images: np.ndarray) -> onnx.ModelProto:
    """The int8 copy of a float graph from :func:`to_onnx`: static QDQ quantisation, per-channel int8 weights and
    uint8 activations whose ranges are calibrated on ``calibration_images`` (uint8 or float (n, H, W), 0–255).

    The activations are equalised first (:func:`_equalised`). Three parts stay float: the heads and the tensor
    they read, whose scores would otherwise be rounded to 256 levels (two close classes then tie more often,
    and a tie flips the label); and convolutions of one input channel (the first), where int8 kernels gain
    nothing and the image needs no quantising.
    """
    onnx = onnx_module("onnx")
    quantization = onnx_module("onnxruntime.quantization")
    proto = _equalised(proto, calibration_images)
    producers = {node.output[0]: node.name for node in proto.graph.node}
    heads = [node for node in proto.graph.node if node.name.startswith("head_") or node.name in HEADS]
    in_channels = {weight.name: weight.dims[1] for weight in proto.graph.initializer if len(weight.dims) == 4}
    kept_float = {node.name for node in heads} | {producers[i] for node in heads for i in node.input if i in producers}
    kept_float |= {
        node.name for node in proto.graph.node if node.op_type == "Conv" and in_channels.get(node.input[1]) == 1
    }
    settings = {
        "quant_format": quantization.QuantFormat.QDQ,
        "per_channel": True,
        "activation_type": quantization.QuantType.QUInt8,
        "weight_type": quantization.QuantType.QInt8,
        "calibrate_method": quantization.CalibrationMethod.MinMax,
        "nodes_to_exclude": sorted(kept_float),
    }
    root = logging.getLogger()
    root.addFilter(_no_preprocessing_hint)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source, target = Path(tmp, "float.onnx"), Path(tmp, "int8.onnx")
            onnx.save(proto, source)
            quantization.quantize_static(source, target, _Calibration(calibration_images), **settings)
            return onnx.load(target)
    finally:
        root.removeFilter(_no_preprocessing_hint)


def _no_preprocessing_hint(record: logging.LogRecord) -> bool:
    """Drops the quantiser's advice to pre-process the graph: :func:`to_onnx` writes it folded and fused already."""
    return "pre-processing" not in record.getMessage()


def _calibration(images) -> np.ndarray:
    """``calibration_images`` checked as :func:`m2nist_seg.evaluation.evaluate.predict` checks images."""
    if images is None:
        raise M2NISTError("calibration_images: found None, expected training images (n, 64, 84) for the int8 ranges")
    try:
        images = check_images(images)
    except M2NISTError as error:  # its message starts "images: "
        raise M2NISTError(f"calibration_{error}") from None
    if not len(images):
        raise M2NISTError("calibration_images: found no images, expected training images (n, 64, 84)")
    return images


def export_onnx(
    model: keras.Model | str | os.PathLike,
    path: str | os.PathLike,
    int8: bool = False,
    calibration_images: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (a Keras model or a ``.keras`` file) to ``path`` as ONNX (:func:`to_onnx`), atomically.

    ``int8=True`` writes the int8 graph (:func:`quantize`), calibrated on ``calibration_images``: training images,
    uint8 or float (n, 64, 84), never test images. An existing ``path`` is replaced only with ``overwrite=True``.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise M2NISTError(f"{path}: found suffix {path.suffix!r}, expected a path ending in .onnx")
    if path.exists() and not overwrite:
        raise M2NISTError(f"{path}: already exists, expected a new path (or overwrite=True to replace it)")
    images = _calibration(calibration_images) if int8 else None
    proto = to_onnx(model if isinstance(model, keras.Model) else load_model(model))
    if int8:
        proto = quantize(proto, images)
    return _write(proto, path)


def _write(proto: onnx.ModelProto, path: Path) -> Path:
    onnx = onnx_module("onnx")
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
    return path


def parity(reference: np.ndarray, labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How closely ``labels`` follow ``reference`` (uint8 label maps (N, 64, 84) each, ``truth`` too): the share of
    equal pixels, each one's mean digit IoU against ``truth`` and the change."""
    scores = [
        metrics.scores_from_confusion(metrics.confusion_matrix(truth, y)).mean_digit_iou for y in (reference, labels)
    ]
    return {
        "equal_pixels": float(np.mean(reference == labels)),
        "reference_iou": float(scores[0]),
        "iou": float(scores[1]),
        "iou_change": float(scores[1] - scores[0]),
    }


@dataclass(frozen=True)
class Shipped:
    """What :func:`export_shipped` wrote (``int8`` is None when the int8 graph failed the ship rule), and the
    parity of each graph with the Keras model on the test split (:func:`parity`)."""

    float32: Path
    int8: Path | None
    float_parity: dict[str, float]
    int8_parity: dict[str, float]


def export_shipped(
    keras_path: str | os.PathLike = SHIPPED_MODEL, calibration: int = CALIBRATION_IMAGES, overwrite: bool = False
) -> Shipped:
    """Write the float and int8 ONNX graphs of a ``.keras`` model beside it (``NAME.onnx``, ``NAME.int8.onnx``).

    The int8 ranges are calibrated on the first ``calibration`` images of the generated training split. Both
    graphs are checked on the generated test split against the Keras model first: the float graph must give
    ≥ 99.9% of its pixels and a mean digit IoU within 0.001 (else nothing is written); the int8 graph is written
    only if its mean digit IoU drops by ≤ 0.005, and an older int8 file is removed otherwise.
    """
    keras_path = Path(keras_path)
    targets = keras_path.with_suffix(".onnx"), keras_path.with_suffix(".int8.onnx")
    existing = [str(target) for target in targets if target.exists()]
    if existing and not overwrite:
        raise M2NISTError(f"{', '.join(existing)}: already exist(s), expected overwrite=True to replace them")
    model = load_model(keras_path)
    splits = data.load("generated")
    float_proto = to_onnx(model)
    int8_proto = quantize(float_proto, splits.train.images[:calibration])
    test = splits.test
    reference = predict(model, test.images)
    float_parity, int8_parity = (
        parity(reference, OnnxPredictor(proto).predict(test.images), test.labels) for proto in (float_proto, int8_proto)
    )
    if float_parity["equal_pixels"] < MIN_EQUAL_PIXELS or abs(float_parity["iou_change"]) > MAX_FLOAT_IOU_CHANGE:
        raise M2NISTError(f"{keras_path}: its float ONNX graph gives {float_parity}, expected parity with Keras")
    _write(float_proto, targets[0])
    if int8_parity["iou_change"] >= -MAX_INT8_IOU_DROP:
        return Shipped(targets[0], _write(int8_proto, targets[1]), float_parity, int8_parity)
    targets[1].unlink(missing_ok=True)
    return Shipped(targets[0], None, float_parity, int8_parity)


def flops_per_image(model: keras.Model) -> int:
    """Floating-point operations per image of ``model``'s convolutions: 2 × their multiply-adds.

    A convolution makes output pixels × kernel taps × input channels × filters multiply-adds; a transposed
    convolution input pixels × kernel taps × input channels × filters (with the products that its "same"
    padding crops off). Bias adds, ReLU, pooling, additions and the argmax are not counted. This is the model's
    cost; the exported graph's sub-pixel convolutions also multiply the zeros of their kernels.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            total += 2 * math.prod(layer.output.shape[1:3]) * math.prod(layer.kernel.shape)
        elif isinstance(layer, layers.Conv2DTranspose):
            total += 2 * math.prod(layer.input.shape[1:3]) * math.prod(layer.kernel.shape)
    return total
