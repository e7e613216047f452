"""Issue 22's translator knobs and the benchmark table's bookkeeping (no training: cheap checks)."""
from __future__ import annotations

import numpy as np

from benchmarks.summary import machine_key, split_by_machine
from benchmarks.time_to_quality import first_reaching
from liversynth.config import EssNetConfig
from liversynth.data.slice_set import SliceSet
from liversynth.training.essnet import fingerprint, lr_factor


def test_lr_factor_holds_then_decays_linearly_to_zero() -> None:
    assert [lr_factor(s, 10, 1.0) for s in (1, 5, 10)] == [1.0, 1.0, 1.0]  # 1.0: constant
    shares = [lr_factor(s, 10, 0.5) for s in range(1, 11)]
    assert shares[:5] == [1.0] * 5
    assert all(a > b for a, b in zip(shares[5:], shares[6:]))  # strictly falling after the half
    assert 0 < shares[-1] <= 0.2


def _data() -> tuple[SliceSet, np.ndarray]:
    rng = np.random.default_rng(0)
    ct = SliceSet(rng.random((2, 1, 8, 8), np.float32), np.zeros((2, 8, 8), np.uint8), np.array(["a", "a"]))
    return ct, rng.random((2, 1, 8, 8), np.float32)


def test_new_keys_at_their_defaults_keep_earlier_fingerprints_and_change_them_when_set() -> None:
    ct, mri = _data()
    cfg = EssNetConfig()
    base = fingerprint(cfg, 0, ct, mri)
    assert fingerprint(cfg.model_copy(update={"steps": 900}), 0, ct, mri) == base  # constant lr: resumable
    decayed = cfg.model_copy(update={"lr_decay_from": 0.5})
    assert fingerprint(decayed, 0, ct, mri) != base
    # With a decay the step count shapes the trajectory, so a longer run must not resume a shorter one.
    assert fingerprint(decayed.model_copy(update={"steps": 900}), 0, ct, mri) != fingerprint(decayed, 0, ct, mri)
    assert fingerprint(cfg.model_copy(update={"seg_every": 2}), 0, ct, mri) != base


def test_first_reaching_is_the_first_snapshot_at_the_target() -> None:
    points = [{"cpu_s": 1.0, "ssim": 0.1}, {"cpu_s": 2.0, "ssim": 0.3}, {"cpu_s": 3.0, "ssim": 0.2}]
    assert first_reaching(points, 0.25) == 2.0
    assert first_reaching(points, 0.5) is None


def test_main_table_keeps_one_cpu_and_isa() -> None:
    avx2 = {"cpu_model": "AMD EPYC", "cpu_flags": ["avx2", "fma"]}
    avx512 = {"cpu_model": "AMD EPYC", "cpu_flags": ["avx2", "avx512f", "avx512_bf16"]}
    rows = {"a": {"machine": avx2}, "b": {"machine": avx512}, "c": {"machine": {"cpu_model": "Xeon"}}}
    here, other = split_by_machine(rows, machine_key(avx2))
    assert list(here) == ["a"]
    assert sorted(n for group in other.values() for n in group) == ["b", "c"]
    assert len(other) == 2  # the two EPYCs differ by ISA, not by name
