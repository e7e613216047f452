"""Static analysis for the DAG tests: which repository files a stage's command imports (the library's
liversynth.utils.imports.closure, which the tuning stage keys its trials on too), and which params.yaml
keys its code reads."""
from __future__ import annotations

import ast
from pathlib import Path

from liversynth.config import Params
from liversynth.utils.imports import closure, imported_modules, module_file

__all__ = ["closure", "covered", "imported_modules", "module_file", "params_covered", "params_read"]

# Tracking-only: where runs are logged, not what a stage computes; a new tracking URI reruns nothing.
UNTRACKED_SECTIONS = {"mlflow"}
SECTIONS = {f.alias or name for name, f in Params.model_fields.items()}


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
