"""Run the controlled comparisons behind the notebooks' claims and write them to evidence/*.json.

Run: python benchmarks/bench_evidence.py [losses] [variants] [outputs]   (default: all three)

- losses: cross-entropy vs cross-entropy + Dice vs weighted cross-entropy, 2 and 8 epochs, seeds 0 and 1;
- variants: FCN-32 vs FCN-16 vs FCN-8, 16 epochs each, seeds 0 and 1;
- outputs: sigmoid + binary cross-entropy vs softmax + cross-entropy, 2 epochs, seeds 0 and 1.

Every arm is scored on the same test split. About 45 minutes on an idle 2-core CPU; the notebooks only read
the files.
"""

import argparse

from m2nist_seg.training import experiments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help=f"experiments to run: any of {', '.join(experiments.EXPERIMENTS)}")
    names = parser.parse_args().which or list(experiments.EXPERIMENTS)
    unknown = sorted(set(names) - set(experiments.EXPERIMENTS))
    if unknown:
        parser.error(f"which: found {', '.join(unknown)}, expected any of {', '.join(experiments.EXPERIMENTS)}")
    for name in names:
        path = experiments.save_evidence(experiments.EXPERIMENTS[name]())
        print(f"wrote {path.relative_to(experiments.PROJECT_ROOT)}", flush=True)


if __name__ == "__main__":
    main()
