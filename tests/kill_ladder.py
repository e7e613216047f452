"""Helpers for the kill ladder of test_faults_pipeline: finding a stage's process by its command line,
reading the copy's MLflow and Prefect stores while the pipeline writes them, and the checkpoints on disk.

Stages are found as processes (`python -m flows.<stage>`) in the session of the `dvc repro` under test,
never by DVC stage names, so the ladder does not depend on how dvc.yaml names or splits them.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

from liversynth.utils.process import owner_pid
from tests.conftest import session_pids

__all__ = ["OWNER_TAG", "PREFECT_OWNER", "checkpoint_steps", "debris", "model_version_count", "owned_by",
           "owned_mlflow_run_open", "prefect_db_runs", "stage_process", "steps_redone"]

OWNER_TAG = "liversynth.owner"  # liversynth.tracking.runs.OWNER_TAG, on MLflow runs
PREFECT_OWNER = "liversynth.owner="  # liversynth.utils.prefect_runs.OWNER_TAG_PREFIX, on Prefect flow runs


def owned_by(tag: str | None, pid: int) -> bool:
    """Whether an owner tag names process `pid` of this host (with or without its start time), read by
    the library's own parser (liversynth.utils.process.owner_pid)."""
    parsed = owner_pid(tag) if tag is not None else None
    return parsed is not None and parsed[:2] == (socket.gethostname(), pid)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def stage_process(sid: int, stage: str) -> int | None:
    """The pid of the `python -m flows.<stage>` process in session `sid`, if one runs."""
    return next((pid for pid in sorted(session_pids(sid)) if f"flows.{stage}" in _cmdline(pid)[:4]), None)


def _session(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def debris(repo: Path, spare: frozenset[int] = frozenset()) -> list[str]:
    """Live processes working in the repository copy (stages, pool workers, a helper Prefect server),
    except those of the sessions in `spare`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (cwd == str(repo) or cwd.startswith(f"{repo}/")) and state != "Z" and \
                _session(int(proc.name)) not in spare:
            found.append(f"{proc.name}: {' '.join(_cmdline(int(proc.name)))[:120]}")
    return found


def _query(db: Path, sql: str, args: Iterable[object] = ()) -> list[tuple]:
    """A read-only query that never blocks the writer; [] while the store does not exist yet."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2) as con:
            return con.execute(sql, tuple(args)).fetchall()
    except sqlite3.OperationalError:
        return []


def owned_mlflow_run_open(db: Path, pid: int) -> bool:
    """Whether process `pid` holds a RUNNING MLflow run (its stage's run is open)."""
    owners = _query(db, "SELECT t.value FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid WHERE r.status = 'RUNNING'"
                        " AND t.key = ?", (OWNER_TAG,))
    return any(owned_by(value, pid) for (value,) in owners)


def model_version_count(db: Path) -> int:
    rows = _query(db, "SELECT count(*) FROM model_versions")
    return int(rows[0][0]) if rows else 0


def prefect_db_runs(db: Path) -> list[tuple[str, str, str | None]]:
    """(flow run name, state type, owner `host:pid` or None) of every flow run in a Prefect server's sqlite."""
    out = []
    for name, state, tags in _query(db, "SELECT name, state_type, tags FROM flow_run"):
        owners = [t.removeprefix(PREFECT_OWNER) for t in json.loads(tags or "[]") if t.startswith(PREFECT_OWNER)]
        out.append((name, state, owners[0] if owners else None))
    return out


def checkpoint_steps(folder: Path, since: float) -> dict[str, int]:
    """Step of every checkpoint under `folder` written at or after `since` (time.time())."""
    out = {}
    for path in folder.rglob("*.pt"):
        try:
            if path.stat().st_mtime >= since:
                out[str(path.relative_to(folder))] = int(torch.load(path, weights_only=True)["step"])
        except (OSError, KeyError, RuntimeError, TypeError):
            continue
    return out


def steps_redone(at_kill: Iterable[int], resumed_from: Iterable[int]) -> int:
    """Steps trained again: each checkpoint's step minus the resume point that serves it (largest first),
    all of its steps when no run resumed from it or an earlier step."""
    left, redone = Counter(resumed_from), 0
    for step in sorted(at_kill, reverse=True):
        serving = max((s for s in left if s <= step and left[s] > 0), default=None)
        if serving is None:
            redone += step
            continue
        left[serving] -= 1
        redone += step - serving
    return redone
