"""What the MLflow UI shows after the tiny pipeline run, read through a real `mlflow server`'s REST API:
the experiment's kind, run names, one pipeline run per repro with the headline metrics and all params,
stage runs nested under it, dataset inputs with DVC digests, system metrics on training runs."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import wait_until_healthy
import yaml

HEADLINE = ["real_only_test_iou", "mix_test_iou", "mix_cyclegan_test_iou", "gain_iou_mean", "gain_iou_ci_low",
            "gain_iou_ci_high"]


@pytest.fixture(scope="module")
def mlflow_api(pipeline_repo):
    repo, env, _ = pipeline_repo
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([Path(sys.executable).parent / "mlflow", "server", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{repo / 'mlruns/mlflow.db'}"],
                            cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_healthy(f"{base}/health", proc, 120,
                           lambda: f"mlflow server did not start: {proc.communicate()[1][-3000:]}")

        def api(path: str, body: dict | None = None) -> dict:
            req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", headers={"Content-Type": "application/json"},
                                         data=json.dumps(body).encode() if body is not None else None)
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())

        yield api, repo
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _runs(api, exp_id: str) -> list[dict]:
    runs, token = [], None
    while True:
        page = api("runs/search", {"experiment_ids": [exp_id], "max_results": 500, **({"page_token": token} if token else {})})
        runs += page.get("runs", [])
        if not (token := page.get("next_page_token")):
            return runs


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def test_mlflow_ui_sees_pipelines_names_datasets_and_system_metrics(mlflow_api):
    api, repo = mlflow_api
    exp = api("experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": "liversynth"}))["experiment"]
    assert {t["key"]: t["value"] for t in exp["tags"]}["mlflow.experimentKind"] == "custom_model_development"
    runs = _runs(api, exp["experiment_id"])
    pipelines = [r for r in runs if _tags(r).get("kind") == "pipeline"]
    stage_runs = [r for r in runs if "stage" in _tags(r)]
    by_pipeline: dict[str, list[dict]] = {}
    for r in stage_runs:
        by_pipeline.setdefault(_tags(r)["liversynth.pipeline_id"], []).append(r)
    # one pipeline run per repro that ran stages, each stage run nested under its own pipeline's run
    assert sorted(_tags(p)["liversynth.pipeline_id"] for p in pipelines) == sorted(by_pipeline)
    pipeline_of = {_tags(p)["liversynth.pipeline_id"]: p for p in pipelines}
    for pid, members in by_pipeline.items():
        names = Counter(r["info"]["run_name"] for r in members)
        assert max(names.values()) == 1, names  # names tell every run of one repro apart
        top = [r for r in members if _tags(r).get("kind") not in ("unet", "generator")
               and "trial" not in r["info"]["run_name"]]
        assert {_tags(r)["mlflow.parentRunId"] for r in top} == {pipeline_of[pid]["info"]["run_id"]}
    first = by_pipeline[_tags(min(pipelines, key=lambda p: p["info"]["start_time"]))["liversynth.pipeline_id"]]
    assert {"train_essnet", "synthesize[essnet]", "synthesize[cyclegan]",
            "train_essnet[essnet seed=0]", "train_essnet[cyclegan seed=1]", "unet[mix seed=1 gen=1 n=1]",
            "unet[real_only seed=0 n=1]", "trial[ratio=1]", "evaluate"} <= {r["info"]["run_name"] for r in first}
    with_eval = [pipeline_of[pid] for pid, rs in by_pipeline.items() if any(_tags(r)["stage"] == "evaluate" for r in rs)]
    assert with_eval
    for p in with_eval:
        metrics = {m["key"]: m["value"] for m in p["data"]["metrics"]}
        assert set(HEADLINE) <= set(metrics), metrics
        assert metrics["gain_iou_ci_low"] <= metrics["gain_iou_mean"] <= metrics["gain_iou_ci_high"]
        params = {q["key"] for q in p["data"]["params"]}
        assert {"seed", "essnet.steps", "unet.steps", "tune.ratios", "evaluate.seeds"} <= params

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    prepared_md5 = next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data/prepared")
    essnet = next(r for r in first if r["info"]["run_name"] == "train_essnet")
    inputs = {d["dataset"]["name"]: d for d in essnet["inputs"]["dataset_inputs"]}
    assert inputs["ct_train"]["dataset"]["digest"] == prepared_md5
    assert {t["value"] for t in inputs["ct_train"]["tags"]} >= {"training"}
    unet = next(r for r in first if r["info"]["run_name"] == "unet[mix seed=1 gen=1 n=1]")
    digests = {d["dataset"]["name"]: d["dataset"]["digest"] for d in unet["inputs"]["dataset_inputs"]}
    synthetic = next(o["md5"] for s in lock["stages"].values() for o in s.get("outs", [])
                     if o["path"] == "data/synthetic/essnet")  # every generator seed's synthetic MRI
    assert digests["mri_train"] == prepared_md5 and digests["mri_val"] == prepared_md5
    ratio = float({q["key"]: q["value"] for q in unet["data"]["params"]}["ratio"])
    assert ("synthetic_essnet" in digests) == (ratio > 0)  # synthetic data is an input only when mixed in
    if ratio > 0:
        assert digests["synthetic_essnet"] == synthetic
    for training in (essnet,):  # a tiny U-Net may finish before the first sample
        keys = {m["key"] for m in training["data"]["metrics"]}
        assert any(k.startswith("system/cpu") for k in keys) and any(k.startswith("system/") and "memory" in k
                                                                     for k in keys), sorted(keys)
    assert (repo / "reports/data_docs/index.html").exists()  # GX Checkpoint's Data Docs


def test_registered_models_are_logged_in_the_runs_that_trained_them(mlflow_api):
    api, _ = mlflow_api
    for name, kind in (("liversynth-unet", "unet"), ("liversynth-ct2mri", "generator")):
        version = api("registered-models/alias?" + urllib.parse.urlencode({"name": name, "alias": "challenger"}))
        version = version["model_version"]
        trained_in = api("runs/get?" + urllib.parse.urlencode({"run_id": version["run_id"]}))["run"]
        assert _tags(trained_in)["kind"] == kind, (name, trained_in["info"]["run_name"])
        assert {t["key"]: t["value"] for t in version["tags"]}["training_run_id"] == version["run_id"]
        assert version["description"]
