"""Series that cannot be one regular volume: each outcome (fail, skip, split, resample)."""

from __future__ import annotations

import itertools

import nibabel as nb
import numpy as np
import pytest

from anatprep.interfaces.dicomio.geometry import GeometryPolicy
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series_to_nifti import (
    SeriesConversionError,
    SeriesSkipped,
    convert_entry,
)
from anatprep.pipelines.cli import main
from anatprep.pipelines.synthetic import write_series

AXIAL = np.array([[-1.0, 0, 0, 30.0], [0, -1.0, 0, 20.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])


def _volume(shape=(16, 14, 10), seed=0):
    return np.random.default_rng(seed).integers(1, 3000, size=shape).astype(float)


def _gappy(tmp_path, missing=4):
    vol = _volume()
    paths = write_series(vol, AXIAL, tmp_path / "dcm", meta={"SeriesDescription": "gappy"})
    paths[missing].unlink()
    return vol


def _assert_at_truth(img: nb.Nifti1Image, vol: np.ndarray, affine: np.ndarray) -> None:
    """Every voxel holds the value the DICOM put at the same world position."""
    data = np.asanyarray(img.dataobj)
    ijk = np.array(list(itertools.product(*(range(n) for n in img.shape))))
    world = nb.affines.apply_affine(img.affine, ijk)
    src = nb.affines.apply_affine(np.linalg.inv(affine), world)
    np.testing.assert_allclose(src, np.rint(src), atol=1e-3)
    src = np.rint(src).astype(int)
    np.testing.assert_array_equal(data[tuple(ijk.T)], vol[tuple(src.T)])


def test_irregular_spacing_fails_by_default_with_the_gap(tmp_path):
    _gappy(tmp_path)
    (entry,) = index_tree(tmp_path / "dcm").series
    assert "about 1 missing slice" in entry.problems[0]
    with pytest.raises(SeriesConversionError, match=r"gappy.*non-uniform slice spacing"):
        convert_entry(entry, tmp_path / "out")


def test_irregular_spacing_skip_is_reported_not_failed(tmp_path, capsys):
    _gappy(tmp_path)
    (entry,) = index_tree(tmp_path / "dcm", geometry=GeometryPolicy("skip")).series
    assert "irregular_spacing: skip" in entry.skipped
    with pytest.raises(SeriesSkipped):
        convert_entry(entry, tmp_path / "out")
    code = main(["convert", "--irregular-spacing", "skip", str(tmp_path / "dcm"), str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "series: 0 converted, 1 skipped, 0 failed" in out
    assert "irregular_spacing: skip" in out


def test_irregular_spacing_split_gives_regular_parts_at_the_right_place(tmp_path):
    vol = _gappy(tmp_path, missing=4)
    series = index_tree(tmp_path / "dcm", geometry=GeometryPolicy("split")).series
    assert [s.n_slices for s in series] == [4, 5]
    for entry in series:
        assert "part" in entry.split_reason and not entry.problems
        nii, _ = convert_entry(entry, tmp_path / entry.id)
        _assert_at_truth(nb.load(nii), vol, AXIAL)


def _tilted(tmp_path, shift_cols=1.0):
    """Each slice one column further along x than the one below: a gantry tilt."""
    tilted = AXIAL.copy()
    tilted[0, 2] = -shift_cols  # the slice axis leans along the first in-plane axis
    vol = _volume(seed=1)
    write_series(vol, tilted, tmp_path / "dcm", meta={"SeriesDescription": "tilted"})
    return vol, tilted


def test_gantry_tilt_fails_by_default(tmp_path):
    _tilted(tmp_path)
    (entry,) = index_tree(tmp_path / "dcm").series
    assert "gantry tilt" in entry.problems[0] and "wrong affine" in entry.problems[0]


def test_gantry_tilt_resampled_onto_orthogonal_grid(tmp_path):
    vol, tilted = _tilted(tmp_path)
    policy = GeometryPolicy(gantry_tilt="resample")
    (entry,) = index_tree(tmp_path / "dcm", geometry=policy).series
    nii, js = convert_entry(entry, tmp_path / "out")
    img = nb.load(nii)
    rot = img.affine[:3, :3] / np.linalg.norm(img.affine[:3, :3], axis=0)
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-6)  # orthogonal grid
    sidecar = __import__("json").loads(js.read_text())
    assert sidecar["GantryTiltCorrection"]["TiltDegrees"] == pytest.approx(26.5651, abs=1e-3)
    # whole-voxel shifts: every voxel that stays inside the field is exact
    data = np.asanyarray(img.dataobj)
    inv = np.linalg.inv(tilted)
    checked = 0
    for ijk in itertools.product(*(range(n) for n in img.shape)):
        src = nb.affines.apply_affine(inv, nb.affines.apply_affine(img.affine, ijk))
        s = np.rint(src).astype(int)
        if np.all(s >= 0) and np.all(s < vol.shape):
            assert data[ijk] == vol[tuple(s)]
            checked += 1
    assert checked > 0.5 * vol.size


def test_localizers_skipped_on_request(tmp_path):
    sag = np.array([[0, 0, 2.0, 0], [-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]])
    write_series(np.ones((8, 8, 1)), AXIAL, tmp_path / "loc", study_key="loc", prefix="A")
    write_series(np.ones((8, 8, 1)), sag, tmp_path / "loc", study_key="loc", prefix="S")
    kept = index_tree(tmp_path / "loc").series
    assert len(kept) == 2 and not any(s.skipped for s in kept)
    skipped = index_tree(tmp_path / "loc", geometry=GeometryPolicy(localizers="skip")).series
    assert all("localizer" in s.skipped for s in skipped)
