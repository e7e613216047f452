"""Raw volumes -> normalised 2D slice sets with patient-level splits.

CT is windowed in HU (a physical scale), MRI by per-volume percentiles (MRI has no absolute scale).
Volumes are streamed one at a time into per-patient chunks and then into memory-mapped outputs,
so peak memory is one volume plus the write buffer, whatever the cohort size.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from liversynth.config import Params, PrepareConfig
from liversynth.data.split_manifest import read_split_manifest
from liversynth.data.readers import Volume, reader_for, require_liver
from liversynth.data.resample import from_common_grid, to_common_grid
from liversynth.utils.files import write_atomic_dir
from liversynth.data.slice_set import SPLITS

__all__ = ["MRI_SPLIT_NAMES", "SplitPlan", "normalise", "plan_splits", "prepare_dataset", "resize_slices",
           "resize_stack", "restore_slices", "to_network_slices"]

MRI_SPLIT_NAMES = {"train": "mri_train", "unlabelled": "mri_unlabelled", "val": "mri_val", "test": "mri_test"}


@dataclass(frozen=True)
class SplitPlan:
    """Which patients go to which split; a patient is in exactly one split."""

    patients: dict[str, list[str]]

    def to_json(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.patients.items()}


def plan_splits(ct_patients: list[str], mri_patients: list[str], cfg: PrepareConfig) -> SplitPlan:
    """All CT patients train EssNet; MRI patients are shuffled (seeded) into the configured counts."""
    unknown = set(cfg.mri_splits) - set(MRI_SPLIT_NAMES)
    if unknown:
        raise ValueError(f"prepare.mri_splits: unknown split(s) {sorted(unknown)}")
    wanted = sum(cfg.mri_splits.values())
    if len(mri_patients) < wanted:
        raise ValueError(
            f"prepare.mri_splits asks for {wanted} MRI patients "
            f"({cfg.mri_splits}) but the raw data has {len(mri_patients)}"
        )
    if not ct_patients:
        raise ValueError("no CT patients: EssNet needs a labelled CT cohort")
    order = np.random.default_rng(cfg.split_seed).permutation(sorted(mri_patients))
    plan: dict[str, list[str]] = {"ct_train": sorted(ct_patients)}
    start = 0
    for key in ("train", "unlabelled", "val", "test"):
        n = cfg.mri_splits.get(key, 0)
        plan[MRI_SPLIT_NAMES[key]] = sorted(order[start : start + n].tolist())
        start += n
    return SplitPlan(plan)


def normalise(volume: Volume, cfg: PrepareConfig) -> np.ndarray:
    """Map intensities to [-1, 1]: HU window for CT, robust percentiles for MRI."""
    image = volume.image.astype(np.float32)
    if volume.modality == "ct":
        lo, hi = cfg.ct_window
    else:
        body = image[image > np.percentile(image, 5)]
        lo, hi = np.percentile(body if body.size else image, cfg.mri_percentiles)
        hi = max(hi, lo + 1e-6)
    return np.clip((image - lo) / (hi - lo) * 2.0 - 1.0, -1.0, 1.0)


def resize_stack(stack: np.ndarray, shape: tuple[int, int], mode: str) -> np.ndarray:
    """Resize (Z, H, W) float slices to (Z, *shape): "bilinear" for images, "nearest"/"nearest-exact" for masks."""
    x = torch.from_numpy(np.ascontiguousarray(stack, np.float32))[:, None]
    extra = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(x, size=tuple(shape), mode=mode, **extra)[:, 0].numpy()


def resize_slices(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize (Z, H, W) slices to (Z, size, size): bilinear for images, nearest for labels."""
    if image.shape[1:] == (size, size):
        return image, label
    return resize_stack(image, (size, size), "bilinear"), resize_stack(label, (size, size), "nearest").astype(np.uint8)


def to_network_slices(volume: Volume, cfg: PrepareConfig, spacing_mm: float | None) -> tuple[np.ndarray, np.ndarray]:
    """What `prepare` does to every volume: the common grid (when `spacing_mm`), normalisation, resizing
    to (Z, image_size, image_size). Returns (images in [-1, 1], labels). Inference uses it too."""
    if spacing_mm:
        volume = to_common_grid(volume, float(spacing_mm), cfg.image_size)
    return resize_slices(normalise(volume, cfg), volume.label, cfg.image_size)


def restore_slices(stack: np.ndarray, shape: tuple[int, int], spacing: tuple[float, float], image_size: int,
                   spacing_mm: float | None, mode: str, fill: float = 0.0) -> np.ndarray:
    """The inverse of `to_network_slices`' geometry: (Z, image_size, image_size) network-grid slices back
    on the scan's own (rows, cols) `shape` of `spacing` mm. `mode` "nearest-exact" for masks, "bilinear"
    for images; `fill` is what lies outside the common grid's field of view."""
    if stack.shape[1:] != (image_size, image_size):
        raise ValueError(f"expected ({image_size}, {image_size}) slices, got {stack.shape[1:]}")
    if spacing_mm:
        return from_common_grid(stack, shape, spacing, float(spacing_mm), mode, fill)
    if tuple(shape) == (image_size, image_size):
        return np.asarray(stack, np.float32)
    return resize_stack(stack, shape, mode)


def prepare_dataset(params: Params, raw_dir: Path, out_dir: Path) -> dict:
    """Read every raw volume once and write `out_dir/<split>/` slice sets plus `manifest.json`."""
    data = params.data
    reader = reader_for(data.dataset, mr_sequence=data.mr_sequence)
    cfg = params.prepare
    patients = {m: reader.list_patients(raw_dir, m) for m in ("ct", "mri")}
    if data.manifest:
        plan = SplitPlan(read_split_manifest(Path(data.manifest), raw_dir, reader))
    else:
        plan = plan_splits(patients["ct"], patients["mri"], cfg)
    manifest: dict = {"image_size": cfg.image_size, "splits": {}}

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(dir=tmp) as chunks:
            for split in SPLITS:
                names = plan.patients.get(split, [])
                modality = "ct" if split.startswith("ct") else "mri"
                label_value = data.liver_label[modality]
                files = []
                for patient in tqdm(names, desc=f"prepare {split}", leave=False):
                    vol = reader.read_patient(raw_dir, modality, patient, label_value,
                                              data.label_values.get(modality))
                    if split != "mri_unlabelled":  # its labels are never used
                        require_liver(vol, label_value)
                    img, lab = to_network_slices(vol, cfg, data.spacing_mm)
                    chunk = Path(chunks) / f"{split}-{patient}.npz"
                    np.savez(chunk, images=img[:, None], labels=lab)
                    files.append((patient, chunk))
                n = _merge_chunks(files, tmp / split, cfg.image_size)
                manifest["splits"][split] = {"patients": names, "slices": n}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))

    write_atomic_dir(out_dir, write)
    return manifest


def _merge_chunks(files: list[tuple[str, Path]], folder: Path, size: int) -> int:
    """Concatenate per-patient chunks into split arrays, one chunk in memory at a time.

    Written as a .npy header plus sequential appends rather than through a writable memory map:
    a map's written pages stay in the process's RSS until the kernel drops them, which made peak
    memory grow with the cohort (+51 MiB from 32 to 128 patients; flat now, see benchmarks).
    """
    folder.mkdir(parents=True)
    counts = []
    for _, path in files:
        with np.load(path) as z:
            counts.append(len(z["labels"]))
    total = sum(counts)
    patients = np.empty(total, dtype="<U64")
    with open(folder / "images.npy", "wb") as fi, open(folder / "labels.npy", "wb") as fl:
        _npy_header(fi, np.float32, (total, 1, size, size))
        _npy_header(fl, np.uint8, (total, size, size))
        start = 0
        for (patient, path), n in zip(files, counts):
            with np.load(path) as z:
                np.ascontiguousarray(z["images"], np.float32).tofile(fi)
                np.ascontiguousarray(z["labels"], np.uint8).tofile(fl)
            patients[start : start + n] = patient
            start += n
    np.save(folder / "patients.npy", patients)
    return total


def _npy_header(fh, dtype: type, shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_1_0(
        fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
