"""The model: shapes, variants, save/load, and a decoder that is wired and aligned correctly."""

import numpy as np
import pytest

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.evaluation import metrics
from m2nist_seg.model import losses


@pytest.fixture(scope="module")
def fcn8():
    return fcn.build_fcn8()


@pytest.mark.parametrize("size", [(64, 84), (50, 70), (96, 128)])
def test_output_shape_dtype_and_softmax(size):
    model = fcn.build_fcn8(input_shape=size)
    images = np.random.default_rng(0).integers(0, 256, size=(2, *size, 1)).astype(np.float32)
    probs = model.predict_on_batch(images)
    assert probs.shape == (2, *size, 11)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("size", [(64, 84), (50, 70), (31, 33)])
def test_padding_is_cropped_back_exactly(size):
    (top, bottom), (left, right) = fcn.padding_for(*size)
    assert (size[0] + top + bottom) % 32 == 0 and (size[1] + left + right) % 32 == 0
    assert 0 <= bottom - top <= 1 and 0 <= right - left <= 1
    model = fcn.build_fcn8(input_shape=size)
    assert model.get_layer("pad").padding == model.get_layer("crop").cropping


def test_64x84_pads_6_columns_each_side():
    assert fcn.padding_for(64, 84) == ((0, 0), (6, 6))


@pytest.mark.parametrize(
    ("variant", "present", "absent"),
    [
        ("fcn8", ["decoder_fuse_pool4", "decoder_fuse_pool3", "decoder_upsample_x8"], []),
        ("fcn16", ["decoder_fuse_pool4", "decoder_upsample_x16"], ["decoder_fuse_pool3", "decoder_score_pool3"]),
        ("fcn32", ["decoder_upsample_x32"], ["decoder_fuse_pool4", "decoder_fuse_pool3", "decoder_score_pool4"]),
    ],
)
def test_variants_have_their_fusion_layers(variant, present, absent):
    model = fcn.build_fcn(variant)
    names = {layer.name for layer in model.layers}
    assert set(present) <= names
    assert not set(absent) & names
    assert model.name == variant
    assert model.output_shape == (None, 64, 84, 11)


def test_fcn8_fuses_upsampled_pool5_with_scored_pools(fcn8):
    fuse4 = fcn8.get_layer("decoder_fuse_pool4")
    fuse3 = fcn8.get_layer("decoder_fuse_pool3")
    assert {t._keras_history.operation.name for t in fuse4.input} == {"decoder_upsample_pool5", "decoder_score_pool4"}
    assert {t._keras_history.operation.name for t in fuse3.input} == {"decoder_upsample_pool4", "decoder_score_pool3"}
    assert fcn8.get_layer("decoder_score_pool5").input._keras_history.operation.name == "encoder_block5_pool"


def test_score_layers_are_linear(fcn8):
    for name in ("decoder_score_pool5", "decoder_score_pool4", "decoder_score_pool3"):
        assert fcn8.get_layer(name).activation.__name__ == "linear"
    assert fcn8.layers[-1].name == "probabilities"


def test_every_weight_is_connected_to_the_output(fcn8):
    import tensorflow as tf

    images = tf.constant(np.random.default_rng(1).integers(0, 256, (2, 64, 84, 1)), tf.float32)
    labels = tf.constant(np.random.default_rng(2).integers(0, 11, (2, 64, 84)))
    with tf.GradientTape() as tape:
        loss = losses.CombinedLoss()(labels, fcn8(images, training=True))
    grads = tape.gradient(loss, fcn8.trainable_weights)
    disconnected = [w.path for w, g in zip(fcn8.trainable_weights, grads) if g is None]
    assert not disconnected


def test_layer_names_are_stable():
    names = [layer.name for layer in fcn.build_fcn8().layers]
    assert names == [layer.name for layer in fcn.build_fcn8().layers]
    assert "encoder_block3_conv2" in names and "encoder_block5_pool" in names


def test_first_block_strides_and_last_upsampling_tiles(fcn8):
    names = {layer.name for layer in fcn8.layers}
    assert fcn8.get_layer("encoder_block1_conv1").strides == (2, 2) and "encoder_block1_pool" not in names
    assert tuple(fcn8.get_layer("encoder_block1_relu1").output.shape[1:]) == (32, 48, 16)
    last = fcn8.get_layer("decoder_upsample_x8")
    assert last.kernel_size == last.strides == (8, 8)
    for name in ("decoder_upsample_pool5", "decoder_upsample_pool4"):
        assert fcn8.get_layer(name).kernel_size == (4, 4) and fcn8.get_layer(name).strides == (2, 2)


def test_default_parameter_count_within_budget(fcn8):
    assert fcn.count_params(fcn8) <= 2_500_000


def test_feature_shapes_match_the_built_model(fcn8):
    stages = {s.name: s for s in fcn.feature_shapes()}
    for block in range(1, 6):
        last_layer = "encoder_block1_relu1" if block == 1 else f"encoder_block{block}_pool"
        shape = fcn8.get_layer(last_layer).output.shape
        stage = stages["block1" if block == 1 else f"pool{block}"]
        assert (stage.height, stage.width, stage.channels) == tuple(shape[1:])
    assert (stages["output"].height, stages["output"].width, stages["output"].channels) == (64, 84, 11)
    assert tuple(fcn8.get_layer("decoder_fuse_pool3").output.shape[1:]) == (8, 12, 64)
    assert (stages["fuse_pool3"].height, stages["fuse_pool3"].width) == (8, 12)


def test_feature_shapes_per_variant():
    assert [s.name for s in fcn.feature_shapes(variant="fcn32")][-3:] == ["score_pool5", "upsample_x32", "output"]
    assert "fuse_pool4" in [s.name for s in fcn.feature_shapes(variant="fcn16")]


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant: found 'fcn4'"):
        fcn.build_fcn("fcn4")
    with pytest.raises(ValueError, match="expected 5 each"):
        fcn.build_fcn8(widths=(8, 16))
    with pytest.raises(ValueError, match="dropout"):
        fcn.build_fcn8(dropout=1.5)


def _with_random_batch_norm(model, seed: int):
    """Give every batch norm layer non-trivial statistics, as training would."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "_bn" in layer.name:
            size = layer.get_weights()[0].shape
            gamma, beta = rng.uniform(0.5, 1.5, size), rng.normal(0, 0.3, size)
            mean, variance = rng.normal(0, 0.3, size), rng.uniform(0.2, 2.0, size)
            layer.set_weights([gamma, beta, mean, variance])
    return model


@pytest.mark.parametrize("variant, dropout", [("fcn8", 0.2), ("fcn32", 0.0)])
def test_folded_batch_norm_gives_the_same_outputs(variant, dropout):
    model = fcn.build_fcn(variant, convs_per_block=(2, 1, 2, 1, 2), decoder_width=32, dropout=dropout)
    model = _with_random_batch_norm(model, 0)
    folded = fcn.fold_batch_norm(model)
    assert not [layer.name for layer in folded.layers if "_bn" in layer.name]
    assert folded.get_layer("encoder_block3_conv2").use_bias
    images = np.random.default_rng(1).integers(0, 256, (4, 64, 84, 1)).astype(np.float32)
    np.testing.assert_allclose(folded.predict_on_batch(images), model.predict_on_batch(images), atol=1e-5)
    _with_random_batch_norm(model, 2)
    assert fcn.fold_batch_norm(model, into=folded) is folded
    np.testing.assert_allclose(folded.predict_on_batch(images), model.predict_on_batch(images), atol=1e-5)


def test_fold_batch_norm_refuses_other_models():
    import keras

    other = keras.Sequential([keras.Input((64, 84, 1)), keras.layers.Conv2D(11, 1)], name="fcn8")
    with pytest.raises(ValueError, match="build_fcn"):
        fcn.fold_batch_norm(other)
    model = fcn.build_fcn8(widths=(8, 8, 16, 16, 16), decoder_width=16)
    with pytest.raises(ValueError, match="build_fcn"):
        fcn.fold_batch_norm(keras.Model(model.inputs, model.outputs, name="custom"))
    with pytest.raises(ValueError, match="layers differ"):
        fcn.fold_batch_norm(keras.Model(model.inputs, model.get_layer("crop").output, name="fcn8"))


def test_keras_round_trip_gives_identical_predictions(tmp_path):
    import keras

    model = fcn.build_fcn8(dropout=0.1)
    model.compile(
        optimizer="adam",
        loss=losses.CombinedLoss(class_weights=[1.0] * 10 + [0.2]),
        metrics=[metrics.MeanDigitIoU()],
    )
    images = np.random.default_rng(3).integers(0, 256, (3, 64, 84, 1)).astype(np.float32)
    model.optimizer.build(model.trainable_variables)  # saved with its slots, as a trained model's optimizer is
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model.predict_on_batch(images), loaded.predict_on_batch(images))
    assert loaded.loss.get_config()["class_weights"] == [1.0] * 10 + [0.2]


@pytest.mark.slow
def test_short_overfit_reaches_high_digit_iou():
    """A correctly wired and aligned decoder fits a handful of images almost perfectly.

    A decoder shifted by a few pixels, with disconnected layers, or squashed through ReLU scores cannot.
    """
    import keras

    keras.utils.set_random_seed(0)
    images, labels = data.generate_labels(8, seed=11)
    model = fcn.build_fcn8()
    model.compile(keras.optimizers.Adam(3e-3), loss=losses.CombinedLoss())
    x = images[..., None].astype(np.float32)
    model.fit(x, labels.astype(np.int32), batch_size=8, epochs=150, verbose=0)
    predicted = model.predict(x, verbose=0).argmax(axis=-1)
    assert metrics.iou_dice(labels, predicted).mean_digit_iou >= 0.9
