"""Failed stages lose no outputs (dvc.yaml's header): every uncached out is either `persist: true`
(DVC leaves it in place; the flow replaces it atomically on success) or belongs to a run-cached stage
(setting the deps back and `dvc repro` restores it without rerunning). Checked on dvc.yaml and with
real DVC on a scratch repository whose stages fail after DVC has started them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DVC = [sys.executable, "-m", "dvc"]


def _outs(stage: dict) -> list[tuple[str, dict, bool]]:
    """(path, options, is a metric or plot) of each out of a stage (foreach: its `do`)."""
    body = stage.get("do", stage)
    found = []
    for kind in ("outs", "metrics", "plots"):
        for entry in body.get(kind, []):
            path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            found.append((path, opts or {}, kind != "outs"))
    return found


@pytest.mark.parametrize("dvc_file", ["dvc.yaml", "study/dvc.yaml"])
def test_every_uncached_out_is_persisted_or_run_cached(dvc_file: str) -> None:
    stages = yaml.safe_load((REPO / dvc_file).read_text())["stages"]
    for name, stage in stages.items():
        outs = _outs(stage)
        persisted = any(o.get("persist") for _, o, _ in outs)
        # DVC saves a run-cache entry only without persist outs and uncached plain outs (dvc.yaml header).
        run_cached = not persisted and all(o.get("cache", True) for _, o, metric in outs if not metric)
        for path, opts, _ in outs:
            if opts.get("cache", True) is False:
                assert opts.get("persist") or run_cached, f"{dvc_file}: {name}: {path} would be lost on failure"


STAGES = """
stages:
  kept:
    cmd: python step.py kept
    deps: [step.py]
    params: [kept]
    outs: [kept.dat]
    metrics:
      - kept.json:
          cache: false
          persist: true
  cached:
    cmd: python step.py cached
    deps: [step.py]
    params: [cached]
    outs: [cached.dat]
    metrics:
      - cached.json:
          cache: false
"""
# A stage that writes its data out, then fails on `fail: true` (after DVC has removed or kept its outs),
# writing its report last and atomically, as the flows do.
STEP = """
import json, os, sys, yaml
name = sys.argv[1]
p = yaml.safe_load(open("params.yaml"))[name]
open(name + ".dat", "w").write(str(p["value"]))
if p["fail"]:
    sys.exit(name + ": failing on purpose")
open("." + name + ".tmp", "w").write(json.dumps({"value": p["value"]}))
os.replace("." + name + ".tmp", name + ".json")
"""


def _params(repo: Path, value: int, fail: bool) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump({n: {"value": value, "fail": fail} for n in ("kept", "cached")}))


def _dvc(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([*DVC, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


def test_a_failed_stage_keeps_or_restores_its_outputs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(STAGES)
    (repo / "step.py").write_text(STEP)
    _params(repo, 1, False)
    _dvc(repo, "repro")
    first = {f: (repo / f).read_text() for f in ("kept.json", "cached.json")}

    _params(repo, 2, True)  # a new value, and the stages fail after DVC started them
    _dvc(repo, "repro", "kept", ok=False)
    _dvc(repo, "repro", "cached", ok=False)
    assert (repo / "kept.json").read_text() == first["kept.json"]  # persist: left in place, not rewritten
    assert not (repo / "cached.json").exists()  # removed by DVC before the run ...
    _dvc(repo, "checkout", "--force", "kept")  # a cached out of the failed stage: back from the cache
    assert (repo / "kept.dat").read_text() == "1"

    _params(repo, 1, False)  # ... and back from the run-cache once the deps are set back, not rerun
    out = _dvc(repo, "repro").stdout
    assert "Stage 'cached' is cached - skipping run" in out, out
    assert (repo / "cached.json").read_text() == first["cached.json"]
    assert (repo / "cached.dat").read_text() == "1"
    assert "up to date" in _dvc(repo, "status").stdout
