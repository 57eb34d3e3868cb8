"""The teaching figures: each returns a Figure whose numbers match an independent computation."""

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from m2nist_seg import data  # noqa: E402
from m2nist_seg import model as fcn  # noqa: E402
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.training.callbacks import PredictionRecorder  # noqa: E402
from m2nist_seg.viz import evaluation_figures, plots, style

SHAPE = re.compile(r"^\d+×\d+×\d+$")
TINY = {"widths": (8, 8, 16, 16, 16), "convs_per_block": (1, 1, 1, 1, 1), "decoder_width": 16}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _texts(fig: plt.Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _assert_readable(fig: plt.Figure) -> None:
    small = {t.get_text(): t.get_fontsize() for t in _texts(fig) if t.get_fontsize() < 9}
    assert not small, f"text under 9 pt: {small}"


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+\.\d+", text)]


def _heatmap(ax: plt.Axes) -> np.ndarray:
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    return np.asarray(mesh.get_array()).reshape(mesh.get_coordinates().shape[0] - 1, -1)


@pytest.mark.parametrize("variant", ["fcn8", "fcn16", "fcn32"])
def test_fcn_wiring_writes_every_stage_shape_on_its_arrows(variant):
    stages = fcn.feature_shapes(variant=variant)
    fig = plots.plot_fcn_wiring(stages)
    assert len(fig.axes) == 1
    texts = [t.get_text() for t in _texts(fig)]
    arrows = [t for t in fig.axes[0].texts if getattr(t, "arrow_patch", None) is not None]
    skips = len(fcn.SKIPS[variant])
    # Encoder 6, pool5 → score 1, per skip: into ×2, pool → score, ×2 → fuse, score → fuse; ×k, crop, output 3.
    assert len(arrows) == 6 + 1 + 4 * skips + 3
    labels = [t for t in texts if SHAPE.match(t)]
    assert set(labels) == {f"{s.height}×{s.width}×{s.channels}" for s in stages}
    assert sum(text == "+" for text in texts) == skips
    assert any("stride-2" in text for text in texts) and not any("pool1" in text for text in texts)
    _assert_readable(fig)


def test_feature_shapes_name_the_strided_first_block():
    names = [s.name for s in fcn.feature_shapes()]
    assert names[:7] == ["input", "padded", "block1", "pool2", "pool3", "pool4", "pool5"]


@pytest.mark.parametrize("variant", ["fcn8", "fcn16"])
def test_stage_table_totals_and_shapes(variant):
    model = fcn.build_fcn(variant)
    table = fcn.stage_table(model)
    assert table.loc["total", "parameters"] == fcn.count_params(model)
    assert table["parameters"].iloc[:-1].sum() == fcn.count_params(model)
    stages = {s.name: f"{s.height}×{s.width}×{s.channels}" for s in fcn.feature_shapes(variant=variant)}
    expected = {"block1": stages["block1"], "crop": stages["output"], "softmax": stages["output"]}
    expected |= {f"block{k}": stages[f"pool{k}"] for k in range(2, 6)}
    expected |= {name: shape for name, shape in stages.items() if name.startswith(("score_", "fuse_", "upsample_x"))}
    assert table.loc[list(expected), "output shape"].to_dict() == expected
    assert list(table.index[:5]) == [f"block{k}" for k in range(1, 6)]
    assert list(table.index[-3:]) == ["crop", "softmax", "total"]
    assert table.loc["block1", "parameters"] == 3 * 3 * 16 + 4 * 16  # conv kernel + batch norm


def _numpy_transposed(values: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """A transposed convolution of ones written out: each cell adds kernel² copies, cropped as 'same' crops."""
    size = (len(values) - 1) * stride + kernel
    full = np.zeros((size, size))
    for (row, col), value in np.ndenumerate(values):
        full[row * stride : row * stride + kernel, col * stride : col * stride + kernel] += value
    start = (kernel - stride) // 2
    return full[start : start + len(values) * stride, start : start + len(values) * stride]


def test_transposed_convolution_panels():
    fig = plots.plot_transposed_convolution()
    assert len(fig.axes) == 5
    toy, ones = plots.TOY_MAP, np.ones_like(plots.TOY_MAP)
    panels = [_heatmap(ax) for ax in fig.axes]
    np.testing.assert_array_equal(panels[0], toy)
    np.testing.assert_array_equal(panels[1], _numpy_transposed(toy, 4, 2))
    np.testing.assert_array_equal(panels[2], _numpy_transposed(ones, 4, 2))
    np.testing.assert_array_equal(panels[3], _numpy_transposed(ones, 3, 2))
    tiles = np.kron(toy, np.ones((8, 8)))
    np.testing.assert_array_equal(panels[4], tiles)
    written = [float(t.get_text()) for t in fig.axes[4].texts]
    np.testing.assert_array_equal(np.reshape(written, (24, 24)), tiles)
    assert np.ptp(panels[2]) > 0  # overlapping copies: the 4×4/stride-2 count is not constant
    assert np.ptp(panels[3][1:-1, 1:-1]) > 0  # and a 3×3 kernel is uneven even away from the edges
    _assert_readable(fig)


def test_iou_vs_dice_numbers_come_from_the_metrics():
    digit = data.mnist_digits()[0][0]
    fig = plots.plot_iou_vs_dice(digit)
    assert len(fig.axes) == 3
    truth = digit > 0
    shifted = np.roll(truth, 1, axis=1)
    shifted[:, 0] = False
    scores = metrics.iou_dice(truth.astype(np.uint8), shifted.astype(np.uint8), num_classes=2)
    stroke = _numbers(fig.axes[2].get_title())
    assert stroke == pytest.approx([scores.iou[1], scores.dice[1]], abs=0.005)
    # The discs: IoU of two circles of radius r, d apart, from the area of their lens.
    (_, a), (_, b) = evaluation_figures.DISC_CENTRES
    r, d = evaluation_figures.DISC_RADIUS, b - a
    lens = 2 * r**2 * np.arccos(d / (2 * r)) - d / 2 * np.sqrt(4 * r**2 - d**2)
    discs = _numbers(fig.axes[0].get_title())
    assert discs[0] == pytest.approx(lens / (2 * np.pi * r**2 - lens), abs=0.01)
    points = [line.get_xydata()[0] for line in fig.axes[1].lines if line.get_marker() == "o"]
    assert [tuple(np.round(p, 2)) for p in points] == [tuple(discs), tuple(stroke)]
    for iou, dice in points:
        assert dice == pytest.approx(2 * iou / (1 + iou)) and dice >= iou
    _assert_readable(fig)


def test_softmax_vs_sigmoid_bars_sums_and_argmax():
    scores = np.array([[0.5, -1.0, 4.0, 0, 0, 0, 0, 0, 0, 1.0, 2.0], np.linspace(-3, 3, 11)])
    fig = plots.plot_softmax_vs_sigmoid(scores)
    assert len(fig.axes) == 2
    softmax = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    sigmoid = 1 / (1 + np.exp(-scores))
    for pixel, ax in enumerate(fig.axes):
        heights = np.array([patch.get_height() for patch in ax.patches])
        np.testing.assert_allclose(heights[:11], softmax[pixel], atol=1e-6)
        np.testing.assert_allclose(heights[11:], sigmoid[pixel], atol=1e-6)
        sums = _numbers(ax.get_title().splitlines()[0])
        assert sums == pytest.approx([1.0, sigmoid[pixel].sum()], abs=0.005)
        (mark,) = [t for t in ax.texts if "argmax" in t.get_text()]
        assert mark.xy[0] == np.argmax(scores[pixel])
    _assert_readable(fig)


def _fake_runs(labels: np.ndarray) -> list[dict]:
    runs = []
    for arm, score in (("sigmoid + binary cross-entropy", 0.5), ("softmax + cross-entropy", 0.8)):
        for seed in (1, 0):
            maps = np.full_like(labels, seed if arm.startswith("sigmoid") else 10)
            runs.append({"arm": arm, "seed": seed, "test_mean_digit_iou": score + 0.1 * seed, "predictions": maps})
    return runs


def test_output_comparison_columns():
    images, labels = data.generate_labels(2, seed=3)
    fig = plots.plot_output_comparison(images, labels, _fake_runs(labels))
    assert len(fig.axes) == 2 * 4
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles[:2] == ["image", "truth"]
    assert "sigmoid + binary cross-entropy" in titles[2] and _numbers(titles[2])[0] == pytest.approx(0.55)
    assert "softmax + cross-entropy" in titles[3] and _numbers(titles[3])[0] == pytest.approx(0.85)
    shown = fig.axes[2].images[0].get_array()
    np.testing.assert_allclose(shown, plots.colorize(np.zeros_like(labels[0])))  # seed 0's predictions
    np.testing.assert_allclose(fig.axes[5].images[0].get_array(), plots.colorize(labels[1]))
    _assert_readable(fig)


def test_prediction_recorder_and_strip():
    keras.utils.set_random_seed(0)
    images, labels = data.generate_labels(4, seed=2)
    model = fcn.build_fcn(**TINY)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    recorder = PredictionRecorder(images[:2])
    model.fit(images[..., None].astype(np.float32), labels, batch_size=2, epochs=2, callbacks=[recorder], verbose=0)
    assert len(recorder.label_maps) == 2
    for maps in recorder.label_maps:
        assert maps.shape == (2, 64, 84) and maps.dtype == np.uint8
    np.testing.assert_array_equal(recorder.label_maps[-1], evaluate.predict(model, images[:2]))

    fig = plots.plot_prediction_strip(images[:2], labels[:2], recorder.label_maps)
    assert len(fig.axes) == 2 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "epoch 1", "epoch 2", "truth"]
    _assert_readable(fig)


@pytest.fixture
def confusion() -> np.ndarray:
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 50, (11, 11))
    np.fill_diagonal(matrix, 1000)
    matrix[10, 10] = 100_000
    return matrix


@pytest.mark.parametrize(("normalise", "axis"), [("true", 1), ("pred", 0)])
def test_confusion_normalises_rows_or_columns(confusion, normalise, axis):
    fig = plots.plot_confusion(confusion, normalise=normalise)
    shares = _heatmap(fig.axes[0])
    np.testing.assert_allclose(shares, confusion / confusion.sum(axis=axis, keepdims=True))
    assert ("TRUE" if normalise == "true" else "PREDICTED") in fig.axes[0].get_title()
    _assert_readable(fig)


def test_confusion_views_show_background_false_positives(confusion):
    fig = plots.plot_confusion_views(confusion)
    assert len(fig.axes) == 2
    rows, columns = (_heatmap(ax) for ax in fig.axes)
    np.testing.assert_allclose(rows.sum(axis=1), 1)
    np.testing.assert_allclose(columns.sum(axis=0), 1)
    np.testing.assert_allclose(columns[10, :10], confusion[10, :10] / confusion[:, :10].sum(axis=0))
    assert "TRUE" in fig.axes[0].get_title() and "PREDICTED" in fig.axes[1].get_title()
    _assert_readable(fig)


def test_confusion_refuses_other_normalisations(confusion):
    with pytest.raises(ValueError, match="normalise"):
        plots.plot_confusion(confusion, normalise="all")


def _history(epochs: int, top: float) -> dict:
    curve = list(np.linspace(0.2, top, epochs))
    return {"loss": curve[::-1], "digit_miou": curve, "val_loss": curve[::-1], "val_digit_miou": curve}


def _mean_labels(ax: plt.Axes) -> list[float]:
    return [float(t.get_text()) for t in ax.texts if re.fullmatch(r"\d\.\d{3}", t.get_text())]


def test_loss_comparison():
    runs = [
        {"arm": loss, "seed": seed, "budget": budget, "history": _history(budget, top), "test_mean_digit_iou": score}
        for budget in (2, 4)
        for loss, top in (("ce", 0.6), ("ce_dice", 0.7))
        for seed, score in ((0, top + budget / 100), (1, top + budget / 100 + 0.02))
    ]
    fig = plots.plot_loss_comparison({"experiment": "losses", "budgets": [2, 4], "runs": runs})
    assert len(fig.axes) == 2
    curves = [line for line in fig.axes[0].lines if len(line.get_xdata()) == 4]
    assert len(curves) == 4  # a line per loss and seed at the longest budget
    assert sorted(_mean_labels(fig.axes[1])) == pytest.approx(sorted([0.63, 0.73, 0.65, 0.75]))
    assert len(fig.axes[1].collections) == 4  # a dot cloud per loss and budget
    _assert_readable(fig)


def _variant_result() -> dict:
    runs = [
        {"arm": arm, "seed": seed, "history": _history(3, top), "test_mean_digit_iou": top + 0.01 * seed}
        for arm, top in (("fcn32", 0.5), ("fcn16", 0.6), ("fcn8", 0.7))
        for seed in (0, 1, 2)
    ]
    return {"experiment": "variants", "epochs": 3, "runs": runs}


def test_variant_comparison():
    fig = plots.plot_variant_comparison(_variant_result())
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 9
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["FCN-32", "FCN-16", "FCN-8"]
    assert _mean_labels(fig.axes[1]) == pytest.approx([0.51, 0.61, 0.71])
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["FCN-32", "FCN-16", "FCN-8"]
    _assert_readable(fig)


def _dot_positions(fig: plt.Figure) -> np.ndarray:
    fig.canvas.draw()  # a swarm places its dots when drawn
    return np.concatenate([c.get_offsets() for c in fig.axes[1].collections])


def test_variant_comparison_draws_the_same_dots_every_time():
    """The saved figure must not change between runs of the notebook that draws it (a jittered strip plot
    draws from numpy's global random state, which the first figure leaves advanced for the second)."""
    first = _dot_positions(plots.plot_variant_comparison(_variant_result()))
    second = _dot_positions(plots.plot_variant_comparison(_variant_result()))
    np.testing.assert_array_equal(first, second)
    scores = sorted(run["test_mean_digit_iou"] for run in _variant_result()["runs"])
    np.testing.assert_allclose(sorted(first[:, 1]), scores)  # one dot per run, at its score
    plt.close("all")


def test_error_map_colours_each_wrong_pixel_by_its_cause():
    from m2nist_seg.evaluation import analysis

    truth = np.full((64, 84), data.BACKGROUND, dtype=np.uint8)
    truth[10:20, 10:20] = 4
    predicted = truth.copy()
    predicted[15, 15] = 7
    causes = analysis.error_causes(truth[None], predicted[None])[0]
    fig = plots.plot_error_map(np.where(truth < 10, 255, 0).astype(np.uint8), truth, predicted, causes)
    errors = fig.axes[3].get_images()[0].get_array()
    wrong_digit = analysis.CAUSES.index("wrong digit")
    np.testing.assert_allclose(errors[15, 15], matplotlib.colors.to_rgb(plots.CAUSE_COLOURS[wrong_digit]))
    assert errors[0, 0, 0] == errors[0, 0, 1] == errors[0, 0, 2], "right pixels are grey"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(analysis.CAUSES)


def test_ink_edges_shows_the_values_and_lightens_faint_ink():
    image = np.zeros((64, 84), dtype=np.uint8)
    image[20:30, 20:24] = 200
    image[20:30, 24] = 60  # a faint rim, still ink
    labels = np.where(image > 0, 3, data.BACKGROUND).astype(np.uint8)
    fig = plots.plot_ink_edges(image, labels)
    written = sorted({t.get_text() for t in fig.axes[0].texts})
    assert written == ["200", "60"]
    mask = np.asarray(fig.axes[1].get_images()[0].get_array())
    crop = np.asarray(fig.axes[0].get_images()[0].get_array())
    faint, bright = mask[crop == 60], mask[crop == 200]
    assert (faint.min(axis=0) > bright.max(axis=0)).all(), "faint ink is drawn lighter"
    np.testing.assert_allclose(bright[0], plots.PALETTE[3], err_msg="bright ink in the digit's colour")


@pytest.mark.parametrize(
    ("environment", "saved"),
    [({}, False), ({"M2NIST_SAVE_FIGURES": "1"}, True), ({"M2NIST_SAVE_FIGURES": "1", "M2NIST_QUICK": "1"}, False)],
)
def test_key_figures_are_written_only_when_asked(tmp_path, monkeypatch, environment, saved):
    from m2nist_seg.core import settings

    for name in ("M2NIST_SAVE_FIGURES", "M2NIST_QUICK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(settings, "FIGURES_DIR", tmp_path)
    assert plots.save_key_figure(plt.figure(), "example") is None, "a cell ending in it must show no path"
    assert (tmp_path / "example.png").is_file() is saved


def test_figures_are_drawn_in_the_theme_and_leave_the_global_settings_alone():
    before = dict(matplotlib.rcParams)
    fig = plots.plot_counts(np.array([2, 3, 3, 1]), "digits", "Digits per image")
    assert dict(matplotlib.rcParams) == before
    ax = fig.axes[0]
    assert ax.yaxis.get_gridlines()[0].get_visible(), "seaborn's whitegrid style draws a grid"
    assert ax.xaxis.label.get_fontsize() == style.THEME["axes.labelsize"], "in the notebook context's sizes"


def test_importing_the_figures_loads_no_training_and_changes_no_matplotlib_setting():
    script = textwrap.dedent(
        """
        import json, sys
        import matplotlib, matplotlib.colors
        before = dict(matplotlib.rcParams), matplotlib.colors.to_rgb("k")
        import m2nist_seg.viz.plots
        after = dict(matplotlib.rcParams), matplotlib.colors.to_rgb("k")
        layers = ("m2nist_seg.training", "m2nist_seg.teaching", "m2nist_seg.deploy", "m2nist_seg.cli")
        print(json.dumps({
            "changed": sorted(key for key, value in before[0].items() if after[0][key] != value),
            "colour codes kept": before[1] == after[1],
            "loaded": sorted(name for name in sys.modules if name.startswith(layers)),
        }))
        """
    )
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert json.loads(result.stdout.splitlines()[-1]) == {"changed": [], "colour codes kept": True, "loaded": []}


def test_figures_compute_without_keras():
    for path in Path(plots.__file__).parent.glob("*.py"):
        nodes = list(ast.walk(ast.parse(path.read_text())))
        names = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name.split(".")[0] for name in names} & {"keras", "tensorflow"}, path.name


def test_worst_cases_show_each_conditions_worst_image_with_its_name_and_iou():
    truth = np.full((2, 64, 84), data.BACKGROUND, dtype=np.uint8)
    truth[:, 10:20, 10:20] = 4
    wrong = np.where(truth == 4, 7, truth).astype(np.uint8)
    images = np.where(truth == 4, 255, 0).astype(np.uint8)
    cases = {
        "binary pen": (images, truth, wrong, np.array([0.0, 0.5])),
        "rotate +10°": (images[::-1], truth, truth, np.array([1.0, 1.0])),
    }
    fig = plots.plot_worst_cases(cases, title="worst")
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["binary pen", "rotate +10°"]
    assert [ax.get_ylabel() for ax in axes[:, 2]] == ["IoU 0.00", "IoU 1.00"]
    np.testing.assert_array_equal(axes[0, 2].get_images()[0].get_array(), style.colorize(wrong[0]))
    with pytest.raises(M2NISTError, match="cases: found none"):
        plots.plot_worst_cases({})
