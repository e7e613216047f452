"""Shared fixtures: a tiny prepared dataset, a real MLflow sqlite store in tmp, Prefect's test harness,
and one tiny real pipeline run (`dvc repro` in a temporary git copy) for the session."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# Under `make test` two xdist workers share the 2 cores: one intra-op thread each, no oversubscription.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)

from liversynth.data.slice_set import SPLITS, SliceSet  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


# The test modules that use the session's tiny pipeline (built once per xdist worker: keep them on one).
PIPELINE_MODULES = frozenset(f"tests/{f.name}" for f in Path(__file__).parent.glob("test_*.py")
                             if "pipeline_repo" in f.read_text())
# Run first (the longest work units, so the short ones fill in around them): the tiny pipeline's users,
# then the kill ladder, then the rest in file order.
FIRST = ("pipeline_repo", "tests/test_faults_pipeline.py")


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its module, except that the tiny pipeline's users share one."""
    module = nodeid.split("::", 1)[0]
    return "pipeline_repo" if module in PIPELINE_MODULES else module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        unit = work_unit(item.nodeid)
        return FIRST.index(unit) if unit in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the order inside each work unit is kept


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`make test` runs `pytest -n 2 --dist loadscope --no-loadscope-reorder`: a module's tests stay on one
    worker (its module fixtures, e.g. the kill ladder, run once), the tiny pipeline's users share one,
    and units start in the order above. (xdist's `loadgroup` marks do not group under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnits(config, log)


def blob_slices(n: int, size: int = 32, seed: int = 0, patients: int = 2, prefix: str = "p") -> SliceSet:
    """Noisy images with a bright rectangle 'liver' at a random place: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    images = rng.normal(-0.5, 0.1, (n, 1, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        r, c = rng.integers(2, size // 2, 2)
        labels[i, r : r + size // 3, c : c + size // 3] = 1
    images[:, 0][labels == 1] += 0.8
    pids = np.array([f"{prefix}{i % patients}" for i in range(n)])
    return SliceSet(np.clip(images, -1, 1), labels, pids)


@pytest.fixture
def prepared_dir(tmp_path: Path) -> Path:
    out = tmp_path / "prepared"
    for k, split in enumerate(SPLITS):
        blob_slices(12, seed=k, prefix=f"{split}-").save(out / split)
    return out


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("test", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=exp)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect test server for the session; its URL lets subprocesses (dvc stages) share it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


TOP_LEVEL_SKIP = {".venv", ".git", "data", "mlruns", ".prefect", ".checkpoints", "optuna", "models", "reports",
                  "metrics.json", "dvc.lock", "data.dvc", ".pytest_cache", "benchmarks"}


def IGNORE(folder: str, names: list[str]) -> set[str]:
    """Skip workspace outputs at the repo root (not e.g. src/liversynth/models) and caches anywhere."""
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if Path(folder) == REPO / ".dvc":  # this machine's cache, scratch and remote settings stay here
        skip |= {"cache", "tmp", "config.local"} & set(names)
    return skip | (TOP_LEVEL_SKIP & set(names) if Path(folder) == REPO else set())


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)  # a loaded CI box
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory, prefect_api: str):
    """A tiny `dvc repro` in a git copy of the repo: (repo, env, first repro's output). Shared by the
    session: test_pipeline runs a second (no-op) and a third (changed params) repro in it."""
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    shutil.copytree(REPO, repo, ignore=IGNORE)
    shutil.copy(REPO / "tests" / "tiny_params.yaml", repo / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(repo / ".prefect"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "TQDM_DISABLE": "1",
           "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.2",  # tiny trainings: about a second
           # Cells of a grid one after another in the stage's process: a pool's workers would each import
           # torch, MLflow and Prefect for cells of a second. The kill ladder and test_grid run the pools.
           "LIVERSYNTH_WORKERS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "copy"], repo, env)
    run([sys.executable, "-m", "scripts.generate_data"], repo, env)
    run(["scripts/track_raw_data.sh"], repo, env)
    began = time.time()  # the pipeline run starts when the repro did, as `make run` tells it
    first = run(["dvc", "repro"], repo, {**env, "LIVERSYNTH_PIPELINE_START": repr(began)})
    (repo.parent / "first_repro.json").write_text(json.dumps({"start": began, "end": time.time()}))
    return repo, env, first


def session_pids(sid: int) -> list[int]:
    """Pids of the live processes in session `sid` (a helper server's guard leads one)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def wait_until_healthy(url: str, proc: subprocess.Popen, seconds: float, failure: Callable[[], str]) -> None:
    """Poll `url` until it answers; fail the test with `failure()` if `proc` exits or time runs out."""
    end = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > end:
                proc.kill()
                pytest.fail(failure())
            time.sleep(0.5)
