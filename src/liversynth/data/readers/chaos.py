"""The CHAOS challenge layout (Kavur et al. 2021): DICOM slices plus one PNG ground-truth mask each.

    raw_dir/CT/<id>/DICOM_anon/*.dcm            raw_dir/CT/<id>/Ground/*.png
    raw_dir/MR/<id>/T2SPIR/DICOM_anon/*.dcm     raw_dir/MR/<id>/T2SPIR/Ground/*.png
    raw_dir/MR/<id>/T1DUAL/DICOM_anon/{InPhase,OutPhase}/*.dcm   raw_dir/MR/<id>/T1DUAL/Ground/*.png

Mask conventions (set them in params.yaml, see CHAOS_PARAMS): CT masks are liver-only, any
non-zero value is liver; MR masks code organs by grey level: liver 63 (55-70), right kidney 126
(110-135), left kidney 189 (175-200), spleen 252 (240-255).

Slices are ordered by position (dicom_series), never by file name. A mask belongs to the DICOM file
with the same name stem (MR) or, when stems differ (CT: liver_GT_000.png ...), to the DICOM file of
the same rank in natural name order, which is how CHAOS pairs them; it then moves with its slice.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from liversynth.data.readers.dicom_series import read_dicom_series
from liversynth.data.readers.base import LabelSpec, RawDataError, Volume, assemble_volume, check_label_values, check_modality

__all__ = ["CHAOS_PARAMS", "ChaosReader", "MODALITY_FOLDERS", "MR_SEQUENCES", "natural_key"]

MODALITY_FOLDERS = {"ct": "CT", "mri": "MR"}
MR_SEQUENCES = ("T2SPIR", "T1DUAL/InPhase", "T1DUAL/OutPhase")
# What to put in params.yaml `data:` for CHAOS (the ranges are those of the official evaluation).
CHAOS_PARAMS = {
    "liver_label": {"ct": [1, 255], "mri": [55, 70]},
    "label_values": {"ct": [0, [1, 255]], "mri": [0, [55, 70], [110, 135], [175, 200], [240, 255]]},
}


class ChaosReader:
    def __init__(self, mr_sequence: str = "T2SPIR") -> None:
        if mr_sequence not in MR_SEQUENCES:
            raise ValueError(f"data.mr_sequence: {mr_sequence!r} is not a CHAOS MR sequence; "
                             f"known: {', '.join(MR_SEQUENCES)}")
        self.mr_sequence = mr_sequence

    def list_patients(self, raw_dir: Path, modality: str) -> list[str]:
        folder = Path(raw_dir) / MODALITY_FOLDERS[check_modality(modality)]
        if not folder.is_dir():
            raise RawDataError(f"{folder}: modality folder is missing (CHAOS layout: "
                               f"{folder.name}/<id>/...)")
        patients = sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                          key=natural_key)
        if not patients:
            raise RawDataError(f"{folder}: contains no patient folders")
        return patients

    def patient_dir(self, raw_dir: Path, modality: str, patient: str) -> Path:
        return Path(raw_dir) / MODALITY_FOLDERS[check_modality(modality)] / patient

    def read_patient(self, raw_dir: Path, modality: str, patient: str, liver_label: LabelSpec,
                     label_values: Sequence[LabelSpec] | None = None) -> Volume:
        folder = self.patient_dir(raw_dir, modality, patient)
        if modality == "ct":
            dicom_dir, ground_dir = folder / "DICOM_anon", folder / "Ground"
        else:
            sequence, _, phase = self.mr_sequence.partition("/")
            dicom_dir, ground_dir = folder / sequence / "DICOM_anon" / phase, folder / sequence / "Ground"
        series = read_dicom_series(dicom_dir)
        planes = _masks_for_slices(ground_dir, series.files, series.voxels.shape[1::-1], label_values, modality)
        label = np.ascontiguousarray(np.transpose(planes, (2, 1, 0)))  # the series' voxel order
        return assemble_volume(
            patient=patient, modality=modality, source=folder,
            image=series.voxels, image_affine=series.affine, image_path=dicom_dir,
            label=label, label_affine=series.affine, label_path=ground_dir,
            liver_label=liver_label, label_values=label_values,
        )


def natural_key(name: str) -> list:
    """'IMG-2' < 'IMG-10', as CHAOS's zero-padded names sort either way."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _masks_for_slices(ground_dir: Path, slice_files: Sequence[Path], shape: tuple[int, int],
                      label_values: Sequence[LabelSpec] | None, modality: str) -> np.ndarray:
    """One mask plane (rows, cols) per slice file, stacked in the slices' order."""
    if not ground_dir.is_dir():
        raise RawDataError(f"{ground_dir}: ground-truth folder is missing")
    pngs = sorted((p for p in ground_dir.iterdir() if p.suffix.lower() == ".png"),
                  key=lambda p: natural_key(p.name))
    if len(pngs) != len(slice_files):
        raise RawDataError(f"{ground_dir}: {len(pngs)} PNG masks for {len(slice_files)} DICOM slices "
                           f"in {slice_files[0].parent}; cannot match masks to slices")
    by_stem = {p.stem: p for p in pngs}
    if all(f.stem in by_stem for f in slice_files):
        mask_of = {f: by_stem[f.stem] for f in slice_files}
    else:
        by_name = sorted(slice_files, key=lambda f: natural_key(f.name))
        mask_of = dict(zip(by_name, pngs))
    planes = [_read_mask(mask_of[f], shape, label_values, modality) for f in slice_files]
    return np.stack(planes)


def _read_mask(path: Path, shape: tuple[int, int], label_values: Sequence[LabelSpec] | None,
               modality: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            mask = np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise RawDataError(f"{path}: not a readable PNG mask ({type(err).__name__}: {err})") from err
    if mask.ndim == 3:  # grey masks saved as RGB(A) are common; real colour is not a label map
        if not (mask[..., :3] == mask[..., :1]).all():
            raise RawDataError(f"{path}: colour PNG; expected a grey-level label mask")
        mask = mask[..., 0]
    if mask.shape != tuple(shape):
        raise RawDataError(f"{path}: mask is {mask.shape[0]}x{mask.shape[1]} pixels but its DICOM "
                           f"slice is {shape[0]}x{shape[1]}")
    check_label_values(mask, path, label_values, modality)
    return mask.astype(np.int32)
