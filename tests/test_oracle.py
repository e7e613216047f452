"""The oracle translation (data/oracle.py) and translation fidelity against it (synthesis/fidelity.py)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from liversynth.config import check_file
from liversynth.data.oracle import oracle_for, oracle_slices
from liversynth.data.phantom import write_phantom
from liversynth.data.prepare import prepare_dataset
from liversynth.data.slice_set import SliceSet, translation_mri
from liversynth.synthesis.fidelity import FIDELITY_KEYS, fidelity, generator_fidelity
from liversynth.training.essnet import train_essnet

TINY = Path(__file__).parent / "tiny_params.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    params = check_file(TINY)
    root = tmp_path_factory.mktemp("oracle")
    write_phantom(params.phantom, root / "raw")
    prepare_dataset(params, root / "raw", root / "prepared")
    return params, root / "prepared"


def test_oracle_keeps_ct_labels_slice_for_slice(tiny):
    params, prepared = tiny
    ct = SliceSet.load(prepared / "ct_train")
    oracle = oracle_for(ct, params.phantom, params.prepare, params.data.spacing_mm)
    assert oracle.images.shape == ct.images.shape
    np.testing.assert_array_equal(oracle.labels, ct.labels)
    np.testing.assert_array_equal(oracle.patients, ct.patients)
    # Liver pixels of the label are liver (or its vessels/lesions) in the tissue map, never background.
    assert (oracle.tissue[oracle.labels == 1] > 0).all()
    # A held-out subset of CT patients is aligned too.
    sub = ct.select(np.isin(ct.patients, ct.patient_ids()[1:3]))
    np.testing.assert_array_equal(oracle_for(sub, params.phantom, params.prepare).labels, sub.labels)


def test_oracle_intensities_match_prepared_mri(tiny):
    params, prepared = tiny
    oracle = oracle_slices(params.phantom, params.prepare)
    mri = np.asarray(SliceSet.load(prepared / "mri_train").images)
    assert oracle.images.min() == pytest.approx(-1.0) and oracle.images.max() == pytest.approx(1.0)
    assert mri.min() == pytest.approx(-1.0) and mri.max() == pytest.approx(1.0)
    # Same normalisation: a similar share of body pixels above the middle of the range.
    o, m = oracle.images[oracle.images > -0.99], mri[mri > -0.99]
    assert abs(np.median(o) - np.median(m)) < 0.35
    # And not the CT's contrast: fat (tissue 1) is bright on MRI, dark on CT.
    ct = np.asarray(SliceSet.load(prepared / "ct_train").images)
    fat = oracle.tissue == 1
    assert oracle.images[:, 0][fat].mean() > ct[:, 0][fat].mean() + 0.5


def test_oracle_is_deterministic_and_differs_from_the_mri_cohort(tiny):
    params, _ = tiny
    a = oracle_slices(params.phantom, params.prepare)
    b = oracle_slices(params.phantom, params.prepare)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.tissue, b.tissue)
    with pytest.raises(ValueError, match="ct999"):
        oracle_slices(params.phantom, params.prepare, ["ct999"])


def test_fidelity_identical_and_noise_lowers_ssim_monotonically(tiny):
    params, prepared = tiny
    oracle = oracle_slices(params.phantom, params.prepare)
    same = fidelity(oracle.images.copy(), oracle)
    assert same["ssim"] == pytest.approx(1.0) and same["mae"] == 0.0 and same["contrast_rank"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, oracle.images.shape).astype(np.float32)
    scores = [fidelity(np.clip(oracle.images + s * noise, -1, 1), oracle) for s in (0.02, 0.1, 0.3)]
    assert scores[0]["ssim"] > scores[1]["ssim"] > scores[2]["ssim"]
    assert scores[0]["psnr"] > scores[1]["psnr"] > scores[2]["psnr"]
    assert scores[0]["mae"] < scores[1]["mae"] < scores[2]["mae"]
    # The prepared CT is the untranslated input: its tissue contrast order is not the MRI's.
    ct = SliceSet.load(prepared / "ct_train")
    raw = fidelity(ct, oracle)
    assert raw["contrast_rank"] < 0.9 and raw["ssim"] < scores[0]["ssim"]
    # Misaligned input is an error, not a number.
    with pytest.raises(ValueError, match="aligned"):
        fidelity(oracle.images[1:], oracle)


def test_fidelity_is_fast_at_one_thread():
    params = check_file(TINY)
    phantom = params.phantom.model_copy(update={"n_ct": 4, "size": 64, "slices": 16})
    prepare = params.prepare.model_copy(update={"image_size": 64})
    oracle = oracle_slices(phantom, prepare)
    assert len(oracle) == 64
    fake = np.roll(oracle.images, 2, axis=-1)
    start = time.perf_counter()
    fidelity(fake, oracle)
    assert time.perf_counter() - start < 1.0


def test_fidelity_at_checkpoints_leaves_training_unchanged_and_survives_resume(tiny, tmp_path):
    params, prepared = tiny
    ct = SliceSet.load(prepared / "ct_train")
    mri = translation_mri(prepared)
    oracle = oracle_for(ct, params.phantom, params.prepare)
    cfg = params.essnet.model_copy(update={"steps": 4, "checkpoint_every": 2})
    cpu = torch.device("cpu")

    def probe(step: int, model) -> dict[str, float]:
        return generator_fidelity(model.g_ct2mri, ct, oracle)

    plain = train_essnet(ct, mri, cfg, seed=0, checkpoint=tmp_path / "a.pt", device=cpu)
    probed = train_essnet(ct, mri, cfg, seed=0, checkpoint=tmp_path / "b.pt", device=cpu, on_checkpoint=probe)
    a, b = plain.model.state_dict(), probed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [p["step"] for p in probed.checkpoints] == [2, 4] and plain.checkpoints == []
    assert all(set(FIDELITY_KEYS) <= set(p) for p in probed.checkpoints)

    def crash(step: int, _: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_essnet(ct, mri, cfg, seed=0, checkpoint=tmp_path / "c.pt", device=cpu, on_checkpoint=probe,
                     on_log=crash, log_every=1)
    resumed = train_essnet(ct, mri, cfg, seed=0, checkpoint=tmp_path / "c.pt", device=cpu, on_checkpoint=probe)
    assert resumed.resumed_from == 2 and resumed.checkpoints == probed.checkpoints
