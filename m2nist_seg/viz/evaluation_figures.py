"""Figures of scores and predictions (notebooks 01, 04, 05 and the CLI): per-class scores, confusion matrices,
galleries of predictions, errors by cause, and IoU against Dice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Circle, Patch

from m2nist_seg import data
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import metrics
from m2nist_seg.evaluation.analysis import CAUSES
from m2nist_seg.viz.style import PALETTE, colorize, legend_below, legend_handles, themed


@themed
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


_CONFUSION_VIEWS = {
    "true": "share of each TRUE class (rows sum to 1: recall on the diagonal)",
    "pred": "share of each PREDICTED class (columns sum to 1: precision on the diagonal)",
}


def _confusion_heatmap(ax: plt.Axes, matrix: np.ndarray, normalise: Literal["true", "pred"], cbar: bool) -> None:
    matrix = np.asarray(matrix, dtype=np.float64)
    axis = 1 if normalise == "true" else 0
    shares = matrix / np.maximum(matrix.sum(axis=axis, keepdims=True), 1)
    sns.heatmap(
        shares,
        annot=np.where(shares >= 0.005, np.char.mod("%.2f", shares), ""),
        fmt="",
        cmap="mako_r",
        vmin=0,
        vmax=1,
        square=True,
        cbar=cbar,
        xticklabels=data.CLASS_NAMES,
        yticklabels=data.CLASS_NAMES,
        annot_kws={"fontsize": 9},
        cbar_kws={"shrink": 0.8},
        ax=ax,
    )
    ax.set_xlabel("predicted (blank: under 0.005)")
    ax.set_ylabel("true")


@themed
def plot_confusion(
    matrix: np.ndarray, title: str | None = None, normalise: Literal["true", "pred"] = "true"
) -> plt.Figure:
    """A heatmap of a confusion matrix, int (11, 11) with rows true and columns predicted, in shares.

    ``normalise="true"`` divides each row by its sum (the share of each true class: recall on the diagonal);
    ``"pred"`` divides each column (the share of each predicted class: precision on the diagonal). Shares
    under 0.005 are left blank.
    """
    if normalise not in _CONFUSION_VIEWS:
        raise M2NISTError(f"normalise: found {normalise!r}, expected 'true' or 'pred'")
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    _confusion_heatmap(ax, matrix, normalise, cbar=True)
    ax.set_title(title or f"Confusion matrix\n{_CONFUSION_VIEWS[normalise]}", fontsize=11)
    fig.tight_layout()
    return fig


@themed
def plot_confusion_views(matrix: np.ndarray) -> plt.Figure:
    """Both normalisations of a confusion matrix, int (11, 11) rows true, columns predicted, side by side.

    Rows normalised, background's row is ~1.00 on its diagonal and hides the background pixels called digits;
    columns normalised, the background row shows, for each predicted digit, the share of its pixels that
    were truly background (its false positives).
    """
    fig, axes = plt.subplots(1, 2, figsize=(13.5, 7))
    _confusion_heatmap(axes[0], matrix, "true", cbar=False)
    _confusion_heatmap(axes[1], matrix, "pred", cbar=False)
    axes[0].set_title(
        "Rows normalised: share of each TRUE class (recall)\n"
        "background's row ≈ 1.00 hides background pixels called digits"
    )
    axes[1].set_title(
        "Columns normalised: share of each PREDICTED class (precision)\n"
        "bottom row: share of each predicted digit's pixels that were background"
    )
    for ax in axes:
        ax.title.set_fontsize(11)
    fig.tight_layout()
    return fig


@themed
def plot_gallery(
    images: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    scores: Sequence[float] | None = None,
    title: str | None = None,
    row_names: Sequence[str] | None = None,
) -> plt.Figure:
    """Rows of image | truth | prediction, with each row's mean digit IoU when ``scores`` are given and its
    name on the left when ``row_names`` are."""
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
        if row_names is not None:
            axes[row, 0].set_ylabel(row_names[row], rotation=0, ha="right", va="center", labelpad=10)
        if scores is not None:
            axes[row, 2].set_ylabel(f"IoU {scores[row]:.2f}", rotation=0, ha="left", va="center", labelpad=10)
            axes[row, 2].yaxis.set_label_position("right")
    if title:
        fig.suptitle(title)
    legend_below(fig)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_worst_cases(cases: Mapping[str, Sequence[np.ndarray]], title: str | None = None) -> plt.Figure:
    """The worst image of each condition, a row each: image | truth | prediction, its mean digit IoU on the right
    and the condition's name on the left. ``cases`` maps a condition's name to its images, labels, predicted
    label maps and IoUs, worst first (as :func:`m2nist_seg.evaluation.robustness.worst_cases` gives them)."""
    if not cases:
        raise M2NISTError("cases: found none, expected at least one condition")
    worst = [tuple(part[0] for part in case[:4]) for case in cases.values()]
    images, truth, predicted, scores = (np.stack(column) for column in zip(*worst))
    return plot_gallery(images, truth, predicted, scores, title=title, row_names=list(cases))


@themed
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


@themed
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
    legend_below(fig)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


@themed
def plot_error_breakdown(table: pd.DataFrame, title: str = "Where the wrong pixels are") -> plt.Figure:
    """Horizontal bars of the share of wrong pixels per cause, from
    :func:`m2nist_seg.evaluation.analysis.error_breakdown`."""
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


CAUSE_COLOURS = ("#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#1f77b4", "#2ca02c")


@themed
def plot_error_map(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray, causes: np.ndarray) -> plt.Figure:
    """One image's errors by cause: image | truth | prediction | wrong pixels coloured by cause.

    ``image`` uint8 (64, 84); ``truth`` and ``predicted`` label maps uint8 (64, 84); ``causes`` int8 (64, 84)
    from :func:`m2nist_seg.evaluation.analysis.error_causes` (-1 where right). Right pixels are drawn in grey.
    """
    colours = np.array([mcolors.to_rgb(c) for c in CAUSE_COLOURS])
    grey = np.repeat((np.asarray(image, dtype=np.float64) / 255.0 * 0.5)[..., None], 3, axis=-1)
    errors = np.where((causes >= 0)[..., None], colours[np.maximum(causes, 0)], grey)
    fig, axes = plt.subplots(1, 4, figsize=(12, 2.9))
    panels = (image, colorize(truth), colorize(predicted), errors)
    for ax, panel, title in zip(axes, panels, ("image", "truth", "prediction", "wrong pixels by cause")):
        ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=colour, label=cause) for cause, colour in zip(CAUSES, CAUSE_COLOURS)]
    fig.legend(handles=handles, loc="lower center", ncol=len(CAUSES), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


# The discs of plot_iou_vs_dice: an image side, their radius and their centres (row, column), in pixels.
DISC_SIZE, DISC_RADIUS, DISC_CENTRES = 100, 30, ((50, 37), (50, 63))


def _disc(centre: tuple[float, float]) -> np.ndarray:
    rows, cols = np.indices((DISC_SIZE, DISC_SIZE))
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= DISC_RADIUS**2


def _binary_scores(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    scores = metrics.iou_dice(truth.astype(np.uint8), predicted.astype(np.uint8), num_classes=2)
    return float(scores.iou[1]), float(scores.dice[1])


def _legend_under_axis(ax: plt.Axes, handles: list[Patch]) -> None:
    """One row of legend entries centred under an image axis, without a frame."""
    ax.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.28), ncol=len(handles), fontsize=9, frameon=False
    )


@themed
def plot_iou_vs_dice(digit: np.ndarray) -> plt.Figure:
    """IoU and Dice of the same overlap, and what a one-pixel shift costs a thin stroke.

    ``digit``: uint8 (28, 28), an MNIST digit. (a) Two overlapping discs (:data:`DISC_RADIUS`, :data:`DISC_CENTRES`),
    intersection and union shaded; (b) Dice = 2·IoU / (1 + IoU) with the points of (a) and (c); (c) the digit's
    ink (> 0) as the truth against the same mask shifted one pixel to the right. Scores come from
    :func:`m2nist_seg.evaluation.metrics.iou_dice`.
    """
    first, second = (_disc(centre) for centre in DISC_CENTRES)
    truth = np.asarray(digit) > 0
    shifted = np.zeros_like(truth)
    shifted[:, 1:] = truth[:, :-1]
    discs, stroke = _binary_scores(first, second), _binary_scores(truth, shifted)
    union_colour, both_colour, white = np.array([0.78, 0.85, 0.93]), PALETTE[1], np.ones(3)

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6))
    union_only, both = first ^ second, first & second
    axes[0].imshow(np.array([white, union_colour, both_colour])[union_only + 2 * both])
    for name, (row, col) in zip("AB", DISC_CENTRES):
        axes[0].add_patch(Circle((col, row), DISC_RADIUS, fill=False, edgecolor="0.2", lw=1.2))
        axes[0].text(col + 1.2 * (col - DISC_SIZE / 2), row, name, ha="center", va="center", fontsize=12)
    _legend_under_axis(
        axes[0], [Patch(color=both_colour, label="intersection A∩B"), Patch(color=union_colour, label="union A∪B")]
    )
    axes[0].set_title(f"(a) two discs A and B\nIoU {discs[0]:.2f} · Dice {discs[1]:.2f}")

    iou = np.linspace(0, 1, 201)
    axes[1].plot(iou, 2 * iou / (1 + iou), color="0.2", label="Dice = 2·IoU / (1 + IoU)")
    axes[1].plot([0, 1], [0, 1], color="0.6", ls="--", label="Dice = IoU")
    for (point_iou, point_dice), name, colour in ((discs, "(a)", both_colour), (stroke, "(c)", PALETTE[3])):
        axes[1].plot(point_iou, point_dice, "o", color=colour, markersize=9, markeredgecolor="0.2")
        axes[1].annotate(name, (point_iou, point_dice), xytext=(-8, 6), textcoords="offset points", ha="right")
    axes[1].set(xlim=(0, 1), ylim=(0, 1), xlabel="IoU", ylabel="Dice", aspect="equal")
    axes[1].legend(loc="lower right", fontsize=9)
    axes[1].set_title("(b) Dice is never below IoU")

    axes[2].imshow(np.array([white, PALETTE[0], PALETTE[3], both_colour])[truth + 2 * shifted])
    _legend_under_axis(
        axes[2],
        [
            Patch(color=both_colour, label="both"),
            Patch(color=PALETTE[0], label="truth only"),
            Patch(color=PALETTE[3], label="shifted only"),
        ],
    )
    axes[2].set_title(f"(c) a digit's ink shifted 1 px right\nIoU {stroke[0]:.2f} · Dice {stroke[1]:.2f}")
    for ax in (axes[0], axes[2]):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.tight_layout()
    return fig
