"""The library's packages form layers that point one way: a package imports only packages below it,
so none imports another that imports it back. Imports anywhere in a module count, lazy ones inside
functions included (liversynth.utils.imports, as the DAG test reads them); no exception is listed.

From the bottom: utils (no pipeline knowledge), config (the typed params.yaml), paths (the DAG's file
names), runtime (threads, device), then data -> models -> synthesis -> training -> evaluation ->
inference -> tracking, and the command line (cli) on top. The package's own __init__ sits below all.
"""
from __future__ import annotations

import ast
from pathlib import Path

from liversynth.utils.imports import imported_modules
from tests.conftest import REPO

LIBRARY = REPO / "src/liversynth"
LAYERS = ("__init__", "utils", "config", "paths", "runtime", "data", "models", "synthesis", "training",
          "evaluation", "inference", "tracking", "cli")


def _unit(module: str) -> str | None:
    """The package (or top-level module) of liversynth a module belongs to; None outside liversynth."""
    parts = module.split(".")
    if parts[0] != "liversynth":
        return None
    if len(parts) == 1:
        return "__init__"
    name = parts[1]
    return name if (LIBRARY / name).is_dir() or (LIBRARY / f"{name}.py").is_file() else None


def package_graph() -> dict[str, set[str]]:
    """unit -> the other units its modules import, every import in the module counted."""
    graph: dict[str, set[str]] = {}
    for path in LIBRARY.rglob("*.py"):
        rel = path.relative_to(REPO / "src").with_suffix("")
        unit = _unit(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
        assert unit is not None, path
        targets = {_unit(m) for m in imported_modules(ast.parse(path.read_text()))}
        graph.setdefault(unit, set()).update(t for t in targets if t is not None and t != unit)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a lower layer imports a higher one."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted((a, b) for a, targets in graph.items() for b in targets if rank[b] > rank[a])


def test_every_package_has_a_layer() -> None:
    assert set(package_graph()) == set(LAYERS)


def test_no_package_level_import_cycle() -> None:
    assert find_cycle(package_graph()) is None


def test_lower_layers_never_import_higher_ones() -> None:
    assert upward_imports(package_graph()) == []


def test_the_checks_find_a_cycle_and_an_upward_import() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    graph = package_graph()
    graph["training"] = graph["training"] | {"evaluation"}
    graph["evaluation"] = graph["evaluation"] | {"training"}
    assert find_cycle(graph) is not None
    assert ("training", "evaluation") in upward_imports(graph)
