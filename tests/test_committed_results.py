"""Committed results come from the committed code: dvc.lock's code and params hashes match the tree,
so a refactor after the last full run is caught (the fix: rerun `make run`, commit dvc.lock,
metrics.json and reports/)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def _stale_code(status: dict) -> dict[str, list[str]]:
    """Stages whose code or params changed since dvc.lock; missing data (a fresh clone) is not a change."""
    stale = {}
    for stage, items in status.items():
        changed = []
        for item in items if isinstance(items, list) else []:
            deps = item.get("changed deps", {}) if isinstance(item, dict) else {}
            for path, how in deps.items():
                if isinstance(how, dict) or path.startswith("params"):  # params.yaml: {key: "modified"}
                    changed.append(path)
                elif how == "modified" and (path.endswith(".py") or path.startswith(("src/", "flows/"))):
                    changed.append(path)
        if changed:
            stale[stage] = changed
    return stale


def test_dvc_lock_matches_the_code_and_params_in_the_tree() -> None:
    dvc = Path(sys.executable).parent / "dvc"
    out = subprocess.run([str(dvc), "status", "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert _stale_code(json.loads(out.stdout or "{}")) == {}, "rerun `make run` and commit dvc.lock, metrics.json, reports/"


def test_the_check_catches_a_code_change() -> None:
    status = {"train_unet": [{"changed deps": {"src/liversynth/training/loop.py": "modified",
                                               "data/prepared": "deleted"}}]}
    assert _stale_code(status) == {"train_unet": ["src/liversynth/training/loop.py"]}
    assert _stale_code({"prepare": [{"changed deps": {"data/raw": "deleted"}}]}) == {}
    assert _stale_code({"evaluate": [{"changed deps": {"params.yaml": {"evaluate.ci": "modified"}}}]}) == {
        "evaluate": ["params.yaml"]}
