"""The robustness suite: each perturbation on hand-built images with known answers, the conditions, the table."""

import numpy as np
import pytest

from m2nist_seg import data
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data import strokes
from m2nist_seg.evaluation import robustness
from m2nist_seg.model import build_fcn
from m2nist_seg.teaching import explore

BG = data.BACKGROUND
NOISY = {name for name in robustness.CONDITIONS if name.startswith(("gaussian", "salt"))}


def blank(n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` empty images and label maps, uint8 (n, 64, 84)."""
    return np.zeros((n, 64, 84), dtype=np.uint8), np.full((n, 64, 84), BG, dtype=np.uint8)


def line(images, labels, row, cols, value, label):
    """Ink a one-pixel-wide horizontal line in image 0."""
    images[0, row, cols] = value
    labels[0, row, cols] = label


@pytest.fixture(scope="module")
def test_images():
    return data.render(data.sample_layout(5, seed=3, pool="test"))


def test_thicker_strokes_give_the_rim_the_nearest_strokes_label():
    images, labels = blank()
    line(images, labels, 10, slice(5, 16), 200, 3)
    line(images, labels, 13, slice(5, 16), 90, 7)
    thick, thick_labels = robustness.thicker_strokes(images, labels, pixels=1)
    expected = np.zeros((64, 84), dtype=np.uint8)
    expected[9:12, 5:16] = 200  # the line and the rows above and below it
    expected[10, [4, 16]] = 200  # one pixel past each end (a disk of radius 1 is a plus sign)
    expected[12:15, 5:16] = 90  # row 12 is one pixel from line 7 (90) and two from line 3 (out of reach)
    expected[13, [4, 16]] = 90
    np.testing.assert_array_equal(thick[0], expected)
    expected_labels = np.full((64, 84), BG, dtype=np.uint8)
    expected_labels[9:12, 5:16] = 3
    expected_labels[10, [4, 16]] = 3
    expected_labels[12:15, 5:16] = 7
    expected_labels[13, [4, 16]] = 7
    np.testing.assert_array_equal(thick_labels[0], expected_labels)
    assert thick.dtype == thick_labels.dtype == np.uint8


def test_thinner_strokes_drop_what_loses_its_ink():
    images, labels = blank()
    images[0, 10:13, 20:25], labels[0, 10:13, 20:25] = 255, 2  # a 3×5 block
    line(images, labels, 30, slice(20, 30), 255, 5)  # a one-pixel line: eroded away
    thin, thin_labels = robustness.thinner_strokes(images, labels)
    assert set(zip(*np.nonzero(thin[0]))) == {(11, 21), (11, 22), (11, 23)}
    assert (thin[0, 11, 21:24] == 255).all()
    assert set(zip(*np.nonzero(thin_labels[0] != BG))) == {(11, 21), (11, 22), (11, 23)}
    assert (thin_labels[0, 11, 21:24] == 2).all()


def test_the_binary_pen_keeps_strong_ink_and_drops_faint_ink():
    images, labels = blank()
    images[0, 5, :6] = [0, 1, 127, 128, 200, 255]
    labels[0, 5, 1:6] = 5
    pen, pen_labels = robustness.binary_pen(images, labels)
    np.testing.assert_array_equal(pen[0, 5, :6], [0, 0, 0, 255, 255, 255])
    np.testing.assert_array_equal(pen_labels[0, 5, :6], [BG, BG, BG, 5, 5, 5])
    assert pen.sum() == 3 * 255


def test_zhang_suen_thinning_on_known_shapes():
    one_line = np.zeros((7, 12), dtype=bool)
    one_line[3, 1:11] = True
    np.testing.assert_array_equal(strokes.thin(one_line), one_line)  # already one pixel wide
    square = np.zeros((7, 7), dtype=bool)
    square[2:5, 2:5] = True
    np.testing.assert_array_equal(np.argwhere(strokes.thin(square)), [[3, 3]])  # a 3×3 square: its centre
    bar = np.zeros((7, 12), dtype=bool)
    bar[2:5, 1:11] = True
    skeleton = strokes.thin(bar)
    assert skeleton[3].any() and not skeleton[[0, 1, 2, 4, 5, 6]].any()  # the middle row only
    cols = np.flatnonzero(skeleton[3])
    np.testing.assert_array_equal(cols, np.arange(cols[0], cols[-1] + 1))  # one connected run


def test_board_strokes_draw_a_line_with_the_boards_pen():
    images, labels = blank()
    line(images, labels, 10, slice(5, 16), 255, 4)
    ink, ink_labels = robustness.board_strokes(images, labels, width=4)
    # A pen 4 px wide: 255 up to 1.25 px from the line, 255·((2 − d) / 1.5 + 0.5) beyond, nothing from 2.75 px.
    assert (ink[0, 9:12, 5:16] == 255).all() and (ink[0, 10, [4, 16]] == 255).all()  # d = 0, 1
    assert (ink[0, [8, 12], 5:16] == 128).all() and (ink[0, 10, [3, 17]] == 128).all()  # d = 2
    assert ink[0, 9, 4] == 227  # d = √2
    assert not ink[0, [7, 13]].any() and ink[0, 10, 2] == 0  # d = 3
    np.testing.assert_array_equal(ink_labels[0] != BG, ink[0] > 0)
    assert set(np.unique(ink_labels[0])) == {4, BG}
    board = explore.DrawingBoard()  # the explorer's own pen draws the same stroke
    board.stroke([(10, 5), (10, 15)])
    np.testing.assert_array_equal(robustness.board_strokes(images, labels)[0][0], board.image)


def test_board_strokes_label_by_the_nearest_skeleton_and_drop_faint_ink():
    images, labels = blank()
    line(images, labels, 10, slice(5, 30), 255, 1)
    line(images, labels, 16, slice(5, 30), 255, 8)
    line(images, labels, 40, slice(5, 30), 100, 6)  # fainter than the threshold: not drawn
    ink, ink_labels = robustness.board_strokes(images, labels, width=4)
    assert (ink_labels[0, 11:13, 10] == 1).all() and (ink_labels[0, 14:16, 10] == 8).all()
    assert ink[0, 13, 10] == 0 and ink_labels[0, 13, 10] == BG  # 3 px from both lines: past the pen
    assert not ink[0, 35:].any() and (ink_labels[0, 35:] == BG).all()


def test_noise_leaves_the_mask_alone_and_is_seeded(test_images):
    images, labels = test_images
    for perturb, level in ((robustness.gaussian_noise, {"sd": 25}), (robustness.salt_and_pepper, {"fraction": 0.1})):
        noisy, noisy_labels = perturb(images, labels, **level, seed=1)
        assert noisy.dtype == np.uint8 and noisy.shape == images.shape
        np.testing.assert_array_equal(noisy_labels, labels)
        np.testing.assert_array_equal(perturb(images, labels, **level, seed=1)[0], noisy)
        assert not np.array_equal(perturb(images, labels, **level, seed=2)[0], noisy)
    np.testing.assert_array_equal(robustness.gaussian_noise(images, labels, sd=0)[0], images)


def test_gaussian_noise_has_the_requested_spread_and_clips():
    images = np.full((10, 64, 84), 128, dtype=np.uint8)
    labels = np.full(images.shape, BG, dtype=np.uint8)
    noisy = robustness.gaussian_noise(images, labels, sd=25)[0].astype(np.float64)
    assert abs(noisy.mean() - 128) < 0.5 and abs(noisy.std() - 25) < 0.5
    dark = robustness.gaussian_noise(np.zeros_like(images), labels, sd=25)[0]
    assert dark.min() == 0 and 0.45 < (dark == 0).mean() < 0.55  # negative noise clips to 0: about half


def test_salt_and_pepper_hits_the_requested_share():
    images = np.full((10, 64, 84), 100, dtype=np.uint8)
    labels = np.full(images.shape, BG, dtype=np.uint8)
    noisy = robustness.salt_and_pepper(images, labels, fraction=0.05)[0]
    assert set(np.unique(noisy)) == {0, 100, 255}
    assert abs((noisy != 100).mean() - 0.05) < 0.003
    assert abs((noisy == 255).sum() / (noisy != 100).sum() - 0.5) < 0.05
    np.testing.assert_array_equal(robustness.salt_and_pepper(images, labels, fraction=0)[0], images)


def test_a_shift_moves_ink_and_labels_by_whole_pixels():
    images, labels = blank()
    images[0, 10:13, 20:23], labels[0, 10:13, 20:23] = [[10, 20, 30], [40, 50, 60], [70, 80, 90]], 6
    images[0, 50, 82:84], labels[0, 50, 82:84] = 255, 1
    moved, moved_labels = robustness.shift(images, labels, rows=3, cols=-2)
    expected, expected_labels = blank()
    expected[0, 13:16, 18:21], expected_labels[0, 13:16, 18:21] = images[0, 10:13, 20:23], 6
    expected[0, 53, 80:82], expected_labels[0, 53, 80:82] = 255, 1
    np.testing.assert_array_equal(moved, expected)
    np.testing.assert_array_equal(moved_labels, expected_labels)
    gone, gone_labels = robustness.shift(images, labels, rows=0, cols=4)
    assert not gone[0, 50].any() and (gone_labels[0, 50] == BG).all()  # pushed past the right border


def test_a_half_turn_flips_the_image_and_a_scale_stretches_it_about_the_centre():
    images, labels = blank()
    images[0, 3:9, 5:7], labels[0, 3:9, 5:7] = 200, 7
    turned, turned_labels = robustness.rotate(images, labels, degrees=180)
    np.testing.assert_array_equal(turned, images[:, ::-1, ::-1])
    np.testing.assert_array_equal(turned_labels, labels[:, ::-1, ::-1])
    images, labels = blank()
    images[0, 31:33, 51:53], labels[0, 31:33, 51:53] = 150, 4  # 10 px right of the centre (31.5, 41.5)
    quarter, quarter_labels = robustness.rotate(images, labels, degrees=90)
    expected, expected_labels = blank()
    expected[0, 21:23, 41:43], expected_labels[0, 21:23, 41:43] = 150, 4  # anticlockwise: 10 px above it
    np.testing.assert_array_equal(quarter, expected)
    np.testing.assert_array_equal(quarter_labels, expected_labels)
    images, labels = blank()
    images[0, 24:40, 34:50], labels[0, 24:40, 34:50] = 100, 9  # 16×16, centred on (31.5, 41.5)
    big, big_labels = robustness.scale(images, labels, factor=2)
    # Output row r samples row (r − 31.5) / 2 + 31.5: row 15 → 23.25 (¼ ink), 16 → 23.75 (¾), 17 → 24.25 (all)…
    np.testing.assert_array_equal(big[0, 13:51, 41], [0, 0, 25, 75, *[100] * 30, 75, 25, 0, 0])
    np.testing.assert_array_equal(big_labels[0, 13:51, 41], [BG, BG, *[9] * 34, BG, BG])  # faint rim: digit 9


def test_every_condition_but_noise_keeps_digit_pixels_equal_to_ink(test_images):
    split = data.Split(*test_images)
    for name, condition in robustness.CONDITIONS.items():
        assert condition.gated == (name not in NOISY), name
        perturbed = condition.make(split, 0)
        if perturbed is not None and condition.gated:
            np.testing.assert_array_equal(perturbed.images > 0, perturbed.labels != BG, err_msg=name)


def test_three_overlapping_digits_overlap_and_reproduce():
    split, layout = robustness.overlapping_three(6, seed=2)
    assert split.images.shape == split.labels.shape == (6, 64, 84)
    assert (layout.digit >= 0).all() and np.isin(layout.digit, data.digit_pool("test")).all()
    alone = []
    for slot in range(3):
        digit = np.where(np.arange(3) == slot, layout.digit, -1)
        alone.append(data.render(data.Layout(digit, layout.row, layout.col))[0] > 0)
    for a, b in ((0, 1), (1, 2)):
        assert ((alone[a] & alone[b]).sum(axis=(1, 2)) >= 10).all()
    np.testing.assert_array_equal(robustness.overlapping_three(6, seed=2)[0].images, split.images)
    assert len(robustness.overlapping_three(0)[0]) == 0


def test_real_samples_load_or_are_skipped(tmp_path):
    assert robustness.real_samples(tmp_path) is None
    if not robustness.SAMPLE_DIR.is_dir():
        pytest.skip(f"real M2NIST samples not found in {robustness.SAMPLE_DIR}")
    split = robustness.real_samples()
    assert split.images.shape == split.labels.shape == (10, 64, 84) and split.images.dtype == np.uint8
    np.testing.assert_array_equal(split.images > 0, split.labels != BG)


def test_bad_input_gives_one_line_naming_the_argument(test_images):
    images, labels = test_images
    cases = [
        (lambda: robustness.thicker_strokes(images, labels, pixels=0), "pixels: found 0"),
        (lambda: robustness.gaussian_noise(images, labels, sd=-1), "sd: found -1"),
        (lambda: robustness.salt_and_pepper(images, labels, fraction=1.5), "fraction: found 1.5"),
        (
            lambda: robustness.shift(images, labels, rows=1.5, cols=0),
            "rows: found 1.5, expected a whole number in [-64, 64]",
        ),
        (lambda: robustness.binary_pen(images, labels[:2]), "labels: found shape (2, 64, 84)"),
        (lambda: robustness.rotate(images, labels.astype(np.float32), 5), "labels: found dtype float32"),
        (lambda: robustness.scale(images[:, :10], labels[:, :10], 1.1), "images: found shape (5, 10, 84)"),
    ]
    for call, message in cases:
        with pytest.raises(M2NISTError) as raised:
            call()
        assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@pytest.fixture(scope="module")
def tiny_model():
    return build_fcn("fcn8", widths=(8, 8, 16, 16, 16), convs_per_block=(1, 1, 1, 1, 1), decoder_width=16)


def test_the_table_has_one_row_per_condition_with_scores_in_0_1(tiny_model, test_images):
    split = data.Split(*(array[:3] for array in test_images))
    table = robustness.robustness_table(tiny_model, split)
    assert list(table.index) == list(robustness.CONDITIONS)
    real = 10 if robustness.real_samples() is not None else 0
    assert table["images"].to_dict() == {**dict.fromkeys(robustness.CONDITIONS, 3), "real Kaggle samples": real}
    scored = table[table["images"] > 0]
    for column in ("mean_digit_iou", "worst_digit_iou", "pixel_accuracy"):
        assert scored[column].between(0, 1).all(), column
    gated = scored["gated_mean_digit_iou"]
    assert gated[list(NOISY)].isna().all() and gated.drop(index=list(NOISY)).between(0, 1).all()
    assert (scored["note"] == "").all()


def test_the_split_conditions_are_every_condition_but_the_real_samples():
    assert list(robustness.SPLIT_CONDITIONS) == [c for c in robustness.CONDITIONS if c != "real Kaggle samples"]
    assert all(robustness.SPLIT_CONDITIONS[c] is robustness.CONDITIONS[c] for c in robustness.SPLIT_CONDITIONS)


def test_a_missing_sample_folder_skips_its_row_with_a_note(tiny_model, test_images, monkeypatch, tmp_path):
    monkeypatch.setattr(robustness, "SAMPLE_DIR", tmp_path)
    conditions = {name: robustness.CONDITIONS[name] for name in ("clean", "real Kaggle samples")}
    table = robustness.robustness_table(tiny_model, data.Split(*test_images), conditions=conditions)
    row = table.loc["real Kaggle samples"]
    assert row["images"] == 0 and row["note"].startswith("skipped") and np.isnan(row["mean_digit_iou"])
    assert table.loc["clean", "images"] == 5 and table.loc["clean", "note"] == ""


def test_worst_cases_are_the_lowest_scoring_images(tiny_model, test_images):
    conditions = {name: robustness.CONDITIONS[name] for name in ("clean", "binary pen")}
    found = robustness.worst_cases(tiny_model, data.Split(*test_images), count=2, conditions=conditions)
    assert set(found) == set(conditions)
    for cases in found.values():
        assert cases.images.shape == cases.labels.shape == cases.predicted.shape == (2, 64, 84)
        assert np.all(np.diff(cases.iou) >= 0) and cases.index.shape == (2,)
    np.testing.assert_array_equal(found["clean"].images, test_images[0][found["clean"].index])


def test_worst_cases_leave_missing_conditions_out_and_check_count(tiny_model, test_images, monkeypatch, tmp_path):
    monkeypatch.setattr(robustness, "SAMPLE_DIR", tmp_path)
    conditions = {name: robustness.CONDITIONS[name] for name in ("thinner strokes -1 px", "real Kaggle samples")}
    split = data.Split(*test_images)
    found = robustness.worst_cases(tiny_model, split, count=3, conditions=conditions)
    assert list(found) == ["thinner strokes -1 px"] and found["thinner strokes -1 px"].iou.shape == (3,)
    with pytest.raises(M2NISTError, match="^count: found 0"):
        robustness.worst_cases(tiny_model, split, count=0, conditions=conditions)
