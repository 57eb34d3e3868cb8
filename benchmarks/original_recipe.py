"""The original tutorial's model, rebuilt as published, for side-by-side benchmarks.

It is kept exactly as the widely copied notebook has it, faults included:

- five blocks of two 3×3 convolutions (32/64/128/256/256 filters) with LeakyReLU, pooling and batch norm;
- conv6 (7×7, 512) and conv7 (1×1, 512) are built on pool5, but the first transposed convolution reads
  pool5 directly, so they are disconnected (and Keras drops them from the model);
- the score layers have ReLU activations;
- inputs are padded by 6 columns on each side, and 12 columns are cropped from the right only;
- the output is a sigmoid, trained with binary cross-entropy on one-hot masks, Adam 1e-3, batch 32.

It takes images scaled to [0, 1] (the notebook divides by 255 before training).
"""

import keras
from keras import layers

NUM_CLASSES = 11


def _conv_block(x, filters):
    for _ in range(2):
        x = layers.Conv2D(filters, (3, 3), padding="same")(x)
        x = layers.LeakyReLU()(x)
    x = layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2))(x)
    return layers.BatchNormalization()(x)


def build_original_fcn8(input_height: int = 64, input_width: int = 84) -> keras.Model:
    """The published FCN-8 as it is, on (N, 64, 84, 1) float inputs scaled to [0, 1]."""
    image = keras.Input(shape=(input_height, input_width, 1))
    x = layers.ZeroPadding2D(padding=(0, 6))(image)
    pools = []
    for filters in (32, 64, 128, 256, 256):
        x = _conv_block(x, filters)
        pools.append(x)
    f3, f4, f5 = pools[2], pools[3], pools[4]

    o = layers.Conv2D(512, (7, 7), activation="relu", padding="same", name="conv6")(f5)
    o = layers.Dropout(0.5)(o)
    o = layers.Conv2D(512, (1, 1), activation="relu", padding="same", name="conv7")(o)
    o = layers.Dropout(0.5)(o)
    layers.Conv2D(NUM_CLASSES, (1, 1), activation="relu", padding="same")(o)

    o = layers.Conv2DTranspose(NUM_CLASSES, kernel_size=(4, 4), strides=(2, 2), use_bias=False)(f5)
    o = layers.Cropping2D(cropping=(1, 1))(o)
    o2 = layers.Conv2D(NUM_CLASSES, (1, 1), activation="relu", padding="same")(f4)
    o = layers.Add()([o, o2])
    o = layers.Conv2DTranspose(NUM_CLASSES, kernel_size=(4, 4), strides=(2, 2), use_bias=False)(o)
    o = layers.Cropping2D(cropping=(1, 1))(o)
    o2 = layers.Conv2D(NUM_CLASSES, (1, 1), activation="relu", padding="same")(f3)
    o = layers.Add()([o, o2])
    o = layers.Conv2DTranspose(NUM_CLASSES, kernel_size=(8, 8), strides=(8, 8), use_bias=False)(o)
    o = layers.Cropping2D(((0, 0), (0, 96 - 84)))(o)
    output = layers.Activation("sigmoid")(o)
    return keras.Model(image, output, name="original_fcn8")
