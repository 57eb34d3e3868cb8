"""Figures for the notebooks, the CLI and the README, in one fixed palette.

Every function returns a matplotlib ``Figure``; :func:`save_figure` writes one atomically as PNG.
Digits 0–9 take the ten colours of seaborn's "tab10" palette and background is near-black, everywhere.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import keras
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Circle, Patch
from matplotlib.text import Text

from m2nist_seg import data
from m2nist_seg.core import settings
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import metrics
from m2nist_seg.model import Stage
from m2nist_seg.training import experiments

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


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (a temporary file renamed into place)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Software": None})
    return Path(path)


def save_key_figure(fig: plt.Figure, name: str) -> None:
    """Save ``fig`` as ``figures/<name>.png`` for the README, only when asked: with ``M2NIST_SAVE_FIGURES=1``
    and at full settings.

    Without the switch a notebook only shows its figures, so a learner's run leaves the tracked ``figures/``
    folder untouched; under ``M2NIST_QUICK=1`` nothing is saved either, so that figures from shrunken work
    never replace the README's. Returns nothing, so that a notebook cell ending in it shows no path.
    """
    if settings.save_figures() and not settings.quick_mode():
        save_figure(fig, settings.FIGURES_DIR / f"{name}.png")


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


def plot_error_map(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray, causes: np.ndarray) -> plt.Figure:
    """One image's errors by cause: image | truth | prediction | wrong pixels coloured by cause.

    ``image`` uint8 (64, 84); ``truth`` and ``predicted`` label maps uint8 (64, 84); ``causes`` int8 (64, 84)
    from :func:`m2nist_seg.evaluation.analysis.error_causes` (-1 where right). Right pixels are drawn in grey.
    """
    from m2nist_seg.evaluation.analysis import CAUSES

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


def plot_ink_edges(image: np.ndarray, labels: np.ndarray, size: int = 20) -> plt.Figure:
    """A zoom on the first digit of an image: its grey values written in the cells, next to its mask.

    ``image`` uint8 (64, 84) and ``labels`` uint8 (64, 84). The crop is ``size``×``size`` pixels around the
    centre of the first digit's ink (the left-most labelled column's digit); faint pixels (1–127) are outlined
    in a lighter shade in the mask panel, to show that the mask counts every pixel with ink.
    """
    image, labels = np.asarray(image), np.asarray(labels)
    first = labels[:, np.flatnonzero((labels != data.BACKGROUND).any(axis=0))[0]]
    digit = labels == first[first != data.BACKGROUND][0]
    rows, cols = np.nonzero(digit)
    top = int(np.clip(rows.mean() - size / 2, 0, labels.shape[0] - size))
    left = int(np.clip(cols.mean() - size / 2, 0, labels.shape[1] - size))
    window = (slice(top, top + size), slice(left, left + size))
    crop, mask = image[window], labels[window]
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.2))
    axes[0].imshow(crop, cmap="gray", vmin=0, vmax=255)
    for (row, col), value in np.ndenumerate(crop):
        if value:
            axes[0].text(
                col, row, str(value), ha="center", va="center", fontsize=6, color="red" if value < 128 else "k"
            )
    axes[0].set_title("pixel values (faint ink, 1–127, in red)")
    faint = ((crop > 0) & (crop < 128))[..., None]
    axes[1].imshow(np.where(faint, 0.45 * colorize(mask) + 0.55, colorize(mask)))
    axes[1].set_title("mask: every pixel with ink is digit")
    colour = PALETTE[mask[digit[window]][0]]
    handles = [
        Patch(color=colour, label="bright ink (128–255)"),
        Patch(color=0.45 * colour + 0.55, label="faint ink (1–127)"),
    ]
    axes[1].legend(handles=handles, loc="lower right", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
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


def _shape(stage: Stage) -> str:
    return f"{stage.height}×{stage.width}×{stage.channels}"


def plot_fcn_wiring(stages: Sequence[Stage], title: str | None = None) -> plt.Figure:
    """How the encoder and the FCN decoder connect, with the tensor shape (H×W×C) on every arrow.

    ``stages``: :func:`m2nist_seg.model.feature_shapes` for any variant. The encoder runs left to right along
    the top, the decoder right to left along the bottom; skip connections drop from pool4 and pool3 (FCN-8),
    pool4 only (FCN-16) or none (FCN-32) through their 1×1 score convolutions into the fusions.
    """
    by_name = {stage.name: stage for stage in stages}
    skips = [int(stage.name.removeprefix("fuse_pool")) for stage in stages if stage.name.startswith("fuse_pool")]
    last = next(stage for stage in stages if stage.name.startswith("upsample_x"))
    factor = int(last.name.removeprefix("upsample_x"))
    column = {"input": 0.0, "padded": 1.15, "block1": 2.4, "pool2": 3.75, "pool3": 5.0, "pool4": 6.7, "pool5": 8.5}
    fig, ax = plt.subplots(figsize=(12, 4.9))
    colours = {"encoder": "#d6e6f4", "skip": "#dcefd5", "decoder": "#fbe3c6"}

    def node(x: float, y: float, text: str, kind: str, shape: str = "round") -> Text:
        style = {"boxstyle": f"{shape},pad=0.45", "facecolor": colours[kind], "edgecolor": "0.35"}
        return ax.text(x, y, text, ha="center", va="center", fontsize=10, bbox=style, zorder=3)

    def arrow(source: Text, target: Text, label: str, skip: bool = False) -> None:
        (x0, y0), (x1, y1) = source.get_position(), target.get_position()
        colour = "#3a7d2c" if skip else "0.25"
        props = {"arrowstyle": "-|>", "color": colour, "lw": 1.4, "mutation_scale": 14, "shrinkA": 2, "shrinkB": 2}
        props |= {"patchA": source.get_bbox_patch(), "patchB": target.get_bbox_patch()}
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=props, zorder=2)
        vertical = x0 == x1
        ax.annotate(
            label,
            ((x0 + x1) / 2, (y0 + y1) / 2),
            xytext=(-7, 0) if vertical else (0, 5),
            textcoords="offset points",
            ha="right" if vertical else "center",
            va="center" if vertical else "bottom",
            fontsize=9.5,
            color=colour,
        )

    texts = {"input": "input", "padded": "pad", "block1": "block 1\nstride-2\nconv"}
    encoder = {name: node(x, 2, texts.get(name, name), "encoder") for name, x in column.items()}
    order = list(column)
    for source, target in zip(order, order[1:]):
        arrow(encoder[source], encoder[target], _shape(by_name[source]))

    previous = node(column["pool5"], 0, "score\npool5", "decoder")
    arrow(encoder["pool5"], previous, _shape(by_name["pool5"]))
    shape, x = _shape(by_name["score_pool5"]), column["pool5"]
    for skip in skips:
        # Nearer the fusion after the wide score box, halfway between two fusions.
        up = node(
            column[f"pool{skip}"] + (0.42 if skip == skips[0] else 0.5) * (x - column[f"pool{skip}"]),
            0,
            "×2",
            "decoder",
        )
        arrow(previous, up, shape)
        score = node(column[f"pool{skip}"], 1, f"score\npool{skip}", "skip")
        arrow(encoder[f"pool{skip}"], score, _shape(by_name[f"pool{skip}"]), skip=True)
        x, shape = column[f"pool{skip}"], _shape(by_name[f"fuse_pool{skip}"])
        previous = node(x, 0, "+", "decoder", shape="circle")
        arrow(up, previous, shape)
        arrow(score, previous, shape, skip=True)
    for text, out_shape in ((f"×{factor}", _shape(last)), ("crop", _shape(by_name["output"])), ("output", None)):
        x -= 1.2
        current = node(x, 0, text, "decoder")
        arrow(previous, current, shape)
        previous, shape = current, out_shape
    key = [
        "block 1: 3×3 convolution with stride 2, no pooling layer · pool k: block k's convolutions + 2×2 max pooling",
        "score: 1×1 convolution (linear)"
        + (" · ×2: 4×4 transposed convolution, stride 2 · +: sum (fusion)" if skips else ""),
        f"×{factor}: {factor}×{factor} transposed convolution, stride {factor} (one tile per cell) · "
        "crop: remove the padding · output: softmax",
    ]
    ax.text(column["input"] - 0.4, -0.45, "\n".join(key), ha="left", va="top", fontsize=9.5, linespacing=1.5)
    ax.set_xlim(-0.45, 8.95)
    ax.set_ylim(-1.25, 2.4)
    ax.axis("off")
    ax.set_title(
        title
        or f"FCN-{factor}: the encoder (top, blue) feeds the decoder (bottom, orange)"
        + (f" through skips from {' and '.join(f'pool{k}' for k in skips)} (green)" if skips else ", without skips"),
        fontsize=11,
    )
    fig.tight_layout()
    return fig


TOY_MAP = np.array([[1, 2, 0], [0, 3, 1], [2, 0, 1]])


def transposed_convolution(values: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """``values`` float (H, W) upsampled by a ``kernel``×``kernel`` Keras transposed convolution of ones.

    No bias, padding "same": the output is float32 (H·stride, W·stride), each input cell adding ``kernel``²
    copies of its value around its place.
    """
    layer = keras.layers.Conv2DTranspose(
        1, kernel, strides=stride, padding="same", use_bias=False, kernel_initializer="ones"
    )
    batch = np.asarray(values, dtype=np.float32)[None, :, :, None]
    return keras.ops.convert_to_numpy(layer(batch))[0, :, :, 0]


def _number_grid(ax: plt.Axes, values: np.ndarray, title: str, cmap: str, tile: int = 0) -> None:
    sns.heatmap(
        values,
        annot=True,
        fmt=".0f",
        cmap=cmap,
        vmin=0,
        cbar=False,
        square=True,
        linewidths=0.5,
        linecolor="white",
        annot_kws={"fontsize": 9},
        xticklabels=False,
        yticklabels=False,
        ax=ax,
    )
    for edge in range(tile, len(values), tile) if tile else ():
        ax.axhline(edge, color="0.2", lw=1.5)
        ax.axvline(edge, color="0.2", lw=1.5)
    ax.set_title(title, fontsize=10)


def plot_transposed_convolution(values: np.ndarray = TOY_MAP) -> plt.Figure:
    """How transposed convolutions of ones upsample a toy map: overlapping (4×4, stride 2) vs tiling (8×8, stride 8).

    ``values``: small non-negative integers, (3, 3) by default. Top: the map, its ×2 upsampling by a 4×4
    kernel with stride 2 (overlapping copies add up), and how many copies reach each output cell for a map
    of ones with that kernel and with a 3×3 kernel (a checkerboard). Bottom: the ×8 upsampling by an 8×8
    kernel with stride 8, as in the last layer of our FCN-8: each cell paints its own tile.
    """
    values = np.asarray(values)
    ones = np.ones_like(values)
    fig = plt.figure(figsize=(11, 9.6))
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 2.3))
    panels = [
        (values, f"(a) input {values.shape[0]}×{values.shape[1]}", "Blues"),
        (transposed_convolution(values, 4, 2), "(b) 4×4 kernel, stride 2:\noverlapping copies add up", "Blues"),
        (
            transposed_convolution(ones, 4, 2),
            "(c) copies per cell, 4×4, stride 2:\n4 inside, fewer at the edges",
            "Oranges",
        ),
        (
            transposed_convolution(ones, 3, 2),
            "(d) copies per cell, 3×3, stride 2:\nuneven inside: a checkerboard",
            "Oranges",
        ),
    ]
    for column, (panel, title, cmap) in enumerate(panels):
        _number_grid(fig.add_subplot(grid[0, column]), panel, title, cmap)
    _number_grid(
        fig.add_subplot(grid[1, :]),
        transposed_convolution(values, 8, 8),
        "(e) 8×8 kernel, stride 8 (the last layer of our FCN-8): each input cell paints its own 8×8 tile",
        "Blues",
        tile=8,
    )
    fig.suptitle("Transposed convolutions with kernels of ones, padding 'same', no bias", fontsize=12)
    fig.tight_layout()
    return fig


_DISC_SIZE, _DISC_RADIUS, _DISC_CENTRES = 100, 30, ((50, 37), (50, 63))  # (row, column) of discs A and B


def _disc(centre: tuple[float, float]) -> np.ndarray:
    rows, cols = np.indices((_DISC_SIZE, _DISC_SIZE))
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= _DISC_RADIUS**2


def _binary_scores(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    scores = metrics.iou_dice(truth.astype(np.uint8), predicted.astype(np.uint8), num_classes=2)
    return float(scores.iou[1]), float(scores.dice[1])


def _legend_under_axis(ax, handles: list) -> None:
    """One row of legend entries centred under an image axis, without a frame."""
    ax.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.28), ncol=len(handles), fontsize=9, frameon=False
    )


def plot_iou_vs_dice(digit: np.ndarray) -> plt.Figure:
    """IoU and Dice of the same overlap, and what a one-pixel shift costs a thin stroke.

    ``digit``: uint8 (28, 28), an MNIST digit. (a) Two overlapping discs, intersection and union shaded;
    (b) Dice = 2·IoU / (1 + IoU) with the points of (a) and (c); (c) the digit's ink (> 0) as the truth
    against the same mask shifted one pixel to the right. Scores come from
    :func:`m2nist_seg.evaluation.metrics.iou_dice`.
    """
    first, second = (_disc(centre) for centre in _DISC_CENTRES)
    truth = np.asarray(digit) > 0
    shifted = np.zeros_like(truth)
    shifted[:, 1:] = truth[:, :-1]
    discs, stroke = _binary_scores(first, second), _binary_scores(truth, shifted)
    union_colour, both_colour, white = np.array([0.78, 0.85, 0.93]), PALETTE[1], np.ones(3)

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6))
    union_only, both = first ^ second, first & second
    axes[0].imshow(np.array([white, union_colour, both_colour])[union_only + 2 * both])
    for name, (row, col) in zip("AB", _DISC_CENTRES):
        axes[0].add_patch(Circle((col, row), _DISC_RADIUS, fill=False, edgecolor="0.2", lw=1.2))
        axes[0].text(col + 1.2 * (col - _DISC_SIZE / 2), row, name, ha="center", va="center", fontsize=12)
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


def _pixel_probabilities(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tensor = keras.ops.convert_to_tensor(np.asarray(scores, dtype=np.float32))
    softmax = keras.ops.convert_to_numpy(keras.ops.softmax(tensor, axis=-1))
    sigmoid = keras.ops.convert_to_numpy(keras.ops.sigmoid(tensor))
    return softmax, sigmoid


def plot_softmax_vs_sigmoid(scores: np.ndarray) -> plt.Figure:
    """For each pixel's raw scores (logits), float (P, 11): softmax and sigmoid probabilities side by side.

    Softmax bars (solid) sum to 1 over the classes; sigmoid bars (hatched) are eleven independent yes/no
    answers and sum to anything. Both keep the order of the scores, so the argmax (marked ▼) is the same.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    softmax, sigmoid = _pixel_probabilities(scores)
    classes = np.arange(scores.shape[1])
    colours = PALETTE[: len(classes)]
    fig, axes = plt.subplots(
        len(scores), 1, figsize=(10, 2.6 * len(scores) + 0.5), squeeze=False, sharex=True, layout="constrained"
    )
    for pixel, ax in enumerate(axes[:, 0]):
        ax.bar(classes - 0.2, softmax[pixel], width=0.4, color=colours, edgecolor=colours)
        ax.bar(classes + 0.2, sigmoid[pixel], width=0.4, facecolor="white", edgecolor=colours, hatch="////", lw=1.2)
        best = int(np.argmax(scores[pixel]))
        top = max(softmax[pixel, best], sigmoid[pixel, best])
        ax.annotate("argmax\n▼", (best, top), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom")
        ax.set_ylim(0, 1.35)
        ax.set_yticks([0, 0.5, 1])
        ax.set_ylabel("probability")
        ax.grid(axis="x", visible=False)
        ax.set_title(
            f"pixel {pixel + 1}: softmax sums to {softmax[pixel].sum():.2f}, sigmoid to {sigmoid[pixel].sum():.2f}\n"
            "scores " + "  ".join(f"{s:.1f}" for s in scores[pixel]),
            fontsize=10,
        )
    axes[-1, 0].set_xticks(classes, data.CLASS_NAMES[: len(classes)], fontsize=10)
    fig.legend(
        handles=[
            Patch(facecolor="0.45", label="softmax (sums to 1)"),
            Patch(facecolor="white", edgecolor="0.45", hatch="////", label="sigmoid (one yes/no per class)"),
        ],
        loc="outside lower center",
        ncol=2,
        frameon=False,
    )
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


def plot_output_comparison(images: np.ndarray, truth: np.ndarray, runs: Sequence[dict]) -> plt.Figure:
    """Rows of image | truth | one prediction per arm, from an experiment's ``runs`` (e.g. ``"outputs"``).

    ``images`` uint8 (n, 64, 84) and ``truth`` uint8 (n, 64, 84) label maps: the first n test images. Each run
    is a dict with ``arm``, ``seed``, ``test_mean_digit_iou`` and ``predictions`` (at least n label maps of
    64×84, as :func:`m2nist_seg.training.experiments.encode_label_maps` stores them); each arm shows its lowest seed's
    predictions (seed 0), titled with its test mean digit IoU averaged over its seeds.
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
        columns[title] = experiments.decode_label_maps(shown.loc[arm, "predictions"][: len(images)])
    return _image_grid(columns, images, width=2.9, height=1.75)


def plot_prediction_strip(images: np.ndarray, truth: np.ndarray, label_maps: Sequence[np.ndarray]) -> plt.Figure:
    """How predictions sharpen while training: rows of image | one prediction per epoch | truth.

    ``images`` uint8 (n, 64, 84), ``truth`` uint8 (n, 64, 84) label maps, ``label_maps`` one uint8 (n, 64, 84)
    array per epoch, as :class:`m2nist_seg.training.train.PredictionRecorder` records them.
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
    sns.stripplot(**common, dodge=grouped, size=7, jitter=0.08, edgecolor="0.2", linewidth=0.8, legend=False)
    # Dodged as far as the strip plot's dodge puts each hue level, so that each mean line sits on its dots.
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
