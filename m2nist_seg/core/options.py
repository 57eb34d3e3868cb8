"""Checked option values: a :class:`Check` (a rule and the words for what it expects) and the argparse type
made from one, so that the command line and the Python API refuse a bad value with the same words."""

from __future__ import annotations

import argparse
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from m2nist_seg.core.errors import M2NISTError


@dataclass(frozen=True)
class Check:
    """A rule one option's value must follow: ``accept(value)`` is true for a good value, and ``expected`` says
    what a good value is, for the error message. For an option of several values, ``each`` is the rule of one
    of them (the command line reads them one by one)."""

    accept: Callable[[Any], bool]
    expected: str
    each: Check | None = None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


POSITIVE_INT = Check(lambda v: _is_int(v) and v >= 1, "a positive whole number")
NON_NEGATIVE_INT = Check(lambda v: _is_int(v) and v >= 0, "a whole number ≥ 0")
POSITIVE_NUMBER = Check(lambda v: _is_number(v) and v > 0, "a positive number")
RATE = Check(lambda v: _is_number(v) and 0 <= v < 1, "a rate in [0, 1)")
POSITIVE_INTS = Check(
    lambda v: isinstance(v, tuple | list) and len(v) > 0 and all(POSITIVE_INT.accept(x) for x in v),
    "one or more positive whole numbers",
    each=POSITIVE_INT,
)
NAME = Check(lambda v: isinstance(v, str) and v.strip() != "" and "/" not in v, "a non-empty name without '/'")
TEXT = Check(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty text")
FLAG = Check(lambda v: isinstance(v, bool), "True or False")


def in_range(low: float, high: float, *, whole: bool = False) -> Check:
    """The rule "a number (a whole number with ``whole``) in [low, high]"."""
    accept_kind, kind = (_is_int, "a whole number") if whole else (_is_number, "a number")
    return Check(lambda v: accept_kind(v) and low <= v <= high, f"{kind} in [{low}, {high}]")


def require(name: str, value, check: Check) -> None:
    """Raise :class:`M2NISTError` "NAME: found VALUE, expected …" unless ``check`` accepts ``value``: the one
    message of a bad option or argument."""
    if not check.accept(value):
        raise M2NISTError(f"{name}: found {value!r}, expected {check.expected}")


def argument_type(convert: Callable[[str], Any], check: Check | None) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)`` (``int``, ``float``, ``str``), refused with "found 'text', expected
    …" when it fails or the value breaks ``check``."""
    expected = check.expected if check else f"a value of type {convert.__name__}"

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"found {text!r}, expected {expected}") from None
        if check is not None and not check.accept(value):
            raise argparse.ArgumentTypeError(f"found {text!r}, expected {expected}")
        return value

    parse.__name__ = convert.__name__
    return parse
