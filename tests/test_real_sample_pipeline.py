"""The real-sample profile runs end to end: params-real-sample.yaml as `make run DATASET=real-sample`
uses it (its data, manifest, validation and every key the DAG declares), with the trainings shrunk to
tests/tiny_params.yaml's sizes, in a git copy of the repository. A profile that lacks a declared key
(`essnet.seeds` once) or a rule its data breaks fails here, not after 13 minutes of `make run`.
Needs the hash-checked sdist (`make test` fetches it); skipped without it, as tests never download."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from liversynth.data.real_sample import SDIST_NAME
from tests.conftest import IGNORE, REPO, run

SDIST = REPO / "data" / "downloads" / SDIST_NAME
# Sized by the tiny config: the networks, steps and bootstrap; everything about the data stays the profile's.
TINY_SECTIONS = ("runtime", "essnet", "synthesize", "unet", "tune")


@pytest.mark.skipif(not SDIST.exists(), reason=f"{SDIST.relative_to(REPO)} not fetched (make test fetches it)")
def test_real_sample_profile_runs_end_to_end(tmp_path: Path, prefect_api: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=IGNORE)
    (repo / "data" / "downloads").mkdir(parents=True)
    shutil.copy(REPO / "data" / "real_sample.sha256", repo / "data")
    shutil.copy(SDIST, repo / "data" / "downloads" / SDIST_NAME)
    profile = yaml.safe_load((REPO / "params-real-sample.yaml").read_text())
    tiny = yaml.safe_load((REPO / "tests" / "tiny_params.yaml").read_text())
    for section in TINY_SECTIONS:
        profile[section] = {**profile[section], **tiny[section]}
    profile["essnet"]["seeds"] = [0]
    profile["unet"]["labelled_patients"] = 1
    profile["evaluate"]["n_bootstrap"] = tiny["evaluate"]["n_bootstrap"]
    profile["prepare"]["image_size"] = 32  # the manifest and spacing stay; 32 px of 12 mm
    profile["data"]["spacing_mm"] = 12.0
    (repo / "params.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(repo / ".prefect"), "TQDM_DISABLE": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.2", "LIVERSYNTH_WORKERS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "copy"], repo, env)
    run([sys.executable, "-m", "liversynth.config", "params.yaml"], repo, env)  # as make run checks it
    run([sys.executable, "-m", "scripts.generate_data"], repo, env)
    run(["scripts/track_raw_data.sh"], repo, env)
    run(["dvc", "repro"], repo, env)
    metrics = yaml.safe_load((repo / "metrics.json").read_text())
    assert metrics["test"] and all(0.0 <= arm["iou"] <= 1.0 for arm in metrics["test"].values()
                                   if isinstance(arm, dict) and "iou" in arm)
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], repo, env).stdout
