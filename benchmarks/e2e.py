"""End-to-end `dvc repro` on the default params, in a throw-away copy of the working tree.

The copy (tracked and untracked-but-not-ignored files) gets its own git repo, raw data, DVC cache,
MLflow store and Prefect home, so the repo the benchmark is run from is never touched. The plain
baseline for the full run is `dvc repro` without the shared Prefect API server, i.e. every stage
process starting its own temporary server, which is what a bare `dvc repro` does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

NOOP_TARGET_S = 5.0
_RSS_WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def _stage_outputs(repo: Path) -> tuple[str, ...]:
    """Every path a dvc.yaml stage writes (outs, metrics, plots): the copy starts without them."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        stage = stage.get("do", stage)  # a foreach stage: templated paths, matched by prefix below
        for key in ("outs", "metrics", "plots"):
            paths += [next(iter(o)) if isinstance(o, dict) else o for o in stage.get(key, [])]
    return tuple(p.split("${")[0] for p in paths)  # models/${item} -> models/


def _copy_tree(repo: Path, dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=repo, capture_output=True, text=True, check=True).stdout.split("\0")
    skip = ("benchmarks/results/", *_stage_outputs(repo))
    for rel in filter(None, files):
        src = repo / rel
        # A templated prefix (ends in / or _) matches as it is; a plain path, itself or its folder.
        if src.is_file() and not any(rel == s or rel.startswith(s if s.endswith(("/", "_")) else s + "/")
                                     for s in skip):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for stale in ("dvc.lock", "data.dvc"):  # a first run, from nothing
        (dest / stale).unlink(missing_ok=True)


def _env(copy: Path) -> dict[str, str]:
    drop = ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "LIVERSYNTH_PARAMS")  # the default run, self-contained
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONPATH": f"{copy / 'src'}{os.pathsep}{copy}", "PREFECT_HOME": str(copy / ".prefect"),
                "TQDM_DISABLE": "1", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"})
    return env


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the peak RSS (MiB) of the largest process in the command's tree."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *cmd], cwd=cwd, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        log = cwd / ".prefect" / "server.log"
        server = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n"
                           f"Prefect server log:\n{server}")
    return seconds, int(proc.stderr.strip().splitlines()[-1]) / 1024


def _fresh_copy(repo: Path, dest: Path) -> tuple[Path, dict[str, str]]:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _copy_tree(repo, dest)
    env = _env(dest)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"],
                [sys.executable, "-m", "scripts.generate_data"], ["scripts/track_raw_data.sh"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest, env


def run(repo: Path, work: Path, baseline: bool = False) -> list[dict]:
    """Full `dvc repro` (with the shared Prefect server), then the no-op `dvc repro` (median of 3)."""
    copy, env = _fresh_copy(repo, work / "repo")
    full_s, full_rss = _timed(["scripts/with_prefect_api.sh", "dvc", "repro"], copy, env)
    noop = sorted(_timed(["dvc", "repro"], copy, env) for _ in range(3))
    full = {"name": "dvc_repro", "unit": "s", "optimised": round(full_s, 1), "peak_rss_mb": {"optimised": round(full_rss, 1)}}
    if baseline:  # the same from nothing without the shared server: every stage starts its own
        copy, env = _fresh_copy(repo, work / "repo-plain")
        plain_s, plain_rss = _timed(["dvc", "repro"], copy, env)
        full.update(baseline=round(plain_s, 1), ratio=plain_s / full_s)  # time ratio: plain / optimised
        full["peak_rss_mb"]["baseline"] = round(plain_rss, 1)
    nop = {"name": "dvc_repro_noop", "unit": "s", "optimised": round(noop[1][0], 2), "target_s": NOOP_TARGET_S,
           "met": noop[1][0] < NOOP_TARGET_S, "peak_rss_mb": {"optimised": round(noop[1][1], 1)},
           "all_runs_s": [round(s, 2) for s, _ in noop]}
    return [full, nop]
