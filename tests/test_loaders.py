"""Every loader gives the same display-orientation volume, whatever the layout, file order or storage.

CHAOS (DICOM + PNG masks, names shuffled against anatomy), NIfTI pairs in several voxel orders and
spacings with a configurable liver value, plain and JPEG 2000 DICOM series, the in-plane resampling,
the split manifest, and the real-sample conversion (when its archive has been fetched).
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from liversynth.data.readers.chaos import CHAOS_PARAMS, ChaosReader
from liversynth.config import DataConfig, Params, PrepareConfig, UNetConfig
from liversynth.data.readers.dicom_series import read_dicom_series
from liversynth.data.split_manifest import read_split_manifest
from liversynth.data.prepare import prepare_dataset
from liversynth.data.readers import RawDataError, Volume, read_patient, reader_for
from liversynth.data.resample import to_common_grid
from liversynth.data.phantom import holds_phantom
from liversynth.data.slice_set import SliceSet
from tests.conftest import REPO
from tests.raw_data import blob_patient, write_nifti_dataset, write_pair, write_png, write_series

ROWS, COLS, SLICES = 10, 14, 5  # non-square, so a row/column mix-up cannot pass


def _anatomy() -> tuple[np.ndarray, np.ndarray]:
    """HU volume whose every slice is identifiable (value = 100 * z) with a corner marker, and
    a liver mask whose area grows with z, so slices and masks can only match one way."""
    hu = np.repeat((100.0 * np.arange(SLICES))[:, None, None], ROWS, 1).repeat(COLS, 2)
    hu[:, 0, 0] = 2000.0  # the patient's anterior-right corner
    liver = np.zeros(hu.shape, np.uint8)
    for z in range(SLICES):
        liver[z, 1 : 3 + z, 1:6] = 1
    return hu.astype(np.float32), liver


def _shuffled_names(pattern: str, seed: int) -> list[str]:
    order = np.random.default_rng(seed).permutation(SLICES)
    names = [pattern.format(int(k)) for k in order]
    assert names != sorted(names)  # file-name order disagrees with anatomy
    return names


def _write_chaos(root: Path, mr_sequence: str = "T2SPIR") -> tuple[np.ndarray, np.ndarray]:
    hu, liver = _anatomy()
    ct = root / "CT" / "1"
    names = _shuffled_names("i{:04d},0000b.dcm", seed=1)
    write_series(ct / "DICOM_anon", hu, names)
    by_name = sorted(range(SLICES), key=lambda z: names[z])  # CHAOS pairs CT masks by name rank
    for rank, z in enumerate(by_name):
        write_png(ct / "Ground" / f"liver_GT_{rank:03d}.png", liver[z] * 255)
    sequence, _, phase = mr_sequence.partition("/")
    mr = root / "MR" / "2" / sequence
    names = _shuffled_names("IMG-0004-{:05d}.dcm", seed=2)
    write_series(mr / "DICOM_anon" / phase, hu, names)
    for z, name in enumerate(names):
        mask = liver[z] * 63
        mask[-2:, -3:] = 126  # kidney
        mask[-1, 0] = 252  # spleen
        if z == 1:
            mask[liver[z] == 1] = 60  # inside the liver range 55-70, as in some CHAOS masks
        write_png(mr / "Ground" / name.replace(".dcm", ".png"), mask)
    return hu, liver


@pytest.mark.parametrize("mr_sequence", ["T2SPIR", "T1DUAL/InPhase"])
def test_chaos_orders_slices_by_position_and_matches_masks(tmp_path, mr_sequence):
    hu, liver = _write_chaos(tmp_path, mr_sequence)
    reader = reader_for("chaos", mr_sequence=mr_sequence)
    assert isinstance(reader, ChaosReader)
    assert reader.list_patients(tmp_path, "ct") == ["1"] and reader.list_patients(tmp_path, "mri") == ["2"]
    for modality, patient in (("ct", "1"), ("mri", "2")):
        vol = reader.read_patient(tmp_path, modality, patient, CHAOS_PARAMS["liver_label"][modality],
                                  CHAOS_PARAMS["label_values"][modality])
        np.testing.assert_allclose(vol.image, hu)
        np.testing.assert_array_equal(vol.label, liver)  # kidney and spleen are not liver
        assert vol.spacing == pytest.approx((2.5, 0.8, 0.8))


def test_chaos_through_prepare(tmp_path):
    _write_chaos(tmp_path)
    for k in (3, 4):  # more MRI patients, so every split has one
        _write_chaos(tmp_path / f"extra{k}")
        (tmp_path / "extra{}/MR/2".format(k)).rename(tmp_path / "MR" / str(k))
    params = Params(data=DataConfig(dataset="chaos", raw_dir=str(tmp_path), **CHAOS_PARAMS),
                    prepare=PrepareConfig(image_size=16, mri_splits={"train": 1, "val": 1, "test": 1}))
    manifest = prepare_dataset(params, tmp_path, tmp_path / "prepared")
    assert manifest["splits"]["ct_train"] == {"patients": ["1"], "slices": SLICES}
    test = SliceSet.load(tmp_path / "prepared" / "mri_test")
    assert test.images.shape == (SLICES, 1, 16, 16) and set(np.unique(test.labels)) == {0, 1}


def test_chaos_mask_count_must_match_slices(tmp_path):
    _write_chaos(tmp_path)
    png = sorted((tmp_path / "CT/1/Ground").iterdir())[0]
    png.unlink()
    with pytest.raises(RawDataError, match="4 PNG masks for 5 DICOM slices") as err:
        reader_for("chaos").read_patient(tmp_path, "ct", "1", [1, 255])
    assert str(tmp_path / "CT/1/Ground") in str(err.value)


@pytest.mark.parametrize("axcodes, spacing", [("LPS", (2.0, 1.0, 1.0)), ("RAS", (3.0, 0.7, 0.7)),
                                              ("PIL", (2.5, 1.5, 1.2)), ("ASR", (1.0, 0.9, 0.9))])
def test_nifti_pairs_any_orientation_and_spacing_with_configurable_liver(tmp_path, axcodes, spacing):
    image, label = blob_patient(0, liver=5)
    image[:, 0, 0] = 999.0  # anterior-right corner marker
    write_pair(tmp_path / "ct" / "p", image, label, spacing, axcodes)
    vol = read_patient(tmp_path, "ct", "p", 5, label_values=[0, 2, 5])
    np.testing.assert_array_equal(vol.image, image)
    np.testing.assert_array_equal(vol.label, (label == 5).astype(np.uint8))
    assert vol.spacing == pytest.approx(spacing)
    assert vol.label_source == tmp_path / "ct" / "p" / "label.nii.gz"


def test_resampling_gives_every_scan_one_physical_scale():
    """The same 24 mm wide liver at 0.7 mm and at 1.5 mm pixels covers the same pixels at 2 mm."""
    areas = []
    for pixel_mm in (0.7, 1.5):
        n = round(60 / pixel_mm)
        centre = (np.arange(n) + 0.5) * pixel_mm - 30
        disk = (centre[:, None] ** 2 + centre[None, :] ** 2 < 12.0 ** 2)[None].repeat(2, 0)
        vol = Volume("p", "ct", disk.astype(np.float32) * 100, disk.astype(np.uint8), (3.0, pixel_mm, pixel_mm),
                     Path("p"))
        out = to_common_grid(vol, 2.0, 40)
        assert out.image.shape == out.label.shape == (2, 40, 40) and out.spacing == (3.0, 2.0, 2.0)
        assert out.image[0, 0, 0] == 0.0  # padded with the scan's minimum (air)
        areas.append(out.label[0].sum())
    expected = np.pi * (12.0 / 2.0) ** 2
    assert all(abs(a - expected) < 0.12 * expected for a in areas), areas


@pytest.mark.parametrize("jpeg2000", [False, True], ids=["uncompressed", "jpeg2000"])
def test_dicom_series_with_nifti_mask(tmp_path, jpeg2000):
    hu, liver = _anatomy()
    folder = tmp_path / "ct" / "d"
    write_series(folder / "image", hu, _shuffled_names("CT.1.2.{}", seed=3), jpeg2000=jpeg2000)
    # The mask as dcm2niix writes it: the DICOM grid with the row axis flipped in storage.
    grid = read_dicom_series(folder / "image").affine
    flip_rows = np.array([[1, 0, 0, 0], [0, -1, 0, ROWS - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    stored = np.transpose(liver * 5, (2, 1, 0))[:, ::-1, :]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(stored), grid @ flip_rows), folder / "label.nii.gz")
    vol = read_patient(tmp_path, "ct", "d", 5, dataset="dicom", label_values=[[0, 117]])
    np.testing.assert_allclose(vol.image, hu)
    np.testing.assert_array_equal(vol.label, liver)


def test_manifest_assigns_splits(tmp_path):
    write_nifti_dataset(tmp_path, n_ct=2, n_mri=4)
    (tmp_path / "splits.csv").write_text("split,path\nct_train,ct/ct0\nct_train,ct/ct1\nmri_train,mri/mri0\n"
                                         "mri_val,mri/mri1\nmri_test,mri/./mri2\nmri_unlabelled,mri/mri3\n")
    plan = read_split_manifest(tmp_path / "splits.csv", tmp_path, reader_for("nifti"))
    assert plan == {"ct_train": ["ct0", "ct1"], "mri_train": ["mri0"], "mri_unlabelled": ["mri3"],
                    "mri_val": ["mri1"], "mri_test": ["mri2"]}
    (tmp_path / "splits.json").write_text(json.dumps({"ct_train": ["ct/ct0"], "mri_test": ["mri/mri3"]}))
    params = Params(data=DataConfig(dataset="nifti", manifest=str(tmp_path / "splits.json")),
                    prepare=PrepareConfig(image_size=12), unet=UNetConfig(channels=(8, 16, 32), strides=(2, 2)))
    manifest = prepare_dataset(params, tmp_path, tmp_path / "prepared")
    assert {k: v["patients"] for k, v in manifest["splits"].items()} == {
        "ct_train": ["ct0"], "mri_train": [], "mri_unlabelled": [], "mri_val": [], "mri_test": ["mri3"]}


SDIST = REPO / "data" / "downloads" / "totalsegmentator-2.18.0.tar.gz"


@pytest.mark.skipif(not SDIST.exists(), reason=f"{SDIST.relative_to(REPO)} not fetched (make data "
                    f"DATASET=real-sample); tests never download")
def test_real_sample_conversion_reads_real_ct_dicom_and_mri(tmp_path):
    from liversynth.data.real_sample import MRI_SLABS, expected_sha256, holds_real_sample, write_real_sample

    raw = tmp_path / "raw"
    write_real_sample(SDIST, expected_sha256(REPO / "data" / "real_sample.sha256"), raw)
    assert holds_real_sample(raw)
    params = Params.from_yaml(REPO / "params-real-sample.yaml")
    data = params.data.model_copy(update={"raw_dir": str(raw), "manifest": str(raw / "splits.json")})
    reader = reader_for(data.dataset)
    assert reader.list_patients(raw, "mri") == [f"ts-mr-slab{k}" for k in range(MRI_SLABS)]
    for modality, patient, slices in (("ct", "ts-ct-dicom", 20), ("ct", "ts-ct-nifti", 30), ("mri", "ts-mr-slab2", 4)):
        vol = reader.read_patient(raw, modality, patient, data.liver_label[modality], data.label_values[modality])
        assert vol.image.shape[0] == slices and vol.label.any(axis=(1, 2)).all()
        cols = np.nonzero(vol.label)[2]
        assert cols.mean() < vol.label.shape[2] / 2  # the liver is on the patient's right = image left
        if modality == "ct":  # the mask sits on liver tissue: soft-tissue HU, not air or bone
            assert 30 < np.median(vol.image[vol.label == 1]) < 200
    plan = read_split_manifest(Path(data.manifest), raw, reader)
    assert plan["ct_train"] == ["ts-ct-dicom", "ts-ct-nifti"] and len(plan["mri_test"]) == 2
    again = tmp_path / "again"
    write_real_sample(SDIST, expected_sha256(REPO / "data" / "real_sample.sha256"), again)
    for path in raw.rglob("*"):  # deterministic bytes: the same archive gives the same DVC hash
        if path.is_file():
            assert (again / path.relative_to(raw)).read_bytes() == path.read_bytes()


def test_data_step_swaps_builtin_datasets_but_never_your_data(tmp_path, monkeypatch):
    import sys

    import yaml

    from scripts import generate_data
    from liversynth.data.real_sample import RealSampleError

    params = yaml.safe_load((REPO / "tests" / "tiny_params.yaml").read_text())
    params["phantom"].update(n_ct=1, n_mri=3, size=16, slices=2)
    params["prepare"].update(image_size=16, mri_splits={"train": 1, "val": 1, "test": 1})  # valid params
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(generate_data, "load_params", lambda: Params.from_yaml(tmp_path / "params.yaml"))
    monkeypatch.setattr(sys, "argv", ["generate_data"])
    raw = tmp_path / "data" / "raw"
    (raw / "ct" / "ts-ct-nifti").mkdir(parents=True)
    (raw / "SOURCE.md").write_text("# real-sample\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    generate_data.main()  # real-sample in data/raw, phantom asked: replaced
    assert sorted(p.name for p in raw.iterdir()) == ["ct", "mri"] and holds_phantom(raw)

    params["data"]["dataset"] = "real-sample"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data" / "real_sample.sha256").write_text((REPO / "data" / "real_sample.sha256").read_text())
    with pytest.raises(RealSampleError, match="not found; fetch it with `make data DATASET=real-sample`"):
        generate_data.main()  # phantom may be replaced, but nothing is downloaded here
    (raw / "ct" / "mine").mkdir()
    with pytest.raises(SystemExit, match="neither built-in dataset"):
        generate_data.main()
    assert (raw / "ct" / "mine").is_dir()
