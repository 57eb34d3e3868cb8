"""Training: data → model → compile → fit → best checkpoint → evaluation report, in one call.

A run writes to ``<output_dir>/<name>/`` (the default output folder is :data:`m2nist_seg.core.settings.RUNS_DIR`;
its bookkeeping is :mod:`m2nist_seg.training.runs`):

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
loop replaces ``fit`` and only the chief writes the run folder (see :mod:`m2nist_seg.training.distributed`;
:mod:`m2nist_seg.training.workers` launches the workers).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.model import losses
from m2nist_seg.training import distributed, runs, streams
from m2nist_seg.training.callbacks import EpochProgress, ResumableEarlyStopping, RunState, TimeBudget
from m2nist_seg.training.config import VALUES_BEFORE_OPTIONS_EXISTED, LossName, Precision, TrainConfig

log = logging.getLogger(__name__)


def choose_run_dir(config: TrainConfig) -> Path:
    """The folder a run of ``config`` writes to (:func:`m2nist_seg.training.runs.choose_run_dir`): its own name,
    or the next free ``NAME-2``, ``NAME-3``, … when that holds a finished run, unless ``config.overwrite``."""
    before = {**TrainConfig().resume_key(), **VALUES_BEFORE_OPTIONS_EXISTED}
    return runs.choose_run_dir(config.run_dir, config.resume_key(), before, config.overwrite)


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
    epochs (two by default; at most ``epochs − 1``), then decays to 0 along a cosine over the remaining epochs.
    """
    warmup_steps = config.effective_warmup_epochs * steps_per_epoch
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
    config = config or TrainConfig()
    config.validate()
    runs.refuse_inside(config.run_dir, SHIPPED_MODEL.parent)
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

    state = runs.read_state(run_dir)
    distributed.refuse_resume(strategy, run_dir, state)
    done = state["epoch"] if state else 0
    runs.remove_unrecorded(run_dir, state)
    runs.trim_history(run_dir / runs.HISTORY_FILE, done)
    splits = data.load(config.source, directory=config.data_dir, n=config.n_images, seed=config.seed)
    steps = len(splits.train) // config.batch_size
    if steps < 1:
        raise M2NISTError(
            f"batch_size: found {config.batch_size}, expected at most the {len(splits.train)} training images"
        )
    if config.fresh_digits and config.source == "generated":
        train_data = streams.fresh_training_data(config, steps * config.batch_size, first_epoch=done)
    else:
        train_data = streams.shuffled_training_data(config, splits.train, steps * config.batch_size, first_epoch=done)
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
        keras.callbacks.CSVLogger(run_dir / runs.HISTORY_FILE, append=done > 0),
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
    with atomic_path(run_dir / runs.MODEL_FILE) as tmp:
        best.save(tmp)

    report = evaluate.evaluate(best, splits.test)
    report["training"] = {
        "run": run_dir.name,
        "config": config.as_json(),
        "seconds": final.get("seconds", 0.0),
        "epochs": final["epoch"],
        "best_epoch": final["best"]["epoch"] if final.get("best") else None,
        "best_val_digit_miou": final["best"]["val_digit_miou"] if final.get("best") else None,
        "images_seen": int(keras.ops.convert_to_numpy(model.optimizer.iterations)) * config.batch_size,
        "parameters": fcn.count_params(best),
        "source": splits.source,
    }
    report["training"]["config"]["name"] = run_dir.name
    evaluate.save_report(report, run_dir / runs.REPORT_FILE)
    runs.finish_run(run_dir)
    if not chief:
        distributed.remove_scratch(run_dir)
    return report
