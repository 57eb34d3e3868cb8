"""Where the default run's training time goes: data generation, batch size, bfloat16, threads and schedule.

Run: python benchmarks/bench_train_step.py [--only-schedules] [--force]

Times the default run's training step (FCN-8, cross-entropy + Dice, Adam, the digit mIoU metric) on 3,504
generated training images held in memory: the median of about 1,300 images' worth of steps after a warm-up,
for each batch size and precision, in one process. Thread settings are fixed when TensorFlow starts, so each
one is timed in a fresh process (this script with ``--threads``), beside a fresh process with the default
settings. Last, the time to generate one epoch of fresh training images, which the default run draws each
epoch, against the time to train on them: the share of the epoch that the CPU could spend waiting on data.
And the step under today's learning-rate schedule (warm-up, then cosine decay: a branch on the step number)
against the previous one (cosine decay alone), in turns (``--only-schedules`` times only these): the two runs
take the same steps on the same images, so their training time differs only by what the schedule costs a step.
"""

import m2nist_seg  # noqa: F401  # isort: skip  (first, so that TensorFlow's C++ start-up log stays quiet)
import argparse
import subprocess
import sys
import time

import keras
import numpy as np
from timing import add_force_option, best_of, require_idle

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.training.config import NO_WARMUP_SCHEDULE, TrainConfig
from m2nist_seg.training.train import compile_default, precision_policy

EPOCH_IMAGES = 3504  # the default run's 3,500 training images, rounded up to a multiple of every batch size
MEASURED_IMAGES = 1280
SETTINGS = [(16, "float32"), (32, "float32"), (64, "float32"), (16, "mixed_bfloat16"), (32, "mixed_bfloat16"),
            (64, "mixed_bfloat16")]  # fmt: skip
THREADS = [(0, 0), (2, 1), (1, 2), (1, 1)]  # (intra-op, inter-op); 0 is TensorFlow's default, one per core
SCHEDULES = {"previous: no warm-up": NO_WARMUP_SCHEDULE, "today: the default warm-up": {}}
SCHEDULE_REPEATS = 3


class StepTimes(keras.callbacks.Callback):
    """Wall-clock seconds of each training step."""

    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def images_per_second(
    images: np.ndarray, labels: np.ndarray, batch_size: int, precision: str, **changes: object
) -> float:
    """Training images per second of the default model and compile step (with the ``TrainConfig`` fields in
    ``changes`` changed): the median step's rate."""
    config = TrainConfig(batch_size=batch_size, precision=precision, **changes)
    with precision_policy(precision):
        model = fcn.build_fcn(config.variant)
        compile_default(model, config, len(images) // batch_size, labels)
    dataset = data.make_dataset(images, labels, batch_size=batch_size).repeat()
    model.fit(dataset, steps_per_epoch=5, shuffle=False, verbose=0)  # traces the step function
    times = StepTimes()
    model.fit(dataset, steps_per_epoch=MEASURED_IMAGES // batch_size, shuffle=False, verbose=0, callbacks=[times])
    return batch_size / float(np.median(times.seconds))


def time_threads(intra: int, inter: int) -> None:
    """Child process: set TensorFlow's thread pools before it starts, print the default step's images/s."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    images, labels = data.generate_labels(EPOCH_IMAGES, seed=1, pool="train")
    print(images_per_second(images, labels, 16, "float32"))


def time_schedules(images: np.ndarray, labels: np.ndarray) -> None:
    """Print the default step's images/s under each of :data:`SCHEDULES`, timed in turns."""
    rates: dict[str, list[float]] = {name: [] for name in SCHEDULES}
    for _ in range(SCHEDULE_REPEATS):
        for name, changes in SCHEDULES.items():
            rates[name].append(images_per_second(images, labels, 16, "float32", **changes))
    previous = float(np.median(rates[next(iter(SCHEDULES))]))
    print("\n| schedule | training images/s (batch 16, float32), in turns | median | × previous |\n|---|---|---:|---:|")
    for name, values in rates.items():
        median = float(np.median(values))
        runs = ", ".join(f"{value:.0f}" for value in values)
        print(f"| {name} | {runs} | {median:.0f} | {median / previous:.3f}× |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", nargs=2, type=int, metavar=("INTRA", "INTER"), help=argparse.SUPPRESS)
    parser.add_argument("--only-schedules", action="store_true", help="time only the step under each schedule")
    add_force_option(parser)
    args = parser.parse_args()
    if args.threads:
        time_threads(*args.threads)
        return
    require_idle(args.force)
    images, labels = data.generate_labels(EPOCH_IMAGES, seed=1, pool="train")
    time_schedules(images, labels)
    if args.only_schedules:
        return

    print("\n| batch | precision | training images/s | × batch 16, float32 |\n|---:|---|---:|---:|")
    rates = {}
    for batch_size, precision in SETTINGS:
        rates[batch_size, precision] = images_per_second(images, labels, batch_size, precision)
        ratio = rates[batch_size, precision] / rates[SETTINGS[0]]
        print(f"| {batch_size} | {precision} | {rates[batch_size, precision]:.0f} | {ratio:.2f}× |", flush=True)

    print("\n| intra-op threads | inter-op threads | images/s (batch 16, float32) | × default |\n|---:|---:|---:|---:|")
    thread_rates = {}
    for intra, inter in THREADS:
        child = [sys.executable, __file__, "--threads", str(intra), str(inter)]
        output = subprocess.run(child, capture_output=True, text=True, check=True).stdout
        thread_rates[intra, inter] = float(output.split()[-1])
        ratio = thread_rates[intra, inter] / thread_rates[THREADS[0]]
        names = [str(n) if n else "default" for n in (intra, inter)]
        print(f"| {names[0]} | {names[1]} | {thread_rates[intra, inter]:.0f} | {ratio:.2f}× |", flush=True)

    generate = best_of(3, lambda: data.generate_labels(EPOCH_IMAGES, seed=2, pool="train"))
    train_epoch = EPOCH_IMAGES / rates[SETTINGS[0]]
    print(
        f"\ndata: generating one epoch's {EPOCH_IMAGES:,} fresh images takes {generate:.2f} s, against "
        f"{train_epoch:.1f} s to train on them at batch 16 ({generate / train_epoch:.1%} of the epoch)"
    )


if __name__ == "__main__":
    main()
