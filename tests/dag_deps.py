"""Static analysis for the DAG tests: which repository files a stage's command imports, and which
params.yaml keys its code reads. Imports anywhere in a module count (also lazy ones inside functions):
the stage may run them."""
from __future__ import annotations

import ast
from pathlib import Path

from liversynth.config import Params

ROOTS = {"liversynth": Path("src/liversynth"), "flows": Path("flows")}
# Tracking-only: where runs are logged, not what a stage computes; a new tracking URI reruns nothing.
UNTRACKED_SECTIONS = {"mlflow"}
SECTIONS = {f.alias or name for name, f in Params.model_fields.items()}


def module_file(repo: Path, module: str) -> Path | None:
    top, *rest = module.split(".")
    if top not in ROOTS:
        return None
    base = repo / ROOTS[top] / Path(*rest) if rest else repo / ROOTS[top]
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(tree: ast.AST, top_level_only: bool = False) -> set[str]:
    nodes = tree.body if top_level_only and isinstance(tree, ast.Module) else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import submodule`
    return out


def closure(repo: Path, entry: str) -> set[Path]:
    """Repository files that `python -m entry` may execute (with every package __init__ on the way)."""
    seen: set[Path] = set()
    todo = [entry, *_parents(entry)]
    while todo:
        module = todo.pop()
        path = module_file(repo, module)
        if path is None or path in seen:
            continue
        seen.add(path)
        for imported in imported_modules(ast.parse(path.read_text())):
            todo += [imported, *_parents(imported)]
    return {p.relative_to(repo) for p in seen}


def params_read(files: set[Path], repo: Path) -> set[str]:
    """`section` or `section.key` for every `params.<section>[.<key>]` and `section("name")` in the files."""
    keys: set[str] = set()
    for rel in files:
        for node in ast.walk(ast.parse((repo / rel).read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "params" and node.attr in SECTIONS):
                keys.add(node.attr)
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "params"
                    and node.value.attr in SECTIONS):
                keys.add(f"{node.value.attr}.{node.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "section":
                keys |= {a.value for a in node.args if isinstance(a, ast.Constant) and a.value in SECTIONS}
    # `params.prepare.image_size` also shows up as `params.prepare`; keep the most specific reading.
    specific = {k.split(".")[0] for k in keys if "." in k}
    bare_only = {k for k in keys if "." not in k and k not in specific}
    found = {k for k in keys if "." in k} | bare_only | _whole_sections(files, repo)
    return {k for k in found if k.split(".")[0] not in UNTRACKED_SECTIONS}


def _whole_sections(files: set[Path], repo: Path) -> set[str]:
    """Sections used whole (`params.prepare` passed on, not followed by `.key`)."""
    whole: set[str] = set()
    for rel in files:
        tree = ast.parse((repo / rel).read_text())
        inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "params" and node.attr in SECTIONS and id(node) not in inner):
                whole.add(node.attr)
    return whole


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


def params_covered(key: str, declared: list[str]) -> bool:
    section = key.split(".")[0]
    return key in declared or section in declared
