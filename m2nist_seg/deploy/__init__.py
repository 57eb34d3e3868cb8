"""The deploy layer: export a Keras model to ONNX (float32 and int8) and check it against Keras.

- :mod:`~m2nist_seg.deploy.export`: Keras' standard exporter, the rewrites, the files and their parity checks;
- :mod:`~m2nist_seg.deploy.passes`: the ONNX → ONNX rewrites (the heads and three named passes);
- :mod:`~m2nist_seg.deploy.quantize`: int8 quantisation with ONNX Runtime.

It imports the core, data and evaluation layers (and may import the model layer), never training, teaching,
viz or the CLI.
"""
