"""The ONNX export: parity with Keras on the test split (float32 and int8), every model of the series, the ink
gate, the rewrites, errors. The passes themselves are tested on tiny graphs in test_onnx_passes.py."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers, ops

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.deploy import export, quantize
from m2nist_seg.evaluation import evaluate, onnx_runtime
from m2nist_seg.teaching import exercises

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
    predictor = onnx_runtime.load_onnx(graph_file(which, fresh))
    for ink_gated, reference in zip((False, True), keras_labels):
        labels = predictor.predict(splits.test.images, ink_gated=ink_gated)
        assert labels.dtype == np.uint8 and labels.shape == (1000, 64, 84)
        parity = export.parity(reference, labels, splits.test.labels)
        assert parity["equal_pixels"] >= 0.999, parity
        assert abs(parity["iou_change"]) <= 0.001, parity


@pytest.mark.parametrize("which", ["shipped-int8", "fresh-int8"])
def test_int8_graph_keeps_the_mean_digit_iou(which, fresh, splits, keras_labels, capsys):
    """The ship rule: the int8 graph loses at most 0.005 of mean digit IoU (its parity is printed with -s)."""
    predictor = onnx_runtime.load_onnx(graph_file(which, fresh))
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
        gated = onnx_runtime.load_onnx(fresh[precision]).predict(images, ink_gated=True)
        assert np.all((gated == data.BACKGROUND) == (images == 0))


def test_predict_runs_an_onnx_file(fresh, splits):
    images = splits.test.images[:20]
    predictor = onnx_runtime.load_onnx(fresh["int8"])
    for ink_gated in (False, True):
        expected = predictor.predict(images, ink_gated=ink_gated)
        np.testing.assert_array_equal(evaluate.predict(fresh["int8"], images, ink_gated=ink_gated), expected)
        np.testing.assert_array_equal(
            evaluate.predict(str(fresh["int8"]), images[..., None], batch_size=7, ink_gated=ink_gated), expected
        )
    assert evaluate.predict(fresh["float32"], images[:0]).shape == (0, 64, 84)


def test_each_head_runs_alone(fresh):
    """A head's session computes nothing that only the other head needs."""
    predictor = onnx_runtime.load_onnx(fresh["float32"])
    for head in onnx_runtime.HEADS:
        graph = onnx_runtime.head_graph(predictor._proto, head)
        assert [output.name for output in graph.graph.output] == [head]
        assert not any(
            node.name.startswith("head_digits" if head == "labels" else "head_labels") for node in graph.graph.node
        )


def test_exported_graph_has_no_transposed_convolution_and_no_softmax(shipped):
    """Batch norm folded by the exporter, the 1/255 scaling by fold_input_scale, the ×8 upsampling computed per
    tile (one Gemm per head) and the ×2 ones as sub-pixel convolutions."""
    standard = [node.op_type for node in export.standard_export(shipped).graph.node]
    assert standard.count("ConvTranspose") == 3 and "Mul" in standard and "BatchNormalization" not in standard
    graph = export.to_onnx(shipped)
    ops_used = [node.op_type for node in graph.graph.node]
    assert not {"ConvTranspose", "Softmax", "BatchNormalization", "Mul"} & set(ops_used)
    assert {"Conv", "DepthToSpace", "Gemm", "ArgMax"} <= set(ops_used) and ops_used.count("Gemm") == 2
    assert [i.name for i in graph.graph.input] == ["images"]
    assert [o.name for o in graph.graph.output] == list(onnx_runtime.HEADS)
    assert {o.type.tensor_type.elem_type for o in graph.graph.output} == {2}  # uint8


def test_equalising_activations_keeps_the_float_labels(shipped, splits):
    """The rescaling before int8 calibration changes the float function only by rounding."""
    graph = export.to_onnx(shipped)
    equalised = quantize.equalise_activations(graph, splits.train.images[:20])
    assert [w.name for w in equalised.graph.initializer] == [w.name for w in graph.graph.initializer]
    images = splits.test.images[:100]
    for ink_gated in (False, True):
        labels = onnx_runtime.OnnxPredictor(equalised).predict(images, ink_gated=ink_gated)
        assert np.mean(labels == onnx_runtime.OnnxPredictor(graph).predict(images, ink_gated=ink_gated)) > 0.9999


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
    predictor = onnx_runtime.OnnxPredictor(export.to_onnx(model))
    for ink_gated in (False, True):
        expected = evaluate.predict(model, images, ink_gated=ink_gated)
        assert np.mean(predictor.predict(images, ink_gated=ink_gated) == expected) > 0.9999


@pytest.mark.parametrize("variant", ["fcn8", "fcn16", "fcn32"])
def test_every_variant_exports_exactly(variant):
    model = randomise(
        fcn.build_fcn(variant, widths=(8, 8, 16, 16, 16), convs_per_block=(1, 1, 2, 1, 1), decoder_width=16)
    )
    assert_same_labels(model, random_images(8))


def test_the_learners_model_exports_exactly():
    """Notebook 02's model: the reference encoder and decoder joined by assemble_fcn8 (unnamed layers, batch norm
    unfolded, not a build_fcn model)."""
    model = exercises.assemble_fcn8(exercises.reference_encoder, exercises.reference_fcn8_decoder)
    assert model.name == "my_fcn8"
    assert_same_labels(randomise(model), random_images(8))


def test_a_mixed_precision_model_exports_in_float32():
    """Layers that compute in bfloat16 are exported as float32 copies (Keras' exporter needs float32)."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = fcn.build_fcn8(widths=(8, 8, 16, 16, 16), convs_per_block=(1, 1, 2, 1, 1), decoder_width=16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    images = random_images(4)
    labels = onnx_runtime.OnnxPredictor(export.to_onnx(model)).predict(images)
    assert np.mean(labels == evaluate.predict(model, images)) > 0.99  # Keras rounds to bfloat16, the graph does not


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
        onnx_runtime.load_onnx(tmp_path / "missing.onnx")
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
            onnx_runtime.load_onnx(path)


def test_a_foreign_graph_is_refused(tmp_path, shipped):
    proto = export.to_onnx(shipped)
    proto.graph.output[0].name = "probabilities"
    next(node for node in proto.graph.node if "labels" in node.output).output[0] = "probabilities"
    path = tmp_path / "foreign.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(M2NISTError, match=r"foreign.onnx: found inputs \['images'\] and outputs"):
        onnx_runtime.load_onnx(path)


def test_export_refuses_to_overwrite(tmp_path, shipped, fresh):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"precious")
    with pytest.raises(M2NISTError, match="model.onnx: already exists"):
        export.export_onnx(shipped, path)
    assert path.read_bytes() == b"precious"
    export.export_onnx(shipped, path, overwrite=True)
    assert onnx_runtime.load_onnx(path).predict(np.zeros((1, 64, 84), np.uint8)).shape == (1, 64, 84)
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


def test_layers_that_the_exporter_cannot_convert_are_named(tmp_path):
    """Keras' argmax becomes TensorFlow ops (Bitcast, BitwiseAnd) that tf2onnx has no ONNX form for."""
    image = keras.Input((64, 84, 1))
    x = layers.Conv2D(11, 3, padding="same")(image)
    odd = layers.Lambda(lambda t: t * ops.cast(ops.argmax(t, axis=-1), t.dtype)[..., None], name="odd")
    model = keras.Model(image, odd(x), name="argmax_inside")
    expected = r"model 'argmax_inside': found TensorFlow ops that the ONNX exporter cannot convert \(.*odd.*Bitcast"
    with pytest.raises(M2NISTError, match=expected):
        export.to_onnx(model)
    with pytest.raises(M2NISTError, match=expected):
        export.export_onnx(model, tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())  # nothing written half-way


def test_the_exporter_prints_nothing(capfd):
    """Keras' exporter and tf2onnx stay off stdout and stderr (notebooks compare both)."""
    image = keras.Input((64, 84, 1))
    model = keras.Model(image, layers.Softmax()(layers.Conv2D(11, 3, padding="same")(image)))
    capfd.readouterr()
    export.to_onnx(model)
    assert capfd.readouterr() == ("", "")


def test_bad_images_and_batch_sizes_are_named(fresh):
    predictor = onnx_runtime.load_onnx(fresh["float32"])
    with pytest.raises(M2NISTError, match="images: found shape"):
        predictor.predict(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(M2NISTError, match="batch_size: found 0, expected a positive integer"):
        predictor.predict(np.zeros((2, 64, 84), np.uint8), batch_size=0)


def test_missing_onnxruntime_is_named(fresh, monkeypatch):
    predictor = onnx_runtime.load_onnx(fresh["float32"])
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
    assert onnx_runtime.load_onnx(shipped.int8).int8 and not onnx_runtime.load_onnx(shipped.float32).int8
    with pytest.raises(M2NISTError, match="fcn8_m2nist.onnx, .*fcn8_m2nist.int8.onnx: already exist"):
        export.export_shipped(keras_file)
