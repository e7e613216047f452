"""A seeded procedural abdominal phantom: unpaired CT and T2-like MRI cohorts in the raw NIfTI layout.

It exists so the whole pipeline runs end to end without downloading patient data, while still posing
a real CT->MRI learning problem: tissue contrasts are *not* a monotone mapping between modalities
(fat is dark on CT but bright on MRI; spleen is darker than liver on CT but brighter on MRI; hepatic
vessels are bright on CT and flow voids on MRI), MRI has a smooth bias field and Rician noise, and
every patient is an independent anatomy draw (no CT/MRI pairs).

Layout written by `write_phantom`::

    raw_dir/ct/ct000/image.nii.gz   int16 Hounsfield units
    raw_dir/ct/ct000/label.nii.gz   uint8 multi-label mask (below)
    raw_dir/mri/mri000/image.nii.gz float32 arbitrary units (roughly 0..1000)
    raw_dir/mri/mri000/label.nii.gz

Label convention (uint8): 0 background (air, fat, bowel, spinal canal: unlabelled), 1 liver
(including its intrahepatic vessels, as clinical masks do), 2 spleen, 3 kidneys (both), 4 bone
(vertebra and ribs), 5 other = aorta and skeletal muscle (abdominal wall, paraspinal, psoas).

Geometry: volumes are `size x size x slices` voxels of `spacing_mm` in-plane and
`SLICE_THICKNESS_MM` through-plane, stored in LPS voxel order (i -> patient's left,
j -> posterior, k -> superior), i.e. what a DICOM-derived NIfTI typically looks like, so readers
must honour the affine (readers/base.py reorients to RAS, then to display orientation). Anatomy (anatomy.py) is defined
in coordinates normalised to the field of view, so it scales with `size * spacing_mm`; along z it is
defined per fraction of the stack (index 0 = most inferior slice).

Same seed -> byte-identical files: each patient draws from its own generator seeded by
(seed, modality, index), and gzip is written with mtime 0 and no file name.
"""
from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter

from liversynth.config import PhantomConfig
from liversynth.data.anatomy import CohortShift, Tissue, draw_anatomy, smooth_texture
from liversynth.utils.files import write_atomic_dir

__all__ = ["MODALITIES", "SLICE_THICKNESS_MM", "cohort_shift", "holds_phantom", "make_patient", "patient_rng",
           "render_ct", "render_mri", "to_label", "write_phantom"]

SLICE_THICKNESS_MM = 8.0
MODALITIES = ("ct", "mri")


# Indexed by Tissue value.
_LABEL_OF_TISSUE = (0, 0, 0, 5, 0, 1, 1, 2, 3, 4, 5, 0, 1)
# CT: (mean HU, per-patient jitter sd, texture amplitude). Liver, spleen and bone are drawn from
# uniform ranges in render_ct because their ranges matter to the contrast story.
_CT = ((-1000, 0, 0), (-100, 8, 5), (-90, 8, 8), (50, 5, 6), (25, 8, 30), (62, 0, 5),
       (160, 15, 5), (45, 0, 5), (150, 12, 10), (500, 0, 80), (180, 12, 5), (10, 4, 3), (20, 6, 4))
# MRI T2-like: (mean, relative texture amplitude); each mean is jittered x U(0.85, 1.15).
_MRI = ((0, 0), (800, .04), (760, .06), (180, .05), (450, .25), (320, .04),
        (90, .1), (620, .04), (560, .05), (110, .15), (40, .1), (950, .03), (720, .06))


def write_phantom(cfg: PhantomConfig, raw_dir: Path) -> None:
    """Write n_ct CT and n_mri MRI patients under raw_dir, each patient folder atomically."""
    _check(cfg)
    raw_dir = Path(raw_dir)
    spacing = (SLICE_THICKNESS_MM, float(cfg.spacing_mm), float(cfg.spacing_mm))
    for modality, count in (("ct", cfg.n_ct), ("mri", cfg.n_mri)):
        names = [f"{modality}{i:03d}" for i in range(count)]
        for index, name in enumerate(names):
            image, label = make_patient(cfg, modality, index)
            files = {
                "image.nii.gz": _nifti_gz(image, np.int16 if modality == "ct" else np.float32, spacing),
                "label.nii.gz": _nifti_gz(label, np.uint8, spacing),
            }
            write_atomic_dir(raw_dir / modality / name, lambda tmp: _write_files(tmp, files))
        _remove_stale(raw_dir / modality, modality, set(names))


def cohort_shift(cfg: PhantomConfig, index: int) -> CohortShift:
    """The MRI cohort's shift for patient `index`, drawn from its own stream (strength cfg.mri_shift)."""
    s = cfg.mri_shift
    if s <= 0:
        return CohortShift()
    rng = patient_rng(cfg.seed, "mri", index, stream=2)
    sign = rng.choice([-1.0, 1.0], 2)
    return CohortShift(z_offset=s * rng.uniform(.12, .25), zoom=1 + s * rng.uniform(.15, .35),
                       centre=(float(sign[0] * s * rng.uniform(.04, .1)), float(sign[1] * s * rng.uniform(0, .06))),
                       liver_scale=1 + s * rng.uniform(.05, .3),
                       lesions=int(rng.integers(1, 4)) if rng.uniform() < min(1.0, .6 * s) else 0,
                       lesion_seed=int(rng.integers(2**31)))


def make_patient(cfg: PhantomConfig, modality: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One patient as display-orientation (Z, H, W) arrays: (image float32, label uint8)."""
    shift = cohort_shift(cfg, index) if modality == "mri" else CohortShift()
    tissue = draw_anatomy(patient_rng(cfg.seed, modality, index), cfg.size, cfg.slices, shift)
    render = render_ct if modality == "ct" else render_mri
    return render(tissue, patient_rng(cfg.seed, modality, index, stream=1)), to_label(tissue)


def patient_rng(seed: int, modality: str, index: int, stream: int = 0) -> np.random.Generator:
    """Independent per patient, so adding patients never changes the earlier ones."""
    return np.random.default_rng([seed, MODALITIES.index(modality), index, stream])


def to_label(tissue: np.ndarray) -> np.ndarray:
    return np.asarray(_LABEL_OF_TISSUE, np.uint8)[tissue]


def render_ct(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units: per-patient jittered means, texture, partial-volume blur, Gaussian noise."""
    table = np.asarray(_CT, np.float64)
    base = len(table) - 1  # the lesion row draws nothing, so lesion-free patients stay as they were
    mean = np.append(table[:base, 0] + rng.normal(0, 1, base) * table[:base, 1], 0.0)
    mean[Tissue.LIVER] = rng.uniform(50, 75)
    mean[Tissue.SPLEEN] = rng.uniform(40, 50)  # never above the liver: the CT side of the story
    mean[Tissue.BONE] = rng.uniform(300, 700)
    mean[Tissue.LESION] = mean[Tissue.LIVER] - table[Tissue.LESION, 0] - 20  # hypodense
    image = mean[tissue] + table[tissue, 2] * smooth_texture(rng, tissue.shape, 4)
    image = gaussian_filter(image, (.3, .6, .6))
    image += rng.normal(0, rng.uniform(10, 20), image.shape)
    return np.clip(np.round(image), -1024, 3071).astype(np.float32)


def render_mri(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """T2-like: jittered contrasts, texture, blur, smooth multiplicative bias, Rician noise."""
    table = np.asarray(_MRI, np.float64)
    base = len(table) - 1  # the lesion row draws nothing (see render_ct)
    jitter = np.append(rng.uniform(.85, 1.15, base), 1.0)
    mean = table[:, 0] * jitter * rng.uniform(.8, 1.2)
    image = mean[tissue] * (1 + table[tissue, 1] * smooth_texture(rng, tissue.shape, 4))
    image = gaussian_filter(image, (.3, .6, .6))
    field = smooth_texture(rng, tissue.shape, .5)
    image *= 1 + rng.uniform(.2, .3) * field / (np.abs(field).max() + 1e-6)
    sigma = rng.uniform(.02, .035) * mean[Tissue.FAT]
    real = image + rng.normal(0, sigma, image.shape)
    imag = rng.normal(0, sigma, image.shape)
    return np.sqrt(real ** 2 + imag ** 2).astype(np.float32)


def _nifti_gz(display: np.ndarray, dtype: type, spacing: tuple[float, float, float]) -> bytes:
    """Display (Z, H, W) -> LPS-ordered NIfTI bytes, gzipped without timestamp or name."""
    z, h, w = display.shape
    sz, sy, sx = spacing
    data: np.ndarray = np.ascontiguousarray(np.transpose(display, (2, 1, 0)).astype(dtype))
    # Voxel i -> patient's left (-x in RAS), j -> posterior (-y), k -> superior; centred on 0.
    affine = np.array([[-sx, 0, 0, sx * (w - 1) / 2], [0, -sy, 0, sy * (h - 1) / 2],
                       [0, 0, sz, -sz * (z - 1) / 2], [0, 0, 0, 1]])
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _remove_stale(folder: Path, modality: str, keep: set[str]) -> None:
    """Drop phantom patients left over from a run with a larger n, so the cohort matches cfg."""
    if not folder.is_dir():
        return
    pattern = re.compile(rf"{modality}\d{{3,}}")
    for path in folder.iterdir():
        if path.is_dir() and pattern.fullmatch(path.name) and path.name not in keep:
            shutil.rmtree(path)


def _check(cfg: PhantomConfig) -> None:
    problems = [
        f"{name} must be >= {low}, got {value}"
        for name, value, low in (("seed", cfg.seed, 0), ("n_ct", cfg.n_ct, 0),
                                 ("n_mri", cfg.n_mri, 0), ("size", cfg.size, 16),
                                 ("slices", cfg.slices, 2))
        if value < low
    ]
    if cfg.spacing_mm <= 0:
        problems.append(f"spacing_mm must be > 0, got {cfg.spacing_mm}")
    if problems:
        raise ValueError("phantom config: " + "; ".join(problems))


def holds_phantom(raw: Path) -> bool:
    """Only ct/ctNNN and mri/mriNNN folders, as write_phantom names them."""
    names = {p.name for p in raw.iterdir()}
    return names <= {"ct", "mri"} and all(
        re.fullmatch(rf"\.?{m}\d{{3,}}.*", p.name) for m in names for p in (raw / m).iterdir())
