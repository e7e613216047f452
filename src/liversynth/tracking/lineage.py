"""Which code, data and outputs a run saw: git commit, DVC hashes of data and stage outputs."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from liversynth.paths import DATA_DVC

__all__ = ["dvc_data_hash", "git_commit", "lock_hash"]


def git_commit() -> str:
    """HEAD's commit, with "-dirty" when tracked files have uncommitted changes."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_data_hash(dvc_file: Path = DATA_DVC) -> str:
    """The md5 DVC recorded for data/raw: which raw data a run saw."""
    try:
        outs = yaml.safe_load(Path(dvc_file).read_text())["outs"]
        return str(outs[0]["md5"])
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return "untracked"


def lock_hash(path: str | Path, lock_file: Path = Path("dvc.lock")) -> str:
    """The md5 dvc.lock recorded for a stage output (e.g. data/synthetic/essnet), if any."""
    try:
        lock = yaml.safe_load(Path(lock_file).read_text())
        for stage in lock.get("stages", {}).values():
            for out in stage.get("outs", []):
                if out.get("path") == str(path):
                    return str(out["md5"])
    except (OSError, AttributeError, yaml.YAMLError):
        pass
    return "unknown"
