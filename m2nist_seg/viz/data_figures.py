"""Figures of the data (notebook 01): sample images with their masks, class shares, counts and a zoom on ink."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch

from m2nist_seg import data
from m2nist_seg.viz.style import PALETTE, colorize, legend_below, overlay, themed


@themed
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
    legend_below(fig)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


@themed
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


@themed
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


@themed
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
                col, row, str(value), ha="center", va="center", fontsize=6, color="red" if value < 128 else "0.1"
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
