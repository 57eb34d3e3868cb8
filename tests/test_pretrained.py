"""The shipped pretrained model reaches the numbers that its report and the README state."""

import json
import re
from pathlib import Path

import keras
import pytest

from m2nist_seg import data, evaluate
from m2nist_seg.model import count_params
from m2nist_seg.settings import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]
REPORT = SHIPPED_MODEL.with_name("report.json")


@pytest.fixture(scope="module")
def shipped_report():
    model = keras.models.load_model(SHIPPED_MODEL)
    return model, evaluate.evaluate(model, data.load().test)


def readme_number(label: str) -> float:
    match = re.search(rf"\| {re.escape(label)} \| ([0-9.]+) \|", (ROOT / "README.md").read_text())
    assert match, f"the README's results table has no row {label!r}"
    return float(match.group(1))


def test_shipped_model_is_small():
    assert SHIPPED_MODEL.stat().st_size < 8 * 2**20


def test_shipped_model_matches_its_report(shipped_report):
    _, report = shipped_report
    shipped = json.loads(REPORT.read_text())
    for key in ("mean_digit_iou", "mean_digit_dice", "pixel_accuracy"):
        assert report[key] == pytest.approx(shipped[key], abs=5e-3), key
    assert report["worst_digit"]["class"] == shipped["worst_digit"]["class"]


def test_shipped_model_reaches_the_readme_numbers(shipped_report):
    """Today's scores agree with the README's to two decimals (within 0.005: rounding both sides to two
    decimals would call 0.8551 and the README's 0.855 different)."""
    model, report = shipped_report
    to_two_decimals = {"abs": 5e-3}
    assert report["mean_digit_iou"] == pytest.approx(readme_number("mean digit IoU"), **to_two_decimals)
    assert report["mean_digit_dice"] == pytest.approx(readme_number("mean digit Dice"), **to_two_decimals)
    assert report["worst_digit"]["iou"] == pytest.approx(readme_number("worst digit IoU"), **to_two_decimals)
    gated = report["ink_gated"]["mean_digit_iou"]
    assert gated == pytest.approx(readme_number("ink-gated mean digit IoU"), **to_two_decimals)
    assert count_params(model) == int(readme_number("parameters"))
