"""K U-Net seeds trained as one batched model: each member is train_unet(seed=s), runs are reproducible."""
from __future__ import annotations


import pytest
import torch

from benchmarks.unet_ensemble import member_batches, train_unet_ensemble
from liversynth.config import UNetConfig
from liversynth.training.unet import MixedSampler, augment, train_unet
from tests.conftest import blob_slices

# Tiny but complete: 2 evaluations, synthetic mixing with annealing, residual units, instance norm, PReLU.
CFG = UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1, steps=4, batch_size=4, lr=3e-3,
                 eval_every=2, synthetic_anneal=0.7)
SEEDS = [0, 5]
# Batched (grouped) convolutions sum in another order, so members match separate trainings to rounding.
# Measured at 2 threads, 6-30 steps: weights that matter within ~1e-5, logits within ~3e-5. The biases of
# convolutions that feed an InstanceNorm have a true gradient of 0 (the norm subtracts them), so Adam
# turns rounding noise into lr-sized steps there (up to ~8e-3): they do not change the output.
ATOL = 2e-4


@pytest.fixture(scope="module")
def data():
    return blob_slices(24, seed=1), blob_slices(16, seed=3, prefix="s"), blob_slices(4, seed=2, prefix="v")


@pytest.fixture(scope="module")
def ensemble(data):
    real, syn, val = data
    return train_unet_ensemble(real, syn, 1.0, CFG, SEEDS, val=val, progress=False)


def _norm_cancelled(model: torch.nn.Module) -> set[str]:
    """Biases of convolutions followed by an InstanceNorm: they cancel in the output."""
    return {f"{name}.conv.bias" for name, mod in model.named_modules()
            if isinstance(getattr(getattr(mod, "adn", None), "N", None), torch.nn.InstanceNorm2d)}


def _max_diff(a: torch.nn.Module, b: torch.nn.Module, skip: set[str] = frozenset()) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa if k not in skip)


def _logit_diff(a: torch.nn.Module, b: torch.nn.Module, images) -> float:
    with torch.no_grad():
        x = torch.as_tensor(images)
        return float((a(x) - b(x)).abs().max())


def test_member_batches_are_train_unets_batches(data):
    real, syn, _ = data
    sampler = MixedSampler(real, syn, 1.0, torch.device("cpu"))
    gens, refs = [torch.Generator().manual_seed(s) for s in SEEDS], [torch.Generator().manual_seed(s) for s in SEEDS]
    for _ in range(2):
        x, y = member_batches(sampler, 4, gens)
        for k, ref in enumerate(refs):
            rx, ry = augment(*sampler.sample(4, ref), ref)
            torch.testing.assert_close(x[k], rx, atol=1e-6, rtol=0)
            assert torch.equal(y[k], ry)


def test_each_member_matches_a_separate_training(data, ensemble):
    real, syn, val = data
    members = ensemble
    assert len(members) == len(SEEDS)
    for seed, member in zip(SEEDS, members):
        alone = train_unet(real, syn, 1.0, CFG, seed=seed, val=val, progress=False)
        skip = _norm_cancelled(alone.model)
        assert len(skip) >= 4
        assert _max_diff(member.model, alone.model, skip) < ATOL, seed
        assert _logit_diff(member.model, alone.model, val.images) < ATOL, seed
        assert [r["step"] for r in member.history] == [r["step"] for r in alone.history] == [2, 4]
        for a, b in zip(member.history, alone.history):
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
        assert not member.model.training


def test_initial_weights_are_train_unets(data):
    real, _, _ = data
    cfg = CFG.model_copy(update={"steps": 1, "eval_every": 1, "lr": 0.0})  # lr 0: weights stay at init
    members = train_unet_ensemble(real, None, 0.0, cfg, SEEDS, progress=False)
    for seed, member in zip(SEEDS, members):
        alone = train_unet(real, None, 0.0, cfg, seed=seed, progress=False)
        assert _max_diff(member.model, alone.model) == 0.0


def test_two_runs_are_bitwise_identical_and_resume_exactly(data, ensemble, tmp_path):
    """A second run, killed after its first checkpoint and resumed, ends bitwise where the first did."""
    real, syn, val = data

    def kill_at_4(seed: int, step: int, row: dict) -> None:
        if step == 4:
            raise KeyboardInterrupt
    ckpt = tmp_path / "ens.pt"
    with pytest.raises(KeyboardInterrupt):
        train_unet_ensemble(real, syn, 1.0, CFG, SEEDS, val=val, progress=False, checkpoint=ckpt, on_eval=kill_at_4)
    seen: list[tuple[int, int]] = []
    resumed = train_unet_ensemble(real, syn, 1.0, CFG, SEEDS, val=val, progress=False, checkpoint=ckpt,
                                  on_eval=lambda seed, step, row: seen.append((seed, step)))
    assert seen == [(s, 4) for s in SEEDS]  # only the new evaluation
    for a, b in zip(ensemble, resumed):
        assert b.resumed_from == 2
        assert _max_diff(a.model, b.model) == 0.0 and a.history == b.history
