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
    python -m benchmarks.time_to_quality sweep --work /tmp/ttq --configs default,b1 --seeds 0,1   # both
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
# Per-step levers (issue 22 item 3), as rows of the same table; each kept only where it wins on this CPU.
LEVERS = {
    "torch.compile": "not kept: issue 22 measured 130.8 vs 129.5 ms per G+D step eager (0.99x) after 77 s of "
                     "compiling on a 2-core AMD EPYC without AVX-512; not re-measured here",
    "bf16 autocast": "not applicable: no bf16 units (AVX2 only)",
    "channels_last": "not measured (no CPU time left in this session)",
    "fused PReLU backward (U-Net)": "not attempted",
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


def score_run(run_dir: Path, ct, oracle) -> list[dict]:
    """Fidelity of every snapshot of one run on the probe slices, off the clock."""
    import torch

    from liversynth.config import EssNetConfig
    from liversynth.models.generator import ResnetGenerator
    from liversynth.synthesis.fidelity import generator_fidelity

    rec = json.loads((run_dir / "curve.json").read_text())
    cfg = EssNetConfig(**rec["config"])
    states = torch.load(run_dir / "snapshots.pt", weights_only=True)
    points = []
    for point, state in zip(rec["points"], states):
        gen = ResnetGenerator(1, 1, cfg.ngf, cfg.n_blocks)
        gen.load_state_dict(state)
        points.append({**point, **{k: round(v, 4) for k, v in generator_fidelity(gen.eval(), ct, oracle).items()}})
    return points


def first_reaching(points: list[dict], target: float, key: str = "ssim") -> float | None:
    """CPU-seconds of the first snapshot at or above `target` (None: never)."""
    return next((p["cpu_s"] for p in points if p[key] >= target), None)


def summarise(curves: dict[str, dict[int, list[dict]]]) -> dict:
    """Target = the default's final SSIM (median over its seeds); per config the median CPU-seconds to it."""
    import numpy as np

    finals = [pts[-1] for pts in curves["default"].values()]
    target = {k: float(np.median([f[k] for f in finals])) for k in ("ssim", "contrast_rank")}
    base_cpu = float(np.median([f["cpu_s"] for f in finals]))
    rows = []
    for name, seeds in curves.items():
        hits = [first_reaching(pts, target["ssim"]) for pts in seeds.values()]
        reached = [h for h in hits if h is not None]
        med = float(np.median(hits)) if len(reached) == len(hits) else None  # a seed short of it: not reached
        best = [max(p["ssim"] for p in pts) for pts in seeds.values()]
        rows.append({"config": name, **{k: v for k, v in {**DEFAULT, **CONFIGS[name]}.items()}, "seeds": sorted(seeds),
                     "cpu_s_to_target": med, "speedup_vs_default": round(base_cpu / med, 2) if med else None,
                     "cpu_s_per_step": round(float(np.median([pts[-1]["cpu_s"] / pts[-1]["step"]
                                                               for pts in seeds.values()])), 4),
                     "final_ssim": round(float(np.median([pts[-1]["ssim"] for pts in seeds.values()])), 4),
                     "best_ssim": round(float(np.median(best)), 4),
                     "final_contrast_rank": round(float(np.median([pts[-1]["contrast_rank"]
                                                                   for pts in seeds.values()])), 4),
                     "cpu_s_run": round(float(np.median([pts[-1]["cpu_s"] for pts in seeds.values()])), 1)})
    return {"target": target, "default_cpu_s": base_cpu, "rows": rows}


def figure(curves: dict[str, dict[int, list[dict]]], target: float, path: Path) -> None:
    from liversynth.evaluation.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (name, seeds) in enumerate(curves.items()):
        for j, (seed, pts) in enumerate(sorted(seeds.items())):
            ax.plot([p["cpu_s"] for p in pts], [p["ssim"] for p in pts], color=f"C{i}", alpha=1 if j == 0 else 0.5,
                    label=name if j == 0 else None)
    ax.axhline(target, color="k", ls="--", lw=0.8, label="target: default's final SSIM")
    ax.set_xlabel("training CPU-seconds (1 thread)")
    ax.set_ylabel("SSIM vs oracle (body pixels)")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _score(args: argparse.Namespace) -> int:
    import numpy as np

    from liversynth.config import Params
    from liversynth.data.oracle import oracle_for
    from liversynth.data.slice_set import SliceSet
    from liversynth.runtime.machine import machine_record
    from liversynth.synthesis.fidelity import probe_index

    repo = Path(__file__).resolve().parent.parent
    params = Params.from_yaml(repo / "params.yaml")
    work = Path(args.work)
    ct_all = SliceSet.load(work / "prepared" / "ct_train")
    idx = probe_index(len(ct_all), 64)
    ct = SliceSet(np.asarray(ct_all.images)[idx], np.asarray(ct_all.labels)[idx], np.asarray(ct_all.patients)[idx])
    oracle = oracle_for(ct_all, params.phantom, params.prepare).select(idx)
    from liversynth.synthesis.fidelity import fidelity

    # What no translator scores: where the target sits against these says whether it means anything.
    references = {"constant_image": fidelity(np.full_like(oracle.images, -0.5), oracle),
                  "ct_unchanged": fidelity(np.asarray(ct.images), oracle)}
    curves: dict[str, dict[int, list[dict]]] = {}
    for run_dir in sorted((work / "runs").glob("*-s*")):
        if (run_dir / "snapshots.pt").exists():
            name, seed = run_dir.name.rsplit("-s", 1)
            curves.setdefault(name, {})[int(seed)] = score_run(run_dir, ct, oracle)
    curves = {k: curves[k] for k in CONFIGS if k in curves}
    result = {"name": "time_to_quality", **summarise(curves), "probe_slices": len(idx), "levers": LEVERS, "references": references,
              "curves": curves, "machine": machine_record(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "note": args.note}
    out = repo / "benchmarks" / "results"
    figure(curves, result["target"]["ssim"], out / "time_to_quality.png")
    tmp = out / "time_to_quality.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out / "time_to_quality.json")
    for row in result["rows"]:
        print(row)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    """`make bench`: phantom data into --work, the named configs at the named seeds (one process each, one
    thread), then the score. About 2 x 6 CPU-minutes for default + b1 at one seed."""
    import subprocess

    from liversynth.config import Params
    from liversynth.data.phantom import write_phantom
    from liversynth.data.prepare import prepare_dataset

    work = Path(args.work)
    if not (work / "prepared" / "ct_train").exists():
        params = Params.from_yaml(Path(__file__).resolve().parent.parent / "params.yaml")
        write_phantom(params.phantom, work / "raw")
        prepare_dataset(params, work / "raw", work / "prepared")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    for name in args.configs.split(","):
        for seed in map(int, args.seeds.split(",")):
            subprocess.run([sys.executable, "-m", "benchmarks.time_to_quality", "train", "--config", name,
                            "--seed", str(seed), "--work", str(work)], check=True, env=env)
    return _score(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    train = sub.add_parser("train")
    train.add_argument("--config", required=True, choices=sorted(CONFIGS))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--work", required=True)
    train.add_argument("--cpu-budget", type=float, default=None, help="stop after this many CPU-seconds")
    score = sub.add_parser("score")
    score.add_argument("--work", required=True)
    score.add_argument("--note", default="", help="how the sweep was run (seeds, load), kept in the JSON")
    sweep = sub.add_parser("sweep")
    sweep.add_argument("--work", required=True)
    sweep.add_argument("--configs", default="default,b1")
    sweep.add_argument("--seeds", default="0")
    sweep.add_argument("--note", default="")
    args = parser.parse_args(argv)
    return {"train": _train, "score": _score, "sweep": _sweep}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
