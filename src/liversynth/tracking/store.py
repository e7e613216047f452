"""Where the project's one MLflow store is, from any workspace DVC runs a stage in.

`dvc exp run --temp` and `dvc exp run --queue` run the pipeline in a copy of the repository under
`<repo>/.dvc/tmp/exps/...`. A relative store (`sqlite:///mlruns/mlflow.db`, `mlruns/artifacts`) read
from there would make a new, empty store inside the copy: the upstream stages' runs would not be
found, and every run logged there would vanish with the copy. DVC gives every stage of an experiment
the root of the repository the experiment belongs to (DVC_ROOT, set by the experiment queue to the
parent repository, not the copy); relative store paths are resolved against it, so all workspaces
share one store. Concurrent writers (2 queued experiments, a grid's workers) share the sqlite file:
every MLflow session on sqlite sets `PRAGMA busy_timeout = 20000`, so a writer waits up to 20 s for
another's lock instead of failing with "database is locked" (tests/test_queue.py runs 2 at once).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["EXPS_DIR", "project_root", "resolve_artifact_dir", "resolve_tracking_uri"]

EXPS_DIR = Path(".dvc") / "tmp" / "exps"  # where DVC makes the copies of temp and queued experiments


def project_root(cwd: Path | None = None) -> Path:
    """The repository whose store this process logs to: DVC_ROOT (DVC sets it for every stage, the
    parent repository's for an experiment in a copy), else the working folder, walked up out of
    `.dvc/tmp/exps/` when a process runs inside such a copy without DVC."""
    if root := os.environ.get("DVC_ROOT"):
        return Path(root).resolve()
    here = (cwd or Path.cwd()).resolve()
    parts = here.parts
    marker = EXPS_DIR.parts
    for i in range(len(parts) - len(marker) + 1):
        if parts[i : i + len(marker)] == marker:
            return Path(*parts[:i])
    return here


def resolve_tracking_uri(uri: str, root: Path | None = None) -> str:
    """A relative `sqlite:///path` made absolute under the project root; any other URI (a server, an
    absolute path) as it is."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return uri
    path, _, query = uri.removeprefix("sqlite:///").partition("?")
    if not path.startswith("/"):
        path = str((root or project_root()) / path)
        uri = f"sqlite:///{path}" + (f"?{query}" if query else "")
    return uri


def resolve_artifact_dir(artifact_dir: str, root: Path | None = None) -> Path:
    """The artifact folder of a new experiment: a relative one under the project root."""
    path = Path(artifact_dir)
    return path if path.is_absolute() else (root or project_root()) / path
