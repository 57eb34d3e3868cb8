"""The course under real nbgrader: nbgrader metadata in the teacher's edition, and a course folder that grades.

`python -m m2nist_seg classroom nbgrader DIR` writes the course; nbgrader generates the assignment from the
teacher's edition, then autogrades three submissions in quick mode: the untouched release scores 0, the
teacher's solution full marks, and a partly solved one the points of its finished exercises only. Its feedback
shows each check's ✗ line. Only notebooks 01–03 hold exercises, so the graded assignment keeps just those three
(the others would add minutes and no points).
"""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m2nist_seg.teaching import classroom

ROOT = Path(__file__).resolve().parents[1]
TEACHER = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXERCISE_NOTEBOOKS = ("01_explore_the_data.ipynb", "02_build_the_model.ipynb", "03_train.ipynb")
GUIDE = ROOT / "classroom" / "README.md"


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_points(paths) -> dict[str, float]:
    """grade_id → points of every graded cell of the notebooks ``paths``."""
    return {
        nbgrader_meta(cell)["grade_id"]: nbgrader_meta(cell)["points"]
        for path in paths
        for cell in cells(path)
        if nbgrader_meta(cell).get("grade")
    }


def test_every_solution_is_an_nbgrader_solution_cell_and_every_check_has_a_graded_cell():
    for path in TEACHER:
        notebook = cells(path)
        ids = [cell["id"] for cell in notebook]
        assert len(set(ids)) == len(ids), f"{path.name}: cell ids repeat"
        after_checks = set()
        for index, cell in enumerate(notebook):
            source = "".join(cell["source"])
            meta = nbgrader_meta(cell)
            if classroom.BEGIN in source:
                assert meta.get("solution") and not meta.get("locked"), f"{path.name} {cell['id']}: a solution cell"
            elif cell["cell_type"] == "code" and re.search(r"checks\.(check_\w+|grade)\(", source):
                after = notebook[index + 1]
                graded = nbgrader_meta(after)
                assert meta.get("locked"), f"{path.name} {cell['id']}: the check cell must be locked"
                assert graded.get("grade") and graded.get("locked") and graded.get("points", 0) > 0, after["id"]
                assert "checks.autograde(" in "".join(after["source"]), after["id"]
                after_checks.add(after["id"])
            elif cell["id"] not in after_checks:
                assert not meta.get("grade"), f"{path.name} {cell['id']}: graded without a check before it"
    grade_ids = [nbgrader_meta(c)["grade_id"] for p in TEACHER for c in cells(p) if nbgrader_meta(c)]
    assert len(set(grade_ids)) == len(grade_ids), "grade ids repeat"


def test_no_prose_contains_a_solution_marker():
    for path in TEACHER:
        for cell in cells(path):
            for line in "".join(cell["source"]).splitlines():
                if "BEGIN SOLUTION" in line or "END SOLUTION" in line:
                    assert line.strip() in (classroom.BEGIN, classroom.END), f"{path.name} {cell['id']}: {line!r}"


def test_the_guides_rubric_matches_the_points_in_the_notebooks():
    rubric = dict(re.findall(r"^\| `(\w+)` \|[^|]*\| (\d+) \|$", GUIDE.read_text(), re.M))
    assert {key: float(value) for key, value in rubric.items()} == graded_points(TEACHER)


def test_the_course_folder_is_written_once_and_refused_over_unasked(tmp_path):
    written = classroom.nbgrader_course(tmp_path / "course")
    assert tmp_path / "course" / "nbgrader_config.py" in written
    assert sorted(p.name for p in (tmp_path / "course" / "source" / classroom.ASSIGNMENT).iterdir()) == [
        p.name for p in TEACHER
    ]
    notebook = json.loads((tmp_path / "course" / "source" / "m2nist" / EXERCISE_NOTEBOOKS[0]).read_text())
    assert all(not cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")
    with pytest.raises(Exception, match="nbgrader_config.py: already exists"):
        classroom.nbgrader_course(tmp_path / "course")
    classroom.nbgrader_course(tmp_path / "course", overwrite=True)


def nbgrader(course: Path, *args: str) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "M2NIST_STRICT"} | {"M2NIST_QUICK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, "--force"],
        cwd=course,
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def solved(release: Path, source: Path, grade_ids: set[str]) -> dict:
    """The release notebook with the teacher's solution put back into the solution cells ``grade_ids``."""
    notebook = json.loads(release.read_text())
    solutions = {nbgrader_meta(c).get("grade_id"): c["source"] for c in json.loads(source.read_text())["cells"]}
    for cell in notebook["cells"]:
        if nbgrader_meta(cell).get("grade_id") in grade_ids:
            cell["source"] = solutions[nbgrader_meta(cell)["grade_id"]]
    return notebook


@pytest.mark.slow
def test_nbgrader_generates_autogrades_and_gives_feedback(tmp_path):
    course = tmp_path / "course"
    classroom.nbgrader_course(course)
    source = course / "source" / classroom.ASSIGNMENT
    for path in source.glob("*.ipynb"):
        if path.name not in EXERCISE_NOTEBOOKS:
            path.unlink()
    nbgrader(course, "generate_assignment", classroom.ASSIGNMENT)
    release = course / "release" / classroom.ASSIGNMENT

    partly = {"iou_dice", "conv_block"}  # the first two exercises, worth their checks' points
    for student in ("untouched", "teacher", "partly"):
        folder = course / "submitted" / student / classroom.ASSIGNMENT
        folder.mkdir(parents=True)
        for name in EXERCISE_NOTEBOOKS:
            if student == "untouched":
                shutil.copy(release / name, folder / name)
            elif student == "teacher":
                shutil.copy(source / name, folder / name)
            else:
                (folder / name).write_text(json.dumps(solved(release / name, source / name, partly)))
    nbgrader(course, "autograde", classroom.ASSIGNMENT)
    nbgrader(course, "generate_feedback", classroom.ASSIGNMENT)

    from nbgrader.api import Gradebook

    points = graded_points([ROOT / "notebooks" / name for name in EXERCISE_NOTEBOOKS])
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {
            s: gradebook.find_submission(classroom.ASSIGNMENT, s).score for s in ("untouched", "teacher", "partly")
        }
        assert gradebook.find_submission(classroom.ASSIGNMENT, "teacher").max_score == sum(points.values())
    assert scores == {
        "untouched": 0,
        "teacher": sum(points.values()),
        "partly": points["autograde_iou_dice"] + points["autograde_conv_block"],
    }

    for name in EXERCISE_NOTEBOOKS:
        autograded = json.loads((course / "autograded" / "untouched" / classroom.ASSIGNMENT / name).read_text())
        failed = [
            line
            for cell in autograded["cells"]
            for output in cell.get("outputs", [])
            if output.get("name") == "stdout"
            for line in "".join(output["text"]).splitlines()
            if line.startswith("✗")
        ]
        exercises = sum(1 for cell in autograded["cells"] if nbgrader_meta(cell).get("solution"))
        assert len(failed) >= exercises, (name, failed)
        feedback = (course / "feedback" / "untouched" / classroom.ASSIGNMENT / name).with_suffix(".html")
        shown = html.unescape(feedback.read_text())
        assert all(line in shown for line in failed), name
