"""Training across worker processes: the worker entry point and a launcher for N workers on this machine.

Launch N workers on this machine (free localhost ports, a hard timeout, every worker in its own process group)::

    python -m m2nist_seg.training.workers launch --workers 2 --timeout 600 -- --epochs 3 --name fcn8-2w

On several machines, start one worker per machine, each with its own ``TF_CONFIG``::

    python -m m2nist_seg.training.workers worker --threads 8 --epochs 3 --name fcn8-2w

A worker's options are ``m2nist_seg train``'s (generated from :class:`~m2nist_seg.training.config.TrainConfig`)
plus ``--threads`` (TensorFlow's thread pools can only be sized before the strategy is created) and
``--final-weights``; the launcher gives each of N local workers ``cpus // N`` threads. The training loop itself
is :mod:`m2nist_seg.training.distributed`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import evaluate
from m2nist_seg.training import distributed
from m2nist_seg.training.config import add_options, from_args
from m2nist_seg.training.train import train

LOCAL_HOSTS = ("127.0.0.1", "localhost")
POLL_S = 0.2
LOG_TAIL_LINES = 20


class SaveFinalWeights(keras.callbacks.Callback):
    """At the end of training, write the model's weights to ``path`` (``.npz``: one float array per weight)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, *self.model.get_weights())


def worker_parser() -> argparse.ArgumentParser:
    """The worker's options: every :class:`~m2nist_seg.training.config.TrainConfig` option (as ``train`` has
    them), ``--threads`` and ``--final-weights``."""
    parser = argparse.ArgumentParser(
        prog="python -m m2nist_seg.training.workers worker",
        description="Train as one worker of the cluster that TF_CONFIG describes (start one per worker).",
    )
    option = parser.add_argument
    option("--threads", type=int, default=0, help="TensorFlow threads per pool (default: 0, TF's choice)")
    option("--final-weights", help="write this worker's final weights to DIR/worker-<index>.npz")
    add_options(parser)
    return parser


def run_worker(argv: Sequence[str]) -> None:
    """One worker: size TensorFlow's thread pools, create the strategy from ``TF_CONFIG``, then train."""
    args = worker_parser().parse_args(argv)
    if args.threads < 0:
        raise M2NISTError(f"threads: found {args.threads}, expected 0 (TF's choice) or a positive number")
    config = from_args(args)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    config.verbose = distributed.is_chief(strategy)
    resolver = strategy.cluster_resolver
    callbacks = []
    if args.final_weights:
        callbacks.append(SaveFinalWeights(Path(args.final_weights) / f"worker-{resolver.task_id or 0}.npz"))
    report = train(config, strategy=strategy, callbacks=callbacks)
    if distributed.is_chief(strategy):
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
    """Run ``python -m m2nist_seg.training.workers worker <worker_args[i]>`` for each ``i`` on free localhost ports.

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
    """Start ``python -m m2nist_seg.training.workers worker <args>`` in a new process group, its output to ``log``
    (None: this process's output)."""
    command = [sys.executable, "-m", "m2nist_seg.training.workers", "worker", *args]
    if log is None:
        return subprocess.Popen(command, env=env, start_new_session=True)
    with open(log, "w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _launcher_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m m2nist_seg.training.workers launch",
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
    from_args(worker_parser().parse_args(worker_args))
    print(f"training across {args.workers} workers on this machine ({threads} thread(s) each)", flush=True)
    launch([worker_args] * args.workers, args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m m2nist_seg.training.workers {launch,worker} ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"launch": launch_command, "worker": run_worker}
    if not argv or argv[0] not in commands:
        print(
            "usage: python -m m2nist_seg.training.workers {launch,worker} [options] (see --help of each)",
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
