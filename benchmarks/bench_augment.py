"""Choosing the augmentation recipe on the validation split: each arm trained, then scored clean and perturbed.

Run: python benchmarks/bench_augment.py [--arms plain ink ...] [--epochs 8] [--out scores.json]

Each arm trains the default run (`python -m m2nist_seg run`: 8 epochs of 3,500 fresh images, batch 16) with the
settings named changed: no augmentation, one recipe of :data:`m2nist_seg.data.augment.RECIPES`, or randomly
distorted digits. Every figure printed comes from the **validation split**: the best epoch's validation mean digit
IoU, and the validation images under each condition of the robustness suite
(:mod:`m2nist_seg.evaluation.robustness`). The test split is never printed here: it is scored once, for the
recipe that is shipped (`python benchmarks/bench_robustness.py`). The training seconds are wall-clock, so they
compare arms only on an idle machine.
"""

import m2nist_seg  # noqa: F401  # isort: skip  (first, so that TensorFlow's C++ start-up log stays quiet)
import argparse
import os
import tempfile

from timing import load_at_start, write_evidence

from m2nist_seg import data
from m2nist_seg.evaluation import evaluate, robustness
from m2nist_seg.training.config import TrainConfig
from m2nist_seg.training.train import train

ARMS = {
    "plain": {},
    "distort": {"distort_digits": True},
    "moves": {"augment": True, "augmentation": "moves"},
    "ink": {"augment": True, "augmentation": "ink"},
    "ink_speckle": {"augment": True, "augmentation": "ink_speckle"},
    "ink_speckle_strong": {"augment": True, "augmentation": "ink_speckle_strong"},
}
ROWS = robustness.SPLIT_CONDITIONS  # the real samples are not part of the validation split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="settings to train")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="epochs per arm")
    parser.add_argument("--out", help="also write every arm's scores to this JSON file")
    args = parser.parse_args()
    load_average = load_at_start()
    validation = data.load(seed=0).val
    scores = {}
    with tempfile.TemporaryDirectory() as output_dir:
        for arm in args.arms:
            config = TrainConfig(name=arm, output_dir=output_dir, epochs=args.epochs, verbose=False, **ARMS[arm])
            training = train(config)["training"]  # its test scores are left unread
            model = evaluate.load_model(os.path.join(output_dir, training["run"], "model.keras"))
            table = robustness.robustness_table(model, validation, conditions=ROWS)
            scores[arm] = {
                "changed": ARMS[arm],
                "seconds": training["seconds"],
                "best_epoch": training["best_epoch"],
                "best_val_digit_miou": training["best_val_digit_miou"],
                "validation_robustness": table["mean_digit_iou"].round(4).to_dict(),
            }
            worst = table["mean_digit_iou"].drop("clean").min()
            print(
                f"{arm}: {training['seconds']:.0f} s, best validation mIoU {training['best_val_digit_miou']:.3f} "
                f"(epoch {training['best_epoch']}), worst perturbed row {worst:.3f}",
                flush=True,
            )
    names = list(scores)
    print("\n| validation mean digit IoU | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for row in ROWS:
        print(f"| {row} | " + " | ".join(f"{scores[arm]['validation_robustness'][row]:.3f}" for arm in names) + " |")
    print("| training s | " + " | ".join(f"{scores[arm]['seconds']:.0f}" for arm in names) + " |")
    if args.out:
        write_evidence(args.out, load_average, scores)


if __name__ == "__main__":
    main()
