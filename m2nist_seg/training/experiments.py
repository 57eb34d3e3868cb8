"""Controlled comparisons behind the notebooks' claims, too long to run in a learner's cell.

Each experiment trains several configurations for the same number of epochs, with several seeds, and scores
every best checkpoint on the same test split (``data.load()``'s, seed 0), so that arms differ only in what is
compared. ``benchmarks/bench_evidence.py`` runs them and writes the results to ``evidence/*.json``; the
notebooks read those files with :func:`load_evidence` and plot them.

A result is a dict: ``{"experiment", "command", "epochs", "seeds", "runs": [...]}``, each run holding its arm,
seed, per-epoch history (``loss``, ``val_digit_miou``), test mean digit IoU and Dice, per-class IoU and
training seconds.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import PROJECT_ROOT
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.training.config import NO_WARMUP_SCHEDULE, TrainConfig
from m2nist_seg.training.runs import HISTORY_FILE, MODEL_FILE
from m2nist_seg.training.train import train

EVIDENCE_DIR = PROJECT_ROOT / "evidence"
EVIDENCE_COMMAND = "python benchmarks/bench_evidence.py"
# The evidence was made on the default run's schedule of its time (Adam 8e-3, cosine decay, no warm-up).
EVIDENCE_SCHEDULE = NO_WARMUP_SCHEDULE


def _run(
    arm: str,
    config: TrainConfig,
    test: data.Split,
    build_model: Callable[[], keras.Model] | None = None,
    compile_model: Callable[[keras.Model], None] | None = None,
    keep_predictions: int = 0,
) -> dict:
    start = time.perf_counter()
    report = train(config, build_model=build_model, compile_model=compile_model)
    seconds = time.perf_counter() - start
    run_dir = Path(config.output_dir) / report["training"]["run"]
    best = evaluate.load_model(run_dir / MODEL_FILE)
    predicted = evaluate.predict(best, test.images)
    scores = metrics.iou_dice(test.labels, predicted)
    history = pd.read_csv(run_dir / HISTORY_FILE)
    run = {
        "arm": arm,
        "seed": config.seed,
        "epochs": int(len(history)),
        "history": {
            key: [round(float(v), 5) for v in history[key]]
            for key in ("loss", "digit_miou", "val_loss", "val_digit_miou")
        },
        "best_val_digit_miou": round(float(history["val_digit_miou"].max()), 5),
        "test_mean_digit_iou": round(scores.mean_digit_iou, 5),
        "test_mean_digit_dice": round(scores.mean_digit_dice, 5),
        "test_iou": [None if np.isnan(v) else round(float(v), 5) for v in scores.iou],
        "seconds": round(seconds, 1),
    }
    if keep_predictions:
        run["predictions"] = encode_label_maps(predicted[:keep_predictions])
    print(
        f"{arm} seed {config.seed}: test mean digit IoU {scores.mean_digit_iou:.3f} after {len(history)} epochs "
        f"({seconds:.0f} s)",
        flush=True,
    )
    return run


_LABEL_CHARACTERS = np.frombuffer(b"0123456789a", dtype=np.uint8)


def encode_label_maps(labels: np.ndarray) -> list[str]:
    """Label maps uint8 (n, 64, 84) → n strings of 64·84 characters, one per pixel ('0'–'9', 'a' for background).

    Evidence files keep a few predictions this way: a character per pixel instead of a JSON list of numbers.
    """
    return [_LABEL_CHARACTERS[image.ravel()].tobytes().decode() for image in np.asarray(labels)]


def decode_label_maps(encoded: list[str]) -> np.ndarray:
    """The inverse of :func:`encode_label_maps`: label maps uint8 (n, 64, 84)."""
    codes = np.array([np.frombuffer(text.encode(), dtype=np.uint8) for text in encoded])
    labels = np.searchsorted(_LABEL_CHARACTERS, codes).astype(np.uint8)
    return labels.reshape(len(encoded), data.HEIGHT, data.WIDTH)


def predictions(run: dict) -> np.ndarray:
    """The label maps uint8 (n, 64, 84) that an evidence run kept for the first n test images."""
    return decode_label_maps(run["predictions"])


def evidence_config(output_dir: str, name: str, epochs: int, seed: int, **overrides) -> TrainConfig:
    """The config of one evidence run: no early stopping (every arm trains for the full budget), on the
    schedule the evidence was made with (:data:`EVIDENCE_SCHEDULE`), ``overrides`` changed."""
    settings = {**EVIDENCE_SCHEDULE, **overrides}
    return TrainConfig(
        name=name, epochs=epochs, patience=epochs, seed=seed, output_dir=output_dir, verbose=False, **settings
    )


def compare_losses(
    losses: Sequence[str] = ("ce", "ce_dice", "weighted_ce"),
    seeds: Sequence[int] = (0, 1),
    budgets: Sequence[int] = (2, 8),
) -> dict:
    """Each loss trained for each budget (epochs, cosine decay over the budget) and seed; default run otherwise."""
    test = data.load().test
    runs = []
    with tempfile.TemporaryDirectory() as output_dir:
        for epochs in budgets:
            for loss in losses:
                for seed in seeds:
                    config = evidence_config(output_dir, f"{loss}-{epochs}-{seed}", epochs, seed, loss=loss)
                    runs.append({**_run(loss, config, test), "budget": epochs})
    return {"experiment": "losses", "command": f"{EVIDENCE_COMMAND} losses", "budgets": list(budgets), "runs": runs}


def compare_variants(
    variants: Sequence[str] = fcn.VARIANTS[::-1], seeds: Sequence[int] = (0, 1), epochs: int = 16
) -> dict:
    """FCN-32, FCN-16 and FCN-8 with the same encoder, loss and budget, for each seed."""
    test = data.load().test
    runs = []
    with tempfile.TemporaryDirectory() as output_dir:
        for variant in variants:
            for seed in seeds:
                config = evidence_config(output_dir, f"{variant}-{seed}", epochs, seed, variant=variant)
                runs.append(_run(variant, config, test, keep_predictions=3))
    return {"experiment": "variants", "command": f"{EVIDENCE_COMMAND} variants", "epochs": epochs, "runs": runs}


def _compile_sigmoid(model: keras.Model) -> None:
    """The original tutorial's compile step: binary cross-entropy on one-hot masks (the evidence's Adam rate)."""

    def binary_crossentropy_on_one_hot(y_true, y_pred):
        one_hot = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), data.NUM_CLASSES)
        return keras.losses.binary_crossentropy(one_hot, y_pred)

    model.compile(
        optimizer=keras.optimizers.Adam(EVIDENCE_SCHEDULE["learning_rate"]),
        loss=binary_crossentropy_on_one_hot,
        metrics=[metrics.MeanDigitIoU()],
    )


def _compile_softmax(model: keras.Model) -> None:
    """The same optimiser with softmax + plain cross-entropy, so that only the output and loss differ."""
    model.compile(
        optimizer=keras.optimizers.Adam(EVIDENCE_SCHEDULE["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[metrics.MeanDigitIoU()],
    )


def compare_outputs(seeds: Sequence[int] = (0, 1), epochs: int = 2) -> dict:
    """Our FCN-8 with sigmoid + binary cross-entropy (the original's choice) vs softmax + cross-entropy."""
    test = data.load().test
    runs = []
    arms = {
        "sigmoid + binary cross-entropy": ("sigmoid", _compile_sigmoid),
        "softmax + cross-entropy": ("softmax", _compile_softmax),
    }
    with tempfile.TemporaryDirectory() as output_dir:
        for arm, (activation, compile_model) in arms.items():
            for seed in seeds:
                config = evidence_config(output_dir, f"{activation}-{seed}", epochs, seed)
                runs.append(
                    _run(
                        arm,
                        config,
                        test,
                        build_model=lambda activation=activation: fcn.build_fcn8(output_activation=activation),
                        compile_model=compile_model,
                        keep_predictions=3,
                    )
                )
    return {"experiment": "outputs", "command": f"{EVIDENCE_COMMAND} outputs", "epochs": epochs, "runs": runs}


EXPERIMENTS = {"losses": compare_losses, "variants": compare_variants, "outputs": compare_outputs}


def save_evidence(result: dict, directory: str | os.PathLike = EVIDENCE_DIR) -> Path:
    """Write an experiment's result to ``directory/<experiment>.json`` atomically."""
    path = Path(directory) / f"{result['experiment']}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    return path


def load_evidence(experiment: str, directory: str | os.PathLike = EVIDENCE_DIR) -> dict:
    """Read ``directory/<experiment>.json``, written by ``python benchmarks/bench_evidence.py <experiment>``."""
    path = Path(directory) / f"{experiment}.json"
    if not path.is_file():
        raise M2NISTError(f"{path}: evidence not found; regenerate it with {EVIDENCE_COMMAND} {experiment}")
    return json.loads(path.read_text())


def summary(result: dict, by: Sequence[str] = ("arm",)) -> pd.DataFrame:
    """Test mean digit IoU per arm (and budget): mean, min and max over seeds, and the number of seeds."""
    frame = pd.DataFrame(result["runs"])
    grouped = frame.groupby(list(by), sort=False)["test_mean_digit_iou"]
    return grouped.agg(["mean", "min", "max", "count"]).rename(columns={"count": "seeds"})
