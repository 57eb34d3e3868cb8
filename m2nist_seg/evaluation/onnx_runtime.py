"""Run an exported ONNX graph with ONNX Runtime: the graphs that :mod:`m2nist_seg.deploy.export` writes.

Such a graph takes float32 images ``images`` (N, 64, 84), raw pixel values 0–255, and has two outputs, uint8
label maps (N, 64, 84) each: ``labels`` (the argmax of the class scores) and ``ink_gated`` (ink-free pixels
background, ink pixels their most likely digit). :class:`OnnxPredictor` runs each output as its own session,
so that neither pays for the other.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.shapes import IMAGE_SHAPE
from m2nist_seg.data.validation import check_batch_size, check_images

if TYPE_CHECKING:
    import onnx

HEADS = ("labels", "ink_gated")
INPUT = "images"
BATCH_SIZE = 64


def onnx_module(name: str):
    """Import an ONNX package, or say which one to install."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        package = name.split(".")[0]
        raise M2NISTError(
            f"{package}: not installed, expected it from requirements.txt (pip install {package})"
        ) from error


def cpu_session(proto: onnx.ModelProto):
    """An ONNX Runtime CPU session of ``proto`` that logs errors only (no warnings on stderr)."""
    runtime = onnx_module("onnxruntime")
    options = runtime.SessionOptions()
    options.log_severity_level = 3
    # Threads that wait sleep instead of spinning: on a CPU shared with other work a spinning thread burns the
    # time its partner needs (1.2-1.5x slower here with one other busy process).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return runtime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def head_graph(proto: onnx.ModelProto, head: str) -> onnx.ModelProto:
    """A copy of ``proto`` that computes only the output ``head``."""
    onnx = onnx_module("onnx")
    needed, nodes = {head}, []
    for node in reversed(proto.graph.node):
        if needed.intersection(node.output):
            nodes.append(node)
            needed.update(node.input)
    graph = onnx.helper.make_graph(
        nodes[::-1],
        proto.graph.name,
        proto.graph.input,
        [output for output in proto.graph.output if output.name == head],
        [weight for weight in proto.graph.initializer if weight.name in needed],
    )
    return onnx.helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)


class OnnxPredictor:
    """Label maps from an exported graph (float32 or int8, as ``int8`` says) with ONNX Runtime; see
    :func:`load_onnx`. Each head runs as its own session, built on first use, that computes nothing the other
    head needs.
    """

    def __init__(self, proto: onnx.ModelProto, name: str = "model") -> None:
        self.name = name
        self._proto = proto
        self._sessions: dict[str, object] = {}
        self.int8 = any(node.op_type == "QuantizeLinear" for node in proto.graph.node)

    def __repr__(self) -> str:
        return f"OnnxPredictor({self.name!r}, {'int8' if self.int8 else 'float32'})"

    def _session(self, head: str):
        if head not in self._sessions:
            self._sessions[head] = cpu_session(head_graph(self._proto, head))
        return self._sessions[head]

    def predict(self, images: np.ndarray, ink_gated: bool = False, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Label maps uint8 (N, 64, 84) for ``images``: uint8 or float (N, 64, 84) or (N, 64, 84, 1), values 0–255.

        With ``ink_gated``, ink-free pixels are background and ink pixels take their most likely digit.
        """
        images = check_images(images)
        check_batch_size(batch_size)
        head = "ink_gated" if ink_gated else "labels"
        session = self._session(head)
        batches = [
            session.run([head], {INPUT: images[start : start + batch_size].astype(np.float32)})[0]
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate(batches) if batches else np.zeros((0, *IMAGE_SHAPE), np.uint8)


def load_onnx(path: str | os.PathLike) -> OnnxPredictor:
    """An :class:`OnnxPredictor` for a graph written by :func:`export_onnx` (such as :data:`SHIPPED_ONNX` or
    :data:`SHIPPED_INT8`)."""
    onnx = onnx_module("onnx")
    path = Path(path)
    if path.suffix != ".onnx":
        raise M2NISTError(f"{path}: found suffix {path.suffix!r}, expected an .onnx file written by export_onnx")
    if not path.is_file():
        raise M2NISTError(f"{path}: ONNX model not found, expected an existing .onnx file written by export_onnx")
    try:
        proto = onnx.load(path)
        onnx.checker.check_model(proto)
    except Exception as error:
        raise M2NISTError(
            f"{path}: not a readable ONNX model ({type(error).__name__}), expected export_onnx's file"
        ) from error
    inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    if inputs != [INPUT] or outputs != list(HEADS):
        raise M2NISTError(f"{path}: found inputs {inputs} and outputs {outputs}, expected ['images'] and {list(HEADS)}")
    return OnnxPredictor(proto, name=path.name)
