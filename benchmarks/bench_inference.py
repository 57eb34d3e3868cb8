"""Inference speed of Keras `evaluate.predict` with the shipped model, on this machine's CPU, and the
arithmetic rate it reaches (the model's exact cost in GFLOP per image over the time per image).

Run: python benchmarks/bench_inference.py [--force]   (`bench_export.py` compares it with ONNX Runtime)
"""

import m2nist_seg  # noqa: F401  # isort: skip  (first, so that TensorFlow's C++ start-up log stays quiet)
import argparse
import os
import time

import keras
from timing import add_force_option, require_idle

from m2nist_seg import data
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.deploy import export
from m2nist_seg.evaluation import evaluate
from m2nist_seg.model import count_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_force_option(parser)
    require_idle(parser.parse_args().force)
    model = keras.models.load_model(SHIPPED_MODEL)
    images = data.load().test.images
    evaluate.predict(model, images)
    rates = []
    for _ in range(9):
        start = time.perf_counter()
        evaluate.predict(model, images)
        rates.append(len(images) / (time.perf_counter() - start))
    print(f"{SHIPPED_MODEL.name}: {count_params(model):,} parameters, {os.cpu_count()} CPU cores")
    best, median = max(rates), sorted(rates)[len(rates) // 2]
    print(f"predict on {len(images)} test images: best {best:.0f} images/s, median {median:.0f} images/s")
    gflop = export.flops_per_image(model) / 1e9
    print(f"cost {gflop:.4f} GFLOP per 64×84 image: {gflop * median:.0f} GFLOP/s at the median rate")


if __name__ == "__main__":
    main()
