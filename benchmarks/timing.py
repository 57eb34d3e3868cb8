"""Shared helpers for the benchmark scripts: timing, the machine's load, and the evidence they write."""

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from m2nist_seg.core.atomic import atomic_path

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


def load_at_start() -> float:
    """Print the core count and load averages of a benchmark that is not a timing (its scores do not depend on the
    load); return the 1-minute load average, which its evidence records."""
    loads = os.getloadavg()
    print(f"{os.cpu_count()} CPU cores, load average {loads[0]:.2f} {loads[1]:.2f} {loads[2]:.2f} at the start")
    return loads[0]


def write_evidence(path: str | os.PathLike, load_average: float, arms: dict) -> None:
    """Write a benchmark's scores to the JSON file ``path`` (whole or not at all): the command that made them (the
    running script and its arguments), the 1-minute load average at its start and each arm's scores."""
    command = " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"command": command, "load_average_at_start": load_average, "arms": arms}, indent=1))
