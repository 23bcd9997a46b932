"""Reorientation: permutations and flips only; checked with nibabel's geometry helpers."""

from __future__ import annotations

import itertools

import nibabel as nb
import numpy as np
import pytest
from nibabel.affines import apply_affine

from anatprep.interfaces.axis_codes import check_orientation_code
from anatprep.interfaces.orientation import reorient_image
from anatprep.interfaces.reorient import Reorient


def _all_axis_arrangements():
    """The 48 ways to lay three axes out: 6 permutations x 8 sign patterns."""
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            yield perm, signs


def _image(perm, signs, oblique=False, scaled=False) -> nb.Nifti1Image:
    rot = np.zeros((3, 3))
    for i, (ax, sg) in enumerate(zip(perm, signs, strict=True)):
        rot[ax, i] = sg
    if oblique:
        a = np.deg2rad(23)
        tilt = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        rot = tilt @ rot
    aff = np.eye(4)
    aff[:3, :3] = rot * [1.1, 0.9, 2.5]
    aff[:3, 3] = [12.0, -30.0, 7.0]
    data = np.arange(7 * 5 * 4, dtype=np.int16).reshape(7, 5, 4)
    img = nb.Nifti1Image(data, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=4)
    if scaled:
        img.header.set_slope_inter(0.5, -3.0)
    return img


def _world_values(img: nb.Nifti1Image) -> dict[tuple, float]:
    data = np.asanyarray(img.dataobj)
    idx = np.array(list(np.ndindex(img.shape[:3])))
    world = np.round(apply_affine(img.affine, idx), 4)
    return {tuple(w): float(data[tuple(i)]) for w, i in zip(world, idx, strict=True)}


@pytest.mark.parametrize(("perm", "signs"), list(_all_axis_arrangements()))
@pytest.mark.parametrize("target", ["RAS", "LPS"])
def test_every_voxel_keeps_its_world_coordinate(perm, signs, target):
    img = _image(perm, signs)
    out = reorient_image(img, target) or img
    assert nb.aff2axcodes(out.affine) == tuple(target)
    assert _world_values(out) == _world_values(img)
    assert out.header.get_qform(coded=True)[1] == 1
    assert out.header.get_sform(coded=True)[1] == 4
    np.testing.assert_allclose(out.get_qform(), out.get_sform(), atol=1e-5)
    assert sorted(out.header.get_zooms()) == pytest.approx(sorted([1.1, 0.9, 2.5]))


@pytest.mark.parametrize(
    ("perm", "signs"), list(itertools.islice(_all_axis_arrangements(), 0, 48, 5))
)
def test_oblique_and_scaled(perm, signs):
    img = _image(perm, signs, oblique=True, scaled=True)
    out = reorient_image(img, "RAS") or img
    assert nb.aff2axcodes(out.affine) == ("R", "A", "S")
    assert _world_values(out) == _world_values(img)
    # stored integers and their scaling are kept: no resampling, no requantisation
    assert out.get_data_dtype() == np.int16
    assert out.header.get_slope_inter() == (0.5, -3.0)


def test_dim_info_follows_axes():
    img = _image((2, 0, 1), (1, 1, 1))
    img.header.set_dim_info(freq=0, phase=1, slice=2)
    out = reorient_image(img, "RAS")
    # input axis 0 lies along z (S) -> becomes axis 2, etc.
    assert out.header.get_dim_info() == (2, 0, 1)


def test_already_oriented_passes_through_byte_identical(tmp_path):
    img = _image((0, 1, 2), (1, 1, 1))
    src = tmp_path / "in.nii.gz"
    nb.save(img, src)
    res = Reorient(in_file=str(src), orientation="RAS").run(cwd=str(tmp_path))
    assert res.outputs.changed is False
    assert (tmp_path / "reoriented.nii.gz").read_bytes() == src.read_bytes()


def test_4d_keeps_time_axis(tmp_path):
    data = np.random.default_rng(0).integers(0, 100, (4, 5, 6, 3)).astype(np.int16)
    aff = np.diag([-2.0, 2.0, 3.0, 1.0])
    img = nb.Nifti1Image(data, aff)
    img.header.set_zooms((2.0, 2.0, 3.0, 1.5))
    out = reorient_image(img, "RAS")
    assert out.shape == (4, 5, 6, 3)
    assert out.header.get_zooms()[3] == 1.5
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), data[::-1])


@pytest.mark.parametrize("code", ["RRS", "RA", "XYZ", "RASL", "ras1"])
def test_bad_codes_rejected(code):
    with pytest.raises(ValueError, match="3 letters"):
        check_orientation_code(code)


def test_lowercase_accepted():
    assert check_orientation_code("lpi") == "LPI"
