"""The classroom edition's auto-checks: each passes the solution and fails each realistic mistake with its own hint.

Every wrong implementation below is a mistake a learner could write in the notebooks; the tests assert both
the verdict and that the printed hint names the fault.
"""

import importlib.util
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import layers, ops

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core import settings
from m2nist_seg.evaluation import metrics
from m2nist_seg.evaluation.metrics import MeanDigitIoU
from m2nist_seg.model import losses
from m2nist_seg.teaching import checks, exercises


@pytest.fixture(autouse=True)
def lenient_full_settings(monkeypatch):
    """Checks print hints instead of raising, and grade at full settings, unless a test says otherwise."""
    monkeypatch.delenv(settings.STRICT_VARIABLE, raising=False)
    monkeypatch.delenv(settings.QUICK_VARIABLE, raising=False)


def verdict(capsys, result: checks.CheckResult, passed: bool, hint: str = "") -> None:
    """``result`` has the verdict ``passed``, was printed as exactly one ✓/✗ line, and that line contains ``hint``."""
    lines = capsys.readouterr().out.splitlines()
    assert lines == [result.message], lines
    assert result.passed is passed, result.message
    assert result.message.startswith("✓ " if passed else "✗ "), result.message
    assert hint in result.message, result.message
    assert len(result.message) < 260, result.message


# 1. conv_block --------------------------------------------------------------------------------------------------


def conv_block(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    if not strided:
        x = layers.MaxPooling2D(2)(x)
    return x


def conv_block_stub(x, filters, convs=1, strided=False):
    # YOUR CODE HERE: write the body of conv_block (see its docstring)
    raise NotImplementedError("conv_block is not written yet")


def conv_block_without_pooling(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return x


def conv_block_always_pooled(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return layers.MaxPooling2D(2)(x)


def conv_block_never_strided(x, filters, convs=1, strided=False):
    for _ in range(convs):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return layers.MaxPooling2D(2)(x)


def conv_block_strided_everywhere(x, filters, convs=1, strided=False):
    for _ in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_valid_padding(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_fixed_filters(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(32, 3, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_5x5(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 5, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_without_batch_norm(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, padding="same")(x)
        x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_relu_in_conv(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_relu_before_batch_norm(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.ReLU()(x)
        x = layers.BatchNormalization()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_without_relu(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_one_conv(x, filters, convs=1, strided=False):
    x = layers.Conv2D(filters, 3, strides=2 if strided else 1, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def conv_block_without_return(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    if not strided:
        x = layers.MaxPooling2D(2)(x)


def conv_block_typo(x, filters, convs=1, strided=False):
    for i in range(convs):
        x = layers.Conv2d(filters, 3, strides=2 if strided and i == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


@pytest.mark.parametrize("solution", [conv_block, exercises.reference_conv_block])
def test_conv_block_passes_a_solution(capsys, solution):
    verdict(capsys, checks.check_conv_block(solution), True, "conv_block")


@pytest.mark.parametrize(
    "mistake, hint",
    [
        (conv_block_stub, "✗ conv_block is not written yet: replace `raise NotImplementedError(...)` with your code"),
        (conv_block_without_pooling, "no downsampling (output 16×20, expected 8×10)"),
        (conv_block_always_pooled, "pooling when strided halves the map twice (output 4×5, expected 8×10)"),
        (conv_block_never_strided, "strided=True): no stride when strided"),
        (conv_block_strided_everywhere, "only the FIRST Conv2D gets strides=2"),
        (conv_block_valid_padding, "padding='valid', which shrinks the map"),
        (conv_block_fixed_filters, "a Conv2D has 32 filters, expected 8"),
        (conv_block_5x5, "kernel size 5×5, expected 3×3"),
        (conv_block_without_batch_norm, "missing batch norm"),
        (conv_block_relu_in_conv, "activation='relu', which runs before batch norm"),
        (conv_block_relu_before_batch_norm, "ReLU before batch norm"),
        (conv_block_without_relu, "missing ReLU"),
        (conv_block_one_conv, "convs=2, strided=False): found 1 Conv2D layer(s), expected 2"),
        (conv_block_without_return, "returned None, expected a Keras tensor: did you forget `return x`?"),
        (conv_block_typo, "raised AttributeError: module 'keras.layers' has no attribute 'Conv2d'"),
    ],
)
def test_conv_block_fails_a_mistake(capsys, mistake, hint):
    verdict(capsys, checks.check_conv_block(mistake), False, hint)


# 2. encoder -----------------------------------------------------------------------------------------------------


def encoder(image):
    x = layers.Rescaling(1 / 255)(image)
    x = layers.ZeroPadding2D(((0, 0), (6, 6)))(x)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools[2], pools[3], pools[4]


def encoder_reversed(image):
    x = layers.Rescaling(1 / 255)(image)
    x = layers.ZeroPadding2D(((0, 0), (6, 6)))(x)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools[4], pools[3], pools[2]


def encoder_returning_every_pool(image):
    x = layers.Rescaling(1 / 255)(image)
    x = layers.ZeroPadding2D(((0, 0), (6, 6)))(x)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools


def encoder_without_padding(image):
    x = layers.Rescaling(1 / 255)(image)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools[2], pools[3], pools[4]


def encoder_padded_right(image):
    x = layers.Rescaling(1 / 255)(image)
    x = layers.ZeroPadding2D(((0, 0), (0, 12)))(x)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools[2], pools[3], pools[4]


def encoder_unscaled(image):
    x = layers.ZeroPadding2D(((0, 0), (6, 6)))(image)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools[2], pools[3], pools[4]


def encoder_off_by_one_block(image):
    x = layers.Rescaling(1 / 255)(image)
    x = layers.ZeroPadding2D(((0, 0), (6, 6)))(x)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools[1], pools[2], pools[3]


def encoder_with_its_own_input(image):
    image = keras.Input((64, 84, 1))
    x = layers.Rescaling(1 / 255)(image)
    x = layers.ZeroPadding2D(((0, 0), (6, 6)))(x)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools[2], pools[3], pools[4]


def encoder_on_an_unwritten_conv_block(image):
    x = layers.Rescaling(1 / 255)(image)
    x = layers.ZeroPadding2D(((0, 0), (6, 6)))(x)
    pools = []
    for block, (filters, convs) in enumerate(zip((16, 32, 64, 128, 128), (1, 1, 2, 2, 2)), start=1):
        x = conv_block_stub(x, filters, convs, strided=block == 1)
        pools.append(x)
    return pools[2], pools[3], pools[4]


@pytest.mark.parametrize("solution", [encoder, exercises.reference_encoder])
def test_encoder_passes_a_solution(capsys, solution):
    verdict(capsys, checks.check_encoder(solution), True, "pool3 8×12, pool4 4×6, pool5 2×3")


@pytest.mark.parametrize(
    "mistake, hint",
    [
        (encoder_reversed, "outputs in the wrong order (2×3, 4×6, 8×12)"),
        (encoder_returning_every_pool, "returned a list of 5, expected a tuple (pool3, pool4, pool5)"),
        (encoder_without_padding, "missing padding: the first Conv2D sees 64×84, expected 64×96"),
        (encoder_padded_right, "asymmetric padding: the image lies 0/0/0/12 pixels"),
        (encoder_unscaled, "no 1/255 scaling"),
        (encoder_off_by_one_block, "pool3 (output 1) is 16×24×32, expected 8×12×64"),
        (encoder_with_its_own_input, "its output is not computed from its input"),
        (encoder_on_an_unwritten_conv_block, "✗ conv_block is not written yet: replace"),
    ],
)
def test_encoder_fails_a_mistake(capsys, mistake, hint):
    verdict(capsys, checks.check_encoder(mistake), False, hint)


# 3. decoder -----------------------------------------------------------------------------------------------------


def fcn8_decoder(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool3)])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return layers.Softmax()(x)


def fcn8_decoder_with_plus(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(layers.Conv2D(64, 1)(pool5))
    x = x + layers.Conv2D(64, 1)(pool4)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = x + layers.Conv2D(64, 1)(pool3)
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    return layers.Softmax()(layers.Cropping2D(((0, 0), (6, 6)))(x))


def fcn32_decoder(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(num_classes, 32, strides=32, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return layers.Softmax()(x)


def fcn16_decoder(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(num_classes, 16, strides=16, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return layers.Softmax()(x)


def decoder_relu_scores(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1, activation="relu")(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1, activation="relu")(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1, activation="relu")(pool3)])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return layers.Softmax()(x)


def decoder_relu_after_scores(pool3, pool4, pool5, num_classes=11):
    x = layers.ReLU()(layers.Conv2D(64, 1)(pool5))
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.ReLU()(layers.Conv2D(64, 1)(pool4))])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.ReLU()(layers.Conv2D(64, 1)(pool3))])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return layers.Softmax()(x)


def decoder_sigmoid(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool3)])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return layers.Activation("sigmoid")(x)


def decoder_without_softmax(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool3)])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    return layers.Cropping2D(((0, 0), (6, 6)))(x)


def decoder_cropped_right(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool3)])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (0, 12)))(x)
    return layers.Softmax()(x)


def decoder_crop_off_by_one(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool3)])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (5, 7)))(x)
    return layers.Softmax()(x)


def decoder_with_unused_conv6_conv7(pool3, pool4, pool5, num_classes=11):
    conv6 = layers.Conv2D(512, 7, padding="same", activation="relu", name="conv6")(pool5)
    layers.Conv2D(512, 1, activation="relu", name="conv7")(conv6)
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool3)])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return layers.Softmax()(x)


def decoder_returning_one_hot_labels(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool3)])
    x = layers.Conv2DTranspose(num_classes, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return ops.one_hot(ops.argmax(layers.Softmax()(x), axis=-1), num_classes)


def decoder_without_classes(pool3, pool4, pool5, num_classes=11):
    x = layers.Conv2D(64, 1)(pool5)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool4)])
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.Add()([x, layers.Conv2D(64, 1)(pool3)])
    x = layers.Conv2DTranspose(64, 8, strides=8, padding="same")(x)
    x = layers.Cropping2D(((0, 0), (6, 6)))(x)
    return layers.Softmax()(x)


@pytest.mark.parametrize("solution", [fcn8_decoder, fcn8_decoder_with_plus, exercises.reference_fcn8_decoder])
def test_decoder_passes_a_solution(capsys, solution):
    verdict(capsys, checks.check_decoder(solution), True, "fcn8_decoder: FCN-8 skips from pool4 and pool3")


@pytest.mark.parametrize(
    "mistake, hint",
    [
        (
            fcn32_decoder,
            "no skip from pool4: your decoder adds nothing at 4×6 (1/16 of the padded input), which is FCN-32",
        ),
        (
            fcn16_decoder,
            "no skip from pool3: your decoder adds nothing at 8×12 (1/8 of the padded input), which is FCN-16",
        ),
        (decoder_relu_scores, "(1×1 Conv2D) has activation='relu': scores must stay linear"),
        (decoder_relu_after_scores, "(1×1 Conv2D) is followed by ReLU: scores must stay linear"),
        (decoder_sigmoid, "your decoder ends in a sigmoid"),
        (decoder_without_softmax, "your decoder's outputs don't sum to 1 over the 11 classes"),
        (decoder_cropped_right, "output misaligned with the input: your decoder pads 0/0/6/6 but crops 0/0/0/12"),
        (decoder_crop_off_by_one, "output misaligned with the input: your decoder pads 0/0/6/6 but crops 0/0/5/7"),
        (decoder_with_unused_conv6_conv7, "layer 'conv6' (Conv2D) is built on a tensor of your decoder but never"),
        (decoder_returning_one_hot_labels, "weights get no gradient"),
        (decoder_without_classes, "your decoder outputs (None, 64, 84, 64), expected (None, 64, 84, 11)"),
    ],
)
def test_decoder_fails_a_mistake(capsys, mistake, hint):
    verdict(capsys, checks.check_decoder(mistake), False, hint)


# 4. whole model -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fcn8():
    return fcn.build_fcn8()


@pytest.fixture(scope="module")
def shipped():
    return keras.models.load_model(settings.SHIPPED_MODEL)


def test_model_passes_the_reference_and_the_shipped_model(capsys, fcn8, shipped):
    verdict(capsys, checks.check_model(fcn8), True, "your model: FCN-8 skips")
    verdict(capsys, checks.check_model(shipped), True, "every weight gets a gradient")


def test_model_passes_an_assembled_solution(capsys):
    model = exercises.assemble_fcn8(encoder, fcn8_decoder)
    verdict(capsys, checks.check_model(model), True, "your model: FCN-8 skips")


def test_model_ignores_a_decoder_left_by_running_a_cell_twice(capsys):
    image = keras.Input((64, 84, 1))
    pool3, pool4, pool5 = encoder(image)
    decoder_sigmoid(pool3, pool4, pool5)
    model = keras.Model(image, fcn8_decoder(pool3, pool4, pool5))
    verdict(capsys, checks.check_model(model), True, "your model: FCN-8 skips")


def test_model_fails_the_original_tutorial(capsys):
    path = settings.PROJECT_ROOT / "benchmarks" / "original_recipe.py"
    spec = importlib.util.spec_from_file_location("original_recipe", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    original = recipe.build_original_fcn8()
    verdict(capsys, checks.check_model(original), False, "layer 'conv6' (Conv2D) is built on a tensor")


@pytest.mark.parametrize(
    "build, hint",
    [
        (lambda: fcn.build_fcn("fcn16"), "no skip from pool3"),
        (lambda: fcn.build_fcn("fcn32"), "no skip from pool4"),
        (lambda: fcn.build_fcn8(output_activation="sigmoid"), "ends in a sigmoid"),
        (lambda: None, "no model to check: the cell that builds it failed"),
        (lambda: fcn.build_fcn8, "expected a keras.Model, found a function"),
    ],
)
def test_model_fails_a_wrong_model(capsys, build, hint):
    verdict(capsys, checks.check_model(build()), False, hint)


# 5. iou_dice ----------------------------------------------------------------------------------------------------


def iou_dice(y_true, y_pred):
    iou, dice = np.full(11, np.nan), np.full(11, np.nan)
    for c in range(11):
        t, p = y_true == c, y_pred == c
        tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
        if tp + fp + fn > 0:
            iou[c] = tp / (tp + fp + fn)
            dice[c] = 2 * tp / (2 * tp + fp + fn)
    return iou, dice


def iou_dice_float32(y_true, y_pred):
    t = ops.one_hot(ops.cast(y_true, "int32"), 11)
    p = ops.one_hot(ops.cast(y_pred, "int32"), 11)
    tp = ops.sum(t * p, axis=(0, 1, 2))
    size_true, size_pred = ops.sum(t, axis=(0, 1, 2)), ops.sum(p, axis=(0, 1, 2))
    return tp / (size_true + size_pred - tp), 2 * tp / (size_true + size_pred)


def iou_dice_half_dice(y_true, y_pred):
    iou, dice = np.full(11, np.nan), np.full(11, np.nan)
    for c in range(11):
        t, p = y_true == c, y_pred == c
        overlap, union = np.sum(t & p), np.sum(t | p)
        if union > 0:
            iou[c] = overlap / union
            dice[c] = overlap / (np.sum(t) + np.sum(p))
    return iou, dice


def iou_dice_tutorial(y_true, y_pred):
    smoothening_factor = 0.00001
    class_wise_iou, class_wise_dice_score = [], []
    for i in range(11):
        intersection = np.sum((y_pred == i) * (y_true == i))
        y_true_area, y_pred_area = np.sum(y_true == i), np.sum(y_pred == i)
        combined_area = y_true_area + y_pred_area
        class_wise_iou.append((intersection + smoothening_factor) / (combined_area - intersection + smoothening_factor))
        class_wise_dice_score.append(2 * ((intersection + smoothening_factor) / (combined_area + smoothening_factor)))
    return np.array(class_wise_iou), np.array(class_wise_dice_score)


def iou_dice_absent_as_zero(y_true, y_pred):
    iou, dice = np.zeros(11), np.zeros(11)
    for c in range(11):
        t, p = y_true == c, y_pred == c
        tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
        if tp + fp + fn > 0:
            iou[c] = tp / (tp + fp + fn)
            dice[c] = 2 * tp / (2 * tp + fp + fn)
    return iou, dice


def iou_dice_absent_as_one(y_true, y_pred):
    iou, dice = np.ones(11), np.ones(11)
    for c in range(11):
        t, p = y_true == c, y_pred == c
        tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
        if tp + fp + fn > 0:
            iou[c] = tp / (tp + fp + fn)
            dice[c] = 2 * tp / (2 * tp + fp + fn)
    return iou, dice


def iou_dice_per_image(y_true, y_pred):
    scores = [iou_dice(t, p) for t, p in zip(y_true, y_pred)]
    return np.nanmean([iou for iou, _ in scores], axis=0), np.nanmean([dice for _, dice in scores], axis=0)


def iou_dice_nan_from_truth(y_true, y_pred):
    iou, dice = np.full(11, np.nan), np.full(11, np.nan)
    for c in range(11):
        t, p = y_true == c, y_pred == c
        if t.any():
            tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
            iou[c] = tp / (tp + fp + fn)
            dice[c] = 2 * tp / (2 * tp + fp + fn)
    return iou, dice


def iou_dice_without_false_positives(y_true, y_pred):
    iou, dice = np.full(11, np.nan), np.full(11, np.nan)
    for c in range(11):
        t, p = y_true == c, y_pred == c
        tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
        if tp + fp + fn > 0:
            iou[c] = tp / (tp + fn) if tp + fn else 0.0
            dice[c] = 2 * tp / (2 * tp + fp + fn)
    return iou, dice


def iou_dice_returning_scores(y_true, y_pred):
    return metrics.iou_dice(y_true, y_pred)


def iou_dice_returning_means(y_true, y_pred):
    iou, dice = iou_dice(y_true, y_pred)
    return np.nanmean(iou), np.nanmean(dice)


def iou_dice_digits_only(y_true, y_pred):
    iou, dice = np.full(10, np.nan), np.full(10, np.nan)
    for c in range(10):
        t, p = y_true == c, y_pred == c
        tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
        if tp + fp + fn > 0:
            iou[c] = tp / (tp + fp + fn)
            dice[c] = 2 * tp / (2 * tp + fp + fn)
    return iou, dice


@pytest.mark.parametrize("solution", [iou_dice, iou_dice_float32, exercises.reference_iou_dice])
def test_iou_dice_passes_a_solution(capsys, solution):
    verdict(capsys, checks.check_iou_dice(solution), True, "iou_dice: per-class IoU and Dice pooled")


@pytest.mark.parametrize(
    "mistake, hint",
    [
        (iou_dice_half_dice, "Dice is exactly half the right value"),
        (
            iou_dice_tutorial,
            "smoothing terms bias small classes (class 5, 2 pixels: found IoU 0.5000025, expected 0.5000000)",
        ),
        (iou_dice_absent_as_zero, "class 0 is in neither map, so it has no score: found IoU 0, Dice 0, expected NaN"),
        (iou_dice_absent_as_one, "class 0 is in neither map, so it has no score: found IoU 1, Dice 1, expected NaN"),
        (iou_dice_per_image, "scores averaged per image (class 3: found IoU 0.750, pooled over the set 0.990)"),
        (iou_dice_nan_from_truth, "class 8 is in y_pred only but scored NaN, expected IoU 0"),
        (iou_dice_without_false_positives, "your scores change when y_true and y_pred swap places"),
        (iou_dice_returning_scores, "returned a Scores, expected a tuple (iou, dice)"),
        (iou_dice_returning_means, "iou has shape (), expected (11,): one score per class, not their mean"),
        (iou_dice_digits_only, "iou has shape (10,), expected (11,): one score per class, background (class 10)"),
    ],
)
def test_iou_dice_fails_a_mistake(capsys, mistake, hint):
    verdict(capsys, checks.check_iou_dice(mistake), False, hint)


# 6. dice_loss ---------------------------------------------------------------------------------------------------


def dice_loss(y_true_onehot, y_pred_probs):
    truth, probs = y_true_onehot[..., :10], y_pred_probs[..., :10]
    overlap = ops.sum(truth * probs, axis=(0, 1, 2))
    total = ops.sum(truth, axis=(0, 1, 2)) + ops.sum(probs, axis=(0, 1, 2))
    dice = (2 * overlap + 1e-6) / (total + 1e-6)
    present = ops.cast(ops.sum(truth, axis=(0, 1, 2)) > 0, "float32")
    return ops.sum((1 - dice) * present) / ops.sum(present)


def dice_loss_returning_dice(y_true_onehot, y_pred_probs):
    truth, probs = y_true_onehot[..., :10], y_pred_probs[..., :10]
    overlap = ops.sum(truth * probs, axis=(0, 1, 2))
    total = ops.sum(truth, axis=(0, 1, 2)) + ops.sum(probs, axis=(0, 1, 2))
    dice = (2 * overlap + 1e-6) / (total + 1e-6)
    present = ops.cast(ops.sum(truth, axis=(0, 1, 2)) > 0, "float32")
    return ops.sum(dice * present) / ops.sum(present)


def dice_loss_of_argmax(y_true_onehot, y_pred_probs):
    truth = y_true_onehot[..., :10]
    probs = ops.one_hot(ops.argmax(y_pred_probs, axis=-1), 11)[..., :10]
    overlap = ops.sum(truth * probs, axis=(0, 1, 2))
    total = ops.sum(truth, axis=(0, 1, 2)) + ops.sum(probs, axis=(0, 1, 2))
    dice = (2 * overlap + 1e-6) / (total + 1e-6)
    present = ops.cast(ops.sum(truth, axis=(0, 1, 2)) > 0, "float32")
    return ops.sum((1 - dice) * present) / ops.sum(present)


def dice_loss_in_numpy(y_true_onehot, y_pred_probs):
    truth, probs = np.asarray(y_true_onehot)[..., :10], np.asarray(y_pred_probs)[..., :10]
    overlap = np.sum(truth * probs, axis=(0, 1, 2))
    total = np.sum(truth, axis=(0, 1, 2)) + np.sum(probs, axis=(0, 1, 2))
    dice = (2 * overlap + 1e-6) / (total + 1e-6)
    present = np.sum(truth, axis=(0, 1, 2)) > 0
    return np.mean(1 - dice[present])


def dice_loss_per_class(y_true_onehot, y_pred_probs):
    overlap = ops.sum(y_true_onehot * y_pred_probs, axis=(0, 1, 2))
    total = ops.sum(y_true_onehot, axis=(0, 1, 2)) + ops.sum(y_pred_probs, axis=(0, 1, 2))
    return 1 - (2 * overlap + 1e-6) / (total + 1e-6)


def dice_loss_all_pixels(y_true_onehot, y_pred_probs):
    overlap = ops.sum(y_true_onehot * y_pred_probs)
    return 1 - 2 * overlap / (ops.sum(y_true_onehot) + ops.sum(y_pred_probs))


def dice_loss_over_all_classes(y_true_onehot, y_pred_probs):
    overlap = ops.sum(y_true_onehot * y_pred_probs, axis=(0, 1, 2))
    total = ops.sum(y_true_onehot, axis=(0, 1, 2)) + ops.sum(y_pred_probs, axis=(0, 1, 2))
    return 1 - ops.mean((2 * overlap + 1e-6) / (total + 1e-6))


def dice_loss_without_overlap(y_true_onehot, y_pred_probs):
    return 1 - 2 * ops.sum(y_pred_probs) / (ops.sum(y_true_onehot) + ops.sum(y_pred_probs))


@pytest.mark.parametrize("solution", [dice_loss, exercises.reference_dice_loss])
def test_dice_loss_passes_a_solution(capsys, solution):
    verdict(capsys, checks.check_dice_loss(solution), True, "dice_loss: 0.000 when perfect")


@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dice_loss_returning_dice, "a perfect prediction scores 1.000, expected ≤ 0.05: return the loss 1 − Dice"),
        (dice_loss_of_argmax, "no gradient reaches y_pred_probs: argmax, round or a cast to int"),
        (dice_loss_in_numpy, "returned a float32, not a tensor, so no gradient reaches the model"),
        (dice_loss_per_class, "returned shape (11,), expected a scalar"),
        (dice_loss_all_pixels, "an all-background prediction scores only 0.0"),
        (dice_loss_over_all_classes, "not all 11 (background is 94% of the pixels)"),
        (dice_loss_without_overlap, "the loss doesn't grow as predictions worsen"),
    ],
)
def test_dice_loss_fails_a_mistake(capsys, mistake, hint):
    verdict(capsys, checks.check_dice_loss(mistake), False, hint)


# 7. compile -----------------------------------------------------------------------------------------------------


@pytest.fixture
def small_model():
    """A one-layer segmentation model: enough to check how it is compiled."""
    image = keras.Input((64, 84, 1))
    scores = layers.Conv2D(11, 3, padding="same")(layers.Rescaling(1 / 255)(image))
    return keras.Model(image, layers.Softmax()(scores))


@pytest.mark.parametrize(
    "compile_model",
    [
        exercises.reference_compile,
        lambda model: model.compile("adam", "sparse_categorical_crossentropy", metrics=[MeanDigitIoU(), "accuracy"]),
    ],
)
def test_compiled_passes_a_solution(capsys, small_model, compile_model):
    compile_model(small_model)
    weights = [w.copy() for w in small_model.get_weights()]
    verdict(capsys, checks.check_compiled(small_model), True, "your model is compiled")
    assert all(np.array_equal(a, b) for a, b in zip(weights, small_model.get_weights()))
    assert int(small_model.optimizer.iterations) == 0


@pytest.mark.parametrize(
    "compile_model, hint",
    [
        (lambda model: None, "your model is not compiled: call model.compile("),
        (lambda model: model.compile("adam", metrics=[MeanDigitIoU()]), "compiled without a loss"),
        (
            lambda model: model.compile("adam", "categorical_crossentropy", metrics=[MeanDigitIoU()]),
            "the loss fails on integer label maps (B, 64, 84)",
        ),
        (
            lambda model: model.compile("adam", losses.CombinedLoss(), metrics=["accuracy"]),
            "metrics lack MeanDigitIoU (found: accuracy)",
        ),
        (
            lambda model: model.compile("adam", losses.CombinedLoss(), metrics=[MeanDigitIoU(name="miou")]),
            "MeanDigitIoU is named 'miou', expected 'digit_miou'",
        ),
    ],
)
def test_compiled_fails_a_mistake(capsys, small_model, compile_model, hint):
    compile_model(small_model)
    verdict(capsys, checks.check_compiled(small_model), False, hint)


def test_compiled_fails_without_a_model(capsys):
    verdict(capsys, checks.check_compiled(None), False, "no model to check")


# 8. grade -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eight_test_images():
    return data.Split(*data.generate_labels(8, pool="test"))


def test_grade_passes_and_fails_on_the_threshold(capsys, shipped, eight_test_images):
    passed = checks.grade(shipped, eight_test_images)
    verdict(capsys, passed, True, "PASS: mean digit IoU")
    assert passed.graded and passed.score >= 0.6
    assert "on the 8 test images" in passed.message
    failed = checks.grade(shipped, eight_test_images, threshold=0.999)
    verdict(capsys, failed, False, "FAIL: mean digit IoU")
    assert "< 1.00" in failed.message and "train longer" in failed.message
    assert failed.graded and failed.score == passed.score


def test_grade_is_not_graded_in_quick_mode_even_when_strict(capsys, monkeypatch, shipped, eight_test_images):
    monkeypatch.setenv(settings.QUICK_VARIABLE, "1")
    monkeypatch.setenv(settings.STRICT_VARIABLE, "1")
    result = checks.grade(shipped, eight_test_images, threshold=0.999)
    assert capsys.readouterr().out.splitlines() == [result.message]
    assert re.fullmatch(r"○ not graded in quick mode: mean digit IoU 0\.\d{3} on the 8 test images; .*", result.message)
    assert not result.passed and not result.graded and 0 < result.score <= 1


def test_grade_fails_without_a_model(capsys, eight_test_images):
    result = checks.grade(None, eight_test_images)
    verdict(capsys, result, False, "no model to grade")
    assert np.isnan(result.score)


# unwritten stubs ------------------------------------------------------------------------------------------------


def encoder_stub(image):
    raise NotImplementedError


def fcn8_decoder_stub(pool3, pool4, pool5, num_classes=11):
    raise NotImplementedError


def iou_dice_stub(y_true, y_pred):
    raise NotImplementedError


def dice_loss_stub(y_true_onehot, y_pred_probs):
    raise NotImplementedError


@pytest.mark.parametrize(
    "check, stub, name",
    [
        (checks.check_encoder, encoder_stub, "encoder"),
        (checks.check_decoder, fcn8_decoder_stub, "fcn8_decoder"),
        (checks.check_iou_dice, iou_dice_stub, "iou_dice"),
        (checks.check_dice_loss, dice_loss_stub, "dice_loss"),
    ],
)
def test_a_stub_fails_without_raising(capsys, check, stub, name):
    hint = f"{name} is not written yet: replace `raise NotImplementedError(...)` with your code"
    verdict(capsys, check(stub), False, hint)


# strict mode ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "check, solution, mistake",
    [
        (checks.check_conv_block, conv_block, conv_block_stub),
        (checks.check_iou_dice, iou_dice, iou_dice_tutorial),
        (checks.check_dice_loss, dice_loss, dice_loss_of_argmax),
    ],
)
def test_strict_mode_raises_on_failure_only(capsys, monkeypatch, check, solution, mistake):
    monkeypatch.setenv(settings.STRICT_VARIABLE, "1")
    assert check(solution).passed
    with pytest.raises(AssertionError, match="^✗ "):
        check(mistake)
    lines = capsys.readouterr().out.splitlines()
    assert [line[0] for line in lines] == ["✓", "✗"]


def test_strict_mode_raises_for_a_missing_model(monkeypatch):
    monkeypatch.setenv(settings.STRICT_VARIABLE, "1")
    with pytest.raises(AssertionError, match="no model to check"):
        checks.check_model(None)


# layering -------------------------------------------------------------------------------------------------------


def test_checks_do_not_import_training():
    """The checks, their feedback module and the references they use load without m2nist_seg.training, even
    transitively: a fresh interpreter imports them all and lists what came with them."""
    modules = ", ".join(
        f"m2nist_seg.teaching.{name}"
        for name in (
            "checks",
            "checks.feedback",
            "checks.nb01_metrics",
            "checks.nb02_model",
            "checks.nb03_training",
            "references",
        )
    )
    code = f"import sys, {modules}; print(*sorted(m for m in sys.modules if m.startswith('m2nist_seg.training')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], result.stdout


# exercises glue -------------------------------------------------------------------------------------------------


def test_reference_pieces_build_the_package_model(fcn8):
    model = exercises.assemble_fcn8(exercises.reference_encoder, exercises.reference_fcn8_decoder)
    assert model.output_shape == fcn8.output_shape
    assert fcn.count_params(model) == fcn.count_params(fcn8)


def test_assemble_names_the_failing_function(capsys):
    def encoder(image):
        raise NotImplementedError

    def fcn8_decoder(pool3, pool4, pool5, num_classes=11):
        return layers.Conv2D(num_classes, 1)(pool6)  # noqa: F821

    assert exercises.assemble_fcn8(encoder, exercises.reference_fcn8_decoder) is None
    assert capsys.readouterr().out.splitlines() == [
        "✗ no model: encoder is not written yet (replace `raise NotImplementedError(...)` with your code)"
    ]
    assert exercises.assemble_fcn8(exercises.reference_encoder, fcn8_decoder) is None
    assert capsys.readouterr().out.splitlines() == [
        "✗ no model: fcn8_decoder raised NameError: name 'pool6' is not defined"
    ]


def test_mine_or_reference_says_which(capsys):
    passed, failed = checks.CheckResult(True, "✓"), checks.CheckResult(False, "✗")
    assert exercises.mine_or_reference(passed, encoder, exercises.reference_encoder, "encoder") is encoder
    assert exercises.mine_or_reference(failed, encoder, exercises.reference_encoder, "encoder") is (
        exercises.reference_encoder
    )
    assert capsys.readouterr().out.splitlines() == [
        "using your encoder",
        "using the reference encoder until yours passes",
    ]


def test_remember_and_recall_the_learners_model(capsys, tmp_path):
    path = tmp_path / "exercises" / "my_fcn8.keras"
    model = exercises.assemble_fcn8(encoder, fcn8_decoder)
    assert exercises.remember_model(model, checks.CheckResult(True, "✓"), path) == path
    build = exercises.recall_model(path)
    fresh = build()
    assert [type(layer) for layer in fresh.layers] == [type(layer) for layer in model.layers]
    first_kernel = [layer.get_weights()[0] for layer in (fresh.layers[3], model.layers[3])]
    assert not np.array_equal(*first_kernel)
    assert exercises.remember_model(model, checks.CheckResult(False, "✗"), path) is None
    assert not path.exists()
    assert exercises.recall_model(path) is fcn.build_fcn8
    assert capsys.readouterr().out.splitlines() == [
        f"saved your FCN-8 for notebook 03 ({path.name})",
        "using your FCN-8 from notebook 02",
        "not saved: notebook 03 will train the reference FCN-8 until yours passes its check",
        "using the reference FCN-8 until yours passes in notebook 02",
    ]


def test_check_compile_runs_the_compile_step_and_names_an_unwritten_one(capsys, monkeypatch):
    monkeypatch.delenv("M2NIST_STRICT", raising=False)

    def compile_model(model):
        raise NotImplementedError("compile_model is not written yet")

    result = checks.check_compile(compile_model, fcn.build_fcn8(widths=(8, 8, 16, 16, 16)))
    assert not result.passed and "compile_model is not written yet" in result.message
    assert checks.check_compile(exercises.reference_compile, fcn.build_fcn8(widths=(8, 8, 16, 16, 16))).passed
    lines = capsys.readouterr().out.splitlines()
    assert [line[0] for line in lines] == ["✗", "✓"]


@pytest.mark.parametrize(
    ("use_mine", "trained", "says"),
    [
        (False, True, "evaluating the shipped model"),
        (True, True, "evaluating your model from notebook 03"),
        (True, False, "no trained model at runs/notebook/model.keras yet (run notebook 03 first)"),
    ],
)
def test_model_to_evaluate_says_which_model(tmp_path, monkeypatch, capsys, use_mine, trained, says):
    monkeypatch.setattr(settings, "RUNS_DIR", tmp_path / "runs")
    path = tmp_path / "runs" / "notebook" / "model.keras"
    if trained:
        path.parent.mkdir(parents=True)
        fcn.build_fcn8(widths=(8, 8, 16, 16, 16)).save(path)
    model = exercises.model_to_evaluate(use_mine)
    out = capsys.readouterr().out
    assert says in out and str(tmp_path) not in out
    expected = 775_835 if not (use_mine and trained) else fcn.count_params(fcn.build_fcn8(widths=(8, 8, 16, 16, 16)))
    assert fcn.count_params(model) == expected


def test_autograde_does_nothing_for_a_learner_without_nbgrader(monkeypatch):
    monkeypatch.delenv("M2NIST_AUTOGRADE", raising=False)
    checks.autograde(checks.CheckResult(False, "✗ iou_dice is not written yet"), references=["FCN-8"])


def test_autograde_fails_a_failed_check_under_nbgrader_with_its_own_line(monkeypatch):
    monkeypatch.setenv("M2NIST_AUTOGRADE", "1")
    checks.autograde(checks.CheckResult(True, "✓ fine"))
    with pytest.raises(AssertionError, match="^✗ iou_dice is not written yet$"):
        checks.autograde(checks.CheckResult(False, "✗ iou_dice is not written yet"))
    quick = checks.GradeResult(False, "○ not graded in quick mode", 0.41, False)
    checks.autograde(quick)
    with pytest.raises(AssertionError, match="FAIL"):
        checks.autograde(checks.GradeResult(False, "✗ FAIL: mean digit IoU 0.400 < 0.60", 0.4, True))
    with pytest.raises(AssertionError, match="still uses the reference FCN-8, compile step"):
        checks.autograde(quick, references=["FCN-8", "compile step"])


def test_the_notebook_remembers_which_reference_solutions_it_runs_on(tmp_path, monkeypatch):
    monkeypatch.setattr(exercises, "_references_in_use", set())  # this test's notebook session only
    failed, passed = checks.CheckResult(False, "✗"), checks.CheckResult(True, "✓")
    exercises.mine_or_reference(failed, "mine", "reference", "compile step")
    exercises.recall_model(tmp_path / "no-model.keras")
    assert exercises.references_in_use() == ["FCN-8", "compile step"]
    exercises.mine_or_reference(passed, "mine", "reference", "compile step")
    assert exercises.references_in_use() == ["FCN-8"]
