"""Training across workers: ``MultiWorkerMirroredStrategy`` with a custom training loop, and a local launcher.

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

Threads: TensorFlow's thread pools can only be sized before the strategy is created, so that is the worker
entry point's job (``--threads``); the launcher gives each of N local workers ``cpus // N`` threads.

Launch N workers on this machine (free localhost ports, a hard timeout, every worker in its own process group)::

    python -m m2nist_seg.training.distributed launch --workers 2 --timeout 600 -- --epochs 3 --name fcn8-2w

On several machines, start one worker per machine, each with its own ``TF_CONFIG``::

    python -m m2nist_seg.training.distributed worker --threads 8 --epochs 3 --name fcn8-2w
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import metrics

if TYPE_CHECKING:
    from m2nist_seg.training.train import TrainConfig

LOCAL_HOSTS = ("127.0.0.1", "localhost")
POLL_S = 0.2
LOG_TAIL_LINES = 20


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


class SaveFinalWeights(keras.callbacks.Callback):
    """At the end of training, write the model's weights to ``path`` (``.npz``: one float array per weight)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, *self.model.get_weights())


def _worker_parser() -> argparse.ArgumentParser:
    """The worker's options: ``m2nist_seg train``'s, the model's size, ``--threads`` and ``--final-weights``."""
    from m2nist_seg.cli import _add_train_options

    # "resolve": should `m2nist_seg train` gain the model-size options too, its definitions replace these.
    parser = argparse.ArgumentParser(
        prog="python -m m2nist_seg.training.distributed worker",
        description="Train as one worker of the cluster that TF_CONFIG describes (start one per worker).",
        conflict_handler="resolve",
    )
    option = parser.add_argument
    option("--threads", type=int, default=0, help="TensorFlow threads per pool (default: 0, TF's choice)")
    option("--final-weights", help="write this worker's final weights to DIR/worker-<index>.npz")
    option("--widths", type=int, nargs="+", help="channels of the encoder's 5 blocks (default: the model's)")
    option("--convs-per-block", type=int, nargs="+", help="convolutions in each encoder block (default: the model's)")
    option("--decoder-width", type=int, help="channels of the decoder (default: the model's)")
    _add_train_options(parser)
    return parser


def _worker_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`~m2nist_seg.training.train.TrainConfig` of a worker's options, validated."""
    from m2nist_seg.cli import _train_config

    sizes = {"widths": args.widths, "convs_per_block": args.convs_per_block, "decoder_width": args.decoder_width}
    given = {key: tuple(value) if isinstance(value, list) else value for key, value in sizes.items() if value}
    config = dataclasses.replace(_train_config(args), **given)
    config.validate()
    return config


def run_worker(argv: Sequence[str]) -> None:
    """One worker: size TensorFlow's thread pools, create the strategy from ``TF_CONFIG``, then train."""
    from m2nist_seg.evaluation import evaluate
    from m2nist_seg.training.train import train

    args = _worker_parser().parse_args(argv)
    if args.threads < 0:
        raise M2NISTError(f"threads: found {args.threads}, expected 0 (TF's choice) or a positive number")
    config = _worker_config(args)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    config.verbose = is_chief(strategy)
    resolver = strategy.cluster_resolver
    callbacks = []
    if args.final_weights:
        callbacks.append(SaveFinalWeights(Path(args.final_weights) / f"worker-{resolver.task_id or 0}.npz"))
    report = train(config, strategy=strategy, callbacks=callbacks)
    if is_chief(strategy):
        print(evaluate.format_report(report))
        print(f"model, history and report in {Path(config.output_dir) / report['training']['run']}", flush=True)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 now (another program may still take one before a worker does)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def worker_env(ports: Sequence[int], index: int, scratch: Path) -> dict[str, str]:
    """The environment of local worker ``index``: its ``TF_CONFIG``, gRPC kept off proxies, and a ``TMPDIR``
    inside ``scratch`` (the launcher's, removed even when a killed worker could not clean up)."""
    env = dict(os.environ)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    for key in ("no_proxy", "NO_PROXY", "no_grpc_proxy"):
        env[key] = ",".join(filter(None, [env.get(key), *LOCAL_HOSTS]))
    tmpdir = scratch / f"worker-{index}"
    tmpdir.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(tmpdir)
    return env


class WorkerError(M2NISTError):
    """A worker failed or ran out of time; ``index`` names it (None: several were still running)."""

    def __init__(self, message: str, index: int | None):
        super().__init__(message)
        self.index = index


def _exit_description(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def supervise(workers: Sequence[subprocess.Popen], timeout_s: float) -> None:
    """Wait until every worker has exited 0; raise :class:`WorkerError` naming the first worker seen to fail,
    or the ones still running after ``timeout_s``. Every worker's process group is killed on the way out."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            codes = [worker.poll() for worker in workers]
            failed = [index for index, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                index = failed[0]
                raise WorkerError(f"worker {index} {_exit_description(codes[index])}, expected 0", index)
            running = [index for index, code in enumerate(codes) if code is None]
            if not running:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(map(str, running))
                raise WorkerError(f"timeout: worker(s) {names} still running after {timeout_s:g} s", None)
            time.sleep(POLL_S)
    finally:
        for worker in workers:
            kill_group(worker)


def kill_group(worker: subprocess.Popen) -> None:
    """Kill the process group that ``worker`` leads (it and anything it started), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:]) if path.is_file() else ""


def launch(worker_args: Sequence[Sequence[str]], timeout_s: float) -> None:
    """Run ``python -m m2nist_seg.training.distributed worker <worker_args[i]>`` for each ``i`` on free localhost ports.

    Worker 0 (the chief) writes to this process's output; the others to logs whose last lines are printed if
    they fail. Each worker runs in its own process group and temporary folder; all of them are killed when one
    fails or ``timeout_s`` passes (a worker whose peer never started would wait forever), raising
    :class:`WorkerError`.
    """
    ports = free_ports(len(worker_args))
    workers: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="m2nist-workers-") as scratch:
        logs = [Path(scratch) / f"worker-{index}.log" for index in range(len(worker_args))]
        try:
            for index, args in enumerate(worker_args):
                env = worker_env(ports, index, Path(scratch))
                workers.append(_start_worker(args, env, logs[index] if index else None))
            supervise(workers, timeout_s)
        except WorkerError as err:
            if err.index and logs[err.index].is_file():
                print(f"--- worker {err.index}'s last lines ---\n{_tail(logs[err.index])}", file=sys.stderr, flush=True)
            raise
        finally:
            for worker in workers:
                kill_group(worker)


def _start_worker(args: Sequence[str], env: dict[str, str], log: Path | None) -> subprocess.Popen:
    """Start ``python -m m2nist_seg.training.distributed worker <args>`` in a new process group, its output to ``log``
    (None: this process's output)."""
    command = [sys.executable, "-m", "m2nist_seg.training.distributed", "worker", *args]
    if log is None:
        return subprocess.Popen(command, env=env, start_new_session=True)
    with open(log, "w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _launcher_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m m2nist_seg.training.distributed launch",
        description="Train across N worker processes on this machine; options after -- go to every worker.",
    )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="hard limit in seconds (default: %(default)s)")
    parser.add_argument("--threads", type=int, help=f"threads per worker (default: {cpus} CPUs // workers)")
    parser.add_argument("--final-weights", help="each worker writes its final weights to DIR/worker-<index>.npz")
    parser.add_argument("train_options", nargs=argparse.REMAINDER, help="-- then the options of `m2nist_seg train`")
    parser.set_defaults(cpus=cpus)
    return parser


def launch_command(argv: Sequence[str]) -> None:
    """``launch``: check the options, then run :func:`launch` with the same options for every worker."""
    args = _launcher_parser().parse_args(argv)
    if args.workers < 2:
        raise M2NISTError(f"workers: found {args.workers}, expected at least 2 (use `m2nist_seg train` for one)")
    if not args.timeout > 0:
        raise M2NISTError(f"timeout: found {args.timeout:g}, expected a positive number of seconds")
    train_options = args.train_options[1:] if args.train_options[:1] == ["--"] else args.train_options
    threads = args.threads if args.threads is not None else max(1, args.cpus // args.workers)
    worker_args = ["--threads", str(threads), *train_options]
    if args.final_weights:
        worker_args = ["--final-weights", args.final_weights, *worker_args]
    _worker_config(_worker_parser().parse_args(worker_args))
    print(f"training across {args.workers} workers on this machine ({threads} thread(s) each)", flush=True)
    launch([worker_args] * args.workers, args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m m2nist_seg.training.distributed {launch,worker} ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"launch": launch_command, "worker": run_worker}
    if not argv or argv[0] not in commands:
        print(
            "usage: python -m m2nist_seg.training.distributed {launch,worker} [options] (see --help of each)",
            file=sys.stderr,
        )
        return 2
    try:
        commands[argv[0]](argv[1:])
    except M2NISTError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1 if isinstance(err, WorkerError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
