"""Training speed of the default run, side by side with candidate settings, in one process on one machine.

Run: python benchmarks/bench_training_speed.py [--arms today bf16 ...] [--force]   (every arm by default)

Each arm trains the default run (`python -m m2nist_seg run`: 8 epochs of 3,500 fresh images, batch 16) with
the settings named changed, then scores its best checkpoint (chosen on validation) once on the test split. The
table gives each arm's training seconds run by run, their mean, its ratio to today's configuration and the test
mean digit IoU; naming an arm twice (``--arms previous today previous today``) times them in interleaved pairs,
so that a change in the machine's load falls on both. ``previous`` is the default run before it gained its
warm-up (a peak of 8e-3 from the first step; today's default warms up to that peak over two epochs); the speed
arms (bfloat16, batch 32) change that previous run, as they were first measured. A larger batch takes half as
many steps, so it gets a higher peak learning rate; ``warmup_epochs=1`` raises the rate from 0 over the first
epoch.
(`bench_train_step.py` times the steps alone.)
"""

import argparse
import tempfile

from timing import add_force_option, require_idle

from m2nist_seg.training.config import NO_WARMUP_SCHEDULE, TrainConfig
from m2nist_seg.training.train import train

# The default run before it gained its warm-up (8e-3, no warm-up); the speed arms change it.
PREVIOUS = NO_WARMUP_SCHEDULE
BF16_BATCH32 = {**PREVIOUS, "precision": "mixed_bfloat16", "batch_size": 32, "learning_rate": 1.2e-2}
ARMS = {
    "today": {},
    "previous": PREVIOUS,
    "bf16": {**PREVIOUS, "precision": "mixed_bfloat16"},
    "bf16+batch32": BF16_BATCH32,
    "bf16+batch32+warmup": {**BF16_BATCH32, "warmup_epochs": 1},
    "bf16+batch32+warmup+6ep": {**BF16_BATCH32, "warmup_epochs": 1, "epochs": 6},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="settings to train")
    add_force_option(parser)
    args = parser.parse_args()
    require_idle(args.force)
    rows = []
    with tempfile.TemporaryDirectory() as output_dir:
        for position, arm in enumerate(args.arms, start=1):
            config = TrainConfig(name=f"{position}-{arm}", output_dir=output_dir, verbose=False, **ARMS[arm])
            report = train(config)
            rows.append((arm, report["training"]["seconds"], report["mean_digit_iou"]))
            print(f"{arm}: {rows[-1][1]:.0f} s of training, test mean digit IoU {rows[-1][2]:.4f}", flush=True)
    by_arm: dict[str, list[tuple[float, float]]] = {}
    for arm, seconds, miou in rows:
        by_arm.setdefault(arm, []).append((seconds, miou))
    means = {arm: sum(seconds for seconds, _ in runs) / len(runs) for arm, runs in by_arm.items()}
    baseline = means.get("today")
    print("\n| arm | changed | training s, run by run | mean s | speed-up vs today | test mean digit IoU |")
    print("|---|---|---:|---:|---:|---:|")
    for arm, runs in by_arm.items():
        ratio = f"{baseline / means[arm]:.2f}×" if baseline else "n/a"
        changed = ", ".join(f"{k}={v}" for k, v in ARMS[arm].items()) or "—"
        seconds = ", ".join(f"{s:.0f}" for s, _ in runs)
        mious = ", ".join(sorted({f"{m:.4f}" for _, m in runs}))
        print(f"| {arm} | {changed} | {seconds} | {means[arm]:.0f} | {ratio} | {mious} |")


if __name__ == "__main__":
    main()
