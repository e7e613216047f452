"""The training grid's engine: K independent trainings (generator seeds, U-Net cells) as the stages run
them, through the task runner's worker processes at `runtime.threads` = 1 each, against the same K
trainings one after another in one process at 2 threads (the previous default), in the same run.

    python -m benchmarks.grid [--steps 60] [--unet-steps 150]   # writes benchmarks/results/grid.json

Each side uses the phantom at params.yaml's sizes (generated into a temporary folder). Reported: cells/s
both ways and their ratio, the peak RSS of the largest process, and the machine.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from benchmarks import measure
from benchmarks.run import _make_data

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "grid.json"


def _cell(kind: str, seed: int, steps: int, threads: int, work: str) -> dict[str, Any]:
    """One training in a fresh interpreter's cwd = work (the stages' layout), at `threads` threads."""
    import torch

    from liversynth.config import Params
    from liversynth.training import generator_cells, unet_cells

    os.chdir(work)
    torch.set_num_threads(threads)
    params = Params.from_yaml(REPO / "params.yaml")
    start = time.perf_counter()
    if kind == "generator":
        generator_cells.generator_cell("essnet", seed, params.essnet.model_copy(update={"steps": steps,
                                                                              "checkpoint_every": 10**9}))
    else:
        cfg = params.unet.model_copy(update={"steps": steps, "eval_every": steps})
        # a checkpoint folder of its own per call: a finished checkpoint would be restored, not trained
        ck = Path(tempfile.mkdtemp(dir=work))
        unet_cells.unet_cell(unet_cells.UNetCell("real_only", seed, None, 0.0,
                                                cfg.model_copy(update={"labelled_patients": 1})), Path(work) / "unet", ck)
    peak = psutil.Process().memory_info().rss / 2**20
    for f in Path(work, ".checkpoints").glob("*.pt"):
        f.unlink()
    return {"seconds": time.perf_counter() - start, "rss_mb": peak}


def _side(kind: str, k: int, steps: int, workers: int, threads: int, work: Path) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        done = list(pool.map(_cell, [kind] * k, range(k), [steps] * k, [threads] * k, [str(work)] * k))
    wall = time.perf_counter() - start
    return {"cells_per_s": k / wall, "wall_s": wall, "peak_rss_mb": max(d["rss_mb"] for d in done),
            "workers": workers, "threads": threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60, help="EssNet steps per generator cell")
    parser.add_argument("--unet-steps", type=int, default=150, help="steps per U-Net cell")
    parser.add_argument("--k", type=int, default=4, help="cells per side (even: no idle worker)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {"name": "grid", "k": args.k, "cores": cores, "load_avg_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _make_data(work / "data")  # the stages' layout: data/raw, data/prepared
        for kind, steps in (("generator", args.steps), ("unet", args.unet_steps)):
            # the sequential baseline first and last around the grid: drift in machine load shows up
            grid = _side(kind, args.k, steps, workers=cores, threads=1, work=work)
            sequential = _side(kind, args.k, steps, workers=1, threads=cores, work=work)
            result[kind] = {"steps_per_cell": steps, "grid": grid, "sequential": sequential,
                            "ratio": grid["cells_per_s"] / sequential["cells_per_s"]}
    result["machine"] = measure.machine()
    result["date"] = time.strftime("%Y-%m-%d")
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k]["ratio"] for k in ("generator", "unet")}))


if __name__ == "__main__":
    main()
