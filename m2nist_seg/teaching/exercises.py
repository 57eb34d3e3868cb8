"""Reference solutions and the glue that keeps the classroom notebooks running while an exercise is unfinished.

The reference functions have the exercises' signatures, so a notebook can fall back on them:

- :func:`reference_conv_block`, :func:`reference_encoder` and :func:`reference_fcn8_decoder` build the same
  layers as :func:`m2nist_seg.model.build_fcn` does;
- :func:`reference_iou_dice`, :func:`reference_dice_loss` and :func:`reference_compile` wrap
  :mod:`m2nist_seg.evaluation.metrics`, :mod:`m2nist_seg.model.losses` and the compile step of
  :func:`m2nist_seg.training.train.train`.

The glue: :func:`assemble_fcn8` joins an encoder and a decoder into a model, :func:`mine_or_reference` picks the
learner's function once its check passes, and :func:`remember_model` / :func:`recall_model` carry the learner's
model from notebook 02 to the training in notebook 03. Each prints one line saying what it did.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import keras
import numpy as np
from keras import layers, ops

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core import settings
from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.data import HEIGHT, NUM_CLASSES, WIDTH
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.model import losses
from m2nist_seg.training import train

if TYPE_CHECKING:
    from m2nist_seg.teaching.checks import CheckResult

T = TypeVar("T")

MY_MODEL_PATH = settings.RUNS_DIR / "exercises" / "my_fcn8.keras"
_DEFAULT_RUN = train.TrainConfig()
# The default run's length, a fixed horizon for the cosine decay: its epochs of its training images in batches.
DECAY_STEPS = _DEFAULT_RUN.epochs * (data.split_sizes(_DEFAULT_RUN.n_images)["train"] // _DEFAULT_RUN.batch_size)


def describe_error(error: BaseException, limit: int = 120) -> str:
    """An exception as one short line: its type and its message, whitespace collapsed, cut at ``limit`` characters."""
    text = " ".join(str(error).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def describe_stub(error: NotImplementedError, name: str) -> str:
    """ "<function> is not written yet", naming the stub that raised ``error`` (``name`` unless its message does)."""
    text = " ".join(str(error).split())
    return text if text.endswith("is not written yet") else f"{name} is not written yet"


def reference_conv_block(x, filters: int, convs: int = 1, strided: bool = False):
    """``convs`` × (3×3 Conv2D → BatchNormalization → ReLU), halving the map once.

    ``x``: a Keras tensor (N, H, W, C). With ``strided`` the first convolution has stride 2, otherwise a 2×2
    max pooling ends the block. Returns a Keras tensor (N, H/2, W/2, filters).
    """
    for conv in range(convs):
        x = layers.Conv2D(filters, 3, strides=2 if strided and conv == 0 else 1, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=fcn.BN_MOMENTUM)(x)
        x = layers.ReLU()(x)
    return x if strided else layers.MaxPooling2D(2)(x)


def reference_encoder(image):
    """The encoder of :func:`m2nist_seg.model.build_fcn8` (:func:`m2nist_seg.model.encoder`): ``(pool3, pool4, pool5)``.

    ``image``: a Keras tensor (N, 64, 84, 1) of raw pixel values 0–255. It is scaled by 1/255 and padded to a
    multiple of 32 (64×96), then five blocks give pool3 (N, 8, 12, 64), pool4 (N, 4, 6, 128) and
    pool5 (N, 2, 3, 128).
    """
    pools = fcn.encoder(image)
    return pools[3], pools[4], pools[5]


def reference_fcn8_decoder(pool3, pool4, pool5, num_classes: int = NUM_CLASSES):
    """The FCN-8 decoder of :func:`m2nist_seg.model.build_fcn8` (:func:`m2nist_seg.model.decoder`) and its softmax:
    class probabilities (N, 64, 84, num_classes)."""
    scores = fcn.decoder({3: pool3, 4: pool4, 5: pool5}, "fcn8", num_classes)
    return layers.Softmax(dtype="float32", name="probabilities")(scores)


def reference_iou_dice(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU and Dice, float64 (11,) each, pooled over all pixels of integer label maps (N, 64, 84).

    NaN for a class absent from both ``y_true`` and ``y_pred``.
    """
    scores = metrics.iou_dice(y_true, y_pred)
    return scores.iou, scores.dice


def reference_dice_loss(y_true_onehot, y_pred_probs):
    """1 − mean soft Dice over the digit classes present in the truth: a float32 scalar tensor.

    ``y_true_onehot``: one-hot float32 (B, 64, 84, 11); ``y_pred_probs``: softmax probabilities, same shape.
    The same loss as :class:`m2nist_seg.model.losses.SoftDiceLoss`, which takes integer label maps instead.
    """
    return losses.SoftDiceLoss()(ops.argmax(y_true_onehot, axis=-1), y_pred_probs)


def reference_compile(model: keras.Model) -> None:
    """Compile ``model`` as :func:`m2nist_seg.training.train.train` does by default.

    Adam with a cosine-decayed learning rate (over :data:`DECAY_STEPS` steps), cross-entropy + soft Dice
    (:class:`~m2nist_seg.model.losses.CombinedLoss`) and the mean digit IoU metric that training checkpoints on.
    """
    schedule = keras.optimizers.schedules.CosineDecay(_DEFAULT_RUN.learning_rate, decay_steps=DECAY_STEPS)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss=losses.CombinedLoss(), metrics=[metrics.MeanDigitIoU()]
    )


def assemble_fcn8(encoder_fn: Callable, decoder_fn: Callable) -> keras.Model | None:
    """``keras.Model`` from raw images (N, 64, 84, 1) to probabilities (N, 64, 84, 11): ``decoder_fn(*encoder_fn(x))``.

    Returns None, printing one ``✗`` line that names the failing function, when either one raises.
    """
    image = keras.Input((HEIGHT, WIDTH, 1), name="image")
    try:
        pool3, pool4, pool5 = encoder_fn(image)
    except Exception as error:
        return _not_assembled(encoder_fn, error)
    try:
        probabilities = decoder_fn(pool3, pool4, pool5)
        return keras.Model(image, probabilities, name="my_fcn8")
    except Exception as error:
        return _not_assembled(decoder_fn, error)


def _not_assembled(fn: Callable, error: Exception) -> None:
    name = getattr(fn, "__name__", repr(fn))
    if isinstance(error, NotImplementedError):
        print(f"✗ no model: {describe_stub(error, name)} (replace `raise NotImplementedError(...)` with your code)")
    else:
        print(f"✗ no model: {name} raised {describe_error(error)}")


def mine_or_reference(result: CheckResult, mine: T, reference: T, what: str) -> T:
    """``mine`` when its check passed, else ``reference``; prints which one the notebook goes on with."""
    if result.passed:
        print(f"using your {what}")
        return mine
    print(f"using the reference {what} until yours passes")
    return reference


def remember_model(model: keras.Model, result: CheckResult, path: str | os.PathLike = MY_MODEL_PATH) -> Path | None:
    """Save the learner's (untrained) model to ``path`` for notebook 03 when ``result`` passed; return the path.

    The file is written atomically. When ``result`` failed nothing is saved, and a model saved earlier is
    removed, so that notebook 03 never trains a version that no longer passes. Returns None then.
    """
    path = Path(path)
    if not result.passed:
        path.unlink(missing_ok=True)
        print("not saved: notebook 03 will train the reference FCN-8 until yours passes its check")
        return None
    with atomic_path(path) as tmp:
        model.save(tmp)
    print(f"saved your FCN-8 for notebook 03 ({settings.shown_path(path)})")
    return path


def model_to_evaluate(use_mine: bool, path: str | os.PathLike | None = None) -> keras.Model:
    """The model notebook 04 evaluates: the learner's from notebook 03, or the shipped one; prints which.

    With ``use_mine`` and a trained model at ``path`` (default ``runs/notebook/model.keras``), that model. Else the
    shipped model, rebuilt by today's :func:`~m2nist_seg.model.build_fcn8` with the trained weights loaded into it
    (so that a change to the package's wiring would show in every score); when ``use_mine`` asked for a model
    that is not there, the line says so.
    """
    path = Path(path) if path is not None else settings.RUNS_DIR / "notebook" / train.MODEL_FILE
    if use_mine and path.is_file():
        model = evaluate.load_model(path)
        shown = f"{settings.shown_path(path)}, {fcn.count_params(model):,} parameters"
        print(f"evaluating your model from notebook 03 ({shown})")
        return model
    if use_mine:
        where = settings.shown_path(path)
        print(f"no trained model at {where} yet (run notebook 03 first): evaluating the shipped model instead")
    model = fcn.build_fcn8()
    model.load_weights(settings.SHIPPED_MODEL)
    shipped = settings.shown_path(settings.SHIPPED_MODEL)
    print(f"evaluating the shipped model {shipped} ({fcn.count_params(model):,} parameters), rebuilt by today's code")
    return model


def recall_model(path: str | os.PathLike = MY_MODEL_PATH) -> Callable[[], keras.Model]:
    """A builder of fresh models (no arguments): the learner's model saved at ``path``, else the reference FCN-8.

    The learner's model is loaded without compile settings and cloned, so each call gives newly initialised
    weights; without a saved model the builder is :func:`m2nist_seg.model.build_fcn8`. Prints which one.
    """
    path = Path(path)
    if not path.is_file():
        print("using the reference FCN-8 until yours passes in notebook 02")
        return fcn.build_fcn8
    print("using your FCN-8 from notebook 02")

    def build() -> keras.Model:
        return keras.models.clone_model(keras.models.load_model(path, compile=False))

    return build
