"""liversynth's own raw layout: one folder per patient, the image as NIfTI or as a DICOM series.

    raw_dir/<ct|mri>/<patient>/image.nii.gz   (or image.nii, or image/ = a folder of DICOM slices)
    raw_dir/<ct|mri>/<patient>/label.nii.gz   (or label.nii): multi-label mask on the image's grid

This is what the phantom writes, what AMOS / TotalSegmentator / LiTS style NIfTI pairs drop into,
and how a DICOM export (any transfer syntax pydicom decodes) is used with a NIfTI mask. Folders
whose name starts with "." are ignored (they are in-progress atomic writes).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from liversynth.data.readers.dicom_series import read_dicom_series
from liversynth.data.readers.base import LabelSpec, RawDataError, Volume, assemble_volume, check_modality

__all__ = ["DICOM_IMAGE_DIR", "FolderReader", "load_nifti"]

DICOM_IMAGE_DIR = "image"


class FolderReader:
    def list_patients(self, raw_dir: Path, modality: str) -> list[str]:
        folder = Path(raw_dir) / check_modality(modality)
        if not folder.is_dir():
            raise RawDataError(f"{folder}: modality folder is missing (expected one sub-folder "
                               f"per patient with image.nii.gz and label.nii.gz)")
        patients = sorted(p.name for p in folder.iterdir()
                          if p.is_dir() and not p.name.startswith("."))
        if not patients:
            raise RawDataError(f"{folder}: contains no patient folders")
        return patients

    def patient_dir(self, raw_dir: Path, modality: str, patient: str) -> Path:
        return Path(raw_dir) / check_modality(modality) / patient

    def read_patient(self, raw_dir: Path, modality: str, patient: str, liver_label: LabelSpec,
                     label_values: Sequence[LabelSpec] | None = None) -> Volume:
        folder = self.patient_dir(raw_dir, modality, patient)
        image_path = _find_image(folder)
        label_path = _find_nifti(folder, "label")
        if image_path.is_dir():
            series = read_dicom_series(image_path)
            image, image_affine = series.voxels, series.affine
        else:
            image_img, image = load_nifti(image_path)
            image_affine = image_img.affine
        label_img, label = load_nifti(label_path)
        return assemble_volume(
            patient=patient, modality=modality, source=folder,
            image=image, image_affine=image_affine, image_path=image_path,
            label=label, label_affine=label_img.affine, label_path=label_path,
            liver_label=liver_label, label_values=label_values,
        )


def _find_image(folder: Path) -> Path:
    dicom = folder / DICOM_IMAGE_DIR
    try:
        nifti = _find_nifti(folder, "image")
    except RawDataError:
        if dicom.is_dir():
            return dicom
        raise RawDataError(f"{folder / 'image.nii.gz'}: file is missing (nor is there a DICOM "
                           f"series folder {DICOM_IMAGE_DIR}/)") from None
    if dicom.is_dir():
        raise RawDataError(f"{folder}: holds both {nifti.name} and a DICOM folder {DICOM_IMAGE_DIR}/; "
                           f"keep one image")
    return nifti


def _find_nifti(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.nii.gz", f"{stem}.nii"):
        if (folder / name).is_file():
            return folder / name
    raise RawDataError(f"{folder / (stem + '.nii.gz')}: file is missing")


def load_nifti(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load fully (nibabel is lazy, so truncation only shows when the data are read)."""
    try:
        img = nib.load(path)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise RawDataError(f"{path}: is a {type(img).__name__}, not NIfTI")
        data = np.asarray(img.dataobj)
    except RawDataError:
        raise
    except Exception as err:  # nibabel reports corruption as many unrelated exception types
        raise RawDataError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {err})") from err
    if data.ndim == 4 and data.shape[3] == 1:  # (X, Y, Z, 1) is a common harmless export quirk
        img, data = img.slicer[..., 0], data[..., 0]
    if data.ndim != 3:
        raise RawDataError(f"{path}: expected a 3D volume, got {data.ndim}D shape {data.shape}")
    return img, data
