"""Writing figures: atomically as PNG, and the README's key figures only when asked."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from m2nist_seg.core import settings
from m2nist_seg.core.atomic import atomic_path


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (a temporary file renamed into place)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Software": None})
    return Path(path)


def save_key_figure(fig: Figure, name: str) -> None:
    """Save ``fig`` as ``figures/<name>.png`` for the README, only when asked: with ``M2NIST_SAVE_FIGURES=1``
    and at full settings.

    Without the switch a notebook only shows its figures, so a learner's run leaves the tracked ``figures/``
    folder untouched; under ``M2NIST_QUICK=1`` nothing is saved either, so that figures from shrunken work
    never replace the README's. Returns nothing, so that a notebook cell ending in it shows no path.
    """
    if settings.save_figures() and not settings.quick_mode():
        save_figure(fig, settings.FIGURES_DIR / f"{name}.png")
