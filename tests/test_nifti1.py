"""Our NIfTI-1 header writer and axis matching, checked against nibabel's reading and rules."""

from __future__ import annotations

import io
import itertools

import nibabel as nb
import numpy as np
import pytest
from nibabel.orientations import io_orientation
from scipy.spatial.transform import Rotation

from anatprep.interfaces.dicomio.nifti1 import nifti1_header
from anatprep.interfaces.dicomio.volume import closest_axes, to_closest_ras

ZOOMS = (0.9, 1.1, 1.7)


def _affines():
    rng = np.random.default_rng(0)
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            for oblique in (False, True):
                rot = np.eye(3)[:, perm] * flips
                if oblique:
                    angles = rng.uniform(-40, 40, 3)
                    rot = Rotation.from_euler("xyz", angles, degrees=True).as_matrix() @ rot
                aff = np.eye(4)
                aff[:3, :3] = rot * ZOOMS
                aff[:3, 3] = rng.uniform(-100, 100, 3)
                yield aff


@pytest.mark.parametrize(
    ("shape", "dtype", "tr"),
    [((5, 6, 7), np.int16, 2.3), ((5, 6, 7, 3), np.float32, 2.0), ((4, 4, 4), np.uint16, None)],
)
def test_header_reads_back_in_nibabel(shape, dtype, tr):
    for aff in _affines():
        hdr = nb.Nifti1Header.from_fileobj(
            io.BytesIO(nifti1_header(shape, np.dtype(dtype), aff, tr, 1.5, -3.0))
        )
        assert hdr.get_data_shape() == shape
        assert hdr.get_data_dtype() == dtype
        assert hdr.get_slope_inter() == (1.5, -3.0)
        assert hdr.get_xyzt_units() == ("mm", "sec")
        assert hdr["vox_offset"] == 352 and hdr["magic"] == b"n+1"
        qform, qcode = hdr.get_qform(coded=True)
        sform, scode = hdr.get_sform(coded=True)
        assert (qcode, scode) == (1, 1)
        np.testing.assert_allclose(sform, aff, atol=1e-4)
        np.testing.assert_allclose(qform, aff, atol=1e-4)
        np.testing.assert_allclose(hdr.get_zooms()[:3], ZOOMS, rtol=1e-6)
        if len(shape) == 4:
            assert hdr.get_zooms()[3] == pytest.approx(tr)


def test_axis_matching_equals_nibabel_io_orientation():
    for aff in _affines():
        ours = np.array(closest_axes(aff), dtype=float)
        np.testing.assert_array_equal(ours, io_orientation(aff))


def test_to_closest_ras_keeps_world_positions():
    data = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    for aff in _affines():
        out, new_aff = to_closest_ras(data, aff)
        assert nb.aff2axcodes(new_aff) == ("R", "A", "S")
        for ijk in itertools.product((0, 3), (0, 4), (0, 5)):
            world = nb.affines.apply_affine(aff, ijk)
            new = np.rint(nb.affines.apply_affine(np.linalg.inv(new_aff), world)).astype(int)
            assert out[tuple(new)] == data[ijk]
