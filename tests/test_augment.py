"""Augmentation of training batches (m2nist_seg.data.augment): each change, masks that follow the ink, seeds."""

from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data import BACKGROUND
from m2nist_seg.data.augment import DEFAULT_RECIPE, RECIPES, Augmentation, augment_batch, follow_ink

NOTHING = Augmentation(affine=0, thicker=0, thinner=0, binary_pen=0, contrast=0, noise=0)
SEED = tf.constant([3, 4])


def batch(image: np.ndarray, labels: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.constant(image[None, ..., None], tf.float32), tf.constant(labels[None], tf.int32)


def line() -> tuple[np.ndarray, np.ndarray]:
    """A 9×9 image with a vertical stroke of a 7 in column 4, rows 2–6, ink 200."""
    image = np.zeros((9, 9))
    labels = np.full((9, 9), BACKGROUND)
    image[2:7, 4], labels[2:7, 4] = 200, 7
    return image, labels


def run(recipe: Augmentation, image: np.ndarray, labels: np.ndarray, seed=SEED) -> tuple[np.ndarray, np.ndarray]:
    images, labelled = augment_batch(*batch(image, labels), seed, recipe)
    return images.numpy()[0, ..., 0], labelled.numpy()[0]


def test_nothing_chosen_leaves_the_batch_as_it_is():
    image, labels = line()
    got_image, got_labels = run(NOTHING, image, labels)
    np.testing.assert_array_equal(got_image, image)
    np.testing.assert_array_equal(got_labels, labels)


def test_thicker_strokes_gain_a_pixel_on_every_side_with_the_strokes_digit():
    image, labels = line()
    got_image, got_labels = run(replace(NOTHING, thicker=1.0), image, labels)
    expected = np.zeros((9, 9))
    expected[1:8, 3:6] = 200  # a 3×3 dilation of rows 2–6, column 4
    np.testing.assert_array_equal(got_image, expected)
    np.testing.assert_array_equal(got_labels, np.where(expected > 0, 7, BACKGROUND))


def test_thinner_strokes_lose_a_pixel_and_the_mask_follows():
    image = np.zeros((9, 9))
    labels = np.full((9, 9), BACKGROUND)
    image[1:8, 3:6], labels[1:8, 3:6] = 150, 2  # a 7×3 bar of a 2
    got_image, got_labels = run(replace(NOTHING, thinner=1.0), image, labels)
    expected = np.zeros((9, 9))
    expected[2:7, 4] = 150
    np.testing.assert_array_equal(got_image, expected)
    np.testing.assert_array_equal(got_labels, np.where(expected > 0, 2, BACKGROUND))


def test_a_binary_pen_keeps_strong_ink_at_255_and_drops_faint_ink():
    image, labels = line()
    image[2, 4] = 100  # a faint end of the stroke
    got_image, got_labels = run(replace(NOTHING, binary_pen=1.0), image, labels)
    assert set(np.unique(got_image)) == {0.0, 255.0}
    assert got_image[2, 4] == 0 and got_labels[2, 4] == BACKGROUND
    np.testing.assert_array_equal(got_labels[3:7, 4], [7, 7, 7, 7])


def test_lower_contrast_scales_the_ink_and_keeps_the_mask():
    image, labels = line()
    got_image, got_labels = run(replace(NOTHING, contrast=1.0, min_contrast=0.5), image, labels)
    factor = got_image[2, 4] / 200
    assert 0.5 <= factor <= 1
    np.testing.assert_allclose(got_image, image * factor, rtol=1e-6)
    np.testing.assert_array_equal(got_labels, labels)


def test_noise_is_not_ink_the_labels_stay():
    image, labels = line()
    got_image, got_labels = run(replace(NOTHING, noise=1.0, max_noise_sd=25.0), image, labels)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_image.min() >= 0 and got_image.max() <= 255 and not np.array_equal(got_image, image)


def test_salt_and_pepper_sets_pixels_to_255_or_0_and_the_labels_stay():
    image = np.full((20, 20), 120.0)
    labels = np.full((20, 20), 3)
    got_image, got_labels = run(replace(NOTHING, speckle=1.0, max_speckle=0.5), image, labels)
    np.testing.assert_array_equal(got_labels, labels)
    assert set(np.unique(got_image)) == {0.0, 120.0, 255.0}, "salt (255), pepper (0), the rest kept"
    hit = (got_image != 120).mean()
    assert 0 < hit <= 0.5
    untouched, _ = run(replace(NOTHING, speckle=0.0, max_speckle=0.5), image, labels)
    np.testing.assert_array_equal(untouched, image)


def test_every_recipe_is_a_set_of_probabilities_and_the_default_is_one_of_them():
    assert DEFAULT_RECIPE in RECIPES
    for name, recipe in RECIPES.items():
        for chance in ("affine", "thicker", "thinner", "binary_pen", "contrast", "noise", "speckle"):
            assert 0 <= getattr(recipe, chance) <= 1, (name, chance)
    assert RECIPES["moves"].affine > 0 and RECIPES["moves"].noise == 0 and RECIPES["moves"].speckle == 0


def test_the_config_names_its_recipe_and_refuses_an_unknown_one(tmp_path):
    from m2nist_seg.training.config import TrainConfig
    from m2nist_seg.training.streams import fresh_training_data

    assert TrainConfig().augmentation == DEFAULT_RECIPE
    with pytest.raises(M2NISTError, match="augmentation: found 'sparkles', expected one of moves, ink"):
        TrainConfig(augmentation="sparkles")
    first = {
        name: next(iter(fresh_training_data(TrainConfig(**TINY, augment=True, augmentation=name), 32)))[0].numpy()
        for name in ("moves", "ink_speckle")
    }
    assert not np.array_equal(first["moves"], first["ink_speckle"]), "the recipe changes the batches"


def test_an_affine_move_keeps_digits_on_ink_and_is_the_identity_at_zero_strength():
    image, labels = line()
    still = replace(NOTHING, affine=1.0, max_shift=0, max_rotation=0, max_scale=0)
    got_image, got_labels = run(still, image, labels)
    np.testing.assert_allclose(got_image, image, atol=1e-4)
    np.testing.assert_array_equal(got_labels, labels)
    moved = replace(NOTHING, affine=1.0, max_shift=2.0, max_rotation=10.0)
    got_image, got_labels = run(moved, image, labels)
    assert not np.allclose(got_image, image)
    assert (got_image[got_labels != BACKGROUND] > 0).all(), "every digit pixel has ink"
    assert set(np.unique(got_labels)) <= {7, BACKGROUND}


def test_follow_ink_gives_new_ink_a_neighbours_digit():
    image = np.zeros((5, 5))
    labels = np.full((5, 5), BACKGROUND)
    image[2, 1:3], labels[2, 1] = 90, 4  # (2, 2) gained ink beside a 4; (2, 1) is a 4
    image[0, 4] = 50  # ink far from any digit stays background
    labels[4, 4] = 4  # a 4 whose ink is gone becomes background
    got = follow_ink(*batch(image, labels)).numpy()[0]
    expected = np.full((5, 5), BACKGROUND)
    expected[2, 1:3] = 4
    np.testing.assert_array_equal(got, expected)


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    image, labels = line()
    first, again = run(Augmentation(noise=1.0), image, labels), run(Augmentation(noise=1.0), image, labels)
    np.testing.assert_array_equal(first[0], again[0])
    other = run(Augmentation(noise=1.0), image, labels, seed=tf.constant([3, 5]))
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("first_epoch", [1, 2])
def test_an_augmented_stream_resumed_at_an_epoch_gives_the_uninterrupted_batches(tmp_path, first_epoch):
    from m2nist_seg.training.config import TrainConfig
    from m2nist_seg.training.streams import fresh_training_data

    config = TrainConfig(**{**TINY, "augment": True}, output_dir=str(tmp_path))
    whole = [tuple(t.numpy() for t in b) for b in fresh_training_data(config, 32).take(6)]
    resumed = [
        tuple(t.numpy() for t in b) for b in fresh_training_data(config, 32, first_epoch).take(6 - 2 * first_epoch)
    ]
    for (x, y), (x2, y2) in zip(whole[2 * first_epoch :], resumed, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    plain = [b[0].numpy() for b in fresh_training_data(TrainConfig(**TINY, output_dir=str(tmp_path)), 32).take(2)]
    assert not all(np.array_equal(a, b[0]) for a, b in zip(plain, whole[:2])), "augment changes the batches"


@pytest.mark.slow
def test_a_run_trains_on_augmented_batches(tmp_path):
    from m2nist_seg.training.config import TrainConfig
    from m2nist_seg.training.train import train

    report = train(TrainConfig(**{**TINY, "augment": True, "epochs": 1}, output_dir=str(tmp_path), name="aug"))
    assert report["training"]["config"]["augment"] is True and report["training"]["epochs"] == 1
    assert 0 <= report["mean_digit_iou"] <= 1
