"""EssNet networks, training (incl. resume after a crash) and synthesis, on tiny CPU configs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liversynth.config import EssNetConfig
from liversynth.models.discriminator import PatchDiscriminator
from liversynth.models.essnet import EssNet, ImagePool
from liversynth.models.generator import ResnetGenerator
from liversynth.data.slice_set import SliceSet
from liversynth.synthesis.quality import cycle_metrics, histogram_wasserstein
from liversynth.synthesis.translate import synthesize
from liversynth.models.weights import save_weights
from liversynth.models.generator import load_generator
from liversynth.training.essnet import train_essnet

CPU = torch.device("cpu")
TINY = EssNetConfig(
    steps=3, batch_size=2, ngf=8, n_blocks=2, ndf=8, seg_channels=(4, 8), pool_size=3, checkpoint_every=2
)


def _data(size: int = 32) -> tuple[SliceSet, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    liver = ((yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 4) ** 2).astype(np.uint8)
    ct = np.where(liver, 0.3, -0.2) + 0.05 * rng.standard_normal((6, 1, size, size))
    mri = np.where(liver, -0.4, 0.5) + 0.05 * rng.standard_normal((5, 1, size, size))
    labels = np.repeat(liver[None], 6, axis=0)
    patients = np.array(["ct-a"] * 3 + ["ct-b"] * 3)
    return SliceSet(ct.clip(-1, 1).astype(np.float32), labels, patients), mri.clip(-1, 1).astype(np.float32)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("size", [64, 256])
def test_generator_keeps_size_and_range(size: int) -> None:
    out = ResnetGenerator(ngf=4, n_blocks=1)(torch.randn(1, 1, size, size))
    assert out.shape == (1, 1, size, size)
    assert out.abs().max() <= 1


def test_patchgan_gives_patch_map() -> None:
    assert PatchDiscriminator(ndf=4)(torch.randn(2, 1, 64, 64)).shape == (2, 1, 6, 6)
    assert PatchDiscriminator(ndf=4)(torch.randn(2, 1, 256, 256)).shape == (2, 1, 30, 30)


def test_image_pool_fills_then_mixes_history() -> None:
    pool = ImagePool(4, torch.Generator().manual_seed(0))
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as given
    second = torch.arange(10.0, 16.0).view(6, 1, 1, 1)
    out = pool.query(second)
    assert out.shape == second.shape and pool.count == 4
    assert torch.equal(out[0], second[0])  # took the last free slot
    stored = set(pool.buffer.flatten().tolist())
    # Every output is either the new fake or one that was in the pool; nothing is lost or invented.
    assert set(out.flatten().tolist()) | stored == set(range(3)) | set(range(10, 16))
    assert torch.equal(ImagePool(0).query(first), first)  # size 0: pool disabled


def test_image_pool_state_roundtrip() -> None:
    pool = ImagePool(2, torch.Generator().manual_seed(0))
    pool.query(torch.ones(2, 1, 2, 2))
    other = ImagePool(2)
    other.load_state_dict(pool.state_dict())
    assert other.count == 2 and torch.equal(other.buffer, pool.buffer)


def test_training_step_losses_finite(tmp_path: Path) -> None:
    ct, mri = _data()
    logs: list[tuple[int, dict]] = []
    result = train_essnet(
        ct, mri, TINY, seed=0, checkpoint=tmp_path / "c.pt", device=CPU,
        on_log=lambda s, l: logs.append((s, l)), log_every=2,
    )
    assert result.steps_done == 3 and result.resumed_from == 0 and not result.model.training
    assert [h["step"] for h in result.history] == [2, 3] == [s for s, _ in logs]
    for entry in result.history:
        assert set(entry) == {"step", "g_adv", "cycle", "seg", "d", "total"}
        assert all(np.isfinite(v) for v in entry.values())
    assert result.history[-1]["seg"] > 0


def test_lambda_seg_zero_is_plain_cyclegan(tmp_path: Path) -> None:
    ct, mri = _data()
    cfg = EssNetConfig(**{**TINY.__dict__, "lambda_seg": 0.0})
    torch.manual_seed(0)
    initial = _weights(EssNet(cfg).segmenter)
    result = train_essnet(ct, mri, cfg, seed=0, checkpoint=tmp_path / "c.pt", device=CPU)
    after = _weights(result.model.segmenter)
    assert all(torch.equal(initial[k], after[k]) for k in initial)
    assert all(h["seg"] == 0 for h in result.history)
    torch.manual_seed(0)
    g_before = _weights(EssNet(cfg).g_ct2mri)
    assert any(not torch.equal(g_before[k], v) for k, v in _weights(result.model.g_ct2mri).items())
    # Control: with the segmentation loss on, the segmenter does train.
    seg_on = train_essnet(ct, mri, TINY, seed=0, checkpoint=tmp_path / "d.pt", device=CPU)
    assert any(not torch.equal(initial[k], v) for k, v in _weights(seg_on.model.segmenter).items())


def test_resume_after_crash_matches_uninterrupted_run(tmp_path: Path) -> None:
    ct, mri = _data()
    cfg = EssNetConfig(**{**TINY.__dict__, "steps": 5})
    straight = train_essnet(ct, mri, cfg, seed=1, checkpoint=tmp_path / "a.pt", device=CPU, log_every=1)

    def crash(step: int, _: dict) -> None:
        if step == 3:  # after the step-2 checkpoint, before the next one: like a kill -9
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_essnet(ct, mri, cfg, seed=1, checkpoint=tmp_path / "b.pt", device=CPU, on_log=crash, log_every=1)
    resumed = train_essnet(ct, mri, cfg, seed=1, checkpoint=tmp_path / "b.pt", device=CPU, log_every=1)
    assert resumed.resumed_from == 2 and resumed.steps_done == 5
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5]
    a, b = _weights(straight.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # A finished run is not retrained; another seed does not reuse the checkpoint.
    assert train_essnet(ct, mri, cfg, seed=1, checkpoint=tmp_path / "b.pt", device=CPU).resumed_from == 5
    other = EssNetConfig(**{**cfg.__dict__, "steps": 1})
    assert train_essnet(ct, mri, other, seed=2, checkpoint=tmp_path / "b.pt", device=CPU).resumed_from == 0


def test_synthesis_keeps_labels_patients_and_range(tmp_path: Path) -> None:
    ct, _ = _data()
    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=4, n_blocks=1)
    save_weights(generator, tmp_path / "g.pt")
    loaded = load_generator(tmp_path / "g.pt", EssNetConfig(ngf=4, n_blocks=1))
    syn = synthesize(loaded, ct, batch_size=4, device=CPU)
    assert syn.images.shape == ct.images.shape and syn.images.dtype == np.float32
    assert syn.images.min() >= -1 and syn.images.max() <= 1
    np.testing.assert_array_equal(syn.labels, ct.labels)
    np.testing.assert_array_equal(syn.patients, ct.patients)
    with torch.no_grad():
        expected = generator(torch.from_numpy(ct.images)).numpy()
    # The same generator on other batch shapes: the CPU's kernels (oneDNN picks them per ISA and shape)
    # may round differently in the last bits, so equal up to float32 noise, never bit for bit. A wrong
    # or untrained generator would be off by tenths.
    np.testing.assert_allclose(syn.images, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(syn.images, ct.images, atol=1e-2)  # it did translate


def test_cycle_metrics_and_histogram_distance() -> None:
    ct, mri = _data()
    model = EssNet(EssNetConfig(ngf=4, n_blocks=1, ndf=4, seg_channels=(4, 8)))
    # Identity generators give a perfect cycle (the inputs are already in [-1, 1]).
    model.g_ct2mri = model.g_mri2ct = torch.nn.Identity()
    m = cycle_metrics(model, ct, mri, batch_size=4, device=CPU)
    assert set(m) == {f"{d}_cycle_{k}" for d in ("ct", "mri") for k in ("mae", "psnr", "ssim")}
    assert m["ct_cycle_mae"] == 0 and m["mri_cycle_ssim"] == pytest.approx(1.0, abs=1e-4)
    assert m["ct_cycle_psnr"] > 80
    assert histogram_wasserstein(mri, mri) == 0
    assert histogram_wasserstein(mri, np.clip(mri + 0.2, -1, 1)) > 0.1
