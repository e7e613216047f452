"""A CHAOS-layout folder made from the real TotalSegmentator test scans, for testing the CHAOS profile.

    root/CT/<id>/DICOM_anon/i0000,0000b.dcm ...   root/CT/<id>/Ground/liver_GT_000.png ...
    root/MR/<id>/T2SPIR/DICOM_anon/IMG-0004-00001.dcm ...   root/MR/<id>/T2SPIR/Ground/IMG-0004-00001.png ...

The scans come from `liversynth.data.real_sample` (the hash-checked totalsegmentator 2.18.0 sdist):
its two CT scans become CHAOS CT patients 1 and 2 (16-bit DICOM, HU = stored - 1024, as CHAOS CT),
its MRI slabs MR patients 1, 2, 3, 5, 8 (ids with gaps, as in CHAOS; MR and CT ids overlap, as in
CHAOS, and are different people). Masks use CHAOS's codes: CT Ground is liver-only (255); MR Ground
codes liver 63, right kidney 126, left kidney 189, spleen 252 from TotalSegmentator's classes 5, 2,
3 and 1; its other classes are background, as CHAOS does not label them. CT files are named from
superior to inferior (CHAOS pairs CT masks with slices by name rank), so name order is not the
anatomical order the reader must recover. The one change to the scans: CT below -1024 HU is clipped
to -1024 (16-bit unsigned storage) and MRI is shifted to start at 0 (MR DICOM is unsigned).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from liversynth.data.readers.base import display_spacing, to_display
from liversynth.data.readers.dicom_series import read_dicom_series
from liversynth.data.readers.folder import load_nifti
from liversynth.data.real_sample import expected_sha256, write_real_sample

__all__ = ["CHAOS_MR_CODES", "CT_IDS", "MR_IDS", "TS_LIVER", "Scan", "write_chaos_fixture"]

TS_LIVER = 5  # TotalSegmentator "total" / "total_mr": 1 spleen, 2 kidney_right, 3 kidney_left, 5 liver
CHAOS_MR_CODES = {5: 63, 2: 126, 3: 189, 1: 252}  # TotalSegmentator class -> CHAOS MR grey level
CT_IDS = {"ct/ts-ct-nifti": "1", "ct/ts-ct-dicom": "2"}
MR_IDS = {f"mri/ts-mr-slab{k}": chaos_id for k, chaos_id in enumerate(("1", "2", "3", "5", "8"))}
_AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # rows run to the patient's left, columns posterior (LPS)


@dataclass(frozen=True)
class Scan:
    """What was written for one CHAOS patient, in display orientation (Z, H, W): the image as the reader
    must return it (HU for CT, stored values for MR), TotalSegmentator's multi-label mask, spacing."""

    image: np.ndarray
    organs: np.ndarray
    spacing: tuple[float, float, float]  # mm along (z, row, col)


def write_chaos_fixture(sdist: Path, checksum_file: Path, root: Path) -> dict[tuple[str, str], Scan]:
    """Write the CHAOS layout under `root` from the sdist; return {(modality, CHAOS id): Scan}."""
    written: dict[tuple[str, str], Scan] = {}
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / "real-sample"
        write_real_sample(sdist, expected_sha256(checksum_file), sample)
        for folder, chaos_id in CT_IDS.items():
            scan = _load(sample / folder)
            scan = Scan(np.maximum(scan.image, -1024.0), scan.organs, scan.spacing)
            _write_ct(root / "CT" / chaos_id, scan)
            written["ct", chaos_id] = scan
        for folder, chaos_id in MR_IDS.items():
            scan = _load(sample / folder)
            scan = Scan(scan.image - scan.image.min(), scan.organs, scan.spacing)
            _write_mr(root / "MR" / chaos_id / "T2SPIR", scan)
            written["mri", chaos_id] = scan
    return written


def _load(folder: Path) -> Scan:
    """A real-sample patient folder (image.nii.gz or a DICOM series image/, plus label.nii.gz)."""
    if (folder / "image").is_dir():
        series = read_dicom_series(folder / "image")
        image, affine = series.voxels, series.affine
    else:
        nifti, image = load_nifti(folder / "image.nii.gz")
        affine = nifti.affine
    label, labels = load_nifti(folder / "label.nii.gz")
    organs = to_display(label.affine, labels.astype(np.uint8))
    return Scan(to_display(affine, image).astype(np.float32), organs, display_spacing(affine))


def _write_ct(folder: Path, scan: Scan) -> None:
    uid, depth = generate_uid(), len(scan.image)
    for rank in range(depth):
        z = depth - 1 - rank  # file 0 is the most superior slice
        _write_slice(folder / "DICOM_anon" / f"i{rank:04d},0000b.dcm", scan.image[z] + 1024.0, scan, z,
                     uid, rank + 1, "CT", intercept=-1024.0)
        _write_png(folder / "Ground" / f"liver_GT_{rank:03d}.png", (scan.organs[z] == TS_LIVER) * 255)


def _write_mr(folder: Path, scan: Scan) -> None:
    uid, codes = generate_uid(), np.zeros(256, np.uint8)
    for ts_class, grey in CHAOS_MR_CODES.items():
        codes[ts_class] = grey
    for z in range(len(scan.image)):
        name = f"IMG-0004-{z + 1:05d}"
        _write_slice(folder / "DICOM_anon" / f"{name}.dcm", scan.image[z], scan, z, uid, z + 1, "MR")
        _write_png(folder / "Ground" / f"{name}.png", codes[scan.organs[z]])


def _write_slice(path: Path, stored: np.ndarray, scan: Scan, z: int, series_uid: str, instance: int,
                 modality: str, intercept: float | None = None) -> None:
    """One uncompressed 16-bit axial slice at display position z (rows anterior -> posterior)."""
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    pixels = np.ascontiguousarray(np.clip(np.round(stored), 0, 65535), np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = sop_class, modality, series_uid, instance
    dz, d_row, d_col = scan.spacing
    ds.ImagePositionPatient = [-150.0, -120.0, round(-60.0 + dz * z, 4)]
    ds.ImageOrientationPatient = _AXIAL
    ds.PixelSpacing = [d_row, d_col]
    ds.SliceThickness = dz
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if intercept is not None:
        ds.RescaleIntercept, ds.RescaleSlope = intercept, 1.0
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _write_png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(mask, np.uint8)).save(path)
