"""The explorer's logic without a browser: pen and eraser, composer, debouncing, views, skip view, model loading."""

import keras
import numpy as np
import pytest

from m2nist_seg import data
from m2nist_seg.core import settings
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.model import build_fcn
from m2nist_seg.teaching import explore


@pytest.fixture(scope="module")
def predictor():
    return explore.Predictor(evaluate.load_model(settings.SHIPPED_MODEL))


@pytest.fixture(scope="module")
def composed():
    """Two overlapping test digits: slot 0's box ends at column 36, slot 1's starts at 28."""
    composer = explore.Composer()
    composer.choose(0, digit_class=3, index=5, row=10, col=9)
    composer.choose(1, digit_class=7, index=2, row=30, col=0)
    return composer


def test_a_pen_dot_is_round_with_soft_edges():
    board = explore.DrawingBoard()
    board.stroke([(10, 20)], width=4)
    image = board.image
    assert image.dtype == np.uint8 and image.shape == (64, 84)
    # Full ink up to 2 − 0.75 px from the centre, then a linear fade over 1.5 px: 255 · ((2 − d) / 1.5 + 0.5).
    assert image[10, 20] == image[9, 20] == image[10, 21] == 255  # d = 0 and 1
    assert image[11, 21] == 227  # d = √2
    assert image[12, 20] == image[10, 18] == 128  # d = 2: half ink, on the pen's nominal edge
    assert image[13, 20] == image[10, 23] == 0  # d = 3: past the fade
    np.testing.assert_array_equal(image[5:16, 15:26], image[5:16, 15:26].T)  # symmetric about the dot


def test_a_stroke_inks_a_line_and_strokes_combine_by_maximum():
    board = explore.DrawingBoard()
    board.stroke([(10, 5), (10, 15)], width=4)
    np.testing.assert_array_equal(board.image[9:12, 5:16], 255)
    np.testing.assert_array_equal(board.image[[8, 12], 5:16], 128)
    np.testing.assert_array_equal(board.image[13, :], 0)
    np.testing.assert_array_equal(board.image[:, 18:], 0)
    before = board.image.copy()
    board.stroke([(40, 40), (50, 60)], width=2)
    changed = board.image != before
    assert changed.any() and not changed[:30].any()
    np.testing.assert_array_equal(board.image[:30], before[:30])


def test_the_eraser_removes_ink_under_it_and_clear_blanks_the_image():
    board = explore.DrawingBoard()
    board.stroke([(20, 10), (20, 70)], width=4)
    board.stroke([(10, 40), (30, 40)], width=6, erase=True)
    np.testing.assert_array_equal(board.image[18:23, 38:43], 0)
    np.testing.assert_array_equal(board.image[19:22, 10:30], 255)
    np.testing.assert_array_equal(board.image[19:22, 44:70], 255)
    board.clear()
    np.testing.assert_array_equal(board.image, np.zeros((64, 84), dtype=np.uint8))


def test_composed_digits_follow_the_recipe_exactly(composed):
    digits, classes = data.mnist_digits()
    test_pool = data.digit_pool("test")
    chosen = composed.digit[:2]
    assert list(classes[chosen]) == [3, 7] and np.isin(chosen, test_pool).all()
    assert chosen[0] == test_pool[classes[test_pool] == 3][5]
    layout = data.Layout(
        digit=np.array([[chosen[0], chosen[1], -1]]), row=np.array([[10, 30, 0]]), col=np.array([[9, 28, 56]])
    )
    images, labels = data.render(layout)
    np.testing.assert_array_equal(composed.image, images[0])
    np.testing.assert_array_equal(composed.labels, labels[0])
    overlap = composed.labels[:, 28:37]
    assert {3, 7} <= set(np.unique(composed.labels)) and (overlap != data.BACKGROUND).any()


def test_removing_a_slot_and_bad_choices():
    composer = explore.Composer()
    composer.choose(0, 1, 0, 0, 0)
    composer.choose(2, 5, 99, 36, 0)
    composer.remove(0)
    layout = data.Layout(
        digit=np.array([[-1, -1, composer.digit[2]]]), row=np.array([[0, 0, 36]]), col=np.array([[0, 28, 56]])
    )
    np.testing.assert_array_equal(composer.image, data.render(layout)[0][0])
    for bad in [
        (3, 1, 0, 0, 0),
        (2, 1, 0, 0, 1),
        (0, 10, 0, 0, 0),
        (0, 1, 100, 0, 0),
        (0, 1, 0, 37, 0),
        (1, 1, 0, 0, 10),
    ]:
        with pytest.raises(M2NISTError, match="expected 0–"):
            composer.choose(*bad)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_debouncer_fires_once_after_a_burst():
    clock, calls = FakeClock(), []
    debouncer = explore.Debouncer(lambda: calls.append(clock.now), delay=0.15, clock=clock)
    assert debouncer.poll() is None
    for clock.now in (0.0, 0.05, 0.1):
        debouncer.trigger()
    clock.now = 0.2
    assert debouncer.poll() == pytest.approx(0.05) and calls == []
    clock.now = 0.25
    assert debouncer.poll() is None and calls == [0.25]
    clock.now = 1.0
    assert debouncer.poll() is None and calls == [0.25]


def test_flush_runs_a_pending_change_now_and_nothing_otherwise():
    calls = []
    debouncer = explore.Debouncer(lambda: calls.append(1), clock=FakeClock())
    debouncer.flush()
    assert calls == []
    debouncer.trigger()
    debouncer.flush()
    debouncer.flush()
    assert calls == [1]


def test_a_view_of_a_composed_image(predictor, composed):
    view = predictor.view(composed.image, composed.labels)
    plain, gated = evaluate.predict_both(predictor.model, composed.image[None])
    np.testing.assert_array_equal(view.plain, plain[0])
    np.testing.assert_array_equal(view.gated, gated[0])
    probabilities = keras.ops.convert_to_numpy(predictor.model(composed.image[None, ..., None].astype(np.float32)))
    np.testing.assert_allclose(view.confidence, probabilities[0].max(-1), atol=1e-5)
    expected = metrics.iou_dice(composed.labels, view.plain)
    np.testing.assert_array_equal(view.scores.iou, expected.iou)
    np.testing.assert_array_equal(view.scores.dice, expected.dice)
    table = explore.score_table(view.scores)
    assert {"3", "7", "background"} <= set(table.index)
    assert table.loc["3", "IoU"] == round(expected.iou[3], 3)
    assert predictor.view(composed.image).scores is None


def test_switching_off_pool3_equals_zeroing_its_score_layer(predictor, composed):
    view = predictor.view(composed.image, composed.labels)
    np.testing.assert_array_equal(view.skips["full FCN-8"], view.plain)
    assert (view.skips["no pool3"] != view.plain).any()
    zeroed = keras.models.clone_model(predictor.model)
    zeroed.set_weights(predictor.model.get_weights())
    layer = zeroed.get_layer("decoder_score_pool3")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
    np.testing.assert_array_equal(view.skips["no pool3"], evaluate.predict(zeroed, composed.image[None])[0])
    copy = predictor.skip_models["no pool3, no pool4"]
    for name in ("decoder_score_pool3", "decoder_score_pool4"):
        assert not any(np.any(w) for w in copy.get_layer(name).get_weights())
    assert any(np.any(w) for w in predictor.model.get_layer("decoder_score_pool3").get_weights())


def test_the_skip_view_needs_an_fcn8():
    plain = explore.Predictor(build_fcn("fcn32", widths=(4, 4, 4, 4, 4), decoder_width=4))
    assert plain.skip_models == {} and "needs an FCN-8 model built by build_fcn" in plain.skip_note
    assert plain.view(np.zeros((64, 84), dtype=np.uint8)).skips == {}


@pytest.mark.parametrize("contents", [None, b"not a zip file", b"PK\x03\x04 truncated"])
def test_a_bad_model_path_gives_one_clear_line(tmp_path, contents):
    path = tmp_path / "learner.keras"
    if contents is not None:
        path.write_bytes(contents)
    predictor, message = explore.load_predictor(path)
    assert predictor is None
    assert message.startswith("could not load learner.keras: ") and "\n" not in message


def test_the_shipped_model_loads_with_a_relative_name():
    predictor, message = explore.load_predictor(settings.SHIPPED_MODEL)
    assert predictor is not None and message == "model 'fcn8' from models/fcn8_m2nist.keras"
