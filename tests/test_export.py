"""The ONNX export: parity with Keras on the test split (float32 and int8), the ink gate, the rewrites, errors."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.deploy import export
from m2nist_seg.evaluation import evaluate

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def splits():
    return data.load("generated")


@pytest.fixture(scope="module")
def shipped():
    return evaluate.load_model(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def keras_labels(shipped, splits):
    """The Keras model's plain and ink-gated label maps of the test split."""
    return evaluate.predict_both(shipped, splits.test.images)


@pytest.fixture(scope="module")
def fresh(shipped, splits, tmp_path_factory):
    """The shipped .keras file exported afresh: {"float32": path, "int8": path}."""
    folder = tmp_path_factory.mktemp("onnx")
    calibration = splits.train.images[: export.CALIBRATION_IMAGES]
    return {
        "float32": export.export_onnx(SHIPPED_MODEL, folder / "fcn8.onnx"),
        "int8": export.export_onnx(shipped, folder / "fcn8.int8.onnx", int8=True, calibration_images=calibration),
    }


def graph_file(which: str, fresh: dict) -> Path:
    """The path of the shipped ("shipped-…") or freshly exported ("fresh-…") float32 or int8 graph."""
    origin, precision = which.split("-")
    if origin == "fresh":
        return fresh[precision]
    path = export.SHIPPED_ONNX if precision == "float32" else export.SHIPPED_INT8
    if not path.is_file():
        pytest.skip(f"{path.name} is not shipped")
    return path


@pytest.mark.parametrize("which", ["shipped-float32", "fresh-float32"])
def test_float_graph_gives_the_keras_labels(which, fresh, splits, keras_labels):
    predictor = export.load_onnx(graph_file(which, fresh))
    for ink_gated, reference in zip((False, True), keras_labels):
        labels = predictor.predict(splits.test.images, ink_gated=ink_gated)
        assert labels.dtype == np.uint8 and labels.shape == (1000, 64, 84)
        parity = export.parity(reference, labels, splits.test.labels)
        assert parity["equal_pixels"] >= 0.999, parity
        assert abs(parity["iou_change"]) <= 0.001, parity


@pytest.mark.parametrize("which", ["shipped-int8", "fresh-int8"])
def test_int8_graph_keeps_the_mean_digit_iou(which, fresh, splits, keras_labels, capsys):
    """The ship rule: the int8 graph loses at most 0.005 of mean digit IoU (its parity is printed with -s)."""
    predictor = export.load_onnx(graph_file(which, fresh))
    assert predictor.int8
    for ink_gated, reference in zip((False, True), keras_labels):
        parity = export.parity(
            reference, predictor.predict(splits.test.images, ink_gated=ink_gated), splits.test.labels
        )
        with capsys.disabled():
            print(f"\n{which} ink_gated={ink_gated}: {parity}")
        assert parity["iou_change"] >= -export.MAX_INT8_IOU_DROP, parity
        assert parity["equal_pixels"] >= 0.995, parity


def test_ink_gate_labels_exactly_the_ink(fresh, splits):
    images = splits.test.images[:50]
    for precision in ("float32", "int8"):
        gated = export.load_onnx(fresh[precision]).predict(images, ink_gated=True)
        assert np.all((gated == data.BACKGROUND) == (images == 0))


def test_predict_runs_an_onnx_file(fresh, splits):
    images = splits.test.images[:20]
    predictor = export.load_onnx(fresh["int8"])
    for ink_gated in (False, True):
        expected = predictor.predict(images, ink_gated=ink_gated)
        np.testing.assert_array_equal(evaluate.predict(fresh["int8"], images, ink_gated=ink_gated), expected)
        np.testing.assert_array_equal(
            evaluate.predict(str(fresh["int8"]), images[..., None], batch_size=7, ink_gated=ink_gated), expected
        )
    assert evaluate.predict(fresh["float32"], images[:0]).shape == (0, 64, 84)


def test_each_head_runs_alone(fresh):
    """A head's session computes nothing that only the other head needs."""
    predictor = export.load_onnx(fresh["float32"])
    for head in export.HEADS:
        graph = export._head_graph(predictor._proto, head)
        assert [output.name for output in graph.graph.output] == [head]
        assert not any(
            node.name.startswith("head_digits" if head == "labels" else "head_labels") for node in graph.graph.node
        )


def test_exported_graph_has_no_transposed_convolution_and_no_softmax(shipped):
    ops = {node.op_type for node in export.to_onnx(shipped).graph.node}
    assert "ConvTranspose" not in ops and "Softmax" not in ops
    assert {"Conv", "DepthToSpace", "Gemm", "ArgMax"} <= ops


def test_equalising_activations_keeps_the_float_labels(shipped, splits):
    """The rescaling before int8 calibration changes the float function only by rounding."""
    graph = export.to_onnx(shipped)
    equalised = export._equalised(graph, splits.train.images[:20])
    assert [w.name for w in equalised.graph.initializer] == [w.name for w in graph.graph.initializer]
    images = splits.test.images[:100]
    for ink_gated in (False, True):
        labels = export.OnnxPredictor(equalised).predict(images, ink_gated=ink_gated)
        assert np.mean(labels == export.OnnxPredictor(graph).predict(images, ink_gated=ink_gated)) > 0.9999


def random_images(n: int, seed: int = 0) -> np.ndarray:
    """Sparse random ink like M2NIST's: uint8 (n, 64, 84), most pixels 0."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 64, 84)) * (rng.random((n, 64, 84)) < 0.3)).astype(np.uint8)


def randomise(model: keras.Model, seed: int = 0) -> keras.Model:
    """``model`` with random weights (batch-norm statistics too), so that every layer matters."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = rng.normal(0, 0.3, weight.shape)
        weight.assign(np.abs(value) + 0.5 if "variance" in weight.path else value)
    return model


def assert_same_labels(model: keras.Model, images: np.ndarray) -> None:
    predictor = export.OnnxPredictor(export.to_onnx(model))
    for ink_gated in (False, True):
        expected = evaluate.predict(model, images, ink_gated=ink_gated)
        assert np.mean(predictor.predict(images, ink_gated=ink_gated) == expected) > 0.9999


@pytest.mark.parametrize("variant", ["fcn8", "fcn16", "fcn32"])
def test_every_variant_exports_exactly(variant):
    model = randomise(
        fcn.build_fcn(variant, widths=(8, 8, 16, 16, 16), convs_per_block=(1, 1, 2, 1, 1), decoder_width=16)
    )
    assert_same_labels(model, random_images(8))


@pytest.mark.parametrize(("kernel", "stride"), [(3, 2), (4, 2), (2, 2), (5, 4), (4, 4), (7, 4)])
def test_transposed_convolutions_become_sub_pixel_convolutions(kernel, stride):
    """Any "same" transposed convolution is a convolution to stride²·C channels laid out by depth-to-space."""
    image = keras.Input((64, 84, 1))
    x = layers.Rescaling(1 / 255)(image)
    x = layers.Conv2D(6, 3, strides=stride, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(11, kernel, strides=stride, padding="same")(x)
    assert_same_labels(randomise(keras.Model(image, layers.Softmax()(x))), random_images(4))


def test_flops_count_the_convolutions():
    image = keras.Input((64, 84, 1))
    x = layers.Conv2D(4, 3, strides=2, padding="same")(image)  # 32·42 pixels × 9 taps × 1 × 4
    x = layers.Conv2DTranspose(11, 2, strides=2)(x)  # 32·42 input pixels × 4 taps × 4 × 11
    assert export.flops_per_image(keras.Model(image, x)) == 2 * (32 * 42 * 9 * 4 + 32 * 42 * 4 * 4 * 11)


def test_missing_or_corrupt_files_are_named(tmp_path, fresh):
    with pytest.raises(M2NISTError, match="missing.onnx: ONNX model not found"):
        export.load_onnx(tmp_path / "missing.onnx")
    with pytest.raises(M2NISTError, match="missing.onnx: ONNX model not found"):
        evaluate.predict(tmp_path / "missing.onnx", np.zeros((1, 64, 84), np.uint8))
    with pytest.raises(M2NISTError, match=r"fcn8_m2nist.keras: found suffix '.keras', expected an .onnx file"):
        evaluate.predict(str(SHIPPED_MODEL), np.zeros((1, 64, 84), np.uint8))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a model at all" * 10)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(fresh["float32"].read_bytes()[:5000])
    for path in (garbage, truncated):
        with pytest.raises(M2NISTError, match=rf"{path.name}: not a readable ONNX model"):
            export.load_onnx(path)


def test_a_foreign_graph_is_refused(tmp_path, shipped):
    proto = export.to_onnx(shipped)
    proto.graph.output[0].name = "probabilities"
    proto.graph.node[[node.name for node in proto.graph.node].index("labels")].output[0] = "probabilities"
    path = tmp_path / "foreign.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(M2NISTError, match=r"foreign.onnx: found inputs \['images'\] and outputs"):
        export.load_onnx(path)


def test_export_refuses_to_overwrite(tmp_path, shipped, fresh):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"precious")
    with pytest.raises(M2NISTError, match="model.onnx: already exists"):
        export.export_onnx(shipped, path)
    assert path.read_bytes() == b"precious"
    export.export_onnx(shipped, path, overwrite=True)
    assert export.load_onnx(path).predict(np.zeros((1, 64, 84), np.uint8)).shape == (1, 64, 84)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file left


def test_bad_arguments_are_named(tmp_path, shipped):
    with pytest.raises(M2NISTError, match="model.keras: found suffix '.keras', expected a path ending in .onnx"):
        export.export_onnx(shipped, tmp_path / "model.keras")
    with pytest.raises(M2NISTError, match="calibration_images: found None, expected training images"):
        export.export_onnx(shipped, tmp_path / "model.onnx", int8=True)
    with pytest.raises(M2NISTError, match="calibration_images: found shape"):
        export.export_onnx(shipped, tmp_path / "model.onnx", int8=True, calibration_images=np.zeros((3, 28, 28)))
    with pytest.raises(M2NISTError, match="not_there.keras: model not found"):
        export.export_onnx(tmp_path / "not_there.keras", tmp_path / "model.onnx")
    with pytest.raises(M2NISTError, match="model: found str, expected a Keras model"):
        export.to_onnx("fcn8")
    assert not (tmp_path / "model.onnx").exists()


def test_unsupported_layers_are_named():
    image = keras.Input((64, 84, 1))
    x = layers.Conv2D(11, 3, padding="same")(image)
    model = keras.Model(image, layers.LeakyReLU(name="leaky")(x))
    with pytest.raises(M2NISTError, match="layer 'leaky': found LeakyReLU, expected a layer of build_fcn's models"):
        export.to_onnx(model)


def test_bad_images_and_batch_sizes_are_named(fresh):
    predictor = export.load_onnx(fresh["float32"])
    with pytest.raises(M2NISTError, match="images: found shape"):
        predictor.predict(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(M2NISTError, match="batch_size: found 0, expected a positive integer"):
        predictor.predict(np.zeros((2, 64, 84), np.uint8), batch_size=0)


def test_missing_onnxruntime_is_named(fresh, monkeypatch):
    predictor = export.load_onnx(fresh["float32"])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(M2NISTError, match=r"onnxruntime: not installed, expected it from requirements.txt"):
        predictor.predict(np.zeros((1, 64, 84), np.uint8))


@pytest.mark.slow
def test_export_shipped_writes_both_graphs_beside_the_model(tmp_path):
    keras_file = tmp_path / "fcn8_m2nist.keras"
    keras_file.write_bytes(SHIPPED_MODEL.read_bytes())
    shipped = export.export_shipped(keras_file)
    assert (shipped.float32, shipped.int8) == (tmp_path / "fcn8_m2nist.onnx", tmp_path / "fcn8_m2nist.int8.onnx")
    assert shipped.float_parity["equal_pixels"] >= 0.999 and shipped.int8_parity["iou_change"] >= -0.005
    assert export.load_onnx(shipped.int8).int8 and not export.load_onnx(shipped.float32).int8
    with pytest.raises(M2NISTError, match="fcn8_m2nist.onnx, .*fcn8_m2nist.int8.onnx: already exist"):
        export.export_shipped(keras_file)
