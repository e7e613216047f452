"""One benchmark per function: the library's path and the plain baseline, timed in the same process.

Each returns a result dict: throughput of both paths, their ratio (library / plain) and the peak
RSS of each phase (the kernel's high-water mark, reset between phases).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from benchmarks import baseline
from benchmarks.measure import PeakRss
from liversynth.config import Params
from liversynth.runtime.device import pick_device
from liversynth.data.prepare import prepare_dataset
from liversynth.training.unet import train_unet
from liversynth.data.slice_set import SliceSet
from liversynth.synthesis.translate import synthesize
from liversynth.training.essnet import train_essnet
from liversynth.models.generator import ResnetGenerator


def _result(name: str, unit: str, fast: float, plain: float, rss: PeakRss, **extra) -> dict:
    return {"name": name, "unit": unit, "optimised": fast, "baseline": plain, "ratio": fast / plain,
            "peak_rss_mb": rss.phases, "load_avg_1m": round(os.getloadavg()[0], 2), **extra}


def _mri(prepared: Path) -> SliceSet:
    parts = [SliceSet.load(prepared / s) for s in ("mri_train", "mri_unlabelled")]
    return SliceSet(*(np.concatenate([np.asarray(getattr(p, f)) for p in parts]) for f in ("images", "labels", "patients")))


def _interleaved(variants: dict[str, Callable[[int, baseline.Clock], object]], warmup: int, steps: int,
                 rounds: int, rss: PeakRss) -> dict[str, float]:
    """Steps/s of each variant, run in turn for `rounds` rounds of steps/rounds timed steps each.

    Interleaving gives every variant the same share of whatever else the machine is doing.
    """
    done = {name: [0, 0.0] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            clock = baseline.Clock(warmup)
            with rss.phase(name):
                run(warmup + steps // rounds, clock)
            done[name][0] += clock.n
            done[name][1] += clock.elapsed
    return {name: n / seconds for name, (n, seconds) in done.items()}


def essnet(params: Params, prepared: Path, work: Path, warmup: int, steps: int, rounds: int = 2) -> dict:
    """EssNet training steps/s at the configured size (params.essnet), checkpointing off the clock."""
    ct, mri = SliceSet.load(prepared / "ct_train"), _mri(prepared)
    ct_dir, mri_dir = baseline.write_slice_files(ct, work / "ct"), baseline.write_slice_files(mri, work / "mri")

    def library(bf16: bool) -> Callable[[int, baseline.Clock], object]:
        def run(n: int, clock: baseline.Clock) -> object:
            cfg = params.essnet.model_copy(update={"steps": n, "checkpoint_every": 10**9})
            (work / "essnet.pt").unlink(missing_ok=True)  # never resume: every round starts fresh
            return train_essnet(ct, mri.images, cfg, seed=0, checkpoint=work / "essnet.pt", log_every=warmup,
                                on_log=lambda step, _: clock(step), cpu_bf16=bf16)
        return run

    def plain(n: int, clock: baseline.Clock) -> object:
        cfg = params.essnet.model_copy(update={"steps": n})
        return baseline.plain_train_essnet(ct_dir, mri_dir, cfg, seed=0, tick=clock, device=pick_device())

    rss = PeakRss()
    rate = _interleaved({"optimised": library(False), "baseline": plain, "optimised_bf16": library(True)},
                        warmup, steps, rounds, rss)
    return _result("essnet_train", "steps/s", rate["optimised"], rate["baseline"], rss,
                   optimised_bf16=rate["optimised_bf16"], ratio_bf16=rate["optimised_bf16"] / rate["baseline"],
                   batch_size=params.essnet.batch_size, image_size=ct.images.shape[-1], timed_steps=steps)


def unet(params: Params, prepared: Path, work: Path, warmup: int, steps: int, rounds: int = 2) -> dict:
    """U-Net training steps/s (params.unet) on real + synthetic slices at ratio 1, augmentation on."""
    real, syn = SliceSet.load(prepared / "mri_train"), SliceSet.load(prepared / "ct_train")  # CT stands in for synthetic
    real_dir, syn_dir = baseline.write_slice_files(real, work / "real"), baseline.write_slice_files(syn, work / "syn")

    def library(bf16: bool) -> Callable[[int, baseline.Clock], object]:
        def run(n: int, clock: baseline.Clock) -> object:
            cfg = params.unet.model_copy(update={"steps": n, "eval_every": warmup})
            return train_unet(real, syn, 1.0, cfg, seed=0, on_eval=lambda step, _: clock(step), progress=False,
                              cpu_bf16=bf16)
        return run

    def plain(n: int, clock: baseline.Clock) -> object:
        return baseline.plain_train_unet(real_dir, syn_dir, 1.0, params.unet.model_copy(update={"steps": n}),
                                         seed=0, tick=clock, device=pick_device())

    rss = PeakRss()
    rate = _interleaved({"optimised": library(False), "baseline": plain, "optimised_bf16": library(True)},
                        warmup, steps, rounds, rss)
    return _result("unet_train", "steps/s", rate["optimised"], rate["baseline"], rss,
                   optimised_bf16=rate["optimised_bf16"], ratio_bf16=rate["optimised_bf16"] / rate["baseline"],
                   batch_size=params.unet.batch_size, image_size=real.images.shape[-1], timed_steps=steps)


def _best_rate(n_items: int, run: Callable[[], object], repeats: int) -> float:
    """Items/s of the fastest of `repeats` runs (the least disturbed by the rest of the machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return n_items / best


def synthesis(params: Params, prepared: Path, work: Path, repeats: int) -> dict:
    """CT->MRI synthesis slices/s over the whole CT training split (random generator weights)."""
    ct = SliceSet.load(prepared / "ct_train")
    cfg, bs = params.essnet, params.synthesize.batch_size
    torch.manual_seed(0)
    gen = ResnetGenerator(1, 1, cfg.ngf, cfg.n_blocks)
    warm = ct.select(np.arange(len(ct)) < bs)
    rss, device = PeakRss(), pick_device()
    with rss.phase("optimised"):
        synthesize(gen, warm, bs, device)
        fast = _best_rate(len(ct), lambda: synthesize(gen, ct, bs, device), repeats)
    ct_dir = baseline.write_slice_files(ct, work / "ct")
    with rss.phase("baseline"):
        plain = _best_rate(len(ct), lambda: baseline.plain_synthesize(gen, ct_dir, bs, device), repeats)
    return _result("synthesis", "slices/s", fast, plain, rss, slices=len(ct), batch_size=bs)


def prepare(params: Params, raw: Path, work: Path, repeats: int) -> dict:
    """Prepare-stage volumes/s: raw NIfTI volumes -> normalised, resized, split slice arrays."""
    n_volumes = params.phantom.n_ct + sum(params.prepare.mri_splits.values())
    rss, runs = PeakRss(), iter(range(10**6))
    with rss.phase("optimised"):
        fast = _best_rate(n_volumes, lambda: prepare_dataset(params, raw, work / f"fast{next(runs)}"), repeats)
    with rss.phase("baseline"):
        plain = _best_rate(n_volumes, lambda: baseline.plain_prepare(params, raw, work / f"plain{next(runs)}"), repeats)
    manifest = prepare_dataset(params, raw, work / "check")
    slices = sum(s["slices"] for s in manifest["splits"].values())
    return _result("prepare", "volumes/s", fast, plain, rss, volumes=n_volumes, slices=slices)


def prepare_one(params: Params, raw: Path, out: Path, plain: bool) -> dict:
    """One prepare run (for the scaling benchmark, each in its own process): seconds, slices, peak RSS."""
    rss = PeakRss()
    with rss.phase("run"):
        t0 = time.perf_counter()
        manifest = (baseline.plain_prepare if plain else prepare_dataset)(params, raw, out)
        seconds = time.perf_counter() - t0
    slices = sum(s["slices"] for s in manifest["splits"].values())
    return {"seconds": seconds, "slices": slices, "peak_rss_mb": rss.phases["run"]}
