"""Every kind of broken input stops `prepare` (before any training) with a message naming the file
and the problem, and leaves the previous prepared data, the MLflow store and DVC's view intact."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from liversynth.config import DataConfig, Params, PrepareConfig, UNetConfig
from liversynth.data.readers.dicom_series import read_dicom_series
from liversynth.data.prepare import prepare_dataset
from liversynth.data.readers import RawDataError
from tests.conftest import REPO
from tests.raw_data import blob_patient, write_nifti_dataset, write_series

PARAMS = Params(
    data=DataConfig(dataset="nifti", label_values={"ct": [0, 1, 2], "mri": [0, [1, 2]]}),
    prepare=PrepareConfig(image_size=12, mri_splits={"train": 1, "unlabelled": 1, "val": 1, "test": 1}),
    unet=UNetConfig(channels=(8, 16, 32), strides=(2, 2)),  # 12 px: a total stride that divides it
)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _dicom_patient(folder: Path) -> None:
    """Swap a patient's NIfTI image for a DICOM series of it; the mask follows the DICOM grid."""
    image, label = blob_patient(7)
    (folder / "image.nii.gz").unlink()
    write_series(folder / "image", image, [f"IM{z:04d}" for z in range(len(image))])
    affine = read_dicom_series(folder / "image").affine  # display == DICOM pixel order here
    nib.save(nib.Nifti1Image(np.ascontiguousarray(np.transpose(label, (2, 1, 0))), affine),
             folder / "label.nii.gz")


@pytest.fixture
def good(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A valid raw dataset (one CT patient as a DICOM series) already prepared once."""
    raw, prepared = tmp_path / "raw", tmp_path / "out" / "prepared"
    write_nifti_dataset(raw, n_ct=2, n_mri=4)
    _dicom_patient(raw / "ct" / "ct1")
    prepare_dataset(PARAMS, raw, prepared)
    return raw, prepared, _digests(prepared)


def _save(path: Path, data: np.ndarray, affine=None) -> None:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _manifest(raw: Path, splits: dict) -> Path:
    path = raw / "splits.json"
    path.write_text(json.dumps(splits))
    return path


def _break(case: str, raw: Path) -> tuple[Path, Params]:
    """Damage `raw` one way; return the path the error must name and the params to run with."""
    ct0, mri0, dicom = raw / "ct" / "ct0", raw / "mri" / "mri0", raw / "ct" / "ct1" / "image"
    params = PARAMS
    every = {"ct_train": ["ct/ct0"], "mri_train": ["mri/mri0"], "mri_unlabelled": ["mri/mri1"],
             "mri_val": ["mri/mri2"], "mri_test": ["mri/mri3"]}
    if case == "truncated nii.gz":
        bad = ct0 / "image.nii.gz"
        _truncate(bad)
    elif case == "not NIfTI":
        bad = mri0 / "label.nii.gz"
        bad.write_text("patient,liver\n1,yes\n")
    elif case == "unreadable DICOM":
        bad = dicom / "IM0002"
        bad.write_bytes(b"\x00" * 50 + b"not dicom")
    elif case == "truncated DICOM":
        bad = dicom / "IM0001"
        _truncate(bad)
    elif case == "DICOM pixel data cut short":
        bad = dicom / "IM0003"
        bad.write_bytes(bad.read_bytes()[:-100])
    elif case == "4D image":
        bad = ct0 / "image.nii.gz"
        _save(bad, np.zeros((12, 12, 4, 3), np.float32))
    elif case == "2D label":
        bad = mri0 / "label.nii.gz"
        _save(bad, np.zeros((12, 12), np.uint8))
    elif case == "single DICOM slice":
        bad = dicom
        for extra in sorted(dicom.iterdir())[1:]:
            extra.unlink()
    elif case == "shape mismatch":
        bad = ct0 / "label.nii.gz"
        img = nib.load(bad)
        _save(bad, np.zeros((12, 12, 5), np.uint8), img.affine)
    elif case == "affine mismatch":
        bad = ct0 / "label.nii.gz"
        img = nib.load(bad)
        _save(bad, np.asarray(img.dataobj), img.affine @ np.diag([1.0, 1.0, 1.5, 1.0]))
    elif case == "label outside declared set":
        bad = mri0 / "label.nii.gz"
        img = nib.load(bad)
        data = np.asarray(img.dataobj).copy()
        data[0, 0, 0] = 7
        _save(bad, data, img.affine)
    elif case in ("NaN intensities", "Inf intensities"):
        bad = mri0 / "image.nii.gz"
        img = nib.load(bad)
        data = np.asarray(img.dataobj).copy()
        data[3, 3, 1] = np.nan if case.startswith("NaN") else np.inf
        _save(bad, data, img.affine)
    elif case == "empty liver":
        bad = ct0 / "label.nii.gz"
        img = nib.load(bad)
        data = np.asarray(img.dataobj).copy()
        data[data == 1] = 0
        _save(bad, data, img.affine)
    elif case == "patient in two splits":
        bad = _manifest(raw, {**every, "mri_test": ["mri/mri3", "mri/mri0"]})
        params = PARAMS.model_copy(update={"data": PARAMS.data.model_copy(update={"manifest": str(bad)})})
    elif case in ("manifest path ../", "manifest absolute path"):
        outside = "../../etc" if case.endswith("../") else str(raw.parent / "elsewhere" / "p")
        bad = _manifest(raw, {**every, "mri_val": [outside]})
        params = PARAMS.model_copy(update={"data": PARAMS.data.model_copy(update={"manifest": str(bad)})})
    elif case == "missing modality folder":
        bad = raw / "mri"
        shutil.rmtree(bad)
    elif case == "zero patients":
        bad = raw / "mri"
        for patient in bad.iterdir():
            shutil.rmtree(patient)
    else:
        raise AssertionError(case)
    return bad, params


CASES = {
    "truncated nii.gz": "not a readable NIfTI file",
    "not NIfTI": "not a readable NIfTI file",
    "unreadable DICOM": "not a DICOM file",
    "truncated DICOM": r"DICOM has no pixel data \(a truncated file",
    "DICOM pixel data cut short": "cannot decode pixel data",
    "4D image": "expected a 3D volume, got 4D",
    "2D label": "expected a 3D volume, got 2D",
    "single DICOM slice": "single slice.*expected a 3D series",
    "shape mismatch": "does not match image",
    "affine mismatch": "affine differs",
    "label outside declared set": r"label values \[7\] are outside the declared set",
    "NaN intensities": "1 NaN/Inf voxels",
    "Inf intensities": "1 NaN/Inf voxels",
    "empty liver": "no voxel has the liver label 1 in any of its 4 slices",
    "patient in two splits": "'mri/mri0' is listed in two splits: mri_train and mri_test",
    "manifest path ../": "leaves the data root",
    "manifest absolute path": "leaves the data root",
    "missing modality folder": "modality folder is missing",
    "zero patients": "contains no patient folders",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_named_and_previous_output_survives(good, case):
    raw, prepared, before = good
    bad, params = _break(case, raw)
    with pytest.raises(RawDataError, match=CASES[case]) as err:
        prepare_dataset(params, raw, prepared)
    assert str(bad) in str(err.value), err.value
    assert _digests(prepared) == before  # the previous prepared data, byte for byte
    assert sorted(p.name for p in prepared.parent.iterdir()) == ["prepared"]  # no temp folders left


def test_failing_prepare_stage_writes_nothing_to_mlflow(tmp_path, monkeypatch, mlflow_store):
    from mlflow.tracking import MlflowClient

    from flows.prepare import prepare_flow

    write_nifti_dataset(tmp_path / "data" / "raw", n_ct=2, n_mri=4)
    params = yaml.safe_load((REPO / "tests" / "tiny_params.yaml").read_text())
    params["prepare"]["mri_splits"] = {"train": 1, "unlabelled": 1, "val": 1, "test": 1}
    params["prepare"]["image_size"] = 12
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    prepare_flow.fn()
    client = MlflowClient(mlflow_store)
    stage_runs = lambda: [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])  # noqa: E731
                          if r.data.tags.get("kind") != "pipeline"]  # the pipeline run is made once, up front
    runs_before = stage_runs()
    before = _digests(tmp_path / "data" / "prepared")
    _truncate(tmp_path / "data/raw/mri/mri2/image.nii.gz")
    with pytest.raises(RawDataError, match="mri2/image.nii.gz: not a readable NIfTI"):
        prepare_flow.fn()
    runs_after = stage_runs()
    assert len(runs_after) == len(runs_before) == 1  # only the good run; the failure logged nothing
    assert _digests(tmp_path / "data" / "prepared") == before


def test_dvc_keeps_prepared_data_while_prepare_reruns():
    """DVC deletes a stage's outputs before running it unless they persist; a failing prepare
    would then lose the previous data/prepared from the workspace."""
    outs = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["prepare"]["outs"]
    assert {"data/prepared": {"persist": True}} in outs


def test_data_step_refuses_broken_raw_data_before_dvc_versions_it(tmp_path, monkeypatch):
    """`make data` runs this check when data/raw changed, before `dvc commit` caches anything."""
    import sys

    from scripts import generate_data

    raw = tmp_path / "data" / "raw"
    write_nifti_dataset(raw, n_ct=2, n_mri=4)
    params = PARAMS.model_copy(update={"data": PARAMS.data.model_copy(update={"raw_dir": str(raw)})})
    monkeypatch.setattr(generate_data, "load_params", lambda: params)
    monkeypatch.setattr(sys, "argv", ["generate_data", "--check"])
    generate_data.main()
    _truncate(raw / "mri" / "mri3" / "label.nii.gz")
    with pytest.raises(SystemExit, match="nothing was versioned: .*mri3/label.nii.gz: not a readable NIfTI"):
        generate_data.main()
