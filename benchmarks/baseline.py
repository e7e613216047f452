"""The plain baselines: the straightforward way to write each hot path, for the ratios in the results.

Each one computes the same thing as the library with the same networks, losses and optimisers, but
the textbook way: one .npy file per slice read from disk every step through a torch Dataset and a
DataLoader(num_workers=0), batches assembled by the default collate (a Python loop over samples),
augmentation one sample at a time, eager PyTorch under no_grad, and `loss.item()` logged every
step. Prepare loads every volume of a split into memory and concatenates them at the end.
"""
from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch.utils.data import ConcatDataset, DataLoader, Dataset, RandomSampler, WeightedRandomSampler

from liversynth.config import EssNetConfig, Params, UNetConfig
from liversynth.models.essnet import EssNet, ImagePool, make_optimizers
from liversynth.data.prepare import normalise, plan_splits, resize_slices
from liversynth.data.readers import reader_for
from liversynth.training.unet import build_unet
from liversynth.data.slice_set import SPLITS, SliceSet

Tick = Callable[[int], None]  # called with the step number after each step
CPU = torch.device("cpu")


def write_slice_files(slices: SliceSet, folder: Path) -> Path:
    """One image .npy and one label .npy per slice: the layout a plain Dataset reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(slices)):
        np.save(folder / f"{i:06d}_img.npy", np.asarray(slices.images[i], np.float32))
        np.save(folder / f"{i:06d}_lab.npy", np.asarray(slices.labels[i], np.uint8))
    return folder


class SliceFiles(Dataset):
    """Reads a slice and its label from disk on every access, optionally augmenting it."""

    def __init__(self, folder: Path, augment: bool = False, seed: int = 0) -> None:
        self.images = sorted(Path(folder).glob("*_img.npy"))
        self.augment = augment
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.images[i]
        x = torch.from_numpy(np.load(path))
        y = torch.from_numpy(np.load(str(path).replace("_img", "_lab"))).long()
        return augment_one(x, y, self.rng) if self.augment else (x, y)


def augment_one(x: torch.Tensor, y: torch.Tensor, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """The library's augmentation (affine + intensity jitter), for one (1, H, W) sample at a time."""
    angle = (rng.random() - 0.5) * math.radians(20)
    scale = 0.9 + 0.2 * rng.random()
    sx, sy = (rng.random() - 0.5) * 0.16, (rng.random() - 0.5) * 0.16
    c, s = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[[c, -s, sx], [s, c, sy]]], dtype=torch.float32)
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    x = F.grid_sample(x[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    y = F.grid_sample(y[None, None].float(), grid, mode="nearest", align_corners=False)[0, 0].long()
    gain, bias = 0.85 + 0.3 * rng.random(), (rng.random() - 0.5) * 0.2
    return (x * gain + bias).clamp(-1.0, 1.0), y


def _forever(loader: DataLoader) -> Iterator:
    while True:
        yield from loader


def plain_train_unet(real_dir: Path, syn_dir: Path, ratio: float, cfg: UNetConfig, *, seed: int,
                     tick: Tick, device: torch.device = CPU) -> list[float]:
    """U-Net training, plain: files -> Dataset -> weighted DataLoader -> model, loss.item() each step."""
    torch.manual_seed(seed)
    real, syn = SliceFiles(real_dir, True, seed), SliceFiles(syn_dir, True, seed + 1)
    both = ConcatDataset([real, syn])
    p_syn = ratio / (1.0 + ratio)
    weights = [(1 - p_syn) / len(real)] * len(real) + [p_syn / len(syn)] * len(syn)
    sampler = WeightedRandomSampler(weights, cfg.steps * cfg.batch_size, replacement=True,
                                    generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(both, batch_size=cfg.batch_size, sampler=sampler, num_workers=0)
    model = build_unet(cfg).to(device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr * 0.05)
    model.train()
    losses = []
    for step, (x, y) in enumerate(loader, 1):
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y[:, None])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        tick(step)
    return losses


def plain_train_essnet(ct_dir: Path, mri_dir: Path, cfg: EssNetConfig, *, seed: int, tick: Tick,
                       device: torch.device = CPU) -> list[dict]:
    """EssNet training, plain: two file DataLoaders, the library's losses, every loss .item()'d each step."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ct, mri = SliceFiles(ct_dir), SliceFiles(mri_dir)
    ct_loader = _forever(DataLoader(ct, cfg.batch_size, sampler=RandomSampler(ct, replacement=True, generator=gen)))
    mri_loader = _forever(DataLoader(mri, cfg.batch_size, sampler=RandomSampler(mri, replacement=True, generator=gen)))
    model = EssNet(cfg).to(device)
    opt_g, opt_d = make_optimizers(model, cfg)
    pools = {"mri": ImagePool(cfg.pool_size, gen), "ct": ImagePool(cfg.pool_size, gen)}
    model.train()
    history = []
    for step in range(1, cfg.steps + 1):
        real_ct, label = (t.to(device) for t in next(ct_loader))
        real_mri = next(mri_loader)[0].to(device)
        for p in model.discriminator_parameters():
            p.requires_grad = False
        g = model.generator_losses(real_ct, label, real_mri)
        opt_g.zero_grad()
        g.total.backward()
        opt_g.step()
        for p in model.discriminator_parameters():
            p.requires_grad = True
        d = model.discriminator_loss(real_mri, pools["mri"].query(g.fake_mri), real_ct, pools["ct"].query(g.fake_ct))
        opt_d.zero_grad()
        d.backward()
        opt_d.step()
        history.append({"step": step, "g_adv": g.g_adv.item(), "cycle": g.cycle.item(), "seg": g.seg.item(),
                        "d": d.item(), "total": g.total.item()})
        tick(step)
    return history


def plain_synthesize(generator: torch.nn.Module, ct_dir: Path, batch_size: int,
                     device: torch.device = CPU) -> np.ndarray:
    """Translate every CT slice file, batch by batch, under no_grad."""
    generator.to(device).eval()
    out = []
    with torch.no_grad():
        for x, _ in DataLoader(SliceFiles(ct_dir), batch_size=batch_size, num_workers=0):
            out.append(generator(x.to(device)).clamp(-1.0, 1.0).cpu().numpy())
    return np.concatenate(out)


def plain_prepare(params: Params, raw_dir: Path, out_dir: Path) -> dict:
    """Prepare, plain: every volume of a split read into a list, concatenated, then saved."""
    reader, cfg = reader_for(params.data.dataset), params.prepare
    patients = {m: reader.list_patients(raw_dir, m) for m in ("ct", "mri")}
    plan = plan_splits(patients["ct"], patients["mri"], cfg)
    manifest: dict = {"image_size": cfg.image_size, "splits": {}}
    for split in SPLITS:
        modality = "ct" if split.startswith("ct") else "mri"
        images, labels, ids = [], [], []
        for patient in plan.patients.get(split, []):
            vol = reader.read_patient(raw_dir, modality, patient, params.data.liver_label[modality])
            img, lab = resize_slices(normalise(vol, cfg), vol.label, cfg.image_size)
            images.append(img[:, None])
            labels.append(lab)
            ids += [patient] * len(lab)
        size = cfg.image_size
        slices = SliceSet(np.concatenate(images) if images else np.zeros((0, 1, size, size), np.float32),
                          np.concatenate(labels) if labels else np.zeros((0, size, size), np.uint8),
                          np.array(ids, dtype="<U64"))
        slices._write(_mkdir(out_dir / split))  # noqa: SLF001  (a plain, non-atomic save)
        manifest["splits"][split] = {"patients": plan.patients.get(split, []), "slices": len(slices)}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class Clock:
    """Steps per second after a warm-up: the first `warmup` steps (allocator, caches) are not counted."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1, self.n = warmup, None, None, 0

    def __call__(self, step: int) -> None:
        now = time.perf_counter()
        if step == self.warmup:
            self.t0 = now
        elif step > self.warmup:
            self.t1, self.n = now, step - self.warmup

    @property
    def elapsed(self) -> float:
        return self.t1 - self.t0 if self.n else 0.0
