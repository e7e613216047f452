"""Issue 22's translator knobs and the benchmark table's bookkeeping (no training: cheap checks)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.summary import isa, write_summary
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


def _train(name: str, date: str, machine: dict) -> dict:
    return {"name": name, "unit": "steps/s", "optimised": 2.0, "baseline": 1.0, "ratio": 2.0, "machine": machine,
            "date": date}


def test_summary_puts_each_cpu_and_isa_in_its_own_section_newest_first(tmp_path: Path) -> None:
    avx2 = {"cpu": "AMD EPYC", "isa": "avx2,fma", "threads": "1"}  # the runtime's record: the ISA as `isa`
    avx512 = {"cpu": "x86_64", "cpu_model": "AMD EPYC", "cpu_flags": ["avx2", "avx512_bf16", "avx512f"], "cores": 2}
    cell = {"steps_per_cell": 9, "ratio": 1.5, "sequential": {"threads": 2, "cells_per_s": 0.05, "peak_rss_mb": 7},
            "grid": {"workers": 2, "threads": 1, "cells_per_s": 0.1, "peak_rss_mb": 7}}
    files = {"startup": {"name": "startup", "unit": "s", "python_bare_s": 0.25, "cpu": "AMD EPYC", "isa": "avx2,fma",
                         "machine": {"cpu_model": "AMD EPYC", "cpu_flags": ["avx2"]}, "date": "2026-12-03 16:00:00"},
             "essnet_train": _train("essnet_train", "2026-12-03 09:00:00", avx2),
             "unet_train": _train("unet_train", "2026-12-01 07:00:00", avx512),
             "grid": {"name": "grid", "k": 4, "generator": cell, "unet": cell, "machine": avx512, "date": "2026-12-01"},
             "synthesis": _train("synthesis", "2026-11-25", {"cpu_model": "AMD EPYC"})}  # ISA not recorded
    for name, r in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(r))
    text = write_summary(tmp_path)
    assert text == (tmp_path / "summary.md").read_text()
    here, *others = text.split("\n### ")
    assert here.startswith("### This CPU: AMD EPYC (avx2")  # the newest result's machine, named once at the top
    assert [part.split("\n")[0] for part in others] == [
        "Other machine: AMD EPYC (avx512_bf16), 2026-12-01; not comparable with the tables above",
        "Other machine: AMD EPYC (ISA not recorded), 2026-11-25; not comparable with the tables above"]
    assert "| essnet_train (steps/s) | 2.00 | 1.00 | 2.00x |" in here and "| python bare | 0.25 |" in here
    assert "unet_train" not in here and "synthesis" not in here and "cells/s grid" not in here
    assert "not run on this CPU yet: `python -m benchmarks.grid`" in here
    assert here.count("not run on this CPU yet") == 3  # time to quality, ensembles, grid: one line, no empty table
    assert "| unet_train (steps/s)" in others[0] and "cells/s grid" in others[0] and "essnet_train" not in others[0]
    assert "| synthesis (steps/s)" in others[1] and "not run" not in others[0] + others[1]


def test_isa_class_from_either_record() -> None:
    assert isa({"machine": {"cpu_flags": ["avx2", "amx_bf16", "avx512_bf16"]}}) == "amx"
    assert isa({"machine": {"isa": "avx2,avx512f,avx512_bf16,fma"}}) == "avx512_bf16"
    assert isa({"cpu": "AMD EPYC", "isa": "avx2,fma", "machine": {}}) == "avx2"
    assert isa({"machine": {"cpu_model": "Xeon"}}) == "ISA not recorded"
