"""Shared timing helpers for the benchmark scripts."""

import argparse
import os
import sys
import time
from collections.abc import Callable

# A benchmark that uses every core needs them to itself. One busy process adds about 1 to the load average, so
# a 1-minute load above a quarter of a core per core (0.5 on two cores) means that other work is running.
MAX_LOAD_PER_CORE = 0.25


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(repeats: int, fns: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """``repeats`` wall-clock timings (seconds) of each of ``fns``, taken in turns (a, b, c, a, b, c, …) so that a
    change in the machine's load falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def add_force_option(parser: argparse.ArgumentParser) -> None:
    """The ``--force`` option of every timing benchmark: time even on a busy machine, with a warning."""
    parser.add_argument("--force", action="store_true", help="time even on a busy machine (figures are not results)")


def require_idle(force: bool = False) -> None:
    """Print the core count and load averages; exit with status 1 when the 1-minute load average shows other work
    (above :data:`MAX_LOAD_PER_CORE` a core), unless ``force``, which runs on with a warning."""
    cores = os.cpu_count() or 1
    loads = os.getloadavg()
    print(f"{cores} CPU cores, load average {loads[0]:.2f} {loads[1]:.2f} {loads[2]:.2f} (1, 5, 15 minutes)")
    limit = MAX_LOAD_PER_CORE * cores
    if loads[0] <= limit:
        return
    message = f"the 1-minute load average {loads[0]:.2f} is above {limit:.2f}: other work is running"
    if not force:
        print(f"refusing to time: {message}; wait for an idle machine, or pass --force", file=sys.stderr)
        sys.exit(1)
    print(f"WARNING: {message}; timing anyway (--force): these numbers are NOT comparable", file=sys.stderr)
