"""Killed training resumes from its last checkpoint, and no MLflow run is left RUNNING forever.

The kill tests really `kill -9` a training subprocess (EssNet alone; the whole train_unet stage) after
its first checkpoint appears; that run is slowed by a sleep in its logging callback so the kill lands
mid-training, not after it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from liversynth.config import UNetConfig
from liversynth.training.unet import train_unet
from tests.conftest import REPO, blob_slices

TINY = UNetConfig(channels=(4, 8), strides=(2,), num_res_units=0, steps=12, batch_size=2, lr=1e-3, eval_every=3)


def train_job(which: str, checkpoint: Path, pause_s: float = 0.0) -> tuple[int, int]:
    """One small training with a checkpoint; returns (resumed_from, last step). `pause_s` sleeps in
    the logging callback, so a run can be killed mid-training rather than after it."""
    pause = (lambda step, row: time.sleep(pause_s)) if pause_s else None
    if which == "unet":
        cfg = UNetConfig(channels=(4, 8), strides=(2,), num_res_units=0, steps=12, batch_size=2, eval_every=3)
        r = train_unet(blob_slices(8, size=16), None, 0.0, cfg, seed=0, val=blob_slices(4, size=16, seed=1),
                       checkpoint=checkpoint, on_eval=pause, progress=False)
        return r.resumed_from, r.history[-1]["step"]
    from liversynth.config import EssNetConfig
    from liversynth.training.essnet import train_essnet

    cfg = EssNetConfig(steps=12, batch_size=1, ngf=4, n_blocks=1, ndf=4, seg_channels=(4, 8), pool_size=2,
                       checkpoint_every=3)
    e = train_essnet(blob_slices(6), blob_slices(6, seed=1).images, cfg, seed=0, checkpoint=checkpoint,
                     on_log=pause, log_every=3)
    return e.resumed_from, e.steps_done


KILLED_JOB = """
import sys, torch
from pathlib import Path
from tests.test_resume import train_job
torch.set_num_threads(1)
train_job(sys.argv[1], Path(sys.argv[2]), pause_s=1.0)
"""


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on a busy 2-core machine: one thread avoids waiting on a second, busy core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", **extra}


def _kill_after(proc: subprocess.Popen, appears: Callable[[], bool], timeout: float = 90.0) -> None:
    """kill -9 `proc` as soon as appears() is true; fail if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while not appears():
        if proc.poll() is not None:
            pytest.fail(f"training exited ({proc.returncode}) before its first checkpoint:\n"
                        f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within the time limit")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


# U-Net: the train_unet stage test below kills a real stage process mid-training.
@pytest.mark.parametrize("which", ["essnet"])
def test_kill_9_mid_training_then_rerun_resumes_from_the_checkpoint(tmp_path, which):
    checkpoint = tmp_path / "ckpt" / f"{which}.pt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_JOB, which, str(checkpoint)], cwd=tmp_path,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _kill_after(proc, checkpoint.exists)
    saved_step = torch.load(checkpoint, map_location="cpu", weights_only=True)["step"]
    assert 0 < saved_step < 12
    assert not [p for p in checkpoint.parent.iterdir() if p != checkpoint]  # no half-written temp file
    assert train_job(which, checkpoint) == (saved_step, 12)


def test_resumed_unet_equals_uninterrupted(tmp_path):
    data, val = blob_slices(8, size=16), blob_slices(4, size=16, seed=1)
    straight = train_unet(data, None, 0.0, TINY, seed=3, val=val, progress=False)

    def crash_at_6(step, row):
        if step == 6:
            raise KeyboardInterrupt  # before the step-6 checkpoint: the last one is step 3

    checkpoint = tmp_path / "unet.pt"
    with pytest.raises(KeyboardInterrupt):
        train_unet(data, None, 0.0, TINY, seed=3, val=val, progress=False, checkpoint=checkpoint, on_eval=crash_at_6)
    seen = []
    resumed = train_unet(data, None, 0.0, TINY, seed=3, val=val, progress=False, checkpoint=checkpoint,
                         on_eval=lambda step, row: seen.append(step))
    assert resumed.resumed_from == 3 and seen == [6, 9, 12]
    assert resumed.history == straight.history
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)
    # A finished checkpoint restores the best model without training; other data never resumes it.
    again = train_unet(data, None, 0.0, TINY, seed=3, val=val, progress=False, checkpoint=checkpoint)
    assert again.resumed_from == 12 and again.best_val_iou == straight.best_val_iou
    other = train_unet(blob_slices(8, size=16, seed=9), None, 0.0, TINY, seed=3, val=val, progress=False,
                       checkpoint=checkpoint)
    assert other.resumed_from == 0


def _write_stage_inputs(root: Path) -> None:
    """What the train_unet stage reads: prepared MRI splits, synthetic slices, the tuned ratio, params."""
    from liversynth.data.oracle_set import OracleSlices, save_oracle
    from liversynth.data.slice_set import SliceSet
    from liversynth.paths import ORACLE, PREPARED, TUNE_RESULT, synthetic_dir

    blob_slices(8, size=16, prefix="t").save(root / PREPARED / "mri_train")
    blob_slices(4, size=16, seed=1, prefix="v").save(root / PREPARED / "mri_val")
    blob_slices(4, size=16, seed=5, prefix="u").save(root / PREPARED / "mri_unlabelled")
    blob_slices(8, size=16, seed=6, prefix="c").save(root / PREPARED / "ct_train")  # the raw-CT control arms
    for k, variant in enumerate(("essnet", "cyclegan")):
        blob_slices(8, size=16, seed=2 + k, prefix="s").save(root / synthetic_dir(variant, 0))
    ct = SliceSet.load(root / PREPARED / "ct_train")  # the phantom's oracle arms train on its stand-in
    save_oracle(root / ORACLE, OracleSlices(ct.images, ct.labels, np.zeros_like(ct.labels), ct.patients))
    (root / TUNE_RESULT).parent.mkdir(parents=True)
    (root / TUNE_RESULT).write_text(json.dumps({"best_ratio": 1.0}))
    params = yaml.safe_load((REPO / "tests/tiny_params.yaml").read_text())
    params["unet"] = {"channels": [4, 8], "strides": [2], "num_res_units": 0, "steps": 12, "batch_size": 2,
                      "lr": 0.001, "eval_every": 4}
    params["evaluate"]["seeds"] = [0]
    params["essnet"]["seeds"] = [0]
    params["mlflow"]["experiment"] = "resume"
    (root / "params.yaml").write_text(yaml.safe_dump(params))


SLOW_FLOW = """
import time
import torch
import flows.train_unet as stage
import liversynth.training.unet as unet
torch.set_num_threads(1)
train = unet.train_unet
def slow_train(*args, on_eval=None, **kwargs):
    def pause(step, row):
        if on_eval is not None:
            on_eval(step, row)
        time.sleep(1.0)
    return train(*args, on_eval=pause, **kwargs)
unet.train_unet = slow_train  # liversynth.training.unet_cells imports it when a cell trains
stage.train_unet_flow.fn()
"""


def test_killed_train_unet_stage_resumes_and_reopens_its_mlflow_runs(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    _write_stage_inputs(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("LIVERSYNTH_WORKERS", "1")  # in this process: the cells run here, one after another
    env = _env(MLFLOW_TRACKING_URI=uri, PREFECT_HOME=str(tmp_path / ".prefect"), LIVERSYNTH_WORKERS="1")
    env.pop("LIVERSYNTH_PARAMS", None)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_FLOW], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / ".checkpoints/unet/real_only-seed0.pt"
    _kill_after(proc, checkpoint.exists)
    saved_step = torch.load(checkpoint, map_location="cpu", weights_only=True)["step"]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("resume").experiment_id
    killed = {r.info.run_id: r for r in client.search_runs([experiment]) if r.data.tags.get("kind") != "pipeline"}
    assert {r.info.status for r in killed.values()} == {"RUNNING"}  # what kill -9 leaves behind: the stage's run
    # (a cell's own run is logged only once it is trained, so none is left half-made)
    # (the pipeline run is FINISHED from its creation: no process owns it)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    from flows.train_unet import CHECKPOINTS, train_unet_flow

    models = train_unet_flow.fn()
    runs = {r.info.run_id: r for r in client.search_runs([experiment])}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert set(killed) <= set(runs)  # the interrupted stage run was reopened, not replaced
    arm_run = next(r for r in runs.values() if r.data.tags.get("arm") == "real_only")
    assert arm_run.data.tags["resumed_from_step"] == str(saved_step)
    assert {"real_only", "mix"} <= {m["arm"] for m in models} and not CHECKPOINTS.exists()
    steps = [m.step for m in client.get_metric_history(arm_run.info.run_id, "val_iou") if m.step]
    assert sorted(set(steps)) == [4, 8, 12]


def test_stale_running_runs_are_marked_failed_live_ones_kept(tmp_path, mlflow_store):
    """Any stage's run whose process is gone is closed, by whichever stage starts next: a run left open
    by another stage (register logging a model in a training run) must not slip through."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from liversynth.tracking.runs import OWNER_TAG, close_stale_runs

    client = MlflowClient(mlflow_store)
    experiment = mlflow.get_experiment_by_name("test").experiment_id
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs, as after kill -9
    host = socket.gethostname()
    dead = client.create_run(experiment, tags={"stage": "train_essnet", OWNER_TAG: f"{host}:{gone.pid}"})
    child = client.create_run(experiment, tags={"stage": "train_essnet", "mlflow.parentRunId": dead.info.run_id})
    alive = client.create_run(experiment, tags={"stage": "train_essnet", OWNER_TAG: f"{host}:{os.getpid()}"})
    resumed = client.create_run(experiment, tags={"stage": "train_essnet", OWNER_TAG: f"{host}:{gone.pid}"})
    other_stage = client.create_run(experiment, tags={"stage": "tuning", OWNER_TAG: f"{host}:{gone.pid}"})
    other_host = client.create_run(experiment, tags={"stage": "tuning", OWNER_TAG: f"elsewhere:{gone.pid}"})

    closed = close_stale_runs(experiment, keep=resumed.info.run_id)
    assert closed == sorted([dead.info.run_id, child.info.run_id, other_stage.info.run_id])
    runs = {"dead": dead, "child": child, "alive": alive, "resumed": resumed, "other_stage": other_stage,
            "other_host": other_host}
    status = {name: client.get_run(run.info.run_id).info.status for name, run in runs.items()}
    assert status == {"dead": "FAILED", "child": "FAILED", "alive": "RUNNING", "resumed": "RUNNING",
                      "other_stage": "FAILED", "other_host": "RUNNING"}
    assert client.get_run(dead.info.run_id).data.tags["interrupted"] == "true"
    np.testing.assert_equal(close_stale_runs(experiment), [resumed.info.run_id])
