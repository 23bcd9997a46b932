"""A NIfTI-1 single-file header (348 bytes + 4 empty extension bytes), packed with ``struct``.

The converter writes its images without importing nibabel, whose import alone takes longer
than converting a 192-slice T1 (it also imports pydicom and a dozen optional packages).  The
layout is the NIfTI-1 standard's; tests check every header we write against nibabel's reading
of it (shape, dtype, zooms, qform and sform, codes, scaling, units).

qform: the rotation is taken from the affine by polar decomposition (nearest orthonormal
matrix), with ``qfac = -1`` for left-handed voxel axes, as NIfTI-1 specifies.
"""

from __future__ import annotations

import struct

import numpy as np

#: numpy dtype -> (NIfTI datatype code, bits per voxel)
_DATATYPES = {
    np.dtype("uint8"): (2, 8),
    np.dtype("int16"): (4, 16),
    np.dtype("int32"): (8, 32),
    np.dtype("float32"): (16, 32),
    np.dtype("float64"): (64, 64),
    np.dtype("int8"): (256, 8),
    np.dtype("uint16"): (512, 16),
    np.dtype("uint32"): (768, 32),
    np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")]): (128, 24),
}
_UNITS_MM_SEC = 2 | 8
_HEADER = struct.Struct("<i10s18sihcb8h3f4h8f3fhbb4f2i80s24s2h6f12f16s4s")
assert _HEADER.size == 348


def _quaternion(affine: np.ndarray) -> tuple[tuple[float, float, float], float]:
    """(b, c, d) of the rotation quaternion and qfac, for a non-degenerate affine."""
    m = np.asarray(affine, dtype=float)[:3, :3]
    zooms = np.sqrt((m**2).sum(axis=0))
    r = m / zooms
    u, _, vt = np.linalg.svd(r)
    r = u @ vt  # closest orthonormal matrix
    qfac = 1.0
    if np.linalg.det(r) < 0:
        qfac = -1.0
        r[:, 2] = -r[:, 2]
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = 0.5 / np.sqrt(trace + 1.0)
        a = 0.25 / s
        b, c, d = (r[2, 1] - r[1, 2]) * s, (r[0, 2] - r[2, 0]) * s, (r[1, 0] - r[0, 1]) * s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        a, b = (r[2, 1] - r[1, 2]) / s, 0.25 * s
        c, d = (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        a, b = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s
        c, d = 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        a, b = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s
        c, d = (r[1, 2] + r[2, 1]) / s, 0.25 * s
    if a < 0:  # NIfTI stores b, c, d with a >= 0
        b, c, d = -b, -c, -d
    return (float(b), float(c), float(d)), qfac


def nifti1_header(
    shape: tuple[int, ...],
    dtype: np.dtype,
    affine: np.ndarray,
    tr_seconds: float | None = None,
    slope: float = 1.0,
    inter: float = 0.0,
    descrip: bytes = b"anatprep",
    xform_code: int = 1,
) -> bytes:
    """Header + empty extension block (352 bytes) of a single-file ``.nii`` image."""
    dtype = np.dtype(dtype)
    code, bitpix = _DATATYPES[dtype if dtype.fields else dtype.newbyteorder("=")]
    if not 1 <= len(shape) <= 7:
        raise ValueError(f"NIfTI-1 holds 1 to 7 dimensions, not {len(shape)}")
    dim = [len(shape), *shape] + [1] * (7 - len(shape))
    zooms = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    (qb, qc, qd), qfac = _quaternion(affine)
    pixdim = [qfac, *zooms.tolist(), float(tr_seconds or 0.0), 0.0, 0.0, 0.0]
    if len(shape) > 3 and not tr_seconds:
        pixdim[4] = 1.0
    srow = np.asarray(affine, dtype=float)[:3, :4]
    values = (
        348,
        b"",
        b"",
        0,
        0,
        b"r",
        0,  # dim_info
        *dim,
        0.0,
        0.0,
        0.0,  # intent_p1..3
        0,  # intent_code
        code,
        bitpix,
        0,  # slice_start
        *pixdim,
        352.0,  # vox_offset
        float(slope),
        float(inter),
        0,  # slice_end
        0,  # slice_code
        _UNITS_MM_SEC,
        0.0,
        0.0,  # cal_max, cal_min
        0.0,  # slice_duration
        0.0,  # toffset
        0,
        0,  # glmax, glmin
        descrip[:80],
        b"",  # aux_file
        xform_code,  # qform_code
        xform_code,  # sform_code
        qb,
        qc,
        qd,
        *srow[:, 3].tolist(),
        *srow[0].tolist(),
        *srow[1].tolist(),
        *srow[2].tolist(),
        b"",  # intent_name
        b"n+1\x00",
    )
    return _HEADER.pack(*values) + b"\x00" * 4
