"""K seeds of one U-Net trained as one batched model, each member equivalent to `train_unet(seed=s)`.

The K U-Nets share one vmapped forward/backward (`benchmarks.stacked`: stacked parameters,
grouped convolutions under vmap), which pays PyTorch's per-op overhead once instead of K times; on a
small CPU that overhead, not arithmetic, bounds these networks. What makes member k the same training
as `train_unet(..., seed=seeds[k])`:

- init: its weights are built after `torch.manual_seed(seeds[k])`, as train_unet builds them;
- data: its batches and augmentation come from its own `torch.Generator().manual_seed(seeds[k])`,
  drawn in train_unet's order (sample indices, synthetic pick, synthetic indices, augmentation);
- loss: its own DiceCELoss on its own batch; the summed loss separates, so its gradient is its own;
- optimiser: Adam is element-wise, so one Adam over the stacked tensors is K Adams; the cosine
  schedule is the same function of the step for every member;
- validation and best weights: per member, as train_unet does.

Batched kernels reduce in another order than single ones, so members match separately trained models
to float rounding, not bit for bit (tests/test_ensemble.py measures it); two ensemble runs with the
same seeds and thread count are bitwise identical.

Speed (benchmarks/results/unet_ensemble_k6*.json): on a 2-core AMD EPYC (avx512_bf16, no AMX) at the
default size (batch 16, 64 px) K = 6 batched runs at 0.93-1.00x of 6 sequential trainings: each U-Net
step already spends its time in convolution kernels (~30-35% of the measured conv peak), and oneDNN's
grouped convolution runs each group no faster than the single convolution. It pays where per-op
overhead dominates (GPU, smaller networks); on this CPU it is a correctness-preserving API, not a speed-up.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from liversynth.config import UNetConfig
from liversynth.data.slice_set import SliceSet
from liversynth.models.predict import predict, segmentation_scores
from liversynth.models.unet import build_unet
from liversynth.runtime.device import autocast, pick_device
from liversynth.training.checkpoint import training_fingerprint
from liversynth.training.loop import LoopPlan, check_finite, restore, run_loop, save_state
from benchmarks.stacked import StackedModules
from liversynth.training.unet import MixedSampler, UNetResult

__all__ = ["ensemble_fingerprint", "member_batches", "train_unet_ensemble"]

OnEval = Callable[[int, int, dict[str, float]], None]  # (seed, step, row), once per member per evaluation


def member_batches(sampler: MixedSampler, batch_size: int,
                   gens: Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """K members' augmented batches (K, B, 1, H, W), (K, B, H, W): member k's random numbers are drawn
    from gens[k] exactly as `augment(*sampler.sample(batch_size, gen), gen)` draws them; the gathers
    and the warp then run once for all members."""
    dev, b = sampler.real_x.device, batch_size
    idx, pick, sidx, rnd = [], [], [], []
    for gen in gens:
        idx.append(torch.randint(len(sampler.real_x), (b,), generator=gen))
        if sampler.p_syn > 0:
            pick.append(torch.rand(b, generator=gen) < sampler.p_syn)
            sidx.append(torch.randint(len(sampler.syn_x), (b,), generator=gen))
        rnd.append(torch.rand(b, 6, generator=gen))
    at = torch.cat(idx).to(dev)
    x, y = sampler.real_x[at], sampler.real_y[at]
    if pick:
        chosen, sat = torch.cat(pick).to(dev), torch.cat(sidx).to(dev)
        x = torch.where(chosen[:, None, None, None], sampler.syn_x[sat], x)
        y = torch.where(chosen[:, None, None], sampler.syn_y[sat], y)
    x, y = _warp(x, y.long(), torch.cat(rnd).to(dev))
    return x.unflatten(0, (len(gens), b)), y.unflatten(0, (len(gens), b))


def _warp(x: torch.Tensor, y: torch.Tensor, rnd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """liversynth.training.unet.augment with its random numbers given (the same arithmetic)."""
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


def _members(cfg: UNetConfig, seeds: Sequence[int], device: torch.device) -> StackedModules:
    """train_unet's init for each seed, without leaving the global RNG changed."""
    models = []
    with torch.random.fork_rng(devices=[]):
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(build_unet(cfg).to(device))
    return StackedModules(models)


def ensemble_fingerprint(real: SliceSet, synthetic: SliceSet | None, ratio: float, cfg: UNetConfig,
                         seeds: Sequence[int], val: SliceSet | None, cpu_bf16: bool = False) -> str:
    """Identity of one ensemble training: data, ratio, config and the seeds in order."""
    arrays = [arr for part in (real, synthetic, val) if part is not None for arr in (part.images, part.labels)]
    extra = {"cpu_bf16": True} if cpu_bf16 else {}
    return training_fingerprint(cfg.model_dump(), -1, arrays, ratio=float(ratio), seeds=list(seeds),
                                ensemble=True, **extra)


class _Ensemble:
    """What K members carry from step to step, and one batched step."""

    def __init__(self, real: SliceSet, synthetic: SliceSet | None, ratio: float, cfg: UNetConfig,
                 seeds: Sequence[int], device: torch.device, cpu_bf16: bool) -> None:
        self.cfg, self.seeds, self.device, self.cpu_bf16 = cfg, list(seeds), device, cpu_bf16
        self.stack = _members(cfg, seeds, device)
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.sampler = MixedSampler(real, synthetic, ratio, device)
        from monai.losses import DiceCELoss  # here: MONAI takes seconds to import

        self.loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        self.opt = torch.optim.Adam(self.stack.parameters(), lr=cfg.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=cfg.steps, eta_min=cfg.lr * 0.05)
        self.forward = self.stack.vmap()
        self.results = [UNetResult(m) for m in self.stack.members]
        self.best: list[dict[str, torch.Tensor] | None] = [None] * len(self.seeds)
        self.running: list[torch.Tensor] = []

    def step(self, i: int) -> None:
        cfg = self.cfg
        self.stack.train()
        self.sampler.anneal((i - 1) / cfg.steps, cfg.synthetic_anneal)
        x, y = member_batches(self.sampler, cfg.batch_size, self.gens)
        with autocast(self.device, self.cpu_bf16):
            logits = self.forward(x)
            # Each member's loss on its own batch, as train_unet computes it (Dice is per sample and
            # channel, CE a mean over the member's pixels), then summed: the gradients separate.
            losses = torch.stack([self.loss_fn(logits[k], y[k][:, None]) for k in range(len(self.seeds))])
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.opt.step()
        self.sched.step()
        self.running.append(losses.detach().float())

    def evaluate(self, i: int, val: SliceSet | None, on_eval: OnEval | None) -> dict[str, float]:
        means = torch.stack(self.running).mean(0).tolist()
        for seed, mean in zip(self.seeds, means):
            check_finite({"train_loss": mean}, i, i - len(self.running), f"unet seed={seed}", "unet.lr")
        self.running.clear()
        models = self.stack.write_back()
        for k, (model, result) in enumerate(zip(models, self.results)):
            row = {"step": i, "train_loss": float(means[k])}
            if val is not None and len(val):
                scores = segmentation_scores(predict(model, val.images, device=self.device), val.labels, val.patients)
                row.update({"val_iou": scores["iou"], "val_dice": scores["dice"]})
                if not row["val_iou"] <= result.best_val_iou:  # also true while best is nan
                    result.best_val_iou = row["val_iou"]
                    self.best[k] = {n: v.detach().clone() for n, v in model.state_dict().items()}
            result.history.append(row)
            if on_eval:
                on_eval(self.seeds[k], i, row)
        return {"loss": sum(means) / len(means)}

    def state(self) -> dict:
        return {"stack": self.stack.state(), "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "history": [r.history for r in self.results], "best_val_iou": [r.best_val_iou for r in self.results],
                "best_state": self.best, "rng": [g.get_state() for g in self.gens]}

    def load(self, state: dict) -> None:
        self.stack.load_state(state["stack"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        for gen, rng in zip(self.gens, state["rng"]):
            gen.set_state(rng.cpu())
        for k, result in enumerate(self.results):
            result.history, result.best_val_iou = list(state["history"][k]), float(state["best_val_iou"][k])
            result.resumed_from = int(state["step"])
        self.best = list(state["best_state"])

    def finish(self) -> list[UNetResult]:
        for model, best in zip(self.stack.write_back(), self.best):
            if best is not None:
                model.load_state_dict(best)
            model.eval()
        return self.results


def train_unet_ensemble(real: SliceSet, synthetic: SliceSet | None, ratio: float, cfg: UNetConfig,
                        seeds: Sequence[int], *, val: SliceSet | None = None, device: torch.device | None = None,
                        on_eval: OnEval | None = None, progress: bool = True, checkpoint: Path | None = None,
                        cpu_bf16: bool = False) -> list[UNetResult]:
    """`train_unet(real, synthetic, ratio, cfg, seed=s, val=val, ...)` for every s in `seeds`, as one
    batched training; result k belongs to seeds[k] (best-validation weights, history, best IoU).

    `on_eval(seed, step, row)` is called for each member at every evaluation (rows as train_unet's).
    With `checkpoint`, the whole ensemble is saved there at every evaluation and a checkpoint of the
    same ensemble (data, ratio, config, seeds in order) is resumed.
    """
    if not seeds:
        raise ValueError("need at least one seed")
    device = device or pick_device()
    run = _Ensemble(real, synthetic, ratio, cfg, seeds, device, cpu_bf16)
    fp = ensemble_fingerprint(real, synthetic, ratio, cfg, seeds, val, cpu_bf16) if checkpoint is not None else ""
    state = restore(checkpoint, fp, device, cfg.steps)
    start = 0
    if state is not None:
        run.load(state)
        start = int(state["step"])

    def save(i: int) -> None:
        assert checkpoint is not None
        save_state(checkpoint, fp, i, **run.state())

    plan = LoopPlan(cfg.steps, cfg.eval_every, None, desc=f"unet x{len(seeds)} r={ratio:g}", progress=progress)
    run_loop(plan, start, run.step, lambda i: run.evaluate(i, val, on_eval), save if checkpoint is not None else None)
    return run.finish()
