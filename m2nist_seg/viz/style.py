"""The look that every figure shares: the class palette, the seaborn theme, coloured masks and the class legend.

Digits 0–9 take the ten colours of seaborn's "tab10" palette and background is near-black, everywhere. The
theme (seaborn's "whitegrid" style, "notebook" context and "deep" colour cycle) holds only while a figure is
drawn, through :func:`themed`: importing the package leaves matplotlib's global settings as they were.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from m2nist_seg import data

BACKGROUND_COLOUR = (0.08, 0.08, 0.10)
PALETTE = np.array([*sns.color_palette("tab10", data.NUM_DIGITS), BACKGROUND_COLOUR])
# What ``sns.set_theme(context="notebook", style="whitegrid")`` would set globally, as rc parameters.
THEME: dict[str, Any] = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("notebook"),
    "axes.prop_cycle": mpl.cycler(color=sns.color_palette("deep")),
}

P = ParamSpec("P")
R = TypeVar("R")


def themed(draw: Callable[P, R]) -> Callable[P, R]:
    """``draw`` (a function that makes a figure) run under :data:`THEME`; matplotlib's settings are restored after."""

    @functools.wraps(draw)
    def drawn_in_theme(*args: P.args, **kwargs: P.kwargs) -> R:
        with mpl.rc_context(THEME):
            return draw(*args, **kwargs)

    return drawn_in_theme


def colorize(labels: np.ndarray) -> np.ndarray:
    """Label maps (..., H, W) → RGB float images (..., H, W, 3) in the project palette."""
    return PALETTE[np.asarray(labels)]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """An image (H, W) 0–255 with its digit classes tinted on top: RGB float (H, W, 3)."""
    grey = np.repeat((np.asarray(image, dtype=np.float64) / 255.0)[..., None], 3, axis=-1)
    tint = colorize(labels)
    digits = (np.asarray(labels) != data.BACKGROUND)[..., None]
    return np.where(digits, (1 - alpha) * grey + alpha * tint, grey)


def legend_handles() -> list[Patch]:
    """One patch per class, for a legend."""
    return [Patch(color=PALETTE[c], label=name) for c, name in enumerate(data.CLASS_NAMES)]


def legend_below(fig: Figure) -> None:
    """The class legend in one row along the bottom of ``fig``."""
    fig.legend(handles=legend_handles(), loc="lower center", ncol=11, frameon=False, fontsize=9)
