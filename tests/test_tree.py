"""The tree's shape: flows/ holds only stage flows (each a `cmd` of a DVC stage, or the one documented
flow run outside the DAG) plus common.py and pipeline.py, and no function in src/ or flows/ is longer
than 60 lines (a longer one does several things; split it)."""
from __future__ import annotations

import ast
from pathlib import Path

import yaml

from tests.conftest import REPO

MAX_FUNCTION_LINES = 60
NOT_STAGES = {"__init__", "common", "pipeline"}
# Stage flows that run outside the DAG, by hand (README: "Batch inference").
OUTSIDE_DAG = {"segment_folder"}


def _stage_modules() -> set[str]:
    cmds = []
    for dag in (REPO / "dvc.yaml", REPO / "study" / "dvc.yaml"):
        for stage in yaml.safe_load(dag.read_text())["stages"].values():
            cmds.append(stage.get("cmd") or stage["do"]["cmd"])
    return {cmd.split("-m", 1)[1].split()[0].removeprefix("flows.") for cmd in cmds if "-m flows." in cmd}


def test_flows_holds_only_stage_flows() -> None:
    files = {p.stem for p in (REPO / "flows").glob("*.py")} - NOT_STAGES
    assert files - _stage_modules() - OUTSIDE_DAG == set()
    assert OUTSIDE_DAG <= files and OUTSIDE_DAG.isdisjoint(_stage_modules())
    for name in files:  # each is a Prefect flow
        assert "@flow(" in (REPO / "flows" / f"{name}.py").read_text(), name


def long_functions(root: Path, base: Path = REPO, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`file:line name (n lines)` for every function (or method) longer than `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = (node.end_lineno or node.lineno) - first + 1
                if n > limit:
                    found.append(f"{path.relative_to(base)}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_over_60_lines() -> None:
    assert long_functions(REPO / "src") + long_functions(REPO / "flows") == []


def test_the_length_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    found = [f.split(" ", 1)[1] for f in long_functions(tmp_path, tmp_path)]
    assert found == [f"long ({MAX_FUNCTION_LINES + 1} lines)"]
