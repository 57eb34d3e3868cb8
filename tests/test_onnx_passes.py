"""The ONNX → ONNX passes of m2nist_seg.deploy.passes on tiny hand-built graphs: each computes the same outputs
as the graph it rewrites (run by ONNX Runtime before and after), and leaves a graph without its pattern as it is."""

import numpy as np
import pytest

from m2nist_seg import data
from m2nist_seg.deploy import passes
from m2nist_seg.evaluation.onnx_runtime import HEADS, INPUT, cpu_session

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
helper, numpy_helper = onnx.helper, onnx.numpy_helper
FLOAT = onnx.TensorProto.FLOAT
HEIGHT, WIDTH = 6, 10
RNG = np.random.default_rng(0)


def graph(nodes: list, outputs: dict[str, tuple], weights: dict[str, np.ndarray], in_shape=None) -> onnx.ModelProto:
    """A checked opset-17 model of ``nodes`` reading ``images`` (N, HEIGHT, WIDTH) float32 (or ``in_shape``):
    ``outputs`` maps each output name to (element type, shape)."""
    proto = helper.make_model(
        helper.make_graph(
            nodes,
            "tiny",
            [helper.make_tensor_value_info(INPUT, FLOAT, in_shape or ["N", HEIGHT, WIDTH])],
            [helper.make_tensor_value_info(name, kind, shape) for name, (kind, shape) in outputs.items()],
            [numpy_helper.from_array(np.asarray(value), name) for name, value in weights.items()],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    onnx.checker.check_model(proto)
    return proto


def run(proto: onnx.ModelProto, images: np.ndarray) -> dict[str, np.ndarray]:
    session = cpu_session(proto)
    names = [output.name for output in proto.graph.output]
    return dict(zip(names, session.run(names, {INPUT: images.astype(np.float32)})))


def images(n: int = 3, shape: tuple[int, int] = (HEIGHT, WIDTH)) -> np.ndarray:
    """Sparse random ink, float32 (n, *shape), values 0–255."""
    return (RNG.integers(0, 256, (n, *shape)) * (RNG.random((n, *shape)) < 0.4)).astype(np.float32)


def ops_of(proto: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in proto.graph.node]


def node(op_type: str, inputs: list[str], output: str, **attributes):
    return helper.make_node(op_type, inputs, [output], name=output, **attributes)


def channels_first(classes: int = 11) -> tuple[list, dict]:
    """images → (N, 1, H, W) → a 3×3 convolution to ``classes`` channels: nodes and weights; output "conv"."""
    nodes = [node("Unsqueeze", [INPUT, "axis1"], "image"), node("Conv", ["image", "w", "b"], "conv", pads=[1] * 4)]
    weights = {"axis1": np.array([1], np.int64), "w": RNG.normal(size=(classes, 1, 3, 3)).astype(np.float32)}
    weights["b"] = RNG.normal(size=classes).astype(np.float32)
    return nodes, weights


# add_heads


def expected_heads(scores: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """labels and ink_gated, uint8 (N, H, W), of channels-last scores (N, H, W, C)."""
    labels = scores.argmax(axis=-1).astype(np.uint8)
    digits = scores[..., : data.NUM_DIGITS].argmax(axis=-1).astype(np.uint8)
    return labels, np.where(images > 0, digits, np.uint8(data.BACKGROUND))


def test_add_heads_reads_the_scores_before_a_transpose_to_channels_last():
    nodes, weights = channels_first()
    nodes.append(node("Transpose", ["conv"], "scores", perm=[0, 2, 3, 1]))
    proto = graph(nodes, {"scores": (FLOAT, ["N", HEIGHT, WIDTH, 11])}, weights)
    x = images()
    headed = passes.add_heads(proto)
    outputs = run(headed, x)
    assert list(outputs) == list(HEADS)
    for got, expected in zip(outputs.values(), expected_heads(run(proto, x)["scores"], x)):
        np.testing.assert_array_equal(got, expected)
    assert "Transpose" not in ops_of(headed)  # the argmax reads the channels-first scores
    added = [n.name for n in headed.graph.node if n.name not in {"image", "conv"}]
    assert all(name.startswith(passes.HEAD_PREFIX) or name in HEADS for name in added)
    dims = [d.dim_param or d.dim_value for d in headed.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["N", HEIGHT, WIDTH]


def test_add_heads_on_channels_last_scores():
    """Scores (N, H, W, C) that no transpose makes: the argmax runs over their last axis."""
    nodes = [
        node("Unsqueeze", [INPUT, "axis3"], "image"),
        node("Mul", ["image", "per_class"], "scaled"),
        node("Sin", ["scaled"], "scores"),
    ]
    weights = {"axis3": np.array([3], np.int64), "per_class": RNG.normal(size=11).astype(np.float32)}
    proto = graph(nodes, {"scores": (FLOAT, ["N", HEIGHT, WIDTH, 11])}, weights)
    x = images()
    outputs = run(passes.add_heads(proto), x)
    for got, expected in zip(outputs.values(), expected_heads(run(proto, x)["scores"], x)):
        np.testing.assert_array_equal(got, expected)


def test_add_heads_skips_a_graph_that_has_them():
    nodes, weights = channels_first()
    nodes.append(node("Transpose", ["conv"], "scores", perm=[0, 2, 3, 1]))
    headed = passes.add_heads(graph(nodes, {"scores": (FLOAT, ["N", HEIGHT, WIDTH, 11])}, weights))
    assert passes.add_heads(headed) is headed


# fold_input_scale


def scaled_conv(factor: np.ndarray, pad_value: float = 0.0, also_read: bool = False) -> onnx.ModelProto:
    """images → (N, H, W, 1) → × ``factor`` → zero padding (channels last) → (N, 1, H+2, W+4) → a 3×3 convolution,
    its output "out"; ``also_read`` makes the product an output too."""
    nodes = [
        node("Unsqueeze", [INPUT, "axis3"], "image"),
        node("Mul", ["image", "factor"], "scaled"),
        node("Pad", ["scaled", "pads", "pad_value"], "padded"),
        node("Transpose", ["padded"], "nchw", perm=[0, 3, 1, 2]),
        node("Conv", ["nchw", "w", "b"], "out"),
    ]
    weights = {
        "axis3": np.array([3], np.int64),
        "factor": factor,
        "pads": np.array([0, 1, 2, 0, 0, 1, 2, 0], np.int64),
        "pad_value": np.float32(pad_value),
        "w": RNG.normal(size=(4, 1, 3, 3)).astype(np.float32),
        "b": RNG.normal(size=4).astype(np.float32),
    }
    outputs = {"out": (FLOAT, ["N", 4, HEIGHT, WIDTH + 2])}
    if also_read:
        outputs["scaled"] = (FLOAT, ["N", HEIGHT, WIDTH, 1])
    return graph(nodes, outputs, weights)


def test_fold_input_scale_takes_the_scale_into_the_convolution():
    proto = scaled_conv(np.float32(1 / 255))
    folded = passes.fold_input_scale(proto)
    assert "Mul" not in ops_of(folded) and ops_of(folded).count("Conv") == 1
    x = images()
    np.testing.assert_allclose(run(folded, x)["out"], run(proto, x)["out"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "case",
    [
        {"factor": np.full(1, 2.0, np.float32), "pad_value": 1.0},  # padding ones would scale too
        {"factor": np.arange(1, 2, dtype=np.float32), "also_read": True},  # the product is read elsewhere
        {"factor": RNG.normal(size=(HEIGHT, WIDTH, 1)).astype(np.float32)},  # not one factor
    ],
)
def test_fold_input_scale_skips_what_it_cannot_fold(case):
    proto = scaled_conv(**case)
    assert passes.fold_input_scale(proto) is proto


# tile_argmax_heads


def upsampled(kernel: int, stride: int, pads: list[int], classes: int = 11, crop: bool = True, relu: bool = False):
    """images (N, 16, 24), or (N, 16, 22) padded by a column left and right with ``crop`` → a stride-``stride``
    convolution to 5 channels → ConvTranspose(``kernel``, ``stride``, ``pads``) to ``classes`` (N, C, 16, 24) →
    with ``crop``, the padding cropped off as tf2onnx writes Keras' Cropping2D → the heads of :func:`add_heads`."""
    width = 22 if crop else 24
    nodes = [
        node("Unsqueeze", [INPUT, "axis1"], "image"),
        node(
            "Conv",
            ["image", "w", "b"],
            "features",
            kernel_shape=[stride, stride],
            strides=[stride, stride],
            pads=[0, (24 - width) // 2, 0, (24 - width) // 2],
        ),
        node(
            "ConvTranspose",
            ["features", "wt", "bt"],
            "up",
            kernel_shape=[kernel, kernel],
            strides=[stride] * 2,
            pads=pads,
        ),
    ]
    weights = {
        "axis1": np.array([1], np.int64),
        "w": RNG.normal(size=(5, 1, stride, stride)).astype(np.float32),
        "b": RNG.normal(size=5).astype(np.float32),
        "wt": RNG.normal(size=(5, classes, kernel, kernel)).astype(np.float32),
        "bt": RNG.normal(size=classes).astype(np.float32),
    }
    scores = "up"
    if crop:  # all four axes, "whole" ends of int32's maximum
        nodes.append(node("Slice", ["up", "starts", "ends", "axes"], "cropped"))
        whole = np.iinfo(np.int32).max
        weights |= {
            "starts": np.array([0, 0, 1, 0], np.int64),
            "ends": np.array([whole, whole, -1, whole], np.int64),
            "axes": np.array([0, 2, 3, 1], np.int64),
        }
        scores = "cropped"
    nodes.append(node("Transpose", [scores], "scores", perm=[0, 2, 3, 1]))
    proto = passes.add_heads(
        graph(nodes, {"scores": (FLOAT, ["N", "H", "W", "C"])}, weights, in_shape=["N", 16, width])
    )
    if relu:  # another reader of the transposed convolution, as a third output
        proto.graph.node.append(node("Relu", ["up"], "relu"))
        proto.graph.output.append(helper.make_tensor_value_info("relu", FLOAT, ["N", "C", "H", "W"]))
    return proto


def test_tile_argmax_heads_compute_the_argmax_per_tile():
    proto = upsampled(kernel=8, stride=8, pads=[0] * 4)
    tiled = passes.tile_argmax_heads(proto)
    assert "ConvTranspose" not in ops_of(tiled) and ops_of(tiled).count("Gemm") == 2
    assert all(n.name.startswith(passes.HEAD_PREFIX) for n in tiled.graph.node if n.op_type == "Gemm")
    x = images(4, (16, 22))
    before, after = run(proto, x), run(tiled, x)
    for head in HEADS:
        assert after[head].shape == (4, 16, 22)
        np.testing.assert_array_equal(after[head], before[head])


def test_tile_argmax_heads_without_a_crop():
    proto = upsampled(kernel=4, stride=4, pads=[0] * 4, crop=False)
    tiled = passes.tile_argmax_heads(proto)
    assert "ConvTranspose" not in ops_of(tiled)
    x = images(2, (16, 24))
    for head in HEADS:
        np.testing.assert_array_equal(run(tiled, x)[head], run(proto, x)[head])


@pytest.mark.parametrize(
    "case",
    [
        {"kernel": 4, "stride": 2, "pads": [1] * 4},  # overlapping tiles
        {"kernel": 8, "stride": 8, "pads": [0] * 4, "relu": True},  # something other than an argmax reads it
    ],
)
def test_tile_argmax_heads_skip_other_transposed_convolutions(case):
    proto = upsampled(**case)
    assert passes.tile_argmax_heads(proto) is proto


# sub_pixel_convolutions


def transposed(kernel: int, stride: int, pads: list[int], extra: int = 0, group: int = 1, strides=None):
    """images (N, 5, 7) → (N, 1, 5, 7) → ConvTranspose to 3 channels (its output "out")."""
    attributes = {"strides": strides or [stride, stride], "pads": pads, "group": group}
    if extra:
        attributes["output_padding"] = [extra, extra]
    nodes = [
        node("Unsqueeze", [INPUT, "axis1"], "image"),
        node("ConvTranspose", ["image", "w", "b"], "out", **attributes),
    ]
    weights = {
        "axis1": np.array([1], np.int64),
        "w": RNG.normal(size=(1, 3, kernel, kernel)).astype(np.float32),
        "b": RNG.normal(size=3).astype(np.float32),
    }
    return graph(nodes, {"out": (FLOAT, ["N", "C", "H", "W"])}, weights, in_shape=["N", 5, 7])


@pytest.mark.parametrize(
    ("kernel", "stride", "pads", "extra"),
    [
        (4, 2, [1, 1, 1, 1], 0),  # Keras' "same" ×2 upsampling of the FCN decoder
        (3, 2, [0, 0, 1, 1], 0),
        (3, 2, [1, 1, 0, 0], 0),
        (2, 2, [0, 0, 0, 0], 0),
        (8, 8, [0, 0, 0, 0], 0),  # a 1×1 convolution
        (7, 4, [1, 2, 2, 1], 0),
        (5, 3, [0, 0, 0, 0], 1),  # with output padding
        (3, 1, [1, 1, 1, 1], 0),  # stride 1: no DepthToSpace
    ],
)
def test_sub_pixel_convolutions_compute_the_transposed_convolution(kernel, stride, pads, extra):
    proto = transposed(kernel, stride, pads, extra)
    rewritten = passes.sub_pixel_convolutions(proto)
    assert "ConvTranspose" not in ops_of(rewritten)
    assert ("DepthToSpace" in ops_of(rewritten)) == (stride > 1)
    x = images(2, (5, 7))
    expected = run(proto, x)["out"]
    got = run(rewritten, x)["out"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("case", [{"strides": [2, 1]}, {"group": 1, "kernel": 4, "pads": [4, 4, 4, 4]}])
def test_sub_pixel_convolutions_skip_what_they_cannot_rewrite(case):
    """Unequal strides (one blocksize for DepthToSpace), and pads beyond the kernel (negative padding)."""
    settings = {"kernel": 4, "stride": 2, "pads": [1, 1, 1, 1]} | case
    proto = transposed(**settings)
    assert passes.sub_pixel_convolutions(proto) is proto
