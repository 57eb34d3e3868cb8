"""Figures for the notebooks, the CLI and the README, in one fixed palette.

Every function returns a matplotlib ``Figure``; :func:`save_figure` writes one atomically as PNG.
Digits 0–9 take the ten colours of seaborn's "tab10" palette and background is near-black, everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import FancyBboxPatch, Patch

from m2nist_seg import data, settings
from m2nist_seg.atomic import atomic_path

BACKGROUND_COLOUR = (0.08, 0.08, 0.10)
PALETTE = np.array([*sns.color_palette("tab10", data.NUM_DIGITS), BACKGROUND_COLOUR])
sns.set_theme(context="notebook", style="whitegrid")


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


def _legend_below(fig) -> None:
    fig.legend(handles=legend_handles(), loc="lower center", ncol=11, frameon=False, fontsize=9)


def plot_samples(images: np.ndarray, labels: np.ndarray, n: int = 4) -> plt.Figure:
    """``n`` images as rows of image | mask | overlay, with a class legend."""
    n = min(n, len(images))
    fig, axes = plt.subplots(n, 3, figsize=(9, 1.9 * n + 0.6), squeeze=False)
    for row in range(n):
        panels = (images[row], colorize(labels[row]), overlay(images[row], labels[row]))
        for ax, panel, title in zip(axes[row], panels, ("image", "mask", "overlay")):
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=255 if panel.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title)
    _legend_below(fig)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_class_share(pixel_share: np.ndarray) -> plt.Figure:
    """Share of pixels per class (float (11,)), on a log axis so that digits and background both show."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    frame = pd.DataFrame({"class": list(data.CLASS_NAMES), "share": pixel_share})
    sns.barplot(frame, x="class", y="share", hue="class", palette=list(PALETTE), legend=False, ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("share of pixels (log)")
    ax.set_xlabel("")
    for patch, share in zip(ax.patches, pixel_share):
        ax.annotate(
            f"{share:.1%}",
            (patch.get_x() + patch.get_width() / 2, patch.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_title("Class pixel share: background dwarfs every digit")
    fig.tight_layout()
    return fig


def plot_counts(counts: np.ndarray, xlabel: str, title: str) -> plt.Figure:
    """A bar chart of how many images have each count (e.g. digits per image)."""
    values, frequency = np.unique(np.asarray(counts), return_counts=True)
    fig, ax = plt.subplots(figsize=(4.5, 3))
    sns.barplot(x=values, y=frequency, color=PALETTE[0], ax=ax)
    ax.bar_label(ax.containers[0])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_per_class(per_class: dict | pd.DataFrame, title: str = "Per-class scores") -> plt.Figure:
    """Grouped IoU and Dice bars per class, from a report's ``per_class`` section or a :func:`metrics.report` table."""
    table = pd.DataFrame(per_class).T if isinstance(per_class, dict) else per_class
    long = table[["iou", "dice"]].astype(float).rename_axis("class").reset_index()
    long = long.melt(id_vars="class", var_name="score", value_name="value")
    fig, ax = plt.subplots(figsize=(9, 3.4))
    sns.barplot(long, x="class", y="value", hue="score", palette=["#4C72B0", "#DD8452"], ax=ax)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title(title)
    ax.legend(loc="lower right", ncol=2)
    fig.tight_layout()
    return fig


def plot_confusion(matrix: np.ndarray, title: str = "Confusion matrix (share of each true class)") -> plt.Figure:
    """A heatmap of a confusion matrix (rows true, columns predicted), each row normalised to 1."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    sns.heatmap(
        rows,
        annot=True,
        fmt=".2f",
        cmap="mako_r",
        vmin=0,
        vmax=1,
        square=True,
        xticklabels=data.CLASS_NAMES,
        yticklabels=data.CLASS_NAMES,
        annot_kws={"fontsize": 7},
        cbar_kws={"shrink": 0.8},
        ax=ax,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_gallery(
    images: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    scores: Sequence[float] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Rows of image | truth | prediction, with each row's mean digit IoU when ``scores`` are given."""
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(9, 1.9 * n + 0.8), squeeze=False)
    for row in range(n):
        panels = (images[row], colorize(truth[row]), colorize(predicted[row]))
        for col, (ax, panel) in enumerate(zip(axes[row], panels)):
            ax.imshow(panel, cmap="gray" if col == 0 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(("image", "truth", "prediction")[col])
        if scores is not None:
            axes[row, 2].set_ylabel(f"IoU {scores[row]:.2f}", rotation=0, ha="left", va="center", labelpad=10)
            axes[row, 2].yaxis.set_label_position("right")
    if title:
        fig.suptitle(title)
    _legend_below(fig)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_predictions(images: np.ndarray, predicted: np.ndarray) -> plt.Figure:
    """Rows of image | predicted mask, for inputs without ground truth."""
    n = len(images)
    fig, axes = plt.subplots(n, 2, figsize=(6.5, 1.9 * n + 0.8), squeeze=False)
    for row in range(n):
        axes[row, 0].imshow(images[row], cmap="gray")
        axes[row, 1].imshow(colorize(predicted[row]))
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image")
    axes[0, 1].set_title("predicted mask")
    fig.legend(handles=legend_handles(), loc="lower center", ncol=6, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


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


def plot_architecture(stages: Sequence, title: str = "FCN-8 feature maps") -> plt.Figure:
    """Boxes for each stage of :func:`m2nist_seg.model.feature_shapes`: height ∝ feature-map height, labelled H×W×C."""
    fig, ax = plt.subplots(figsize=(max(8, 1.05 * len(stages)), 3.6))
    tallest = max(s.height for s in stages)
    colours = sns.color_palette("crest", len(stages))
    for i, (stage, colour) in enumerate(zip(stages, colours)):
        height = 2.4 * stage.height / tallest
        depth = 0.25 + 0.55 * np.log2(max(stage.channels, 1)) / np.log2(max(s.channels for s in stages))
        ax.add_patch(
            FancyBboxPatch((i - depth / 2, -height / 2), depth, height, boxstyle="round,pad=0.02", color=colour)
        )
        ax.text(i, -1.45, stage.name, ha="center", va="top", fontsize=8, rotation=30)
        ax.text(
            i,
            height / 2 + 0.08,
            f"{stage.height}×{stage.width}\n×{stage.channels}",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xlim(-0.7, len(stages) - 0.3)
    ax.set_ylim(-2.2, 1.9)
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (a temporary file renamed into place)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Software": None})
    return Path(path)


def save_key_figure(fig: plt.Figure, name: str) -> None:
    """Save ``fig`` as ``figures/<name>.png`` for the README, at full settings only.

    Under ``M2NIST_QUICK=1`` the figure is shown but not saved, so that a quick CI run never replaces the
    README's figures with ones from shrunken work.
    """
    if not settings.quick_mode():
        save_figure(fig, settings.FIGURES_DIR / f"{name}.png")


def plot_error_breakdown(table: pd.DataFrame, title: str = "Where the wrong pixels are") -> plt.Figure:
    """Horizontal bars of the share of wrong pixels per cause, from :func:`m2nist_seg.analysis.error_breakdown`."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    frame = table.reset_index()
    sns.barplot(frame, y="cause", x="share", hue="cause", palette="flare", legend=False, ax=ax)
    for patch, (share, pixels) in zip(ax.patches, zip(table["share"], table["pixels"])):
        ax.annotate(
            f" {share:.1%} ({pixels:,} px)",
            (patch.get_width(), patch.get_y() + patch.get_height() / 2),
            va="center",
            fontsize=9,
        )
    ax.set_xlim(0, max(1.0, table["share"].max() * 1.3))
    ax.set_xlabel("share of wrongly labelled pixels")
    ax.set_ylabel("")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_comparison(images: np.ndarray, columns: dict[str, np.ndarray]) -> plt.Figure:
    """Rows of image | one mask per entry of ``columns`` (name → label maps (N, H, W)), e.g. truth and models."""
    n, names = len(images), list(columns)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=(2.6 * (len(names) + 1), 1.75 * n + 0.8), squeeze=False)
    for row in range(n):
        axes[row, 0].imshow(images[row], cmap="gray")
        for col, name in enumerate(names, start=1):
            axes[row, col].imshow(colorize(columns[name][row]))
    for col, name in enumerate(["image", *names]):
        axes[0, col].set_title(name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    _legend_below(fig)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
