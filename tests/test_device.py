"""Device helpers: opt-in CPU bf16 autocast and host->device batch copies."""
from __future__ import annotations


import numpy as np
import torch

from liversynth.config import EssNetConfig, UNetConfig
from liversynth.runtime.device import autocast, to_device
from liversynth.training.unet import train_unet
from liversynth.training.essnet import fingerprint
from tests.conftest import blob_slices

CPU = torch.device("cpu")


def test_to_device_copies_a_read_only_memory_map(tmp_path) -> None:
    np.save(tmp_path / "a.npy", np.arange(12, dtype=np.float64).reshape(3, 4))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    x = to_device(mapped[1:], CPU)
    assert x.dtype == torch.float32 and x.shape == (2, 4) and x[0, 0] == 4.0
    x += 1  # a copy: writing never touches the (read-only) file
    assert mapped[1, 0] == 4.0


def test_cpu_autocast_is_fp32_unless_asked() -> None:
    conv, x = torch.nn.Conv2d(1, 2, 3), torch.randn(1, 1, 8, 8)
    with autocast(CPU):
        assert conv(x).dtype == torch.float32
    with autocast(CPU, cpu_bf16=True):
        assert conv(x).dtype == torch.bfloat16


def test_unet_trains_in_cpu_bf16() -> None:
    cfg = UNetConfig(channels=(8, 16), strides=(2,), num_res_units=1, steps=4, batch_size=4, eval_every=2)
    result = train_unet(blob_slices(16), None, 0.0, cfg, seed=0, progress=False, cpu_bf16=True)
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["train_loss"])


def test_bf16_essnet_checkpoints_are_not_resumed_as_fp32() -> None:
    ct = blob_slices(8)
    cfg = EssNetConfig().model_copy(update={"steps": 2})
    assert fingerprint(cfg, 0, ct, ct.images) != fingerprint(cfg, 0, ct, ct.images, cpu_bf16=True)
    assert fingerprint(cfg, 0, ct, ct.images) == fingerprint(cfg, 0, ct, ct.images, cpu_bf16=False)
