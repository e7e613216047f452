"""The MONAI U-Net liver segmenter, built from `unet:` in params.yaml."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from liversynth.config import UNetConfig
from liversynth.models.weights import load_weights
from liversynth.runtime.device import pick_device

if TYPE_CHECKING:
    from monai.networks.nets import UNet

__all__ = ["build_unet", "load_unet"]


def build_unet(cfg: UNetConfig) -> "UNet":
    """2D U-Net, 1 input channel, 2 output classes (background, liver). MONAI is imported here, not at
    module level: it takes seconds, and stages that never build a U-Net should not pay them."""
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=cfg.channels,
                strides=cfg.strides, num_res_units=cfg.num_res_units)


def load_unet(path: Path, cfg: UNetConfig, device: torch.device | None = None) -> "UNet":
    """A U-Net written by `save_weights`, on `device` (the best available one by default)."""
    from monai.networks.nets import UNet

    model = load_weights(build_unet(cfg), path, device or pick_device())
    assert isinstance(model, UNet)
    return model
