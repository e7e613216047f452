"""The real pipeline end to end: `dvc repro` in a temporary copy of the repo on a tiny config
(the session's `pipeline_repo` fixture, tests/conftest.py, shared with test_shared_data and test_mlflow_ui).

Real DVC, real Prefect (one test server shared by every stage process), real MLflow (sqlite store
in the copy), real Optuna, real Great Expectations.
"""
from __future__ import annotations

import json
import re

import yaml

from tests.conftest import run

STAGES = ["prepare", "validate", "train_essnet@essnet", "train_essnet@cyclegan", "synthesize@essnet",
          "synthesize@cyclegan", "tune_mix", "train_unet", "evaluate", "register"]


def test_every_stage_ran_and_wrote_metrics(pipeline_repo):
    repo, _, first = pipeline_repo
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    metrics = json.loads((repo / "metrics.json").read_text())
    for arm in ("real_only", "mix", "mix_cyclegan"):
        assert 0.0 <= metrics["test"][arm]["iou"] <= 1.0 and metrics["test"][arm]["n_seeds"] == 2
    assert metrics["gain_iou"]["ci_low"] <= metrics["gain_iou"]["mean"] <= metrics["gain_iou"]["ci_high"]
    assert (repo / "data/synthetic/essnet/images.npy").exists() and (repo / "reports/figures/gain.png").exists()
    for key in ("gain_iou_cyclegan", "gain_iou_essnet_vs_cyclegan"):
        assert metrics[key]["ci_low"] <= metrics[key]["ci_high"]
    for key in ("seg_consistency_dice", "wasserstein_synthetic_vs_real_mri", "ct_cycle_ssim", "mri_cycle_psnr"):
        assert key in metrics["synthesis"] and key in metrics["synthesis_cyclegan"]
    page = (repo / "reports/report.html").read_text()
    assert "Does synthetic MRI help" in page and "CycleGAN" in page and "data:image/png;base64" in page
    assert "data/raw" in yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["path"]


def test_mlflow_runs_and_registry(pipeline_repo):
    repo, _, _ = pipeline_repo
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlruns/mlflow.db'}")
    exp = client.get_experiment_by_name("liversynth")
    runs = client.search_runs([exp.experiment_id], max_results=500)
    stages = {r.data.tags.get("stage") for r in runs}
    assert {s.split("@")[0] for s in STAGES} <= stages
    unet_runs = [r for r in runs if r.data.tags.get("kind") == "unet"]
    assert len(unet_runs) == 3 * 2 + 2  # three arms x two seeds, plus two tuning trials
    for r in unet_runs:
        assert "val_iou" in r.data.metrics and "val_dice" in r.data.metrics
        if r.data.tags["stage"] == "train_unet":
            assert "test_iou" in r.data.metrics and "test_dice" in r.data.metrics
        assert r.data.tags["git_commit"] != "unknown" and r.data.tags["data_dvc_md5"].endswith(".dir")
    champion = client.get_model_version_by_alias("liversynth-unet", "champion")
    assert champion.tags["gate.promote"] == "true" and "training_run_id" in champion.tags
    assert str(client.get_model_version_by_alias("liversynth-ct2mri", "champion").version) == "1"
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlruns/mlflow.db'}")
    model = mlflow.pytorch.load_model("models:/liversynth-unet@champion")
    assert model is not None


def test_second_repro_runs_nothing_and_status_is_clean(pipeline_repo):
    repo, env, _ = pipeline_repo
    assert "up to date" in run(["dvc", "status"], repo, env).stdout
    again = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in again.stdout


def test_changing_a_param_reruns_only_dependent_stages(pipeline_repo):
    repo, env, _ = pipeline_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["unet"]["steps"] = 9
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    out = run(["dvc", "repro"], repo, env).stdout
    assert set(re.findall(r"Running stage '([^']+)'", out)) == {"tune_mix", "train_unet", "evaluate", "register"}, out
