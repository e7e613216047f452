"""What `make run DATASET=chaos` costs in training time: seconds per EssNet and U-Net step at the sizes of
params-chaos.yaml (256 px, ResNet-9 generators, full-depth U-Net), measured on this machine, times the
steps the pipeline runs. Writes benchmarks/results/chaos_cost.json.

    python -m benchmarks.chaos_cost                 # on whatever device liversynth picks (CUDA if present)
    python -m benchmarks.chaos_cost --essnet-steps 3 --unet-steps 5
    python -m benchmarks.chaos_cost --times-from benchmarks/results/chaos_cost.json   # profile edited, same sizes

The library's own training loops (train_essnet, train_unet) run on random slices of the profile's
size: the step time does not depend on the image content. The first `--warmup` steps are not timed.
The estimate counts training only (the part that grows with the profile): prepare, synthesis,
evaluation and start-up are small next to it (benchmarks/results/summary.md has their rates).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.baseline import Clock
from liversynth.config import Params
from liversynth.data.slice_set import SliceSet
from liversynth.paths import VARIANTS
from liversynth.runtime.device import pick_device
from liversynth.runtime.machine import machine_record
from liversynth.runtime.settings import apply_runtime
from liversynth.data.arms import ARMS
from liversynth.training.essnet import train_essnet
from liversynth.training.tuning import points
from liversynth.training.unet import train_unet

__all__ = ["main", "measure", "pipeline_steps"]

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "params-chaos.yaml"
OUT = REPO / "benchmarks" / "results" / "chaos_cost.json"


def _slices(n: int, size: int, seed: int, patient: str) -> SliceSet:
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (n, 1, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    labels[:, size // 4 : size // 2, size // 4 : size // 2] = 1  # a liver-sized square
    return SliceSet(images, labels, np.array([f"{patient}{k % 4}" for k in range(n)]))


def pipeline_steps(params: Params) -> dict[str, int]:
    """Training steps of one `dvc repro` of the profile: both generator variants per generator seed,
    every tuning trial (mix and baseline points, each at its own steps) and every arm's U-Net per
    U-Net seed (real only at its longest tuning steps: an upper bound)."""
    tune = params.tune
    trials = points(tune.ratios, tune.lrs, tune.baseline_steps, params.unet.steps)
    trial_steps = sum(int(p.get("steps") or params.unet.steps) for p in trials)
    baseline = max(tune.baseline_steps or (params.unet.steps,))
    per_seed = (len(ARMS) - 1) * params.unet.steps + baseline
    return {"essnet_trainings": len(VARIANTS) * len(params.essnet.seeds), "essnet_steps": params.essnet.steps,
            "tune_trials": len(trials), "final_unets": len(ARMS) * len(params.evaluate.seeds),
            "unet_steps_total": trial_steps + per_seed * len(params.evaluate.seeds)}


def measure(params: Params, warmup: int, essnet_steps: int, unet_steps: int) -> dict[str, float]:
    """Seconds per training step of EssNet and of the U-Net, after `warmup` untimed steps each."""
    size = params.prepare.image_size
    ct, mri = _slices(32, size, 0, "ct"), _slices(32, size, 1, "mri")
    essnet_clock, unet_clock = Clock(warmup), Clock(warmup)
    with tempfile.TemporaryDirectory() as work:
        cfg = params.essnet.model_copy(update={"steps": warmup + essnet_steps, "checkpoint_every": 10**9})
        train_essnet(ct, mri.images, cfg, seed=0, checkpoint=Path(work) / "essnet.pt", log_every=1,
                     on_log=lambda step, _: essnet_clock(step))
    unet_cfg = params.unet.model_copy(update={"steps": warmup + unet_steps, "eval_every": 1})
    train_unet(mri, ct, 1.0, unet_cfg, seed=0, on_eval=lambda step, _: unet_clock(step), progress=False)
    return {"essnet_s_per_step": essnet_clock.elapsed / essnet_clock.n,
            "unet_s_per_step": unet_clock.elapsed / unet_clock.n}


MEASUREMENT = ("essnet_s_per_step", "unet_s_per_step", "device", "gpu", "timed_steps", "load_avg_1m", "wall_s",
               "machine", "date")


def measurement(params: Params, args: argparse.Namespace) -> dict[str, Any]:
    """The seconds per step and where and when they were measured: now, or those of `--times-from`."""
    if args.times_from is not None:
        earlier = json.loads(args.times_from.read_text())
        return {k: earlier[k] for k in MEASUREMENT}
    device, start, load_at_start = pick_device(), time.time(), round(os.getloadavg()[0], 2)
    rates = measure(params, args.warmup, args.essnet_steps, args.unet_steps)
    return {
        **rates, "device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "timed_steps": {"essnet": args.essnet_steps, "unet": args.unet_steps, "warmup": args.warmup},
        # Other work on the machine slows the steps: its load before and after the measurement.
        "load_avg_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
        "wall_s": round(time.time() - start, 1), "machine": machine_record(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--essnet-steps", type=int, default=3, help="timed EssNet steps")
    parser.add_argument("--unet-steps", type=int, default=5, help="timed U-Net steps")
    parser.add_argument("--times-from", type=Path, help="reuse an earlier results JSON's seconds per step "
                        "(same network sizes); only the profile's step counts are read again")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    params = Params.from_yaml(PROFILE)
    apply_runtime(params.runtime)
    measured = measurement(params, args)
    steps = pipeline_steps(params)
    essnet_h = steps["essnet_trainings"] * steps["essnet_steps"] * measured["essnet_s_per_step"] / 3600
    unet_h = steps["unet_steps_total"] * measured["unet_s_per_step"] / 3600
    result: dict[str, Any] = {
        "name": "chaos_cost", "profile": PROFILE.name, "image_size": params.prepare.image_size,
        "essnet_batch": params.essnet.batch_size, "unet_batch": params.unet.batch_size, **steps,
        "estimated_training_hours": {"essnet": essnet_h, "unet": unet_h, "total": essnet_h + unet_h},
        **measured,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("device", "essnet_s_per_step", "unet_s_per_step",
                                             "estimated_training_hours")}, indent=2))


if __name__ == "__main__":
    main()
