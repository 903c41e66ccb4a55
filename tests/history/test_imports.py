"""The history's modules import one another one way (issue 14: no import cycle), counting the
imports inside functions too: a deferred import hides a cycle from Python, not from a reader."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import alert_engine.history

PACKAGE = "alert_engine.history"


def _imports(path: Path) -> set[str]:
    """The modules of the package that `path` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from alert_engine.history import planner` names a module; so may the names.
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name.removeprefix(f"{PACKAGE}.") for name in found if name.startswith(f"{PACKAGE}.")}


def test_the_history_modules_have_no_import_cycle() -> None:
    folder = Path(alert_engine.history.__file__).parent
    modules = {path.stem for path in folder.glob("*.py") if path.stem != "__init__"}
    graph = {name: _imports(folder / f"{name}.py") & modules for name in modules}
    # The report's modules are the ones that once went round in a circle: still all there.
    assert {"definitions", "planner", "queries", "rollups", "trends"} <= modules
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"an import cycle among the history's modules: {exc.args[1]}") from exc
    assert order.index("definitions") < order.index("rollups") < order.index("planner")
    assert order.index("planner") < order.index("queries")
