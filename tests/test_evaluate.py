"""Prediction, evaluation reports, error analysis, plots and the command line."""

import json

import keras
import numpy as np
import pytest
from conftest import real_sample

from m2nist_seg import cli, data
from m2nist_seg import model as fcn
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import analysis, evaluate, metrics
from m2nist_seg.viz import plots


@pytest.fixture(scope="module")
def small_model():
    return fcn.build_fcn8(widths=(8, 8, 16, 16, 16), convs_per_block=(1, 1, 1, 1, 1), decoder_width=16)


@pytest.fixture(scope="module")
def test_split():
    return data.Split(*data.generate_labels(12, seed=9, pool="test"))


def assert_argmax_where_decided(labels: np.ndarray, probs: np.ndarray) -> None:
    """``labels`` are the argmax of ``probs`` wherever the top two classes differ by more than 1e-4 (exact ties
    may flip with the order of float sums), and that holds for more than 99 % of the pixels."""
    top2 = np.sort(probs, axis=-1)[..., -2:]
    decided = top2[..., 1] - top2[..., 0] > 1e-4
    assert decided.mean() > 0.99
    np.testing.assert_array_equal(labels[decided], probs.argmax(axis=-1)[decided])


def test_predict_matches_the_model_argmax(test_split):
    from m2nist_seg.core.settings import SHIPPED_MODEL

    trained = evaluate.load_model(SHIPPED_MODEL)
    probs = trained.predict(test_split.images[..., None].astype(np.float32), verbose=0)
    got = evaluate.predict(trained, test_split.images, batch_size=5)
    assert got.dtype == np.uint8 and got.shape == (12, 64, 84)
    assert_argmax_where_decided(got, probs)


def test_predict_follows_weights_changed_after_a_first_call(test_split):
    model = fcn.build_fcn8(widths=(8, 8, 16, 16, 16), convs_per_block=(1, 1, 1, 1, 1), decoder_width=16)
    first = evaluate.predict(model, test_split.images)
    rng = np.random.default_rng(5)
    # Positive draws keep every batch-norm variance valid.
    model.set_weights([rng.uniform(0.2, 0.8, w.shape).astype(np.float32) for w in model.get_weights()])
    probs = model.predict(test_split.images[..., None].astype(np.float32), verbose=0)
    again = evaluate.predict(model, test_split.images)
    assert not np.array_equal(first, again)
    assert_argmax_where_decided(again, probs)


@pytest.mark.parametrize(
    "shape_dtype",
    [
        ((3, 64, 84), np.uint8),
        ((3, 64, 84), np.int64),
        ((3, 64, 84), np.int32),
        ((3, 64, 84, 1), np.float32),
        ((3, 64, 84), np.float64),
    ],
)
def test_predict_accepts_integer_and_float_pixels(small_model, shape_dtype):
    shape, dtype = shape_dtype
    images = np.random.default_rng(0).integers(0, 256, shape).astype(dtype)
    assert evaluate.predict(small_model, images).shape == (3, 64, 84)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.full((2, 64, 84), 300, dtype=np.int64), r"values in \[300, 300\], expected pixel values 0–255"),
        (np.zeros((2, 64, 84), dtype=np.complex64), "dtype complex64, expected integer or float"),
        (np.zeros((2, 64, 80), dtype=np.uint8), r"shape \(2, 64, 80\), expected \(N, 64, 84\)"),
        (np.zeros((64, 84), dtype=np.uint8), r"shape \(64, 84\)"),
        (np.zeros((2, 64, 84, 3), dtype=np.float32), r"shape \(2, 64, 84, 3\)"),
        (np.full((1, 64, 84), 300.0), "expected raw pixel values 0–255"),
        (np.full((1, 64, 84), np.nan), "no NaN"),
        ([[0] * 84] * 64, "found list, expected a numpy array"),
    ],
)
def test_predict_rejects_other_input(small_model, images, message):
    with pytest.raises(M2NISTError, match=message):
        evaluate.predict(small_model, images)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5])
def test_predict_rejects_a_bad_batch_size(small_model, batch_size):
    with pytest.raises(M2NISTError, match=f"batch_size: found {batch_size}, expected a positive integer"):
        evaluate.predict(small_model, np.zeros((2, 64, 84), np.uint8), batch_size=batch_size)


def test_ink_gated_prediction_is_background_exactly_off_ink(small_model, test_split):
    gated = evaluate.predict(small_model, test_split.images, ink_gated=True)
    np.testing.assert_array_equal(gated == data.BACKGROUND, test_split.images == 0)


def test_class_scores_are_the_logits_before_the_softmax(small_model, test_split):
    scores = evaluate.class_scores(small_model, test_split.images[:3])
    probs = small_model.predict(test_split.images[:3, ..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(scores, axis=-1)), probs, atol=1e-5)


def test_class_scores_refuse_a_model_without_a_crop():
    image = keras.Input((64, 84, 1))
    other = keras.Model(image, keras.layers.Conv2D(11, 1)(image))
    with pytest.raises(M2NISTError, match="expected a model built by build_fcn"):
        evaluate.class_scores(other, np.zeros((1, 64, 84), dtype=np.uint8))


def test_example_pixels_are_inside_a_digit_on_its_edge_and_in_the_background():
    _, labels = data.generate_labels(1, seed=0)
    rows, cols = analysis.example_pixels(labels[0])
    edge = analysis.boundary_mask(labels)[0]
    inside, on_edge, background = zip(rows, cols)
    assert labels[0][inside] != data.BACKGROUND and not edge[inside]
    assert labels[0][on_edge] != data.BACKGROUND and edge[on_edge]
    assert labels[0][background] == data.BACKGROUND and not edge[background]


def test_report_agrees_with_the_metrics(small_model, test_split):
    report = evaluate.evaluate(small_model, test_split)
    predicted = evaluate.predict(small_model, test_split.images)
    scores = metrics.iou_dice(test_split.labels, predicted)
    assert report["mean_digit_iou"] == pytest.approx(scores.mean_digit_iou)
    assert report["mean_digit_dice"] == pytest.approx(scores.mean_digit_dice)
    assert report["pixel_accuracy"] == pytest.approx((predicted == test_split.labels).mean())
    assert np.array(report["confusion_matrix"]).sum() == test_split.labels.size
    assert set(report["ink_gated"]) == {"mean_digit_iou", "mean_digit_dice", "worst_digit", "pixel_accuracy"}
    json.dumps(report, allow_nan=False)
    assert "mean digit IoU" in evaluate.format_report(report)
    assert "ink-gated" in evaluate.format_report(report)
    assert "ink-gated" not in evaluate.format_report(report, ink_gated=False)


def test_save_report_is_atomic_and_round_trips(tmp_path):
    path = evaluate.save_report({"mean_digit_iou": 0.5}, tmp_path / "out" / "report.json")
    assert evaluate.load_report(path) == {"mean_digit_iou": 0.5}
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]
    with pytest.raises(ValueError):
        evaluate.save_report({"bad": float("nan")}, path)
    assert evaluate.load_report(path) == {"mean_digit_iou": 0.5}, "a failed write leaves the old report"
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_load_report_names_a_missing_file(tmp_path):
    with pytest.raises(M2NISTError, match="report not found"):
        evaluate.load_report(tmp_path / "report.json")


# --- error analysis -------------------------------------------------------------------------------------------


def test_error_causes_by_hand():
    bg = data.BACKGROUND
    truth = np.full((1, 5, 5), bg)
    truth[0, 1:4, 1:4] = 2
    predicted = truth.copy()
    predicted[0, 2, 2] = 5  # interior digit pixel, wrong digit
    predicted[0, 1, 1] = bg  # a corner of the digit: boundary
    predicted[0, 4, 4] = 2  # background next to the digit: boundary
    causes = analysis.error_causes(truth, predicted)
    assert causes[0, 2, 2] == analysis.CAUSES.index("wrong digit")
    assert causes[0, 1, 1] == analysis.CAUSES.index("boundary")
    assert causes[0, 4, 4] == analysis.CAUSES.index("boundary")
    assert (causes >= 0).sum() == 3
    table = analysis.error_breakdown(truth, predicted)
    assert table.loc["boundary", "pixels"] == 2 and table["share"].sum() == pytest.approx(1.0)


def test_missed_and_spurious_interior_pixels():
    bg = data.BACKGROUND
    truth = np.full((1, 7, 7), bg)
    truth[0, 0:3, 0:3] = 1
    predicted = truth.copy()
    predicted[0, 1, 1] = bg
    predicted[0, 5, 5] = 3
    causes = analysis.error_causes(truth, predicted)
    assert causes[0, 1, 1] == analysis.CAUSES.index("missed ink")
    assert causes[0, 5, 5] == analysis.CAUSES.index("spurious digit")


def one_digit_layout(digit: int) -> data.Layout:
    """A layout of one image holding MNIST digit ``digit`` alone, at the top-left corner."""
    return data.Layout(digit=np.array([[digit, -1, -1]]), row=np.array([[0, 0, 0]]), col=np.array([[0, 28, 56]]))


def test_a_misread_digit_is_counted_before_its_boundary_pixels():
    layout = one_digit_layout(0)
    _, truth = data.render(layout)
    true_class = data.mnist_digits()[1][0]
    other = (true_class + 1) % 10
    own = truth == true_class
    predicted = np.where(own, other, truth).astype(np.uint8)  # the whole digit read as another digit
    causes = analysis.error_causes(truth, predicted, layout)
    assert (causes[own] == analysis.CAUSES.index("misread digit")).all()
    assert (analysis.boundary_mask(truth) & own).any(), "the digit has edge pixels, which are misread pixels too"
    found = analysis.misread_placements(truth, predicted, layout)
    assert (found.placements, found.misread, found.digits) == (1, 1, frozenset({0}))


def test_a_digit_with_a_minority_of_wrong_pixels_is_not_misread():
    layout = one_digit_layout(0)
    _, truth = data.render(layout)
    true_class = data.mnist_digits()[1][0]
    own = np.argwhere(truth == true_class)
    predicted = truth.copy()
    minority = own[: len(own) // 2 - 1]
    predicted[tuple(minority.T)] = (true_class + 1) % 10
    causes = analysis.error_causes(truth, predicted, layout)
    assert analysis.CAUSES.index("misread digit") not in causes
    assert analysis.misread_placements(truth, predicted, layout).misread == 0


def test_ink_lost_to_background_is_missed_ink_not_a_misread():
    layout = one_digit_layout(0)
    _, truth = data.render(layout)
    predicted = np.full_like(truth, data.BACKGROUND)
    found = analysis.misread_placements(truth, predicted, layout)
    assert found.misread == 0 and found.placements == 1


def test_overlap_comes_from_the_layout():
    layout = data.Layout(
        digit=np.array([[0, 1, -1]]),
        row=np.array([[0, 0, 0]]),
        col=np.array([[0, 0, 56]]),
    )
    digits, _ = data.mnist_digits()
    both = (digits[0] > 0) & (digits[1] > 0)
    np.testing.assert_array_equal(analysis.overlap_mask(layout)[0, :28, :28], both)


def test_without_a_layout_a_digit_read_wholly_as_another_is_a_misread():
    bg = data.BACKGROUND
    truth = np.full((1, 64, 84), bg, dtype=np.uint8)
    truth[0, 10:12, 10:20] = 7  # the 7's bar: 20 pixels
    diagonal = (np.arange(12, 20), np.arange(18, 10, -1))  # its stroke, 8 pixels touching only at corners
    truth[0][diagonal] = 7
    truth[0, 10:30, 40:43] = 1  # a 1: 60 pixels
    predicted = truth.copy()
    predicted[truth == 7] = 2  # the 7 read wholly as a 2: 28 of 28 pixels
    predicted[0, 10, 40:43] = bg  # the 1's top edge missed
    predicted[0, 20, 42] = 7  # an edge pixel of the 1 read as a 7: 1 of 60, no misread
    predicted[0, 20, 43] = 1  # background beside the 1
    causes = analysis.error_causes(truth, predicted)
    assert (causes[truth == 7] == analysis.CAUSES.index("misread digit")).all()
    one_errors = (truth != predicted) & (truth != 7)
    assert (causes[one_errors] == analysis.CAUSES.index("boundary")).all()
    table = analysis.error_breakdown(truth, predicted)
    assert table["pixels"].to_dict() == {
        "misread digit": 28,
        "overlap": 0,
        "boundary": 5,
        "wrong digit": 0,
        "missed ink": 0,
        "spurious digit": 0,
    }
    # 8-connected, the 7 is one digit; 4-connected, its diagonal would make it 8 digits
    found = analysis.misread_components(truth, predicted)
    assert (found.placements, found.misread, found.digits) == (2, 1, frozenset())
    np.testing.assert_array_equal(found.mask, truth == 7)


def test_without_a_layout_each_component_of_a_class_is_judged_alone():
    truth = np.full((1, 64, 84), data.BACKGROUND, dtype=np.uint8)
    truth[0, 5:15, 5:10] = 3  # one 3: 50 pixels
    truth[0, 5:15, 50:55] = 3  # another 3 in the same image: 50 pixels
    predicted = truth.copy()
    predicted[0, 5:11, 5:10] = 8  # 30 of the first 3's 50 pixels read as an 8: misread
    predicted[0, 5:9, 50:55] = 8  # 20 of the second 3's 50 pixels: not misread (as one class, 50 of 100 would not be)
    found = analysis.misread_components(truth, predicted)
    assert (found.placements, found.misread) == (2, 1)
    first = np.zeros_like(found.mask)
    first[0, 5:15, 5:10] = True
    np.testing.assert_array_equal(found.mask, first)
    table = analysis.error_breakdown(truth, predicted)
    # the second 3's 20 wrong pixels: 9 inside it (rows 6-8, columns 51-53) are wrong digits, 11 on its edge
    assert table["pixels"].to_dict() == {
        "misread digit": 30,
        "overlap": 0,
        "boundary": 11,
        "wrong digit": 9,
        "missed ink": 0,
        "spurious digit": 0,
    }


def test_error_causes_on_real_samples_without_a_layout():
    _, masks = real_sample("10_float32")
    truth = data.masks_to_labels(masks)
    next_digit = np.where(truth != data.BACKGROUND, (truth + 1) % 10, truth).astype(np.uint8)
    found = analysis.misread_components(truth, next_digit)
    classes_shown = sum(len(np.unique(labels[labels != data.BACKGROUND])) for labels in truth)
    assert found.misread == found.placements >= classes_shown
    table = analysis.error_breakdown(truth, next_digit)
    assert table.loc["misread digit", "pixels"] == (truth != next_digit).sum()
    shifted = np.roll(truth, 1, axis=-1)  # every edge off by one pixel: no digit is misread
    table = analysis.error_breakdown(truth, shifted)
    assert table["pixels"].sum() == (truth != shifted).sum()
    assert table.loc["misread digit", "pixels"] == table.loc["overlap", "pixels"] == 0


# --- plots ----------------------------------------------------------------------------------------------------


def test_palette_and_colorize():
    assert plots.PALETTE.shape == (11, 3)
    assert len({tuple(c) for c in plots.PALETTE}) == 11
    rgb = plots.colorize(np.array([[0, 10]]))
    np.testing.assert_array_equal(rgb[0, 1], plots.PALETTE[10])


def test_figures_save_atomically(tmp_path, test_split):
    fig = plots.plot_samples(test_split.images, test_split.labels, n=2)
    path = plots.save_figure(fig, tmp_path / "samples.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["samples.png"]


# --- command line ---------------------------------------------------------------------------------------------


def test_cli_generate_writes_kaggle_files(tmp_path, capsys):
    assert cli.main(["generate", "--n", "7", "--out", str(tmp_path)]) == 0
    images, masks = data.load_arrays(tmp_path)
    assert images.shape == (7, 64, 84) and masks.shape == (7, 64, 84, 11)
    assert "wrote 7 images" in capsys.readouterr().out


def test_cli_predict_npy_and_png(tmp_path, small_model):
    model_path = tmp_path / "small.keras"
    small_model.save(model_path)
    images, _ = data.generate_labels(3, seed=1)
    np.save(tmp_path / "images.npy", images)
    assert (
        cli.main(
            ["predict", str(tmp_path / "images.npy"), "--model", str(model_path), "--out", str(tmp_path / "a.png")]
        )
        == 0
    )
    import matplotlib.image

    matplotlib.image.imsave(tmp_path / "digit.png", images[0], cmap="gray")
    assert (
        cli.main(["predict", str(tmp_path / "digit.png"), "--model", str(model_path), "--out", str(tmp_path / "b.png")])
        == 0
    )
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "b.png").is_file()


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert cli.main(["predict", str(tmp_path / "notes.txt")]) == 2
    assert "expected .npy or .png" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", str(tmp_path / "missing.keras")]) == 2
    assert "missing.keras: model not found, expected an existing .keras file" in capsys.readouterr().err


def test_cli_train_tiny_run(tmp_path, capsys):
    args = ["train", "--epochs", "1", "--n-images", "60", "--output-dir", str(tmp_path), "--name", "cli"]
    assert cli.main([*args, "--distort-digits", "--elastic-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "mean digit IoU" in out and "epoch 1/1" in out
    for name in ("model.keras", "history.csv", "report.json", "figures/per_class.png", "figures/gallery.png"):
        assert (tmp_path / "cli" / name).is_file(), name
    config = evaluate.load_report(tmp_path / "cli" / "report.json")["training"]["config"]
    assert config["distort_digits"] is True and config["elastic_epochs"] == 1


@pytest.mark.parametrize("command", ["generate", "train", "evaluate", "predict", "run"])
def test_cli_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    path = evaluate.save_report({"a": 1}, tmp_path / "report.json")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
