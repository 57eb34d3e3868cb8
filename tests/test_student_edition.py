"""The student edition runs top to bottom with every exercise unfinished, and says what to do at each one.

Each notebook of ``classroom/`` is executed under ``M2NIST_QUICK=1`` (without strict checks, as a learner runs
it) in a private runs folder, so that nothing a teacher's run left behind (a learner model saved by notebook 02)
changes what the student edition shows. Every exercise check must print a ``✗`` line with its hint, and the
cells after it must fall back to the reference implementation and say so.
"""

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
STUDENT_NOTEBOOKS = sorted((ROOT / "classroom").glob("*.ipynb"))
SOLUTION = re.compile(r"^\s*### BEGIN SOLUTION", re.M)


def exercise_count(name: str) -> int:
    """How many solution regions the teacher's edition of notebook ``name`` holds."""
    cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
    return sum(len(SOLUTION.findall("".join(cell["source"]))) for cell in cells if cell["cell_type"] == "code")


def stdout_lines(notebook) -> list[str]:
    lines = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout":
                lines.extend(output["text"].splitlines())
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda p: p.stem)
def test_student_notebook_runs_and_flags_each_unfinished_exercise(path, tmp_path, monkeypatch):
    monkeypatch.setenv("M2NIST_QUICK", "1")
    monkeypatch.delenv("M2NIST_STRICT", raising=False)
    monkeypatch.setenv("M2NIST_RUNS", str(tmp_path / "runs"))
    notebook = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(ROOT / "classroom")}}
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources=resources).execute()

    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}" if errors else ""
    lines = stdout_lines(notebook)
    failed = [line for line in lines if line.startswith("✗")]
    exercises = exercise_count(path.name)
    assert len([line for line in failed if "not written yet" in line]) >= exercises, lines
    if exercises:
        assert any(line.startswith("using the reference") for line in lines), "later cells must say they fall back"
    assert not any(line.startswith("✓") and "not written" in line for line in lines)


def test_every_exercise_notebook_has_a_student_edition():
    teacher = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert {p.name for p in STUDENT_NOTEBOOKS} == teacher
