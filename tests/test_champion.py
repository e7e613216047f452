"""`liversynth segment|translate` on new scans: masks on the input's own grid, the liver where it was."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from liversynth.cli import main
from liversynth.data.readers.base import to_display
from liversynth.inference.spec import ModelSpec
from tests.champion_models import PREP, TINY_ESSNET, box_volume, register, tiny_generator, train_box_unet, unet_spec
from tests.raw_data import nifti_from_display, write_series


@pytest.fixture(scope="module")
def box_unet():
    return train_box_unet()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _segment(scan: Path, out: Path, uri: str, capsys) -> nib.Nifti1Image:
    assert main(["segment", str(scan), "-o", str(out), "--tracking-uri", uri]) == 0, capsys.readouterr().err
    assert "liver volume" in capsys.readouterr().out
    return nib.load(out)


@pytest.mark.parametrize("axcodes", ["LPS", "ASR"])
def test_segment_nifti_keeps_grid_and_finds_the_liver(box_unet, mlflow_store, tmp_path, capsys, axcodes):
    register(box_unet, unet_spec())
    image, label = box_volume(99, (5, 44, 38), (slice(6, 20), slice(18, 32)))
    src = nifti_from_display(image, (3.0, 1.5, 1.5), axcodes)
    nib.save(src, tmp_path / "scan.nii.gz")
    out = _segment(tmp_path / "scan.nii.gz", tmp_path / "mask.nii.gz", mlflow_store, capsys)
    assert out.shape == src.shape and np.allclose(out.affine, src.affine)
    mask = np.asarray(out.dataobj)
    assert set(np.unique(mask)) <= {0, 1}
    truth = np.asarray(nifti_from_display(label, (3.0, 1.5, 1.5), axcodes).dataobj) > 0
    assert _iou(mask > 0, truth) > 0.7  # in the voxel order of the file, where it was drawn


def test_segment_dicom_series(box_unet, mlflow_store, tmp_path, capsys):
    register(box_unet, unet_spec())
    image, label = box_volume(7, (4, 40, 36), (slice(20, 34), slice(4, 16)))
    write_series(tmp_path / "series", image, [f"s{i:02d}.dcm" for i in (3, 1, 0, 2)])
    from liversynth.data.readers.dicom_series import read_dicom_series

    series = read_dicom_series(tmp_path / "series")
    out = _segment(tmp_path / "series", tmp_path / "mask.nii.gz", mlflow_store, capsys)
    assert out.shape == series.voxels.shape and np.allclose(out.affine, series.affine)
    assert _iou(to_display(out.affine, np.asarray(out.dataobj)) > 0, label > 0) > 0.7


def test_translate_writes_on_the_ct_grid(mlflow_store, tmp_path, capsys):
    spec = ModelSpec.for_generator(PREP, 6.0, TINY_ESSNET)  # resampled to 6 mm, then back
    register(tiny_generator(), spec, name="liversynth-ct2mri")
    ct = nifti_from_display(np.random.default_rng(0).normal(40, 30, (3, 50, 45)).astype(np.float32),
                            (5.0, 0.8, 0.8), "RAS")
    nib.save(ct, tmp_path / "ct.nii")
    assert main(["translate", str(tmp_path / "ct.nii"), "-o", str(tmp_path / "mri.nii.gz"),
                 "--tracking-uri", mlflow_store]) == 0, capsys.readouterr().err
    out = nib.load(tmp_path / "mri.nii.gz")
    data = np.asarray(out.dataobj)
    assert out.shape == ct.shape and np.allclose(out.affine, ct.affine)
    assert data.dtype == np.float32 and data.min() >= -1 and data.max() <= 1


def test_bad_inputs_are_named(box_unet, mlflow_store, tmp_path, capsys):
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    assert main(["segment", str(tmp_path / "broken.nii.gz"), "-o", str(tmp_path / "m.nii.gz"),
                 "--tracking-uri", mlflow_store]) == 1
    assert "broken.nii.gz: not a readable NIfTI" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "missing"), "-o", str(tmp_path / "m.nii.gz"),
                 "--tracking-uri", mlflow_store]) == 1
    assert "no such file" in capsys.readouterr().err
    nib.save(nifti_from_display(box_volume(0)[0], (2.0, 1.0, 1.0)), tmp_path / "ok.nii.gz")
    assert main(["segment", str(tmp_path / "ok.nii.gz"), "-o", str(tmp_path / "m.nii.gz"),
                 "--tracking-uri", mlflow_store]) == 1  # nothing registered yet
    assert "liversynth-unet@champion" in capsys.readouterr().err


def test_read_scan_finds_the_series_of_a_chaos_patient_folder(tmp_path):
    from liversynth.inference.scan import read_scan

    image = box_volume(3, (3, 20, 18))[0]
    write_series(tmp_path / "MR/7/T2SPIR/DICOM_anon", image, ["IMG-1.dcm", "IMG-2.dcm", "IMG-3.dcm"])
    write_series(tmp_path / "CT/2/DICOM_anon", image, ["a.dcm", "b.dcm", "c.dcm"])
    for folder in (tmp_path / "MR/7", tmp_path / "CT/2"):
        scan = read_scan(folder)
        assert scan.image.shape == (3, 20, 18) and np.allclose(scan.image, np.round(image), atol=1.0)
