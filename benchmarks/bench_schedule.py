"""Choosing the default run's learning-rate schedule on validation images only.

Run: python benchmarks/bench_schedule.py [--arms 8e-3+wu1 ...] [--out scores.json]

Each arm trains the default run (`python -m m2nist_seg run`: 8 epochs of 3,500 fresh images, batch 16) with its
peak Adam rate and warm-up epochs changed. Every arm takes the same steps on the same images with the same model,
so their training times differ only by what the schedule costs a step (`bench_training_speed.py` and
`bench_train_step.py --only-schedules` measure that side by side; the seconds here are not timings). Every
figure printed comes from validation images: the best epoch's mean digit IoU on the 500-image validation split,
and the mean digit IoU of that checkpoint on 5,000 further images drawn from the validation digit pool (new
layouts, generator seed :data:`EXTRA_VALIDATION_SEED`), which measures a difference of a few thousandths that
500 images cannot. The rule: the arm with the highest score on the 5,000 images. The test split is never
printed here: it is scored once, for the schedule that becomes the default.
"""

import m2nist_seg  # noqa: F401  # isort: skip  (first, so that TensorFlow's C++ start-up log stays quiet)
import argparse
import os
import tempfile

from timing import load_at_start, write_evidence

from m2nist_seg import data
from m2nist_seg.evaluation import evaluate
from m2nist_seg.training.config import NO_WARMUP_SCHEDULE, TrainConfig
from m2nist_seg.training.train import train

ARMS = {
    "8e-3+wu0": NO_WARMUP_SCHEDULE,
    "8e-3+wu1": {"learning_rate": 8e-3, "warmup_epochs": 1},
    "8e-3+wu2": {"learning_rate": 8e-3, "warmup_epochs": 2},
    "1e-2+wu1": {"learning_rate": 1e-2, "warmup_epochs": 1},
    "1.2e-2+wu1": {"learning_rate": 1.2e-2, "warmup_epochs": 1},
    "1.2e-2+wu2": {"learning_rate": 1.2e-2, "warmup_epochs": 2},
}
EXTRA_VALIDATION_IMAGES = 5000
# The validation split itself is drawn with data.split_seeds(0)["val"] (2); these layouts are new.
EXTRA_VALIDATION_SEED = 1002


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="schedules to train")
    parser.add_argument("--out", help="also write every arm's scores to this JSON file")
    args = parser.parse_args()
    load_average = load_at_start()
    extra, _ = data.generated_split(EXTRA_VALIDATION_IMAGES, seed=EXTRA_VALIDATION_SEED, pool="val")
    scores = {}
    with tempfile.TemporaryDirectory() as output_dir:
        for arm in args.arms:
            config = TrainConfig(name=arm, output_dir=output_dir, verbose=False, **ARMS[arm])
            training = train(config)["training"]  # its test scores are left unread
            model = evaluate.load_model(os.path.join(output_dir, training["run"], "model.keras"))
            scores[arm] = {
                "changed": ARMS[arm],
                "seconds": training["seconds"],
                "best_epoch": training["best_epoch"],
                "best_val_digit_miou": round(training["best_val_digit_miou"], 4),
                "extra_val_digit_miou": round(evaluate.evaluate(model, extra)["mean_digit_iou"], 4),
            }
            print(
                f"{arm}: {training['seconds']:.0f} s, validation mIoU {scores[arm]['best_val_digit_miou']:.4f} "
                f"(epoch {training['best_epoch']}), on {EXTRA_VALIDATION_IMAGES:,} more validation images "
                f"{scores[arm]['extra_val_digit_miou']:.4f}",
                flush=True,
            )
    print(f"\n| arm | validation split (500) | {EXTRA_VALIDATION_IMAGES:,} more validation images | training s |")
    print("|---|---:|---:|---:|")
    for arm, row in scores.items():
        print(
            f"| {arm} | {row['best_val_digit_miou']:.4f} | {row['extra_val_digit_miou']:.4f} | {row['seconds']:.0f} |"
        )
    print(f"\nchosen: {max(scores, key=lambda arm: scores[arm]['extra_val_digit_miou'])}")
    if args.out:
        write_evidence(args.out, load_average, scores)


if __name__ == "__main__":
    main()
