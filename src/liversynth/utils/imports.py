"""Which repository files a module may execute, read from its imports (no import is run).

One closure serves two readers that must agree: tests/test_dag.py checks each stage's DVC deps against
it, and the tuning stage keys its Optuna trials on the same files, so what reruns a stage also starts
a new trial set. Imports anywhere in a module count (lazy ones inside functions too): the code may run them.
"""
from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["ROOTS", "closure", "imported_modules", "module_file", "parents"]

# Top-level packages of this repository and where their sources live, relative to its root.
ROOTS = {"liversynth": Path("src/liversynth"), "flows": Path("flows")}


def module_file(repo: Path, module: str) -> Path | None:
    """The source file of a repository module (None for one outside ROOTS or not found)."""
    top, *rest = module.split(".")
    if top not in ROOTS:
        return None
    base = repo / ROOTS[top] / Path(*rest) if rest else repo / ROOTS[top]
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def parents(module: str) -> list[str]:
    """The packages above a module, whose __init__ runs first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(tree: ast.AST, top_level_only: bool = False) -> set[str]:
    """Absolute imports of a parsed module; `from pkg import name` also yields `pkg.name` (a submodule)."""
    nodes = tree.body if top_level_only and isinstance(tree, ast.Module) else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def closure(repo: Path, entry: str) -> set[Path]:
    """Repository files (relative to repo) that `python -m entry` may execute, package __init__s included."""
    seen: set[Path] = set()
    todo = [entry, *parents(entry)]
    while todo:
        module = todo.pop()
        path = module_file(repo, module)
        if path is None or path in seen:
            continue
        seen.add(path)
        for imported in imported_modules(ast.parse(path.read_text())):
            todo += [imported, *parents(imported)]
    return {p.relative_to(repo) for p in seen}
