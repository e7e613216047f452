"""The real pipeline end to end: `dvc repro` in a temporary copy of the repo on a tiny config
(the session's `pipeline_repo` fixture, tests/conftest.py, shared with test_shared_data and test_mlflow_ui).

Real DVC, real Prefect (one test server shared by every stage process), real MLflow (sqlite store
in the copy), real Optuna, real Great Expectations.
"""
from __future__ import annotations

import hashlib
import json
import re

import yaml

from tests.conftest import run

STAGES = ["prepare", "validate", "oracle", "train_essnet", "synthesize@essnet", "synthesize@cyclegan", "tuning", "train_unet",
          "evaluate", "register", "segment_demo"]


def test_every_stage_ran_and_wrote_metrics(pipeline_repo):
    repo, _, first = pipeline_repo
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    metrics = json.loads((repo / "metrics.json").read_text())
    for arm in ("real_only", "mix", "mix_cyclegan", "mix_ct", "mix_histmatch", "synthetic_only"):
        assert 0.0 <= metrics["test"][arm]["iou"] <= 1.0 and metrics["test"][arm]["n_seeds"] == 2
    assert metrics["test"]["atlas"]["n_seeds"] == 1
    assert metrics["primary"]["key"] == "gain_iou" and metrics["gain_iou"]["role"] == "primary"
    assert metrics["primary"]["registered"] is False  # tiny_params registers no test split
    assert metrics["machine"]["torch"].startswith("2.13.0") and metrics["machine"]["threads"] == "1"
    assert metrics["gain_iou"]["ci_low"] <= metrics["gain_iou"]["mean"] <= metrics["gain_iou"]["ci_high"]
    assert (repo / "data/synthetic/essnet/seed1/images.npy").exists() and (repo / "reports/figures/gain.png").exists()
    for key in ("gain_iou_cyclegan", "gain_iou_essnet_vs_cyclegan", "gain_iou_atlas", "gain_iou_essnet_vs_ct",
                "gain_iou_essnet_vs_histmatch", "gain_iou_synthetic_only", "drift_dice_essnet_minus_cyclegan"):
        assert metrics[key]["ci_low"] <= metrics[key]["ci_high"]
    for key in ("seg_consistency_dice", "wasserstein_synthetic_vs_real_mri", "ct_cycle_ssim", "mri_cycle_psnr"):
        assert key in metrics["synthesis"] and key in metrics["synthesis_cyclegan"]
    # The phantom's ceiling: oracle arms, the ceiling and each translator's share, fidelity per checkpoint.
    for arm in ("mix_oracle", "oracle_only"):
        assert metrics["test"][arm]["n_seeds"] == 2
    assert metrics["ceiling"]["ci_low"] <= metrics["ceiling"]["mean"] <= metrics["ceiling"]["ci_high"]
    assert set(metrics["share_of_ceiling"]) == {"essnet", "cyclegan"} and metrics["oracle"]["available"]
    for variant in ("essnet", "cyclegan"):
        assert metrics["fidelity"][variant]["n_seeds"] == 2 and metrics["fidelity"][variant]["per_seed"]["0"]["checkpoints"] >= 2
    assert (repo / "models/essnet/seed0/g_ct2mri_step2.pt").exists() and (repo / "reports/figures/fidelity.png").exists()
    page = (repo / "reports/report.html").read_text()
    assert "Does synthetic MRI help" in page and "CycleGAN" in page and "data:image/png;base64" in page
    assert "Ceiling (real + oracle translation" in page
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
    assert len(unet_runs) == 8 * 2 + 2  # eight trained arms (two oracle arms) x two seeds, plus two tuning trials
    for r in unet_runs:
        assert "val_iou" in r.data.metrics and "val_dice" in r.data.metrics
        if r.data.tags["stage"] == "train_unet":
            assert "test_iou" in r.data.metrics and "test_dice" in r.data.metrics
        assert r.data.tags["git_commit"] != "unknown" and r.data.tags["data_dvc_md5"].endswith(".dir")
    # One unit: U-Net and generator both complete, tagged, described; the first-run gate on metrics.json.
    metrics = json.loads((repo / "metrics.json").read_text())
    report = json.loads((repo / "reports/registry.json").read_text())
    gain = metrics["gain_iou"]
    # A first run always ends with a champion: the mix's U-Net if it beats real only, else the real-only one.
    beats = gain["mean"] > 0 and gain["ci_low"] > 0
    assert report["promoted"] and report["unet"]["arm"] == ("mix" if beats else "real_only"), report
    assert report["code"] == ("first_beats_baseline" if beats else "first_real_only"), report
    for name in ("liversynth-unet", "liversynth-ct2mri"):
        version = client.get_model_version_by_alias(name, "challenger")
        assert str(version.version) == "1" and version.tags["liversynth.unit_complete"] == "true"
        assert version.tags["gate.promote"] == str(report["promoted"]).lower() and version.tags["gate.code"]
        assert "data.test_split_hash" in version.tags and "training_run_id" in version.tags
        assert "phantom" in version.description and "CI" in version.description
    from liversynth.inference.loading import load_registered

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlruns/mlflow.db'}")
    alias = "champion" if report["promoted"] else "challenger"
    model = load_registered(f"models:/liversynth-unet@{alias}")  # weights-only, never unpickled
    assert model.spec.kind == "unet" and model.spec.test_split_hash
    demo = json.loads((repo / "reports/segment_demo.json").read_text())
    patient = demo["patient"]
    import nibabel as nib

    raw = nib.load(repo / f"data/raw/mri/{patient}/image.nii.gz")
    mask = nib.load(repo / "reports/segment_demo_mask.nii.gz")
    assert mask.shape == raw.shape and (mask.affine == raw.affine).all() and 0 <= demo["dice"] <= 1
    assert (repo / "reports/figures/segment_demo.png").stat().st_size > 1000


def test_training_runs_last_their_training_and_the_pipeline_run_spans_the_repro(pipeline_repo):
    """Live runs (liversynth.tracking.live): each generator seed, U-Net and tuning trial ran in its own run
    from its start to its end, so the run lasts its `wall_s`; the pipeline run spans the first repro."""
    repo, _, _ = pipeline_repo
    from mlflow.tracking import MlflowClient

    from liversynth.tracking.durations import run_durations

    uri = f"sqlite:///{repo / 'mlruns/mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("liversynth").experiment_id
    span = json.loads((repo.parent / "first_repro.json").read_text())
    first = [r for r in client.search_runs([exp], "tags.kind = 'pipeline'")
             if r.info.start_time == int(span["start"] * 1000)]
    assert len(first) == 1, "the first repro's pipeline run starts when the repro started"
    import mlflow

    mlflow.set_tracking_uri(uri)
    report = run_durations(exp, first[0].data.tags["liversynth.pipeline_id"], span["start"], span["end"])
    kinds = [t["kind"] for t in report["training_runs"]]
    assert kinds.count("generator") == 2 * 2 and kinds.count("unet") == 8 * 2 + 2, kinds
    for row in report["training_runs"]:
        assert row["status"] == "FINISHED" and not row["resumed"], row
        # 10%, or half a second for the tiny config's second-long trainings (the run's own writes)
        assert abs(row["duration_s"] - row["wall_s"]) <= max(0.10 * row["wall_s"], 0.5), row
    assert first[0].info.end_time <= span["end"] * 1000
    assert report["pipeline"]["ratio"] >= 0.9, report["pipeline"]  # its last stage ended with the repro


def test_second_repro_runs_nothing_and_status_is_clean(pipeline_repo):
    repo, env, _ = pipeline_repo
    # dvc.yaml: the default pipeline (study/dvc.yaml's stage is run by `make study` only)
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], repo, env).stdout
    again = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in again.stdout


def test_retraining_in_fresh_processes_gives_identical_outputs(pipeline_repo):
    """Same commit, same machine, same numbers: forced retraining (no run-cache) reproduces every hash."""
    repo, env, _ = pipeline_repo
    # models/unet also holds models.json, which names each model's MLflow run (new runs, new ids):
    # its weights are compared file by file instead.
    outs = ("models/essnet", "data/synthetic/essnet")

    def hashes() -> dict[str, str]:
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        found = {o["path"]: o["md5"] for st in lock.values() for o in st.get("outs", []) if o["path"] in outs}
        found["metrics.json"] = hashlib.sha256((repo / "metrics.json").read_bytes()).hexdigest()
        weights = {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in sorted((repo / "models/unet").glob("*.pt"))}
        return {**found, **weights}

    before = hashes()
    # -s: only these stages, each forced, each a fresh process (the rest keep their outputs)
    run(["dvc", "repro", "-f", "-s", "--no-run-cache", "train_essnet", "synthesize@essnet", "train_unet",
         "evaluate"], repo, env)
    assert len(before) == len(outs) + 1 + 16 and hashes() == before  # 8 arms (oracle arms on the phantom) x 2 seeds


def test_a_changed_param_reruns_only_its_stages_and_a_revert_restores_from_the_run_cache(pipeline_repo):
    """unet.steps changes tuning and U-Nets only; set back, both come from DVC's run-cache instead of
    being retrained (`dvc repro -f` never uses it: DVC skips the run-cache when forced). Stages with a
    plain uncached out (report.html, the registry report, the demo mask) get no run-cache entry (dvc.yaml).
    `dvc repro train_unet` shows both; the stages after it run once, at the end."""
    repo, env, _ = pipeline_repo
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["unet"]["steps"] = 9
    params_file.write_text(yaml.safe_dump(params))
    out = run(["dvc", "repro", "train_unet"], repo, env).stdout
    assert set(re.findall(r"Running stage '([^']+)'", out)) == {"tuning", "train_unet"}, out
    assert "didn't change" in out and "Stage 'train_essnet' didn't change" in out, out

    params_file.write_text(original)  # back to tiny_params' value, run before
    out = run(["dvc", "repro", "train_unet"], repo, env).stdout
    assert "Stage 'train_unet' is cached - skipping run" in out, out
    assert "Stage 'tuning' is cached - skipping run" in out, out
    assert "Running stage" not in out, out
    # The rest catch up (the forced retrain above gave models.json new run ids): no training reruns.
    out = run(["dvc", "repro"], repo, env).stdout
    assert set(re.findall(r"Running stage '([^']+)'", out)) <= {"evaluate", "register", "segment_demo"}, out
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], repo, env).stdout
