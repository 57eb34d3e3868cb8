"""int8 quantisation of an exported float graph with ONNX Runtime's static quantiser (QDQ), after activation
equalisation; the heads stay float."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.validation import check_images
from m2nist_seg.deploy.passes import HEAD_PREFIX, graph_readers
from m2nist_seg.evaluation.onnx_runtime import HEADS, INPUT, cpu_session, onnx_module

if TYPE_CHECKING:
    import onnx

MAX_EQUALISING_SCALE = 16.0


class _Calibration:
    """ONNX Runtime's calibration reader: batches of float32 images (n, H, W)."""

    def __init__(self, images: np.ndarray, batch_size: int = 50) -> None:
        self.batches = [images[i : i + batch_size].astype(np.float32) for i in range(0, len(images), batch_size)]
        self._next = iter(self.batches)

    def get_next(self) -> dict | None:
        batch = next(self._next, None)
        return None if batch is None else {INPUT: batch}


def check_calibration_images(images) -> np.ndarray:
    """``images`` checked as :func:`m2nist_seg.evaluation.evaluate.predict` checks images, and not empty."""
    if images is None:
        raise M2NISTError("calibration_images: found None, expected training images (n, 64, 84) for the int8 ranges")
    try:
        images = check_images(images)
    except M2NISTError as error:  # its message starts "images: "
        raise M2NISTError(f"calibration_{error}") from None
    if not len(images):
        raise M2NISTError("calibration_images: found no images, expected training images (n, 64, 84)")
    return images


def _relu_pairs(proto: onnx.ModelProto) -> list[tuple]:
    """(convolution, its ReLU's output, the convolutions reading that output) for each convolution with a bias
    → ReLU (→ max pooling) of ``proto`` that only convolutions read."""
    producers = {node.output[0]: node for node in proto.graph.node}
    readers = graph_readers(proto)
    pairs = []
    for relu in (node for node in proto.graph.node if node.op_type == "Relu"):
        conv = producers.get(relu.input[0])
        if conv is None or conv.op_type != "Conv" or len(conv.input) < 3 or len(readers[conv.output[0]]) != 1:
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


def equalise_activations(
    proto: onnx.ModelProto, images: np.ndarray, max_scale: float = MAX_EQUALISING_SCALE
) -> onnx.ModelProto:
    """A copy of ``proto`` whose ReLU activations reach one calibrated maximum in every channel.

    For each convolution (with a bias) → ReLU (→ max pooling) that only convolutions read, channel c of the
    convolution is multiplied by s_c and the readers' weights on channel c divided by it: the same function in
    float, since ReLU and max pooling commute with a positive scale per channel. s_c brings the channel's largest
    value on ``images`` (uint8 or float (n, H, W), 0–255) to the largest of all its channels (at most
    ``max_scale`` times), so that a per-tensor uint8 scale resolves every channel as finely as the widest one
    (activation equalisation).
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
    """The int8 copy of a float graph from :func:`m2nist_seg.deploy.export.to_onnx`: static QDQ quantisation,
    per-channel int8 weights and uint8 activations whose ranges are calibrated on ``calibration_images`` (uint8 or
    float (n, H, W), 0–255).

    The activations are equalised first (:func:`equalise_activations`). Two parts stay float: the heads (nodes
    named ``head_…`` and the outputs) and the tensors they read, whose scores would otherwise be rounded to 256
    levels (two close classes then tie more often, and a tie flips the label); and the steps from the images to
    the first convolutions and those convolutions, of one input channel, where int8 kernels gain nothing (and
    quantising the layout steps before them cost label parity).
    """
    onnx = onnx_module("onnx")
    quantization = onnx_module("onnxruntime.quantization")
    images = check_calibration_images(calibration_images)
    proto = equalise_activations(proto, images)
    producers = {name: node.name for node in proto.graph.node for name in node.output}
    heads = [node for node in proto.graph.node if node.name.startswith(HEAD_PREFIX) or node.name in HEADS]
    kept_float = {node.name for node in heads} | {producers[i] for node in heads for i in node.input if i in producers}
    kept_float |= _image_steps(proto)
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
            quantization.quantize_static(source, target, _Calibration(images), **settings)
            return onnx.load(target)
    finally:
        root.removeFilter(_no_preprocessing_hint)


def _image_steps(proto: onnx.ModelProto) -> set[str]:
    """The names of the nodes from the input images up to and including the first convolutions."""
    readers = graph_readers(proto)
    names, pending = set(), [INPUT]
    while pending:
        for node in readers.get(pending.pop(), []):
            if node.name not in names:
                names.add(node.name)
                pending.extend(node.output if node.op_type != "Conv" else [])
    return names


def _no_preprocessing_hint(record: logging.LogRecord) -> bool:
    """Drops the quantiser's advice to pre-process the graph: the export folds and fuses it already."""
    return "pre-processing" not in record.getMessage()
