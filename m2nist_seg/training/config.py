"""The training options: :class:`TrainConfig`, the one place where each option's default, help and check live.

Each field of :class:`TrainConfig` carries its help text and its check (:class:`Check`) in its metadata. The
config validates itself with them when it is made (:meth:`TrainConfig.validate`), and the command line's
``train``, ``run`` and worker options are generated from the same fields (:func:`add_options`,
:func:`from_args`): ``--batch-size`` is the field ``batch_size``, its type comes from the field's type hint
(a ``Literal`` gives the choices), and a bad value is refused by the field's own check, with the same words.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.options import (
    FLAG,
    NAME,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    POSITIVE_INTS,
    POSITIVE_NUMBER,
    RATE,
    TEXT,
    Check,
    argument_type,
    require,
)
from m2nist_seg.core.settings import RUNS_DIR
from m2nist_seg.data.augment import DEFAULT_RECIPE, RecipeName
from m2nist_seg.data.splits import Source
from m2nist_seg.model.fcn import DEFAULT_CONVS, DEFAULT_DECODER_WIDTH, DEFAULT_WIDTHS, Variant

Precision = Literal["float32", "mixed_bfloat16"]
LossName = Literal["ce_dice", "weighted_ce_dice", "dice", "ce", "weighted_ce"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
LOSSES: tuple[str, ...] = typing.get_args(LossName)
# The default run's schedule before it gained a warm-up: a peak Adam rate of 8e-3, cosine-decayed from the first
# step. The evidence files (training.experiments) and the course's compile exercise keep it, as they were made.
NO_WARMUP_SCHEDULE: dict[str, float | int] = {"learning_rate": 8e-3, "warmup_epochs": 0}
# The value each of these options had in runs recorded before the option existed, where today's default differs:
# an interrupted run whose record lacks the option resumes only with this value.
VALUES_BEFORE_OPTIONS_EXISTED: dict[str, object] = {"warmup_epochs": 0, "augmentation": "ink"}
# Options that may change between an interrupted run and its resumption: where it runs and how it reports.
RESUMABLE_CHANGES = frozenset({"name", "output_dir", "verbose", "overwrite", "time_budget_s"})


def option(default, help: str, check: Check | None = None, *, command_line: bool = True):
    """A :class:`TrainConfig` field: its default, its help text and its :class:`Check` (None: the field's
    ``Literal`` choices, or no check). ``command_line=False`` keeps it out of the generated options."""
    return field(default=default, metadata={"help": help, "check": check, "command_line": command_line})


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the README's main job. Made with a bad value, it raises
    :class:`~m2nist_seg.core.errors.M2NISTError` naming the first bad field."""

    name: str = option("fcn8", "run name: the run goes to OUTPUT_DIR/NAME", NAME)
    variant: Variant = option("fcn8", "decoder")
    loss: LossName = option("ce_dice", "loss")
    epochs: int = option(8, "maximum epochs", POSITIVE_INT)
    batch_size: int = option(16, "images per step", POSITIVE_INT)
    learning_rate: float = option(8e-3, "peak Adam learning rate", POSITIVE_NUMBER)
    warmup_epochs: int = option(
        2,
        "raise the learning rate from 0 to its peak over this many first epochs (at most epochs - 1)",
        NON_NEGATIVE_INT,
    )
    seed: int = option(0, "random seed", NON_NEGATIVE_INT)
    source: Source = option("generated", "data source")
    data_dir: str | None = option(None, "folder with Kaggle's combined.npy and segmented.npy (source kaggle)", TEXT)
    n_images: int = option(5000, "generated images in all", POSITIVE_INT)
    fresh_digits: bool = option(True, "draw new digit combinations every epoch (generated data)", FLAG)
    distort_digits: bool = option(False, "randomly rotate, scale and shear every training digit", FLAG)
    elastic_epochs: int = option(
        0, "also warp the digits elastically in this many first epochs; needs distort_digits", NON_NEGATIVE_INT
    )
    augment: bool = option(
        False, "augment each batch: affine moves, stroke width, binary pen, contrast, noise (data.augment)", FLAG
    )
    augmentation: RecipeName = option(DEFAULT_RECIPE, "the recipe of data.augment.RECIPES that --augment applies")
    patience: int = option(4, "early-stopping epochs", POSITIVE_INT)
    widths: tuple[int, ...] = option(DEFAULT_WIDTHS, "channels of the encoder's 5 blocks", POSITIVE_INTS)
    convs_per_block: tuple[int, ...] = option(DEFAULT_CONVS, "convolutions in each encoder block", POSITIVE_INTS)
    decoder_width: int = option(DEFAULT_DECODER_WIDTH, "channels of the decoder", POSITIVE_INT)
    dropout: float = option(0.0, "spatial dropout after blocks 4 and 5", RATE)
    precision: Precision = option("float32", "arithmetic: mixed_bfloat16 computes in bfloat16, keeps float32 weights")
    time_budget_s: float | None = option(
        None, "stop training after this many seconds", Check(POSITIVE_NUMBER.accept, "a positive number of seconds")
    )
    deterministic: bool = option(False, "enable TensorFlow op determinism", FLAG)
    output_dir: str = option(str(RUNS_DIR), "folder for runs ($M2NIST_RUNS moves it)", TEXT)
    verbose: bool = option(True, "print one progress line per epoch", FLAG, command_line=False)
    overwrite: bool = option(
        False, "replace a finished or interrupted run of the same name instead of keeping it", FLAG
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            if isinstance(getattr(self, spec.name), list):  # a list from JSON or argparse: the field holds a tuple
                setattr(self, spec.name, tuple(getattr(self, spec.name)))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`M2NISTError` naming the first bad field: each field by its own check, then the rules
        that join two fields."""
        for spec in dataclasses.fields(self):
            value, check = getattr(self, spec.name), field_check(spec)
            if value is None and spec.default is None:
                continue
            if check is not None:
                require(spec.name, value, check)
        if self.elastic_epochs and not self.distort_digits:
            raise M2NISTError(
                f"elastic_epochs: found {self.elastic_epochs!r} with distort_digits={self.distort_digits}, "
                "expected 0, or a positive number of epochs with distort_digits=True"
            )

    @property
    def run_dir(self) -> Path:
        """Where a run of this name goes (:func:`m2nist_seg.training.runs.choose_run_dir` picks another folder
        when it holds a finished run)."""
        return Path(self.output_dir) / self.name

    def as_json(self) -> dict:
        """The fields as JSON-ready values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def resume_key(self) -> dict:
        """The options that must equal an interrupted run's for it to resume, as JSON-ready values."""
        return {k: v for k, v in self.as_json().items() if k not in RESUMABLE_CHANGES}

    @property
    def effective_warmup_epochs(self) -> int:
        """The epochs of warm-up the run gets: ``warmup_epochs``, but at most ``epochs − 1``, so that the
        learning rate always decays over at least one epoch (a one-epoch run has no warm-up)."""
        return min(self.warmup_epochs, self.epochs - 1)


def field_check(spec: dataclasses.Field) -> Check | None:
    """The :class:`Check` of a :class:`TrainConfig` field: its own, or one of its ``Literal`` choices."""
    if spec.metadata.get("check") is not None:
        return spec.metadata["check"]
    choices = literal_choices(spec)
    return Check(lambda v: v in choices, f"one of {', '.join(choices)}") if choices else None


def literal_choices(spec: dataclasses.Field) -> tuple[str, ...]:
    """The values a ``Literal``-typed field allows (empty for other fields)."""
    hint = typing.get_type_hints(TrainConfig)[spec.name]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


def _parser_type(spec: dataclasses.Field, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """The argparse type of one value of ``spec``: ``convert`` it, then apply the field's check (for a field of
    several values, the check of each)."""
    check = field_check(spec)
    return argument_type(convert, check.each or check if check else None)


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per :class:`TrainConfig` field to ``parser`` (not ``verbose``), with the field's default,
    help and check; :func:`from_args` turns the parsed options back into a config."""
    defaults = TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    for spec in dataclasses.fields(TrainConfig):
        if not spec.metadata["command_line"]:
            continue
        default, hint = getattr(defaults, spec.name), hints[spec.name]
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        # argparse shows a --flag/--no-flag option's default itself; a plain flag is off unless given.
        shown_default = default is not None and hint is not bool
        help_text = spec.metadata["help"] + (f" (default: {shown})" if shown_default else "")
        kwargs: dict[str, Any] = {"dest": spec.name, "default": default, "help": help_text.replace("%", "%%")}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if default else "store_true"
        elif literal_choices(spec):
            kwargs["choices"] = literal_choices(spec)
        elif typing.get_origin(hint) is tuple:
            kwargs.update(type=_parser_type(spec, int), nargs="+", metavar="N")
        else:
            base = next(arg for arg in typing.get_args(hint) or (hint,) if arg is not type(None))
            kwargs["type"] = _parser_type(spec, base)
        parser.add_argument(flag_of(spec.name), **kwargs)


def from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of options parsed by a parser given :func:`add_options` (``overrides`` replace
    some of them); a bad combination raises :class:`M2NISTError` naming the field."""
    names = [spec.name for spec in dataclasses.fields(TrainConfig)]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return TrainConfig(**{**values, **overrides})


def flag_of(name: str) -> str:
    """The command-line option of a field: ``--batch-size`` for ``batch_size``."""
    return "--" + name.replace("_", "-")
