"""Builders for tiny raw datasets in every supported layout, written the way real exporters do.

All builders take display-orientation arrays (Z, H, W): z inferior -> superior, rows anterior ->
posterior, columns patient's right -> left, which is what the readers must give back.
"""
from __future__ import annotations

import io
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # rows run to the patient's left, columns posterior


def nifti_from_display(display: np.ndarray, spacing: tuple[float, float, float], axcodes: str = "LPS",
                       dtype: type = np.float32) -> nib.Nifti1Image:
    """Store a display volume in any voxel order; the affine says which, as scanners' exports do."""
    ras = np.transpose(display[:, ::-1, ::-1], (2, 1, 0)).astype(dtype)
    sz, sr, sc = spacing
    ras_affine = np.diag([sc, sr, sz, 1.0])
    ras_affine[:3, 3] = [-40.0, 12.5, 100.0]
    ornt = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(tuple("RAS")),
                                           nib.orientations.axcodes2ornt(tuple(axcodes)))
    data = nib.orientations.apply_orientation(ras, ornt)
    affine = ras_affine @ nib.orientations.inv_ornt_aff(ornt, ras.shape)
    assert "".join(nib.aff2axcodes(affine)) == axcodes
    return nib.Nifti1Image(np.ascontiguousarray(data), affine)


def write_pair(folder: Path, image: np.ndarray, label: np.ndarray, spacing=(2.0, 1.0, 1.0),
               axcodes: str = "LPS") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nifti_from_display(image, spacing, axcodes, np.float32), folder / "image.nii.gz")
    nib.save(nifti_from_display(label, spacing, axcodes, np.uint8), folder / "label.nii.gz")


def blob_patient(seed: int, slices: int = 4, size: int = 12, liver: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image with a bright liver rectangle in every slice, and a second organ (label 2)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 5.0, (slices, size, size)).astype(np.float32)
    label = np.zeros((slices, size, size), np.uint8)
    label[:, 2:6, 1:5] = liver
    label[:, 7:10, 7:10] = 2
    image[label == liver] += 80.0
    return image, label


def write_nifti_dataset(root: Path, n_ct: int = 2, n_mri: int = 4) -> None:
    for modality, count in (("ct", n_ct), ("mri", n_mri)):
        for k in range(count):
            write_pair(root / modality / f"{modality}{k}", *blob_patient(k + 10 * (modality == "mri")))


def write_dicom(path: Path, pixels: np.ndarray, *, position: tuple[float, float, float], series_uid: str,
                instance: int, spacing=(0.8, 0.8), orientation=AXIAL, intercept: float = -1024.0,
                jpeg2000: bool = False) -> None:
    """One single-frame CT slice; pixels (rows, cols) uint16 stored values (HU = value + intercept)."""
    pixels = np.ascontiguousarray(pixels, np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless if jpeg2000 else ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.Modality, ds.SeriesInstanceUID = CTImageStorage, "CT", series_uid
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = list(spacing)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = intercept, 1.0
    if jpeg2000:  # lossless JPEG 2000 codestream from Pillow (OpenJPEG), as PACS exports hold them
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_series(folder: Path, hu: np.ndarray, names: list[str], *, dz: float = 2.5, z0: float = -50.0,
                 jpeg2000: bool = False) -> None:
    """Display (Z, H, W) HU volume as axial slices: slice z goes to file names[z] (any name order)."""
    uid = generate_uid()
    for z, name in enumerate(names):
        write_dicom(folder / name, hu[z] + 1024.0, position=(-20.0, -30.0, z0 + dz * z), series_uid=uid,
                    instance=z + 1, jpeg2000=jpeg2000)


def write_png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(mask, np.uint8)).save(path)
