"""The command line: every invalid value is one clear line naming the option or file, and a non-zero exit."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from m2nist_seg import cli, data
from m2nist_seg import model as fcn
from m2nist_seg.core import settings


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``python -m m2nist_seg *argv``, run in this process."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *phrases: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


TRAIN_OPTIONS = [
    ("--epochs", "0", "a positive whole number"),
    ("--epochs", "two", "a positive whole number"),
    ("--batch-size", "-4", "a positive whole number"),
    ("--learning-rate", "0", "a positive number"),
    ("--learning-rate", "nan", "a positive number"),
    ("--patience", "0", "a positive whole number"),
    ("--n-images", "0", "a positive whole number"),
    ("--seed", "-1", "a whole number ≥ 0"),
    ("--time-budget-s", "-5", "a positive number"),
    ("--time-budget-s", "inf", "a positive number"),
    ("--dropout", "1.5", "a rate in [0, 1)"),
    ("--elastic-epochs", "-2", "a whole number ≥ 0"),
    ("--warmup-epochs", "-1", "a whole number ≥ 0"),
    ("--variant", "fcn4", "invalid choice"),
    ("--loss", "focal", "invalid choice"),
    ("--source", "web", "invalid choice"),
]


@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize(("option", "value", "expected"), TRAIN_OPTIONS)
def test_invalid_training_options(command, option, value, expected, capsys):
    code, _, err = run_cli([command, option, value], capsys)
    assert_one_line_error(code, err, f"argument {option}", expected)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["generate", "--n", "0"], ("argument --n", "a positive whole number")),
        (["generate", "--n", "-3"], ("argument --n", "a positive whole number")),
        (["generate", "--pool", "holdout"], ("argument --pool", "invalid choice")),
        (["generate", "--seed", "x"], ("argument --seed", "a whole number ≥ 0")),
        (["evaluate", "--split", "dev"], ("argument --split", "invalid choice")),
        (["evaluate", "--seed", "-2"], ("argument --seed", "a whole number ≥ 0")),
        (["evaluate", "--source", "kaggle"], ("directory: found None",)),
        (["predict"], ("the following arguments are required: input",)),
        (["classroom"], ("the following arguments are required: action",)),
        (["fly"], ("argument command", "invalid choice")),
    ],
)
def test_invalid_values_of_other_commands(argv, expected, capsys):
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, *expected)


def test_generate_zero_images_writes_nothing(tmp_path, capsys):
    code, _, err = run_cli(["generate", "--n", "0", "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, "--n")
    assert not (tmp_path / "out").exists()


def test_generate_into_a_folder_that_cannot_be_created(tmp_path, capsys):
    (tmp_path / "file").write_text("in the way")
    code, _, err = run_cli(["generate", "--n", "2", "--out", str(tmp_path / "file" / "sub")], capsys)
    assert_one_line_error(code, err, "--out: cannot create the folder", "file/sub")


def test_generate_keeps_earlier_files_unless_asked(tmp_path, capsys):
    assert run_cli(["generate", "--n", "2", "--out", str(tmp_path)], capsys)[0] == 0
    before = (tmp_path / data.IMAGES_FILE).read_bytes()
    code, _, err = run_cli(["generate", "--n", "3", "--seed", "1", "--out", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "--out", "already exists", "--overwrite")
    assert (tmp_path / data.IMAGES_FILE).read_bytes() == before
    assert run_cli(["generate", "--n", "3", "--seed", "1", "--out", str(tmp_path), "--overwrite"], capsys)[0] == 0
    assert len(data.load_arrays(tmp_path)[0]) == 3


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.keras"
    fcn.build_fcn8(widths=(8, 8, 16, 16, 16), convs_per_block=(1, 1, 1, 1, 1), decoder_width=16).save(path)
    return path


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.uint8])
def test_predict_accepts_kaggles_own_file_types(tmp_path, small_model_file, dtype, capsys):
    images, _ = data.generate_labels(2, seed=3)
    np.save(tmp_path / "combined.npy", images.astype(dtype))
    argv = ["predict", str(tmp_path / "combined.npy"), "--model", str(small_model_file)]
    code, out, err = run_cli([*argv, "--out", str(tmp_path / "masks.png")], capsys)
    assert code == 0, err
    assert (tmp_path / "masks.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_refuses_pixels_outside_0_255(tmp_path, small_model_file, capsys):
    np.save(tmp_path / "bad.npy", np.full((1, 64, 84), 256, dtype=np.int64))
    code, _, err = run_cli(["predict", str(tmp_path / "bad.npy"), "--model", str(small_model_file)], capsys)
    assert_one_line_error(code, err, "bad.npy", "expected pixel values 0–255")


def test_predict_keeps_an_existing_output_unless_asked(tmp_path, small_model_file, capsys):
    images, _ = data.generate_labels(1, seed=3)
    np.save(tmp_path / "x.npy", images)
    (tmp_path / "mine.png").write_bytes(b"a learner's picture")
    argv = ["predict", str(tmp_path / "x.npy"), "--model", str(small_model_file), "--out", str(tmp_path / "mine.png")]
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, "--out", "mine.png already exists")
    assert (tmp_path / "mine.png").read_bytes() == b"a learner's picture"
    assert run_cli([*argv, "--overwrite"], capsys)[0] == 0


def corrupt_copies(model_file, folder):
    """A truncated copy, a copy with its middle overwritten, and a file that is not a zip at all."""
    raw = model_file.read_bytes()
    broken = bytearray(raw)
    broken[len(raw) // 3 : len(raw) // 3 + 4096] = bytes(4096)
    cases = {"truncated": raw[: len(raw) // 2], "scrambled": bytes(broken), "text": b"not a model\n"}
    for name, payload in cases.items():
        (folder / f"{name}.keras").write_bytes(payload)
    return [folder / f"{name}.keras" for name in cases]


@pytest.mark.parametrize("case", [0, 1, 2], ids=["truncated", "scrambled", "text"])
def test_corrupt_model_files_are_one_clear_line(tmp_path, small_model_file, case, capsys):
    path = corrupt_copies(small_model_file, tmp_path)[case]
    images, _ = data.generate_labels(1, seed=3)
    np.save(tmp_path / "x.npy", images)
    for argv in (
        ["evaluate", "--model", str(path)],
        ["predict", str(tmp_path / "x.npy"), "--model", str(path), "--out", str(tmp_path / "p.png")],
    ):
        code, _, err = run_cli(argv, capsys)
        assert_one_line_error(code, err, path.name, "not a readable Keras model")
    assert not (tmp_path / "p.png").exists()


def test_a_missing_data_folder_is_named(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", "--source", "kaggle", "--data-dir", str(tmp_path / "nowhere")], capsys)
    assert_one_line_error(code, err, "nowhere: directory not found")


def test_train_output_dir_that_cannot_be_created(tmp_path, capsys):
    (tmp_path / "file").write_text("in the way")
    code, _, err = run_cli(["train", "--output-dir", str(tmp_path / "file" / "runs"), "--epochs", "1"], capsys)
    assert_one_line_error(code, err, "--output-dir: cannot create the folder")


def test_the_real_entry_point_prints_no_traceback(tmp_path):
    """Through ``python -m``, as a user runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "m2nist_seg", "train", "--time-budget-s", "-5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: argument --time-budget-s")
    assert "Traceback" not in result.stderr


def test_predict_and_evaluate_run_an_exported_onnx_graph(tmp_path, capsys):
    from m2nist_seg.core.settings import MODELS_DIR

    images, _ = data.generate_labels(2, seed=3)
    np.save(tmp_path / "x.npy", images.astype(np.int64))
    onnx_file = MODELS_DIR / "fcn8_m2nist.int8.onnx"
    argv = ["predict", str(tmp_path / "x.npy"), "--model", str(onnx_file), "--out", str(tmp_path / "p.png")]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    code, out, err = run_cli(["evaluate", "--model", str(MODELS_DIR / "fcn8_m2nist.onnx")], capsys)
    assert code == 0, err
    assert "fcn8_m2nist.onnx on 1000 images" in out


def test_a_corrupt_onnx_graph_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "broken.onnx").write_bytes(b"not a graph")
    code, _, err = run_cli(["evaluate", "--model", str(tmp_path / "broken.onnx")], capsys)
    assert_one_line_error(code, err, "broken.onnx", "not a readable ONNX model")


def test_export_keeps_existing_files_unless_asked(tmp_path, small_model_file, capsys):
    model = tmp_path / "mine.keras"
    model.write_bytes(small_model_file.read_bytes())
    (tmp_path / "mine.onnx").write_bytes(b"a learner's earlier export")
    code, _, err = run_cli(["export", "--model", str(model)], capsys)
    assert_one_line_error(code, err, "mine.onnx", "already exist")
    assert (tmp_path / "mine.onnx").read_bytes() == b"a learner's earlier export"


def test_train_run_and_worker_options_are_train_configs_fields_with_its_defaults():
    import dataclasses

    from m2nist_seg.training.config import TrainConfig, from_args
    from m2nist_seg.training.workers import worker_parser

    fields = {spec.name for spec in dataclasses.fields(TrainConfig)} - {"verbose"}
    parsers = {command: cli.build_parser() for command in ("train", "run")}
    for command, parser in parsers.items():
        args = parser.parse_args([command])
        assert fields <= set(vars(args)), f"{command} lacks {fields - set(vars(args))}"
        assert from_args(args) == TrainConfig()
    worker_args = worker_parser().parse_args([])
    assert fields <= set(vars(worker_args))
    assert from_args(worker_args) == TrainConfig()


def test_a_bad_value_gets_the_same_words_from_the_cli_and_from_python(capsys):
    from m2nist_seg.core.errors import M2NISTError
    from m2nist_seg.training.config import TrainConfig

    for field, value, expected in [("batch_size", 0, "a positive whole number"), ("dropout", 1.5, "a rate in [0, 1)")]:
        with pytest.raises(M2NISTError, match=re.escape(f"{field}: found {value!r}, expected {expected}")):
            TrainConfig(**{field: value})
        code, _, err = run_cli(["train", "--" + field.replace("_", "-"), str(value)], capsys)
        assert_one_line_error(code, err, f"found '{value}', expected {expected}")


def test_one_default_output_folder_for_the_cli_and_python(tmp_path):
    probe = (
        "from m2nist_seg import cli; from m2nist_seg.training.config import TrainConfig; "
        "print(cli.build_parser().parse_args(['run']).output_dir); print(TrainConfig().output_dir)"
    )
    for env, expected in [({}, str(settings.RUNS_DIR)), ({"M2NIST_RUNS": str(tmp_path / "elsewhere")}, None)]:
        environment = {k: v for k, v in os.environ.items() if k != "M2NIST_RUNS"} | env
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environment)
        from_cli, from_python = result.stdout.split()
        assert from_cli == from_python == (expected or env["M2NIST_RUNS"]), result.stderr


def test_classroom_nbgrader_writes_a_course_once(tmp_path, capsys):
    code, out, _ = run_cli(["classroom", "nbgrader", str(tmp_path / "course")], capsys)
    assert code == 0 and "nbgrader generate_assignment m2nist" in out
    assert (tmp_path / "course" / "nbgrader_config.py").is_file()
    code, _, err = run_cli(["classroom", "nbgrader", str(tmp_path / "course")], capsys)
    assert_one_line_error(code, err, "nbgrader_config.py: already exists", "--overwrite")
    code, _, err = run_cli(["classroom", "nbgrader", str(tmp_path / "c2"), "--source", str(tmp_path / "none")], capsys)
    assert_one_line_error(code, err, "no such folder, expected the teacher's notebooks")


def test_an_abbreviated_option_is_refused_rather_than_guessed(capsys):
    code, _, err = run_cli(["train", "--time-budget", "5"], capsys)
    assert_one_line_error(code, err, "unrecognized arguments: --time-budget 5")
