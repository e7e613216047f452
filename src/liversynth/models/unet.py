"""The liver segmenter U-Net, built from `unet:` in params.yaml: MONAI's residual UNet, reproduced exactly in
plain torch (liversynth.models.seg_unet), so stages that train or load one start without MONAI's seconds of
import and weights saved from MONAI's class load unchanged."""
from __future__ import annotations

from pathlib import Path

import torch

from liversynth.config import UNetConfig
from liversynth.models.seg_unet import SegUNet
from liversynth.models.weights import load_weights
from liversynth.runtime.device import pick_device

__all__ = ["build_unet", "load_unet"]


def build_unet(cfg: UNetConfig) -> SegUNet:
    """2D U-Net, 1 input channel, 2 output classes (background, liver): MONAI's
    `UNet(spatial_dims=2, in_channels=1, out_channels=2, channels, strides, num_res_units)`."""
    return SegUNet(1, 2, cfg.channels, cfg.strides, num_res_units=cfg.num_res_units)


def load_unet(path: Path, cfg: UNetConfig, device: torch.device | None = None) -> SegUNet:
    """A U-Net written by `save_weights`, on `device` (the best available one by default)."""
    model = load_weights(build_unet(cfg), path, device or pick_device())
    assert isinstance(model, SegUNet)
    return model
