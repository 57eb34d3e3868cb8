"""Figures of the model (notebook 02): the FCN wiring, transposed convolutions, and softmax against sigmoid.

The few numbers they show are computed here with NumPy and SciPy, the same numbers as Keras' layers give.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.patches import Patch
from matplotlib.text import Text
from scipy import special

from m2nist_seg import data
from m2nist_seg.model import Stage
from m2nist_seg.viz.style import PALETTE, themed


def _shape(stage: Stage) -> str:
    return f"{stage.height}×{stage.width}×{stage.channels}"


@themed
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
    """``values`` float (H, W) upsampled by a ``kernel``×``kernel`` transposed convolution of ones, no bias,
    padding "same", as Keras' ``Conv2DTranspose`` computes it: float32 (H·stride, W·stride).

    Each input cell adds ``kernel``² copies of its value from ``stride`` times its place on; "same" keeps the
    H·stride × W·stride cells from ``(kernel - stride) // 2`` on.
    """
    values = np.asarray(values, dtype=np.float32)
    height, width = values.shape
    full = np.zeros((height * stride + kernel, width * stride + kernel), dtype=np.float32)
    for row, col in np.ndindex(kernel, kernel):
        full[row : row + height * stride : stride, col : col + width * stride : stride] += values
    start = max(kernel - stride, 0) // 2
    return full[start : start + height * stride, start : start + width * stride]


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


@themed
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


@themed
def plot_softmax_vs_sigmoid(scores: np.ndarray) -> plt.Figure:
    """For each pixel's raw scores (logits), float (P, 11): softmax and sigmoid probabilities side by side.

    Softmax bars (solid) sum to 1 over the classes; sigmoid bars (hatched) are eleven independent yes/no
    answers and sum to anything. Both keep the order of the scores, so the argmax (marked ▼) is the same.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    softmax, sigmoid = special.softmax(scores, axis=-1), special.expit(scores)
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
