"""The checks of notebook 02's exercises: the FCN-8, built piece by piece, then whole.

- :func:`check_conv_block`: Conv2D → BatchNormalization → ReLU, halving the map by a stride or a pooling;
- :func:`check_encoder`: scaling, padding and the three pooled outputs;
- :func:`check_decoder`: the learner's decoder on the reference encoder, checked as a whole model;
- :func:`check_model`: FCN-8 wiring, linear scores, aligned crop, softmax, weights that train.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from m2nist_seg import model as fcn
from m2nist_seg.data import HEIGHT, NUM_CLASSES, WIDTH
from m2nist_seg.teaching.checks.feedback import CheckResult, Fault, call_learner, describe_error, kind_of, run_check
from m2nist_seg.teaching.references import reference_encoder

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
_MERGES = {"Add", "Concatenate", "Average", "Maximum"}
_NONLINEAR = {"ReLU", "LeakyReLU", "PReLU", "ELU", "Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "Gelu", "Silu"}
_STEP = ("Conv2D", "BatchNormalization", "ReLU")
_MODEL_OK = (
    "FCN-8 skips from pool4 and pool3, linear scores, crop aligned with the padding, "
    "softmax over 11 classes, every weight gets a gradient"
)


def _expect_tensor(value, call: str) -> None:
    if value is None:
        raise Fault(f"{call} returned None, expected a Keras tensor: did you forget `return x`?")
    if not isinstance(value, keras.KerasTensor):
        raise Fault(f"{call} returned {kind_of(value)}, expected a Keras tensor (the output of a layer)")


def _functional(inputs, outputs, call: str) -> keras.Model:
    try:
        return keras.Model(inputs, outputs)
    except Exception as error:
        raise Fault(
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


# conv_block ---------------------------------------------------------------------------------------------------


def check_conv_block(fn: Callable) -> CheckResult:
    """Check ``fn(x, filters, convs=1, strided=False)`` on ``keras.Input((16, 20, 3))`` for four argument sets.

    Each must give ``convs`` × (3×3 'same' Conv2D → BatchNormalization → ReLU), the first convolution with
    stride 2 when ``strided``, else a final MaxPooling2D(2): a Keras tensor (None, 8, 10, filters).
    """

    def body() -> str:
        for filters, convs, strided in CONV_BLOCK_CASES:
            call = f"conv_block(x, {filters}, convs={convs}, strided={strided})"
            x = keras.Input(CONV_BLOCK_INPUT)
            out = call_learner(fn, call, x, filters, convs=convs, strided=strided)
            _expect_tensor(out, call)
            hint = _conv_block_fault(_operations(_functional(x, out, call)), out, filters, convs, strided)
            if hint:
                raise Fault(f"{call}: {hint}")
        return "conv_block: Conv2D → BatchNormalization → ReLU × convs, halving the map by a stride or a pooling"

    return run_check(body)


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


# encoder ------------------------------------------------------------------------------------------------------


def check_encoder(fn: Callable) -> CheckResult:
    """Check ``fn(image)`` on ``keras.Input((64, 84, 1))`` of raw 0–255 pixels: it must return (pool3, pool4, pool5).

    The first convolution must see the image scaled by 1/255 with 6 zero columns on each side (64×96), and the
    outputs must be 8×12×64, 4×6×128 and 2×3×128, in that order.
    """

    def body() -> str:
        call = "encoder(image)"
        image = keras.Input(IMAGE_INPUT)
        pools = call_learner(fn, call, image)
        if not isinstance(pools, tuple | list) or len(pools) != 3:
            raise Fault(f"{call} returned {kind_of(pools)}, expected a tuple (pool3, pool4, pool5) of 3 Keras tensors")
        for pool in pools:
            _expect_tensor(pool, call)
        model = _functional(image, list(pools), call)
        found = [tuple(pool.shape[1:]) for pool in pools]
        hint = _pool_order_fault(found) or _encoder_input_fault(model, image) or _pool_shape_fault(found)
        if hint:
            raise Fault(f"{call}: {hint}")
        return "encoder: scales by 1/255, pads 84 → 96 columns evenly, returns pool3 8×12, pool4 4×6, pool5 2×3"

    return run_check(body)


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


# decoder and whole model --------------------------------------------------------------------------------------


def check_decoder(fn: Callable) -> CheckResult:
    """Check ``fn(pool3, pool4, pool5)`` on the reference encoder: the model they make must pass :func:`check_model`."""

    def body() -> str:
        call = "fcn8_decoder(pool3, pool4, pool5)"
        image = keras.Input(IMAGE_INPUT, name="image")
        probabilities = call_learner(fn, call, *reference_encoder(image))
        _expect_tensor(probabilities, call)
        hint = _model_fault(_functional(image, probabilities, call), "your decoder")
        if hint:
            raise Fault(hint)
        return f"fcn8_decoder: {_MODEL_OK}"

    return run_check(body)


def check_model(model: keras.Model | None) -> CheckResult:
    """Check a Keras model from raw 0–255 images (N, 64, 84, 1) to class probabilities (N, 64, 84, 11).

    In this order: layers built on the model's tensors that never reach its output, the skips from pool4 and
    pool3 (an Add at 1/16 and 1/8 of the padded input), nonlinear score layers, a crop that doesn't undo the
    padding side by side, the output shape, a sigmoid output, weights that get no gradient, probabilities
    that don't sum to 1.
    """

    def body() -> str:
        if model is None:
            raise Fault("no model to check: the cell that builds it failed; fix that cell and run it again")
        if not isinstance(model, keras.Model):
            raise Fault(f"expected a keras.Model, found {kind_of(model)}")
        hint = _model_fault(model, "your model")
        if hint:
            raise Fault(hint)
        return f"your model: {_MODEL_OK}"

    return run_check(body)


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
        probabilities = tf.cast(call_learner(model, f"{who} on two images", images, training=False), tf.float32)
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
