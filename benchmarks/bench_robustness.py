"""How a model copes with images unlike its training data: scores on the perturbed test split, one row per condition.

The generated test split (seed 0, test-pool digits) under each condition of
:data:`m2nist_seg.evaluation.robustness.CONDITIONS`: thicker and thinner strokes, a binary pen, the drawing board's
own strokes, Gaussian and salt-and-pepper noise, shifts, scales and rotations of the whole image, three overlapping
digits, and the 10 real Kaggle samples (skipped when ../shared/m2nist-sample is absent). Where a perturbation changes
the ink, the mask follows it; noise leaves the mask alone, so its rows have no ink-gated score.

Run: python benchmarks/bench_robustness.py [--model PATH] [--out table.csv] [--split test|val]

With ``--split val`` the validation split is perturbed instead, to choose between models without the test split;
the real samples are left out then, as a test set of their own.
"""

import m2nist_seg  # noqa: F401  # isort: skip  (first, so that TensorFlow's C++ start-up log stays quiet)
import argparse
from pathlib import Path

from m2nist_seg import data
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.evaluation import evaluate, robustness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL), help="a .keras or .onnx model (default: shipped)")
    parser.add_argument("--out", help="also write the table to this CSV file")
    parser.add_argument(
        "--split", choices=("test", "val"), default="test", help="the split to perturb (val: to choose between models)"
    )
    args = parser.parse_args()
    model = args.model if Path(args.model).suffix == ".onnx" else evaluate.load_model(args.model)
    splits = data.load(seed=0)
    if args.split == "test":
        table = robustness.robustness_table(model, splits.test)
    else:
        table = robustness.robustness_table(model, splits.val, conditions=robustness.SPLIT_CONDITIONS)
    print(table.to_string(float_format="{:.3f}".format, na_rep="-"))
    if args.out:
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
