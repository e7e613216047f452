"""What every stage flow shares: params, MLflow set-up, lineage tags, small file helpers."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterator

import mlflow
import yaml
from mlflow.tracking import MlflowClient

from liversynth.atomic import write_atomic_file
from liversynth.config import Params

PARAMS_PATH = Path(os.environ.get("LIVERSYNTH_PARAMS", "params.yaml"))
# "<host>:<pid>" of the process running a stage's MLflow run, so a later start of the stage can tell
# a run whose process was killed (-9 never ends its run) from one still going (parallel tune workers).
OWNER_TAG = "liversynth.owner"


def load_params() -> Params:
    return Params.from_yaml(PARAMS_PATH)


def setup_mlflow(params: Params) -> str:
    """Point MLflow at the local store (sqlite + artifact folder under mlruns/) and return the experiment id."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", params.mlflow.tracking_uri)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(params.mlflow.experiment)
    if exp is None:
        artifacts = Path(params.mlflow.artifact_dir).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        exp_id = mlflow.create_experiment(params.mlflow.experiment, artifact_location=artifacts.as_uri())
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_data_hash(dvc_file: Path = Path("data.dvc")) -> str:
    """The md5 DVC recorded for data/raw: which raw data a run saw."""
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        return str(outs[0]["md5"])
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return "untracked"


def lock_hash(path: str) -> str:
    """The md5 dvc.lock recorded for a stage output (e.g. data/synthetic), if any."""
    try:
        lock = yaml.safe_load(Path("dvc.lock").read_text())
        for stage in lock.get("stages", {}).values():
            for out in stage.get("outs", []):
                if out.get("path") == path:
                    return str(out["md5"])
    except (OSError, AttributeError, yaml.YAMLError):
        pass
    return "unknown"


def lineage_tags(params: Params, stage: str) -> dict[str, str]:
    return {"stage": stage, "git_commit": git_commit(), "data_dvc_md5": dvc_data_hash(),
            "dataset": params.data.dataset, OWNER_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's run: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_stale_runs(experiment_id: str, stage: str, keep: str | None = None) -> list[str]:
    """Mark FAILED the RUNNING runs of `stage` whose process is gone, and their RUNNING children
    (e.g. tuning trials); `keep` is a run about to be resumed. Returns the ids closed."""
    client = MlflowClient()
    running = client.search_runs([experiment_id], f"tags.stage = '{stage}' and attributes.status = 'RUNNING'",
                                 max_results=1000)
    stale = {r.info.run_id for r in running
             if r.info.run_id != keep and OWNER_TAG in r.data.tags and not _owner_alive(r.data.tags[OWNER_TAG])}
    stale |= {r.info.run_id for r in running
              if r.info.run_id != keep and r.data.tags.get("mlflow.parentRunId") in stale}
    for run_id in sorted(stale):
        client.set_tag(run_id, "interrupted", "true")
        client.set_terminated(run_id, "FAILED")
    return sorted(stale)


@contextlib.contextmanager
def stage_run(params: Params, stage: str, sections: tuple[str, ...] = (), resume_run_id: str | None = None,
              **tags: str) -> Iterator[Any]:
    """One MLflow run per stage run, tagged with code and data versions and the stage's params.

    With `resume_run_id` (an interrupted training), that run is reopened instead of starting a new one.
    """
    experiment_id = setup_mlflow(params)
    if resume_run_id:
        try:
            mlflow.get_run(resume_run_id)
        except mlflow.exceptions.MlflowException:
            resume_run_id = None
    close_stale_runs(experiment_id, stage, keep=resume_run_id)
    with mlflow.start_run(run_id=resume_run_id, run_name=None if resume_run_id else stage,
                          tags={**lineage_tags(params, stage), **tags}) as run:
        for name in sections:
            mlflow.log_params({f"{name}.{k}": v for k, v in params.section(name).items()})
        yield run


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able values and file contents, for naming studies and caches."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with part.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def saved_run(path: Path, key: str) -> str | None:
    """The MLflow run id recorded for this same work (same key), if any: only that run is reopened,
    so a rerun with other params or data starts a new run instead of mixing the two."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record.get("run_id") if isinstance(record, dict) and record.get("key") == key else None


def save_run(path: Path, key: str, run_id: str) -> None:
    write_atomic_file(path, json.dumps({"run_id": run_id, "key": key}))
