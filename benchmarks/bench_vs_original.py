"""Train our FCN-8 and the original tutorial's model for the same wall-time budget, on the same data, and compare.

Run: python benchmarks/bench_vs_original.py [--minutes 5]

Prints one row per model: test mean digit IoU and Dice (test-pool digits never seen in training), training
images/s and inference images/s on this machine.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import m2nist_seg  # noqa: E402, F401  # isort: skip  (first: it turns oneDNN on and quiets TensorFlow's C++ log)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from original_recipe import build_original_fcn8  # noqa: E402
from timing import add_force_option, require_idle  # noqa: E402

from m2nist_seg import data  # noqa: E402
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.model import count_params  # noqa: E402
from m2nist_seg.training.callbacks import TimeBudget  # noqa: E402
from m2nist_seg.training.config import TrainConfig  # noqa: E402
from m2nist_seg.training.train import train  # noqa: E402


def inference_rate(predict_labels, images: np.ndarray, repeats: int = 3) -> float:
    """Best images/s of ``predict_labels`` over ``repeats`` passes (after one warm-up pass)."""
    predict_labels(images)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        predict_labels(images)
        best = max(best, len(images) / (time.perf_counter() - start))
    return best


def run_ours(minutes: float, splits: data.Splits, output_dir: str) -> dict:
    config = TrainConfig(name="bench_ours", output_dir=output_dir, time_budget_s=60 * minutes, verbose=False)
    start = time.perf_counter()
    report = train(config)
    model = keras.models.load_model(config.run_dir / "model.keras")
    return {
        "model": "ours: FCN-8, softmax + CE/Dice",
        "params": count_params(model),
        "miou": report["mean_digit_iou"],
        "dice": report["mean_digit_dice"],
        "train_rate": report["training"]["images_seen"] / report["training"]["seconds"],
        "infer_rate": inference_rate(lambda x: evaluate.predict(model, x), splits.test.images),
        "seconds": time.perf_counter() - start,
    }


def run_original(minutes: float, splits: data.Splits) -> dict:
    keras.utils.set_random_seed(0)
    model = build_original_fcn8()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    x = splits.train.images[..., None].astype(np.float32) / 255.0
    y = splits.train.masks.astype(np.float32)
    budget = TimeBudget(60 * minutes)
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=1000, callbacks=[budget], verbose=0)
    seconds = time.perf_counter() - start

    @tf.function(reduce_retracing=True)
    def labels_of(batch):
        return tf.argmax(model(tf.cast(batch[..., None], tf.float32) / 255.0, training=False), axis=-1)

    def predict_labels(images):
        return np.concatenate([labels_of(tf.constant(images[i : i + 256])).numpy() for i in range(0, len(images), 256)])

    scores = metrics.iou_dice(splits.test.labels, predict_labels(splits.test.images))
    return {
        "model": "original: FCN-8 as published, sigmoid + BCE",
        "params": count_params(model),
        "miou": scores.mean_digit_iou,
        "dice": scores.mean_digit_dice,
        "train_rate": int(model.optimizer.iterations) * 32 / seconds,
        "infer_rate": inference_rate(predict_labels, splits.test.images),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall-time budget per model")
    add_force_option(parser)
    args = parser.parse_args()
    require_idle(args.force)
    splits = data.load()
    with tempfile.TemporaryDirectory() as output_dir:
        rows = [run_ours(args.minutes, splits, output_dir), run_original(args.minutes, splits)]
    print(
        f"\nSame data (generated, seed 0), same {args.minutes:g}-minute training budget, {os.cpu_count()} CPU cores\n"
    )
    print("| model | parameters | test digit mIoU | test digit Dice | training images/s | inference images/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['model']} | {row['params'] / 1e6:.2f}M | {row['miou']:.3f} | {row['dice']:.3f} "
            f"| {row['train_rate']:.0f} | {row['infer_rate']:.0f} |"
        )


if __name__ == "__main__":
    main()
