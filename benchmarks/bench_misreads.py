"""Whole digits read as another digit by a model with the ink gate, on familiar and on unseen handwriting.

A digit placement is misread when most of its ink pixels are labelled as another digit. The validation split
holds train-pool digits (handwriting the model trained on, in new combinations); the test split holds
test-pool digits, never seen in training.

Run: python benchmarks/bench_misreads.py [--model PATH]
"""

import argparse

import keras
import numpy as np

from m2nist_seg import data, evaluate
from m2nist_seg.settings import SHIPPED_MODEL


def misreads(labels: np.ndarray, predicted: np.ndarray, layout: data.Layout) -> tuple[int, int, set[int]]:
    """(placements, misread placements, indices of the misread MNIST digits) for uint8 (N, 64, 84) label maps."""
    classes = data.mnist_digits()[1]
    placements, misread, digits = 0, 0, set()
    for slot in range(data.MAX_DIGITS):
        box, slot_digits = data.slot_boxes(layout, slot)
        for truth, guess, digit in zip(labels[box], predicted[box], slot_digits):
            own = truth == classes[digit]
            if not own.any():
                continue
            placements += 1
            if (guess[own] != classes[digit]).mean() > 0.5:
                misread += 1
                digits.add(int(digit))
    return placements, misread, digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL), help="a .keras model (default: the shipped one)")
    model = keras.models.load_model(parser.parse_args().model)
    splits = data.load()
    for name, split, layout in (
        ("validation (train-pool digits)", splits.val, data.generated_val_layout()),
        ("test (test-pool digits)", splits.test, data.generated_test_layout()),
    ):
        predicted = evaluate.predict(model, split.images, ink_gated=True)
        placements, misread, digits = misreads(split.labels, predicted, layout)
        print(f"{name}: {misread} of {placements} placements misread ({len(digits)} distinct digits)")


if __name__ == "__main__":
    main()
