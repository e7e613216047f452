"""A tiny U-Net that really finds a bright 'liver' box in raw MRI-like volumes, registered like the pipeline does.

Trained once per session (seconds) on volumes run through the same preprocessing as `segment`, so
its masks on new scans are predictable: the box comes back where it was drawn.
"""
from __future__ import annotations

import functools
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient

from liversynth.config import EssNetConfig, PrepareConfig, UNetConfig
from liversynth.data.prepare import to_network_slices
from liversynth.data.readers.base import Volume
from liversynth.data.slice_set import SliceSet
from liversynth.inference.pyfunc import log_pyfunc
from liversynth.inference.spec import ModelSpec
from liversynth.models.generator import ResnetGenerator
from liversynth.tracking.registry import CHAMPION, UNIT_TAG
from liversynth.training.unet import train_unet

TINY = UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1, steps=80, batch_size=8, lr=3e-3,
                  eval_every=40, synthetic_anneal=0.0)
PREP = PrepareConfig(image_size=32)
TINY_ESSNET = EssNetConfig(ngf=4, n_blocks=1)


def box_volume(seed: int, shape: tuple[int, int, int] = (6, 40, 36),
               box: tuple[slice, slice] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Display (Z, H, W) raw MRI-like volume (scanner units ~100) with a bright box, and its mask."""
    rng = np.random.default_rng(seed)
    z, h, w = shape
    image = rng.normal(100.0, 8.0, shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    if box is None:
        r, c = int(rng.integers(2, h // 2)), int(rng.integers(2, w // 2))
        box = (slice(r, r + h // 3), slice(c, c + w // 3))
    label[:, box[0], box[1]] = 1
    image[label == 1] += 150.0
    return image, label


def unet_spec(**kw) -> ModelSpec:
    return ModelSpec.for_unet(PREP, None, TINY, **kw)


def train_box_unet() -> torch.nn.Module:
    """A fresh copy of the session's one trained box U-Net."""
    from liversynth.models.unet import build_unet

    model = build_unet(TINY)
    model.load_state_dict(_box_unet_weights())
    return model.eval()


@functools.lru_cache(maxsize=1)
def _box_unet_weights() -> dict:
    images, labels, pids = [], [], []
    for k in range(16):
        img, lab = box_volume(k, (4, 40, 36) if k % 2 else (4, 48, 30))
        x, y = to_network_slices(Volume(f"p{k}", "mri", img, lab, (2.0, 1.0, 1.0), Path()), PREP, None)
        images.append(x[:, None])
        labels.append(y)
        pids += [f"p{k}"] * len(y)
    data = SliceSet(np.concatenate(images).astype(np.float32), np.concatenate(labels), np.array(pids))
    torch.manual_seed(0)
    result = train_unet(data, None, 0.0, TINY, seed=0, val=data, progress=False)
    assert result.best_val_iou > 0.6, result.history
    return {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}


def register(module: torch.nn.Module, spec: ModelSpec, name: str = "liversynth-unet", unit: str = "u",
             champion: bool = True) -> str:
    """Log as the register stage does (pyfunc + weights), register with a unit tag, optionally champion."""
    example = box_volume(0, (2, 40, 36))[0] if spec.kind == "unet" else np.full((2, 32, 32), 40.0, np.float32)
    with mlflow.start_run():
        info = log_pyfunc(module, spec, example, (1.0, 1.0), "model")
    version = str(mlflow.register_model(info.model_uri, name, tags={UNIT_TAG: unit}).version)
    if champion:
        MlflowClient().set_registered_model_alias(name, CHAMPION, version)
    return version


def tiny_generator() -> torch.nn.Module:
    torch.manual_seed(0)
    return ResnetGenerator(1, 1, TINY_ESSNET.ngf, TINY_ESSNET.n_blocks).eval()
