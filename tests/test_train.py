"""Training runs end to end: outputs, resuming, seeds, distribution strategies and the shipped model's path."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from m2nist_seg.core import settings
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.training.config import TrainConfig
from m2nist_seg.training.train import compile_default, train


def tiny_config(tmp_path, **overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "output_dir": str(tmp_path), "name": "tiny", **overrides})


def test_a_run_writes_model_history_and_report(tmp_path):
    report = train(tiny_config(tmp_path))
    run = tmp_path / "tiny"
    assert sorted(p.name for p in run.iterdir()) == ["history.csv", "model.keras", "report.json"]
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    assert {"loss", "digit_miou", "val_loss", "val_digit_miou"} <= set(history.columns)
    saved = json.loads((run / "report.json").read_text())
    assert saved["mean_digit_iou"] == report["mean_digit_iou"]
    assert saved["counts"] == {"images": 24, "pixels": 24 * 64 * 84}
    assert saved["training"]["config"]["epochs"] == 2
    assert keras.models.load_model(run / "model.keras").name == "fcn8"


def test_progress_is_printed_each_epoch(tmp_path, capsys):
    train(tiny_config(tmp_path, verbose=True))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split(" · ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "val_digit_miou" in lines[0] and "left" in lines[0]


def test_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    from m2nist_seg.training import streams

    first_epochs = []
    real_fresh = streams.fresh_training_data

    def recording_fresh(config, n, first_epoch=0):
        first_epochs.append(first_epoch)
        return real_fresh(config, n, first_epoch=first_epoch)

    monkeypatch.setattr(streams, "fresh_training_data", recording_fresh)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    config = tiny_config(tmp_path, epochs=4)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[Interrupt()])
    assert (tmp_path / "tiny" / "backup").exists()
    assert not (tmp_path / "tiny" / "model.keras").exists(), "no model before the run has finished"

    started = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)

    train(config, callbacks=[Record()])
    assert started == [2, 3]
    assert first_epochs == [0, 2], "the resumed run's data starts at the epoch it resumes"
    assert list(pd.read_csv(tmp_path / "tiny" / "history.csv")["epoch"]) == [0, 1, 2, 3]
    assert not (tmp_path / "tiny" / "backup").exists()


def test_a_learners_model_and_compile_step_train_in_place_of_the_defaults(tmp_path):
    from m2nist_seg import model as fcn
    from m2nist_seg.evaluation import metrics

    built, compiled = [], []

    def build_model():
        built.append(fcn.build_fcn8(**{k: TINY[k] for k in ("widths", "convs_per_block", "decoder_width")}))
        return built[-1]

    def compile_model(model):
        compiled.append(model)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss="sparse_categorical_crossentropy",
            metrics=[metrics.MeanDigitIoU()],
        )

    report = train(tiny_config(tmp_path), build_model=build_model, compile_model=compile_model)
    assert len(built) == 1 and compiled == built, "each hook runs once, on the model the run trains"
    assert isinstance(built[0].optimizer, keras.optimizers.SGD)
    assert report["training"]["parameters"] == fcn.count_params(built[0])


def test_never_writes_to_the_shipped_model_folder():
    config = TrainConfig(output_dir=str(settings.SHIPPED_MODEL.parent.parent), name="models")
    with pytest.raises(M2NISTError, match="outside the shipped model"):
        train(config)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("loss", "mse", "loss: found 'mse'"),
        ("epochs", 0, "epochs: found 0"),
        ("variant", "unet", "variant"),
        ("dropout", 1.0, r"dropout: found 1.0, expected a rate in \[0, 1\)"),
        ("elastic_epochs", 3, "elastic_epochs: found 3 with distort_digits=False"),
        ("elastic_epochs", -1, "elastic_epochs: found -1"),
        ("warmup_epochs", -1, "warmup_epochs: found -1"),
        ("time_budget_s", -300.0, "time_budget_s: found -300.0, expected a positive number of seconds"),
        ("time_budget_s", 0, "time_budget_s: found 0"),
        ("precision", "float16", "precision: found 'float16', expected one of float32, mixed_bfloat16"),
    ],
)
def test_bad_config(tmp_path, field, value, message):
    with pytest.raises(M2NISTError, match=message):
        train(tiny_config(tmp_path, **{field: value}))


def run_python(code: str, tmp_path: Path) -> str:
    """Run ``code`` in a fresh interpreter (device and determinism settings are process-wide)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_same_seed_gives_identical_metrics(tmp_path):
    code = f"""
        import json
        from m2nist_seg.training.config import TrainConfig
        from m2nist_seg.training.train import compile_default, train
        reports = [
            train(TrainConfig(**{TINY!r}, output_dir=r"{tmp_path}", name=f"run{{i}}", deterministic=True))
            for i in range(2)
        ]
        print(json.dumps([{{k: r[k] for k in ("mean_digit_iou", "per_class", "confusion_matrix")}} for r in reports]))
    """
    first, second = json.loads(run_python(code, tmp_path).strip().splitlines()[-1])
    assert first == second
    histories = [pd.read_csv(tmp_path / f"run{i}" / "history.csv").drop(columns="epoch") for i in range(2)]
    pd.testing.assert_frame_equal(*histories)


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    code = f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from m2nist_seg.training.config import TrainConfig
        from m2nist_seg.training.train import compile_default, train
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        report = train(TrainConfig(**{TINY!r}, output_dir=r"{tmp_path}", name="mirrored"), strategy=strategy)
        print("replicas", strategy.num_replicas_in_sync, "miou", report["mean_digit_iou"])
    """
    out = run_python(code, tmp_path)
    assert "replicas 2" in out
    assert (tmp_path / "mirrored" / "model.keras").is_file()


def test_batch_level_losses_count_once_under_a_mirrored_strategy(tmp_path):
    """Each replica's loss is scaled by 1/replicas before the replicas' gradients are summed, so the sum over
    two replicas equals the mean of their batches' losses (not twice it)."""
    code = """
        import numpy as np
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from m2nist_seg import data
        from m2nist_seg.model import losses
        labels = data.generate_labels(4, seed=0)[1].astype("int32")
        probs = np.random.default_rng(0).dirichlet(np.ones(11), size=labels.shape).astype("float32")
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        for loss in (losses.CombinedLoss(), losses.SoftDiceLoss(), losses.WeightedCrossEntropy()):
            halves = [float(loss(labels[i : i + 2], probs[i : i + 2])) for i in (0, 2)]
            batches = tf.data.Dataset.from_tensor_slices((labels, probs)).batch(4)
            batch = next(iter(strategy.experimental_distribute_dataset(batches)))
            total = strategy.reduce("SUM", strategy.run(lambda y, p: loss(y, p), args=batch), axis=None)
            print(loss.name, round(float(total) / np.mean(halves), 4))
    """
    out = run_python(code, tmp_path)
    for name in ("ce_dice", "soft_dice", "weighted_ce"):
        assert f"{name} 1.0" in out, out


def test_mixed_bfloat16_precision_trains_and_leaves_the_global_policy_alone(tmp_path):
    report = train(tiny_config(tmp_path, precision="mixed_bfloat16"))
    assert keras.mixed_precision.global_policy().name == "float32"
    model = keras.models.load_model(tmp_path / "tiny" / "model.keras")
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.dtype_policy.name for layer in convolutions} == {"mixed_bfloat16"}
    assert {w.dtype for layer in convolutions for w in layer.weights} == {"float32"}
    assert model.output.dtype == "float32"
    assert 0 <= report["mean_digit_iou"] <= 1


@pytest.fixture
def generator_calls(monkeypatch) -> list[dict]:
    """Record the keyword arguments of every data.generate_labels call, which still generates."""
    from m2nist_seg import data

    calls = []
    real_generate = data.generate_labels

    def recording_generate(n, **kwargs):
        calls.append(kwargs)
        return real_generate(n, **kwargs)

    monkeypatch.setattr(data, "generate_labels", recording_generate)
    return calls


def test_fresh_digits_change_every_epoch_and_use_only_the_train_pool(tmp_path, generator_calls):
    from m2nist_seg.training.streams import fresh_training_data

    batches = fresh_training_data(tiny_config(tmp_path, distort_digits=True), 32).take(4)
    images = [x.numpy()[..., 0] for x, _ in batches]
    assert not np.array_equal(images[0], images[2]), "epoch 2 must hold new digit combinations"
    pools = {(call["pool"], call["distort"], call["elastic"]) for call in generator_calls}
    assert pools == {("train", True, False)}, "distorted train-pool digits"


@pytest.mark.parametrize("first_epoch", [0, 1])
def test_elastic_warping_only_in_the_first_elastic_epochs(tmp_path, generator_calls, first_epoch):
    from m2nist_seg.training.streams import fresh_training_data

    config = tiny_config(tmp_path, distort_digits=True, elastic_epochs=2)
    list(fresh_training_data(config, 16, first_epoch=first_epoch).take(4 - first_epoch))
    elastic = [call["elastic"] for call in generator_calls[: 4 - first_epoch]]
    assert elastic == [True, True, False, False][first_epoch:]
    assert all(call["distort"] for call in generator_calls)
    if first_epoch:
        seeds = [call["seed"] for call in generator_calls]
        generator_calls.clear()
        list(fresh_training_data(config, 16).take(4))
        fresh_seeds = [call["seed"] for call in generator_calls]
        assert fresh_seeds[1:4] == seeds[:3], "a resumed run draws the epochs it has not seen"


def test_warm_up_leaves_at_least_one_epoch_to_decay():
    """The default warm-up (two epochs) must not make a short run invalid: warm-up takes at most
    epochs − 1 epochs, so a one-epoch run decays from the peak at once, as a run without warm-up does."""
    assert TrainConfig().warmup_epochs == 2
    assert [TrainConfig(epochs=e).effective_warmup_epochs for e in (1, 2, 3, 8)] == [0, 1, 2, 2]
    assert [TrainConfig(epochs=e, warmup_epochs=w).effective_warmup_epochs for e, w in [(2, 1), (3, 5)]] == [1, 2]
    model = keras.Sequential([keras.Input((64, 84, 1)), keras.layers.Conv2D(11, 1, activation="softmax")])
    compile_default(model, TrainConfig(epochs=1, learning_rate=0.01), 10, np.zeros((1, 64, 84), np.uint8))
    for step, share_of_peak in {0: 1.0, 5: 0.5, 10: 0.0}.items():
        model.optimizer.iterations.assign(step)
        assert float(model.optimizer.learning_rate) == pytest.approx(0.01 * share_of_peak, abs=1e-9), step


@pytest.mark.parametrize(
    ("warmup_epochs", "expected"),
    [
        # 10 steps per epoch, 4 epochs. Without warm-up: a cosine from the peak over 40 steps.
        (0, {0: 1.0, 20: 0.5, 40: 0.0}),
        # With one epoch of warm-up: a line from 0 to the peak over 10 steps, then a cosine over 30.
        (1, {0: 0.0, 5: 0.5, 10: 1.0, 25: 0.5, 40: 0.0}),
        # With two (the default): a line over 20 steps, then a cosine over 20.
        (2, {0: 0.0, 10: 0.5, 20: 1.0, 30: 0.5, 40: 0.0}),
    ],
)
def test_default_learning_rate_schedule(warmup_epochs, expected):
    config = TrainConfig(epochs=4, learning_rate=0.01, warmup_epochs=warmup_epochs)
    model = keras.Sequential([keras.Input((64, 84, 1)), keras.layers.Conv2D(11, 1, activation="softmax")])
    compile_default(model, config, steps_per_epoch=10, train_labels=np.zeros((1, 64, 84), np.uint8))
    for step, share_of_peak in expected.items():
        model.optimizer.iterations.assign(step)
        assert float(model.optimizer.learning_rate) == pytest.approx(0.01 * share_of_peak, abs=1e-9), step
