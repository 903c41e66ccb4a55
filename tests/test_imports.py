"""The package's modules import one another one way (issue 14: no import cycle), counting the
imports inside functions and under TYPE_CHECKING too: a deferred import hides a cycle from
Python, not from a reader. A package's `__init__` counts as a module of its own."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import alert_engine

ROOT = Path(alert_engine.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports, anywhere in it."""
    found: set[str] = set()
    package = _module_name(path) if path.stem == "__init__" else _module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            # `from alert_engine.history import planner` names a module.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: _imported(path, modules) - {name} for name, path in paths.items()}


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    # What the layout promises is there, so the graph is the package's.
    assert {"alert_engine.evaluate", "alert_engine.windows.evaluation"} <= set(graph)
    assert "alert_engine.windows.folding" in graph["alert_engine.windows.evaluation"]
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " imports ".join(reversed(exc.args[1]))
        raise AssertionError(f"an import cycle: {cycle}") from exc
