"""ONNX → ONNX rewrites of an exported graph: the heads that the graph contract asks for, and three passes that
make the standard exporter's graph as fast as a hand-written one, in float32 and in int8.

Each function takes an ``onnx.ModelProto`` and returns a rewritten copy, or the same object unchanged when the
pattern that it rewrites is absent; each one computes the same function (up to float rounding):

- :func:`add_heads`: the outputs ``labels`` and ``ink_gated`` (uint8 (N, H, W)) on a graph of class scores;
- :func:`fold_input_scale`: an input scaling (Keras' ``Rescaling(1/255)``) taken into the first convolution;
- :func:`tile_argmax_heads`: the argmax of a transposed convolution whose kernel equals its stride, per tile;
- :func:`sub_pixel_convolutions`: each transposed convolution as a convolution and ``DepthToSpace``.

ONNX Runtime has no int8 transposed convolution: it would run them in float32 between a dequantise and a
quantise. The last two passes leave none. :func:`graph_readers` indexes a graph's readers for them and for
:mod:`m2nist_seg.deploy.quantize`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.shapes import BACKGROUND, NUM_DIGITS
from m2nist_seg.evaluation.onnx_runtime import HEADS, INPUT, onnx_module

if TYPE_CHECKING:
    import onnx

HEAD_PREFIX = "head_"  # the names of the heads' nodes; int8 quantisation keeps these in float
BATCH = "N"
_LAYOUT_STEPS = ("Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Pad")  # they keep zeros zero
_END = np.iinfo(np.int64).max
_WHOLE = np.iinfo(np.int32).max  # a slice's end from here on takes the whole axis


def graph_readers(proto: onnx.ModelProto) -> dict[str, list]:
    """The nodes of ``proto`` that read each tensor, by the tensor's name."""
    readers: dict[str, list] = {}
    for node in proto.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


class _Editor:
    """A copy of a graph being rewritten: who writes and who reads each tensor, its constants, and new nodes.

    The indexes describe the graph as it was copied; :meth:`finish` drops what nothing reads any more and sorts
    the nodes again.
    """

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.onnx = onnx_module("onnx")
        self.proto = self.onnx.ModelProto()
        self.proto.CopyFrom(proto)
        self.graph = self.proto.graph
        self.weights = {weight.name: weight for weight in self.graph.initializer}
        self.producers = {name: node for node in self.graph.node for name in node.output}
        self.readers = graph_readers(self.proto)
        self.outputs = {output.name for output in self.graph.output}
        self.used = {node.name for node in self.graph.node} | set(self.producers) | set(self.weights)
        self.used |= {value.name for value in self.graph.input}

    def fresh(self, base: str) -> str:
        """``base``, or ``base_2``, ``base_3``… if the graph already has that name."""
        name, count = base, 1
        while name in self.used:
            count += 1
            name = f"{base}_{count}"
        self.used.add(name)
        return name

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` when it is an initializer or a ``Constant`` node's output, else None."""
        if name in self.weights:
            return self.onnx.numpy_helper.to_array(self.weights[name])
        node = self.producers.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute[0].name == "value":
            return self.onnx.numpy_helper.to_array(node.attribute[0].t)
        return None

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.graph.initializer.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def add(self, op_type: str, inputs: list[str], base: str, out: str | None = None, **attributes) -> str:
        """Append a node named after ``base``; its one output is ``out`` if given, else the node's name."""
        name = self.fresh(base)
        output = out or name
        self.graph.node.append(self.onnx.helper.make_node(op_type, inputs, [output], name=name, **attributes))
        return output

    def remove(self, node) -> None:
        self.graph.node.remove(node)

    def rename(self, name: str, new: str) -> None:
        """Give the output ``name`` of the last node added, which nothing reads yet, the name ``new``."""
        last = self.graph.node[-1]
        last.output[list(last.output).index(name)] = new

    def only_reader(self, name: str):
        """The one node that reads ``name`` when exactly one does and ``name`` is not a graph output, else None."""
        readers = self.readers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in self.outputs else None

    def finish(self) -> onnx.ModelProto:
        """The rewritten graph: nodes that no output needs and unread initializers dropped, nodes sorted."""
        nodes = list(self.graph.node)
        producers = {name: index for index, node in enumerate(nodes) for name in node.output}
        needed, kept, pending = set(), set(), list(self.outputs)
        while pending:
            name = pending.pop()
            if name not in needed:
                needed.add(name)
                if name in producers:
                    kept.add(producers[name])
                    pending.extend(nodes[producers[name]].input)
        ready = {value.name for value in self.graph.input} | {weight.name for weight in self.graph.initializer}
        ordered, pending = [], sorted(kept)
        while pending:
            runnable = [i for i in pending if all(not name or name in ready for name in nodes[i].input)]
            if not runnable:
                raise M2NISTError(f"graph {self.graph.name!r}: found a tensor that no node writes, expected none")
            ordered += [nodes[i] for i in runnable]
            ready.update(name for i in runnable for name in nodes[i].output)
            pending = [i for i in pending if i not in runnable]
        weights = [weight for weight in self.graph.initializer if weight.name in needed]
        del self.graph.node[:], self.graph.initializer[:]
        self.graph.node.extend(ordered)
        self.graph.initializer.extend(weights)
        self.proto.graph.ClearField("value_info")
        return self.proto


def _attributes(node) -> dict:
    helper = onnx_module("onnx").helper
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _shapes(proto: onnx.ModelProto) -> dict[str, list[int | None]]:
    """The inferred shape of each tensor of ``proto``, None for an axis of unknown size."""
    inferred = onnx_module("onnx").shape_inference.infer_shapes(proto)
    values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    return {
        value.name: [dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim]
        for value in values
        if value.type.tensor_type.HasField("shape")
    }


def add_heads(proto: onnx.ModelProto, digits: int = NUM_DIGITS, background: int = BACKGROUND) -> onnx.ModelProto:
    """The graph contract's outputs on a graph of class scores.

    Matches a graph whose one input is :data:`~m2nist_seg.evaluation.onnx_runtime.INPUT` (N, H, W) and whose
    one output is float scores (N, H, W, C). The output becomes two, uint8 (N, H, W) each: ``labels``, the
    argmax over C, and ``ink_gated``, where pixels with images > 0 take the argmax over the first ``digits``
    classes and the others ``background``. When the scores come out of a transpose to channels last, the heads
    read the tensor before it. Its nodes are named ``head_…``.
    """
    inputs, outputs = [value.name for value in proto.graph.input], list(proto.graph.output)
    if inputs != [INPUT] or len(outputs) != 1 or len(outputs[0].type.tensor_type.shape.dim) != 4:
        return proto
    edit = _Editor(proto)
    scores, axis = outputs[0].name, 3
    transpose = edit.producers.get(scores)
    if transpose is not None and transpose.op_type == "Transpose":
        perm = list(_attributes(transpose)["perm"])
        if perm[:3] == sorted(perm[:3]):  # the other axes keep their order: the argmax may read the input
            scores, axis = transpose.input[0], perm[3]
    uint8 = edit.onnx.TensorProto.UINT8
    labels = edit.add("ArgMax", [scores], f"{HEAD_PREFIX}labels_argmax", axis=axis, keepdims=0)
    edit.add("Cast", [labels], f"{HEAD_PREFIX}labels_uint8", out=HEADS[0], to=uint8)
    bounds = [edit.const(f"{HEAD_PREFIX}digits_{k}", np.array([v], np.int64)) for k, v in (("from", 0), ("to", digits))]
    axes = edit.const(f"{HEAD_PREFIX}digits_axis", np.array([axis], np.int64))
    kept = edit.add("Slice", [scores, *bounds, axes], f"{HEAD_PREFIX}digits_scores")
    digit = edit.add("ArgMax", [kept], f"{HEAD_PREFIX}digits_argmax", axis=axis, keepdims=0)
    digit = edit.add("Cast", [digit], f"{HEAD_PREFIX}digits_uint8", to=uint8)
    ink = edit.add("Greater", [INPUT, edit.const(f"{HEAD_PREFIX}no_ink", np.float32(0))], f"{HEAD_PREFIX}ink")
    fill = edit.const(f"{HEAD_PREFIX}background", np.uint8(background))
    edit.add("Where", [ink, digit, fill], HEADS[1], out=HEADS[1])
    image = edit.graph.input[0].type.tensor_type.shape.dim
    image[0].dim_param = BATCH
    shape = [BATCH, *(dim.dim_value for dim in image[1:])]
    del edit.graph.output[:]
    edit.graph.output.extend(edit.onnx.helper.make_tensor_value_info(head, uint8, shape) for head in HEADS)
    edit.outputs = set(HEADS)
    return edit.finish()


def fold_input_scale(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Multiplications by a constant scalar taken into the convolutions that read their product.

    Matches ``Mul(x, c)`` (c a constant of one value) whose product reaches only the data input of convolutions
    with constant weights, through steps that keep zeros zero and commute with a scale (Identity, Reshape,
    Transpose, Squeeze, Unsqueeze, constant-zero Pad): such as Keras' ``Rescaling(1/255)`` before the zero
    padding and the first convolution. The convolutions' weights are multiplied by c and the Mul is removed.
    """
    edit = _Editor(proto)
    changed = False
    for mul in [node for node in edit.graph.node if node.op_type == "Mul"]:
        factors = [edit.constant(name) for name in mul.input]
        if sum(f is not None and f.size == 1 for f in factors) != 1:
            continue
        source, factor = (mul.input[1], factors[0]) if factors[0] is not None else (mul.input[0], factors[1])
        convs = _convolutions_reached(edit, mul.output[0])
        if not convs:
            continue
        for conv in convs:
            weight = edit.constant(conv.input[1]) * factor.astype(np.float32).reshape(())
            conv.input[1] = edit.const(f"{conv.name}_scaled_weight", weight.astype(np.float32))
        for reader in edit.readers[mul.output[0]]:
            reader.input[list(reader.input).index(mul.output[0])] = source
        edit.remove(mul)
        changed = True
    return edit.finish() if changed else proto


def _convolutions_reached(edit: _Editor, name: str) -> list:
    """The convolutions that ``name`` reaches, as their data input, through zero-keeping layout steps that only
    one node reads; empty if any other node reads it on the way or a convolution's weights are not constant."""
    step = edit.only_reader(name)
    while step is not None and step.op_type in _LAYOUT_STEPS and step.input[0] == name:
        if step.op_type == "Pad" and not _zero_pad(edit, step):
            return []
        name = step.output[0]
        step = edit.only_reader(name)
    readers = edit.readers.get(name, [])
    convs = [node for node in readers if node.op_type == "Conv" and node.input[0] == name]
    if not readers or len(convs) != len(readers) or name in edit.outputs:
        return []
    return convs if all(edit.constant(conv.input[1]) is not None for conv in convs) else []


def _zero_pad(edit: _Editor, pad) -> bool:
    value = edit.constant(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
    mode = _attributes(pad).get("mode", b"constant")
    return mode == b"constant" and value is not None and not np.any(value)


def tile_argmax_heads(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Heads that take the argmax of a transposed convolution whose kernel equals its stride, computed per tile.

    Matches a ``ConvTranspose`` (kernel = strides t_h × t_w, no padding, no dilation, one group, constant
    weights, known input height and width h × w) that only ``ArgMax`` nodes over the channels read, each through
    constant ``Slice`` nodes that crop pixels or keep the first k classes. Such a layer paints each input cell's
    own t_h × t_w tile: a 1×1 convolution to t_h·t_w·k channels, which each head computes as one matrix product
    (``Gemm``) of the features channels last, (N·h·w, C) × (C, t_h·t_w·k). The argmax then runs over each tile
    pixel's contiguous k scores, and only the labels are laid out as pixels (and cropped): the full-size map of
    scores is never built. An ``ArgMax`` that only a ``Cast`` reads is cast before the layout steps, which then
    move fewer bytes. The new nodes are named after the ``ArgMax`` that they replace.
    """
    edit = _Editor(proto)
    shapes = _shapes(proto)
    changed = False
    for conv in [node for node in edit.graph.node if node.op_type == "ConvTranspose"]:
        weight, bias = _transposed_weights(edit, conv)
        grid = shapes.get(conv.input[0], [None] * 4)[2:]
        if weight is None or not _paints_tiles(conv, weight.shape[2:]) or None in grid:
            continue
        heads = _argmax_readers(edit, conv.output[0], weight.shape[1])
        if not heads:
            continue
        for argmax, classes, crops in heads:
            _tile_head(edit, conv.input[0], weight, bias, tuple(grid), argmax, classes, crops)
        changed = True
    return edit.finish() if changed else proto


def _paints_tiles(conv, kernel: tuple[int, int]) -> bool:
    """Whether the ``ConvTranspose`` ``conv`` paints separate tiles: kernel = strides, no padding, no dilation,
    one group."""
    attributes = _attributes(conv)
    return (
        list(attributes.get("strides", [1, 1])) == list(kernel)
        and not any(attributes.get("pads", []))
        and not any(attributes.get("output_padding", []))
        and set(attributes.get("dilations", [1])) == {1}
        and attributes.get("group", 1) == 1
        and attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", b"VALID")
        and "output_shape" not in attributes
    )


def _transposed_weights(edit: _Editor, conv) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The constant weight (C_in, C_out, kh, kw) and bias (C_out,) of a ``ConvTranspose``; (None, None) if not
    constant."""
    weight = edit.constant(conv.input[1])
    bias = edit.constant(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
    if weight is None or weight.ndim != 4 or (len(conv.input) > 2 and conv.input[2] and bias is None):
        return None, None
    return weight, bias if bias is not None else np.zeros(weight.shape[1], weight.dtype)


def _argmax_readers(edit: _Editor, name: str, channels: int) -> list[tuple] | None:
    """(ArgMax, classes kept, pixel crops) for each channel ``ArgMax`` that reads ``name`` (N, C, H, W) through
    constant slices; None if anything else reads it on the way."""
    heads: list[tuple] = []
    pending = [(name, channels, [])]
    while pending:
        tensor, classes, crops = pending.pop()
        readers = edit.readers.get(tensor, [])
        if not readers or tensor in edit.outputs:
            return None
        for node in readers:
            if node.op_type == "ArgMax" and node.input[0] == tensor:
                attributes = _attributes(node)
                if (
                    attributes.get("axis", 0) % 4 != 1
                    or attributes.get("keepdims", 1)
                    or attributes.get("select_last_index", 0)
                ):
                    return None
                heads.append((node, classes, crops))
            elif node.op_type == "Slice" and node.input[0] == tensor:
                step = _slice(edit, node, classes)
                if step is None:
                    return None
                pending.append((node.output[0], step[0], [*crops, step[1]] if step[1] else crops))
            else:
                return None
    return heads


def _slice(edit: _Editor, node, classes: int) -> tuple[int, dict[int, tuple[int, int]]] | None:
    """A ``Slice`` of (N, C, H, W) as (classes kept, {pixel axis: (start, end)}); None unless its bounds are
    constant, its steps 1, the batch whole and the classes a first few."""
    starts, ends = (edit.constant(name) for name in node.input[1:3])
    axes = edit.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else np.arange(4)
    steps = edit.constant(node.input[4]) if len(node.input) > 4 and node.input[4] else np.ones(4, np.int64)
    if starts is None or ends is None or axes is None or steps is None or np.any(steps != 1):
        return None
    crops = {}
    for axis, start, end in zip(np.asarray(axes) % 4, starts.tolist(), ends.tolist()):
        if axis in (0, 1) and start != 0:
            return None
        if axis == 0 and end < _WHOLE:
            return None
        if axis == 1:
            classes = min(classes, end if end >= 0 else classes + end)
        if axis in (2, 3) and (start != 0 or end < _WHOLE):
            crops[int(axis)] = (start, end)
    return (classes, crops) if classes > 0 else None


def _tile_head(
    edit: _Editor,
    features: str,
    weight: np.ndarray,
    bias: np.ndarray,
    grid: tuple[int, int],
    argmax,
    classes: int,
    crops: list[dict[int, tuple[int, int]]],
) -> None:
    """Replace ``argmax`` (and a ``Cast`` that alone reads it) by the per-tile argmax of :func:`tile_argmax_heads`."""
    inputs, _, th, tw = weight.shape
    (h, w), name = grid, argmax.name
    cast = edit.only_reader(argmax.output[0])
    cast = cast if cast is not None and cast.op_type == "Cast" else None
    matrix = weight[:, :classes].transpose(0, 2, 3, 1).reshape(inputs, th * tw * classes)
    cells = edit.add("Transpose", [features], f"{name}_features", perm=[0, 2, 3, 1])
    rows = edit.add("Reshape", [cells, edit.const(f"{name}_rows", np.array([-1, inputs], np.int64))], f"{name}_cells")
    product = [rows, edit.const(f"{name}_w", matrix.astype(np.float32))]
    product.append(edit.const(f"{name}_b", np.tile(bias[:classes], th * tw).astype(np.float32)))
    scores = edit.add("Gemm", product, f"{name}_scores")
    shape = edit.const(f"{name}_tile_shape", np.array([-1, h, w, th, tw, classes], np.int64))
    per_tile = edit.add("Reshape", [scores, shape], f"{name}_tile_scores")
    labels = edit.add("ArgMax", [per_tile], f"{name}_per_tile", axis=5, keepdims=0)
    if cast is not None:
        labels = edit.add("Cast", [labels], f"{cast.name}_per_tile", **_attributes(cast))
    labels = edit.add("Transpose", [labels], f"{name}_tiles", perm=[0, 1, 3, 2, 4])
    shape = edit.const(f"{name}_pixel_shape", np.array([0, h * th, w * tw], np.int64))
    labels = edit.add("Reshape", [labels, shape], f"{name}_pixels")
    for crop in crops:
        bounds = [np.array([crop[axis][k] for axis in sorted(crop)], np.int64) for k in (0, 1)]
        axes = np.array([axis - 1 for axis in sorted(crop)], np.int64)  # (N, C, H, W) → (N, H, W)
        consts = [edit.const(f"{name}_crop_{k}", v) for k, v in zip(("from", "to", "axes"), (*bounds, axes))]
        labels = edit.add("Slice", [labels, *consts], f"{name}_crop")
    edit.rename(labels, (cast or argmax).output[0])
    for node in (argmax, cast):
        if node is not None:
            edit.remove(node)


def sub_pixel_convolutions(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Each transposed convolution as a convolution to s²·C channels and ``DepthToSpace`` (blocksize s).

    Matches a ``ConvTranspose`` with equal strides s, explicit pads, no dilation, one group and constant
    weights. Output pixel s·m + a reads input pixels m + d through kernel tap a + p − s·d (p: the padding
    before): for each of the s × s positions (a, b) of a tile, a convolution over d, whose outputs
    ``DepthToSpace`` lays out as pixels (mode DCR), cropped to the transposed convolution's size. A kernel
    equal to its stride gives a 1×1 convolution.
    """
    edit = _Editor(proto)
    changed = False
    for conv in [node for node in edit.graph.node if node.op_type == "ConvTranspose"]:
        weight, bias = _transposed_weights(edit, conv)
        attributes = _attributes(conv)
        strides = list(attributes.get("strides", [1, 1]))
        if (
            weight is None
            or len(set(strides)) != 1
            or set(attributes.get("dilations", [1])) != {1}
            or attributes.get("group", 1) != 1
            or attributes.get("auto_pad", b"NOTSET") != b"NOTSET"
            or "output_shape" in attributes
        ):
            continue
        stride, (kh, kw) = strides[0], weight.shape[2:]
        pads = list(attributes.get("pads", [0, 0, 0, 0]))
        extra = list(attributes.get("output_padding", [0, 0]))
        taps = [_taps(k, stride, pads[i], pads[i + 2], extra[i]) for i, k in enumerate((kh, kw))]
        if any(tap is None for tap in taps):
            continue
        _replace_transposed(edit, conv, weight, bias, stride, taps)
        changed = True
    return edit.finish() if changed else proto


def _taps(kernel: int, stride: int, before: int, after: int, extra: int) -> tuple[int, int, int, int] | None:
    """One axis of a transposed convolution (``before``, ``after``: its pads; ``extra``: its output padding) as a
    convolution over input offsets d: (lowest d, highest d, the convolution's padding after, the pixels cropped
    off the end of the tiles), None if that would need negative padding.

    Output pixel s·m + a reads input pixel m + d through tap a + before − s·d, so d runs from
    ceil((before − kernel + 1) / s) to floor((s − 1 + before) / s). The output has s·h + e pixels,
    e = kernel − s − before − after + extra: ceil(e / s) tiles more than the input's h, less the crop.
    """
    low, high = -((kernel - 1 - before) // stride), (stride - 1 + before) // stride
    excess = kernel - stride - before - after + extra
    more = -(-excess // stride)
    if low > 0 or more + high < 0:
        return None
    return low, high, more + high, stride * more - excess


def _replace_transposed(edit: _Editor, conv, weight: np.ndarray, bias: np.ndarray, s: int, taps: list) -> None:
    """Replace ``conv`` by the convolution, ``DepthToSpace`` and crop of :func:`sub_pixel_convolutions`."""
    inputs, channels, kh, kw = weight.shape
    before = _attributes(conv).get("pads", [0, 0, 0, 0])[:2]
    (low_y, high_y, after_y, crop_y), (low_x, high_x, after_x, crop_x) = taps
    sub = np.zeros((s, s, channels, inputs, high_y - low_y + 1, high_x - low_x + 1), np.float32)
    for a, b, dy, dx in np.ndindex(s, s, *sub.shape[4:]):
        ky, kx = a + before[0] - s * (dy + low_y), b + before[1] - s * (dx + low_x)
        if 0 <= ky < kh and 0 <= kx < kw:
            sub[a, b, :, :, dy, dx] = weight[:, :, ky, kx].T
    name = conv.name
    weights = [
        edit.const(f"{name}_sub_pixel_w", sub.reshape(s * s * channels, inputs, *sub.shape[4:])),
        edit.const(f"{name}_sub_pixel_b", np.tile(bias, s * s).astype(np.float32)),
    ]
    pads = [-low_y, -low_x, after_y, after_x]
    out = edit.add("Conv", [conv.input[0], *weights], f"{name}_sub_pixel", kernel_shape=list(sub.shape[4:]), pads=pads)
    if s > 1:
        out = edit.add("DepthToSpace", [out], f"{name}_tiles", blocksize=s, mode="DCR")
    if crop_y or crop_x:
        ends = np.array([-crop_y or _END, -crop_x or _END], np.int64)
        bounds = [edit.const(f"{name}_crop_{k}", v) for k, v in (("from", np.zeros(2, np.int64)), ("to", ends))]
        axes = edit.const(f"{name}_crop_axes", np.array([2, 3], np.int64))
        out = edit.add("Slice", [out, *bounds, axes], f"{name}_crop")
    edit.rename(out, conv.output[0])
    edit.remove(conv)
