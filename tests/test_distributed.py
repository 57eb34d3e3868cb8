"""Training across workers: which strategies span workers, the launcher's supervision, and a two-worker run."""

import json
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import evaluate
from m2nist_seg.training import distributed
from m2nist_seg.training import workers as launcher

# tests/test_train.py's TINY run, as the options of `python -m m2nist_seg.training.workers worker`.
TINY_OPTIONS = [
    "--n-images", "120", "--epochs", "3", "--batch-size", "16", "--widths", "8", "8", "16", "16", "16",
    "--convs-per-block", "1", "1", "1", "1", "1", "--decoder-width", "16", "--threads", "1",
]  # fmt: skip


def two_worker_strategy() -> SimpleNamespace:
    """Stands in for a MultiWorkerMirroredStrategy whose TF_CONFIG names two workers (no servers started)."""
    cluster = tf.train.ClusterSpec({"worker": ["127.0.0.1:1", "127.0.0.1:2"]})
    return SimpleNamespace(cluster_resolver=tf.distribute.cluster_resolver.SimpleClusterResolver(cluster))


def test_only_a_cluster_of_several_workers_spans_workers():
    assert not distributed.spans_workers(tf.distribute.get_strategy())
    assert not distributed.spans_workers(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert distributed.spans_workers(two_worker_strategy())
    assert distributed.is_chief(tf.distribute.get_strategy()), "a single process writes its run folder"


def test_an_interrupted_run_is_refused_across_workers_only(tmp_path):
    state = {"epoch": 2}
    with pytest.raises(M2NISTError, match="interrupted run .after epoch 2., expected a fresh run"):
        distributed.refuse_resume(two_worker_strategy(), tmp_path, state)
    distributed.refuse_resume(tf.distribute.get_strategy(), tmp_path, state)
    distributed.refuse_resume(two_worker_strategy(), tmp_path, None)


def test_worker_environment_names_its_task_and_keeps_grpc_off_proxies(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "example.org")
    env = launcher.worker_env([4001, 4002], 1, tmp_path)
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": {"worker": ["127.0.0.1:4001", "127.0.0.1:4002"]},
        "task": {"type": "worker", "index": 1},
    }
    assert env["no_proxy"] == "example.org,127.0.0.1,localhost"
    assert "127.0.0.1" in env["no_grpc_proxy"].split(",")
    assert env["TMPDIR"].startswith(str(tmp_path))
    ports = launcher.free_ports(3)
    assert len(set(ports)) == 3


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_a_failed_worker_stops_the_others_and_is_named():
    workers = [start("import time; time.sleep(60)"), start("import sys; sys.exit(3)")]
    began = time.monotonic()
    with pytest.raises(launcher.WorkerError, match="^worker 1 exited with code 3, expected 0$") as failure:
        launcher.supervise(workers, timeout_s=60)
    assert failure.value.index == 1
    assert time.monotonic() - began < 20
    assert workers[0].returncode == -9, "the sleeping worker's process group was killed"


def test_workers_past_the_timeout_are_killed():
    workers = [start("import time; time.sleep(60)") for _ in range(2)]
    with pytest.raises(launcher.WorkerError, match=r"^timeout: worker\(s\) 0, 1 still running after 0.5 s$"):
        launcher.supervise(workers, timeout_s=0.5)
    assert [worker.returncode for worker in workers] == [-9, -9]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["launch", "--workers", "1"], "workers: found 1, expected at least 2"),
        (["launch", "--timeout", "0"], "timeout: found 0, expected a positive number of seconds"),
        (["launch", "--", "--epochs", "0"], "epochs: found '?0'?"),
        (["launch", "--", "--widths", "8", "--elastic-epochs", "2"], "elastic_epochs: found 2 with distort_digits"),
        (["train"], "usage: python -m m2nist_seg.training.workers {launch,worker}"),
    ],
)
def test_launcher_checks_its_options_before_starting_workers(argv, message, capsys):
    try:
        status = launcher.main(argv)
    except SystemExit as exit:  # argparse's own checks
        status = exit.code
    assert status == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.slow
def test_two_workers_train_in_step_and_only_the_chief_writes(tmp_path):
    runs, other, weights = tmp_path / "runs", tmp_path / "worker-1-output", tmp_path / "weights"
    common = [*TINY_OPTIONS, "--name", "tiny", "--final-weights", str(weights)]
    # Worker 1 gets its own output folder: anything it wrote to the run folder would appear there.
    launcher.launch([[*common, "--output-dir", str(runs)], [*common, "--output-dir", str(other)]], timeout_s=180)

    first, second = (np.load(weights / f"worker-{index}.npz") for index in (0, 1))
    assert len(first.files) > 0 and first.files == second.files
    assert all(np.array_equal(first[name], second[name]) for name in first.files), "both workers end equal"
    run = runs / "tiny"
    assert sorted(p.name for p in run.iterdir()) == ["history.csv", "model.keras", "report.json"]
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2]
    assert {"loss", "digit_miou", "val_loss", "val_digit_miou"} <= set(history.columns)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0], "the training loss falls"
    model = evaluate.load_model(run / "model.keras")
    assert model.output_shape == (None, 64, 84, 11)
    assert json.loads((run / "report.json").read_text())["training"]["epochs"] == 3
    assert not other.exists(), "a worker other than the chief writes nothing to its output folder"
