"""Run-wide switches, read from the environment in one place.

- ``M2NIST_QUICK=1`` shrinks training and evaluation work so that CI can execute every notebook in a few
  minutes; without it the notebooks run at full settings.
- ``M2NIST_STRICT=1`` makes a failed exercise check raise ``AssertionError`` instead of printing a hint
  (CI runs the teacher's edition this way, so that every solution is known to pass).
- ``M2NIST_RUNS`` moves the folder that the notebooks train into (default: ``runs/`` in the project when
  working from a checkout, else ``runs/`` in the current folder: an installed package never writes into
  site-packages).
- ``M2NIST_AUTOGRADE=1`` marks a run by nbgrader's autograder (the course's ``nbgrader_config.py`` sets it):
  each exercise's autograder cell then fails when its check failed, so that the exercise loses its points;
  for a learner without nbgrader those cells do nothing.
- ``M2NIST_SAVE_FIGURES=1`` lets the notebooks write the README's figures into the tracked ``figures/``
  folder; without it a learner's run leaves the git tree untouched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

QUICK_VARIABLE = "M2NIST_QUICK"
STRICT_VARIABLE = "M2NIST_STRICT"
SAVE_FIGURES_VARIABLE = "M2NIST_SAVE_FIGURES"
AUTOGRADE_VARIABLE = "M2NIST_AUTOGRADE"
_TRUE = {"1", "true", "yes", "on"}
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # m2nist_seg/, this file being m2nist_seg/core/settings.py
PROJECT_ROOT = PACKAGE_DIR.parent
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "notebooks").is_dir()
# The shipped model lives in the checkout's models/; an installed package carries it as package data.
MODELS_DIR = PROJECT_ROOT / "models" if IN_CHECKOUT else PACKAGE_DIR / "pretrained"
SHIPPED_MODEL = MODELS_DIR / "fcn8_m2nist.keras"
FIGURES_DIR = PROJECT_ROOT / "figures"
RUNS_DIR = Path(os.environ.get("M2NIST_RUNS", PROJECT_ROOT / "runs" if IN_CHECKOUT else Path.cwd() / "runs"))


def _flag(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in _TRUE


def quick_mode() -> bool:
    """True when ``M2NIST_QUICK`` is set to 1, true, yes or on (any case)."""
    return _flag(QUICK_VARIABLE)


def strict_mode() -> bool:
    """True when ``M2NIST_STRICT`` is set to 1, true, yes or on (any case): failed checks raise."""
    return _flag(STRICT_VARIABLE)


def autograding() -> bool:
    """True when ``M2NIST_AUTOGRADE`` is set to 1, true, yes or on (any case): nbgrader is grading the notebook."""
    return _flag(AUTOGRADE_VARIABLE)


def save_figures() -> bool:
    """True when ``M2NIST_SAVE_FIGURES`` is set to 1, true, yes or on (any case): notebooks update ``figures/``."""
    return _flag(SAVE_FIGURES_VARIABLE)


def pick(full: T, quick: T) -> T:
    """``quick`` under ``M2NIST_QUICK=1``, else ``full``: the one way notebooks size their work."""
    return quick if quick_mode() else full


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as notebooks print it, with no absolute path: relative to the project or to the runs folder's
    parent when it lies inside one of them, else just its name."""
    path = Path(path).resolve()
    for base in (PROJECT_ROOT, RUNS_DIR.resolve().parent):
        if path.is_relative_to(base):
            return str(path.relative_to(base))
    return path.name
