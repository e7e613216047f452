"""The `real-sample` dataset: real abdominal CT and MRI from TotalSegmentator's test files.

Source: the `totalsegmentator==2.18.0` source distribution on PyPI (Apache-2.0), fetched once by
`make data DATASET=real-sample` with pip (hash-checked) and only read here as a tar archive: nothing
in it is imported or run by liversynth. Its `tests/reference_files/` hold

- example_ct_sm.nii.gz + example_seg.nii.gz: abdominal CT, 3 mm, 30 slices, and its mask;
- example_ct_dicom/ + example_seg_dicom.nii.gz: 20 CT slices as JPEG 2000 DICOM, and its mask;
- example_mr_sm.nii.gz + example_seg_mr.nii.gz: abdominal MRI, 3 mm, 20 slices, and its mask.

The masks are TotalSegmentator *model outputs* (multi-label, liver = 5), not expert ground truth.
They are copied byte for byte into the raw layout (the DICOM files too, still JPEG 2000), except
the single MRI volume, which is cut into `MRI_SLABS` slabs of neighbouring slices so that prepare
has MRI "patients" for every split. Those slabs are one person, so test slabs share anatomy with
training slabs: the dataset is a smoke test of the machinery on real scans, not an experiment.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np

from liversynth.utils.files import write_atomic_dir

__all__ = [
    "CT_NIFTI", "MANIFEST", "MRI_SLABS", "PROVENANCE", "RealSampleError", "SDIST_NAME", "SLAB_SPLITS",
    "expected_sha256", "holds_real_sample", "sha256_of", "write_real_sample"
]

SDIST_NAME = "totalsegmentator-2.18.0.tar.gz"
_FILES = "totalsegmentator-2.18.0/tests/reference_files/"
CT_NIFTI = {"image.nii.gz": "example_ct_sm.nii.gz", "label.nii.gz": "example_seg.nii.gz"}
CT_DICOM_DIR, CT_DICOM_LABEL = "example_ct_dicom/", "example_seg_dicom.nii.gz"
MRI_IMAGE, MRI_LABEL = "example_mr_sm.nii.gz", "example_seg_mr.nii.gz"
MRI_SLABS = 5
# Which slab goes where (slab 0 is the most inferior): two test slabs give a paired comparison.
SLAB_SPLITS = {"mri_test": [0, 4], "mri_train": [1], "mri_val": [2], "mri_unlabelled": [3]}
MANIFEST = "splits.json"
PROVENANCE = "SOURCE.md"
_MARKER = "# real-sample"


class RealSampleError(ValueError):
    """The downloaded archive is missing, altered, or lacks an expected file."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(checksum_file: Path) -> str:
    """The recorded digest, from a `sha256sum`-style line: '<hex>  <file name>'."""
    for line in Path(checksum_file).read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*") == SDIST_NAME:
            return fields[0].lower()
    raise RealSampleError(f"{checksum_file}: has no sha256 line for {SDIST_NAME}")


def holds_real_sample(raw_dir: Path) -> bool:
    provenance = Path(raw_dir) / PROVENANCE
    return provenance.is_file() and provenance.read_text().startswith(_MARKER)


def write_real_sample(sdist: Path, sha256: str, raw_dir: Path) -> None:
    """Verify `sdist` against `sha256`, then replace raw_dir with the real-sample raw layout."""
    sdist = Path(sdist)
    if not sdist.is_file():
        raise RealSampleError(f"{sdist}: not found; fetch it with `make data DATASET=real-sample`")
    actual = sha256_of(sdist)
    if actual != sha256:
        raise RealSampleError(f"{sdist}: sha256 {actual} does not match the recorded {sha256}; "
                              f"delete it and fetch again")
    files = _raw_files(sdist)
    files[PROVENANCE] = _provenance(sha256).encode()

    def write(tmp: Path) -> None:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)

    write_atomic_dir(Path(raw_dir), write)


def _raw_files(sdist: Path) -> dict[str, bytes]:
    """{path under raw_dir: bytes}, read from the archive by exact member name (nothing extracted)."""
    with tarfile.open(sdist, "r:gz") as tar:
        def member(name: str) -> bytes:
            try:
                info = tar.getmember(_FILES + name)
            except KeyError:
                raise RealSampleError(f"{sdist}: lacks {_FILES + name}") from None
            handle = tar.extractfile(info) if info.isfile() else None
            if handle is None:
                raise RealSampleError(f"{sdist}: {_FILES + name} is not a regular file")
            return handle.read()

        files = {f"ct/ts-ct-nifti/{dst}": member(src) for dst, src in CT_NIFTI.items()}
        dicom = sorted(m.name for m in tar.getmembers()
                       if m.isfile() and m.name.startswith(_FILES + CT_DICOM_DIR))
        if not dicom:
            raise RealSampleError(f"{sdist}: lacks {_FILES + CT_DICOM_DIR}")
        for name in dicom:
            files[f"ct/ts-ct-dicom/image/{Path(name).name}"] = member(name.removeprefix(_FILES))
        files["ct/ts-ct-dicom/label.nii.gz"] = member(CT_DICOM_LABEL)
        files.update(_mri_slabs(member(MRI_IMAGE), member(MRI_LABEL)))
    manifest = {split: [f"mri/ts-mr-slab{k}" for k in slabs] for split, slabs in SLAB_SPLITS.items()}
    manifest["ct_train"] = ["ct/ts-ct-dicom", "ct/ts-ct-nifti"]
    files[MANIFEST] = (json.dumps(dict(sorted(manifest.items())), indent=2) + "\n").encode()
    return files


def _mri_slabs(image_gz: bytes, label_gz: bytes) -> dict[str, bytes]:
    """Cut image and mask into MRI_SLABS runs of neighbouring axial slices (affines shifted)."""
    image = nib.Nifti1Image.from_bytes(gzip.decompress(image_gz))
    label = nib.Nifti1Image.from_bytes(gzip.decompress(label_gz))
    axis = int(np.argmax(np.abs(image.affine[2, :3])))  # the voxel axis closest to superior
    bounds = np.linspace(0, image.shape[axis], MRI_SLABS + 1).round().astype(int)
    files = {}
    for k, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        cut = tuple(slice(start, stop) if i == axis else slice(None) for i in range(3))
        for name, img in (("image.nii.gz", image), ("label.nii.gz", label)):
            part = img.slicer[cut]
            # Materialised and gzipped without a timestamp: same archive -> same bytes -> same DVC hash.
            part = nib.Nifti1Image(np.asanyarray(part.dataobj), part.affine, part.header)
            files[f"mri/ts-mr-slab{k}/{name}"] = gzip.compress(part.to_bytes(), compresslevel=6, mtime=0)
    return files


def _provenance(sha256: str) -> str:
    return f"""{_MARKER}

Written by liversynth (src/liversynth/real_sample.py) from the test files of the
`totalsegmentator==2.18.0` source distribution on PyPI ({SDIST_NAME},
sha256 {sha256}), Apache License 2.0, https://github.com/wasserth/TotalSegmentator.

- ct/ts-ct-nifti: example_ct_sm.nii.gz with example_seg.nii.gz
- ct/ts-ct-dicom: example_ct_dicom/ (JPEG 2000 DICOM, unchanged) with example_seg_dicom.nii.gz
- mri/ts-mr-slab0..{MRI_SLABS - 1}: example_mr_sm.nii.gz and example_seg_mr.nii.gz cut into {MRI_SLABS} slabs
  of neighbouring slices (one person: a smoke test, not an evaluation)
- {MANIFEST}: the split of those folders

The masks are TotalSegmentator model outputs (liver = 5), not expert ground truth.
"""
