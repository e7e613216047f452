"""Train EssNet on unpaired CT slices (with liver labels) and MRI slices, resumably.

Everything the run needs to continue exactly - weights, both optimisers, image pools, the sampling
RNG and the loss history - goes into one checkpoint, written atomically, so a run killed at any
point and started again picks up from the last checkpoint instead of from scratch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from liversynth.device import autocast, pick_device
from liversynth.checkpoint import load_checkpoint, save_checkpoint
from liversynth.config import EssNetConfig
from liversynth.models.essnet import EssNet, ImagePool, make_optimizers
from liversynth.models.generator import ResnetGenerator
from liversynth.slices import SliceSet, write_atomic_file

LOSS_KEYS = ("g_adv", "cycle", "seg", "d", "total")
# Changing these does not change the trajectory up to a given step, so a checkpoint stays valid
# across them: that is what lets a longer run continue a shorter one.
_RESUMABLE_KEYS = ("steps", "checkpoint_every")


@dataclass
class TrainResult:
    model: EssNet  # in eval mode
    history: list[dict[str, float]]  # {"step", *LOSS_KEYS}, losses averaged since the previous entry
    steps_done: int
    resumed_from: int  # 0 when trained from scratch


def fingerprint(cfg: EssNetConfig, seed: int, ct: SliceSet, mri_images: np.ndarray,
                cpu_bf16: bool = False) -> str:
    """Identity of a training run, for deciding whether a checkpoint may be resumed.

    Besides shapes, a few strided slices are hashed so that different data of equal shape does not
    silently resume someone else's run; reading them from a memory map is cheap.
    """
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _RESUMABLE_KEYS}
    digest = hashlib.sha256()
    for arr in (ct.images, ct.labels, mri_images):
        digest.update(np.array(arr[:: max(1, len(arr) // 8)]).tobytes())
    payload = {
        "cfg": params,
        "seed": seed,
        "ct": list(ct.images.shape),
        "mri": list(mri_images.shape),
        "sample": digest.hexdigest(),
    }
    if cpu_bf16:  # another trajectory; only added when set, so existing fp32 checkpoints stay valid
        payload["cpu_bf16"] = True
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _set_requires_grad(modules: Iterable[nn.Module], flag: bool) -> None:
    for module in modules:
        module.requires_grad_(flag)


def train_essnet(
    ct: SliceSet,
    mri_images: np.ndarray,
    cfg: EssNetConfig,
    *,
    seed: int,
    checkpoint: Path,
    device: torch.device | None = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int = 10,
    cpu_bf16: bool = False,
) -> TrainResult:
    """Train for cfg.steps steps, resuming from `checkpoint` when it holds an earlier state of this run.

    A checkpoint from a longer run (more steps than asked) is not reused: the result must be the
    model after exactly cfg.steps steps. `cpu_bf16` trains in bf16 autocast on CPU too (see
    liversynth.device.autocast: about 2x faster on CPUs with AMX).
    """
    device = device or pick_device()
    checkpoint = Path(checkpoint)
    fp = fingerprint(cfg, seed, ct, mri_images, cpu_bf16)
    sampler = torch.Generator().manual_seed(seed)  # drives batch sampling and the image pools
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = EssNet(cfg)
    model.to(device)
    opt_g, opt_d = make_optimizers(model, cfg)
    pools = {"mri": ImagePool(cfg.pool_size, sampler), "ct": ImagePool(cfg.pool_size, sampler)}

    start, history = 0, []
    state = load_checkpoint(checkpoint, fp, device)
    resumed = state is not None and state["step"] <= cfg.steps
    if resumed:
        model.load_state_dict(state["model"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        for name, pool in pools.items():
            pool.load_state_dict(state["pools"][name], device)
        sampler.set_state(state["rng"]["sampler"].cpu())
        start, history = int(state["step"]), list(state["history"])
    saved_at = start if resumed else -1

    # Converted once: per-step indexing of device tensors beats re-reading the memory map.
    ct_img = torch.as_tensor(np.array(ct.images, np.float32), device=device)
    ct_lab = torch.as_tensor(np.array(ct.labels, np.uint8), device=device)
    mri_img = torch.as_tensor(np.array(mri_images, np.float32), device=device)
    discriminators = (model.d_mri, model.d_ct)
    amp = autocast(device, cpu_bf16)

    def save(step: int) -> None:
        save_checkpoint(
            checkpoint,
            {
                "fingerprint": fp,
                "step": step,
                "model": model.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "pools": {name: pool.state_dict() for name, pool in pools.items()},
                "history": history,
                "rng": {"sampler": sampler.get_state()},
            },
        )

    model.train()
    sums = torch.zeros(len(LOSS_KEYS), device=device)
    n_window = 0
    bar = tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="essnet", disable=None)
    for step in bar:
        ci = torch.randint(len(ct_img), (cfg.batch_size,), generator=sampler).to(device)
        mi = torch.randint(len(mri_img), (cfg.batch_size,), generator=sampler).to(device)
        real_ct, label, real_mri = ct_img[ci], ct_lab[ci], mri_img[mi]

        # Generator + segmenter step; discriminators frozen so no gradients are spent on them.
        _set_requires_grad(discriminators, False)
        with amp:
            g = model.generator_losses(real_ct, label, real_mri)
        opt_g.zero_grad(set_to_none=True)
        g.total.backward()
        opt_g.step()

        _set_requires_grad(discriminators, True)
        fake_mri, fake_ct = pools["mri"].query(g.fake_mri), pools["ct"].query(g.fake_ct)
        with amp:
            d = model.discriminator_loss(real_mri, fake_mri, real_ct, fake_ct)
        opt_d.zero_grad(set_to_none=True)
        d.backward()
        opt_d.step()

        # Accumulated on device; .tolist() only at log time, so CUDA is not synchronised every step.
        sums += torch.stack([g.g_adv, g.cycle, g.seg, d, g.total]).detach().float()
        n_window += 1
        if step % log_every == 0 or step == cfg.steps:
            losses = dict(zip(LOSS_KEYS, (sums / n_window).tolist()))
            history.append({"step": step, **losses})
            sums.zero_()
            n_window = 0
            bar.set_postfix(total=f"{losses['total']:.3f}", d=f"{losses['d']:.3f}")
            if on_log is not None:
                on_log(step, losses)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save(step)
            saved_at = step
    if saved_at != cfg.steps:
        save(cfg.steps)
    model.eval()
    return TrainResult(model, history, cfg.steps, start)


def save_generator(model: EssNet | ResnetGenerator, path: Path) -> None:
    """Write the CT->MRI generator's weights (a state_dict on CPU), atomically."""
    generator = model.g_ct2mri if isinstance(model, EssNet) else model
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in generator.state_dict().items()}, buf)
    write_atomic_file(Path(path), buf.getvalue())


def load_generator(path: Path, cfg: EssNetConfig, device: torch.device | None = None) -> ResnetGenerator:
    generator = ResnetGenerator(1, 1, cfg.ngf, cfg.n_blocks)
    generator.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return generator.to(device or torch.device("cpu")).eval()


def save_essnet(model: EssNet, path: Path) -> None:
    """Write all EssNet weights (both generators, discriminators, segmenter), atomically."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    write_atomic_file(Path(path), buf.getvalue())


def load_essnet(path: Path, cfg: EssNetConfig, device: torch.device | None = None) -> EssNet:
    model = EssNet(cfg)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device or torch.device("cpu")).eval()
