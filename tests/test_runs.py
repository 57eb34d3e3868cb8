"""A run folder's bookkeeping (m2nist_seg.training.runs), on plain files: no model is trained here."""

import json

import pytest

from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.training import runs

KEY = {"epochs": 8, "seed": 0}


def finished(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.MODEL_FILE).write_bytes(b"model")
    (folder / runs.REPORT_FILE).write_text("{}")


def interrupted(folder, key=KEY, epoch=2):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.BACKUP_DIR).mkdir()
    (folder / runs.backup_file(epoch)).write_bytes(b"weights")
    (folder / runs.best_file(epoch)).write_bytes(b"best")
    state = {
        "epoch": epoch,
        "weights": runs.backup_file(epoch),
        "best": {"epoch": epoch, "file": runs.best_file(epoch)},
    }
    runs.write_state(folder, {**state, "config": key})


def test_a_fresh_name_is_used_as_it_is(tmp_path):
    assert runs.run_status(tmp_path / "fcn8") == "empty"
    assert runs.choose_run_dir(tmp_path / "fcn8", KEY, KEY) == tmp_path / "fcn8"


def test_a_finished_run_is_kept_and_the_next_free_name_taken(tmp_path):
    finished(tmp_path / "fcn8")
    finished(tmp_path / "fcn8-2")
    assert runs.run_status(tmp_path / "fcn8") == "finished"
    assert runs.choose_run_dir(tmp_path / "fcn8", KEY, KEY) == tmp_path / "fcn8-3"
    assert (tmp_path / "fcn8" / runs.MODEL_FILE).read_bytes() == b"model"


def test_overwrite_clears_only_what_a_run_wrote(tmp_path):
    finished(tmp_path / "fcn8")
    (tmp_path / "fcn8" / "notes.txt").write_text("mine")
    assert runs.choose_run_dir(tmp_path / "fcn8", KEY, KEY, overwrite=True) == tmp_path / "fcn8"
    assert sorted(p.name for p in (tmp_path / "fcn8").iterdir()) == ["notes.txt"]


def test_an_interrupted_run_of_the_same_options_is_resumed(tmp_path):
    interrupted(tmp_path / "fcn8")
    assert runs.run_status(tmp_path / "fcn8") == "interrupted"
    assert runs.choose_run_dir(tmp_path / "fcn8", KEY, KEY) == tmp_path / "fcn8"
    assert runs.read_state(tmp_path / "fcn8")["epoch"] == 2


def test_an_interrupted_run_of_other_options_is_refused_naming_them(tmp_path):
    interrupted(tmp_path / "fcn8")
    with pytest.raises(M2NISTError, match=r"epochs: 8 → 12; seed: 0 → 1\), expected the same config"):
        runs.choose_run_dir(tmp_path / "fcn8", {"epochs": 12, "seed": 1}, KEY)


def test_an_option_the_record_lacks_counts_as_its_default():
    state = {"config": {"epochs": 8}}
    assert runs.differing_options({"epochs": 8, "warmup": 0}, state, {"warmup": 0}) == []
    assert runs.differing_options({"epochs": 8, "warmup": 1}, state, {"warmup": 0}) == ["warmup: 0 → 1"]


def test_an_unreadable_record_is_one_clear_error(tmp_path):
    (tmp_path / runs.STATE_FILE).write_text("{half")
    with pytest.raises(M2NISTError, match="state.json: unreadable run state"):
        runs.read_state(tmp_path)


def test_files_the_record_does_not_name_are_removed(tmp_path):
    interrupted(tmp_path, epoch=3)
    (tmp_path / runs.backup_file(4)).write_bytes(b"killed epoch")
    (tmp_path / runs.best_file(4)).write_bytes(b"killed epoch")
    (tmp_path / ".state-x1.json").write_text("half")
    runs.remove_unrecorded(tmp_path, runs.read_state(tmp_path))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == [runs.best_file(3), runs.backup_file(3), runs.STATE_FILE]


def test_history_rows_past_the_record_are_trimmed(tmp_path):
    history = tmp_path / runs.HISTORY_FILE
    history.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.4\n")
    runs.trim_history(history, 2)
    assert history.read_text() == "epoch,loss\n0,1.0\n1,0.5\n"
    runs.trim_history(tmp_path / "missing.csv", 1)


def test_a_finished_run_keeps_only_its_results(tmp_path):
    interrupted(tmp_path)
    finished_files = {runs.MODEL_FILE: b"m", runs.REPORT_FILE: b"{}", runs.HISTORY_FILE: b"epoch\n"}
    for name, content in finished_files.items():
        (tmp_path / name).write_bytes(content)
    runs.finish_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(finished_files)
    assert runs.run_status(tmp_path) == "finished"


def test_the_state_record_is_json_written_last(tmp_path):
    runs.write_state(tmp_path, {"epoch": 1, "weights": None, "best": None})
    assert json.loads((tmp_path / runs.STATE_FILE).read_text())["epoch"] == 1


def test_the_shipped_model_folder_is_refused(tmp_path):
    runs.refuse_inside(tmp_path / "runs" / "fcn8", tmp_path / "models")
    for inside in (tmp_path / "models", tmp_path / "models" / "fcn8"):
        with pytest.raises(M2NISTError, match="output_dir: found .*, expected a folder outside the shipped model"):
            runs.refuse_inside(inside, tmp_path / "models")
