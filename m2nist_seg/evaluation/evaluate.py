"""Evaluation: predict label maps, and report how well a model segments a split.

The report holds per-class IoU and Dice, mean digit IoU and Dice, the worst digit, pixel accuracy, the
confusion matrix and counts. It also holds, in a separate ``ink_gated`` section, the scores of an optional
refinement: M2NIST's digit pixels are exactly its ink (image > 0), so a prediction can label every ink-free
pixel background and every ink pixel with its most likely digit. The plain FCN-8 numbers never include it.
"""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.validation import check_batch_size, check_images
from m2nist_seg.evaluation import metrics
from m2nist_seg.evaluation.onnx_runtime import OnnxPredictor, load_onnx

_predictors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` model saved by this package (the shipped one, or a run's ``model.keras``)."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".keras":
        raise M2NISTError(f"{path}: model not found, expected an existing .keras file")
    try:
        return keras.models.load_model(path)
    except Exception as err:  # Keras raises ValueError, OSError, KeyError or zipfile errors by the damage
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise M2NISTError(
            f"{path}: not a readable Keras model ({reason}); expected a complete .keras file saved by this package "
            "(is it truncated or corrupt?)"
        ) from None


LabelMap = Literal["plain", "ink_gated"]


def _predictor(model: keras.Model, kinds: tuple[LabelMap, ...]):
    """A compiled function images → one label map per kind.

    It runs the model with batch norm folded into the convolutions (refreshed from ``model``'s current weights
    on every call, so further training is never ignored) and skips the softmax: argmax needs no exp.
    """
    cache = _predictors.setdefault(model, {})
    if cache.get("inference") is not model:  # the model itself: it could not be folded
        try:
            cache["inference"] = fcn.fold_batch_norm(model, into=cache.get("inference"))
        except ValueError:
            cache["inference"] = model  # not a model of today's build_fcn: run it as it is
    inference = cache["inference"]
    if kinds not in cache:
        has_crop = "crop" in {layer.name for layer in inference.layers}
        scores_model = keras.Model(inference.inputs, inference.get_layer("crop").output) if has_crop else inference

        @tf.function(reduce_retracing=True)
        def run(batch):
            scores = scores_model(tf.cast(batch[..., None], tf.float32), training=False)
            maps = []
            for kind in kinds:
                if kind == "plain":
                    labels = tf.argmax(scores, axis=-1, output_type=tf.int32)
                else:
                    digit = tf.argmax(scores[..., : data.NUM_DIGITS], axis=-1, output_type=tf.int32)
                    labels = tf.where(batch > 0, digit, data.BACKGROUND)
                maps.append(tf.cast(labels, tf.uint8))
            return maps

        cache[kinds] = run
    return cache[kinds]


def _label_maps(model: keras.Model, images: np.ndarray, batch_size: int, kinds: tuple[LabelMap, ...]) -> list:
    images = check_images(images)
    check_batch_size(batch_size)
    run = _predictor(model, kinds)
    batches = [run(tf.constant(images[start : start + batch_size])) for start in range(0, len(images), batch_size)]
    if not batches:
        return [np.zeros((0, *data.IMAGE_SHAPE), dtype=np.uint8) for _ in kinds]
    return [np.concatenate([maps[k].numpy() for maps in batches]) for k in range(len(kinds))]


def predict_both(
    model: keras.Model | str | os.PathLike, images: np.ndarray, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Plain and ink-gated label maps, uint8 (N, 64, 84) each, for a model and images as :func:`predict`
    takes them."""
    if isinstance(model, str | os.PathLike):
        return predict(model, images, batch_size), predict(model, images, batch_size, ink_gated=True)
    plain, gated = _label_maps(model, images, batch_size, ("plain", "ink_gated"))
    return plain, gated


def predict(
    model: keras.Model | str | os.PathLike, images: np.ndarray, batch_size: int = 64, ink_gated: bool = False
) -> np.ndarray:
    """Label maps uint8 (N, 64, 84) for ``images``: uint8 or float (N, 64, 84) or (N, 64, 84, 1), values 0–255.

    ``model`` is a Keras model, or the path of an ONNX graph written by :mod:`m2nist_seg.deploy.export` (float32 or
    int8, such as ``models/fcn8_m2nist.int8.onnx``), which ONNX Runtime runs; its session is kept for the next
    call while the file is unchanged. With ``ink_gated``, ink-free pixels are background and ink pixels take
    their most likely digit.
    """
    if isinstance(model, str | os.PathLike):
        return _onnx_predictor(model).predict(images, ink_gated=ink_gated, batch_size=batch_size)
    (labels,) = _label_maps(model, images, batch_size, ("ink_gated",) if ink_gated else ("plain",))
    return labels


def class_scores(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The per-pixel class scores (logits) of a :func:`~m2nist_seg.model.build_fcn` model before its output
    activation: float32 (N, 64, 84, 11) for images as :func:`predict` takes them."""
    images = check_images(images)
    if "crop" not in {layer.name for layer in model.layers}:
        raise M2NISTError(f"model {model.name!r}: expected a model built by build_fcn (with a 'crop' layer)")
    scores_model = keras.Model(model.input, model.get_layer("crop").output)
    return keras.ops.convert_to_numpy(scores_model(images[..., None].astype(np.float32), training=False))


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _section(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    matrix = metrics.confusion_matrix(y_true, y_pred)
    scores = metrics.scores_from_confusion(matrix)
    table = metrics.report_from_confusion(matrix)
    digit_iou = scores.iou[: data.NUM_DIGITS]
    worst = int(np.nanargmin(digit_iou)) if not np.isnan(digit_iou).all() else None
    return {
        "mean_digit_iou": _number(scores.mean_digit_iou),
        "mean_digit_dice": _number(scores.mean_digit_dice),
        "worst_digit": None if worst is None else {"class": worst, "iou": float(digit_iou[worst])},
        "pixel_accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "per_class": json.loads(metrics.report_to_json(table)),
        "confusion_matrix": matrix.tolist(),
    }


def evaluate(model: keras.Model | str | os.PathLike, split: data.Split, batch_size: int = 64) -> dict:
    """A JSON-ready report of ``model`` (a Keras model, or the path of an exported ``.onnx`` graph) on ``split``
    (plain FCN scores, and the ink-gated ones apart)."""
    plain, gated = predict_both(model, split.images, batch_size)
    name = Path(model).name if isinstance(model, str | os.PathLike) else model.name
    return report_from_predictions(name, split.labels, plain, gated)


def report_from_predictions(name: str, labels: np.ndarray, plain: np.ndarray, gated: np.ndarray) -> dict:
    """The report of :func:`evaluate` from true ``labels`` and the ``plain`` and ``gated`` label maps that
    :func:`predict_both` gave, uint8 (N, 64, 84) each; ``name`` is the model's."""
    report = {
        "model": name,
        "counts": {"images": len(labels), "pixels": int(labels.size)},
        **_section(labels, plain),
        "ink_gated": {
            key: value
            for key, value in _section(labels, gated).items()
            if key in ("mean_digit_iou", "mean_digit_dice", "worst_digit", "pixel_accuracy")
        },
    }
    return report


def save_report(report: dict, path: str | os.PathLike) -> Path:
    """Write ``report`` as JSON to ``path`` atomically (a temporary file renamed into place)."""
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def load_report(path: str | os.PathLike) -> dict:
    """Read a report written by :func:`save_report`."""
    path = Path(path)
    if not path.is_file():
        raise M2NISTError(f"{path}: report not found, expected a report.json written by training or evaluation")
    return json.loads(path.read_text())


def format_report(report: dict, ink_gated: bool = True) -> str:
    """A plain-text summary of a report: per-class IoU and Dice, then the headline numbers.

    ``ink_gated=False`` leaves out the line of the ink-gated refinement (for readers who have not met it yet).
    """
    lines = [f"{'class':>10}  {'IoU':>6}  {'Dice':>6}  {'pixels':>8}"]
    for name, row in report["per_class"].items():
        iou = "   n/a" if row["iou"] is None else f"{row['iou']:6.3f}"
        dice = "   n/a" if row["dice"] is None else f"{row['dice']:6.3f}"
        lines.append(f"{name:>10}  {iou}  {dice}  {row['support']:8d}")
    worst = report["worst_digit"]
    gated = report["ink_gated"]
    lines += [
        "",
        f"{report['model']} on {report['counts']['images']} images",
        f"mean digit IoU  {report['mean_digit_iou']:.4f}   mean digit Dice {report['mean_digit_dice']:.4f}",
        f"worst digit     {worst['class']} (IoU {worst['iou']:.4f})" if worst else "worst digit     n/a",
        f"pixel accuracy  {report['pixel_accuracy']:.4f}",
    ]
    if ink_gated:
        lines.append(
            f"ink-gated refinement: mean digit IoU {gated['mean_digit_iou']:.4f}, Dice {gated['mean_digit_dice']:.4f}"
        )
    return "\n".join(lines)


_onnx_predictors: dict = {}


def _onnx_predictor(path: str | os.PathLike) -> OnnxPredictor:
    """The :class:`~m2nist_seg.evaluation.onnx_runtime.OnnxPredictor` of an ``.onnx`` file, loaded again only
    when the file changes."""

    stat = Path(path).stat() if Path(path).is_file() else None
    version = (stat.st_mtime_ns, stat.st_size) if stat else None
    key = Path(path).resolve()
    if version is None or _onnx_predictors.get(key, (None,))[0] != version:
        _onnx_predictors[key] = (version, load_onnx(path))
    return _onnx_predictors[key][1]
