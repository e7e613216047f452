"""The procedural phantom (determinism, anatomy, contrast) and the raw NIfTI reader (orientation, errors)."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from liversynth.config import PhantomConfig
from liversynth.data.anatomy import Tissue, draw_anatomy
from liversynth.data.phantom import (
    make_patient, patient_rng, render_ct, render_mri, write_phantom,
)
from liversynth.data.readers import RawDataError, list_patients, read_patient, reader_for

SMALL = PhantomConfig(seed=3, n_ct=2, n_mri=2, size=64, slices=16)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_phantom(SMALL, root)
    return root


def test_same_seed_same_bytes_other_seed_differs(raw, tmp_path):
    write_phantom(SMALL, tmp_path / "again")
    write_phantom(PhantomConfig(seed=4, n_ct=2, n_mri=2), tmp_path / "other")
    first, again, other = _digests(raw), _digests(tmp_path / "again"), _digests(tmp_path / "other")
    assert len(first) == 8 and first == again
    assert set(first) == set(other)
    assert all(first[k] != other[k] for k in first)


def test_layout_and_stale_patients_removed(raw, tmp_path):
    assert list_patients(raw, "ct") == ["ct000", "ct001"]
    assert list_patients(raw, "mri") == ["mri000", "mri001"]
    write_phantom(PhantomConfig(n_ct=3, n_mri=1, size=32, slices=4), tmp_path)
    write_phantom(PhantomConfig(n_ct=1, n_mri=1, size=32, slices=4), tmp_path)
    assert list_patients(tmp_path, "ct") == ["ct000"]


def test_anatomy_labels_and_variation():
    livers = []
    for modality in ("ct", "mri"):
        for index in range(3):
            _, label = make_patient(SMALL, modality, index)
            assert label.shape == (16, 64, 64) and label.dtype == np.uint8
            assert set(np.unique(label)) == {0, 1, 2, 3, 4, 5}
            assert (label == 1).any(axis=(1, 2)).mean() >= 0.6  # liver in most slices
            liver_area = (label == 1).sum(axis=(1, 2))
            assert liver_area[-4:].mean() > liver_area[:4].mean()  # shrinks towards the bottom
            livers.append(int((label == 1).sum()))
    assert max(livers) > 1.3 * min(livers)  # sizes vary between patients


def _tissue_medians(render, n: int = 3) -> dict[Tissue, float]:
    """Median per tissue over in-plane eroded masks: at 6 mm pixels thin structures (abdominal
    wall, vertebral ring) are mostly partial volume, which says nothing about the tissue contrast."""
    cross = np.zeros((1, 3, 3), bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    values: dict[Tissue, list[float]] = {t: [] for t in Tissue}
    for index in range(n):
        tissue = draw_anatomy(patient_rng(0, "ct", index), 64, 16)
        image = render(tissue, patient_rng(0, "ct", index, stream=1))
        for t in Tissue:
            core = binary_erosion(tissue == t, cross)
            if core.sum() > 20:
                values[t].append(float(np.median(image[core])))
    return {t: float(np.median(v)) for t, v in values.items() if v}


def test_ct_contrast_in_hounsfield_units():
    hu = _tissue_medians(render_ct)
    assert 50 <= hu[Tissue.LIVER] <= 75
    assert hu[Tissue.FAT] < -50 and hu[Tissue.VISCERAL_FAT] < -50
    assert hu[Tissue.AIR] < -900 and hu[Tissue.BONE] > 250
    assert hu[Tissue.SPLEEN] < hu[Tissue.LIVER] < hu[Tissue.KIDNEY]


def test_mri_contrast_is_not_a_monotone_map_of_ct():
    mr = _tissue_medians(render_mri)
    assert mr[Tissue.FAT] > mr[Tissue.LIVER] and mr[Tissue.SPLEEN] > mr[Tissue.LIVER]
    assert mr[Tissue.LIVER] > mr[Tissue.MUSCLE] and mr[Tissue.LIVER] > mr[Tissue.BONE]
    assert mr[Tissue.AIR] < 0.2 * mr[Tissue.LIVER]  # only the Rician noise floor


def test_reader_round_trip_in_display_orientation(raw):
    volume = read_patient(raw, "ct", "ct001", liver_label=1)
    image, label = make_patient(SMALL, "ct", 1)
    assert volume.image.dtype == np.float32 and volume.label.dtype == np.uint8
    np.testing.assert_array_equal(volume.image, image)
    np.testing.assert_array_equal(volume.label, (label == 1).astype(np.uint8))
    assert volume.spacing == (8.0, 6.0, 6.0)
    assert volume.source == raw / "ct" / "ct001"
    for modality in ("ct", "mri"):
        for patient in list_patients(raw, modality):
            rows, cols = np.nonzero(read_patient(raw, modality, patient, 1).label.any(axis=0))
            assert cols.mean() < 32  # patient's right is on the image left
            spine_rows = np.nonzero(read_patient(raw, modality, patient, 4).label)[1]
            assert spine_rows.mean() > 32  # anterior up, spine at the back


def test_reader_honours_any_affine_orientation(raw, tmp_path):
    """The same anatomy stored in RAS voxel order must read back identically."""
    reference = read_patient(raw, "ct", "ct000", 1)
    folder = tmp_path / "ct" / "p"
    folder.mkdir(parents=True)
    for name, src in (("image", "image.nii.gz"), ("label", "label.nii.gz")):
        canonical = nib.as_closest_canonical(nib.load(raw / "ct" / "ct000" / src))
        nib.save(canonical, folder / f"{name}.nii")
    flipped = read_patient(tmp_path, "ct", "p", 1)
    np.testing.assert_array_equal(flipped.image, reference.image)
    np.testing.assert_array_equal(flipped.label, reference.label)


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)


def _pair(root: Path, image: np.ndarray, label: np.ndarray, label_affine=None) -> None:
    _save(root / "ct" / "p1" / "image.nii.gz", image)
    _save(root / "ct" / "p1" / "label.nii.gz", label, label_affine)


GOOD = np.zeros((8, 8, 4), np.float32)
MASK = np.zeros((8, 8, 4), np.uint8)


@pytest.mark.parametrize("case, bad_file, fragment", [
    ("truncated", "image.nii.gz", "not a readable NIfTI"),
    ("text", "image.nii.gz", "not a readable NIfTI"),
    ("4d", "image.nii.gz", "3D"),
    ("2d", "label.nii.gz", "3D"),
    ("shape", "label.nii.gz", "shape"),
    ("affine", "label.nii.gz", "affine"),
    ("nan", "image.nii.gz", "NaN"),
    ("float_label", "label.nii.gz", "not integers"),
    ("missing_label", "label.nii.gz", "missing"),
])
def test_bad_inputs_raise_naming_the_file(tmp_path, case, bad_file, fragment):
    _pair(tmp_path, GOOD, MASK)
    target = tmp_path / "ct" / "p1" / bad_file
    if case == "truncated":
        _save(target, np.random.default_rng(0).normal(size=(16, 16, 8)).astype(np.float32))
        target.write_bytes(target.read_bytes()[:300])
    elif case == "text":
        target.write_text("this is not an image\n")
    elif case == "4d":
        _save(target, np.zeros((8, 8, 4, 2), np.float32))
    elif case == "2d":
        _save(target, np.zeros((8, 8), np.uint8))
    elif case == "shape":
        _save(target, np.zeros((8, 8, 5), np.uint8))
    elif case == "affine":
        _save(target, MASK, np.diag([2.0, 1.0, 1.0, 1.0]))
    elif case == "nan":
        _save(target, np.where(np.arange(256).reshape(8, 8, 4) == 7, np.nan, 0).astype(np.float32))
    elif case == "float_label":
        _save(target, np.full((8, 8, 4), 0.5, np.float32))
    elif case == "missing_label":
        target.unlink()
    with pytest.raises(RawDataError, match=fragment) as err:
        read_patient(tmp_path, "ct", "p1", liver_label=1)
    assert str(target) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_good_minimal_pair_reads(tmp_path):
    _pair(tmp_path, GOOD, MASK)
    assert read_patient(tmp_path, "ct", "p1", 1).image.shape == (4, 8, 8)


def test_missing_modality_folder_and_zero_patients(tmp_path):
    with pytest.raises(RawDataError, match="missing") as err:
        list_patients(tmp_path, "mri")
    assert str(tmp_path / "mri") in str(err.value)
    (tmp_path / "mri" / ".mri000.tmp").mkdir(parents=True)  # an unfinished atomic write
    with pytest.raises(RawDataError, match="no patient") as err:
        list_patients(tmp_path, "mri")
    assert str(tmp_path / "mri") in str(err.value)


def test_reader_factory():
    assert type(reader_for("phantom")) is type(reader_for("nifti"))
    with pytest.raises(ValueError, match="unknown dataset"):
        reader_for("chaos-typo")
    with pytest.raises(ValueError, match="unknown modality"):
        list_patients(Path("."), "pet")


def test_gzip_has_no_timestamp(raw):
    data = (raw / "ct" / "ct000" / "image.nii.gz").read_bytes()
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\x00\x00\x00\x00"
    assert gzip.decompress(data)[344:348] == b"n+1\x00"


def test_mri_cohort_shift_moves_anatomy_and_leaves_ct_alone() -> None:
    import numpy as np

    from liversynth.config import PhantomConfig

    same, shifted = PhantomConfig(n_ct=2, n_mri=4), PhantomConfig(n_ct=2, n_mri=4, mri_shift=1.0)
    for i in range(2):  # the CT cohort does not depend on the MRI shift, byte for byte
        assert all(np.array_equal(a, b) for a, b in zip(make_patient(same, "ct", i), make_patient(shifted, "ct", i)))

    def liver_centre_z(cfg: PhantomConfig) -> float:
        zs = [np.argwhere(make_patient(cfg, "mri", i)[1] == 1)[:, 0].mean() for i in range(4)]
        return float(np.mean(zs))

    # The shifted stacks start higher up: the liver sits at lower slice indices.
    assert liver_centre_z(shifted) < liver_centre_z(same) - 1.0
