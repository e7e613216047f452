"""A relative MLflow store resolves to the project root from any workspace DVC runs a stage in."""
from __future__ import annotations

from pathlib import Path

import pytest

from liversynth.tracking.store import project_root, resolve_artifact_dir, resolve_tracking_uri


def test_dvc_root_wins_over_the_experiment_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    assert resolve_tracking_uri("sqlite:///mlruns/mlflow.db") == f"sqlite:///{tmp_path / 'repo/mlruns/mlflow.db'}"
    assert resolve_artifact_dir("mlruns/artifacts") == tmp_path / "repo/mlruns/artifacts"
    monkeypatch.delenv("DVC_ROOT")  # a process run by hand inside the copy: walked up out of .dvc/tmp/exps
    assert project_root() == tmp_path / "repo"


def test_other_stores_are_kept_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    for uri in ("http://127.0.0.1:5000", "sqlite:////abs/mlflow.db", "sqlite:///:memory:", "file:///x/mlruns"):
        assert resolve_tracking_uri(uri) == uri
    assert resolve_tracking_uri("sqlite:///m.db") == f"sqlite:///{tmp_path / 'm.db'}"
    assert resolve_artifact_dir("/abs/artifacts") == Path("/abs/artifacts")
