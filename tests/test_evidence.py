"""The evidence files behind the notebooks' claims: readable, summarised faithfully, and quoted right in the README."""

import json
import re
from pathlib import Path

import pytest

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.training import experiments
from m2nist_seg.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def fake_result() -> dict:
    runs = [
        {"arm": arm, "seed": seed, "budget": 2, "test_mean_digit_iou": value}
        for arm, seed, value in (("ce", 0, 0.4), ("ce", 1, 0.6), ("ce_dice", 0, 0.7), ("ce_dice", 1, 0.8))
    ]
    return {"experiment": "fake", "command": "python benchmarks/bench_evidence.py fake", "runs": runs}


def test_evidence_round_trips_and_a_missing_file_names_the_command(tmp_path):
    path = experiments.save_evidence(fake_result(), tmp_path)
    assert path.name == "fake.json"
    assert experiments.load_evidence("fake", tmp_path) == fake_result()
    with pytest.raises(M2NISTError, match=r"bench_evidence.py other"):
        experiments.load_evidence("other", tmp_path)


def test_summary_gives_mean_spread_and_seed_count():
    table = experiments.summary(fake_result())
    assert table.loc["ce"].tolist() == pytest.approx([0.5, 0.4, 0.6, 2])
    assert table.loc["ce_dice"].tolist() == pytest.approx([0.75, 0.7, 0.8, 2])


@pytest.mark.parametrize("name", sorted(experiments.EXPERIMENTS))
def test_committed_evidence_has_two_seeds_per_arm_and_the_readme_quotes_it(name):
    result = experiments.load_evidence(name)
    assert result["command"] == f"{experiments.EVIDENCE_COMMAND} {name}"
    by = ("budget", "arm") if name == "losses" else ("arm",)
    assert (experiments.summary(result, by)["seeds"] == 2).all()
    readme = (ROOT / "README.md").read_text()
    row = re.search(rf"^\| .*`{name}\.json`.*$", readme, re.M)
    assert row, f"the README's evidence table has no row for {name}.json"
    quoted = readme[row.start() :]
    for run in result["runs"]:
        assert f"{run['test_mean_digit_iou']:.3f}" in quoted, (name, run["arm"], run["seed"])


def test_evidence_files_are_small():
    for path in experiments.EVIDENCE_DIR.glob("*.json"):
        assert path.stat().st_size < 200_000, path.name
        json.loads(path.read_text())


def test_label_maps_survive_the_evidence_encoding():
    import numpy as np

    labels = np.random.default_rng(0).integers(0, 11, size=(3, 64, 84)).astype(np.uint8)
    encoded = experiments.encode_label_maps(labels)
    assert [len(text) for text in encoded] == [64 * 84] * 3
    assert set("".join(encoded)) <= set("0123456789a")
    np.testing.assert_array_equal(experiments.decode_label_maps(encoded), labels)


def test_evidence_trains_on_the_schedule_it_was_made_with(tmp_path):
    """The committed evidence was trained at Adam 8e-3 without warm-up; the default run has moved on since, and
    a re-run of the evidence must not move with it."""
    config = experiments.evidence_config(str(tmp_path), "ce-8-0", epochs=8, seed=0, loss="ce")
    assert (config.learning_rate, config.warmup_epochs) == (8e-3, 0)
    assert (config.patience, config.loss) == (8, "ce")
    assert (TrainConfig().learning_rate, TrainConfig().warmup_epochs) != (8e-3, 0)


def test_the_default_schedule_is_the_one_the_validation_evidence_chose():
    """``benchmarks/bench_schedule.py`` trained the default run under several peak rates and warm-ups and scored
    each on validation images only; the default is the arm with the highest score on its 5,000 further
    validation images, and the README's schedule table quotes every arm."""
    evidence = json.loads((experiments.EVIDENCE_DIR / "schedule.json").read_text())
    arms = evidence["arms"]
    chosen = max(arms, key=lambda arm: arms[arm]["extra_val_digit_miou"])
    default = TrainConfig()
    assert arms[chosen]["changed"] == {"learning_rate": default.learning_rate, "warmup_epochs": default.warmup_epochs}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**The default run's schedule.**") :]
    for arm, scores in arms.items():
        row = re.search(rf"^\| `?{re.escape(arm)}`? \|.*$", section, re.M)
        assert row, f"the README's schedule table has no row for {arm}"
        for figure in ("best_val_digit_miou", "extra_val_digit_miou"):
            assert f"{scores[figure]:.4f}" in row.group(0), (arm, figure)
