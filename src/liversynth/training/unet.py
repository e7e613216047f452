"""U-Net liver segmenter (MONAI's, in plain torch) trained on real MRI mixed with synthetic MRI.

The mixing ratio r means "r synthetic slices drawn per real slice": each training sample is synthetic
with probability r / (1 + r). The number of steps is fixed, so every ratio gets the same compute and
r = 0 is exactly the real-only baseline.

With `synthetic_anneal` = a > 0 the synthetic share starts at r / (1 + r) and falls linearly to 0 at
fraction a of training: the network first learns liver anatomy from many synthetic patients, then
adapts to the real MRI appearance. Measured on the phantom, constant mixing lost to real-only on
validation IoU while annealed mixing gained (see README).

With a `checkpoint` path, training saves everything needed to continue exactly (weights, optimiser,
schedule, sampling RNG, history, best weights so far) at every evaluation, atomically, and a rerun
of the same training continues from there instead of starting over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from liversynth.config import UNetConfig
from liversynth.data.slice_set import SliceSet
from liversynth.models.losses import dice_ce
from liversynth.models.predict import predict, segmentation_scores
from liversynth.models.unet import build_unet
from liversynth.runtime.device import autocast, pick_device
from liversynth.training.checkpoint import training_fingerprint
from liversynth.training.loop import LoopPlan, check_finite, restore, run_loop, save_state

__all__ = ["MixedSampler", "UNetResult", "augment", "train_unet", "unet_fingerprint"]


@dataclass
class UNetResult:
    model: torch.nn.Module
    history: list[dict[str, float]] = field(default_factory=list)  # one row per eval point
    best_val_iou: float = float("nan")
    resumed_from: int = 0  # the checkpoint step training continued from; 0 = from scratch


class MixedSampler:
    """Draws batches from real and synthetic slices held as tensors: no per-sample Python."""

    def __init__(self, real: SliceSet, synthetic: SliceSet | None, ratio: float, device: torch.device):
        # One copy into memory (arrays may be read-only memory maps); sampling is then pure tensor ops.
        self.real_x = torch.as_tensor(np.array(real.images, np.float32), device=device)
        # Labels stay uint8 (1/8 of int64's memory) and are widened per batch in sample().
        self.real_y = torch.as_tensor(np.array(real.labels, np.uint8), device=device)
        use_syn = synthetic is not None and len(synthetic) > 0 and ratio > 0
        self.p_start = self.p_syn = ratio / (1.0 + ratio) if use_syn else 0.0
        if synthetic is not None and use_syn:
            self.syn_x = torch.as_tensor(np.array(synthetic.images, np.float32), device=device)
            self.syn_y = torch.as_tensor(np.array(synthetic.labels, np.uint8), device=device)

    def anneal(self, progress: float, until: float) -> None:
        """Synthetic share at `progress` (0..1) of training: linear decay to 0 at `until` (0 = constant)."""
        if until > 0:
            self.p_syn = self.p_start * max(0.0, 1.0 - progress / until)

    def sample(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.real_x.device
        idx = torch.randint(len(self.real_x), (batch_size,), generator=gen).to(dev)
        x, y = self.real_x[idx], self.real_y[idx]
        if self.p_syn > 0:
            pick = (torch.rand(batch_size, generator=gen) < self.p_syn).to(dev)
            sidx = torch.randint(len(self.syn_x), (batch_size,), generator=gen).to(dev)
            x = torch.where(pick[:, None, None, None], self.syn_x[sidx], x)
            y = torch.where(pick[:, None, None], self.syn_y[sidx], y)
        return x, y.long()


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Small random affine (rotate, scale, shift) and intensity jitter, batched on the device.

    No flips: the liver's side is anatomy, not noise.
    """
    b, dev = x.shape[0], x.device
    rnd = torch.rand(b, 6, generator=gen).to(dev)
    angle = (rnd[:, 0] - 0.5) * math.radians(20)
    scale = 0.9 + 0.2 * rnd[:, 1]
    shift = (rnd[:, 2:4] - 0.5) * 0.16
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", align_corners=False)[:, 0].long()
    gain, bias = 0.85 + 0.3 * rnd[:, 4], (rnd[:, 5] - 0.5) * 0.2
    x = (x * gain[:, None, None, None] + bias[:, None, None, None]).clamp(-1.0, 1.0)
    return x, y


def train_unet(real: SliceSet, synthetic: SliceSet | None, ratio: float, cfg: UNetConfig, *,
               seed: int, val: SliceSet | None = None, device: torch.device | None = None,
               on_eval: Callable[[int, dict[str, float]], None] | None = None,
               progress: bool = True, checkpoint: Path | None = None, cpu_bf16: bool = False,
               name: str | None = None) -> UNetResult:
    """Train one U-Net for cfg.steps steps; evaluate on `val` every cfg.eval_every steps.

    The weights returned are those with the best validation IoU (the last ones without `val`).
    With `checkpoint`, state is saved there at every evaluation and a checkpoint of this same
    training (same data, ratio, seed and config) is resumed; `on_eval` then sees only new steps.
    `cpu_bf16` trains in bf16 autocast on CPU too (liversynth.runtime.device.autocast).
    """
    device = device or pick_device()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_unet(cfg).to(device)
    sampler = MixedSampler(real, synthetic, ratio, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr * 0.05)
    result = UNetResult(model)
    best: dict[str, dict | None] = {"state": None}
    running: list[torch.Tensor] = []
    fp = unet_fingerprint(real, synthetic, ratio, cfg, seed, val) if checkpoint is not None else ""
    state = restore(checkpoint, fp, device, cfg.steps)
    if state is not None:
        _load_state(state, model, opt, sched, gen, result, best)

    step = _stepper(model, sampler, opt, sched, gen, cfg, running, device, cpu_bf16)

    def evaluate(i: int) -> dict[str, float]:
        row = {"step": i, "train_loss": float(torch.stack(running).mean())}
        check_finite({"train_loss": row["train_loss"]}, i, i - len(running), f"unet seed={seed}", "unet.lr")
        running.clear()
        if val is not None and len(val):
            scores = segmentation_scores(predict(model, val.images, device=device), val.labels, val.patients)
            row.update({"val_iou": scores["iou"], "val_dice": scores["dice"]})
            if not row["val_iou"] <= result.best_val_iou:  # also true while best is nan
                result.best_val_iou = row["val_iou"]
                best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        result.history.append(row)
        if on_eval:
            on_eval(i, row)
        return {"loss": row["train_loss"]}

    def save(i: int) -> None:  # after on_eval: a kill in between repeats a log row, never loses one
        assert checkpoint is not None
        save_state(checkpoint, fp, i, model=model.state_dict(), optimizer=opt.state_dict(),
                   scheduler=sched.state_dict(), history=result.history, best_val_iou=result.best_val_iou,
                   best_state=best["state"], rng={"sampler": gen.get_state(), "torch": torch.get_rng_state()})

    plan = LoopPlan(cfg.steps, cfg.eval_every, None, desc=name or f"unet r={ratio:g} s={seed}", progress=progress)
    run_loop(plan, result.resumed_from, step, evaluate, save if checkpoint is not None else None)
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return result


def _stepper(model: torch.nn.Module, sampler: MixedSampler, opt: torch.optim.Optimizer,
             sched: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator, cfg: UNetConfig,
             running: list[torch.Tensor], device: torch.device, cpu_bf16: bool) -> Callable[[int], None]:
    """One training step of `train_unet` (step i, 1-based); its loss is appended to `running`."""
    def step(i: int) -> None:
        model.train()
        sampler.anneal((i - 1) / cfg.steps, cfg.synthetic_anneal)
        x, y = augment(*sampler.sample(cfg.batch_size, gen), gen)
        with autocast(device, cpu_bf16):  # cpu_bf16: see liversynth.runtime.device.autocast
            loss = dice_ce(model(x), y[:, None])  # MONAI's DiceCELoss(to_onehot_y=True, softmax=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.detach())

    return step


def _load_state(state: dict, model: torch.nn.Module, opt: torch.optim.Optimizer,
                sched: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator, result: UNetResult,
                best: dict[str, dict | None]) -> None:
    """Put a checkpoint's state back into the objects of a fresh training."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["rng"]["sampler"].cpu())
    torch.set_rng_state(state["rng"]["torch"].cpu())
    result.history, result.best_val_iou = list(state["history"]), float(state["best_val_iou"])
    best["state"], result.resumed_from = state["best_state"], int(state["step"])


def unet_fingerprint(real: SliceSet, synthetic: SliceSet | None, ratio: float, cfg: UNetConfig, seed: int,
                     val: SliceSet | None) -> str:
    """Identity of one training (see training_fingerprint), ratio included."""
    arrays = [arr for part in (real, synthetic, val) if part is not None for arr in (part.images, part.labels)]
    return training_fingerprint(cfg.model_dump(), seed, arrays, ratio=float(ratio))

