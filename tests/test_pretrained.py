"""The shipped pretrained model reaches the numbers that its report and the README state."""

import json
import re
from pathlib import Path

import keras
import pytest

from m2nist_seg import data
from m2nist_seg.core.settings import SHIPPED_MODEL
from m2nist_seg.evaluation import evaluate, robustness
from m2nist_seg.model import count_params

ROOT = Path(__file__).resolve().parents[1]
REPORT = SHIPPED_MODEL.with_name("report.json")


@pytest.fixture(scope="module")
def shipped_report():
    model = keras.models.load_model(SHIPPED_MODEL)
    return model, evaluate.evaluate(model, data.load().test)


def readme_value(label: str) -> str:
    """The value of one row of the README's results tables, as printed."""
    match = re.search(rf"\| {re.escape(label)} \| ([0-9.]+) \|", (ROOT / "README.md").read_text())
    assert match, f"the README's results table has no row {label!r}"
    return match.group(1)


def test_shipped_model_is_small():
    assert SHIPPED_MODEL.stat().st_size < 8 * 2**20


def test_shipped_model_matches_its_report_exactly(shipped_report):
    """Every evaluation number of ``models/report.json`` is what the shipped model scores today (the report
    also records how it was trained, which evaluation cannot reproduce)."""
    _, report = shipped_report
    shipped = json.loads(REPORT.read_text())
    assert {key: value for key, value in shipped.items() if key != "training"} == json.loads(json.dumps(report))


def test_the_readme_prints_the_report_rounded(shipped_report):
    model, report = shipped_report
    assert readme_value("mean digit IoU") == f"{report['mean_digit_iou']:.3f}"
    assert readme_value("mean digit Dice") == f"{report['mean_digit_dice']:.3f}"
    assert readme_value("worst digit IoU") == f"{report['worst_digit']['iou']:.3f}"
    assert readme_value("pixel accuracy") == f"{report['pixel_accuracy']:.3f}"
    assert readme_value("ink-gated mean digit IoU") == f"{report['ink_gated']['mean_digit_iou']:.3f}"
    assert readme_value("ink-gated mean digit Dice") == f"{report['ink_gated']['mean_digit_dice']:.3f}"
    assert readme_value("parameters") == str(count_params(model))


def test_the_report_records_a_reproducible_run():
    """The shipped report names the README's run, under the CLI's relative runs folder, not a scratch one."""
    training = json.loads(REPORT.read_text())["training"]
    assert training["run"] == training["config"]["name"] == "fcn8_m2nist"
    assert training["config"]["output_dir"] == "runs"
    readme = (ROOT / "README.md").read_text()
    options = {"epochs": "--epochs", "patience": "--patience", "batch_size": "--batch-size"}
    for field, option in options.items():
        assert f"{option} {training['config'][field]}" in readme, option


def test_the_report_records_the_augmentation_recipe_and_the_validation_scores_that_chose_it():
    """The shipped run's recipe is the one the validation evidence chose: of the arms that
    ``benchmarks/bench_augment.py`` trained, the one whose lowest validation row of the robustness suite is
    highest; the README quotes every arm's clean and lowest row."""
    from dataclasses import asdict

    from m2nist_seg.data.augment import DEFAULT_RECIPE, RECIPES

    training = json.loads(REPORT.read_text())["training"]
    selection = training["selection"]
    assert training["config"]["augment"] is True
    assert training["config"]["augmentation"] == selection["augmentation"] == DEFAULT_RECIPE
    assert selection["recipe"] == asdict(RECIPES[DEFAULT_RECIPE])
    evidence = json.loads((ROOT / selection["evidence"]).read_text())
    lowest = {arm: min(scores["validation_robustness"].values()) for arm, scores in evidence["arms"].items()}
    assert max(lowest, key=lowest.get) == selection["augmentation"]
    assert selection["validation_lowest_row"] == pytest.approx(lowest)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Robust to what learners draw") :]
    for arm, scores in evidence["arms"].items():
        row = re.search(rf"^\| `?{re.escape(arm)}`? \|.*$", section, re.M)
        assert row, f"the README's recipe table has no row for {arm}"
        assert f"{scores['validation_robustness']['clean']:.3f}" in row.group(0), arm
        assert f"{lowest[arm]:.3f}" in row.group(0), arm


def test_the_report_records_the_validation_scores_that_chose_the_training_length():
    """Each longer run replaced the one shipped before it because its validation split scored higher, clean and in
    every row of the robustness suite; the shipped run is the last, the one the record calls shipped, and the
    README quotes its clean validation score beside that of the run it replaced."""
    training = json.loads(REPORT.read_text())["training"]
    length = training["selection"]["length"]
    arms = list(length["arms"].items())
    *replaced, (before, before_scores), (shipped, shipped_scores) = arms
    assert shipped.endswith("(shipped)") and f"{training['config']['epochs']} epochs" in shipped
    assert all(name.endswith("(shipped before)") for name, _ in [*replaced, (before, before_scores)])
    assert shipped_scores["best_epoch"] == training["best_epoch"]
    assert shipped_scores["clean"] == pytest.approx(training["best_val_digit_miou"], abs=1e-12), (
        "the clean row is the checkpoint's own score"
    )
    for (_, earlier), (_, later) in zip(arms, arms[1:]):
        assert later["clean"] > earlier["clean"] and later["lowest_row"] > earlier["lowest_row"]
    assert length["rows_higher"] == length["rows"] == len(robustness.SPLIT_CONDITIONS)
    section = (ROOT / "README.md").read_text()
    section = section[section.index("**Training it longer, chosen on validation.**") :]
    quoted = f"{shipped_scores['clean']:.3f} against {before_scores['clean']:.3f}"
    assert quoted in " ".join(section.split()), quoted
