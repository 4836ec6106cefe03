"""The package's layout: data moves forward only (no import cycles between modules), and the
stages before the builder (reader/, ir.py, passes/, and what they import) never import TensorFlow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tflite_inverter"
MODULES = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
           for p in PACKAGE.rglob("*.py")}
NO_TENSORFLOW = ("tflite_inverter.reader", "tflite_inverter.ir", "tflite_inverter.passes")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module ``path`` imports (function-level imports included unless ``top_level_only``),
    resolved to absolute names. ``from pkg import name`` counts as ``pkg.name`` when that is a
    module of the package, else as ``pkg`` (the package ``__init__`` that every submodule import
    runs is not counted as imported by its submodules)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source)
    return found


def module_graph(*, top_level_only: bool = False) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path, top_level_only=top_level_only) if m in paths and m != name}
            for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_layout_test_sees_imports():
    graph = module_graph()
    assert "tflite_inverter.build.module" in graph["tflite_inverter.build.inverted"]
    assert "tflite_inverter.check.runner" in graph["tflite_inverter.check.verify"]  # a function-level import
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(module_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("stage", NO_TENSORFLOW)
def test_no_tensorflow_before_the_builder(stage):
    """No module of the stage imports TensorFlow, directly or through the package modules it
    imports at module level."""
    graph = module_graph(top_level_only=True)
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    offenders = []
    for name in [n for n in graph if n == stage or n.startswith(stage + ".")]:
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            direct = imports(paths[current], top_level_only=True)
            if any(m == "tensorflow" or m.startswith("tensorflow.") for m in direct):
                offenders.append(f"{name} (through {current})" if current != name else name)
            todo.extend(graph[current])
    assert not offenders, f"TensorFlow imported at module level by {offenders}"


def test_stage_folders_exist():
    for folder in ("reader", "passes", "ops", "build", "emit", "check", "quant"):
        assert (PACKAGE / folder / "__init__.py").is_file(), folder
