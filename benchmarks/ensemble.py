"""Ensembles (K seeds as one batched model) against K sequential trainings, and how far each training
step is from this CPU's limit (FLOPs per step, achieved GFLOP/s, measured GEMM and conv peaks).

The U-Net ensemble is the library's `train_unet_ensemble`. The generator ensemble is benchmark-only:
K EssNets' generator + discriminator steps through one vmapped model (stacked parameters, grouped
convolutions), the same losses and Adam updates as `train_essnet`'s step minus the image pool (a
buffer copy), against K sequential `train_essnet` runs.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from monai.losses import DiceCELoss
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import baseline
from benchmarks.measure import PeakRss
from liversynth.config import EssNetConfig, Params, UNetConfig
from liversynth.data.slice_set import SliceSet
from liversynth.models.essnet import EssNet
from liversynth.models.unet import build_unet
from liversynth.runtime.device import autocast
from benchmarks.unet_ensemble import train_unet_ensemble
from liversynth.training.essnet import _EssNetStepper, train_essnet
from benchmarks.stacked import StackedModules
from liversynth.training.unet import train_unet

CPU = torch.device("cpu")
Variant = Callable[[int], tuple[int, float]]  # steps -> (member-steps timed, seconds)


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def peaks(repeats: int = 3) -> dict[str, float]:
    """This CPU's achievable GFLOP/s right now: a big fp32 GEMM and a big 3x3 conv (and both in bf16)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    conv, x = nn.Conv2d(128, 128, 3, padding=1), torch.randn(8, 128, 64, 64)
    gemm_flop, conv_flop = 2 * 2048**3, 2 * 8 * 128 * 128 * 9 * 64 * 64
    out = {"gemm_fp32": gemm_flop / _best_seconds(lambda: a @ b, repeats) / 1e9,
           "conv_fp32": conv_flop / _best_seconds(lambda: conv(x), repeats) / 1e9}
    ab, bb = a.bfloat16(), b.bfloat16()
    out["gemm_bf16"] = gemm_flop / _best_seconds(lambda: ab @ bb, repeats) / 1e9
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out["conv_bf16"] = conv_flop / _best_seconds(lambda: conv(x), repeats) / 1e9
    return {k: round(v, 1) for k, v in out.items()}


def unet_step_flops(cfg: UNetConfig, image_size: int) -> float:
    """FLOPs of one U-Net training step (forward + backward of DiceCE; Adam's element-wise work left out)."""
    torch.manual_seed(0)
    model = build_unet(cfg)
    x = torch.randn(cfg.batch_size, 1, image_size, image_size)
    y = (torch.rand(cfg.batch_size, 1, image_size, image_size) > 0.5).long()
    with FlopCounterMode(display=False) as counter:
        DiceCELoss(to_onehot_y=True, softmax=True)(model(x), y).backward()
    return float(counter.get_total_flops())


def essnet_step_flops(cfg: EssNetConfig, ct: SliceSet, mri: SliceSet) -> float:
    """FLOPs of one train_essnet step (generator + segmenter step, then discriminator step)."""
    stepper = _EssNetStepper(ct, mri.images, cfg, 0, CPU, False)
    stepper.model.train()
    with FlopCounterMode(display=False) as counter:
        stepper.step(1)
    return float(counter.get_total_flops())


def interleave(variants: dict[str, Variant], steps: int, rounds: int, rss: PeakRss) -> dict[str, float]:
    """Member-steps/s of each variant, run in turn for `rounds` rounds (same share of the machine's noise)."""
    done = {name: [0, 0.0] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            with rss.phase(name):
                n, seconds = run(steps // rounds)
            done[name][0] += n
            done[name][1] += seconds
    return {name: n / s for name, (n, s) in done.items()}


def unet_ensemble(params: Params, prepared: Path, warmup: int, steps: int, k: int = 6, rounds: int = 2) -> dict:
    """K U-Net seeds: one train_unet_ensemble against K train_unet runs (params.unet, ratio 1, augmented)."""
    real, syn = SliceSet.load(prepared / "mri_train"), SliceSet.load(prepared / "ct_train")
    seeds = list(range(k))

    def ensemble(bf16: bool) -> Variant:
        def run(n: int) -> tuple[int, float]:
            cfg = params.unet.model_copy(update={"steps": warmup + n, "eval_every": warmup})
            clock = baseline.Clock(warmup)
            train_unet_ensemble(real, syn, 1.0, cfg, seeds, progress=False, cpu_bf16=bf16,
                                on_eval=lambda seed, step, _: clock(step) if seed == seeds[0] else None)
            return clock.n * k, clock.elapsed
        return run

    def sequential(n: int) -> tuple[int, float]:
        cfg = params.unet.model_copy(update={"steps": warmup + n, "eval_every": warmup})
        total_n, total_s = 0, 0.0
        for seed in seeds:
            clock = baseline.Clock(warmup)
            train_unet(real, syn, 1.0, cfg, seed=seed, progress=False, on_eval=lambda step, _: clock(step))
            total_n, total_s = total_n + clock.n, total_s + clock.elapsed
        return total_n, total_s

    rss = PeakRss()
    rate = interleave({"ensemble": ensemble(False), "sequential": sequential, "ensemble_bf16": ensemble(True)},
                      steps, rounds, rss)
    flops = unet_step_flops(params.unet, real.images.shape[-1])
    return _result(f"unet_ensemble_k{k}", rate, rss, flops, k=k, target_ratio=2.0,
                   batch_size=params.unet.batch_size, image_size=int(real.images.shape[-1]), timed_steps=steps)


def _result(name: str, rate: dict[str, float], rss: PeakRss, flops: float, **extra: object) -> dict:
    seq = rate["sequential"]
    out = {"name": name, "unit": "member-steps/s", **{k: round(v, 3) for k, v in rate.items()},
           "ratio": round(rate["ensemble"] / seq, 3), "ratio_bf16": round(rate["ensemble_bf16"] / seq, 3),
           "gflop_per_member_step": round(flops / 1e9, 3),
           "gflops_achieved": {k: round(v * flops / 1e9, 1) for k, v in rate.items()},
           "peak_gflops": peaks(), "peak_rss_mb": rss.phases, "load_avg_1m": round(os.getloadavg()[0], 2)}
    return {**out, **extra}


class _SegLoss(nn.Module):
    """EssNet's DiceCE with an out-of-place one-hot (MONAI's in-place scatter_ is not vmappable)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = DiceCELoss(softmax=True)

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        classes = torch.arange(logits.shape[1], device=label.device).view(1, -1, 1, 1)
        return self.inner(logits, (label == classes).float())


class StackedEssNetStep:
    """K EssNets (train_essnet's init per seed) and one batched training step of all of them."""

    def __init__(self, cfg: EssNetConfig, seeds: list[int], ct: SliceSet, mri: SliceSet, cpu_bf16: bool) -> None:
        members = []
        with torch.random.fork_rng(devices=[]):
            for seed in seeds:
                torch.manual_seed(seed)
                members.append(EssNet(cfg))
        self.stack, self.cfg, self.bf16 = StackedModules(members), cfg, cpu_bf16
        self.stack.skeleton.seg_loss = _SegLoss()
        names = dict(members[0].named_parameters())
        d_ids = {id(p) for p in members[0].discriminator_parameters()}
        self.g = [self.stack.params[n] for n, p in names.items() if id(p) not in d_ids]
        self.d = [self.stack.params[n] for n, p in names.items() if id(p) in d_ids]
        betas = (cfg.beta1, 0.999)
        self.opt_g, self.opt_d = (torch.optim.Adam(ps, lr=cfg.lr, betas=betas) for ps in (self.g, self.d))
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.ct, self.lab = torch.as_tensor(ct.images), torch.as_tensor(ct.labels).long()
        self.mri = torch.as_tensor(mri.images)
        self.g_fn = self.stack.vmap(_generator_outputs)
        self.d_fn = self.stack.vmap(lambda m, rm, fm, rc, fc: m.discriminator_loss(rm, fm, rc, fc))

    def step(self) -> None:
        b = self.cfg.batch_size
        ci = torch.stack([torch.randint(len(self.ct), (b,), generator=g) for g in self.gens])
        mi = torch.stack([torch.randint(len(self.mri), (b,), generator=g) for g in self.gens])
        ct, lab, mri = self.ct[ci], self.lab[ci], self.mri[mi]
        with autocast(CPU, self.bf16):
            total, fake_mri, fake_ct = self.g_fn(ct, lab, mri)
        _apply(torch.autograd.grad(total.sum(), self.g), self.g, self.opt_g)
        with autocast(CPU, self.bf16):
            d = self.d_fn(mri, fake_mri.detach().float(), ct, fake_ct.detach().float())
        _apply(torch.autograd.grad(d.sum(), self.d), self.d, self.opt_d)


def _generator_outputs(model: EssNet, ct: Tensor, label: Tensor, mri: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    losses = model.generator_losses(ct, label, mri)
    return losses.total, losses.fake_mri, losses.fake_ct


def _apply(grads: tuple[Tensor, ...], params: list[Tensor], opt: torch.optim.Optimizer) -> None:
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()


def essnet_ensemble(params: Params, prepared: Path, work: Path, warmup: int, steps: int, k: int = 3,
                    rounds: int = 2) -> dict:
    """K EssNet seeds: one batched step (benchmark-only) against K sequential train_essnet runs."""
    from benchmarks.cases import _mri

    ct, mri, cfg, seeds = SliceSet.load(prepared / "ct_train"), _mri(prepared), params.essnet, list(range(k))

    def ensemble(bf16: bool) -> Variant:
        def run(n: int) -> tuple[int, float]:
            stepper = StackedEssNetStep(cfg, seeds, ct, mri, bf16)
            for _ in range(warmup):
                stepper.step()
            t0 = time.perf_counter()
            for _ in range(n):
                stepper.step()
            return n * k, time.perf_counter() - t0
        return run

    def sequential(n: int) -> tuple[int, float]:
        total_n, total_s = 0, 0.0
        for seed in seeds:
            clock = baseline.Clock(warmup)
            (work / "essnet.pt").unlink(missing_ok=True)
            train_essnet(ct, mri.images, cfg.model_copy(update={"steps": warmup + n, "checkpoint_every": 10**9}),
                         seed=seed, checkpoint=work / "essnet.pt", log_every=warmup, on_log=lambda s, _: clock(s))
            total_n, total_s = total_n + clock.n, total_s + clock.elapsed
        return total_n, total_s

    rss = PeakRss()
    rate = interleave({"ensemble": ensemble(False), "sequential": sequential, "ensemble_bf16": ensemble(True)},
                      steps, rounds, rss)
    return _result(f"essnet_ensemble_k{k}", rate, rss, essnet_step_flops(cfg, ct, mri), k=k, target_ratio=1.3,
                   batch_size=cfg.batch_size, image_size=int(ct.images.shape[-1]), timed_steps=steps,
                   note="ensemble step = G+segmenter and D steps of train_essnet, vmapped; image pool left out")
