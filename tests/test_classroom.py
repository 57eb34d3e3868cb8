"""The student edition: solution regions stubbed, outputs cleared, nothing else changed, and kept in sync."""

from __future__ import annotations

import collections
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from m2nist_seg import cli
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import PROJECT_ROOT
from m2nist_seg.teaching import classroom

DICE = textwrap.dedent(
    '''\
    import numpy as np


    def dice(a, b):
        """Dice score of two boolean masks."""
        a = np.asarray(a, bool)
        ### BEGIN SOLUTION
        inter = (a & b).sum()
        return 2 * inter / (a.sum() + b.sum())
        ### END SOLUTION


    print("defined")'''
)
DICE_STUB = textwrap.dedent(
    '''\
    import numpy as np


    def dice(a, b):
        """Dice score of two boolean masks."""
        a = np.asarray(a, bool)
        # YOUR CODE HERE: write the body of dice (see its docstring)
        raise NotImplementedError("dice is not written yet")


    print("defined")'''
)
TWO_FUNCTIONS = textwrap.dedent(
    """\
    %matplotlib inline
    class Scores:
        def iou(
            self, a, b
        ):
            ### BEGIN SOLUTION
            return (a & b).sum() / (a | b).sum()
            ### END SOLUTION

        def both(self, a, b):
            def helper(x):
            \t### BEGIN SOLUTION
            \treturn x
            \t### END SOLUTION

            ### BEGIN SOLUTION
            return helper(a), helper(b)
            ### END SOLUTION
    """
)
TWO_FUNCTIONS_STUB = textwrap.dedent(
    """\
    %matplotlib inline
    class Scores:
        def iou(
            self, a, b
        ):
            # YOUR CODE HERE: write the body of iou (see its docstring)
            raise NotImplementedError("iou is not written yet")

        def both(self, a, b):
            def helper(x):
            \t# YOUR CODE HERE: write the body of helper (see its docstring)
            \traise NotImplementedError("helper is not written yet")

            # YOUR CODE HERE: write the body of both (see its docstring)
            raise NotImplementedError("both is not written yet")
    """
)


def teacher_notebook(*sources: str) -> nbformat.NotebookNode:
    """A small executed-looking teacher notebook: a tagged markdown cell, then one code cell per source."""
    notebook = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    notebook.cells.append(new_markdown_cell("# Exercise\n\nWrite `dice`.", metadata={"tags": ["intro"]}))
    for count, source in enumerate(sources, start=1):
        metadata = {"tags": ["exercise"], "execution": {"shell.execute_reply": "2026-01-01T00:00:00Z"}}
        cell = new_code_cell(source, execution_count=count, metadata=metadata)
        cell.outputs.append(new_output("stream", name="stdout", text="defined\n"))
        notebook.cells.append(cell)
    return notebook


def write_notebook(folder: Path, name: str, *sources: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(teacher_notebook(*sources), folder / name)
    return folder / name


def test_a_region_becomes_a_stub_naming_its_function_and_the_rest_is_unchanged():
    student = classroom.student_cell_source(DICE)
    assert student == DICE_STUB
    namespace: dict = {}
    exec(compile(student, "<student>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="dice is not written yet"):
        namespace["dice"]([True], [True])


def test_every_region_is_stubbed_at_its_own_indentation_with_its_own_function():
    student = classroom.student_cell_source(TWO_FUNCTIONS)
    assert student == TWO_FUNCTIONS_STUB
    namespace: dict = {}
    exec(compile(student.replace("%matplotlib inline", ""), "<student>", "exec"), namespace)
    for method in ("iou", "both"):
        with pytest.raises(NotImplementedError, match=f"{method} is not written yet"):
            getattr(namespace["Scores"](), method)(1, 1)


def test_a_cell_without_regions_is_returned_as_it_is():
    source = "x = 1  # END of the SOLUTION is not a marker\n\n"
    assert classroom.student_cell_source(source) == source


def test_the_student_notebook_clears_outputs_and_keeps_markdown_ids_tags_and_metadata():
    teacher = teacher_notebook(DICE, "print(1)")
    student = classroom.student_notebook(teacher)
    assert teacher.cells[1].outputs, "the teacher's notebook must not be modified"
    assert student["metadata"] == teacher.metadata
    assert student["cells"][0] == teacher.cells[0]
    for cell, original in zip(student["cells"][1:], teacher.cells[1:]):
        assert cell["outputs"] == []
        assert cell["execution_count"] is None
        assert cell["id"] == original.id
        assert cell["metadata"] == {"tags": ["exercise"]}, "tags stay, the teacher's execution timings go"
    assert student["cells"][1]["source"] == DICE_STUB
    assert student["cells"][2]["source"] == "print(1)"


def test_solution_lines_are_the_stripped_lines_between_the_markers():
    assert classroom.solution_lines(teacher_notebook(DICE, TWO_FUNCTIONS)) == [
        "inter = (a & b).sum()",
        "return 2 * inter / (a.sum() + b.sum())",
        "return (a & b).sum() / (a | b).sum()",
        "return x",
        "return helper(a), helper(b)",
    ]


BAD_CELLS = {
    "outside any function": "for i in range(3):\n    ### BEGIN SOLUTION\n    print(i)\n    ### END SOLUTION\n",
    "never closed": "def f():\n    ### BEGIN SOLUTION\n    return 1\n",
    "without a '### BEGIN SOLUTION'": "def f():\n    return 1\n    ### END SOLUTION\n",
    "do not nest": "def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n",
    "malformed marker": "def f():\n    ## BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n",
    "empty solution region": 'def f():\n    """Doc."""\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n',
    "indentation": "def f():\n### BEGIN SOLUTION\n    return 1\n### END SOLUTION\n    x = 1\n",
}


@pytest.mark.parametrize("problem", BAD_CELLS)
def test_bad_markers_are_errors_naming_the_notebook_and_the_cell(problem):
    teacher = teacher_notebook("x = 1", BAD_CELLS[problem])
    with pytest.raises(M2NISTError, match=f"lesson.ipynb cell 2 \\(id {teacher.cells[2].id}\\).*{problem}"):
        classroom.student_notebook(teacher, name="lesson.ipynb")


def test_nothing_is_written_when_any_notebook_is_bad(tmp_path):
    write_notebook(tmp_path / "teacher", "01_good.ipynb", DICE)
    write_notebook(tmp_path / "teacher", "02_bad.ipynb", BAD_CELLS["never closed"])
    with pytest.raises(M2NISTError, match="02_bad.ipynb cell 1"):
        classroom.build(tmp_path / "teacher", tmp_path / "student")
    assert not (tmp_path / "student").exists()


def test_building_twice_gives_the_same_bytes_as_jupyter_would_save_them(tmp_path):
    write_notebook(tmp_path / "teacher", "01_dice.ipynb", DICE, "print('é')")
    write_notebook(tmp_path / "teacher", "02_scores.ipynb", TWO_FUNCTIONS)
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "README.md").write_text("teacher's guide")
    written = classroom.build(tmp_path / "teacher", tmp_path / "student")
    assert written == [tmp_path / "student" / "01_dice.ipynb", tmp_path / "student" / "02_scores.ipynb"]
    first = {path: path.read_bytes() for path in written}
    classroom.build(tmp_path / "teacher", tmp_path / "student")
    assert {path: path.read_bytes() for path in written} == first
    assert sorted(path.name for path in (tmp_path / "student").iterdir()) == [
        "01_dice.ipynb",
        "02_scores.ipynb",
        "README.md",
    ]
    for path, data in first.items():
        resaved = nbformat.writes(nbformat.reads(data.decode("utf-8"), as_version=nbformat.NO_CONVERT)) + "\n"
        assert resaved.encode("utf-8") == data, f"{path.name} would change when JupyterLab saves it"


def test_check_build_names_stale_missing_and_orphaned_notebooks(tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    for name in ("01.ipynb", "02.ipynb", "03.ipynb"):
        write_notebook(teacher, name, DICE)
    classroom.build(teacher, student)
    assert classroom.check_build(teacher, student) == []
    write_notebook(teacher, "01.ipynb", DICE.replace("defined", "ready"))
    (student / "02.ipynb").unlink()
    (student / "99_old.ipynb").write_text("{}")
    before = {path.name: path.read_bytes() for path in student.iterdir()}
    assert classroom.check_build(teacher, student) == ["01.ipynb", "02.ipynb", "99_old.ipynb"]
    assert {path.name: path.read_bytes() for path in student.iterdir()} == before


def test_the_student_edition_never_overwrites_the_teachers(tmp_path):
    write_notebook(tmp_path, "01.ipynb", DICE)
    with pytest.raises(M2NISTError, match="overwrite the teacher's"):
        classroom.build(tmp_path, tmp_path / "sub" / "..")


def test_cli_builds_and_checks(tmp_path, capsys):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    write_notebook(teacher, "01_dice.ipynb", DICE)
    assert cli.main(["classroom", "build", "--source", str(teacher), "--out", str(student)]) == 0
    assert (student / "01_dice.ipynb").is_file()
    assert capsys.readouterr().out.splitlines()[-1].startswith("1 student notebook(s) in ")
    assert cli.main(["classroom", "check", "--source", str(teacher), "--out", str(student)]) == 0
    write_notebook(teacher, "01_dice.ipynb", DICE.replace("defined", "ready"))
    capsys.readouterr()
    assert cli.main(["classroom", "check", "--source", str(teacher), "--out", str(student)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "01_dice.ipynb" in err
    assert "python -m m2nist_seg classroom build" in err


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda teacher: None, "no such folder"),
        (lambda teacher: write_notebook(teacher, "01.ipynb", BAD_CELLS["do not nest"]), "01.ipynb cell 1"),
        (lambda teacher: teacher.mkdir() or (teacher / "02.ipynb").write_text("{not json"), "02.ipynb: unreadable"),
        (lambda teacher: teacher.mkdir() or (teacher / "03.ipynb").write_text("[]"), "03.ipynb: not a notebook"),
    ],
    ids=["missing folder", "unbalanced markers", "not JSON", "not a notebook"],
)
def test_cli_reports_bad_input_in_one_line_without_a_traceback(tmp_path, capsys, setup, expected):
    teacher = tmp_path / "teacher"
    setup(teacher)
    assert cli.main(["classroom", "build", "--source", str(teacher), "--out", str(tmp_path / "student")]) != 0
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert expected in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "student").exists()


def committed_student_edition() -> list[Path]:
    paths = sorted((PROJECT_ROOT / "classroom").glob("*.ipynb"))
    if not paths:
        pytest.skip("classroom/ holds no student notebooks yet: build them with `python -m m2nist_seg classroom build`")
    return paths


def test_the_committed_student_edition_is_a_fresh_build_of_the_notebooks(tmp_path):
    committed = {path.name: path.read_bytes() for path in committed_student_edition()}
    fresh = {path.name: path.read_bytes() for path in classroom.build(target_dir=tmp_path)}
    stale = sorted(name for name in committed.keys() | fresh.keys() if committed.get(name) != fresh.get(name))
    assert not stale, f"classroom/ is stale ({', '.join(stale)}): run `python -m m2nist_seg classroom build`"


def stripped_lines(texts: list[str]) -> collections.Counter[str]:
    return collections.Counter(line.strip() for text in texts for line in text.split("\n") if line.strip())


def leaked_lines(teacher: dict, student: dict) -> list[str]:
    """The solution lines that ``student`` shows more often than ``teacher`` shows them outside its solution regions.

    Comparing counts of stripped lines is strict without being flaky: a solution line that occurs nowhere else can
    never appear, yet a line that the solution shares with code or text outside it (``)``, ``return x``, or a long
    one that a later cell repeats) may appear as often as the teacher shows it outside the regions, whatever its
    length. The outside lines are counted independently of the module, line by line between the marker lines.
    """
    outside: list[str] = []
    for cell in teacher["cells"]:
        inside = False
        for line in "".join(cell["source"]).split("\n"):
            if cell["cell_type"] == "code" and line.strip() in (classroom.BEGIN, classroom.END):
                inside = line.strip() == classroom.BEGIN
            elif not inside:
                outside.append(line)
    allowed = stripped_lines(outside)
    shown = stripped_lines(["".join(cell["source"]) for cell in student["cells"]])
    return [line for line in dict.fromkeys(classroom.solution_lines(teacher)) if shown[line] > allowed[line]]


def test_the_leak_check_catches_a_leak_and_allows_lines_shared_with_the_rest_of_the_notebook():
    shared = "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return x\n    ### END SOLUTION\n\n\nreturn_x = 1\n"
    teacher = teacher_notebook(shared, "def g(x):\n    return x\n")
    student = classroom.student_notebook(teacher)
    assert leaked_lines(teacher, student) == []
    student["cells"][1]["source"] += "\n    return x"
    assert leaked_lines(teacher, student) == ["return x"]
    student["cells"][0]["source"] += "\nUse `y = x + 1`:\n\n    y = x + 1"
    assert leaked_lines(teacher, student) == ["y = x + 1", "return x"]


def test_no_solution_line_leaks_into_the_student_edition():
    """No committed student notebook shows a solution line of its teacher's notebook: see :func:`leaked_lines`."""
    for student_path in committed_student_edition():
        teacher = classroom.read_notebook(PROJECT_ROOT / "notebooks" / student_path.name)
        student = classroom.read_notebook(student_path)
        leaked = leaked_lines(teacher, student)
        assert not leaked, f"{student_path.name} shows solution lines: {leaked}"
        assert all(not cell.get("outputs") for cell in student["cells"]), f"{student_path.name} has outputs"
