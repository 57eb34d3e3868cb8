"""Auto-checks for the classroom edition's exercises: one check per exercise, one printed line per check.

A check prints ``✓`` and what passed, or ``✗`` and a hint naming the first fault found (what was expected, what
was found, where to look), and returns a :class:`CheckResult`. By default a check never raises, whatever the
learner's code does: an unwritten stub (``raise NotImplementedError``) or any other exception is reported in
the line. With ``M2NIST_STRICT=1`` (:func:`m2nist_seg.core.settings.strict_mode`) a failed check raises
``AssertionError`` after printing, so that CI proves the teacher's solutions pass.

- :func:`check_conv_block`, :func:`check_encoder`, :func:`check_decoder`: the model, built piece by piece;
- :func:`check_model`: a whole model: FCN-8 wiring, linear scores, aligned crop, softmax, weights that train;
- :func:`check_iou_dice`, :func:`check_dice_loss`, :func:`check_compiled`: scoring and training;
- :func:`grade`: mean digit IoU on the test split against a pass mark.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from m2nist_seg import data
from m2nist_seg import model as fcn
from m2nist_seg.core import settings
from m2nist_seg.data import BACKGROUND, HEIGHT, NUM_CLASSES, WIDTH
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.teaching.exercises import describe_error, describe_stub, reference_encoder

PASSED, FAILED, NOT_GRADED = "✓", "✗", "○"
IMAGE_INPUT = (HEIGHT, WIDTH, 1)
PROBABILITIES = (None, HEIGHT, WIDTH, NUM_CLASSES)
PADDING = fcn.padding_for(HEIGHT, WIDTH)  # ((0, 0), (6, 6)): 84 columns → 96, a multiple of 32
PAD_SIDES = (*PADDING[0], *PADDING[1])  # top, bottom, left, right
PADDED = (HEIGHT + sum(PADDING[0]), WIDTH + sum(PADDING[1]))
POOL_SHAPES = {
    stage.name: (stage.height, stage.width, stage.channels)
    for stage in fcn.feature_shapes()
    if stage.name in ("pool3", "pool4", "pool5")
}
CONV_BLOCK_INPUT = (16, 20, 3)
CONV_BLOCK_CASES = ((8, 1, False), (12, 2, False), (8, 2, True), (12, 1, True))
# IoU and Dice computed in float32 are right to ~1e-7; a smoothing term of 1e-5 shifts a 2-pixel class by ~1e-6.
RTOL, ATOL = 1e-6, 1e-9
SMOOTHING_ATOL = 1e-4  # beyond this, a difference is a wrong formula rather than a smoothing term
PERFECT_LOSS, BACKGROUND_LOSS = 0.05, 0.5
DEGRADATION = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of the probability moved from the truth to a shifted mask
_MERGES = {"Add", "Concatenate", "Average", "Maximum"}
_NONLINEAR = {"ReLU", "LeakyReLU", "PReLU", "ELU", "Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "Gelu", "Silu"}
_STEP = ("Conv2D", "BatchNormalization", "ReLU")
_DICE_LOSS_CALL = "dice_loss(y_true_onehot, y_pred_probs)"
_IOU_DICE_CALL = "iou_dice(y_true, y_pred)"
_MODEL_OK = (
    "FCN-8 skips from pool4 and pool3, linear scores, crop aligned with the padding, "
    "softmax over 11 classes, every weight gets a gradient"
)


@dataclass(frozen=True)
class CheckResult:
    """A check's verdict and the line it printed."""

    passed: bool
    message: str


@dataclass(frozen=True)
class GradeResult(CheckResult):
    """The grader's verdict: ``score`` is the mean digit IoU; ``graded`` is False in quick mode (no verdict)."""

    score: float
    graded: bool


class _Fault(Exception):
    """A fault found in the learner's code; its message is the hint that the check prints."""


def _say(passed: bool, text: str) -> str:
    """Print ``✓ text`` or ``✗ text`` on one line and return it; in strict mode a failure then raises."""
    message = f"{PASSED if passed else FAILED} {' '.join(text.split())}"
    print(message)
    if not passed and settings.strict_mode():
        raise AssertionError(message)
    return message


def _checked(body: Callable[[], str]) -> CheckResult:
    """Run a check's ``body``, which returns the success text or raises :class:`_Fault` with the hint.

    Warnings (Keras's, or NumPy's on a division by zero in the learner's code) are silenced: the line says it all.
    """
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            success = body()
    except _Fault as fault:
        hint = str(fault)
    except Exception as error:
        hint = f"the check could not inspect your code ({describe_error(error)})"
    else:
        return CheckResult(True, _say(True, success))
    return CheckResult(False, _say(False, hint))


def _call(fn: Callable, call: str, *args, **kwargs):
    """``fn(*args, **kwargs)``; an exception it raises becomes a :class:`_Fault` naming ``call``."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as error:
        unwritten = describe_stub(error, call.split("(")[0])
        raise _Fault(f"{unwritten}: replace `raise NotImplementedError(...)` with your code") from None
    except Exception as error:
        raise _Fault(f"{call} raised {describe_error(error)}") from None


def _kind(value) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    return "None" if value is None else f"a {type(value).__name__}"


def _expect_tensor(value, call: str) -> None:
    if value is None:
        raise _Fault(f"{call} returned None, expected a Keras tensor: did you forget `return x`?")
    if not isinstance(value, keras.KerasTensor):
        raise _Fault(f"{call} returned {_kind(value)}, expected a Keras tensor (the output of a layer)")


def _functional(inputs, outputs, call: str) -> keras.Model:
    try:
        return keras.Model(inputs, outputs)
    except Exception as error:
        raise _Fault(
            f"{call}: its output is not computed from its input ({describe_error(error)}): "
            "build on the argument, not on a new keras.Input"
        ) from None


def _operations(model: keras.Model) -> list:
    """The model's layers and ops in graph order, nested models expanded, without input layers."""
    found = []
    for op in model.operations if hasattr(model, "operations") else model.layers:
        if isinstance(op, keras.Model):
            found += _operations(op)
        elif not isinstance(op, layers.InputLayer):
            found.append(op)
    return found


def _activation(op) -> str:
    """The name of a layer's ``activation`` ("linear" for none)."""
    activation = getattr(op, "activation", None)
    return "linear" if activation is None else getattr(activation, "__name__", str(activation))


def _is_nonlinearity(op) -> bool:
    if isinstance(op, layers.Activation):
        return _activation(op) != "linear"
    return type(op).__name__ in _NONLINEAR


def _step_name(op) -> str:
    """Conv2D, BatchNormalization, ReLU (any ReLU layer or op), or the class name of anything else."""
    if isinstance(op, layers.Conv2D):
        return "Conv2D"
    relu = type(op).__name__ in {"ReLU", "Relu"} or (isinstance(op, layers.Activation) and _activation(op) == "relu")
    return "ReLU" if relu else type(op).__name__


def _size(shape) -> str:
    return "×".join(str(n) for n in shape)


# 1. conv_block ------------------------------------------------------------------------------------------------


def check_conv_block(fn: Callable) -> CheckResult:
    """Check ``fn(x, filters, convs=1, strided=False)`` on ``keras.Input((16, 20, 3))`` for four argument sets.

    Each must give ``convs`` × (3×3 'same' Conv2D → BatchNormalization → ReLU), the first convolution with
    stride 2 when ``strided``, else a final MaxPooling2D(2): a Keras tensor (None, 8, 10, filters).
    """

    def body() -> str:
        for filters, convs, strided in CONV_BLOCK_CASES:
            call = f"conv_block(x, {filters}, convs={convs}, strided={strided})"
            x = keras.Input(CONV_BLOCK_INPUT)
            out = _call(fn, call, x, filters, convs=convs, strided=strided)
            _expect_tensor(out, call)
            hint = _conv_block_fault(_operations(_functional(x, out, call)), out, filters, convs, strided)
            if hint:
                raise _Fault(f"{call}: {hint}")
        return "conv_block: Conv2D → BatchNormalization → ReLU × convs, halving the map by a stride or a pooling"

    return _checked(body)


def _conv_block_fault(ops: list, out, filters: int, convs: int, strided: bool) -> str | None:
    """The first fault of one conv_block graph (its layers and ops ``ops`` in order), or None."""
    expected = (CONV_BLOCK_INPUT[0] // 2, CONV_BLOCK_INPUT[1] // 2, filters)
    found = tuple(out.shape[1:])
    steps = [op for op in ops if "Pooling" not in type(op).__name__]
    return (
        _conv_layers_fault([op for op in ops if isinstance(op, layers.Conv2D)], filters, convs, strided)
        or _pooling_fault(ops, strided, found, expected)
        or _order_fault([_step_name(op) for op in steps], convs)
        or (None if found == expected else f"output is {_size(found)}, expected {_size(expected)}")
    )


def _conv_layers_fault(convs_found: list, filters: int, convs: int, strided: bool) -> str | None:
    if len(convs_found) != convs:
        return (
            f"found {len(convs_found)} Conv2D layer(s), expected {convs}: "
            "repeat Conv2D → BatchNormalization → ReLU `convs` times"
        )
    for conv in convs_found:
        if conv.filters != filters:
            return f"a Conv2D has {conv.filters} filters, expected {filters}: pass `filters` to Conv2D"
        if conv.kernel_size != (3, 3):
            return f"a Conv2D has kernel size {_size(conv.kernel_size)}, expected 3×3"
        if conv.padding != "same":
            return f"a Conv2D has padding='{conv.padding}', which shrinks the map at its borders: use padding='same'"
        if _activation(conv) != "linear":
            return (
                f"a Conv2D has activation='{_activation(conv)}', which runs before batch norm: "
                "leave Conv2D linear and put ReLU() after BatchNormalization()"
            )
    first, *others = (conv.strides for conv in convs_found)
    if strided and first != (2, 2):
        return f"no stride when strided: the first Conv2D has strides={first}, expected strides=2"
    if not strided and first != (1, 1):
        return f"strided=False but the first Conv2D has strides={first}: keep strides=1, MaxPooling2D(2) downsamples"
    if any(stride != (1, 1) for stride in others):
        return "only the FIRST Conv2D gets strides=2 (and only when strided=True); the others keep strides=1"
    return None


def _pooling_fault(ops: list, strided: bool, found: tuple, expected: tuple) -> str | None:
    pools = [op for op in ops if "Pooling" in type(op).__name__]
    sizes = f"output {_size(found[:2])}, expected {_size(expected[:2])}"
    if strided and pools:
        return (
            f"pooling when strided halves the map twice ({sizes}): the stride-2 Conv2D already halves it, "
            "so pool only when strided=False"
        )
    if not strided and not pools:
        return f"no downsampling ({sizes}): with strided=False, end the block with MaxPooling2D(2)"
    if not strided and (len(pools) > 1 or ops[-1] is not pools[0] or not isinstance(pools[0], layers.MaxPooling2D)):
        return "with strided=False, end the block with exactly one MaxPooling2D(2), after the last ReLU"
    return None


def _order_fault(steps: list[str], convs: int) -> str | None:
    if steps == list(_STEP) * convs:
        return None
    if steps.count("BatchNormalization") < convs:
        return (
            f"missing batch norm: found {steps.count('BatchNormalization')} BatchNormalization for {convs} Conv2D; "
            "add BatchNormalization() after each Conv2D"
        )
    if steps.count("ReLU") < convs:
        return f"missing ReLU: found {steps.count('ReLU')} ReLU for {convs} Conv2D; add ReLU() after each batch norm"
    if any(steps[i : i + 2] == ["ReLU", "BatchNormalization"] for i in range(len(steps) - 1)):
        return "ReLU before batch norm: order each step Conv2D → BatchNormalization → ReLU"
    return f"found {' → '.join(steps)}, expected Conv2D → BatchNormalization → ReLU, {convs} time(s)"


# 2. encoder ---------------------------------------------------------------------------------------------------


def check_encoder(fn: Callable) -> CheckResult:
    """Check ``fn(image)`` on ``keras.Input((64, 84, 1))`` of raw 0–255 pixels: it must return (pool3, pool4, pool5).

    The first convolution must see the image scaled by 1/255 with 6 zero columns on each side (64×96), and the
    outputs must be 8×12×64, 4×6×128 and 2×3×128, in that order.
    """

    def body() -> str:
        call = "encoder(image)"
        image = keras.Input(IMAGE_INPUT)
        pools = _call(fn, call, image)
        if not isinstance(pools, tuple | list) or len(pools) != 3:
            raise _Fault(f"{call} returned {_kind(pools)}, expected a tuple (pool3, pool4, pool5) of 3 Keras tensors")
        for pool in pools:
            _expect_tensor(pool, call)
        model = _functional(image, list(pools), call)
        found = [tuple(pool.shape[1:]) for pool in pools]
        hint = _pool_order_fault(found) or _encoder_input_fault(model, image) or _pool_shape_fault(found)
        if hint:
            raise _Fault(f"{call}: {hint}")
        return "encoder: scales by 1/255, pads 84 → 96 columns evenly, returns pool3 8×12, pool4 4×6, pool5 2×3"

    return _checked(body)


def _pool_order_fault(found: list[tuple]) -> str | None:
    sizes = [shape[:2] for shape in found]
    expected = [shape[:2] for shape in POOL_SHAPES.values()]
    if sizes != expected and sorted(sizes) == sorted(expected):
        return (
            f"outputs in the wrong order ({', '.join(map(_size, sizes))}): "
            "return (pool3, pool4, pool5), shallowest first: 8×12, 4×6, 2×3"
        )
    return None


def _encoder_input_fault(model: keras.Model, image) -> str | None:
    """Padding and scaling: what the first Conv2D sees of an image of random values 1–255."""
    convs = [op for op in _operations(model) if isinstance(op, layers.Conv2D)]
    if not convs:
        return "found no Conv2D layer: build the blocks with conv_block"
    pixels = np.random.default_rng(0).integers(1, 256, IMAGE_INPUT).astype(np.float32)
    seen = keras.ops.convert_to_numpy(keras.Model(image, convs[0].input)(pixels[None]))[0, ..., 0]
    if seen.shape != PADDED:
        what = "missing padding" if seen.shape == (HEIGHT, WIDTH) else "wrong padding"
        return (
            f"{what}: the first Conv2D sees {_size(seen.shape)}, expected {_size(PADDED)}: "
            f"add ZeroPadding2D({PADDING}) so that the {WIDTH} columns become {PADDED[1]}, a multiple of 32"
        )
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    if not rows.size:
        return "the first Conv2D sees only zeros: feed it the (scaled, padded) image"
    sides = (rows[0], PADDED[0] - 1 - rows[-1], cols[0], PADDED[1] - 1 - cols[-1])
    if sides != PAD_SIDES:
        what = "asymmetric padding" if sum(sides[2:]) == sum(PAD_SIDES) else "wrong padding"
        return (
            f"{what}: the image lies {'/'.join(map(str, sides))} pixels from the top/bottom/left/right edges, "
            f"expected {'/'.join(map(str, PAD_SIDES))}: use ZeroPadding2D({PADDING})"
        )
    ratio = seen[sides[0] : sides[0] + HEIGHT, sides[2] : sides[2] + WIDTH] / pixels[..., 0]
    if np.allclose(ratio, 1 / 255, rtol=1e-3):
        return None
    if np.allclose(ratio, 1, rtol=1e-3):
        return "no 1/255 scaling: the first Conv2D sees raw values up to 255; start with Rescaling(1/255)"
    return f"pixels are scaled by about {np.median(ratio):.4g}, expected 1/255 ≈ 0.003922: use Rescaling(1/255)"


def _pool_shape_fault(found: list[tuple]) -> str | None:
    for number, ((name, expected), shape) in enumerate(zip(POOL_SHAPES.items(), found), start=1):
        if shape != expected:
            where = (
                f"the blocks have {', '.join(map(str, fcn.DEFAULT_WIDTHS))} filters"
                if shape[:2] == expected[:2]
                else "return the outputs of blocks 3, 4 and 5 (block 1 strided, blocks 2–5 pooled)"
            )
            return f"{name} (output {number}) is {_size(shape)}, expected {_size(expected)}: {where}"
    return None


# 3. decoder and 4. whole model --------------------------------------------------------------------------------


def check_decoder(fn: Callable) -> CheckResult:
    """Check ``fn(pool3, pool4, pool5)`` on the reference encoder: the model they make must pass :func:`check_model`."""

    def body() -> str:
        call = "fcn8_decoder(pool3, pool4, pool5)"
        image = keras.Input(IMAGE_INPUT, name="image")
        probabilities = _call(fn, call, *reference_encoder(image))
        _expect_tensor(probabilities, call)
        hint = _model_fault(_functional(image, probabilities, call), "your decoder")
        if hint:
            raise _Fault(hint)
        return f"fcn8_decoder: {_MODEL_OK}"

    return _checked(body)


def check_model(model: keras.Model | None) -> CheckResult:
    """Check a Keras model from raw 0–255 images (N, 64, 84, 1) to class probabilities (N, 64, 84, 11).

    In this order: layers built on the model's tensors that never reach its output, the skips from pool4 and
    pool3 (an Add at 1/16 and 1/8 of the padded input), nonlinear score layers, a crop that doesn't undo the
    padding side by side, the output shape, a sigmoid output, weights that get no gradient, probabilities
    that don't sum to 1.
    """

    def body() -> str:
        if model is None:
            raise _Fault("no model to check: the cell that builds it failed; fix that cell and run it again")
        if not isinstance(model, keras.Model):
            raise _Fault(f"expected a keras.Model, found {_kind(model)}")
        hint = _model_fault(model, "your model")
        if hint:
            raise _Fault(hint)
        return f"your model: {_MODEL_OK}"

    return _checked(body)


def _model_fault(model: keras.Model, who: str) -> str | None:
    """The first fault of ``model``, described for ``who`` ("your model", "your decoder"), or None."""
    inputs = [tuple(tensor.shape) for tensor in model.inputs]
    if inputs != [(None, *IMAGE_INPUT)]:
        return f"{who} takes inputs {inputs}, expected one input {(None, *IMAGE_INPUT)} of raw 0–255 images"
    if len(model.outputs) != 1:
        return f"{who} has {len(model.outputs)} outputs, expected one: the class probabilities"
    ops = _operations(model)
    return (
        _dropped_fault(model, who)
        or _skip_fault(ops, who)
        or _score_fault(ops)
        or _alignment_fault(ops, who)
        or _output_fault(model, who)
        or _sigmoid_fault(ops[-1], who)
        or _forward_fault(model, who)
    )


def _dropped_fault(model: keras.Model, who: str) -> str | None:
    """Layers built on one of the model's inner tensors whose output never reaches its output: Keras leaves them out.

    Consumers of the input, and graphs that end in an output like the model's (an earlier build on the same
    tensors, left by running a notebook cell twice), are not faults of this model.
    """
    tensors, nodes = _graph(model)
    inputs = {id(tensor) for tensor in model.inputs}
    output_shape = tuple(model.outputs[0].shape)
    dropped = [
        node.operation
        for tensor in tensors
        if id(tensor) not in inputs
        for node in _consumers(tensor)
        if id(node) not in nodes and not _reaches(node, output_shape)
    ]
    if not dropped:
        return None
    more = f" (and {len(dropped) - 1} more)" if len(dropped) > 1 else ""
    return (
        f"layer '{dropped[0].name}' ({type(dropped[0]).__name__}){more} is built on a tensor of {who} but never "
        "reaches its output: Keras drops it, so its weights never train; use its output or delete it"
    )


def _graph(model: keras.Model) -> tuple[list, set[int]]:
    """The Keras tensors between the model's inputs and outputs, and the ids of the graph nodes that make them."""
    tensors, nodes, stack = {}, set(), list(model.outputs)
    while stack:
        tensor = stack.pop()
        if id(tensor) not in tensors:
            tensors[id(tensor)] = tensor
            operation, node_index, _ = tensor._keras_history
            node = operation._inbound_nodes[node_index]
            nodes.add(id(node))
            stack.extend(node.input_tensors)
    return list(tensors.values()), nodes


def _consumers(tensor) -> list:
    """The graph nodes that take ``tensor`` as an input."""
    nodes = tensor._keras_history.operation._outbound_nodes
    return [node for node in nodes if any(source is tensor for source in node.input_tensors)]


def _reaches(node, shape: tuple) -> bool:
    """Whether a tensor of ``shape`` is computed from ``node``'s outputs."""
    stack, seen = [node], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for tensor in node.output_tensors:
            if tuple(tensor.shape) == shape:
                return True
            stack.extend(_consumers(tensor))
    return False


def _amounts(ops: list, kind: type, attribute: str) -> tuple[int, ...]:
    """Total (top, bottom, left, right) of the ZeroPadding2D or Cropping2D layers working at full resolution."""
    total = np.zeros(4, dtype=int)
    for op in ops:
        if isinstance(op, kind) and op.input.shape[1] >= HEIGHT and op.input.shape[2] >= WIDTH:
            total += np.ravel(getattr(op, attribute))
    return tuple(int(n) for n in total)


def _skip_fault(ops: list, who: str) -> str | None:
    top, bottom, left, right = _amounts(ops, layers.ZeroPadding2D, "padding")
    height, width = HEIGHT + top + bottom, WIDTH + left + right
    merged = {tuple(op.output.shape[1:3]) for op in ops if type(op).__name__ in _MERGES}
    pool4, pool3 = (height // 16, width // 16), (height // 8, width // 8)
    if pool4 not in merged:
        wiring = ", which is FCN-32 wiring" if pool3 not in merged else ""
        return (
            f"no skip from pool4: {who} adds nothing at {_size(pool4)} (1/16 of the padded input){wiring}: "
            "upsample the scored pool5 ×2 and Add the scored pool4"
        )
    if pool3 not in merged:
        return (
            f"no skip from pool3: {who} adds nothing at {_size(pool3)} (1/8 of the padded input), which is FCN-16 "
            "wiring: upsample ×2 once more and Add the scored pool3 before the ×8 upsampling"
        )
    return None


def _score_fault(ops: list) -> str | None:
    """A 1×1 Conv2D (score layer) with a nonlinear activation, or followed by one (the output layer aside)."""
    inside = {id(op) for op in ops}
    for op in ops:
        if not (isinstance(op, layers.Conv2D) and op.kernel_size == (1, 1)):
            continue
        where = f"score layer '{op.name}' (1×1 Conv2D)"
        if _activation(op) != "linear":
            return (
                f"{where} has activation='{_activation(op)}': scores must stay linear (they can be negative); "
                "drop the activation"
            )
        after = [node.operation for node in op._outbound_nodes if id(node.operation) in inside]
        for follower in after:
            if _is_nonlinearity(follower) and follower is not ops[-1]:
                return (
                    f"{where} is followed by {type(follower).__name__}: scores must stay linear "
                    "(they can be negative); remove it"
                )
    return None


def _alignment_fault(ops: list, who: str) -> str | None:
    padded = _amounts(ops, layers.ZeroPadding2D, "padding")
    cropped = _amounts(ops, layers.Cropping2D, "cropping")
    if padded == cropped:
        return None
    return (
        f"output misaligned with the input: {who} pads {'/'.join(map(str, padded))} but crops "
        f"{'/'.join(map(str, cropped))} pixels (top/bottom/left/right): crop exactly what was padded, side by side"
    )


def _output_fault(model: keras.Model, who: str) -> str | None:
    shape = tuple(model.outputs[0].shape)
    if shape == PROBABILITIES:
        return None
    where = (
        f"the last Conv2DTranspose needs num_classes = {NUM_CLASSES} filters"
        if shape[1:3] == PROBABILITIES[1:3]
        else f"upsample to the padded {_size(PADDED)}, then crop back to {HEIGHT}×{WIDTH}"
    )
    return f"{who} outputs {shape}, expected {PROBABILITIES}: {where}"


def _sigmoid_fault(last, who: str) -> str | None:
    if _activation(last) == "sigmoid" or type(last).__name__ == "Sigmoid":
        return (
            f"{who} ends in a sigmoid: 11 independent sigmoids don't sum to 1 over the classes; "
            "end with Softmax() so that each pixel gets one probability per class"
        )
    return None


def _forward_fault(model: keras.Model, who: str) -> str | None:
    """Run two random images through ``model``: every trainable weight must get a gradient, outputs sum to 1."""
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (2, *IMAGE_INPUT)), tf.float32)
    with tf.GradientTape() as tape:
        probabilities = tf.cast(_call(model, f"{who} on two images", images, training=False), tf.float32)
        loss = tf.reduce_mean(probabilities * rng.standard_normal(tuple(probabilities.shape)).astype(np.float32))
    weights = model.trainable_weights
    gradients = tape.gradient(loss, weights)
    dead = [w.path.rsplit("/", 1)[0] for w, g in zip(weights, gradients) if g is None or not np.any(g)]
    if dead:
        return (
            f"{len(dead)} of {len(weights)} weights get no gradient (in '{dead[0]}'…): something between them and "
            "the output cuts the graph (argmax, round, a cast to int, numpy), so they never train"
        )
    sums = probabilities.numpy().sum(axis=-1)
    if not np.allclose(sums, 1, atol=1e-3):
        return (
            f"{who}'s outputs don't sum to 1 over the 11 classes (sums {sums.min():.2f} to {sums.max():.2f}): "
            "end with Softmax() over the class axis"
        )
    return None


# 5. iou_dice --------------------------------------------------------------------------------------------------


def check_iou_dice(fn: Callable) -> CheckResult:
    """Check ``fn(y_true, y_pred) -> (iou, dice)`` on integer label maps (N, 64, 84) against :func:`metrics.iou_dice`.

    The cases: two designed images (a class of 2 pixels, a class only in y_true, one only in y_pred, classes in
    neither, a class whose per-image mean differs from its pooled score), the same with the arguments swapped,
    and three random label maps. Scores must match to float32 precision, NaN where the reference has NaN.
    """

    def body() -> str:
        cases = _iou_dice_cases()
        for name, y_true, y_pred in cases:
            found = _scores(fn, y_true, y_pred)
            expected = metrics.iou_dice(y_true, y_pred)
            if not (_same(found[0], expected.iou) and _same(found[1], expected.dice)):
                raise _Fault(_iou_dice_fault(fn, name, found, y_true, y_pred))
        return f"iou_dice: per-class IoU and Dice pooled over all images, NaN for absent classes ({len(cases)} cases)"

    return _checked(body)


def _designed_label_maps() -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 label maps (2, 64, 84): truth and prediction, mostly background."""
    truth = np.full((2, HEIGHT, WIDTH), BACKGROUND, dtype=np.uint8)
    pred = truth.copy()
    truth[0, :10, :10] = pred[0, :10, :10] = 3  # class 3: 100 pixels right in image 0 ...
    truth[1, 0, :2] = 3  # ... and 1 of 2 right in image 1: pooled IoU 101/102, per-image mean 0.75
    pred[1, 0, 0] = 3
    truth[0, 20, 20:22] = 5  # class 5: 1 of 2 pixels right, where smoothing terms show
    pred[0, 20, 20] = 5
    truth[0, 30, 30] = 1  # class 1: only in the truth
    pred[0, 40, 40:42] = 8  # class 8: only in the prediction
    return truth, pred


def _iou_dice_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    truth, pred = _designed_label_maps()
    rng = np.random.default_rng(0)
    random_truth = rng.integers(0, NUM_CLASSES, (3, HEIGHT, WIDTH), dtype=np.uint8)
    noise = rng.integers(0, NUM_CLASSES, random_truth.shape, dtype=np.uint8)
    random_pred = np.where(rng.random(random_truth.shape) < 0.3, noise, random_truth)
    return [
        ("two designed images", truth, pred),
        ("the designed images with y_true and y_pred swapped", pred, truth),
        ("three random label maps", random_truth, random_pred),
    ]


def _scores(fn: Callable, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fn``'s (iou, dice) as two float64 arrays (11,), or a :class:`_Fault` on anything else."""
    result = _call(fn, _IOU_DICE_CALL, y_true.copy(), y_pred.copy())
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise _Fault(f"{_IOU_DICE_CALL} returned {_kind(result)}, expected a tuple (iou, dice) of two arrays")
    arrays = []
    for name, value in zip(("iou", "dice"), result):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise _Fault(f"{name} is {_kind(value)}, expected an array of {NUM_CLASSES} per-class scores") from None
        if array.shape != (NUM_CLASSES,):
            what = "not their mean" if array.ndim == 0 else "background (class 10) included"
            raise _Fault(f"{name} has shape {array.shape}, expected ({NUM_CLASSES},): one score per class, {what}")
        arrays.append(array)
    return arrays[0], arrays[1]


def _close(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Element-wise: equal up to float32 rounding, or NaN in both."""
    return np.isclose(found, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def _same(found: np.ndarray, expected: np.ndarray) -> bool:
    return bool(_close(found, expected).all())


def _per_image_mean(y_true: np.ndarray, y_pred: np.ndarray) -> metrics.Scores:
    """Each image's scores averaged over the images, skipping the images where a class is absent."""
    scores = metrics.scores_from_confusion(np.stack([metrics.confusion_matrix(t, p) for t, p in zip(y_true, y_pred)]))
    return metrics.Scores(np.nanmean(scores.iou, axis=0), np.nanmean(scores.dice, axis=0))


def _iou_dice_fault(fn: Callable, case: str, found: tuple, y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """Name the fault behind scores ``found`` that differ from the reference on ``case``."""
    iou, dice = found
    expected = metrics.iou_dice(y_true, y_pred)
    scored = ~np.isnan(expected.iou)
    if _same(iou, expected.iou) and _same(2 * dice[scored], expected.dice[scored]):
        return "Dice is exactly half the right value: Dice = 2·overlap / (|true| + |pred|), mind the factor 2"
    per_image = _per_image_mean(y_true, y_pred)
    telling = scored & ~np.isclose(per_image.iou, expected.iou)
    if telling.any() and np.allclose(iou[telling], per_image.iou[telling]):
        c = np.flatnonzero(telling)[0]
        return (
            f"scores averaged per image (class {c}: found IoU {iou[c]:.3f}, pooled over the set "
            f"{expected.iou[c]:.3f}): sum tp, fp and fn over all images, then divide once"
        )
    exact = _same(iou[scored], expected.iou[scored]) and _same(dice[scored], expected.dice[scored])
    near = np.allclose(iou[scored], expected.iou[scored], atol=SMOOTHING_ATOL)
    if not exact and near and np.allclose(dice[scored], expected.dice[scored], atol=SMOOTHING_ATOL):
        c = np.nanargmax(np.where(expected.iou > 0, np.abs(iou / expected.iou - 1), np.nan))
        pixels = np.sum((y_true == c) | (y_pred == c))
        return (
            f"smoothing terms bias small classes (class {c}, {pixels} pixels: found IoU {iou[c]:.7f}, expected "
            f"{expected.iou[c]:.7f}): drop the + 1e-5 and return NaN where tp + fp + fn = 0"
        )
    absent = ~scored & ~(np.isnan(iou) & np.isnan(dice))
    if absent.any():
        c = np.flatnonzero(absent)[0]
        return (
            f"class {c} is in neither map, so it has no score: found IoU {iou[c]:g}, Dice {dice[c]:g}, expected NaN "
            "(0/0): return NaN where tp + fp + fn = 0"
        )
    lost = scored & (np.isnan(iou) | np.isnan(dice))
    if lost.any():
        c = np.flatnonzero(lost)[0]
        where = "y_pred only" if not (y_true == c).any() else "y_true only" if not (y_pred == c).any() else "both"
        return (
            f"class {c} is in {where} but scored NaN, expected IoU {expected.iou[c]:g}: a class is NaN only when it "
            "is in neither map (decide from tp + fp + fn, not from one argument)"
        )
    swapped = _scores(fn, y_pred, y_true)
    if not (_same(swapped[0], iou) and _same(swapped[1], dice)):
        return (
            "your scores change when y_true and y_pred swap places, but IoU and Dice are symmetric: "
            "count false positives and false negatives alike, IoU = tp/(tp+fp+fn)"
        )
    c = np.flatnonzero(~(_close(iou, expected.iou) & _close(dice, expected.dice)))[0]
    return (
        f"on {case}, class {c}: found IoU {iou[c]:.4f}, Dice {dice[c]:.4f}, expected {expected.iou[c]:.4f} and "
        f"{expected.dice[c]:.4f}: IoU = tp/(tp+fp+fn), Dice = 2tp/(2tp+fp+fn), pooled over all images"
    )


# 6. dice_loss -------------------------------------------------------------------------------------------------


def check_dice_loss(fn: Callable) -> CheckResult:
    """Check ``fn(y_true_onehot, y_pred_probs)``, float32 (B, 64, 84, 11) each, as a soft Dice loss.

    It must return a finite scalar, pass a gradient to ``y_pred_probs``, score ≤ 0.05 for a perfect prediction,
    grow as probability moves from the truth to a shifted mask, and score an all-background prediction ≥ 0.5,
    above a half-right one.
    """

    def body() -> str:
        truth, shifted, background = _dice_loss_masks()
        sequence = [_loss(fn, truth, (1 - share) * truth + share * shifted) for share in DEGRADATION]
        all_background = _loss(fn, truth, background)
        hint = _loss_gradient_fault(fn, truth, (truth + shifted) / 2) or _loss_values_fault(sequence, all_background)
        if hint:
            raise _Fault(hint)
        return (
            f"dice_loss: {sequence[0]:.3f} when perfect, grows as predictions worsen, "
            f"{all_background:.2f} for all background, passes gradients"
        )

    return _checked(body)


def _dice_loss_masks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-hot float32 (2, 64, 84, 11): two test images' truth, their digits shifted 4 pixels right, all background."""
    _, labels = data.generate_labels(2, seed=0, pool="test")
    background = np.full_like(labels, BACKGROUND)
    return tuple(data.labels_to_masks(maps).astype(np.float32) for maps in (labels, np.roll(labels, 4, 2), background))


def _loss(fn: Callable, truth: np.ndarray, probabilities: np.ndarray) -> float:
    """``fn``'s loss as a float, or a :class:`_Fault` when it is not a finite scalar."""
    value = _call(fn, _DICE_LOSS_CALL, tf.constant(truth), tf.constant(probabilities))
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Fault(f"{_DICE_LOSS_CALL} returned {_kind(value)}, expected a scalar") from None
    if array.ndim:
        raise _Fault(f"{_DICE_LOSS_CALL} returned shape {array.shape}, expected a scalar: average the per-class losses")
    if not np.isfinite(array):
        raise _Fault(f"{_DICE_LOSS_CALL} returned {array}, expected a finite number: add a small ε to the denominator")
    return float(array)


def _loss_gradient_fault(fn: Callable, truth: np.ndarray, probabilities: np.ndarray) -> str | None:
    probabilities = tf.constant(probabilities)
    with tf.GradientTape() as tape:
        tape.watch(probabilities)
        loss = _call(fn, _DICE_LOSS_CALL, tf.constant(truth), probabilities)
    if not tf.is_tensor(loss):
        return (
            f"{_DICE_LOSS_CALL} returned {_kind(loss)}, not a tensor, so no gradient reaches the model: "
            "compute it with keras.ops (or tf), not numpy"
        )
    gradient = tape.gradient(loss, probabilities)
    if gradient is None or not np.any(gradient.numpy()):
        return (
            "no gradient reaches y_pred_probs: argmax, round or a cast to int cuts the graph; "
            "compute Dice from the probabilities themselves"
        )
    if not np.all(np.isfinite(gradient.numpy())):
        return "the gradient is not finite: add a small ε to the denominator"
    return None


def _loss_values_fault(sequence: list[float], background: float) -> str | None:
    perfect, half = sequence[0], sequence[DEGRADATION.index(0.5)]
    if perfect > PERFECT_LOSS:
        what = "return the loss 1 − Dice, not the Dice score" if perfect > 0.9 else "it must be ≈ 0"
        return f"a perfect prediction scores {perfect:.3f}, expected ≤ {PERFECT_LOSS}: {what}"
    if any(worse <= better for better, worse in zip(sequence, sequence[1:])):
        return (
            f"the loss doesn't grow as predictions worsen ({', '.join(f'{v:.3f}' for v in sequence)} from perfect "
            "to a shifted mask): the Dice numerator is the overlap Σ y_true·y_pred"
        )
    if background < BACKGROUND_LOSS or background <= half:
        return (
            f"an all-background prediction scores only {background:.3f} (a half-right one {half:.3f}), expected "
            "≥ 0.5: average Dice over the digit classes in the truth, not all 11 (background is 94% of the pixels)"
        )
    return None


# 7. compile ---------------------------------------------------------------------------------------------------


def check_compiled(model: keras.Model | None) -> CheckResult:
    """Check that ``model`` is compiled to train here: an optimizer, a loss on integer label maps, MeanDigitIoU.

    The loss and the metrics run once on four generated images (``compute_loss`` / ``compute_metrics``, which
    leave the weights and the optimizer untouched); the metric states are reset afterwards.
    """

    def body() -> str:
        if model is None:
            raise _Fault("no model to check: the cell that builds it failed; fix that cell and run it again")
        if getattr(model, "optimizer", None) is None:
            raise _Fault("your model is not compiled: call model.compile(optimizer=..., loss=..., metrics=[...])")
        if model.loss is None:
            raise _Fault("your model is compiled without a loss: pass loss=, e.g. losses.CombinedLoss()")
        images, labels = data.to_model_inputs(*data.generate_labels(4, pool="test"))
        probabilities = _call(model, "your model on four images", images, training=False)
        _compiled_loss(model, images, labels, probabilities)
        names = _compiled_metric_names(model, images, labels, probabilities)
        return f"your model is compiled: {type(model.optimizer).__name__}, a finite loss on label maps, metrics {names}"

    return _checked(body)


def check_compile(fn: Callable, model: keras.Model | None) -> CheckResult:
    """Run a learner's compile step ``fn(model)``, then check the compiled model as :func:`check_compiled` does.

    ``fn`` takes an uncompiled Keras model and compiles it; a stub that raises, or any other error, is one
    ``✗`` line naming it.
    """
    if model is not None:
        try:
            _call(fn, f"{getattr(fn, '__name__', 'compile_model')}(model)", model)
        except _Fault as fault:
            return CheckResult(False, _say(False, str(fault)))
    return check_compiled(model)


def _compiled_loss(model: keras.Model, images, labels, probabilities) -> None:
    """Raise a :class:`_Fault` unless the compiled loss gives a finite scalar on integer label maps."""
    try:
        loss = np.asarray(model.compute_loss(x=images, y=labels, y_pred=probabilities, training=False))
    except Exception as error:
        raise _Fault(
            "the loss fails on integer label maps (B, 64, 84): use a sparse loss, e.g. losses.CombinedLoss() "
            f"({describe_error(error, limit=80)})"
        ) from None
    finally:
        model.reset_metrics()
    if loss.ndim or not np.isfinite(loss):
        raise _Fault(f"the loss gives {loss} on four images, expected a finite number")


def _compiled_metric_names(model: keras.Model, images, labels, probabilities) -> str:
    """The names of the compiled metrics, or a :class:`_Fault` when MeanDigitIoU is missing or misnamed."""
    try:
        model.compute_metrics(images, labels, probabilities)
    except Exception as error:
        raise _Fault(
            "the metrics fail on integer label maps (B, 64, 84): use metrics=[MeanDigitIoU()] "
            f"({describe_error(error, limit=80)})"
        ) from None
    finally:
        model.reset_metrics()
    found = [inner for metric in model.metrics for inner in getattr(metric, "metrics", None) or [metric]]
    found = [metric for metric in found if metric.name != "loss"]
    names = ", ".join(metric.name for metric in found) or "none"
    digit = [metric for metric in found if isinstance(metric, metrics.MeanDigitIoU)]
    if not digit:
        raise _Fault(
            f"metrics lack MeanDigitIoU (found: {names}): add metrics=[MeanDigitIoU()]; "
            "training keeps the epoch with the best val_digit_miou"
        )
    if digit[0].name != "digit_miou":
        raise _Fault(f"MeanDigitIoU is named '{digit[0].name}', expected 'digit_miou': training checkpoints on it")
    return names


# 8. grade -----------------------------------------------------------------------------------------------------


def grade(model: keras.Model | None, split: data.Split | None = None, threshold: float = 0.60) -> GradeResult:
    """The local grader: mean digit IoU of ``model`` on ``split`` (default: the 1,000 test images) ≥ ``threshold``.

    Under :func:`m2nist_seg.core.settings.quick_mode` training was shrunk, so the score is reported but not held to
    the threshold: the line starts with ``○``, ``graded`` and ``passed`` are False, and strict mode doesn't raise.
    """
    if model is None:
        return GradeResult(False, _say(False, "FAIL: no model to grade: the cell that trains it failed"), np.nan, True)
    test = split if split is not None else data.load().test
    where = f"on the {len(test):,} test images"
    try:
        predicted = evaluate.predict(model, test.images)
    except Exception as error:
        text = f"FAIL: your model doesn't run {where} ({describe_error(error)}): check it with check_model"
        return GradeResult(False, _say(False, text), np.nan, True)
    score = metrics.iou_dice(test.labels, predicted).mean_digit_iou
    if settings.quick_mode():
        message = (
            f"{NOT_GRADED} not graded in quick mode: mean digit IoU {score:.3f} {where}; "
            f"the {threshold:.2f} pass mark applies at full settings"
        )
        print(message)
        return GradeResult(False, message, score, False)
    if score >= threshold:
        return GradeResult(True, _say(True, f"PASS: mean digit IoU {score:.3f} ≥ {threshold:.2f} {where}"), score, True)
    text = (
        f"FAIL: mean digit IoU {score:.3f} < {threshold:.2f} {where} "
        "(hint: train longer, or check your loss and model with check_dice_loss and check_model)"
    )
    return GradeResult(False, _say(False, text), score, True)
