"""What a stage pays before it trains anything: imports (python -X importtime), MLflow and Prefect set-up.

Each figure comes from a fresh interpreter, as a DVC stage starts one.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")

_MLFLOW = """
import mlflow, sys
mlflow.set_tracking_uri(f"sqlite:///{sys.argv[1]}/mlflow.db")
mlflow.set_experiment("startup")
with mlflow.start_run():
    mlflow.log_param("x", 1)
"""
_PREFECT = """
from prefect import flow
@flow
def noop() -> int:
    return 1
noop()
"""


def _timed(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{args}: {proc.stderr[-2000:]}")
    return time.perf_counter() - t0, proc.stderr


def import_profile(stderr: str, top: int = 12) -> list[dict]:
    """Top-level packages by cumulative import time (first import pays), from -X importtime output."""
    rows = []
    for match in _LINE.finditer(stderr):
        _, cumulative, indent, name = match.groups()
        if len(indent) == 1:  # imported by the entry module itself, not by another package
            rows.append({"module": name, "seconds": round(int(cumulative) / 1e6, 3)})
    return sorted(rows, key=lambda r: -r["seconds"])[:top]


def startup(repo: Path, stage_modules: tuple[str, ...] = ("flows.train_unet", "flows.train_essnet")) -> dict:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    py = sys.executable
    out: dict = {"name": "startup", "unit": "s"}
    out["python_bare_s"] = round(_timed([py, "-c", "pass"], repo, env)[0], 2)
    for module in ("torch", "monai", "mlflow", "prefect"):
        out[f"import_{module}_alone_s"] = round(_timed([py, "-c", f"import {module}"], repo, env)[0], 2)
    for module in stage_modules:
        seconds, err = _timed([py, "-X", "importtime", "-c", f"import {module}"], repo, env)
        out[f"import_{module}_s"] = round(seconds, 2)
        out[f"top_imports_{module}"] = import_profile(err)
    with tempfile.TemporaryDirectory() as tmp:
        out["mlflow_sqlite_first_run_s"] = round(_timed([py, "-c", _MLFLOW, tmp], repo, env)[0], 2)
        out["mlflow_sqlite_second_run_s"] = round(_timed([py, "-c", _MLFLOW, tmp], repo, env)[0], 2)
        penv = {**{k: v for k, v in env.items() if k != "PREFECT_API_URL"}, "PREFECT_HOME": tmp}  # ephemeral API
        out["prefect_noop_flow_ephemeral_s"] = round(_timed([py, "-c", _PREFECT], repo, penv)[0], 2)
    out["optimised"] = out[f"import_{stage_modules[0]}_s"]
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out
