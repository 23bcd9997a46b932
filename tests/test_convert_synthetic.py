"""Our converter on synthetic series of known geometry, against dcm2niix (live) and nibabel."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from conftest import assert_same_image, run_dcm2niix

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series_to_nifti import SeriesConversionError, convert_entry
from anatprep.pipelines.synthetic import rotation, write_series

#: (name, direction columns in RAS for voxel axes i, j, k) as scanners write them
PLANES = {
    "axial": np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float).T,
    "sagittal": np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float).T,
    "coronal": np.array([[-1, 0, 0], [0, 0, -1], [0, -1, 0]], float).T,
    "oblique": rotation(0, 17.0)
    @ rotation(2, -11.0)
    @ np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float).T,
}


def _phantom(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = rng.integers(0, 3000, size=shape).astype(np.float64)
    vol[0, 0, :] = 4000  # an asymmetric marker: flips cannot hide
    return vol


def _affine(dirs: np.ndarray, zooms=(0.9, 1.1, 1.7), origin=(-40.0, 25.0, -12.0)) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = dirs * np.asarray(zooms)
    aff[:3, 3] = origin
    return aff


def _convert_single(dicom_dir: Path, out: Path) -> nb.Nifti1Image:
    table = index_tree(dicom_dir)
    assert len(table.series) == 1, table
    nii, _ = convert_entry(table.series[0], out / "ours")
    return nb.load(nii)


@pytest.mark.parametrize(("plane", "descending"), list(itertools.product(PLANES, (False, True))))
def test_geometry_matches_dcm2niix_and_truth(tmp_path, plane, descending):
    shape = (24, 20, 12)
    vol = _phantom(shape, seed=len(plane))
    aff = _affine(PLANES[plane])
    write_series(vol, aff, tmp_path / "dcm", descending=descending)
    ours = _convert_single(tmp_path / "dcm", tmp_path)

    # 1. the reference converter, run live on the same files
    ref = nb.load(run_dcm2niix(tmp_path / "dcm", tmp_path / "ref")[0])
    assert_same_image(ours, ref)

    # 2. the truth: every voxel holds the value written at the same world position
    ours_data = np.asanyarray(ours.dataobj)
    ijk = np.array(list(itertools.product(*(range(0, n, 5) for n in ours.shape))))
    world = nb.affines.apply_affine(ours.affine, ijk)
    src = np.rint(nb.affines.apply_affine(np.linalg.inv(aff), world)).astype(int)
    np.testing.assert_allclose(nb.affines.apply_affine(aff, src), world, atol=1e-3)
    np.testing.assert_array_equal(
        ours_data[tuple(ijk.T)], vol[tuple(src.T)].astype(ours_data.dtype)
    )
    assert ours.header.get_sform(coded=True)[1] == 1
    assert ours.header.get_qform(coded=True)[1] == 1


def test_rescale_kept_in_header_like_dcm2niix(tmp_path):
    vol = _phantom((16, 16, 8)) * 0.5 - 100.0
    write_series(vol, _affine(PLANES["axial"]), tmp_path / "dcm", rescale=(0.5, -100.0))
    ours = _convert_single(tmp_path / "dcm", tmp_path)
    ref = nb.load(run_dcm2niix(tmp_path / "dcm", tmp_path / "ref")[0])
    assert_same_image(ours, ref)
    assert ours.header.get_slope_inter() == pytest.approx(ref.header.get_slope_inter())
    np.testing.assert_allclose(ours.get_fdata(), ref.get_fdata())
    # values in world units equal what was written (radiological flip accounted for)
    assert ours.get_fdata().min() == pytest.approx(vol.min())


def test_signed_data(tmp_path):
    vol = _phantom((16, 12, 6)) - 1500
    write_series(vol, _affine(PLANES["coronal"]), tmp_path / "dcm", signed=True)
    ours = _convert_single(tmp_path / "dcm", tmp_path)
    ref = nb.load(run_dcm2niix(tmp_path / "dcm", tmp_path / "ref")[0])
    assert_same_image(ours, ref)


def test_missing_slice_fails_naming_series(tmp_path):
    paths = write_series(
        _phantom((16, 16, 10)),
        _affine(PLANES["axial"]),
        tmp_path / "dcm",
        meta={"SeriesDescription": "gappy_t1"},
    )
    paths[4].unlink()
    table = index_tree(tmp_path / "dcm")
    with pytest.raises(
        SeriesConversionError, match=r"gappy_t1.*non-uniform slice spacing.*1 missing"
    ):
        convert_entry(table.series[0], tmp_path / "out")
    assert not list(tmp_path.glob("out*"))


def test_truncated_file_fails_its_series_only(tmp_path):
    good = write_series(
        _phantom((16, 16, 6)),
        _affine(PLANES["axial"]),
        tmp_path / "dcm" / "a",
        series_number=1,
        meta={"SeriesDescription": "good"},
    )
    bad = write_series(
        _phantom((16, 16, 6)),
        _affine(PLANES["sagittal"]),
        tmp_path / "dcm" / "b",
        series_number=2,
        meta={"SeriesDescription": "broken"},
        study_key="s2",
    )
    data = bad[0].read_bytes()
    bad[0].write_bytes(data[: len(data) - 100])  # an edge slice: a gap check alone misses it
    table = index_tree(tmp_path / "dcm")
    by_desc = {s.series_description: s for s in table.series}
    assert by_desc["broken"].problems and "truncated" in by_desc["broken"].problems[0]
    assert [u.path for u in table.unusable] == [str(bad[0])]
    with pytest.raises(SeriesConversionError, match=rf"broken.*{bad[0].name}.*truncated"):
        convert_entry(by_desc["broken"], tmp_path / "b_out")
    nii, _ = convert_entry(by_desc["good"], tmp_path / "a_out")
    assert nb.load(nii).shape == (16, 16, 6)
    assert len(good) == 6


def test_inputs_untouched(tmp_path):
    paths = write_series(_phantom((8, 8, 4)), _affine(PLANES["axial"]), tmp_path / "dcm")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}
    _convert_single(tmp_path / "dcm", tmp_path)
    assert before == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}
