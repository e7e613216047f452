"""The register stage's flow through the Prefect engine on a tiny workspace: first run promotes on the
baseline gain, a rerun adds no versions, an unloadable champion is a tagged refusal (not a crash)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from liversynth.config import Params
from liversynth.models.generator import ResnetGenerator
from liversynth.models.unet import build_unet
from liversynth.models.weights import save_weights
from tests.conftest import REPO, blob_slices

GAIN = {"mean": 0.02, "ci_low": 0.004, "ci_high": 0.03, "n": 2}


def _workspace(root: Path, run_id: str, gain: dict | None = None) -> None:
    shutil.copy(REPO / "tests/tiny_params.yaml", root / "params.yaml")
    params = Params.from_yaml(root / "params.yaml")
    (root / "models/unet").mkdir(parents=True, exist_ok=True)
    models = []
    for arm, ratio in (("mix", 1.0), ("real_only", 0.0)):
        save_weights(build_unet(params.unet), root / f"models/unet/{run_id}-{arm}.pt")
        models.append({"arm": arm, "val_iou": 0.5, "path": f"models/unet/{run_id}-{arm}.pt", "run_id": f"{run_id}-{arm}",
                       "ratio": ratio, "seed": 0})
    (root / "models/unet/models.json").write_text(json.dumps(models))
    save_weights(ResnetGenerator(1, 1, params.essnet.ngf, params.essnet.n_blocks), root / "models/essnet/seed0/g_ct2mri.pt")
    (root / "metrics.json").write_text(json.dumps({"gain_iou": gain or GAIN, "ci": 0.95, "test": {"mix": {"iou": 0.5}}}))
    splits = {"ct_train": ["c0", "c1"], "mri_train": ["m9"], "mri_test": ["mri_test-0", "mri_test-1"]}
    blob_slices(6, seed=1, prefix="mri_test-").save(root / "data/prepared/mri_test")
    blob_slices(4, seed=2, prefix="c").save(root / "data/prepared/ct_train")
    (root / "data/prepared/manifest.json").write_text(json.dumps(
        {"splits": {k: {"patients": v} for k, v in splits.items()}}))


def test_register_flow_units_and_refusals(mlflow_store, prefect_api, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from flows.register import register_flow

    _workspace(tmp_path, "run-1")
    first = register_flow()
    assert first["promoted"] and first["code"] == "first_beats_baseline" and first["unet"]["arm"] == "mix"
    assert MlflowClient().get_model_version("liversynth-unet", "1").tags["training_run_id"] == "run-1-mix"
    client = MlflowClient()
    for name in ("liversynth-unet", "liversynth-ct2mri"):
        version = client.get_model_version(name, "1")
        assert "champion" in version.aliases and "phantom" in version.description
        assert version.tags["data.test_split_hash"] and version.tags["liversynth.unit_complete"] == "true"
    assert "CT->MRI" in client.get_registered_model("liversynth-ct2mri").description

    assert register_flow()["unet"]["version"] == "1"  # the same unit again: no duplicate versions
    assert len(client.search_model_versions("name = 'liversynth-ct2mri'")) == 1

    for weights in (tmp_path / "mlruns").rglob("weights.pt"):
        weights.unlink()  # the champion can no longer be loaded
    _workspace(tmp_path, "run-2")
    third = register_flow()
    assert not third["promoted"] and third["code"] == "champion_unloadable" and third["unet"]["version"] == "2"
    tags = client.get_model_version("liversynth-unet", "2").tags
    assert tags["gate.promote"] == "false" and "cannot be loaded" in tags["gate.reason"]
    assert "challenger" in client.get_model_version("liversynth-unet", "2").aliases
    assert str(first["champion_version"]) == str(client.get_model_version_by_alias("liversynth-unet", "champion").version)
    assert json.loads((tmp_path / "reports/registry.json").read_text())["code"] == "champion_unloadable"


def test_first_run_without_a_gain_makes_the_real_only_unet_champion(mlflow_store, prefect_api, tmp_path, monkeypatch):
    """The mix does not beat real only: the real-only U-Net is registered and is champion, its card says
    so with the comparison, and `liversynth segment`'s default model loads."""
    monkeypatch.chdir(tmp_path)
    from flows.register import register_flow
    from liversynth.inference.loading import load_registered

    _workspace(tmp_path, "run-1", {"arm": "mix", "baseline": "real_only", "mean": -0.01, "ci_low": -0.03,
                                   "ci_high": 0.01, "n": 2})
    report = register_flow()
    assert report["promoted"] and report["code"] == "first_real_only" and report["unet"]["arm"] == "real_only"
    assert "does not beat the real-only baseline" in report["reason"] and "-0.0100" in report["reason"]
    client = MlflowClient()
    version = client.get_model_version_by_alias("liversynth-unet", "champion")
    assert version.tags["training_run_id"] == "run-1-real_only" and version.tags["arm"] == "real_only"
    assert "**Arm:** real MRI only" in version.description and "does not beat real only" in version.description
    assert "champion" in client.get_model_version("liversynth-ct2mri", "1").aliases  # the generator as before
    assert load_registered("models:/liversynth-unet@champion").spec.kind == "unet"


_REOPEN_AND_DIE = """
import os, signal, sys
from flows.register import _in_run
_in_run(sys.argv[1], lambda: os.kill(os.getpid(), signal.SIGKILL))  # killed while logging a model in the run
"""


def test_a_training_run_left_open_by_a_killed_register_is_finished_again(mlflow_store):
    """register reopens a finished training run to log its model there; killed meanwhile, the next
    stage to start (any stage: close_stale_runs) finishes it again with its training's duration."""
    import subprocess
    import sys

    import mlflow

    from liversynth.tracking.runs import OWNER_TAG, close_stale_runs
    from liversynth.utils.process import owner_id

    client = MlflowClient()
    exp = mlflow.get_experiment_by_name("test").experiment_id
    killed = client.create_run(exp, run_name="train_essnet[essnet seed=0]", tags={"stage": "train_essnet"}).info.run_id
    client.set_terminated(killed, "FINISHED", end_time=client.get_run(killed).info.start_time + 5000)
    done = subprocess.run([sys.executable, "-c", _REOPEN_AND_DIE, killed], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    assert client.get_run(killed).info.status == "RUNNING"
    with mlflow.start_run(run_name="unet[mix seed=0]", tags={OWNER_TAG: owner_id()}) as live:
        assert close_stale_runs(exp) == [killed]  # one whose process still runs stays open
        assert client.get_run(live.info.run_id).info.status == "RUNNING"
    run = client.get_run(killed)
    assert run.info.status == "FINISHED" and run.data.tags["reopen_interrupted"] == "true"
    assert "interrupted" not in run.data.tags
    assert run.info.end_time - run.info.start_time == 5000  # the training's duration, not the reopening's
    assert close_stale_runs(exp) == []
