"""Metrics and losses: hand-computed cases, properties, and the streaming Keras metric."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from m2nist_seg import data
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.evaluation import metrics
from m2nist_seg.model import losses

BG = data.BACKGROUND


# --- hand-computed answers ------------------------------------------------------------------------------------


def test_tiny_label_maps_by_hand():
    y_true = np.array([[1, 1, BG], [2, BG, BG]])
    y_pred = np.array([[1, BG, BG], [2, 2, BG]])
    scores = metrics.iou_dice(y_true, y_pred)
    assert scores.iou[1] == pytest.approx(1 / 2)  # overlap 1, union 2
    assert scores.dice[1] == pytest.approx(2 / 3)  # 2·1 / (2 + 1)
    assert scores.iou[2] == pytest.approx(1 / 2)
    assert scores.dice[2] == pytest.approx(2 / 3)
    assert scores.iou[BG] == pytest.approx(2 / 4)
    assert np.isnan(scores.iou[[0, 3, 4, 5, 6, 7, 8, 9]]).all()
    assert scores.mean_digit_iou == pytest.approx(0.5)
    assert scores.mean_digit_dice == pytest.approx(2 / 3)


def test_absent_class_is_nan_and_ignored_by_the_mean():
    y_true = np.array([3, 3, BG, BG])
    scores = metrics.iou_dice(y_true, y_true)
    assert scores.iou[3] == 1.0 and scores.dice[3] == 1.0
    assert np.isnan(scores.iou[0]) and np.isnan(scores.dice[0])
    assert scores.mean_digit_iou == 1.0


def test_perfect_prediction():
    labels = data.generate_labels(5, seed=0)[1]
    scores = metrics.iou_dice(labels, labels)
    present = np.unique(labels)
    np.testing.assert_array_equal(scores.iou[present], 1.0)
    assert scores.mean_digit_iou == 1.0 and scores.mean_digit_dice == 1.0


def test_all_background_prediction_scores_zero_digit_iou():
    labels = data.generate_labels(5, seed=0)[1]
    predicted = np.full_like(labels, BG)
    scores = metrics.iou_dice(labels, predicted)
    assert scores.mean_digit_iou == 0.0 and scores.mean_digit_dice == 0.0
    assert (labels == predicted).mean() > 0.9, "high pixel accuracy, zero digit IoU"


def test_a_class_only_in_the_prediction_scores_zero():
    scores = metrics.iou_dice(np.array([BG, BG]), np.array([4, BG]))
    assert scores.iou[4] == 0.0 and scores.dice[4] == 0.0


def test_no_digits_at_all_gives_nan_mean():
    scores = metrics.iou_dice(np.array([BG]), np.array([BG]))
    assert math.isnan(scores.mean_digit_iou)


def test_confusion_matrix_by_hand():
    matrix = metrics.confusion_matrix(np.array([0, 0, 1, BG]), np.array([0, 1, 1, 0]))
    assert matrix.shape == (11, 11) and matrix.dtype == np.int64
    assert matrix[0, 0] == 1 and matrix[0, 1] == 1 and matrix[1, 1] == 1 and matrix[BG, 0] == 1
    assert matrix.sum() == 4


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="equal shapes"):
        metrics.confusion_matrix(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="expected 0–10"):
        metrics.confusion_matrix(np.array([11]), np.array([0]))
    with pytest.raises(ValueError, match="integer label maps"):
        metrics.confusion_matrix(np.zeros(3), np.zeros(3))


def test_per_image_scores_by_hand():
    y_true = np.array([[[1, 1, BG]], [[BG, BG, BG]], [[2, 2, 3]]])
    y_pred = np.array([[[1, BG, BG]], [[BG, BG, BG]], [[2, 2, 2]]])
    iou, dice = metrics.per_image_scores(y_true, y_pred)
    np.testing.assert_allclose(iou[[0, 2]], [1 / 2, (2 / 3 + 0) / 2])
    np.testing.assert_allclose(dice[[0, 2]], [2 / 3, (4 / 5 + 0) / 2])
    assert np.isnan(iou[1]) and np.isnan(dice[1])


def test_report_table_and_json():
    y_true = np.array([[1, 1, BG], [2, BG, BG]])
    y_pred = np.array([[1, BG, BG], [2, 2, BG]])
    table = metrics.report(y_true, y_pred)
    assert list(table.columns) == ["iou", "dice", "pixel_share", "support"]
    assert list(table.index) == [str(d) for d in range(10)] + ["background"]
    assert table.loc["1", "support"] == 2 and table.loc["1", "pixel_share"] == pytest.approx(2 / 6)
    decoded = json.loads(metrics.report_to_json(table))
    assert decoded["1"]["iou"] == pytest.approx(0.5)
    assert decoded["0"]["iou"] is None
    assert decoded["background"]["support"] == 3


# --- properties -----------------------------------------------------------------------------------------------

label_maps = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        arrays(np.uint8, (n, 3, 5), elements=st.integers(0, 10)),
        arrays(np.uint8, (n, 3, 5), elements=st.integers(0, 10)),
    )
)


@settings(max_examples=150, deadline=None)
@given(label_maps)
def test_iou_below_dice_within_unit_interval(pair):
    scores = metrics.iou_dice(*pair)
    present = ~np.isnan(scores.iou)
    assert (np.isnan(scores.dice) == ~present).all()
    assert (scores.iou[present] >= 0).all() and (scores.dice[present] <= 1).all()
    assert (scores.iou[present] <= scores.dice[present] + 1e-12).all()


@settings(max_examples=150, deadline=None)
@given(label_maps)
def test_dice_is_a_function_of_iou(pair):
    scores = metrics.iou_dice(*pair)
    present = ~np.isnan(scores.iou)
    np.testing.assert_allclose(scores.dice[present], 2 * scores.iou[present] / (1 + scores.iou[present]))


@settings(max_examples=100, deadline=None)
@given(label_maps, st.randoms(use_true_random=False))
def test_permuting_images_changes_nothing(pair, random):
    y_true, y_pred = pair
    order = list(range(len(y_true)))
    random.shuffle(order)
    a, b = metrics.iou_dice(y_true, y_pred), metrics.iou_dice(y_true[order], y_pred[order])
    np.testing.assert_array_equal(a.iou, b.iou)
    np.testing.assert_array_equal(a.dice, b.dice)


@settings(max_examples=100, deadline=None)
@given(label_maps)
def test_confusion_matrix_sums_to_pixel_count(pair):
    y_true, y_pred = pair
    matrix = metrics.confusion_matrix(y_true, y_pred)
    assert matrix.sum() == y_true.size
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(y_true.ravel(), minlength=11))
    np.testing.assert_array_equal(matrix.sum(axis=0), np.bincount(y_pred.ravel(), minlength=11))


@settings(max_examples=60, deadline=None)
@given(label_maps)
def test_per_image_scores_match_iou_dice_image_by_image(pair):
    y_true, y_pred = pair
    iou, dice = metrics.per_image_scores(y_true, y_pred)
    for n in range(len(y_true)):
        expected = metrics.iou_dice(y_true[n], y_pred[n])
        np.testing.assert_allclose(iou[n], expected.mean_digit_iou, equal_nan=True)
        np.testing.assert_allclose(dice[n], expected.mean_digit_dice, equal_nan=True)


# --- the streaming Keras metric -------------------------------------------------------------------------------


def one_hot_scores(labels, rng):
    """Class scores (N, H, W, 11) whose argmax is ``labels``."""
    scores = rng.random((*labels.shape, 11)).astype(np.float32)
    np.put_along_axis(scores, labels[..., None].astype(np.intp), 2.0, axis=-1)
    return scores


def test_streaming_metric_agrees_with_numpy_reference():
    rng = np.random.default_rng(0)
    _, y_true = data.generate_labels(40, seed=5)
    noisy = np.where(rng.random(y_true.shape) < 0.03, rng.integers(0, 11, y_true.shape), y_true).astype(np.uint8)
    metric = metrics.MeanDigitIoU()
    for start in range(0, 40, 7):
        metric.update_state(y_true[start : start + 7], one_hot_scores(noisy[start : start + 7], rng))
    expected = metrics.iou_dice(y_true, noisy).mean_digit_iou
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    assert expected < 1.0
    metric.reset_state()
    assert int(np.asarray(metric.matrix).sum()) == 0


def test_streaming_metric_skips_absent_classes():
    metric = metrics.MeanDigitIoU()
    y_true = np.array([[[3, 3, BG]]])
    metric.update_state(y_true, one_hot_scores(y_true, np.random.default_rng(0)))
    assert float(metric.result()) == 1.0


def test_streaming_metric_in_evaluate_matches_reference():
    import keras

    rng = np.random.default_rng(1)
    _, y_true = data.generate_labels(12, seed=6)
    predicted = np.where(rng.random(y_true.shape) < 0.05, 3, y_true).astype(np.uint8)
    scores = one_hot_scores(predicted, rng)
    inputs = keras.Input((64, 84, 11))
    identity = keras.Model(inputs, keras.layers.Identity()(inputs))
    identity.compile(loss=losses.SoftDiceLoss(), metrics=[metrics.MeanDigitIoU()])
    result = identity.evaluate(scores, y_true.astype(np.int32), batch_size=5, verbose=0, return_dict=True)
    assert result["digit_miou"] == pytest.approx(metrics.iou_dice(y_true, predicted).mean_digit_iou, abs=1e-6)


# --- losses ---------------------------------------------------------------------------------------------------


def test_class_weights_use_only_the_given_split():
    labels = np.array([[0, BG, BG, BG]])
    weights = losses.class_weights(labels)
    share = np.bincount(labels.ravel(), minlength=11) / labels.size
    assert (share * weights).sum() == pytest.approx(1.0)
    assert weights[0] > weights[BG]
    assert weights[5] == weights.max(), "classes absent from training get the largest present weight"


def test_dice_loss_is_zero_for_a_perfect_prediction_and_one_for_all_background():
    _, labels = data.generate_labels(4, seed=0)
    perfect = data.labels_to_masks(labels).astype(np.float32)
    background = data.labels_to_masks(np.full_like(labels, BG)).astype(np.float32)
    dice = losses.SoftDiceLoss()
    assert float(dice(labels, perfect)) == pytest.approx(0.0, abs=1e-5)
    assert float(dice(labels, background)) == pytest.approx(1.0, abs=1e-3)


def test_weighted_cross_entropy_by_hand():
    y_true = np.array([[0, BG]])
    y_pred = np.full((1, 2, 11), 0.01, dtype=np.float32)
    y_pred[0, 0, 0] = y_pred[0, 1, BG] = 0.9
    weights = [2.0] + [1.0] * 9 + [0.5]
    loss = losses.WeightedCrossEntropy(weights)(y_true, y_pred)
    assert float(loss) == pytest.approx((2.0 * -np.log(0.9) + 0.5 * -np.log(0.9)) / 2, rel=1e-5)
    plain = losses.WeightedCrossEntropy()(y_true, y_pred)
    assert float(plain) == pytest.approx(-np.log(0.9), rel=1e-5)


def test_combined_loss_is_the_weighted_sum():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 11, (2, 8, 8))
    logits = rng.normal(size=(2, 8, 8, 11)).astype(np.float32)
    y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ce, dice = losses.WeightedCrossEntropy(), losses.SoftDiceLoss()
    combined = losses.CombinedLoss(ce_weight=0.5, dice_weight=2.0)
    expected = 0.5 * float(ce(y_true, y_pred)) + 2.0 * float(dice(y_true, y_pred))
    assert float(combined(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "loss",
    [losses.SoftDiceLoss(), losses.WeightedCrossEntropy([0.5] * 11), losses.CombinedLoss([1.0] * 11, 0.3, 0.7)],
)
def test_losses_serialise(loss):
    import keras

    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


def test_scores_of_a_float_confusion_matrix_with_entries_below_one():
    """Soft (probability-weighted) confusion matrices hold fractions of a pixel; IoU is still tp / union."""
    matrix = np.zeros((11, 11))
    matrix[3, 3], matrix[3, 5], matrix[5, 3] = 0.2, 0.1, 0.1
    matrix[10, 10] = 0.5
    scores = metrics.scores_from_confusion(matrix)
    assert scores.iou[3] == pytest.approx(0.2 / 0.4)
    assert scores.dice[3] == pytest.approx(0.4 / 0.6)
    assert scores.iou[5] == 0 and np.isnan(scores.iou[7])


@pytest.mark.parametrize("bad", [11, -1])
def test_per_image_scores_refuse_labels_out_of_range(bad):
    truth = np.full((2, 4, 4), 10)
    predicted = truth.copy()
    predicted[1, 0, 0] = bad
    with pytest.raises(
        M2NISTError, match=rf"y_pred: found values in \[{min(bad, 10)}, {max(bad, 10)}\], expected 0–10"
    ):
        metrics.per_image_scores(truth, predicted)
