"""Time to quality of the CT->MRI translator: CPU-seconds until its fidelity reaches a target.

Per-step speed is at its limit on this CPU (issue 22), so what can still move is how much fidelity a
CPU-second buys. Each configuration trains EssNet on the prepared phantom (one thread, one process)
and snapshots the CT->MRI generator every few steps together with the process's CPU-seconds so far
(time.process_time: other users of the machine barely move it) and wall seconds. Fidelity against the
oracle translation (liversynth.synthesis.fidelity) is scored afterwards, off the clock, on a fixed CT
subset. The target is the fidelity today's default reaches at its last step; a configuration's time to
quality is the median over generator seeds of the CPU-seconds to reach it ("not reached" otherwise).

    python -m benchmarks.time_to_quality train --config b1 --seed 0 --work /tmp/ttq   # one curve
    python -m benchmarks.time_to_quality score --work /tmp/ttq                        # fidelity, table, figure
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["CONFIGS", "train_curve"]

# Today's default (params.yaml before issue 22) and the sweep around it; each entry overrides it.
# `budget` is the CPU-time budget as a multiple of the default's cost (its `steps` sets the lr schedule).
DEFAULT = {"batch_size": 4, "steps": 600, "ngf": 16, "n_blocks": 4, "ndf": 32, "lr": 2e-4,
           "lr_decay_from": 1.0, "seg_every": 1}
# Budgets: the default's 600 steps; a candidate gets about 0.6x its CPU-seconds (enough to show a 2x
# time to quality), batch 1 twice that for how far longer training still pays.
CONFIGS: dict[str, dict] = {
    "default": {},
    "b2": {"batch_size": 2, "steps": 600},
    "b1": {"batch_size": 1, "steps": 1800},
    "b1_decay": {"batch_size": 1, "steps": 900, "lr_decay_from": 0.5},
    "b1_lr4e-4": {"batch_size": 1, "steps": 900, "lr": 4e-4},
    "b1_ndf16": {"batch_size": 1, "steps": 900, "ndf": 16},
    "b1_blocks2": {"batch_size": 1, "steps": 900, "n_blocks": 2},
    "b1_seg2": {"batch_size": 1, "steps": 900, "seg_every": 2},
}
SNAPSHOTS = 24  # generator snapshots per run


def config_of(name: str, base):
    """The EssNetConfig of sweep entry `name` on top of params.yaml's (seeds, seg_channels, pools...)."""
    return base.model_copy(update={**DEFAULT, **CONFIGS[name]})


def train_curve(cfg, seed: int, prepared: Path, out: Path, cpu_budget: float | None) -> dict:
    """Train one EssNet, snapshotting the CT->MRI generator; stops at cfg.steps or the CPU budget."""
    import numpy as np
    import torch

    from liversynth.data.slice_set import SliceSet, translation_mri
    from liversynth.training.essnet import _EssNetStepper

    torch.manual_seed(seed)
    ct, mri = SliceSet.load(prepared / "ct_train"), translation_mri(prepared)
    run = _EssNetStepper(ct, np.asarray(mri), cfg, seed, torch.device("cpu"), False)
    run.model.train()
    every = max(1, cfg.steps // SNAPSHOTS)
    cpu0, wall0, off_clock = time.process_time(), time.perf_counter(), 0.0
    points, states = [], []
    for i in range(1, cfg.steps + 1):
        run.step(i)
        if i % every == 0 or i == cfg.steps:
            cpu = time.process_time() - cpu0 - off_clock
            t0 = time.process_time()
            states.append({k: v.detach().clone() for k, v in run.model.g_ct2mri.state_dict().items()})
            points.append({"step": i, "cpu_s": round(cpu, 3), "wall_s": round(time.perf_counter() - wall0, 3)})
            off_clock += time.process_time() - t0
            if cpu_budget is not None and cpu >= cpu_budget:
                break
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "snapshots.pt.tmp"
    torch.save(states, tmp)
    os.replace(tmp, out / "snapshots.pt")
    record = {"config": cfg.model_dump(mode="json"), "seed": seed, "points": points,
              "load_avg_1m": round(os.getloadavg()[0], 2)}
    (out / "curve.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _train(args: argparse.Namespace) -> int:
    import torch

    from liversynth.config import Params

    torch.set_num_threads(1)
    base = Params.from_yaml(Path(__file__).resolve().parent.parent / "params.yaml").essnet
    cfg = config_of(args.config, base)
    out = Path(args.work) / "runs" / f"{args.config}-s{args.seed}"
    rec = train_curve(cfg, args.seed, Path(args.work) / "prepared", out, args.cpu_budget)
    last = rec["points"][-1]
    print(f"{args.config} seed {args.seed}: {last['step']} steps, {last['cpu_s']} CPU-s, {last['wall_s']} wall-s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    train = sub.add_parser("train")
    train.add_argument("--config", required=True, choices=sorted(CONFIGS))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--work", required=True)
    train.add_argument("--cpu-budget", type=float, default=None, help="stop after this many CPU-seconds")
    args = parser.parse_args(argv)
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
