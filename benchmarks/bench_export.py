"""Keras `predict` against the exported ONNX graphs (float32 and int8) run by ONNX Runtime, side by side.

Times every path in turns on the same 1,000 generated test images and prints, for the plain and the ink-gated
label maps: median images/s, the ratio to Keras, the share of pixels equal to Keras' labels, the mean digit IoU
and the achieved GFLOP/s. The graphs are the shipped `models/fcn8_m2nist.onnx` and `.int8.onnx` when present,
else exported afresh from `models/fcn8_m2nist.keras`. Checks the load first (`timing.require_idle`): it refuses
to run while other work loads the machine, before it even imports TensorFlow.

Run: python benchmarks/bench_export.py [--repeats 9] [--batch-size 64] [--force]
"""

import argparse
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from timing import interleaved, require_idle

KERAS = "keras predict"


def graphs(model, folder: Path, calibration_images: np.ndarray) -> dict[str, Path]:
    """The float32 and int8 graph files: the shipped ones, or fresh exports into ``folder``."""
    from m2nist_seg.deploy import export

    files = {"onnx float32": export.SHIPPED_ONNX, "onnx int8": export.SHIPPED_INT8}
    for name, path in files.items():
        if not path.is_file():
            print(f"{path.name} not shipped: exporting it afresh")
            int8 = name.endswith("int8")
            images = calibration_images if int8 else None
            files[name] = export.export_onnx(model, folder / path.name, int8=int8, calibration_images=images)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed passes over the test images per path")
    parser.add_argument("--batch-size", type=int, default=64, help="images per ONNX Runtime call")
    parser.add_argument("--force", action="store_true", help="time even when other work loads the machine")
    args = parser.parse_args()
    require_idle(args.force)

    from m2nist_seg import data
    from m2nist_seg.core.settings import SHIPPED_MODEL
    from m2nist_seg.deploy import export
    from m2nist_seg.evaluation import evaluate

    model = evaluate.load_model(SHIPPED_MODEL)
    splits = data.load("generated")
    images, truth = splits.test.images, splits.test.labels
    gflop = export.flops_per_image(model) / 1e9
    print(
        f"{SHIPPED_MODEL.name}: {gflop:.4f} GFLOP per image (2 × the multiply-adds of its convolutions and "
        "transposed convolutions; bias, ReLU, pooling, additions and argmax not counted)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        calibration = splits.train.images[: export.CALIBRATION_IMAGES]
        paths = {KERAS: model, **graphs(model, Path(tmp), calibration)}
        for ink_gated in (False, True):
            runs = {
                name: partial(
                    evaluate.predict,
                    m,
                    images,
                    ink_gated=ink_gated,
                    batch_size=64 if name == KERAS else args.batch_size,
                )
                for name, m in paths.items()
            }
            labels = {name: run() for name, run in runs.items()}  # also the warm-up: sessions, tracing
            times = interleaved(args.repeats, runs)
            keras_rate = len(images) / np.median(times[KERAS])
            print(f"\n{'ink-gated' if ink_gated else 'plain'} labels, {len(images)} test images, {args.repeats} passes")
            print(f"{'path':>14} {'images/s':>9} {'× keras':>8} {'equal px':>9} {'mIoU':>7} {'GFLOP/s':>8}")
            for name, seconds in times.items():
                rate = len(images) / np.median(seconds)
                parity = export.parity(labels[KERAS], labels[name], truth)
                print(
                    f"{name:>14} {rate:9.0f} {rate / keras_rate:8.2f} {100 * parity['equal_pixels']:8.3f}% "
                    f"{parity['iou']:7.4f} {rate * gflop:8.1f}"
                )


if __name__ == "__main__":
    main()
