"""The figures layer: every figure of the series in one fixed palette. Figures take arrays and return
matplotlib figures; they neither train nor load models, and compute with NumPy and SciPy only (no Keras).

Callers import :mod:`~m2nist_seg.viz.plots`, which re-exports the figures of :mod:`~m2nist_seg.viz.data_figures`,
:mod:`~m2nist_seg.viz.model_figures`, :mod:`~m2nist_seg.viz.training_figures` and
:mod:`~m2nist_seg.viz.evaluation_figures`, with :mod:`~m2nist_seg.viz.style` (palette and theme) and
:mod:`~m2nist_seg.viz.saving`. The seaborn theme applies only while a figure is drawn: importing the layer
changes no global matplotlib setting.

It imports the core, data, model and evaluation layers.
"""
