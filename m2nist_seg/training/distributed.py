"""Training across workers: ``MultiWorkerMirroredStrategy`` with a custom training loop.

Keras 3.15's ``model.fit`` fails under ``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras#20585,
then tensorflow/tensorflow#72388), so :func:`m2nist_seg.training.train.train` calls :func:`fit_across_workers` instead
whenever the strategy spans several workers (:func:`spans_workers`). It trains on the same data, with the same
compiled loss and optimizer, and drives the same Keras callbacks with the same logs (``loss``, ``digit_miou``,
``val_loss``, ``val_digit_miou``) as ``fit``. Each global batch of ``batch_size`` images is split between the
workers; gradients are summed across them, so every worker ends with the same weights.

Files: only the chief (TF's own rule, ``strategy.extended.should_checkpoint``: the ``chief`` task, or worker 0
when there is none) writes the run folder. Every other worker runs exactly the chief's code, callbacks and saves,
so that any collective operation inside them stays in step, but in a private temporary folder
(:func:`scratch_dir`), removed when ``train`` returns or the process exits. Resuming an interrupted run across
workers is not supported: the workers other than the chief have no record to resume from, so ``train`` refuses
it with an :class:`~m2nist_seg.core.errors.M2NISTError` (:func:`refuse_resume`).

The worker entry point and the local launcher are :mod:`m2nist_seg.training.workers`.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import metrics


def spans_workers(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` trains across several worker processes (a multi-worker ``TF_CONFIG`` cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return False
    cluster = resolver.cluster_spec().as_dict()
    return sum(len(cluster.get(job, ())) for job in ("chief", "worker")) > 1


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: TF's rule (the chief, or worker 0 when there is no chief)."""
    return bool(strategy.extended.should_checkpoint)


def scratch_dir(name: str) -> Path:
    """A private folder ``<temporary>/<name>`` for a worker other than the chief, removed at the latest on exit."""
    parent = tempfile.mkdtemp(prefix="m2nist-worker-")
    atexit.register(shutil.rmtree, parent, ignore_errors=True)
    return Path(parent) / name


def remove_scratch(run_dir: Path) -> None:
    """Remove a folder made by :func:`scratch_dir` (its temporary parent with it)."""
    shutil.rmtree(run_dir.parent, ignore_errors=True)


def refuse_resume(strategy: tf.distribute.Strategy, run_dir: Path, state: dict | None) -> None:
    """Raise :class:`M2NISTError` when ``strategy`` spans workers and ``run_dir`` holds an interrupted run (its
    state record ``state``): runs across workers do not resume."""
    if state and spans_workers(strategy):
        raise M2NISTError(
            f"{run_dir}: an interrupted run (after epoch {state.get('epoch')}), expected a fresh run when training "
            "across workers, which cannot resume; pass overwrite=True (--overwrite) to replace it, or another name"
        )


def _replica_loss(model: keras.Model, labels: tf.Tensor, probs: tf.Tensor) -> tf.Tensor:
    """The compiled loss (plus any regularisation losses) of one replica's batch: float32 scalar.

    ``labels``: int32 (b, H, W); ``probs``: (b, H, W, C). The loss's own ``call`` values are reduced here, as a
    single process would: Keras' ``Loss.__call__`` divides by the number of replicas only when ``call`` returns
    per-example values, not when it returns one number for the batch (as the Dice losses do).
    """
    loss = model.loss
    if isinstance(loss, keras.losses.Loss):
        values = loss.call(labels, probs)
        reduce = tf.reduce_sum if loss.reduction == "sum" else tf.reduce_mean
    elif isinstance(loss, str) or callable(loss):
        values, reduce = keras.losses.get(loss)(labels, probs), tf.reduce_mean
    else:
        raise M2NISTError(f"loss: found {type(loss).__name__}, expected one compiled loss for training across workers")
    total = reduce(tf.cast(values, tf.float32))
    return total + tf.add_n(model.losses) if model.losses else total


def _confusion(labels: tf.Tensor, probs: tf.Tensor) -> tf.Tensor:
    """Pixel counts int64 (C, C), rows true and columns predicted, as
    :class:`~m2nist_seg.evaluation.metrics.MeanDigitIoU` counts them."""
    predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
    return tf.math.confusion_matrix(
        tf.reshape(labels, [-1]), tf.reshape(predicted, [-1]), num_classes=probs.shape[-1], dtype=tf.int64
    )


def _train_step(model: keras.Model, strategy: tf.distribute.Strategy, global_batch: int):
    """A compiled step: one global batch → (summed loss·images float32, images float32, counts int64 (C, C)).

    Each replica scales its mean loss by its share of the global batch (``tf.nn.compute_average_loss``'s rule),
    so the gradients that the optimizer sums across replicas are those of the global batch's mean loss.
    """

    def replica_step(images, labels):
        size = tf.cast(tf.shape(labels)[0], tf.float32)
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            mean = _replica_loss(model, labels, probs)
            scaled = mean * size / global_batch
        gradients = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return scaled * global_batch, size, _confusion(labels, probs)

    @tf.function
    def step(batch):
        results = strategy.run(replica_step, args=batch)
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in results]

    return step


def _test_step(model: keras.Model, strategy: tf.distribute.Strategy):
    """A compiled step: one validation batch → (summed loss·images float32, images float32, counts int64 (C, C)).

    A replica's share of the last, smaller batch may be empty; it adds nothing.
    """

    def replica_step(images, labels):
        size = tf.cast(tf.shape(labels)[0], tf.float32)
        probs = model(images, training=False)
        weighted = tf.where(size > 0, _replica_loss(model, labels, probs), 0.0) * size
        return weighted, size, _confusion(labels, probs)

    @tf.function(reduce_retracing=True)
    def step(batch):
        results = strategy.run(replica_step, args=batch)
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in results]

    return step


def _statistics_sync(model: keras.Model, strategy: tf.distribute.Strategy):
    """A compiled step that sets every float non-trainable variable (the batch-norm moving statistics) to its mean
    over the replicas, so that every worker holds the same model.

    Each replica updates its moving averages from its own part of each batch. They are linear in those batch
    statistics, so averaging them once, before they are used or saved, equals averaging after every step.
    """
    statistics = [v for v in model.non_trainable_weights if tf.as_dtype(v.dtype).is_floating]

    def replica_sync():
        values = [tf.identity(v.value) for v in statistics]  # an op placed on the replica's device
        means = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, values)
        for variable, mean in zip(statistics, means):
            variable.assign(mean)

    @tf.function
    def sync():
        strategy.run(replica_sync)

    return sync if statistics else lambda: None


def _stop_vote(strategy: tf.distribute.Strategy):
    """A compiled vote: whether any worker's callbacks asked to stop (bool tensor → bool tensor, same on all)."""

    @tf.function
    def vote(stop):
        votes = strategy.run(lambda flag: tf.cast(flag, tf.int32), args=(stop,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None) > 0

    return vote


class _Totals:
    """Running sums over an epoch's steps, reduced across workers: loss·images, images and the confusion matrix."""

    def __init__(self):
        self.loss, self.images = 0.0, 0.0
        self.metric: metrics.MeanDigitIoU | None = None

    def add(self, loss: tf.Tensor, images: tf.Tensor, counts: tf.Tensor) -> None:
        self.loss += float(loss)
        self.images += float(images)
        if self.metric is None:
            self.metric = metrics.MeanDigitIoU(num_classes=counts.shape[0])
        self.metric.matrix.assign_add(counts)

    def logs(self, prefix: str = "") -> dict[str, float]:
        """``{loss, digit_miou}`` as ``fit`` logs them: the image-weighted mean loss and the pooled mean IoU."""
        miou = float(self.metric.result()) if self.metric is not None else 0.0
        return {f"{prefix}loss": self.loss / max(self.images, 1.0), f"{prefix}digit_miou": miou}


def _validate(step, val_batches, callbacks: keras.callbacks.CallbackList) -> dict[str, float]:
    """Score the whole validation split: ``{val_loss, val_digit_miou}``, with ``fit``'s test callbacks."""
    callbacks.on_test_begin()
    totals = _Totals()
    for index, batch in enumerate(val_batches):
        callbacks.on_test_batch_begin(index)
        totals.add(*step(batch))
        callbacks.on_test_batch_end(index, totals.logs())
    callbacks.on_test_end(totals.logs())
    return totals.logs("val_")


def _data_sharded(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` set to be split element-wise: every worker reads the whole stream and keeps its part of each
    global batch (file sharding cannot apply to a generator, and no sharding would repeat the data per worker)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def fit_across_workers(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> None:
    """``model.fit(train_data, validation_data=val_data, ...)`` across the workers of ``strategy``.

    ``model`` is built and compiled in ``strategy``'s scope. ``train_data``: an endless stream of global batches
    with a static batch size (float32 images (B, H, W, 1), int32 labels (B, H, W)); ``val_data``: finite batches.
    Every worker must call this with the same arguments. Callbacks see ``fit``'s events and logs, pooled over all
    workers: the compiled loss and the mean digit IoU
    (:class:`~m2nist_seg.evaluation.metrics.MeanDigitIoU`, which the run's checkpointing and early stopping
    read; other compiled metrics are not computed). Training stops after the batch or epoch where any worker sets
    ``model.stop_training`` (time budgets differ between workers; they must stop together).
    """
    global_batch = train_data.element_spec[0].shape[0]
    if global_batch is None:
        raise M2NISTError("train_data: found batches of unknown size, expected batch(..., drop_remainder=True)")
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    train_batches = iter(strategy.experimental_distribute_dataset(_data_sharded(train_data)))
    val_batches = strategy.experimental_distribute_dataset(_data_sharded(val_data))
    train_step, test_step = _train_step(model, strategy, global_batch), _test_step(model, strategy)
    sync, vote = _statistics_sync(model, strategy), _stop_vote(strategy)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), model=model, epochs=epochs, steps=steps_per_epoch, verbose=0
    )
    model.stop_training = False
    callback_list.on_train_begin()
    logs: dict[str, float] = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        totals = _Totals()
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            totals.add(*train_step(next(train_batches)))
            callback_list.on_train_batch_end(step, totals.logs())
            model.stop_training = bool(vote(tf.constant(model.stop_training)))
            if model.stop_training:
                break
        sync()
        logs = {**totals.logs(), **_validate(test_step, val_batches, callback_list)}
        callback_list.on_epoch_end(epoch, logs)
        model.stop_training = bool(vote(tf.constant(model.stop_training)))
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
