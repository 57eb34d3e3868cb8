"""The deploy layer: export a Keras model to ONNX (float32 and int8) and check it against Keras.

It imports the core, data, model and evaluation layers.
"""
