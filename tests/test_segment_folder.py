"""Batch inference as a Prefect flow: kill -9 mid-run, rerun, finished studies are not redone."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from mlflow.tracking import MlflowClient

from tests.champion_models import box_volume, register, train_box_unet, unet_spec
from tests.conftest import REPO
from tests.raw_data import nifti_from_display

N = 10


def _env(store: str, api: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": store, "PREFECT_API_URL": api, "PYTHONPATH": str(REPO),
            "LIVERSYNTH_PARAMS": str(REPO / "tests/tiny_params.yaml"), "TQDM_DISABLE": "1"}


def _finished(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.nii.gz")}


def test_resumes_after_kill_9(mlflow_store, prefect_api, tmp_path):
    register(train_box_unet(), unet_spec())
    studies, out = tmp_path / "in", tmp_path / "out"
    studies.mkdir()
    for k in range(N):
        nib.save(nifti_from_display(box_volume(k, (24, 96, 90))[0], (3.0, 1.0, 1.0), "LPS"),
                 studies / f"study{k:02d}.nii.gz")
    cmd = [sys.executable, "-m", "flows.segment_folder", str(studies), str(out)]
    env = _env(mlflow_store, prefect_api)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not _finished(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _finished(out)
    assert 1 <= len(before) < N, (len(before), proc.stderr.read().decode()[-2000:] if proc.stderr else "")

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _finished(out)
    assert len(after) == N and all(after[name] == stamp for name, stamp in before.items())  # not redone
    mask = nib.load(out / "study03.nii.gz")
    assert mask.shape == nib.load(studies / "study03.nii.gz").shape and set(np.unique(mask.dataobj)) <= {0, 1}
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("liversynth").experiment_id],
                              "tags.stage = 'segment_folder'")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 1 and all(r.info.status != "RUNNING" for r in runs)  # the killed run is closed
    m = finished[0].data.metrics
    assert (m["n_skipped"], m["n_segmented"], m["n_failed"]) == (len(before), N - len(before), 0)
    assert finished[0].data.tags["model_version"] == "1"
