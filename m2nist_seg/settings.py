"""Run-wide switches, read from the environment in one place.

``M2NIST_QUICK=1`` shrinks training and evaluation work so that CI can execute every notebook in a few
minutes; without it the notebooks run at full settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

QUICK_VARIABLE = "M2NIST_QUICK"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = PROJECT_ROOT / "models" / "fcn8_m2nist.keras"
FIGURES_DIR = PROJECT_ROOT / "figures"
RUNS_DIR = PROJECT_ROOT / "runs"


def quick_mode() -> bool:
    """True when ``M2NIST_QUICK`` is set to 1, true, yes or on (any case)."""
    return os.environ.get(QUICK_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def pick(full: T, quick: T) -> T:
    """``quick`` under ``M2NIST_QUICK=1``, else ``full``: the one way notebooks size their work."""
    return quick if quick_mode() else full
