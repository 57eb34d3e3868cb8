"""The machine a benchmark runs on: print its cores and load, and refuse to time a busy machine.

A timing taken while other work shares the cores is not a result. Every timing benchmark calls
:func:`require_idle` first: it prints the core count and load averages, and exits with status 1 when the
1-minute load average is at or above ``IDLE_LOAD`` (other work is running), unless ``--force`` is given, in
which case it runs with a loud warning that its figures are not results.
"""

import argparse
import os
import sys

IDLE_LOAD = 0.5


def add_force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="time even on a busy machine (figures are not results)")


def require_idle(force: bool) -> None:
    """Print ``cores`` and load; exit 1 on a busy machine unless ``force``."""
    load1, load5, load15 = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPU cores, load average {load1:.2f} / {load5:.2f} / {load15:.2f} (1/5/15 min)")
    if load1 < IDLE_LOAD:
        return
    if not force:
        print(
            f"error: load average {load1:.2f} ≥ {IDLE_LOAD}: other work is using the cores, so timings would not be "
            "results; wait for an idle machine, or pass --force to time anyway",
            file=sys.stderr,
        )
        raise SystemExit(1)
    print(f"WARNING: load average {load1:.2f} ≥ {IDLE_LOAD}; these timings share the cores and are NOT results")
