"""The training data as endless, seeded streams of batches that a resumed run can restart at any epoch.

Epoch ``e`` of a run is a function of the run's seed and ``e`` only (:func:`epoch_seed`), so a run resumed at
epoch ``e`` sees exactly the batches an uninterrupted one would. With ``TrainConfig.augment`` each batch is also
augmented (:mod:`m2nist_seg.data.augment`) from a seed of the run's seed and the batch's number.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from m2nist_seg import data
from m2nist_seg.data.augment import DEFAULT_RECIPE, RECIPES, Augmentation, augment_batch
from m2nist_seg.training.config import TrainConfig


def epoch_seed(seed: int, epoch: int) -> int:
    """The random seed of one training epoch: a function of the run's seed and the epoch number only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def stream(
    draw: Callable[[int], tuple[np.ndarray, np.ndarray]],
    n: int,
    batch_size: int,
    first_epoch: int,
    augment_seed: int | None = None,
    recipe: Augmentation = RECIPES[DEFAULT_RECIPE],
):
    """Endless batches; epoch ``e`` holds the ``n`` images of ``draw(e)``, starting at ``first_epoch``. With an
    ``augment_seed``, batch number ``k`` (counted from epoch 0) is augmented by ``recipe`` from the seed
    (augment_seed, k)."""

    def epochs():
        for epoch in range(first_epoch, 1_000_000):
            yield draw(epoch)

    signature = (
        tf.TensorSpec((n, data.HEIGHT, data.WIDTH), tf.uint8),
        tf.TensorSpec((n, data.HEIGHT, data.WIDTH), tf.uint8),
    )
    epochs_ds = tf.data.Dataset.from_generator(epochs, output_signature=signature)
    batches = epochs_ds.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)))
    batches = batches.batch(batch_size, drop_remainder=True)
    batches = batches.map(data.to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    if augment_seed is not None:
        numbered = batches.enumerate(start=first_epoch * (n // batch_size))
        batches = numbered.map(
            lambda k, batch: augment_batch(*batch, tf.stack([tf.constant(augment_seed, tf.int64), k]), recipe),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return batches.prefetch(tf.data.AUTOTUNE)


def augmentation_of(config: TrainConfig) -> tuple[int | None, Augmentation]:
    """The augment seed (None: no augmentation) and recipe of a run, as :func:`stream` takes them."""
    return (config.seed if config.augment else None), RECIPES[config.augmentation]


def fresh_training_data(config: TrainConfig, n: int, first_epoch: int = 0) -> tf.data.Dataset:
    """An endless stream of batches whose digit combinations are drawn anew each epoch from the train pool.

    Epoch ``e`` uses generator seed :func:`epoch_seed` ``(config.seed, e)``; with ``config.distort_digits``
    every digit is randomly distorted (:func:`m2nist_seg.data.distort_digits`), and also warped elastically in
    epochs ``e < config.elastic_epochs``. ``first_epoch`` is the epoch that the stream starts at (a resumed
    run's), so a resumed run sees exactly the batches an uninterrupted one would. Only train-pool digits are used.
    """

    def draw(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        elastic = epoch < config.elastic_epochs
        seed = epoch_seed(config.seed, epoch)
        return data.generate_labels(n, seed=seed, pool="train", distort=config.distort_digits, elastic=elastic)

    return stream(draw, n, config.batch_size, first_epoch, *augmentation_of(config))


def shuffled_training_data(config: TrainConfig, split: data.Split, n: int, first_epoch: int = 0) -> tf.data.Dataset:
    """An endless stream of batches of a fixed training split, in an order drawn anew each epoch.

    Epoch ``e`` shows the first ``n`` images of a permutation seeded by :func:`epoch_seed` ``(config.seed, e)``,
    so that, as with :func:`fresh_training_data`, a resumed run sees the batches an uninterrupted one would.
    """

    def draw(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng(epoch_seed(config.seed, epoch)).permutation(len(split))[:n]
        return split.images[order], split.labels[order]

    return stream(draw, n, config.batch_size, first_epoch, *augmentation_of(config))
