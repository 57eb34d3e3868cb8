"""Figures of training (notebooks 03 and 05): learning curves, predictions per epoch, and the experiments that
compare outputs, losses and FCN variants."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from m2nist_seg.viz.style import colorize, legend_handles, themed


@themed
def plot_history(history: pd.DataFrame) -> plt.Figure:
    """Learning curves from a run's ``history.csv``: loss and digit mIoU, train vs validation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    epochs = history["epoch"] + 1
    for ax, key, label in zip(axes, ("loss", "digit_miou"), ("loss", "mean digit IoU")):
        ax.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.legend()
    fig.tight_layout()
    return fig


def _image_grid(columns: dict[str, np.ndarray], images: np.ndarray, width: float, height: float) -> plt.Figure:
    """Rows of image | one colourised label map per column (name → uint8 (n, 64, 84)), titled, with a legend."""
    n = len(images)
    fig, axes = plt.subplots(
        n, len(columns) + 1, figsize=(width * (len(columns) + 1), height * n + 1.2), squeeze=False, layout="constrained"
    )
    for col, (title, maps) in enumerate({"image": images, **columns}.items()):
        for row in range(n):
            axes[row, col].imshow(maps[row] if col == 0 else colorize(maps[row]), cmap="gray")
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            axes[row, col].grid(False)
        axes[0, col].set_title(title, fontsize=10)
    fig.legend(handles=legend_handles(), loc="outside lower center", ncol=6, frameon=False, fontsize=9)
    return fig


@themed
def plot_output_comparison(images: np.ndarray, truth: np.ndarray, runs: Sequence[dict]) -> plt.Figure:
    """Rows of image | truth | one prediction per arm, from an experiment's ``runs`` (e.g. ``"outputs"``).

    ``images`` uint8 (n, 64, 84) and ``truth`` uint8 (n, 64, 84) label maps: the first n test images. Each run
    is a dict with ``arm``, ``seed``, ``test_mean_digit_iou`` and ``predictions``: label maps uint8 (at least
    n, 64, 84), as :func:`m2nist_seg.training.experiments.predictions` decodes them from an evidence run. Each arm
    shows its lowest seed's predictions (seed 0), titled with its test mean digit IoU averaged over its seeds.
    """
    frame = pd.DataFrame(runs)
    means = frame.groupby("arm", sort=False)["test_mean_digit_iou"].agg(["mean", "count"])
    shown = frame.sort_values("seed", kind="stable").groupby("arm", sort=False).head(1).set_index("arm")
    columns = {"truth": truth}
    for arm, (mean, seeds) in means.iterrows():
        name = textwrap.fill(arm, 30, break_on_hyphens=False)
        title = (
            f"{name}\ntest mean digit IoU {mean:.3f}\n(mean of {seeds:.0f} seeds; seed {shown.loc[arm, 'seed']} shown)"
        )
        columns[title] = shown.loc[arm, "predictions"][: len(images)]
    return _image_grid(columns, images, width=2.9, height=1.75)


@themed
def plot_prediction_strip(images: np.ndarray, truth: np.ndarray, label_maps: Sequence[np.ndarray]) -> plt.Figure:
    """How predictions sharpen while training: rows of image | one prediction per epoch | truth.

    ``images`` uint8 (n, 64, 84), ``truth`` uint8 (n, 64, 84) label maps, ``label_maps`` one uint8 (n, 64, 84)
    array per epoch, as :class:`m2nist_seg.training.callbacks.PredictionRecorder` records them.
    """
    columns = {f"epoch {k}": maps for k, maps in enumerate(label_maps, start=1)} | {"truth": truth}
    return _image_grid(columns, images, width=1.5, height=1.05)


def _arm_label(arm: str) -> str:
    """``fcn8`` → ``FCN-8``; other arm names as they are."""
    return f"FCN-{arm.removeprefix('fcn')}" if arm in ("fcn8", "fcn16", "fcn32") else arm


def _validation_curves(ax: plt.Axes, runs: pd.DataFrame, colours: dict[str, tuple]) -> None:
    """One thin line per run of validation mean digit IoU per epoch, coloured by arm, one legend entry per arm."""
    for arm, group in runs.groupby("arm", sort=False):
        for index, (_, run) in enumerate(group.iterrows()):
            curve = run["history"]["val_digit_miou"]
            label = _arm_label(arm) if index == 0 else None
            ax.plot(np.arange(1, len(curve) + 1), curve, color=colours[arm], lw=1.2, alpha=0.85, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mean digit IoU")
    ax.legend(fontsize=9)


def _dots_and_means(ax: plt.Axes, runs: pd.DataFrame, x: str, colours: dict[str, tuple]) -> None:
    """Test mean digit IoU per arm (and ``x`` group): a dot per seed and a line, labelled, for the mean over seeds."""
    frame = runs.assign(label=runs["arm"].map(_arm_label))
    palette = {_arm_label(arm): colour for arm, colour in colours.items()}
    levels = frame["label"].nunique()
    grouped = x != "label" and levels > 1
    common = {"data": frame, "x": x, "y": "test_mean_digit_iou", "hue": "label", "palette": palette, "ax": ax}
    # A swarm, not a jittered strip: seaborn jitters with numpy's global random state, so the saved figure
    # changed on every run; a swarm places the dots side by side, the same each time, and never on each other.
    sns.swarmplot(**common, dodge=grouped, size=7, edgecolor="0.2", linewidth=0.8, legend=False)
    # Dodged as far as the swarm plot's dodge puts each hue level, so that each mean line sits on its dots.
    sns.pointplot(
        **common,
        dodge=0.8 * (levels - 1) / levels if grouped else False,
        errorbar=None,
        markers="_",
        markersize=34,
        markeredgewidth=2.5,
        linestyle="none",
        legend=False,
    )
    for line in ax.lines:  # each mean, written at the foot of its column
        for position, mean in zip(line.get_xdata(), line.get_ydata()):
            if np.isnan(mean):  # a hue level at another level's x (when hue and x are both the arm)
                continue
            ax.text(position, 0.03, f"{mean:.3f}", transform=ax.get_xaxis_transform(), ha="center", fontsize=9.5)
    values = frame["test_mean_digit_iou"]
    spread = max(values.max() - values.min(), 0.02)
    ax.set_ylim(values.min() - 0.3 * spread, values.max() + 0.1 * spread)
    ax.set_ylabel("test mean digit IoU")


def _arm_colours(runs: pd.DataFrame) -> dict[str, tuple]:
    arms = list(dict.fromkeys(runs["arm"]))
    return dict(zip(arms, sns.color_palette("Dark2", len(arms))))


@themed
def plot_loss_comparison(result: dict) -> plt.Figure:
    """The ``losses`` experiment (:func:`m2nist_seg.training.experiments.compare_losses`): each loss at each budget.

    ``result["runs"]`` holds dicts with ``arm`` (the loss), ``seed``, ``budget`` (epochs), ``history``
    (``val_digit_miou`` per epoch) and ``test_mean_digit_iou``. Left: validation curves at the longest
    budget, one thin line per seed. Right: test mean digit IoU per budget, a dot per seed and a line for their mean.
    """
    runs = pd.DataFrame(result["runs"]).sort_values("budget", kind="stable")
    colours = _arm_colours(runs)
    longest = runs["budget"].max()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), width_ratios=(1, 1.2))
    _validation_curves(axes[0], runs[runs["budget"] == longest], colours)
    axes[0].set_title(f"Validation while training ({longest} epochs, a line per seed)")
    _dots_and_means(axes[1], runs.assign(budget=runs["budget"].map("{} epochs".format)), "budget", colours)
    axes[1].set_xlabel("training budget")
    axes[1].set_title("Test mean digit IoU: a dot per seed, their mean (line)")
    fig.tight_layout()
    return fig


@themed
def plot_variant_comparison(result: dict) -> plt.Figure:
    """The ``variants`` experiment (:func:`m2nist_seg.training.experiments.compare_variants`): FCN-32 vs 16 vs 8.

    ``result["runs"]`` holds dicts with ``arm`` (``fcn32``, ``fcn16``, ``fcn8``), ``seed``, ``history``
    (``val_digit_miou`` per epoch) and ``test_mean_digit_iou``. Left: validation curves, one line per seed.
    Right: test mean digit IoU per variant, a dot per seed and a line for their mean.
    """
    runs = pd.DataFrame(result["runs"])
    colours = _arm_colours(runs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    _validation_curves(axes[0], runs, colours)
    axes[0].set_title("Validation while training (a line per seed)")
    _dots_and_means(axes[1], runs, "label", colours)
    axes[1].set_xlabel("")
    axes[1].set_title("Test mean digit IoU: a dot per seed, their mean (line)")
    fig.tight_layout()
    return fig
