"""The Keras callbacks of a training run: progress lines, the time budget, the run's state record, early
stopping that survives a resume, and the notebook's recorder of predictions epoch by epoch."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.evaluation import evaluate
from m2nist_seg.training import runs
from m2nist_seg.training.config import TrainConfig


class EpochProgress(keras.callbacks.Callback):
    """One line per epoch: elapsed time, losses and digit mIoU, and an estimate of the time left."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        elapsed = time.perf_counter() - self.start
        left = elapsed / (epoch + 1) * (self.epochs - epoch - 1)
        parts = [f"epoch {epoch + 1}/{self.epochs}", f"{elapsed:5.0f}s"]
        parts += [
            f"{key} {logs[key]:.4f}" for key in ("loss", "digit_miou", "val_loss", "val_digit_miou") if key in logs
        ]
        parts.append(f"~{left:.0f}s left")
        print(" · ".join(parts), flush=True)


class TimeBudget(keras.callbacks.Callback):
    """Stop training once ``seconds`` of wall time have passed (checked after every batch)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.start >= self.seconds:
            self.model.stop_training = True


class RunState(keras.callbacks.Callback):
    """After each epoch: keep the best checkpoint (by validation mean digit IoU), back up the weights and
    optimizer state, then record the finished epoch in ``state.json``. Every file is written atomically, and
    the record is written last, so a run killed at any moment resumes from a consistent epoch.

    ``state``: the record to continue from (a resumed run's), or None. ``history.csv`` is written by Keras'
    CSVLogger before this callback runs; on resuming, :func:`train` trims it to the recorded epochs.
    """

    def __init__(self, run_dir: Path, config: TrainConfig, state: dict | None, seconds_before: float = 0.0):
        super().__init__()
        self.run_dir, self.config = run_dir, config
        self.state = state or {"epoch": 0, "weights": None, "best": None}
        self.seconds_before = seconds_before

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    @property
    def best_value(self) -> float | None:
        return None if self.state["best"] is None else self.state["best"]["val_digit_miou"]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        finished = epoch + 1
        best = self.state["best"]
        value = logs.get("val_digit_miou")
        if value is not None and not np.isnan(value) and (self.best_value is None or value > self.best_value):
            name = runs.best_file(finished)
            with atomic_path(self.run_dir / name) as tmp:
                self.model.save(tmp)
            best = {"epoch": finished, "val_digit_miou": float(value), "file": name}
        weights = runs.backup_file(finished)
        with atomic_path(self.run_dir / weights) as tmp:
            self.model.save_weights(tmp)
        self.state = {
            "epoch": finished,
            "weights": weights,
            "best": best,
            "seconds": round(self.seconds_before + time.perf_counter() - self.start, 1),
            "config": self.config.resume_key(),
        }
        runs.write_state(self.run_dir, self.state)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on validation mean digit IoU that, in a resumed run, counts the epochs without
    improvement from the recorded best epoch, as the uninterrupted run would have."""

    def __init__(self, state: dict | None, patience: int):
        super().__init__(monitor="val_digit_miou", mode="max", patience=patience)
        self.resumed_from = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        best = (self.resumed_from or {}).get("best")
        if best:
            self.best, self.best_epoch = best["val_digit_miou"], best["epoch"] - 1
            self.wait = self.resumed_from["epoch"] - best["epoch"]


class PredictionRecorder(keras.callbacks.Callback):
    """Record the model's label maps for a few images after every epoch, to watch the predictions sharpen.

    ``images``: uint8 (n, 64, 84). After each epoch, ``label_maps`` gains one uint8 array (n, 64, 84) of
    predicted labels (:func:`m2nist_seg.evaluation.evaluate.predict`);
    :func:`m2nist_seg.viz.plots.plot_prediction_strip` draws them.
    """

    def __init__(self, images: np.ndarray):
        super().__init__()
        self.images = images
        self.label_maps: list[np.ndarray] = []

    def on_epoch_end(self, epoch, logs=None):
        self.label_maps.append(evaluate.predict(self.model, self.images))
