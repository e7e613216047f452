"""The CycleGAN ResNet generator (Zhu et al. 2017), which EssNet uses for both directions.

MONAI has no such network, so it is written out here, following the reference layout:
c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf, u2ngf, ungf, c7s1-out, tanh.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from liversynth.config import EssNetConfig
from liversynth.models.weights import load_weights

__all__ = ["ResidualBlock", "ResnetGenerator", "load_generator"]


class ResidualBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        # Reflection padding rather than zeros avoids border artefacts in the synthesised images.
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.InstanceNorm2d(ch),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.InstanceNorm2d(ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator; output in [-1, 1] (tanh), same H x W as the input (H, W divisible by 4)."""

    def __init__(self, in_ch: int = 1, out_ch: int = 1, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        # Convolutions keep their bias: InstanceNorm without affine parameters does not supply one.
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, 7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ch * 2), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_ch, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def load_generator(path: Path, cfg: EssNetConfig, device: torch.device | None = None) -> ResnetGenerator:
    """A CT->MRI generator written by `save_weights` (1 channel in and out)."""
    generator = load_weights(ResnetGenerator(1, 1, cfg.ngf, cfg.n_blocks), path, device)
    assert isinstance(generator, ResnetGenerator)
    return generator
