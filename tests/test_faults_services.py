"""Fault matrix, services: an unreachable MLflow server or Prefect API and a store that cannot be
written fail a real stage (`python -m flows.validate`, the Prefect engine and all) within seconds,
with the URL in the last line of a short stderr (no traceback), before anything is written; a write that
returned survives kill -9."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

FIGURES: dict[str, str] = {}  # for the fault-matrix table: LIVERSYNTH_FAULT_FIGURES=<file> appends them there


def teardown_module() -> None:
    if target := os.environ.get("LIVERSYNTH_FAULT_FIGURES"):
        with open(target, "a") as out:
            out.writelines(f"{k}: {v}\n" for k, v in FIGURES.items())


def _stage(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """The validate stage in an empty working folder (nothing of the repository can be touched)."""
    full = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full = {**full, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}",
            "LIVERSYNTH_PARAMS": str(REPO / "tests" / "tiny_params.yaml"), "PREFECT_HOME": str(tmp_path / ".prefect"),
            **env}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "flows.validate"], cwd=tmp_path, env=full, capture_output=True,
                          text=True, timeout=300)
    return proc, time.monotonic() - start


def _last_line(proc: subprocess.CompletedProcess) -> str:
    return [line for line in proc.stderr.splitlines() if line.strip()][-1]


def test_mlflow_unreachable_fails_fast_naming_the_url(tmp_path: Path, prefect_api: str):
    proc, elapsed = _stage(tmp_path, MLFLOW_TRACKING_URI="http://127.0.0.1:9/", PREFECT_API_URL=prefect_api)
    assert proc.returncode != 0
    assert "ServiceUnavailable: MLflow tracking server http://127.0.0.1:9/ is unreachable" in _last_line(proc), \
        proc.stderr[-3000:]
    assert elapsed < 60 and sorted(p.name for p in tmp_path.iterdir()) == [".prefect"]  # nothing written
    assert len(proc.stderr.splitlines()) < 40 and "Traceback" not in proc.stderr, proc.stderr
    FIGURES["mlflow unreachable"] = f"{elapsed:.1f} s (interpreter start included), " \
                                    f"{len(proc.stderr.splitlines())} lines of stderr"


def test_mlflow_store_not_writable_fails_fast_and_short(tmp_path: Path, prefect_api: str):
    # As root only a read-only file system refuses a write; /proc/sys is one.
    proc, elapsed = _stage(tmp_path, MLFLOW_TRACKING_URI="sqlite:////proc/sys/liversynth/mlflow.db",
                           PREFECT_API_URL=prefect_api)
    assert proc.returncode != 0
    assert "MLflow store sqlite:////proc/sys/liversynth/mlflow.db is not writable" in _last_line(proc), \
        proc.stderr[-3000:]
    assert len(proc.stderr.splitlines()) < 40 and elapsed < 60
    FIGURES["mlflow store read-only"] = f"{elapsed:.1f} s, {len(proc.stderr.splitlines())} lines of stderr"


def test_prefect_api_unreachable_fails_fast_naming_the_url(tmp_path: Path):
    proc, elapsed = _stage(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api",
                           MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert proc.returncode != 0
    assert "http://127.0.0.1:9/api" in proc.stderr[-2000:], proc.stderr[-3000:]
    assert elapsed < 60 and not (tmp_path / "mlflow.db").exists()  # failed before the stage's MLflow run
    FIGURES["prefect unreachable"] = f"{elapsed:.1f} s"


KILLED_WRITER = """
import os, sys
from pathlib import Path
from liversynth.utils.files import write_atomic_dir, write_atomic_file
out = Path(sys.argv[1])
payload = os.urandom(4 << 20)
write_atomic_file(out / "blob.bin", payload)
write_atomic_dir(out / "folder", lambda tmp: (tmp / "part.bin").write_bytes(payload))
sys.stdout.buffer.write(payload[:64])
sys.stdout.flush()
os.kill(os.getpid(), 9)  # right after the writes returned: no exit handlers, no flush, no close
"""


def test_durable_write_survives_kill_right_after_it_returns(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], capture_output=True, timeout=120)
    assert proc.returncode == -9
    head = proc.stdout
    for path in (tmp_path / "blob.bin", tmp_path / "folder" / "part.bin"):
        data = path.read_bytes()
        assert len(data) == 4 << 20 and data[:64] == head
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "folder"]  # no temporaries left
