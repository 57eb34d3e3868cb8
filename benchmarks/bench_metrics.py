"""Time iou_dice and confusion_matrix on 1,000 label maps (5.4M pixels).

Run: python benchmarks/bench_metrics.py
"""

import argparse

import numpy as np
from timing import add_force_option, best_of, require_idle

from m2nist_seg import data
from m2nist_seg.evaluation import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_force_option(parser)
    require_idle(parser.parse_args().force)
    _, truth = data.generate_labels(1000, seed=0, pool="test")
    rng = np.random.default_rng(0)
    predicted = np.where(rng.random(truth.shape) < 0.02, rng.integers(0, 11, truth.shape), truth).astype(np.uint8)
    print(f"{truth.size:,} pixels in {len(truth)} label maps")
    print(f"confusion_matrix: {best_of(5, lambda: metrics.confusion_matrix(truth, predicted)):.3f} s  (target ≤ 0.2 s)")
    print(f"iou_dice:         {best_of(5, lambda: metrics.iou_dice(truth, predicted)):.3f} s  (target ≤ 0.2 s)")
    print(f"per_image_scores: {best_of(5, lambda: metrics.per_image_scores(truth, predicted)):.3f} s")


if __name__ == "__main__":
    main()
