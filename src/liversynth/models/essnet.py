"""EssNet (Huo et al. 2018, "SynSeg-Net"): a CycleGAN whose CT->MRI output also feeds a segmenter.

The segmentation loss on synthetic MRI flows back into the CT->MRI generator, so the generator is
pushed to keep the liver recognisable. With lambda_seg == 0 the segmenter never enters the loss and
the model is a plain CycleGAN: that is the ablation.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liversynth.config import EssNetConfig
from liversynth.models.discriminator import PatchDiscriminator
from liversynth.models.generator import ResnetGenerator
from liversynth.models.losses import DiceCE
from liversynth.models.seg_unet import SegUNet
from liversynth.models.weights import load_weights

__all__ = ["EssNet", "GeneratorLosses", "ImagePool", "load_essnet", "make_optimizers"]


class ImagePool:
    """CycleGAN's history of generated images (Shrivastava et al. 2017).

    Discriminators see a mix of current and older fakes, which damps generator/discriminator
    oscillation. Until the pool is full every fake is stored and returned; afterwards each fake is,
    with probability 0.5, swapped for a stored one (which it replaces).
    """

    def __init__(self, size: int, generator: torch.Generator | None = None) -> None:
        self.size = size
        self.generator = generator
        self.count = 0
        self.buffer: Tensor | None = None

    def query(self, images: Tensor) -> Tensor:
        images = images.detach().float()
        if self.size == 0:
            return images
        if self.buffer is None:
            self.buffer = images.new_empty((self.size, *images.shape[1:]))
        n_fill = min(len(images), self.size - self.count)
        self.buffer[self.count : self.count + n_fill] = images[:n_fill]
        self.count += n_fill
        out = images.clone()
        rest = out[n_fill:]  # a view: edits below land in `out`
        if len(rest) == 0:
            return out
        swap = torch.rand(len(rest), generator=self.generator) < 0.5
        n_swap = int(swap.sum())
        # Distinct slots, so no two fakes of one batch race for the same slot (a deterministic result).
        if n_swap <= self.size:
            slots = torch.randperm(self.size, generator=self.generator)[:n_swap]
        else:
            slots = torch.randint(self.size, (n_swap,), generator=self.generator)
        swap, slots = swap.to(out.device), slots.to(out.device)
        new = rest[swap].clone()
        rest[swap] = self.buffer[slots]
        self.buffer[slots] = new
        return out

    def state_dict(self) -> dict[str, Tensor | int]:
        buffer = self.buffer if self.buffer is not None else torch.zeros(0)
        return {"buffer": buffer.detach().cpu(), "count": self.count}

    def load_state_dict(self, state: dict, device: torch.device | None = None) -> None:
        buffer = state["buffer"]
        self.buffer = buffer.to(device) if buffer.numel() else None
        self.count = int(state["count"])


@dataclass
class GeneratorLosses:
    total: Tensor
    g_adv: Tensor
    cycle: Tensor
    seg: Tensor
    fake_mri: Tensor
    fake_ct: Tensor


def _lsgan(pred: Tensor, real: bool) -> Tensor:
    return F.mse_loss(pred.float(), torch.full_like(pred, 1.0 if real else 0.0, dtype=torch.float32))


class EssNet(nn.Module):
    def __init__(self, cfg: EssNetConfig) -> None:
        super().__init__()
        self.g_ct2mri = ResnetGenerator(1, 1, cfg.ngf, cfg.n_blocks)
        self.g_mri2ct = ResnetGenerator(1, 1, cfg.ngf, cfg.n_blocks)
        self.d_mri = PatchDiscriminator(1, cfg.ndf)
        self.d_ct = PatchDiscriminator(1, cfg.ndf)
        # Logits out (no tanh, unlike the SynSeg-Net code): DiceCE applies the softmax itself. MONAI's UNet
        # and DiceCELoss, reproduced exactly in plain torch (seg_unet, losses): MONAI's import took seconds.
        self.segmenter = SegUNet(1, 2, cfg.seg_channels, (2,) * (len(cfg.seg_channels) - 1), num_res_units=1)
        self.lambda_cycle = cfg.lambda_cycle
        self.lambda_seg = cfg.lambda_seg
        self.seg_loss = DiceCE()

    def generator_parameters(self) -> list[nn.Parameter]:
        """Both generators and the segmenter: EssNet trains them with one optimiser, end to end."""
        return list(chain(self.g_ct2mri.parameters(), self.g_mri2ct.parameters(), self.segmenter.parameters()))

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(chain(self.d_mri.parameters(), self.d_ct.parameters()))

    def generator_losses(self, ct: Tensor, ct_label: Tensor, mri: Tensor, with_seg: bool = True) -> GeneratorLosses:
        """Adversarial (LSGAN) + cycle L1 in both directions + segmentation of synthetic MRI.

        `ct_label` is (B, H, W) integer, 1 = liver. No identity loss (EssNet does not use one).
        `with_seg=False` skips the segmenter on this step (EssNetConfig.seg_every), saving its cost.
        """
        fake_mri = self.g_ct2mri(ct)
        fake_ct = self.g_mri2ct(mri)
        g_adv = _lsgan(self.d_mri(fake_mri), True) + _lsgan(self.d_ct(fake_ct), True)
        cycle = F.l1_loss(self.g_mri2ct(fake_mri).float(), ct) + F.l1_loss(self.g_ct2mri(fake_ct).float(), mri)
        total = g_adv + self.lambda_cycle * cycle
        if self.lambda_seg > 0 and with_seg:
            seg = self.seg_loss(self.segmenter(fake_mri).float(), ct_label.unsqueeze(1).long())
            total = total + self.lambda_seg * seg
        else:  # plain CycleGAN (or a step without it): the segmenter is not run and gets no gradient
            seg = torch.zeros((), device=ct.device)
        return GeneratorLosses(total, g_adv, cycle, seg, fake_mri, fake_ct)

    def discriminator_loss(self, real_mri: Tensor, fake_mri: Tensor, real_ct: Tensor, fake_ct: Tensor) -> Tensor:
        """LSGAN loss of both discriminators; halved per discriminator as in CycleGAN to slow D."""
        d_mri = 0.5 * (_lsgan(self.d_mri(real_mri), True) + _lsgan(self.d_mri(fake_mri), False))
        d_ct = 0.5 * (_lsgan(self.d_ct(real_ct), True) + _lsgan(self.d_ct(fake_ct), False))
        return d_mri + d_ct


def make_optimizers(model: EssNet, cfg: EssNetConfig) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """One Adam for generators + segmenter, one for both discriminators (Huo et al. 2018)."""
    betas = (cfg.beta1, 0.999)
    return (
        torch.optim.Adam(model.generator_parameters(), lr=cfg.lr, betas=betas),
        torch.optim.Adam(model.discriminator_parameters(), lr=cfg.lr, betas=betas),
    )


def load_essnet(path: Path, cfg: EssNetConfig, device: torch.device | None = None) -> EssNet:
    """A whole EssNet (both generators, discriminators, segmenter) written by `save_weights`."""
    model = load_weights(EssNet(cfg), path, device)
    assert isinstance(model, EssNet)
    return model
