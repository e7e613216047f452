"""A locked MLflow sqlite store (another process in `BEGIN EXCLUSIVE`) is waited for, within a bound
($LIVERSYNTH_STORE_LOCK_WAIT_S), then fails in one line naming the store, not after MLflow's retries
with a SQLAlchemy traceback. Real MLflow store, real sqlite locks held by another process."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from liversynth.config import Params
from liversynth.tracking.runs import setup_mlflow
from liversynth.utils.connectivity import STORE_LOCK_WAIT_ENV, ServiceUnavailable
from tests.conftest import REPO


# Another process (plain sqlite3, quick to start) holding the store's exclusive lock for a while.
HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Params, str, Path]:
    folder = tmp_path_factory.mktemp("locked")
    db = folder / "mlflow.db"
    raw = yaml.safe_load((REPO / "tests" / "tiny_params.yaml").read_text())
    raw["mlflow"] = {"tracking_uri": f"sqlite:///{db}", "artifact_dir": str(folder / "artifacts"),
                     "experiment": "locked"}
    params = Params.model_validate(raw)
    setup_mlflow(params)  # creates the store (tables) while nothing holds it
    return params, f"sqlite:///{db}", db


def _locked_for(db: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_briefly_locked_store_is_waited_for(store, monkeypatch: pytest.MonkeyPatch) -> None:
    params, uri, db = store
    monkeypatch.setenv(STORE_LOCK_WAIT_ENV, "20")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    holder = _locked_for(db, 2.0)
    start = time.monotonic()
    setup_mlflow(params)
    with mlflow.start_run(run_name="after the lock"):
        mlflow.log_metric("x", 1.0)
    assert time.monotonic() - start >= 1.0  # it did wait for the other process
    holder.wait(10)


def test_a_store_locked_past_the_bound_fails_in_one_line_naming_it(store, monkeypatch: pytest.MonkeyPatch) -> None:
    params, uri, db = store
    monkeypatch.setenv(STORE_LOCK_WAIT_ENV, "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    holder = _locked_for(db, 4.0)
    try:
        start = time.monotonic()
        with pytest.raises(ServiceUnavailable) as info:
            setup_mlflow(params)
        assert time.monotonic() - start < 3.5  # the bound, not MLflow's ~29 s of retries
        message = str(info.value)
        assert "\n" not in message and uri in message and "locked" in message and STORE_LOCK_WAIT_ENV in message
    finally:
        holder.wait(15)
