"""Whole digits read as another digit by a model with the ink gate, on familiar and on unseen handwriting.

A digit placement is misread when most of its ink pixels are labelled as another digit
(:func:`m2nist_seg.evaluation.analysis.misread_placements`). The validation split holds val-pool digits and the test
split test-pool digits: both are handwriting that training never saw.

Run: python benchmarks/bench_misreads.py [--model PATH]
"""

import m2nist_seg  # noqa: F401  # isort: skip  (first, so that TensorFlow's C++ start-up log stays quiet)
import argparse

import keras

from m2nist_seg import data
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.evaluation import analysis, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL), help="a .keras model (default: the shipped one)")
    model = keras.models.load_model(parser.parse_args().model)
    splits = data.load()
    for name, split, layout in (
        ("validation (val-pool digits)", splits.val, splits.layouts.val),
        ("test (test-pool digits)", splits.test, splits.layouts.test),
    ):
        predicted = evaluate.predict(model, split.images, ink_gated=True)
        found = analysis.misread_placements(split.labels, predicted, layout)
        print(f"{name}: {found.misread} of {found.placements} placements misread ({len(found.digits)} distinct digits)")


if __name__ == "__main__":
    main()
