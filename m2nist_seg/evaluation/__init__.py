"""The evaluation layer: scoring label maps and models.

- :mod:`~m2nist_seg.evaluation.metrics`: per-class IoU and Dice, the confusion matrix, the streaming Keras metric;
- :mod:`~m2nist_seg.evaluation.onnx_runtime`: running an exported ONNX graph with ONNX Runtime;
- :mod:`~m2nist_seg.evaluation.evaluate`: ``load_model``, ``predict`` (Keras or ONNX) and the evaluation report;
- :mod:`~m2nist_seg.evaluation.analysis`: what caused each wrong pixel.

It imports :mod:`m2nist_seg.core`, :mod:`m2nist_seg.data` and :mod:`m2nist_seg.model` only.
"""
