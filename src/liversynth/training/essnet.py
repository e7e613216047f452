"""Train EssNet on unpaired CT slices (with liver labels) and MRI slices, resumably.

Everything the run needs to continue exactly - weights, both optimisers, image pools, the sampling
RNG and the loss history - goes into one checkpoint, written atomically, so a run killed at any
point and started again picks up from the last checkpoint instead of from scratch.

Variant `essnet` is the method; `cyclegan` is its ablation, the same networks and schedule with the
segmentation loss off (lambda_seg = 0), i.e. a plain CycleGAN.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from liversynth.config import EssNetConfig
from liversynth.data.slice_set import SliceSet
from liversynth.models.essnet import EssNet, ImagePool, make_optimizers
from liversynth.paths import VARIANTS
from liversynth.runtime.device import autocast, pick_device
from liversynth.training.checkpoint import training_fingerprint
from liversynth.training.loop import LoopPlan, check_finite, restore, run_loop, save_state

__all__ = ["LOSS_KEYS", "TrainResult", "fingerprint", "lr_factor", "train_essnet", "variant_config"]

LOSS_KEYS = ("g_adv", "cycle", "seg", "d", "total")
# Changing these does not change the trajectory up to a given step, so a checkpoint stays valid
# across them: that is what lets a longer run continue a shorter one.
_RESUMABLE_KEYS = ("steps", "checkpoint_every", "seeds")
_ADDED_LATER = {"lr_decay_from": 1.0, "seg_every": 1}


@dataclass
class TrainResult:
    model: EssNet  # in eval mode
    history: list[dict[str, float]]  # {"step", *LOSS_KEYS}, losses averaged since the previous entry
    steps_done: int
    resumed_from: int  # 0 when trained from scratch
    # {"step", ...} what `on_checkpoint` returned at each checkpoint (e.g. fidelity against the oracle)
    checkpoints: list[dict[str, float]] = field(default_factory=list)


def variant_config(cfg: EssNetConfig, variant: str) -> EssNetConfig:
    """The EssNet config of a variant: as given for `essnet`, segmentation loss off for `cyclegan`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    return cfg if variant == "essnet" else cfg.model_copy(update={"lambda_seg": 0.0})


def fingerprint(cfg: EssNetConfig, seed: int, ct: SliceSet, mri_images: np.ndarray,
                cpu_bf16: bool = False) -> str:
    """Identity of a training run, for deciding whether a checkpoint may be resumed."""
    # With a decaying learning rate the step count shapes every step after the decay starts.
    resumable = _RESUMABLE_KEYS if cfg.lr_decay_from >= 1.0 else tuple(k for k in _RESUMABLE_KEYS if k != "steps")
    params = {k: v for k, v in cfg.model_dump().items() if k not in resumable}
    for key, default in _ADDED_LATER.items():  # at their defaults they leave earlier fingerprints as they were
        if params[key] == default:
            del params[key]
    # bf16 is another trajectory; only added when set, so existing fp32 checkpoints stay valid.
    extra = {"cpu_bf16": True} if cpu_bf16 else {}
    return training_fingerprint(params, seed, (ct.images, ct.labels, mri_images), **extra)


def lr_factor(step: int, steps: int, decay_from: float) -> float:
    """Share of the base learning rate at 1-based `step`: 1 until decay_from * steps, then linear to 0
    after the last step. A pure function of the step, so a resumed run needs no scheduler state."""
    start = decay_from * steps
    if step <= start or decay_from >= 1.0:
        return 1.0
    return max(0.0, 1.0 - (step - 1 - start) / (steps - start))


def _set_requires_grad(modules: Iterable[nn.Module], flag: bool) -> None:
    for module in modules:
        module.requires_grad_(flag)


class _EssNetStepper:
    """The state one EssNet training carries from step to step, and one step of it."""

    def __init__(self, ct: SliceSet, mri_images: np.ndarray, cfg: EssNetConfig, seed: int,
                 device: torch.device, cpu_bf16: bool):
        self.cfg, self.device = cfg, device
        self.sampler = torch.Generator().manual_seed(seed)  # drives batch sampling and the image pools
        with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
            torch.manual_seed(seed)
            self.model = EssNet(cfg)
        self.model.to(device)
        self.opt_g, self.opt_d = make_optimizers(self.model, cfg)
        self.pools = {"mri": ImagePool(cfg.pool_size, self.sampler), "ct": ImagePool(cfg.pool_size, self.sampler)}
        # Converted once: per-step indexing of device tensors beats re-reading the memory map.
        self.ct_img = torch.as_tensor(np.array(ct.images, np.float32), device=device)
        self.ct_lab = torch.as_tensor(np.array(ct.labels, np.uint8), device=device)
        self.mri_img = torch.as_tensor(np.array(mri_images, np.float32), device=device)
        self.amp = autocast(device, cpu_bf16)
        self.sums = torch.zeros(len(LOSS_KEYS), device=device)
        self.n_window = 0

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "pools": {n: p.state_dict() for n, p in self.pools.items()},
                "rng": {"sampler": self.sampler.get_state()}}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for name, pool in self.pools.items():
            pool.load_state_dict(state["pools"][name], self.device)
        self.sampler.set_state(state["rng"]["sampler"].cpu())

    def step(self, i: int) -> None:
        cfg, model, dev = self.cfg, self.model, self.device
        lr = cfg.lr * lr_factor(i, cfg.steps, cfg.lr_decay_from)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        ci = torch.randint(len(self.ct_img), (cfg.batch_size,), generator=self.sampler).to(dev)
        mi = torch.randint(len(self.mri_img), (cfg.batch_size,), generator=self.sampler).to(dev)
        real_ct, label, real_mri = self.ct_img[ci], self.ct_lab[ci], self.mri_img[mi]
        discriminators = (model.d_mri, model.d_ct)
        # Generator + segmenter step; discriminators frozen so no gradients are spent on them.
        _set_requires_grad(discriminators, False)
        with self.amp:
            g = model.generator_losses(real_ct, label, real_mri, with_seg=i % cfg.seg_every == 0)
        self.opt_g.zero_grad(set_to_none=True)
        g.total.backward()
        self.opt_g.step()
        _set_requires_grad(discriminators, True)
        fake_mri, fake_ct = self.pools["mri"].query(g.fake_mri), self.pools["ct"].query(g.fake_ct)
        with self.amp:
            d = model.discriminator_loss(real_mri, fake_mri, real_ct, fake_ct)
        self.opt_d.zero_grad(set_to_none=True)
        d.backward()
        self.opt_d.step()
        # Accumulated on device; .tolist() only at log time, so CUDA is not synchronised every step.
        self.sums += torch.stack([g.g_adv, g.cycle, g.seg, d, g.total]).detach().float()
        self.n_window += 1

    def window_means(self) -> dict[str, float]:
        losses = dict(zip(LOSS_KEYS, (self.sums / max(self.n_window, 1)).tolist()))
        self.sums.zero_()
        self.n_window = 0
        return losses


def train_essnet(ct: SliceSet, mri_images: np.ndarray, cfg: EssNetConfig, *, seed: int, checkpoint: Path,
                 device: torch.device | None = None,
                 on_log: Callable[[int, dict[str, float]], None] | None = None,
                 log_every: int = 10, cpu_bf16: bool = False, name: str = "essnet",
                 on_checkpoint: Callable[[int, EssNet], dict[str, float]] | None = None) -> TrainResult:
    """Train for cfg.steps steps, resuming from `checkpoint` when it holds an earlier state of this run.
    `name` (variant and seed) heads its progress lines.

    `cpu_bf16` trains in bf16 autocast on CPU too (see liversynth.runtime.device.autocast).
    `on_checkpoint(step, model)` runs at every checkpoint, before it is written; what it returns is kept in
    the checkpoint (so a resumed run still has every earlier point) and returned as `checkpoints`. It must
    not change the model or draw from torch's RNG, so measuring never changes the trajectory.
    """
    device = device or pick_device()
    fp = fingerprint(cfg, seed, ct, mri_images, cpu_bf16)
    run = _EssNetStepper(ct, mri_images, cfg, seed, device, cpu_bf16)
    start, history, probes = 0, [], []
    state = restore(checkpoint, fp, device, cfg.steps)
    if state is not None:
        run.load(state)
        start, history = int(state["step"]), list(state["history"])
        probes = list(state.get("checkpoints", []))

    def log(step: int) -> dict[str, float]:
        since = int(history[-1]["step"]) if history else start
        losses = run.window_means()
        check_finite(losses, step, since, f"essnet seed={seed}", "essnet.lr or essnet.lambda_cycle/lambda_seg")
        history.append({"step": step, **losses})
        if on_log is not None:
            on_log(step, losses)
        return {"total": losses["total"], "d": losses["d"]}

    def save(step: int) -> None:
        if on_checkpoint is not None and not any(p["step"] == step for p in probes):
            probes.append({"step": step, **on_checkpoint(step, run.model)})
            run.model.train()
        save_state(Path(checkpoint), fp, step, history=history, checkpoints=probes, **run.state())

    run.model.train()
    plan = LoopPlan(cfg.steps, log_every, cfg.checkpoint_every, desc=name)
    saved_at = run_loop(plan, start, run.step, log, save)
    if saved_at != cfg.steps or state is None and start == cfg.steps:
        save(cfg.steps)
    run.model.eval()
    return TrainResult(run.model, history, cfg.steps, start, probes)

