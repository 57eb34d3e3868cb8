"""Export a segmentation model to ONNX, in float32 or int8, and check it against Keras.

The exported graph takes float32 images ``images`` (N, 64, 84), raw pixel values 0–255, and has two outputs,
uint8 label maps (N, 64, 84) each: ``labels``, the argmax of the class scores as
:func:`m2nist_seg.evaluation.evaluate.predict` gives it, and ``ink_gated``, ink-free pixels background and ink
pixels their most likely digit; :mod:`m2nist_seg.evaluation.onnx_runtime` runs it. There is no softmax (argmax
needs no exp).

:func:`to_onnx` starts from Keras' standard exporter (:func:`standard_export`: ``model.export(...,
format="onnx")``, tf2onnx inside), which folds batch norm into the convolutions, on the model's class scores
before its softmax; then named ONNX → ONNX rewrites of :mod:`m2nist_seg.deploy.passes` add the heads and make
the graph fast in float32 and in int8 (:data:`PASSES`): the input's 1/255 scaling folded into the first
convolution, the last upsampling's argmax computed per tile, and every other transposed convolution as a
"sub-pixel" convolution (ONNX Runtime has no int8 transposed convolution).
:func:`m2nist_seg.deploy.quantize.quantize` makes the int8 graph.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import layers

from m2nist_seg import data
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.deploy import passes
from m2nist_seg.deploy.quantize import check_calibration_images, quantize
from m2nist_seg.evaluation import metrics
from m2nist_seg.evaluation.evaluate import load_model, predict
from m2nist_seg.evaluation.onnx_runtime import INPUT, OnnxPredictor, onnx_module

if TYPE_CHECKING:
    import onnx

OPSET = 17
SHIPPED_ONNX = SHIPPED_MODEL.with_suffix(".onnx")
SHIPPED_INT8 = SHIPPED_MODEL.with_suffix(".int8.onnx")
CALIBRATION_IMAGES = 200
MIN_EQUAL_PIXELS = 0.999
MAX_FLOAT_IOU_CHANGE = 0.001
MAX_INT8_IOU_DROP = 0.005
# The rewrites after the heads, in order: the tile argmax before the sub-pixel pass, which would take its layer.
PASSES = (passes.fold_input_scale, passes.tile_argmax_heads, passes.sub_pixel_convolutions)


def _float32(model: keras.Model) -> keras.Model:
    """``model``, or a float32 copy with its weights when some layers compute in another precision (a model
    trained under mixed precision): Keras' ONNX exporter needs float32 throughout."""
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model
    copy = keras.models.clone_model(
        model, clone_function=lambda layer: layer.__class__.from_config(layer.get_config() | {"dtype": "float32"})
    )
    copy.set_weights(model.get_weights())
    return copy


def _scores_model(model: keras.Model) -> keras.Model:
    """``model`` in float32 from images (N, H, W) to its class scores (N, H, W, C): without a last softmax or
    sigmoid, which leave the argmax as it is."""
    model = _float32(model)
    last = model.layers[-1]
    monotonic = (isinstance(last, layers.Softmax) and last.axis in (-1, 3)) or (
        isinstance(last, layers.Activation) and last.activation.__name__ in ("softmax", "sigmoid")
    )
    scores = keras.Model(model.inputs, last.input) if monotonic else model
    _, height, width, _ = model.input_shape
    images = keras.Input((height, width), name=INPUT)
    return keras.Model(images, scores(layers.Reshape((height, width, 1))(images)), name=model.name)


class _Errors(logging.Handler):
    """The messages of the error records logged to it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[list[str]]:
    """The exporter kept off stdout and stderr: tf2onnx's log records caught (its errors yielded), and the
    FutureWarning of Keras' numpy 2 patch for tf2onnx hidden."""
    logger = logging.getLogger("tf2onnx")
    errors, propagate = _Errors(), logger.propagate
    logger.addHandler(errors)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*np\.object", category=FutureWarning)
            yield errors.messages
    finally:
        logger.removeHandler(errors)
        logger.propagate = propagate


def _exported(model: keras.Model) -> onnx.ModelProto:
    """Keras' exporter's graph of ``model``, images (N, H, W) → scores, by way of a temporary file."""
    onnx = onnx_module("onnx")
    onnx_module("tf2onnx")
    signature = [keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32", name=INPUT)]
    with tempfile.TemporaryDirectory() as tmp, _quiet_exporter() as errors:
        path = Path(tmp, "model.onnx")
        try:
            model.export(path, format="onnx", input_signature=signature, opset_version=OPSET, verbose=False)
        except Exception as error:
            reason = str(error).splitlines()[0][:200] if str(error) else ""
            raise M2NISTError(
                f"model {model.name!r}: the ONNX exporter failed ({type(error).__name__}: {reason}), expected a "
                "model of layers that tf2onnx converts"
            ) from error
        unsupported = [found for message in errors for found in re.findall(r"\[(.+?)\] is not supported", message)]
        if unsupported:
            raise M2NISTError(
                f"model {model.name!r}: found TensorFlow ops that the ONNX exporter cannot convert "
                f"({'; '.join(unsupported)}), expected layers with ONNX equivalents"
            )
        return onnx.load(path)


def standard_export(model: keras.Model) -> onnx.ModelProto:
    """The graph that Keras' standard exporter (``model.export(..., format="onnx")``, tf2onnx inside) writes of
    ``model``'s class scores, before any rewrite: input ``images`` float32 (N, H, W), values 0–255; one output,
    the scores (N, H, W, C) float32, without a last softmax or sigmoid.

    ``model``: a Keras model of one-channel images (N, H, W, 1), values 0–255, to class scores or probabilities
    (N, H, W, C), such as any model of the series (:func:`m2nist_seg.model.build_fcn`'s, or the learner's from
    notebook 02); one trained under mixed precision is exported in float32.
    """
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or model.input_shape[-1] != 1:
        raise M2NISTError(f"model: found {type(model).__name__}, expected a Keras model of one-channel images")
    _, height, width, _ = model.input_shape
    if len(model.output_shape) != 4 or model.output_shape[1:3] != (height, width):
        raise M2NISTError(f"model: found outputs {model.output_shape}, expected one score map per input pixel")
    return _exported(_scores_model(model))


def to_onnx(model: keras.Model) -> onnx.ModelProto:
    """The float32 ONNX graph (an ``onnx.ModelProto``) of a Keras segmentation model, as :func:`standard_export`
    takes it: that graph with the heads (:func:`m2nist_seg.deploy.passes.add_heads`), rewritten by :data:`PASSES`.

    Input ``images``: float32 (N, H, W), values 0–255. Outputs ``labels`` and ``ink_gated``: uint8 (N, H, W).
    """
    onnx = onnx_module("onnx")
    proto = passes.add_heads(standard_export(model))
    for rewrite in PASSES:
        proto = rewrite(proto)
    proto.graph.name = model.name
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(
    model: keras.Model | str | os.PathLike,
    path: str | os.PathLike,
    int8: bool = False,
    calibration_images: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (a Keras model or a ``.keras`` file) to ``path`` as ONNX (:func:`to_onnx`), atomically.

    ``int8=True`` writes the int8 graph (:func:`~m2nist_seg.deploy.quantize.quantize`), calibrated on
    ``calibration_images``: training images, uint8 or float (n, 64, 84), never test images. An existing ``path``
    is replaced only with ``overwrite=True``.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise M2NISTError(f"{path}: found suffix {path.suffix!r}, expected a path ending in .onnx")
    if path.exists() and not overwrite:
        raise M2NISTError(f"{path}: already exists, expected a new path (or overwrite=True to replace it)")
    images = check_calibration_images(calibration_images) if int8 else None
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
