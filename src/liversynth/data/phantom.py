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
must honour the affine (raw.py reorients to RAS, then to display orientation). Anatomy is defined
in coordinates normalised to the field of view, so it scales with `size * spacing_mm`; along z it is
defined per fraction of the stack (index 0 = most inferior slice).

Same seed -> byte-identical files: each patient draws from its own generator seeded by
(seed, modality, index), and gzip is written with mtime 0 and no file name.
"""
from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter

from liversynth.config import PhantomConfig
from liversynth.utils.files import write_atomic_dir

__all__ = [
    "MODALITIES", "CohortShift", "SLICE_THICKNESS_MM", "cohort_shift", "Tissue", "draw_anatomy", "holds_phantom", "make_patient",
    "patient_rng", "render_ct", "render_mri", "to_label", "write_phantom"
]

SLICE_THICKNESS_MM = 8.0
MODALITIES = ("ct", "mri")


class Tissue(IntEnum):
    """Finer than the labels: intensities are rendered per tissue, labels are derived from it."""

    AIR = 0  # outside the body and bowel gas
    FAT = 1  # subcutaneous
    VISCERAL_FAT = 2
    MUSCLE = 3
    BOWEL = 4
    LIVER = 5
    LIVER_VESSEL = 6
    SPLEEN = 7
    KIDNEY = 8
    BONE = 9
    AORTA = 10
    CSF = 11  # spinal canal: near water on CT, the brightest thing on T2
    LESION = 12  # focal liver lesion (cyst/metastasis-like): hypodense on CT, T2-bright; labelled liver


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


@dataclass(frozen=True)
class CohortShift:
    """How one MRI patient's anatomy and scan differ from the CT cohort's, as real cohorts do: the
    stack covers a more superior range, a larger field of view, the body sits off-centre, a larger
    liver, and focal lesions in some patients. All zero/one = the CT cohort's distribution."""

    z_offset: float = 0.0  # added to the normalised slice position (0..1, inferior -> superior)
    zoom: float = 1.0  # field of view relative to the CT cohort's (> 1: anatomy looks smaller)
    centre: tuple[float, float] = (0.0, 0.0)  # body centre offset (u, v), in half-FOV units
    liver_scale: float = 1.0
    lesions: int = 0
    lesion_seed: int = 0


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


def draw_anatomy(rng: np.random.Generator, size: int, slices: int, shift: CohortShift = CohortShift()) -> np.ndarray:
    """A Tissue map (Z, H, W): z from inferior to superior, rows anterior->posterior,
    columns patient's right -> left (radiological display)."""
    t = ((np.arange(slices) + 0.5) / slices)[:, None, None] + shift.z_offset
    c = ((np.arange(size) + 0.5) / size * 2 - 1) * shift.zoom
    v, u = c[None, :, None] - shift.centre[1], c[None, None, :] - shift.centre[0]

    # Body frame: x towards the patient's left, y posterior, origin at the body centre.
    uc, vc, phi = rng.uniform(-.05, .05), rng.uniform(-.04, .06), rng.uniform(-.08, .08)
    x = np.cos(phi) * (u - uc) + np.sin(phi) * (v - vc)
    y = -np.sin(phi) * (u - uc) + np.cos(phi) * (v - vc)
    a0, b0 = rng.uniform(.64, .86), rng.uniform(.46, .62)
    a = a0 * (1 + .05 * _waves(rng, (t,), 2, .7))  # the outline drifts smoothly along z
    b = b0 * (1 + .05 * _waves(rng, (t,), 2, .7))
    theta = np.arctan2(y, x)
    rho = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    edge = 1 + sum(rng.uniform(0, .025) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
                   for k in (2, 3, 4))
    # Subcutaneous fat is thicker anteriorly than over the back, as in real patients.
    f0 = rng.uniform(.05, .22)
    wall_in = edge - f0 * (1 - .35 * np.sin(theta + rng.uniform(-.3, .3)))
    wall_w = rng.uniform(.06, .1)
    cavity = rho < wall_in - wall_w

    tissue = np.zeros((slices, size, size), np.uint8)
    tissue[rho < edge] = Tissue.FAT
    tissue[rho < wall_in] = Tissue.MUSCLE
    # Bowel loops mixed with visceral fat, plus a little gas.
    coords = (t * .7, v, u)
    viscera = _waves(rng, coords, 8, 2.5) > rng.uniform(-.6, .5)
    tissue[cavity] = np.where(viscera, Tissue.VISCERAL_FAT, Tissue.BOWEL)[cavity]
    gas = cavity & ~viscera & (_waves(rng, coords, 6, 3.5) > 1.5)
    tissue[gas] = Tissue.AIR

    r_vb = rng.uniform(.075, .095)
    y_s = b0 * (1 - .65 * f0) - r_vb - rng.uniform(.17, .22)  # vertebral body centre
    grid = (x, y, t)

    _paint_liver(rng, tissue, grid, cavity, a0 * shift.liver_scale, b0 * shift.liver_scale)
    if shift.lesions:  # own generator: the CT cohort's draws stay exactly as they were
        _paint_lesions(np.random.default_rng(shift.lesion_seed), tissue, grid, shift.lesions)
    spleen = _ellipsoid(grid, _deform(rng, grid, .03), a0 * rng.uniform(.45, .6),
                        b0 * rng.uniform(.05, .35), rng.uniform(.65, .9), rng.uniform(.07, .11),
                        rng.uniform(.14, .2), rng.uniform(.18, .32), -rng.uniform(.3, .8))
    tissue[cavity & spleen] = Tissue.SPLEEN
    t_right = rng.uniform(.22, .4)  # the right kidney sits lower, pushed down by the liver
    for side, t0 in ((-1, t_right), (1, t_right + rng.uniform(.03, .12))):
        kidney = _ellipsoid(grid, (0, 0, 0), side * rng.uniform(.25, .33),
                            y_s + rng.uniform(-.03, .03), t0, rng.uniform(.075, .095),
                            rng.uniform(.11, .14), rng.uniform(.2, .3), side * rng.uniform(.3, .7))
        tissue[(rho < wall_in) & kidney] = Tissue.KIDNEY

    # Psoas appears and thickens towards the pelvis; paraspinal muscles flank the neural arch.
    r_ps = np.clip(.07 * (.6 - t) / .6, 0, None)
    for side in (-1, 1):
        psoas = (x - side * (r_vb + .05)) ** 2 + (y - y_s - .01) ** 2 < r_ps ** 2
        para = ((x - side * .11) / .085) ** 2 + ((y - y_s - r_vb - .05) / .075) ** 2 < 1
        tissue[(rho < wall_in) & (psoas | para)] = Tissue.MUSCLE
    r_ao = rng.uniform(.028, .04)
    aorta = (x - rng.uniform(0, .04)) ** 2 + (y - (y_s - r_vb - r_ao - .01)) ** 2 < r_ao ** 2
    tissue[np.broadcast_to(aorta, tissue.shape)] = Tissue.AORTA

    r_arch = np.hypot(x, y - (y_s + r_vb + .05))
    bone = ((x ** 2 + (y - y_s) ** 2 < r_vb ** 2) | (r_arch < .055)
            | ((x / .02) ** 2 + ((y - y_s - r_vb - .12) / .05) ** 2 < 1))
    tissue[np.broadcast_to(bone, tissue.shape)] = Tissue.BONE
    tissue[np.broadcast_to(r_arch < .03, tissue.shape)] = Tissue.CSF
    # Rib cross-sections in the upper abdomen, sloping (rotating) along z; none anteriorly.
    ribs = ((rho > wall_in - wall_w) & (rho < wall_in) & (t > .35) & (np.sin(theta) > -.5)
            & (np.cos(rng.integers(7, 10) * theta + rng.uniform(0, 2 * np.pi) + 4 * t) > .8))
    tissue[ribs] = Tissue.BONE
    return tissue


def _paint_liver(rng: np.random.Generator, tissue: np.ndarray, grid: tuple, cavity: np.ndarray,
                 a0: float, b0: float) -> None:
    """Union of a right lobe, a left lobe crossing the midline and 1-2 random lobules, warped by a
    smooth random field; most of its mass is superior, so it shrinks towards the bottom."""
    warp = _deform(rng, grid, rng.uniform(.03, .07))
    cx, cy, ct = -a0 * rng.uniform(.3, .45), rng.uniform(-.12, .08), rng.uniform(.6, .85)
    ax, ay = a0 * rng.uniform(.38, .55), b0 * rng.uniform(.6, .85)
    liver = _ellipsoid(grid, warp, cx, cy, ct, ax, ay, rng.uniform(.45, .75), rng.uniform(-.3, .3))
    liver |= _ellipsoid(grid, warp, a0 * rng.uniform(-.05, .2), -b0 * rng.uniform(.3, .55),
                        ct + rng.uniform(0, .15), a0 * rng.uniform(.2, .45),
                        b0 * rng.uniform(.15, .3), rng.uniform(.2, .4), rng.uniform(-.3, .3))
    for _ in range(rng.integers(1, 3)):
        liver |= _ellipsoid(grid, warp, cx + rng.normal(0, .1), cy + rng.normal(0, .1),
                            ct - rng.uniform(.1, .4), rng.uniform(.12, .25), rng.uniform(.12, .25),
                            rng.uniform(.15, .3), rng.uniform(-1, 1))
    liver &= cavity
    tissue[liver] = Tissue.LIVER
    x, y, t = grid
    for _ in range(rng.integers(2, 5)):  # vessels meandering through the liver along z
        px = cx + rng.uniform(-.35, .35) * ax + .04 * np.sin(6 * t + rng.uniform(0, 6))
        py = cy + rng.uniform(-.35, .35) * ay + .04 * np.cos(6 * t + rng.uniform(0, 6))
        vessel = (x - px) ** 2 + (y - py) ** 2 < rng.uniform(.02, .03) ** 2
        tissue[liver & vessel] = Tissue.LIVER_VESSEL


def _paint_lesions(rng: np.random.Generator, tissue: np.ndarray, grid: tuple, count: int) -> None:
    """Round lesions centred inside the liver (part of the liver label, as in CHAOS masks)."""
    liver = np.argwhere(tissue == Tissue.LIVER)
    x, y, t = (np.broadcast_to(g, tissue.shape) for g in grid)
    for _ in range(count if len(liver) else 0):
        z, r, c = liver[rng.integers(len(liver))]
        radius = rng.uniform(.04, .09)
        d2 = (x - x[z, r, c]) ** 2 + (y - y[z, r, c]) ** 2 + ((t - t[z, r, c]) * .5) ** 2
        tissue[(d2 < radius ** 2) & (tissue == Tissue.LIVER)] = Tissue.LESION


def _ellipsoid(grid: tuple, warp: tuple, cx: float, cy: float, ct: float, ax: float, ay: float,
               at: float, angle: float = 0.0) -> np.ndarray:
    """Inside of an ellipsoid rotated in-plane by `angle`, evaluated on warped coordinates."""
    dx, dy, dt = (g + w - c for g, w, c in zip(grid, warp, (cx, cy, ct)))
    xr = np.cos(angle) * dx + np.sin(angle) * dy
    yr = -np.sin(angle) * dx + np.cos(angle) * dy
    return (xr / ax) ** 2 + (yr / ay) ** 2 + (dt / at) ** 2 < 1


def _deform(rng: np.random.Generator, grid: tuple, amplitude: float) -> tuple:
    x, y, t = grid
    coords = (t * .7, y, x)
    return tuple(amplitude * _waves(rng, coords, 4, 1.2) for _ in range(3))


def _waves(rng: np.random.Generator, coords: tuple, n: int, freq: float) -> np.ndarray:
    """Sum of n random plane waves (up to `freq` cycles per unit): a cheap, smooth, exactly
    reproducible random field with roughly unit variance on any grid."""
    out = np.zeros(np.broadcast_shapes(*(np.shape(c) for c in coords)))
    for _ in range(n):
        k = rng.uniform(-freq, freq, len(coords))
        phase = rng.uniform(0, 2 * np.pi)
        out = out + np.cos(2 * np.pi * sum(ki * ci for ki, ci in zip(k, coords)) + phase)
    return out * np.sqrt(2.0 / n)


def _texture(rng: np.random.Generator, shape: tuple[int, ...], freq: float) -> np.ndarray:
    z, h, w = shape
    coords = (np.linspace(0, .7, z)[:, None, None], np.linspace(-1, 1, h)[None, :, None],
              np.linspace(-1, 1, w)[None, None, :])
    return np.broadcast_to(_waves(rng, coords, 12, freq), shape)


def render_ct(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units: per-patient jittered means, texture, partial-volume blur, Gaussian noise."""
    table = np.asarray(_CT, np.float64)
    base = len(table) - 1  # the lesion row draws nothing, so lesion-free patients stay as they were
    mean = np.append(table[:base, 0] + rng.normal(0, 1, base) * table[:base, 1], 0.0)
    mean[Tissue.LIVER] = rng.uniform(50, 75)
    mean[Tissue.SPLEEN] = rng.uniform(40, 50)  # never above the liver: the CT side of the story
    mean[Tissue.BONE] = rng.uniform(300, 700)
    mean[Tissue.LESION] = mean[Tissue.LIVER] - table[Tissue.LESION, 0] - 20  # hypodense
    image = mean[tissue] + table[tissue, 2] * _texture(rng, tissue.shape, 4)
    image = gaussian_filter(image, (.3, .6, .6))
    image += rng.normal(0, rng.uniform(10, 20), image.shape)
    return np.clip(np.round(image), -1024, 3071).astype(np.float32)


def render_mri(tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """T2-like: jittered contrasts, texture, blur, smooth multiplicative bias, Rician noise."""
    table = np.asarray(_MRI, np.float64)
    base = len(table) - 1  # the lesion row draws nothing (see render_ct)
    jitter = np.append(rng.uniform(.85, 1.15, base), 1.0)
    mean = table[:, 0] * jitter * rng.uniform(.8, 1.2)
    image = mean[tissue] * (1 + table[tissue, 1] * _texture(rng, tissue.shape, 4))
    image = gaussian_filter(image, (.3, .6, .6))
    field = _texture(rng, tissue.shape, .5)
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
