"""The rules options and arguments follow (core.options), and the one message a bad value gets."""

import math

import numpy as np
import pytest

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.options import NON_NEGATIVE_INT, in_range, require


def test_in_range_accepts_the_closed_interval_and_refuses_what_lies_outside():
    level = in_range(0.5, 16)
    assert all(level.accept(v) for v in (0.5, 1, 16, np.float32(2.5), np.int64(3)))
    assert not any(level.accept(v) for v in (0.49, 16.01, -1, math.nan, math.inf, "3", None, True))
    assert level.expected == "a number in [0.5, 16]"


def test_a_whole_range_refuses_fractions_and_booleans():
    pixels = in_range(1, 10, whole=True)
    assert all(pixels.accept(v) for v in (1, 10, np.uint8(5)))
    assert not any(pixels.accept(v) for v in (0, 11, 2.0, 1.5, True, False))
    assert pixels.expected == "a whole number in [1, 10]"


def test_require_passes_a_good_value_and_names_a_bad_one_in_one_line():
    require("pixels", 3, in_range(1, 10, whole=True))
    require("n", 0, NON_NEGATIVE_INT)
    with pytest.raises(M2NISTError) as raised:
        require("sd", -1, in_range(0, 255))
    assert str(raised.value) == "sd: found -1, expected a number in [0, 255]"
    with pytest.raises(M2NISTError, match=r"^n: found 2\.5, expected a whole number ≥ 0$"):
        require("n", 2.5, NON_NEGATIVE_INT)
