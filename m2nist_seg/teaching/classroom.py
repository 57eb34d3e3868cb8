"""The student edition of the notebooks: solutions stubbed out, outputs cleared, everything else unchanged.

The committed notebooks in ``notebooks/`` are the teacher's edition. Exercise solutions sit in code cells between
lines ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's convention), inside the body of a function.
:func:`build` writes the student edition, where each region becomes a stub that names the function to write::

    # YOUR CODE HERE: write the body of dice_score (see its docstring)
    raise NotImplementedError("dice_score is not written yet")

Errors name the notebook and the cell, counted from 0 as nbval counts them, with the cell's id and the line.

The teacher's edition also carries nbgrader's cell metadata (solution cells, and after each check a locked,
graded autograder cell), which both editions keep. :func:`nbgrader_course` writes a course folder for
nbgrader: ``nbgrader_config.py`` and ``source/m2nist/*.ipynb``, ready for ``nbgrader generate_assignment m2nist``.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path

from m2nist_seg.core.atomic import atomic_path
from m2nist_seg.core.errors import M2NISTError
from m2nist_seg.core.settings import PROJECT_ROOT

SOURCE_DIR = PROJECT_ROOT / "notebooks"
TARGET_DIR = PROJECT_ROOT / "classroom"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "\n".join(
    (
        "{indent}# YOUR CODE HERE: write the body of {name} (see its docstring)",
        '{indent}raise NotImplementedError("{name} is not written yet")',
    )
)
# Cell metadata that records the teacher's run rather than the notebook: execution timings and output display state.
RUN_METADATA = ("collapsed", "execution", "scrolled")

_MARKER = re.compile(r"(?P<indent>[ \t]*)### (?P<kind>BEGIN|END) SOLUTION[ \t\r]*")
_MARKER_LIKE = re.compile(r"[ \t]*#+[ \t]*(BEGIN|END)[ \t]+SOLUTION\b", re.IGNORECASE)
_MAGIC = re.compile(r"[ \t]*(%%?[A-Za-z]|![^=])")  # %matplotlib, %%time, !pip


@dataclass(frozen=True)
class _Region:
    begin: int  # 0-based line index of the BEGIN marker
    end: int  # 0-based line index of the END marker
    indent: str  # the BEGIN marker's indentation, verbatim


def _regions(lines: list[str], where: str) -> list[_Region]:
    """The solution regions of a cell's lines, in order; unbalanced, nested or malformed markers are errors."""
    regions = []
    opened: tuple[int, str] | None = None
    for index, line in enumerate(lines):
        marker = _MARKER.fullmatch(line)
        if marker is None:
            if _MARKER_LIKE.match(line):
                raise M2NISTError(
                    f"{where}, line {index + 1}: malformed marker {line.strip()!r}, "
                    f"expected exactly {BEGIN!r} or {END!r} on a line of its own"
                )
            continue
        if marker["kind"] == "BEGIN":
            if opened is not None:
                raise M2NISTError(
                    f"{where}, line {index + 1}: {BEGIN!r} inside the region opened on line {opened[0] + 1}, "
                    f"expected {END!r} first (regions do not nest)"
                )
            opened = (index, marker["indent"])
        else:
            if opened is None:
                raise M2NISTError(f"{where}, line {index + 1}: {END!r} without a {BEGIN!r} above it, expected pairs")
            regions.append(_Region(opened[0], index, opened[1]))
            opened = None
    if opened is not None:
        raise M2NISTError(f"{where}, line {opened[0] + 1}: {BEGIN!r} is never closed, expected {END!r} below it")
    return regions


def _parse(lines: list[str], where: str, what: str) -> ast.Module:
    """Parse a cell's lines as Python, with IPython magics and shell escapes blanked (line numbers kept)."""
    try:
        return ast.parse("\n".join("" if _MAGIC.match(line) else line for line in lines))
    except SyntaxError as err:
        raise M2NISTError(f"{where}: {what} does not parse as Python (line {err.lineno}: {err.msg})") from None


def _enclosing_function(tree: ast.Module, lines: list[str], region: _Region, where: str) -> str:
    """The name of the innermost ``def`` whose body holds every code line of ``region``."""
    code = [
        number
        for number in range(region.begin + 2, region.end + 1)
        if lines[number - 1].strip() and not lines[number - 1].lstrip().startswith("#")
    ]
    if not code:
        raise M2NISTError(f"{where}, line {region.begin + 1}: empty solution region, expected solution code in it")
    functions = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body[0].lineno <= code[0]
        and code[-1] <= (node.end_lineno or node.lineno)
    ]
    if not functions:
        raise M2NISTError(
            f"{where}, line {region.begin + 1}: solution region outside any function, "
            "expected it inside a def's body (the stub names that function)"
        )
    return max(functions, key=lambda node: node.lineno).name


def student_cell_source(source: str, *, where: str = "cell") -> str:
    """``source`` with each solution region, markers included, replaced by a stub; every other byte kept.

    ``where`` names the cell in error messages, for example ``"notebooks/02_build_the_model.ipynb cell 7"``.
    """
    lines = source.split("\n")
    regions = _regions(lines, where)
    if not regions:
        return source
    tree = _parse(lines, where, "the teacher's cell")
    for region in reversed(regions):
        name = _enclosing_function(tree, lines, region, where)
        lines[region.begin : region.end + 1] = STUB.format(indent=region.indent, name=name).split("\n")
    _parse(lines, where, "the stubbed cell (are the markers at the function body's indentation?)")
    return "\n".join(lines)


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def _cell_name(name: str, index: int, cell: dict) -> str:
    cell_id = cell.get("id")
    return f"{name} cell {index}" + (f" (id {cell_id})" if cell_id else "")


def _check_notebook(notebook: object, name: str) -> list[dict]:
    """The notebook's cells, after checking the nbformat 4 structure this module relies on."""
    if not isinstance(notebook, dict) or notebook.get("nbformat") != 4 or not isinstance(notebook.get("cells"), list):
        raise M2NISTError(f"{name}: not a notebook, expected nbformat 4 JSON with a list of cells")
    for index, cell in enumerate(notebook["cells"]):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise M2NISTError(f"{name} cell {index}: malformed cell, expected a cell_type and a source of text")
        source = cell.get("source")
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            raise M2NISTError(f"{name} cell {index}: malformed cell, expected a cell_type and a source of text")
    return notebook["cells"]


def student_notebook(notebook: dict, *, name: str = "notebook") -> dict:
    """A student copy of ``notebook`` (nbformat 4 as a dict): solutions stubbed, code outputs cleared.

    Code cells lose their outputs, execution count and :data:`RUN_METADATA`; ids, tags, markdown and raw cells and
    the notebook's metadata stay as they are. ``name`` names the notebook in error messages.
    """
    _check_notebook(notebook, name)
    student = cleared_notebook(notebook)
    for index, cell in enumerate(student["cells"]):
        if cell.get("cell_type") != "code":
            continue
        text = _text(cell["source"])
        stubbed = student_cell_source(text, where=_cell_name(name, index, cell))
        if stubbed != text:
            cell["source"] = stubbed if isinstance(cell["source"], str) else stubbed.splitlines(True)
    return student


def cleared_notebook(notebook: dict) -> dict:
    """A copy of ``notebook`` whose code cells have no outputs, execution counts or :data:`RUN_METADATA`."""
    cleared = copy.deepcopy(notebook)
    for cell in cleared["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
            for field in RUN_METADATA:
                cell.get("metadata", {}).pop(field, None)
    return cleared


def solution_lines(notebook: dict, *, name: str = "notebook") -> list[str]:
    """The stripped, non-empty lines inside the solution regions of ``notebook``'s code cells, markers excluded."""
    found = []
    for index, cell in enumerate(_check_notebook(notebook, name)):
        if cell.get("cell_type") != "code":
            continue
        lines = _text(cell["source"]).split("\n")
        for region in _regions(lines, _cell_name(name, index, cell)):
            found.extend(line.strip() for line in lines[region.begin + 1 : region.end] if line.strip())
    return found


def notebook_json(notebook: dict) -> str:
    """``notebook`` as Jupyter writes it: sorted keys, one-space indent, sources as lists of lines, final newline."""
    cells = [
        {**cell, "source": cell["source"].splitlines(True)} if isinstance(cell.get("source"), str) else cell
        for cell in notebook["cells"]
    ]
    return json.dumps({**notebook, "cells": cells}, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def read_notebook(path: Path) -> dict:
    """The notebook at ``path`` as a dict; an unreadable file is an :class:`M2NISTError` naming it."""
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise M2NISTError(f"{path}: unreadable ({err}), expected a Jupyter notebook (nbformat 4 JSON)") from None
    _check_notebook(notebook, str(path))
    return notebook


def _teacher_notebooks(source_dir: Path, target_dir: Path) -> list[Path]:
    """The teacher's notebooks in ``source_dir``, sorted, refusing a ``target_dir`` that is ``source_dir``."""
    if not source_dir.is_dir():
        raise M2NISTError(f"{source_dir}: no such folder, expected the teacher's notebooks (*.ipynb)")
    if target_dir.resolve() == source_dir.resolve():
        raise M2NISTError(f"{target_dir}: the student edition would overwrite the teacher's, expected another folder")
    # Names starting with a dot are Jupyter's and this module's temporary files, not notebooks.
    paths = sorted(path for path in source_dir.glob("*.ipynb") if not path.name.startswith("."))
    if not paths:
        raise M2NISTError(f"{source_dir}: no notebooks, expected the teacher's notebooks (*.ipynb)")
    return paths


def _render(source_dir: Path, target_dir: Path) -> dict[str, str]:
    """The student edition of every notebook in ``source_dir``: file name to JSON text. Writes nothing."""
    paths = _teacher_notebooks(source_dir, target_dir)
    return {path.name: notebook_json(student_notebook(read_notebook(path), name=str(path))) for path in paths}


def build(source_dir: Path = SOURCE_DIR, target_dir: Path = TARGET_DIR) -> list[Path]:
    """Write the student edition of every ``*.ipynb`` in ``source_dir`` to ``target_dir``; return the paths written.

    Every notebook is checked before the first is written, and each is written atomically. Other files in
    ``target_dir`` (its README, notebooks without a source) are left alone.
    """
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    written = []
    for file_name, text in _render(source_dir, target_dir).items():
        path = target_dir / file_name
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_build(source_dir: Path = SOURCE_DIR, target_dir: Path = TARGET_DIR) -> list[str]:
    """The names of the notebooks in ``target_dir`` that a fresh build would change, add or not write, sorted.

    A notebook is stale when it differs from its fresh build, when it is missing, or when ``target_dir`` holds it
    but ``source_dir`` has no notebook of that name. Writes nothing.
    """
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    fresh = _render(source_dir, target_dir)
    present = {path.name for path in target_dir.glob("*.ipynb") if not path.name.startswith(".")}
    stale = present - fresh.keys()
    for file_name, text in fresh.items():
        path = target_dir / file_name
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            stale.add(file_name)
    return sorted(stale)


ASSIGNMENT = "m2nist"
NBGRADER_CONFIG = """\
\"\"\"nbgrader's configuration for the m2nist-seg course, written by `python -m m2nist_seg classroom nbgrader`.

Run nbgrader from this folder, in the environment where m2nist_seg is installed (see the teacher's guide).
\"\"\"

import os

c = get_config()  # noqa: F821  (nbgrader defines it)
c.CourseDirectory.course_id = "m2nist-seg"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# The solution markers, exactly as the notebooks write them.
c.ClearSolutions.begin_solution_delimeter = "{begin}"
c.ClearSolutions.end_solution_delimeter = "{end}"

# Under autograding each exercise's graded cell fails when its check failed (M2NIST_AUTOGRADE), the checks print
# their hints instead of raising (M2NIST_STRICT off) so that later cells run on the reference solutions, and each
# submission trains into a runs/ folder of its own (M2NIST_RUNS, relative to the notebook's folder).
os.environ["M2NIST_AUTOGRADE"] = "1"
os.environ["M2NIST_STRICT"] = "0"
os.environ["M2NIST_RUNS"] = "runs"

# Notebook 03 trains a model: a cell may run for up to an hour (nbgrader's default is 30 seconds).
c.Execute.timeout = 3600
"""


def nbgrader_course(directory: Path, source_dir: Path = SOURCE_DIR, overwrite: bool = False) -> list[Path]:
    """Write an nbgrader course folder: ``directory/nbgrader_config.py`` and the teacher's notebooks, outputs
    cleared, as ``directory/source/m2nist/*.ipynb``; return the paths written.

    Every notebook is read and checked before anything is written, each file is written atomically, and files
    that exist are replaced only with ``overwrite``.
    """
    directory, source_dir = Path(directory), Path(source_dir)
    target = directory / "source" / ASSIGNMENT
    paths = _teacher_notebooks(source_dir, target)
    notebooks = {path.name: notebook_json(cleared_notebook(read_notebook(path))) for path in paths}
    files = {directory / "nbgrader_config.py": NBGRADER_CONFIG.format(begin=BEGIN, end=END)}
    files.update({target / name: text for name, text in notebooks.items()})
    existing = [str(path) for path in files if path.exists()]
    if existing and not overwrite:
        raise M2NISTError(f"{existing[0]}: already exists, expected a new course folder (or --overwrite to replace it)")
    for path, text in files.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return list(files)
