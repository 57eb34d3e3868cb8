"""Training: data → model → compile → fit → best checkpoint → evaluation report, in one call.

A run writes to ``runs/<name>/``:

- ``model.keras``: the model of the epoch with the best validation mean digit IoU, saved for inference
  (without optimizer state or compile settings: ``model.compile(...)`` it again to train further);
- ``history.csv``: loss and digit mIoU per epoch, train and validation;
- ``report.json``: the evaluation of ``model.keras`` on the test split (see :mod:`m2nist_seg.evaluation.evaluate`);
- while training runs, ``state.json`` (the last finished epoch, written atomically after that epoch's backup),
  ``backup/`` (weights and optimizer state of that epoch) and ``.best-epoch-N.keras`` (the best checkpoint so
  far), so that an interrupted run resumes exactly where it stopped when called again with the same config.

A finished run is never overwritten: a second run of the same name goes to ``<name>-2`` (then ``-3``, …) and
says so, unless ``overwrite=True`` asks to replace it. Checkpoints and model selection read the validation
split only; the test split is scored once, at the end.

Distribution: ``train`` builds the model inside a ``tf.distribute`` strategy's scope. The default is the
one-device strategy; pass ``tf.distribute.MirroredStrategy()`` for several GPUs, or
``MultiWorkerMirroredStrategy()`` (configured by ``TF_CONFIG``) for several machines: then a custom training
loop replaces ``fit`` and only the chief writes the run folder (see :mod:`m2nist_seg.training.distributed`, which also
launches the workers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import RUNS_DIR, SHIPPED_MODEL
from m2nist_seg.evaluation import metrics
from m2nist_seg.model import losses
from m2nist_seg.training import distributed

log = logging.getLogger(__name__)

Precision = Literal["float32", "mixed_bfloat16"]
PRECISIONS = ("float32", "mixed_bfloat16")
LossName = Literal["ce_dice", "weighted_ce_dice", "dice", "ce", "weighted_ce"]
LOSSES = ("ce_dice", "weighted_ce_dice", "dice", "ce", "weighted_ce")
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
REPORT_FILE = "report.json"
STATE_FILE = "state.json"
BACKUP_DIR = "backup"
FIGURES_DIR = "figures"
# The temporary names atomic_path gives the run's own files while it writes them.
TEMPORARY_FILES = (".model-*.keras", ".history-*.csv", ".report-*.json", ".state-*.json", "..best-epoch-*.keras")
# Options that may change between an interrupted run and its resumption: where it runs and how it reports.
RESUMABLE_CHANGES = frozenset({"name", "output_dir", "verbose", "overwrite", "time_budget_s"})


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the README's main job."""

    name: str = "fcn8"
    variant: fcn.Variant = "fcn8"
    loss: LossName = "ce_dice"
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 8e-3
    warmup_epochs: int = 0  # the learning rate first rises linearly from 0 to learning_rate over this many epochs
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
    precision: Precision = "float32"  # "mixed_bfloat16": bfloat16 arithmetic, float32 weights and output
    time_budget_s: float | None = None
    deterministic: bool = False
    output_dir: str = str(RUNS_DIR)
    verbose: bool = True
    overwrite: bool = False  # replace a finished or interrupted run of the same name instead of keeping it

    def validate(self) -> None:
        """Raise :class:`M2NISTError` naming the first bad field."""
        if self.loss not in LOSSES:
            raise M2NISTError(f"loss: found {self.loss!r}, expected one of {', '.join(LOSSES)}")
        if self.precision not in PRECISIONS:
            raise M2NISTError(f"precision: found {self.precision!r}, expected one of {', '.join(PRECISIONS)}")
        if self.variant not in fcn.VARIANTS:
            raise M2NISTError(f"variant: found {self.variant!r}, expected one of {', '.join(fcn.VARIANTS)}")
        for name in ("epochs", "batch_size", "n_images", "patience"):
            if int(getattr(self, name)) < 1:
                raise M2NISTError(f"{name}: found {getattr(self, name)!r}, expected a positive integer")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise M2NISTError(f"time_budget_s: found {self.time_budget_s!r}, expected a positive number of seconds")
        if self.learning_rate <= 0:
            raise M2NISTError(f"learning_rate: found {self.learning_rate!r}, expected a positive number")
        if not 0 <= self.dropout < 1:
            raise M2NISTError(f"dropout: found {self.dropout!r}, expected a rate in [0, 1)")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise M2NISTError(
                f"warmup_epochs: found {self.warmup_epochs!r} with epochs={self.epochs}, expected 0 to epochs − 1"
            )
        if self.elastic_epochs < 0 or (self.elastic_epochs and not self.distort_digits):
            raise M2NISTError(
                f"elastic_epochs: found {self.elastic_epochs!r} with distort_digits={self.distort_digits}, "
                "expected 0, or a positive number of epochs with distort_digits=True"
            )

    @property
    def run_dir(self) -> Path:
        """Where a run of this name goes (:func:`choose_run_dir` picks another one if it holds a finished run)."""
        return Path(self.output_dir) / self.name

    def resume_key(self) -> dict:
        """The options that must equal an interrupted run's for it to resume, as JSON-ready values."""
        fields = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items() if k not in RESUMABLE_CHANGES}


def run_status(run_dir: Path) -> Literal["empty", "interrupted", "finished"]:
    """What a run folder holds: nothing of a run, an interrupted run (a state record) or a finished one."""
    if (run_dir / STATE_FILE).is_file() or (run_dir / BACKUP_DIR).exists():
        return "interrupted"
    if (run_dir / REPORT_FILE).is_file() or (run_dir / MODEL_FILE).is_file():
        return "finished"
    return "empty"


def read_state(run_dir: Path) -> dict | None:
    """The state record of an interrupted run, or None when it has none (it stopped before its first epoch)."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise M2NISTError(f"{path}: unreadable run state, expected the JSON record of an interrupted run") from None


def differing_options(config: TrainConfig, state: dict) -> list[str]:
    """``option: recorded → now`` for each option that differs from an interrupted run's recorded config.

    An option that the record lacks (one added to :class:`TrainConfig` since the run was interrupted) counts as
    its default."""
    now, recorded = config.resume_key(), {**TrainConfig().resume_key(), **state.get("config", {})}
    return [f"{k}: {recorded.get(k)!r} → {now[k]!r}" for k in sorted(now) if recorded.get(k) != now[k]]


def choose_run_dir(config: TrainConfig) -> Path:
    """The folder a run of ``config`` writes to; it never holds a finished run unless ``config.overwrite``.

    ``<output_dir>/<name>`` when it is empty, holds an interrupted run of the same config (resumed), or
    ``overwrite`` is set (cleared first); otherwise the first of ``<name>-2``, ``<name>-3``, … that is not a
    finished run. An interrupted run of another config is refused with the options that differ.
    """
    base = config.run_dir
    if config.overwrite:
        _clear_run(base)
        return base
    candidate, number = base, 1
    while run_status(candidate) == "finished":
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    if run_status(candidate) == "interrupted":
        state = read_state(candidate)
        differences = differing_options(config, state) if state else []
        if differences:
            raise M2NISTError(
                f"{candidate}: an interrupted run with other options ({'; '.join(differences)}), expected the "
                "same config to resume it; pass overwrite=True (--overwrite) to replace it, or another name"
            )
    return candidate


def _clear_run(run_dir: Path) -> None:
    """Remove what a run wrote in ``run_dir`` (and nothing else)."""
    for name in (MODEL_FILE, HISTORY_FILE, REPORT_FILE, STATE_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for folder in (BACKUP_DIR, FIGURES_DIR):
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    for path in run_dir.glob(".best-epoch-*.keras") if run_dir.is_dir() else ():
        path.unlink()


@contextlib.contextmanager
def precision_policy(precision: Precision):
    """Build layers under Keras' ``precision`` dtype policy, then restore the global policy.

    Layers keep the policy they were built with: under ``"mixed_bfloat16"`` they compute in bfloat16 and keep
    float32 weights; the model's output layer is float32 either way.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_loss(name: LossName, train_labels: np.ndarray) -> keras.losses.Loss:
    """The named loss; class weights, where used, come from the training labels only."""
    weights = losses.class_weights(train_labels) if name.startswith("weighted") else None
    if name in ("ce_dice", "weighted_ce_dice"):
        return losses.CombinedLoss(weights)
    if name == "dice":
        return losses.SoftDiceLoss()
    return losses.WeightedCrossEntropy(weights)


def compile_default(model: keras.Model, config: TrainConfig, steps_per_epoch: int, train_labels: np.ndarray) -> None:
    """The default compile step: Adam, the config's loss (class weights, where used, from ``train_labels``
    (N, 64, 84)) and :class:`~m2nist_seg.evaluation.metrics.MeanDigitIoU`.

    The learning rate rises linearly from 0 to ``config.learning_rate`` over the first ``config.warmup_epochs``
    epochs (none by default), then decays to 0 along a cosine over the remaining epochs.
    """
    warmup_steps = config.warmup_epochs * steps_per_epoch
    decay_steps = config.epochs * steps_per_epoch - warmup_steps
    if warmup_steps:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps, warmup_target=config.learning_rate, warmup_steps=warmup_steps
        )
    else:
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=make_loss(config.loss, train_labels),
        metrics=[metrics.MeanDigitIoU()],
    )


def epoch_seed(seed: int, epoch: int) -> int:
    """The random seed of one training epoch: a function of the run's seed and the epoch number only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _stream(draw: Callable[[int], tuple[np.ndarray, np.ndarray]], n: int, batch_size: int, first_epoch: int):
    """Endless batches; epoch ``e`` holds the ``n`` images of ``draw(e)``, starting at ``first_epoch``."""

    def epochs():
        for epoch in range(first_epoch, 1_000_000):
            yield draw(epoch)

    signature = (
        tf.TensorSpec((n, data.HEIGHT, data.WIDTH), tf.uint8),
        tf.TensorSpec((n, data.HEIGHT, data.WIDTH), tf.uint8),
    )
    epochs_ds = tf.data.Dataset.from_generator(epochs, output_signature=signature)
    batches = epochs_ds.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)))
    batches = batches.batch(batch_size, drop_remainder=True)
    return batches.map(data.to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def fresh_training_data(config: TrainConfig, n: int, first_epoch: int = 0) -> tf.data.Dataset:
    """An endless stream of batches whose digit combinations are drawn anew each epoch from the train pool.

    Epoch ``e`` uses generator seed :func:`epoch_seed` ``(config.seed, e)``; with ``config.distort_digits``
    every digit is randomly distorted (:func:`m2nist_seg.data.distort_digits`), and also warped elastically in
    epochs ``e < config.elastic_epochs``. ``first_epoch`` is the epoch that the stream starts at (a resumed
    run's), so a resumed run sees exactly the batches an uninterrupted one would. Only train-pool digits are used.
    """

    def draw(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        elastic = epoch < config.elastic_epochs
        seed = epoch_seed(config.seed, epoch)
        return data.generate_labels(n, seed=seed, pool="train", distort=config.distort_digits, elastic=elastic)

    return _stream(draw, n, config.batch_size, first_epoch)


def shuffled_training_data(config: TrainConfig, split: data.Split, n: int, first_epoch: int = 0) -> tf.data.Dataset:
    """An endless stream of batches of a fixed training split, in an order drawn anew each epoch.

    Epoch ``e`` shows the first ``n`` images of a permutation seeded by :func:`epoch_seed` ``(config.seed, e)``,
    so that, as with :func:`fresh_training_data`, a resumed run sees the batches an uninterrupted one would.
    """

    def draw(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng(epoch_seed(config.seed, epoch)).permutation(len(split))[:n]
        return split.images[order], split.labels[order]

    return _stream(draw, n, config.batch_size, first_epoch)


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
            name = f".best-epoch-{finished}.keras"
            with atomic_path(self.run_dir / name) as tmp:
                self.model.save(tmp)
            best = {"epoch": finished, "val_digit_miou": float(value), "file": name}
        weights = f"{BACKUP_DIR}/epoch-{finished}.weights.h5"
        with atomic_path(self.run_dir / weights) as tmp:
            self.model.save_weights(tmp)
        self.state = {
            "epoch": finished,
            "weights": weights,
            "best": best,
            "seconds": round(self.seconds_before + time.perf_counter() - self.start, 1),
            "config": self.config.resume_key(),
        }
        with atomic_path(self.run_dir / STATE_FILE) as tmp:
            tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        _remove_unrecorded(self.run_dir, self.state)


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


def _remove_unrecorded(run_dir: Path, state: dict | None) -> None:
    """Delete backups and best checkpoints that the state record does not name (older ones, or ones written
    by an epoch that was killed before its record), and temporary files of interrupted writes."""
    keep = set()
    if state:
        keep = {state.get("weights"), (state.get("best") or {}).get("file")}
    for path in [*run_dir.glob(f"{BACKUP_DIR}/*"), *run_dir.glob(".best-epoch-*.keras")]:
        if str(path.relative_to(run_dir)) not in keep:
            path.unlink(missing_ok=True)
    for pattern in TEMPORARY_FILES:  # left by atomic_path when a write was killed
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)


def _trim_history(path: Path, epochs: int) -> None:
    """Keep the first ``epochs`` rows of a run's history (rows written by an epoch killed before its record)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) > epochs + 1:
        with atomic_path(path) as tmp:
            tmp.write_text("".join(lines[: epochs + 1]))


def train(
    config: TrainConfig | None = None,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    build_model: Callable[[], keras.Model] | None = None,
    compile_model: Callable[[keras.Model], None] | None = None,
) -> dict:
    """Train a model by ``config``, select its best epoch on the validation split, and evaluate that
    checkpoint once on the test split.

    ``callbacks`` are added to the run's own. ``build_model`` (no arguments, returns an uncompiled Keras model
    taking raw 0–255 images (N, 64, 84, 1) and returning probabilities (N, 64, 84, 11)) replaces
    :func:`m2nist_seg.model.build_fcn`, and ``compile_model(model)`` replaces the default compile step
    (:func:`compile_default`: Adam with cosine decay, the config's loss, the mean digit IoU metric); a
    learner's own model and compile step train this way. Both run inside the strategy's scope. A custom
    compile step must track ``MeanDigitIoU`` (named ``digit_miou``): checkpointing and early stopping read it.

    Returns the evaluation report as a dict (also written to ``report.json`` in the run folder, whose name is
    ``report["training"]["run"]``: see :func:`choose_run_dir`). A run interrupted while training resumes from
    its last recorded epoch when called again with the same config.
    """
    from m2nist_seg.evaluation import evaluate

    config = config or TrainConfig()
    config.validate()
    _check_output(config.run_dir)
    strategy = strategy or tf.distribute.get_strategy()
    chief = distributed.is_chief(strategy)
    run_dir = choose_run_dir(config) if chief else distributed.scratch_dir(config.name)
    if chief and run_dir != config.run_dir:
        print(
            f"{config.run_dir.name} holds a finished run, kept as it is; this run goes to {run_dir.name} "
            "(overwrite=True, or --overwrite, replaces a run instead)",
            flush=True,
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    state = read_state(run_dir)
    distributed.refuse_resume(strategy, run_dir, state)
    done = state["epoch"] if state else 0
    _remove_unrecorded(run_dir, state)
    _trim_history(run_dir / HISTORY_FILE, done)
    splits = data.load(config.source, directory=config.data_dir, n=config.n_images, seed=config.seed)
    steps = len(splits.train) // config.batch_size
    if steps < 1:
        raise M2NISTError(
            f"batch_size: found {config.batch_size}, expected at most the {len(splits.train)} training images"
        )
    if config.fresh_digits and config.source == "generated":
        train_data = fresh_training_data(config, steps * config.batch_size, first_epoch=done)
    else:
        train_data = shuffled_training_data(config, splits.train, steps * config.batch_size, first_epoch=done)
    val_data = data.make_dataset(*splits.val, batch_size=128)

    with strategy.scope(), precision_policy(config.precision):
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
            compile_default(model, config, steps, splits.train.labels)
        else:
            compile_model(model)
        if state:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(run_dir / state["weights"])

    if state:
        print(f"resuming the interrupted run in {run_dir.name} after epoch {done}", flush=True)
    run_state = RunState(run_dir, config, state, seconds_before=state.get("seconds", 0.0) if state else 0.0)
    run_callbacks = [
        ResumableEarlyStopping(state, patience=config.patience),
        keras.callbacks.CSVLogger(run_dir / HISTORY_FILE, append=done > 0),
        run_state,
        *callbacks,
    ]
    if config.verbose:
        run_callbacks.append(EpochProgress(config.epochs))
    if config.time_budget_s is not None:
        run_callbacks.append(TimeBudget(config.time_budget_s))

    log.info("training %s (%d parameters) for up to %d epochs", model.name, fcn.count_params(model), config.epochs)
    if done < config.epochs and distributed.spans_workers(strategy):
        distributed.fit_across_workers(
            model,
            strategy,
            train_data,
            val_data,
            epochs=config.epochs,
            steps_per_epoch=steps,
            initial_epoch=done,
            callbacks=run_callbacks,
        )
    elif done < config.epochs:
        model.fit(
            train_data,
            validation_data=val_data,
            initial_epoch=done,
            epochs=config.epochs,
            steps_per_epoch=steps,
            callbacks=run_callbacks,
            shuffle=False,
            verbose=0,
        )
    final = run_state.state
    best_file = run_dir / final["best"]["file"] if final.get("best") else None
    best = keras.models.load_model(best_file, compile=False) if best_file else model
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        best.save(tmp)

    report = evaluate.evaluate(best, splits.test)
    report["training"] = {
        "run": run_dir.name,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()},
        "seconds": final.get("seconds", 0.0),
        "epochs": final["epoch"],
        "best_epoch": final["best"]["epoch"] if final.get("best") else None,
        "best_val_digit_miou": final["best"]["val_digit_miou"] if final.get("best") else None,
        "images_seen": int(keras.ops.convert_to_numpy(model.optimizer.iterations)) * config.batch_size,
        "parameters": fcn.count_params(best),
        "source": splits.source,
    }
    report["training"]["config"]["name"] = run_dir.name
    evaluate.save_report(report, run_dir / REPORT_FILE)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
    _remove_unrecorded(run_dir, None)
    if not chief:
        distributed.remove_scratch(run_dir)
    return report


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
        from m2nist_seg.evaluation import evaluate

        self.label_maps.append(evaluate.predict(self.model, self.images))
