"""Training: data → model → compile → fit → best checkpoint → evaluation report, in one call.

A run writes to ``runs/<name>/``:

- ``model.keras``: the model of the epoch with the best validation mean digit IoU, saved for inference
  (without optimizer state or compile settings: ``model.compile(...)`` it again to train further);
- ``history.csv``: loss and digit mIoU per epoch, train and validation;
- ``report.json``: the evaluation of ``model.keras`` on the test split (see :mod:`m2nist_seg.evaluate`);
- ``backup/``: BackupAndRestore's state while training runs, so that an interrupted run resumes where it stopped.

Distribution: ``train`` builds the model inside a ``tf.distribute`` strategy's scope. The default is the
one-device strategy; pass ``tf.distribute.MirroredStrategy()`` for several GPUs, or
``MultiWorkerMirroredStrategy()`` (configured by ``TF_CONFIG``) for several machines.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from m2nist_seg import data, losses, metrics
from m2nist_seg import model as fcn
from m2nist_seg.atomic import atomic_path
from m2nist_seg.errors import M2NISTError
from m2nist_seg.settings import RUNS_DIR, SHIPPED_MODEL

log = logging.getLogger(__name__)

LossName = Literal["ce_dice", "weighted_ce_dice", "dice", "ce", "weighted_ce"]
LOSSES = ("ce_dice", "weighted_ce_dice", "dice", "ce", "weighted_ce")
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
REPORT_FILE = "report.json"


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the README's main job."""

    name: str = "fcn8"
    variant: fcn.Variant = "fcn8"
    loss: LossName = "ce_dice"
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 8e-3
    seed: int = 0
    source: data.Source = "generated"
    data_dir: str | None = None
    n_images: int = 5000
    fresh_digits: bool = True
    distort_digits: bool = False
    elastic_epochs: int = 0  # the first epochs also warp the distorted digits elastically
    patience: int = 4
    widths: tuple[int, ...] = fcn.DEFAULT_WIDTHS
    convs_per_block: tuple[int, ...] = fcn.DEFAULT_CONVS
    decoder_width: int = fcn.DEFAULT_DECODER_WIDTH
    dropout: float = 0.0
    time_budget_s: float | None = None
    deterministic: bool = False
    output_dir: str = str(RUNS_DIR)
    verbose: bool = True

    def validate(self) -> None:
        """Raise :class:`M2NISTError` naming the first bad field."""
        if self.loss not in LOSSES:
            raise M2NISTError(f"loss: found {self.loss!r}, expected one of {', '.join(LOSSES)}")
        if self.variant not in fcn.VARIANTS:
            raise M2NISTError(f"variant: found {self.variant!r}, expected one of {', '.join(fcn.VARIANTS)}")
        for name in ("epochs", "batch_size", "n_images", "patience"):
            if int(getattr(self, name)) < 1:
                raise M2NISTError(f"{name}: found {getattr(self, name)!r}, expected a positive integer")
        if self.learning_rate <= 0:
            raise M2NISTError(f"learning_rate: found {self.learning_rate!r}, expected a positive number")
        if not 0 <= self.dropout < 1:
            raise M2NISTError(f"dropout: found {self.dropout!r}, expected a rate in [0, 1)")
        if self.elastic_epochs < 0 or (self.elastic_epochs and not self.distort_digits):
            raise M2NISTError(
                f"elastic_epochs: found {self.elastic_epochs!r} with distort_digits={self.distort_digits}, "
                "expected 0, or a positive number of epochs with distort_digits=True"
            )

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def make_loss(name: LossName, train_labels: np.ndarray) -> keras.losses.Loss:
    """The named loss; class weights, where used, come from the training labels only."""
    weights = losses.class_weights(train_labels) if name.startswith("weighted") else None
    if name in ("ce_dice", "weighted_ce_dice"):
        return losses.CombinedLoss(weights)
    if name == "dice":
        return losses.SoftDiceLoss()
    return losses.WeightedCrossEntropy(weights)


def fresh_training_data(config: TrainConfig, n: int, first_epoch: int = 0) -> tf.data.Dataset:
    """An endless stream of batches whose digit combinations are drawn anew each epoch from the train pool.

    Epoch ``e`` uses generator seed ``(config.seed, e)``; with ``config.distort_digits`` every digit is randomly
    distorted (:func:`m2nist_seg.data.distort_digits`), and also warped elastically in epochs
    ``e < config.elastic_epochs``. ``first_epoch`` is the epoch that the stream starts at (a resumed run's).
    Test-pool digits are never used.
    """

    def epochs():
        for epoch in range(first_epoch, 1_000_000):
            seed = int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0])
            elastic = epoch < config.elastic_epochs
            yield data.generate_labels(n, seed=seed, pool="train", distort=config.distort_digits, elastic=elastic)

    signature = (
        tf.TensorSpec((n, data.HEIGHT, data.WIDTH), tf.uint8),
        tf.TensorSpec((n, data.HEIGHT, data.WIDTH), tf.uint8),
    )
    epochs_ds = tf.data.Dataset.from_generator(epochs, output_signature=signature)
    batches = epochs_ds.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)))
    batches = batches.batch(config.batch_size, drop_remainder=True)
    return batches.map(data.to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


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


def _check_output(run_dir: Path) -> None:
    shipped = SHIPPED_MODEL.parent.resolve()
    if run_dir.resolve() == shipped or shipped in run_dir.resolve().parents:
        raise M2NISTError(f"output_dir: found {run_dir}, expected a folder outside the shipped model's {shipped}")


def _logged_val_miou(history: Path) -> list[float]:
    """The validation digit mIoU of each epoch logged in a run's history; empty when there is none."""
    import pandas as pd

    try:
        return [float(v) for v in pd.read_csv(history)["val_digit_miou"]]
    except (OSError, KeyError, ValueError, pd.errors.EmptyDataError):
        return []


def train(
    config: TrainConfig | None = None,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    build_model: Callable[[], keras.Model] | None = None,
    compile_model: Callable[[keras.Model], None] | None = None,
) -> dict:
    """Train a model by ``config`` and evaluate its best checkpoint on the test split.

    ``callbacks`` are added to the run's own. ``build_model`` (no arguments, returns an uncompiled Keras model
    taking raw 0–255 images (N, 64, 84, 1) and returning probabilities (N, 64, 84, 11)) replaces
    :func:`m2nist_seg.model.build_fcn`, and ``compile_model(model)`` replaces the default compile step (Adam
    with cosine decay, the config's loss, :class:`~m2nist_seg.metrics.MeanDigitIoU`); a learner's own model and
    compile step train this way. Both run inside the strategy's scope. A custom compile step must track
    ``MeanDigitIoU`` (named ``digit_miou``): checkpointing and early stopping read it.

    Returns the evaluation report as a dict (also written to ``runs/<name>/report.json``). A run interrupted
    while training resumes from its last finished epoch when called again with the same config.
    """
    from m2nist_seg import evaluate

    config = config or TrainConfig()
    config.validate()
    run_dir = config.run_dir
    _check_output(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    backup = run_dir / "backup"
    resuming = backup.exists()
    logged = _logged_val_miou(run_dir / HISTORY_FILE) if resuming else []
    splits = data.load(config.source, directory=config.data_dir, n=config.n_images, seed=config.seed)
    steps = len(splits.train) // config.batch_size
    if steps < 1:
        raise M2NISTError(
            f"batch_size: found {config.batch_size}, expected at most the {len(splits.train)} training images"
        )
    if config.fresh_digits and config.source == "generated":
        train_data = fresh_training_data(config, steps * config.batch_size, first_epoch=len(logged))
    else:
        train_data = data.make_dataset(*splits.train, batch_size=config.batch_size, shuffle=True, seed=config.seed)
    val_data = data.make_dataset(*splits.val, batch_size=128)

    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        if build_model is None:
            model = fcn.build_fcn(
                config.variant,
                widths=tuple(config.widths),
                convs_per_block=tuple(config.convs_per_block),
                decoder_width=config.decoder_width,
                dropout=config.dropout,
            )
        else:
            model = build_model()
        if compile_model is None:
            schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=config.epochs * steps)
            model.compile(
                optimizer=keras.optimizers.Adam(schedule),
                loss=make_loss(config.loss, splits.train.labels),
                metrics=[metrics.MeanDigitIoU()],
            )
        else:
            compile_model(model)

    checkpoint = run_dir / ".best.keras"
    best_so_far = max(logged) if logged and checkpoint.exists() else None
    if resuming:
        log.info("resuming the interrupted run in %s", run_dir)
    run_callbacks = [
        keras.callbacks.ModelCheckpoint(
            checkpoint,
            monitor="val_digit_miou",
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        keras.callbacks.EarlyStopping(monitor="val_digit_miou", mode="max", patience=config.patience),
        keras.callbacks.CSVLogger(run_dir / HISTORY_FILE, append=resuming),
        keras.callbacks.BackupAndRestore(backup),
        *callbacks,
    ]
    if config.verbose:
        run_callbacks.append(EpochProgress(config.epochs))
    if config.time_budget_s is not None:
        run_callbacks.append(TimeBudget(config.time_budget_s))

    log.info("training %s (%d parameters) for up to %d epochs", model.name, fcn.count_params(model), config.epochs)
    start = time.perf_counter()
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        steps_per_epoch=steps,
        callbacks=run_callbacks,
        shuffle=False,
        verbose=0,
    )
    train_seconds = time.perf_counter() - start
    if not checkpoint.exists():
        model.save(checkpoint)
    best = keras.models.load_model(checkpoint, compile=False)
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        best.save(tmp)
    checkpoint.unlink()

    report = evaluate.evaluate(best, splits.test)
    report["training"] = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()},
        "seconds": round(train_seconds, 1),
        "images_seen": int(keras.ops.convert_to_numpy(model.optimizer.iterations)) * config.batch_size,
        "parameters": fcn.count_params(best),
        "source": splits.source,
    }
    evaluate.save_report(report, run_dir / REPORT_FILE)
    return report


class PredictionRecorder(keras.callbacks.Callback):
    """Record the model's label maps for a few images after every epoch, to watch the predictions sharpen.

    ``images``: uint8 (n, 64, 84). After each epoch, ``label_maps`` gains one uint8 array (n, 64, 84) of
    predicted labels (:func:`m2nist_seg.evaluate.predict`); :func:`m2nist_seg.plots.plot_prediction_strip`
    draws them.
    """

    def __init__(self, images: np.ndarray):
        super().__init__()
        self.images = images
        self.label_maps: list[np.ndarray] = []

    def on_epoch_end(self, epoch, logs=None):
        from m2nist_seg import evaluate

        self.label_maps.append(evaluate.predict(self.model, self.images))
