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
from collections.abc import Callable
from pathlib import Path

_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")

_MLFLOW = """
import mlflow, sys
mlflow.set_tracking_uri(f"sqlite:///{sys.argv[1]}/mlflow.db")
mlflow.set_experiment("startup")
with mlflow.start_run():
    mlflow.log_param("x", 1)
"""
# Interpreter start -> the first EssNet training step done, as the train_essnet stage gets there: its flow
# module, the prepared data, the model, one step. The parent times the whole process.
_FIRST_STEP = """
import sys
import numpy as np, torch
import flows.train_essnet
from pathlib import Path
from liversynth.config import Params
from liversynth.data.slice_set import SliceSet, translation_mri
from liversynth.training.essnet import _EssNetStepper
torch.set_num_threads(1)
cfg = Params.from_yaml("params.yaml").essnet
prepared = Path(sys.argv[1])
run = _EssNetStepper(SliceSet.load(prepared / "ct_train"), np.asarray(translation_mri(prepared)), cfg, 0,
                     torch.device("cpu"), False)
run.model.train()
run.step(1)
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
    """Packages by import cost (-X importtime): the cumulative time of each package's topmost imports, so a
    package's figure includes the dependencies it was first to import (mlflow's includes sqlalchemy's)."""
    pending: dict[int, list[dict]] = {}
    for match in _LINE.finditer(stderr):  # post-order: a module's line follows its imports' lines
        _, cumulative, indent, name = match.groups()
        depth = (len(indent) - 1) // 2
        node = {"root": name.split(".")[0], "s": int(cumulative) / 1e6, "children": pending.pop(depth + 1, [])}
        pending.setdefault(depth, []).append(node)
    totals: dict[str, float] = {}

    def walk(nodes: list[dict], above: frozenset[str]) -> None:
        for node in nodes:
            if node["root"] not in above:
                totals[node["root"]] = totals.get(node["root"], 0.0) + node["s"]
            walk(node["children"], above | {node["root"]})

    walk(pending.get(0, []), frozenset())
    return [{"module": k, "seconds": round(v, 3)} for k, v in sorted(totals.items(), key=lambda kv: -kv[1])[:top]]


def _try(out: dict, key: str, measure: Callable[[], float]) -> None:
    """One figure; a failure (e.g. Prefect's temporary server timing out on a loaded machine) is recorded."""
    try:
        out[key] = round(measure(), 2)
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        out[key.removesuffix("_s") + "_error"] = str(err)[-300:]


STAGES = ("flows.train_essnet", "flows.prepare", "flows.validate", "flows.synthesize", "flows.train_unet")


def _median3(measure: Callable[[], float]) -> float:
    return sorted(measure() for _ in range(3))[1]


def startup(repo: Path, stage_modules: tuple[str, ...] = STAGES, prepared: Path | None = None) -> dict:
    """Import time per stage and, with `prepared` data, interpreter start -> first train_essnet step
    (median of 3, issue 22's target: 3 s or less); the CPU and its ISA named once."""
    from liversynth.runtime.machine import machine_record

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    py = sys.executable
    m = machine_record()
    out: dict = {"name": "startup", "unit": "s", "cpu": m["cpu"], "isa": m["isa"]}
    if prepared is not None:
        out["first_essnet_step_from_start_s"] = round(
            _median3(lambda: _timed([py, "-c", _FIRST_STEP, str(prepared)], repo, env)[0]), 2)
    out["python_bare_s"] = round(_timed([py, "-c", "pass"], repo, env)[0], 2)
    for module in ("torch", "monai", "mlflow", "prefect"):
        out[f"import_{module}_alone_s"] = round(_timed([py, "-c", f"import {module}"], repo, env)[0], 2)
    for module in stage_modules:
        seconds, err = _timed([py, "-X", "importtime", "-c", f"import {module}"], repo, env)
        out[f"import_{module}_s"] = round(seconds, 2)
        out[f"top_imports_{module}"] = import_profile(err)
    with tempfile.TemporaryDirectory() as tmp:
        for key in ("mlflow_sqlite_first_run_s", "mlflow_sqlite_second_run_s"):
            _try(out, key, lambda: _timed([py, "-c", _MLFLOW, tmp], repo, env)[0])
        # No PREFECT_API_URL: the flow starts a temporary API server, as a plain `dvc repro` stage does.
        penv = {**{k: v for k, v in env.items() if k != "PREFECT_API_URL"}, "PREFECT_HOME": tmp,
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
        _try(out, "prefect_noop_flow_ephemeral_s", lambda: _timed([py, "-c", _PREFECT], repo, penv)[0])
    out["optimised"] = out[f"import_{stage_modules[0]}_s"]
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out
