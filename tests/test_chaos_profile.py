"""params-chaos.yaml, the paper's protocol on CHAOS: the profile validates, and its data path (the CHAOS
reader through `prepare`, as flows/prepare.py runs it, then the Great Expectations checks) works on a
CHAOS-layout folder built from the real TotalSegmentator test scans (tests/chaos_fixture.py), with
the profile scaled down to that folder's size. The Makefile's layout check and copy are tested on it too.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from liversynth.config import Params, check_file
from liversynth.data.prepare import prepare_dataset, to_network_slices
from liversynth.data.readers import Volume
from liversynth.data.readers.chaos import CHAOS_PARAMS
from liversynth.data.slice_set import SliceSet
from liversynth.data.validation import validate_prepared
from tests.chaos_fixture import CT_IDS, MR_IDS, TS_LIVER, Scan, write_chaos_fixture
from tests.conftest import REPO

PROFILE = REPO / "params-chaos.yaml"
SDIST = REPO / "data" / "downloads" / "totalsegmentator-2.18.0.tar.gz"
needs_sdist = pytest.mark.skipif(not SDIST.exists(), reason=f"{SDIST.relative_to(REPO)} not fetched (make data "
                                 "DATASET=real-sample fetches it, hash-checked)")
SMALL = 64  # the fixture's run: 64 px at 4 x the profile's spacing keeps its 409.6 mm field of view
SMALL_SPLITS = {"train": 1, "unlabelled": 1, "val": 1, "test": 2}  # the fixture's 5 MR patients


def test_profile_is_valid_and_is_the_paper_protocol_on_chaos() -> None:
    params = check_file(PROFILE)
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    data = params.data
    assert (data.dataset, data.mr_sequence, data.raw_dir, data.manifest) == ("chaos", "T2SPIR", "data/raw", None)
    assert data.liver_label == CHAOS_PARAMS["liver_label"] and data.label_values == CHAOS_PARAMS["label_values"]
    assert params.prepare.image_size == 256 and data.spacing_mm is not None
    assert params.prepare.image_size * data.spacing_mm >= 512 * 0.8  # the widest CHAOS CT field of view fits
    assert sum(params.prepare.mri_splits.values()) == 20  # CHAOS_Train_Sets: 20 MR patients, each used once
    essnet = params.essnet
    assert (essnet.n_blocks, essnet.ngf, essnet.ndf) == (9, 64, 64)  # ResNet-9 generators, 64-filter PatchGAN
    registration = {k: v for k, v in base["evaluate"].items() if k.startswith("primary_")}
    assert {k: getattr(params.evaluate, k) for k in registration} == registration
    assert params.evaluate.test_split_sha256 == ""  # registered by the user before reading test
    assert params.unet.labelled_patients == params.prepare.mri_splits["train"]  # every labelled MR patient
    assert len(params.essnet.seeds) == len(params.evaluate.seeds)  # generator randomness in the intervals
    assert set(yaml.safe_load(PROFILE.read_text())) == set(base)  # every section of params.yaml
    assert params.register.unet_name != base["register"]["unet_name"]  # never moves the phantom's champion


def _small_params(raw: Path) -> Params:
    """The profile as it is, but at the fixture's size (validated again by the schema)."""
    raw_yaml: dict[str, Any] = yaml.safe_load(PROFILE.read_text())
    spacing = raw_yaml["data"]["spacing_mm"] * raw_yaml["prepare"]["image_size"] / SMALL
    raw_yaml["data"].update(raw_dir=str(raw), spacing_mm=spacing)
    raw_yaml["prepare"].update(image_size=SMALL, mri_splits=SMALL_SPLITS)
    raw_yaml["unet"]["labelled_patients"] = SMALL_SPLITS["train"]
    raw_yaml["study"]["labelled_patients"] = [SMALL_SPLITS["train"]]
    raw_yaml["validate"]["min_slices"] = {"ct_train": 40, "mri_train": 4, "mri_val": 4, "mri_test": 8}
    return Params.model_validate(raw_yaml)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str], Scan]]:
    if not SDIST.exists():
        pytest.skip(f"{SDIST.relative_to(REPO)} not fetched (make data DATASET=real-sample fetches it)")
    root = tmp_path_factory.mktemp("chaos") / "CHAOS_Train_Sets"
    return root, write_chaos_fixture(SDIST, REPO / "data" / "real_sample.sha256", root)


def _expected(scan: Scan, modality: str, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """What prepare must make of a scan: its liver only, through the same geometry and normalisation."""
    liver = (scan.organs == TS_LIVER).astype(np.uint8)
    volume = Volume("x", modality, scan.image, liver, scan.spacing, Path("."))
    return to_network_slices(volume, params.prepare, params.data.spacing_mm)


@needs_sdist
def test_prepare_reads_the_chaos_layout_liver_only(chaos: tuple[Path, dict[tuple[str, str], Scan]],
                                                   tmp_path: Path) -> None:
    root, scans = chaos
    params = _small_params(root)
    manifest = prepare_dataset(params, Path(params.data.raw_dir), tmp_path / "prepared")
    splits = manifest["splits"]
    assert splits["ct_train"] == {"patients": sorted(CT_IDS.values()), "slices": 30 + 20}
    mr = [p for s in ("mri_train", "mri_unlabelled", "mri_val", "mri_test") for p in splits[s]["patients"]]
    assert sorted(mr) == sorted(MR_IDS.values()) and len(splits["mri_test"]["patients"]) == 2
    hidden = 0
    for split, entry in splits.items():
        modality = "ct" if split.startswith("ct") else "mri"
        prepared = SliceSet.load(tmp_path / "prepared" / split)
        assert prepared.images.shape == (entry["slices"], 1, SMALL, SMALL)
        assert prepared.labels.shape == (entry["slices"], SMALL, SMALL)
        start = 0
        for patient in entry["patients"]:
            image, label = _expected(scans[modality, patient], modality, params)
            rows = slice(start, start + len(label))
            np.testing.assert_array_equal(prepared.labels[rows], label)  # liver 63 / 255 only
            np.testing.assert_allclose(prepared.images[rows, 0], image, atol=1e-5)
            start += len(label)
            if modality == "mri":  # kidneys (126, 189) and spleen (252) are in the masks, not in the labels
                scan = scans[modality, patient]
                others = Volume("x", modality, scan.image, np.isin(scan.organs, (1, 2, 3)).astype(np.uint8),
                                scan.spacing, Path("."))
                _, other = to_network_slices(others, params.prepare, params.data.spacing_mm)
                assert not prepared.labels[rows][other == 1].any()
                hidden += int(other.sum())
        assert set(np.unique(prepared.labels)) <= {0, 1} and start == entry["slices"]
    assert hidden > 0  # the MR masks did hold kidneys and spleen
    report = validate_prepared(params, tmp_path / "prepared")
    assert report["success"] and report["n_slices"] == sum(s["slices"] for s in splits.values())


def _chaos_raw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "scripts" / "chaos_raw.sh"), *args], capture_output=True, text=True, cwd=REPO)


@needs_sdist
def test_make_checks_the_layout_and_copies_it_for_dvc(chaos: tuple[Path, dict[tuple[str, str], Scan]],
                                                       tmp_path: Path) -> None:
    root, _ = chaos
    raw = tmp_path / "data" / "raw"
    ok = _chaos_raw("check", str(root), str(raw))
    assert ok.returncode == 0 and "2 CT and 5 MR patients" in ok.stdout
    for bad, why in (("", "CHAOS_DIR is not set"), (str(tmp_path / "nope"), "no such folder"),
                     (str(REPO / "src"), "not a CHAOS layout, no CT/ folder")):
        refused = _chaos_raw("check", bad, str(raw))
        assert refused.returncode == 1 and why in refused.stderr
    assert _chaos_raw("copy", str(root), str(raw)).returncode == 0
    assert not raw.is_symlink() and sorted(p.name for p in raw.iterdir()) == ["CT", "MR", "SOURCE.md"]
    assert _expected_files(raw) == _expected_files(root)
    again = _chaos_raw("copy", str(root), str(raw))
    assert again.returncode == 0 and "already a copy" in again.stdout
    assert _chaos_raw("release", str(raw)).returncode == 0 and not raw.exists() and root.is_dir()


def _expected_files(root: Path) -> list[tuple[str, bytes]]:
    return sorted((str(p.relative_to(root)), p.read_bytes()) for p in root.rglob("*") if p.is_file()
                  and p.name != "SOURCE.md")
