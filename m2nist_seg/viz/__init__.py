"""The figures layer: every figure of the series in one fixed palette. Figures take arrays and return
matplotlib figures; they neither train nor load models.

It imports the core, data, model and evaluation layers.
"""
