"""The MONAI U-Net liver segmenter, built from `unet:` in params.yaml."""
from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets import UNet

from liversynth.config import UNetConfig
from liversynth.models.weights import load_weights
from liversynth.runtime.device import pick_device

__all__ = ["build_unet", "load_unet"]


def build_unet(cfg: UNetConfig) -> UNet:
    """2D U-Net, 1 input channel, 2 output classes (background, liver)."""
    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=cfg.channels,
                strides=cfg.strides, num_res_units=cfg.num_res_units)


def load_unet(path: Path, cfg: UNetConfig, device: torch.device | None = None) -> UNet:
    """A U-Net written by `save_weights`, on `device` (the best available one by default)."""
    model = load_weights(build_unet(cfg), path, device or pick_device())
    assert isinstance(model, UNet)
    return model
