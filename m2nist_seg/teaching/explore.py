"""Interactive exploration of a trained FCN-8: draw or compose digits and watch the model segment them.

The logic keeps its state in NumPy arrays and runs without a browser:

- :class:`DrawingBoard`: a 64×84 image drawn with a round, soft-edged pen (like MNIST ink), an eraser and clear;
- :class:`Composer`: 2–3 test-pool digits placed in the M2NIST recipe's slots, rendered by :func:`data.render`;
- :class:`Predictor`: a model and its copies with skip connections switched off; it turns an image into a
  :class:`View` (label maps, confidence, scores);
- :class:`Debouncer`: runs a callback once after a burst of changes.

:func:`explorer` wires them into a JupyterLab widget (ipywidgets and ipycanvas, imported there only).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import keras
import numpy as np
import pandas as pd
from scipy.special import softmax

from m2nist_seg import data
from m2nist_seg.core import settings
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.data.strokes import PEN_WIDTH, distance_to_polyline, pen_ink
from m2nist_seg.evaluation import evaluate, metrics
from m2nist_seg.viz import plots

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

DEBOUNCE_SECONDS = 0.15
CANVAS_SCALE = 6
OUTPUT_SCALE = 4
MY_MODEL = settings.RUNS_DIR / "notebook" / "model.keras"
SKIP_SETTINGS: dict[str, tuple[int, ...]] = {"no pool3, no pool4": (3, 4), "no pool3": (3,), "full FCN-8": ()}


class DrawingBoard:
    """A greyscale drawing: ``image`` uint8 (64, 84), values 0–255, 0 is background."""

    def __init__(self) -> None:
        self.image = np.zeros(data.IMAGE_SHAPE, dtype=np.uint8)

    def stroke(self, points: Sequence[tuple[float, float]], width: float = PEN_WIDTH, erase: bool = False) -> None:
        """Draw (or with ``erase``, rub out) a polyline through ``points``: (row, col) pairs in image pixels.

        The pen is round: full ink up to ``width / 2 - 0.75`` pixels from the line, then a linear fade over
        ``PEN_EDGE`` pixels, like the anti-aliased edges of MNIST strokes (:func:`data.strokes.pen_ink`). Ink
        combines by maximum.
        """
        ink = pen_ink(distance_to_polyline(points), width)
        if erase:
            self.image = np.minimum(self.image, 255 - ink).astype(np.uint8)
        else:
            self.image = np.maximum(self.image, ink).astype(np.uint8)

    def clear(self) -> None:
        """Blank the image."""
        self.image = np.zeros(data.IMAGE_SHAPE, dtype=np.uint8)


class Composer:
    """Test-pool digits placed by the M2NIST recipe: slot ``i``'s 28×28 box starts at column ``i·28 + col``,
    ``col`` in [0, 10), and row ``row`` in [0, 37); boxes may overlap. ``image`` and ``labels`` are uint8 (64, 84)."""

    def __init__(self) -> None:
        self.digit = np.full(data.MAX_DIGITS, -1, dtype=np.int64)
        self.row = np.zeros(data.MAX_DIGITS, dtype=np.int64)
        self.col = np.arange(data.MAX_DIGITS, dtype=np.int64) * data.DIGIT_SIZE
        pool = data.digit_pool("test")
        classes = data.mnist_digits()[1][pool]
        self.members = [pool[classes == c] for c in range(data.NUM_DIGITS)]
        self.image, self.labels = self._render()

    @staticmethod
    def max_col(slot: int) -> int:
        """The largest column offset of ``slot`` that keeps its box inside the image (the third slot: 0)."""
        return min(data.COLUMN_JITTER - 1, data.WIDTH - data.DIGIT_SIZE * (slot + 1))

    def choose(self, slot: int, digit_class: int, index: int, row: int, col: int) -> None:
        """Put test-pool digit number ``index`` of class ``digit_class`` in ``slot`` at offsets ``row``, ``col``."""
        if not 0 <= slot < data.MAX_DIGITS:
            raise M2NISTError(f"slot: found {slot}, expected 0–{data.MAX_DIGITS - 1}")
        limits = {
            "digit_class": (digit_class, data.NUM_DIGITS - 1),
            "index": (index, len(self.members[0]) - 1),
            "row": (row, data.ROW_OFFSETS - 1),
            "col": (col, self.max_col(slot)),
        }
        for name, (value, top) in limits.items():
            if not 0 <= value <= top:
                raise M2NISTError(f"{name}: found {value}, expected 0–{top}")
        self.digit[slot] = self.members[digit_class][index]
        self.row[slot], self.col[slot] = row, slot * data.DIGIT_SIZE + col
        self.image, self.labels = self._render()

    def remove(self, slot: int) -> None:
        """Empty ``slot``."""
        self.digit[slot] = -1
        self.image, self.labels = self._render()

    def layout(self) -> data.Layout:
        """The equivalent one-image :class:`data.Layout`."""
        return data.Layout(digit=self.digit[None].copy(), row=self.row[None].copy(), col=self.col[None].copy())

    def _render(self) -> tuple[np.ndarray, np.ndarray]:
        images, labels = data.render(self.layout())
        return images[0], labels[0]


class View(NamedTuple):
    """What a model makes of one image.

    ``plain`` and ``gated``: label maps uint8 (64, 84) (:func:`evaluate.predict_both`); ``confidence``: the
    largest softmax probability per pixel, float32 (64, 84); ``skips``: one plain label map per
    :data:`SKIP_SETTINGS` name (empty when the model is no FCN-8 from ``build_fcn``); ``scores``: per-class IoU
    and Dice against the true labels (``None`` without them).
    """

    plain: np.ndarray
    gated: np.ndarray
    confidence: np.ndarray
    skips: dict[str, np.ndarray]
    scores: metrics.Scores | None


def without_skips(model: keras.Model, skips: tuple[int, ...]) -> keras.Model:
    """A copy of a ``build_fcn`` model whose ``decoder_score_pool{k}`` kernels and biases are zero for each ``k``
    in ``skips``: its fusions add nothing there. Raises :class:`M2NISTError` if the model lacks such a layer."""
    names = {layer.name for layer in model.layers}
    for skip in skips:
        if f"decoder_score_pool{skip}" not in names:
            raise M2NISTError(f"model {model.name!r}: the skip view needs an FCN-8 model built by build_fcn")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for skip in skips:
        layer = copy.get_layer(f"decoder_score_pool{skip}")
        layer.set_weights([np.zeros_like(weight) for weight in layer.get_weights()])
    return copy


class Predictor:
    """A trained model, and its :func:`without_skips` copies when it is an FCN-8 built by ``build_fcn``."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        try:
            self.skip_models = {label: without_skips(model, skips) for label, skips in SKIP_SETTINGS.items()}
            self.skip_note = ""
        except M2NISTError as err:
            self.skip_models, self.skip_note = {}, str(err)

    def view(self, image: np.ndarray, labels: np.ndarray | None = None) -> View:
        """The :class:`View` of ``image`` uint8 (64, 84); with its true ``labels`` uint8 (64, 84), the scores."""
        plain, gated = (maps[0] for maps in evaluate.predict_both(self.model, image[None]))
        scores = evaluate.class_scores(self.model, image[None])[0]
        confidence = softmax(scores, axis=-1).max(axis=-1)
        skips = {label: evaluate.predict(model, image[None])[0] for label, model in self.skip_models.items()}
        truth = None if labels is None else metrics.iou_dice(labels, plain)
        return View(plain, gated, confidence.astype(np.float32), skips, truth)


def load_predictor(path: str | os.PathLike) -> tuple[Predictor | None, str]:
    """A :class:`Predictor` for the ``.keras`` model at ``path`` (tried on a blank image) and one line saying what
    happened; ``(None, reason)`` when it cannot be loaded or used. Never raises."""
    name = settings.shown_path(path)
    try:
        predictor = Predictor(evaluate.load_model(path))
        predictor.view(np.zeros(data.IMAGE_SHAPE, dtype=np.uint8))
    except Exception as err:  # a learner's file can fail in many ways: report it in one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return None, f"could not load {name}: {reason}"
    note = f"; {predictor.skip_note}" if predictor.skip_note else ""
    return predictor, f"model {predictor.model.name!r} from {name}{note}"


def score_table(scores: metrics.Scores) -> pd.DataFrame:
    """IoU and Dice of the classes present in the truth or the prediction (others are NaN), to 3 places."""
    table = pd.DataFrame({"IoU": scores.iou, "Dice": scores.dice}, index=pd.Index(data.CLASS_NAMES, name="class"))
    return table.dropna().round(3)


class Debouncer:
    """Runs ``callback`` once, ``delay`` seconds after the last :meth:`trigger` of a burst.

    Nothing runs by itself: an event loop (or a test, with a fake ``clock``) calls :meth:`poll`.
    """

    def __init__(self, callback: Callable[[], None], delay: float = DEBOUNCE_SECONDS, clock=time.monotonic) -> None:
        self.callback, self.delay, self.clock = callback, delay, clock
        self.due: float | None = None

    def trigger(self) -> None:
        """Note a change: the callback runs ``delay`` seconds from now, unless another change comes first."""
        self.due = self.clock() + self.delay

    def poll(self) -> float | None:
        """Run the callback if it is due; return the seconds left to wait, or ``None`` when nothing is pending."""
        if self.due is None:
            return None
        left = self.due - self.clock()
        if left > 0:
            return left
        self.flush()
        return None

    def flush(self) -> None:
        """Run the callback now if a change is pending."""
        if self.due is not None:
            self.due = None
            self.callback()


def png(rgb: np.ndarray, scale: int = OUTPUT_SCALE) -> bytes:
    """An RGB image float in [0, 1] or uint8, (H, W, 3), as PNG bytes enlarged ``scale`` times (sharp pixels)."""
    from PIL import Image

    pixels = np.asarray(rgb)
    pixels = pixels if pixels.dtype == np.uint8 else np.round(255 * pixels).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.repeat(scale, 0).repeat(scale, 1)).save(buffer, format="PNG")
    return buffer.getvalue()


def grey(image: np.ndarray) -> np.ndarray:
    """A greyscale image uint8 (H, W), ink 255, as RGB uint8 (H, W, 3): dark ink on white, as in the figures."""
    return np.repeat((255 - image)[..., None], 3, axis=-1)


def confidence_rgb(confidence: np.ndarray) -> np.ndarray:
    """Confidence float (H, W) in [0, 1] as RGB float (H, W, 3) in the viridis colour map (yellow = sure)."""
    import matplotlib

    return matplotlib.colormaps["viridis"](confidence)[..., :3]


@plots.themed
def plot_view(image: np.ndarray, view: View) -> Figure:
    """A figure of a :class:`View`: the image, plain and ink-gated prediction, confidence, then the skip view."""
    import matplotlib.pyplot as plt

    panels = {
        "image": grey(image),
        "prediction": plots.colorize(view.plain),
        "ink-gated": plots.colorize(view.gated),
        "confidence": confidence_rgb(view.confidence),
        **{label: plots.colorize(labels) for label, labels in view.skips.items()},
    }
    fig, axes = plt.subplots(1 + bool(view.skips), 4, figsize=(12, 2.2 * (1 + bool(view.skips))), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, panel) in zip(axes.flat, panels.items()):
        ax.imshow(panel)
        ax.set_title(title, fontsize=9)
    fig.legend(handles=plots.legend_handles(), loc="lower center", ncol=11, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def explorer(model_path: str | os.PathLike | None = None) -> ipywidgets.VBox:
    """The interactive explorer for a notebook cell: an ``ipywidgets.VBox``.

    Draw on the canvas (tab "Draw") or compose test digits (tab "Compose"); 150 ms after the last change the
    model's views update. ``model_path`` is the ``.keras`` model to start with (default: the shipped one).
    """
    import ipywidgets as widgets
    from ipycanvas import Canvas
    from matplotlib.colors import to_hex

    board, composer = DrawingBoard(), Composer()
    predictor, message = load_predictor(model_path or settings.SHIPPED_MODEL)
    state = {"predictor": predictor, "timer": None}

    def picture(title: str, scale: int = OUTPUT_SCALE) -> tuple[widgets.VBox, widgets.Image]:
        image = widgets.Image(format="png", layout=widgets.Layout(width=f"{data.WIDTH * scale}px"))
        image.add_class("m2nist-" + re.sub(r"\W+", "-", title).strip("-"))
        return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), image]), image

    def refresh() -> None:
        if state["predictor"] is None:
            return
        composing = tabs.selected_index == 1
        image, labels = (composer.image, composer.labels) if composing else (board.image, None)
        view = state["predictor"].view(image, labels)
        outputs["input"].value = png(grey(image))
        outputs["prediction"].value = png(plots.colorize(view.plain))
        outputs["ink-gated"].value = png(plots.colorize(view.gated))
        outputs["confidence"].value = png(confidence_rgb(view.confidence))
        for label, skip_image in skip_images.items():
            skip_image.value = png(plots.colorize(view.skips[label])) if view.skips else b""
        skip_note.value = state["predictor"].skip_note
        scores.value = (
            score_table(view.scores).to_html()
            if composing
            else "<i>A drawing has no true mask: compose digits to see IoU and Dice.</i>"
        )

    debouncer = Debouncer(refresh)

    def tick() -> None:
        left = debouncer.poll()
        state["timer"] = None if left is None else asyncio.get_running_loop().call_later(left, tick)

    def changed(_=None) -> None:
        debouncer.trigger()
        if state["timer"] is None:
            state["timer"] = asyncio.get_running_loop().call_later(debouncer.delay, tick)

    # The model: the shipped one, the learner's from notebook 03, or any .keras path.
    choices = {"shipped model": settings.SHIPPED_MODEL}
    if MY_MODEL.is_file():
        choices["my model from notebook 03"] = MY_MODEL
    model_menu = widgets.Dropdown(options=list(choices), description="model")
    path_box = widgets.Text(placeholder="or any .keras path", layout=widgets.Layout(width="320px"))
    load_button = widgets.Button(description="Load")
    status = widgets.Label(message)

    def use(path: str | os.PathLike) -> None:
        new, status.value = load_predictor(path)
        if new is not None:
            state["predictor"] = new
            refresh()

    model_menu.observe(lambda change: use(choices[change["new"]]), names="value")
    load_button.on_click(lambda _: use(path_box.value.strip()))

    # Drawing: the canvas shows board.image; mouse positions are in image pixels (pixel centres at +0.5).
    canvas = Canvas(
        width=data.WIDTH,
        height=data.HEIGHT,
        layout=widgets.Layout(width=f"{data.WIDTH * CANVAS_SCALE}px", height=f"{data.HEIGHT * CANVAS_SCALE}px"),
    )
    canvas.add_class("m2nist-canvas")
    pen_width = widgets.FloatSlider(value=PEN_WIDTH, min=1.0, max=8.0, step=0.5, description="pen width")
    eraser = widgets.ToggleButton(description="eraser")
    clear = widgets.Button(description="clear")
    pen = {"at": None}

    def show_board() -> None:
        canvas.put_image_data(255 - board.image)  # 2-D: sent as a lossless PNG (RGB would go as JPEG)

    def draw(points: list[tuple[float, float]]) -> None:
        board.stroke(points, pen_width.value, erase=eraser.value)
        show_board()
        changed()

    def down(x: float, y: float) -> None:
        pen["at"] = (y - 0.5, x - 0.5)
        draw([pen["at"]])

    def move(x: float, y: float) -> None:
        if pen["at"] is not None:
            point = (y - 0.5, x - 0.5)
            draw([pen["at"], point])
            pen["at"] = point

    def lift(x: float, y: float) -> None:
        pen["at"] = None

    def wipe(_) -> None:
        board.clear()
        show_board()
        changed()

    canvas.on_mouse_down(down)
    canvas.on_mouse_move(move)
    canvas.on_mouse_up(lift)
    canvas.on_mouse_out(lift)
    canvas.on_client_ready(show_board)
    clear.on_click(wipe)
    show_board()
    draw_panel = widgets.HBox([canvas, widgets.VBox([pen_width, eraser, clear])])

    # Composing: one column of controls per slot; the first two slots start filled.
    preview_box, preview = picture("composed image", CANVAS_SCALE)
    columns = []
    for slot, (digit_class, row, col) in enumerate([(3, 18, 4), (8, 6, 6), (1, 20, 0)]):
        on = widgets.Checkbox(value=slot < 2, description=f"digit {slot + 1}")
        controls = {
            "digit_class": widgets.Dropdown(options=range(data.NUM_DIGITS), value=digit_class, description="class"),
            "index": widgets.IntSlider(0, 0, len(composer.members[0]) - 1, description="which one"),
            "row": widgets.IntSlider(row, 0, data.ROW_OFFSETS - 1, description="row"),
            "col": widgets.IntSlider(col, 0, composer.max_col(slot), description="column +"),
        }

        def place(_=None, slot=slot, on=on, controls=controls) -> None:
            if on.value:
                composer.choose(slot, **{name: control.value for name, control in controls.items()})
            else:
                composer.remove(slot)
            preview.value = png(grey(composer.image), CANVAS_SCALE)
            changed()

        for control in (on, *controls.values()):
            control.observe(place, names="value")
        if on.value:
            composer.choose(slot, digit_class, 0, row, col)
        columns.append(widgets.VBox([on, *controls.values()]))
    preview.value = png(grey(composer.image), CANVAS_SCALE)
    compose_panel = widgets.VBox([preview_box, widgets.HBox(columns)])

    tabs = widgets.Tab(children=[draw_panel, compose_panel], titles=("Draw", "Compose"))
    tabs.observe(changed, names="selected_index")
    panels = {title: picture(title) for title in ("input", "prediction", "ink-gated", "confidence")}
    outputs = {title: image for title, (_, image) in panels.items()}
    skip_panels = {label: picture(label) for label in SKIP_SETTINGS}
    skip_images = {label: image for label, (_, image) in skip_panels.items()}
    skip_note, scores = widgets.Label(), widgets.HTML()
    legend = " ".join(
        f'<span style="background:{to_hex(colour)};color:white;padding:0 6px">{name}</span>'
        for name, colour in zip(data.CLASS_NAMES, plots.PALETTE)
    )
    refresh()
    return widgets.VBox(
        [
            widgets.HTML(
                "<b>FCN-8 explorer</b>: draw digits or compose test digits, and watch the model segment them. "
                "<style>.m2nist-canvas {image-rendering: pixelated; border: 1px solid #888; cursor: crosshair}</style>"
            ),
            widgets.HBox([model_menu, path_box, load_button]),
            status,
            tabs,
            widgets.HTML(legend),
            widgets.HBox([box for box, _ in panels.values()]),
            widgets.HTML("<b>What each skip adds</b> (the same model, with skip contributions switched off)"),
            widgets.HBox([box for box, _ in skip_panels.values()]),
            skip_note,
            scores,
        ]
    )
