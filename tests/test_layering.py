"""The package's layering, read from the source with ``ast``: imports flow one way.

Every ``import`` counts, at the top of a module, inside a function or under ``TYPE_CHECKING``. A module may
import only modules of its own layer or of a lower one (README, "Architecture"); no two modules import each
other, directly or round a longer loop; and no module imports another module's ``_private`` name.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "m2nist_seg"
# Lowest first. The package's root (__init__, __main__) sits outside the layers: it may import any of them.
LAYERS = ("core", "data", "model", "evaluation", ("training", "deploy", "viz"), "teaching", "cli")


def layer_rank(module: str) -> int | None:
    """The rank of ``module``'s layer (0 for core), or None for the package's root modules."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ("__init__", "__main__"):
        return None
    for rank, names in enumerate(LAYERS):
        if parts[1] in ((names,) if isinstance(names, str) else names):
            return rank
    raise AssertionError(f"{module}: in no layer of {LAYERS}; add its folder to LAYERS and to the README")


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def owner(name: str) -> str | None:
    """The package module that defines the dotted ``name`` (a module, or a name inside one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for each in-package import of ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full, None, node.lineno) if full in MODULES else (base, alias.name, node.lineno))
    return [
        (owner(target), name, line)
        for target, name, line in found
        if target.split(".")[0] == "m2nist_seg" and owner(target)
    ]


def edges() -> dict[str, set[str]]:
    """Module → the other package modules it imports (a module's own package ``__init__`` left out: Python
    runs it first anyway, and it only re-exports its modules)."""
    graph = {}
    for module in MODULES:
        graph[module] = {
            target
            for target, _, _ in imports(module)
            if target != module and target != "m2nist_seg" and not module.startswith(target + ".")
        }
    return graph


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_rank(module)


def test_no_module_imports_a_higher_layer():
    wrong = []
    for module in MODULES:
        rank = layer_rank(module)
        for target, _, line in imports(module):
            target_rank = layer_rank(target)
            if rank is not None and target_rank is not None and target_rank > rank:
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(edges())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_no_private_name_crosses_a_module():
    crossing = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}.{name}"
        for module in MODULES
        for target, name, line in imports(module)
        if name and name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not crossing, "\n".join(crossing)


def test_run_bookkeeping_needs_no_tensorflow():
    tree = ast.parse(MODULES["m2nist_seg.training.runs"].read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] in ("tensorflow", "keras")}
    assert {owner(name) for name in imported if name.startswith("m2nist_seg")} <= {
        "m2nist_seg.core.atomic",
        "m2nist_seg.core.errors",
    }


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"x": {"a"}, "a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert find_cycle(graph) == expected


def test_the_import_reader_sees_imports_inside_functions_and_relative_ones(tmp_path, monkeypatch):
    source = "def f():\n    from m2nist_seg.core import settings\n    from .errors import _hidden\n"
    monkeypatch.setitem(MODULES, "m2nist_seg.core.probe", tmp_path / "probe.py")
    (tmp_path / "probe.py").write_text(source)
    assert imports("m2nist_seg.core.probe") == [
        ("m2nist_seg.core.settings", None, 2),
        ("m2nist_seg.core.errors", "_hidden", 3),
    ]
