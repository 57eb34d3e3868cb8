"""A training process killed (SIGKILL) at any point resumes exactly: run the same command again and it
finishes with one history row per epoch and, with op determinism, the weights of an uninterrupted run."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.training.config import TrainConfig
from m2nist_seg.training.train import train

EPOCHS = 4
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import m2nist_seg  # noqa: F401
    import keras
    from m2nist_seg.training import callbacks, config, train as training

    out, kill = sys.argv[1], sys.argv[2]
    where, _, when = kill.partition(":")
    epoch_now = {"epoch": 0}


    def die(partial_file=None):
        if partial_file is not None:
            Path(partial_file).write_bytes(b"half a file")
        os.kill(os.getpid(), signal.SIGKILL)


    class Killer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epoch_now["epoch"] = epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            if where == "batch" and f"{epoch_now['epoch']}.{batch}" == when:
                die()


    real_save, real_save_weights = keras.Model.save, keras.Model.save_weights
    real_record = callbacks.RunState.on_epoch_end

    def save(self, path, *args, **kwargs):
        if where == "best" and ".best-epoch" in str(path) and str(epoch_now["epoch"]) == when:
            die(path)
        return real_save(self, path, *args, **kwargs)

    def save_weights(self, path, *args, **kwargs):
        if where == "backup" and str(epoch_now["epoch"]) == when:
            die(path)
        real_save_weights(self, path, *args, **kwargs)
        if where == "state" and str(epoch_now["epoch"]) == when:
            die()

    def record(self, epoch, logs=None):
        if where == "history" and str(epoch + 1) == when:
            die()
        return real_record(self, epoch, logs)

    keras.Model.save, keras.Model.save_weights = save, save_weights
    callbacks.RunState.on_epoch_end = record

    config = config.TrainConfig(
        name="run", output_dir=out, epochs=EPOCHS, n_images=120, batch_size=16, widths=(8, 8, 16, 16, 16),
        convs_per_block=(1, 1, 1, 1, 1), decoder_width=16, patience=EPOCHS, deterministic=True, verbose=False,
    )
    report = training.train(config, callbacks=[Killer()])
    model = keras.models.load_model(Path(out) / "run" / "model.keras")
    keras.Model.save_weights = real_save_weights
    model.save_weights(Path(out) / "final.weights.h5")
    """
).replace("EPOCHS", str(EPOCHS))


def train_process(tmp_path, out, kill: str = "none") -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, str(driver), str(out), kill], capture_output=True, text=True, timeout=600, env=env
    )


def final_weights(out) -> list[np.ndarray]:
    model = keras.models.load_model(out / "run" / "model.keras")
    return model.get_weights()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    result = train_process(tmp_path, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "out"


KILL_POINTS = {
    "inside an epoch": "batch:2.2",
    "while the best checkpoint is written": "best:1",
    "while the backup is written": "backup:3",
    "between the history row and the backup": "history:2",
    "between the backup and the state record": "state:3",
}


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted, point):
    out = tmp_path / "out"
    killed = train_process(tmp_path, out, KILL_POINTS[point])
    assert killed.returncode == -signal.SIGKILL, f"the run was not killed {point}:\n{killed.stderr[-3000:]}"
    assert not (out / "run" / "model.keras").exists()

    resumed = train_process(tmp_path, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = out / "run"
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == list(range(EPOCHS)), "one history row per epoch"
    assert sorted(p.name for p in run.iterdir()) == ["history.csv", "model.keras", "report.json"]
    for got, expected in zip(final_weights(out), final_weights(uninterrupted), strict=True):
        np.testing.assert_array_equal(got, expected)
    reference = pd.read_csv(uninterrupted / "run" / "history.csv")
    np.testing.assert_array_equal(history["val_digit_miou"], reference["val_digit_miou"])


def test_a_finished_run_is_never_overwritten(tmp_path, capsys):
    config = TrainConfig(**{**TINY, "verbose": True}, output_dir=str(tmp_path), name="fcn8")
    first = train(config)
    before = {p.name: p.read_bytes() for p in (tmp_path / "fcn8").iterdir() if p.is_file()}
    second = train(config)
    assert first["training"]["run"] == "fcn8" and second["training"]["run"] == "fcn8-2"
    assert "fcn8 holds a finished run, kept as it is; this run goes to fcn8-2" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (tmp_path / "fcn8").iterdir() if p.is_file()} == before
    assert json.loads((tmp_path / "fcn8-2" / "report.json").read_text())["training"]["config"]["name"] == "fcn8-2"
    assert train(config)["training"]["run"] == "fcn8-3"


def test_overwrite_replaces_a_finished_run(tmp_path):
    config = TrainConfig(**TINY, output_dir=str(tmp_path), name="fcn8")
    train(config)
    (tmp_path / "fcn8" / "notes.txt").write_text("a learner's own file")
    report = train(TrainConfig(**{**TINY, "epochs": 1}, output_dir=str(tmp_path), name="fcn8", overwrite=True))
    assert report["training"]["run"] == "fcn8"
    assert len(pd.read_csv(tmp_path / "fcn8" / "history.csv")) == 1
    assert (tmp_path / "fcn8" / "notes.txt").read_text() == "a learner's own file", "only the run's files go"
    assert not (tmp_path / "fcn8-2").exists()


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_resuming_with_another_config_is_refused_naming_the_options(tmp_path):
    config = TrainConfig(**TINY, output_dir=str(tmp_path), name="run")
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfterFirstEpoch()])
    changed = TrainConfig(**{**TINY, "epochs": 3, "batch_size": 8}, output_dir=str(tmp_path), name="run")
    with pytest.raises(M2NISTError) as err:
        train(changed)
    message = str(err.value)
    assert "an interrupted run with other options" in message
    assert "batch_size: 16 → 8" in message and "epochs: 2 → 3" in message and "--overwrite" in message
    assert train(config)["training"]["epochs"] == 2, "the same config resumes it"


def interrupt_before_an_option_existed(config: TrainConfig, option: str) -> None:
    """Stop ``config``'s run after its first epoch, then drop ``option`` from its record, as written before the
    option was added to TrainConfig."""
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfterFirstEpoch()])
    path = config.run_dir / "state.json"
    state = json.loads(path.read_text())
    del state["config"][option]
    path.write_text(json.dumps(state))


def test_an_option_added_since_the_interruption_counts_as_its_value_before_it_existed(tmp_path):
    """A record written before ``warmup_epochs`` existed was trained without warm-up (0), although today's
    default is 1: it resumes with 0 and is refused with the default. An option whose default never changed
    (``augment``) counts as its default."""
    config = TrainConfig(**TINY, output_dir=str(tmp_path), name="run", warmup_epochs=0)
    interrupt_before_an_option_existed(config, "warmup_epochs")
    assert train(config)["training"]["epochs"] == 2
    other = TrainConfig(**TINY, output_dir=str(tmp_path), name="other", warmup_epochs=0)
    interrupt_before_an_option_existed(other, "warmup_epochs")
    with pytest.raises(M2NISTError, match="warmup_epochs: 0 → 1"):
        train(dataclasses.replace(other, warmup_epochs=1))
    third = TrainConfig(**TINY, output_dir=str(tmp_path), name="third")
    interrupt_before_an_option_existed(third, "augment")
    assert train(third)["training"]["epochs"] == 2


def test_the_state_record_is_written_after_the_backup_and_names_it(tmp_path):
    config = TrainConfig(**TINY, output_dir=str(tmp_path), name="run")
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfterFirstEpoch()])
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["epoch"] == 1 and (tmp_path / "run" / state["weights"]).is_file()
    assert (tmp_path / "run" / state["best"]["file"]).is_file()
    assert state["config"] == config.resume_key()
