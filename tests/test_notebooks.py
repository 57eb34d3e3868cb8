"""The notebooks themselves: executed, listed in the README, and free of machine-specific output.

nbval (configured in pyproject.toml) re-runs every notebook and compares its outputs; these tests check what
nbval cannot: that every code cell has stored outputs to compare, and that those outputs are portable.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FORBIDDEN = {
    "an absolute path": re.compile(r"(/home/|/root/|/work/|/tmp/|[A-Z]:\\\\)"),
    "a memory address": re.compile(r"0x[0-9a-fA-F]{6,}"),
    "a TensorFlow C++ log line": re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cudart_stub|oneDNN custom", re.M),
    "a Python warning": re.compile(r"\w+Warning: "),
}


def code_cells(path: Path) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def output_text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.extend(output.get("text", []))
        for key, value in output.get("data", {}).items():
            if key.startswith("text/"):
                parts.extend(value if isinstance(value, list) else [value])
        parts.extend(output.get("traceback", []))
    return "".join(parts)


def test_the_series_is_complete():
    assert [p.name[:3] for p in NOTEBOOKS] == ["00_", "01_", "02_", "03_", "04_", "05_", "06_", "07_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_was_executed_in_order(path):
    counts = [cell["execution_count"] for cell in code_cells(path)]
    assert None not in counts, f"{path.name} has unexecuted code cells"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name} was not run top to bottom in one go"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_portable_and_quiet(path):
    for index, cell in enumerate(code_cells(path)):
        text = output_text(cell)
        for what, pattern in FORBIDDEN.items():
            assert not pattern.search(text), f"{path.name} code cell {index + 1} shows {what}"
        assert not any(o.get("name") == "stderr" for o in cell.get("outputs", [])), f"{path.name} cell {index + 1}"
        assert not any(o["output_type"] == "error" for o in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_in_the_readme_tour(path):
    assert f"notebooks/{path.name}" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_define_only_the_functions_that_exercises_ask_for(path):
    """A notebook may define a function only to hold an exercise's solution; all other logic is in m2nist_seg."""
    for cell in code_cells(path):
        source = "".join(cell["source"])
        assert not re.search(r"^\s*class ", source, re.M), f"{path.name} defines a class; put it in m2nist_seg"
        for function in re.split(r"^(?=def )", source, flags=re.M):
            if function.startswith("def "):
                name = function.split("(")[0][4:]
                assert "### BEGIN SOLUTION" in function, f"{path.name}: {name} is no exercise; put it in m2nist_seg"
        assert not re.search(r"^\S.*\bdef ", source, re.M), f"{path.name} defines a function inside other code"


def test_readme_figures_exist_and_come_from_notebooks_or_the_cli():
    """Every figure in the README is made by a notebook, the CLI, or (the explorer's screenshot) the browser test."""
    readme = (ROOT / "README.md").read_text()
    figures = re.findall(r"\(figures/([\w-]+)\.png\)", readme)
    assert figures, "the README should show figures"
    sources = ["".join(cell["source"]) for path in NOTEBOOKS for cell in code_cells(path)]
    makers = "".join(sources) + (ROOT / "m2nist_seg" / "cli.py").read_text()
    screenshots = (ROOT / "tests" / "test_browser.py").read_text()
    for name in figures:
        assert (ROOT / "figures" / f"{name}.png").is_file(), name
        made = f'"{name}"' in makers or f'"{name}.png"' in screenshots
        assert made, f"figures/{name}.png is made by no notebook, CLI command or browser test"
