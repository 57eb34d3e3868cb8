"""Figures for the notebooks, the CLI and the README, in one fixed palette: the one module callers import.

Every ``plot_*`` function takes arrays (or tables of numbers) and returns a matplotlib ``Figure`` drawn in the
project's seaborn theme, which holds only while the figure is drawn; :func:`save_figure` writes one atomically
as PNG. The figures live in modules by subject, re-exported here so that a notebook reads ``plots.plot_x``:

- :mod:`~m2nist_seg.viz.style`: the palette (digits in "tab10", background near-black), the theme, the legend;
- :mod:`~m2nist_seg.viz.data_figures`: samples, class shares, counts, ink edges;
- :mod:`~m2nist_seg.viz.model_figures`: the FCN wiring, transposed convolutions, softmax against sigmoid;
- :mod:`~m2nist_seg.viz.training_figures`: learning curves and the experiments' comparisons;
- :mod:`~m2nist_seg.viz.evaluation_figures`: scores, confusion matrices, predictions and their errors;
- :mod:`~m2nist_seg.viz.saving`: PNG files.
"""

from m2nist_seg.viz.data_figures import plot_class_share, plot_counts, plot_ink_edges, plot_samples
from m2nist_seg.viz.evaluation_figures import (
    CAUSE_COLOURS,
    plot_comparison,
    plot_confusion,
    plot_confusion_views,
    plot_error_breakdown,
    plot_error_map,
    plot_gallery,
    plot_iou_vs_dice,
    plot_per_class,
    plot_predictions,
    plot_worst_cases,
)
from m2nist_seg.viz.model_figures import (
    TOY_MAP,
    plot_fcn_wiring,
    plot_softmax_vs_sigmoid,
    plot_transposed_convolution,
    transposed_convolution,
)
from m2nist_seg.viz.saving import save_figure, save_key_figure
from m2nist_seg.viz.style import BACKGROUND_COLOUR, PALETTE, colorize, legend_handles, overlay, themed
from m2nist_seg.viz.training_figures import (
    plot_history,
    plot_loss_comparison,
    plot_output_comparison,
    plot_prediction_strip,
    plot_variant_comparison,
)

__all__ = [
    "BACKGROUND_COLOUR",
    "CAUSE_COLOURS",
    "PALETTE",
    "TOY_MAP",
    "colorize",
    "legend_handles",
    "overlay",
    "plot_class_share",
    "plot_comparison",
    "plot_confusion",
    "plot_confusion_views",
    "plot_counts",
    "plot_error_breakdown",
    "plot_error_map",
    "plot_fcn_wiring",
    "plot_gallery",
    "plot_history",
    "plot_ink_edges",
    "plot_iou_vs_dice",
    "plot_loss_comparison",
    "plot_output_comparison",
    "plot_per_class",
    "plot_prediction_strip",
    "plot_predictions",
    "plot_samples",
    "plot_softmax_vs_sigmoid",
    "plot_transposed_convolution",
    "plot_variant_comparison",
    "plot_worst_cases",
    "save_figure",
    "save_key_figure",
    "themed",
    "transposed_convolution",
]
