"""From stacked DICOM frames to NIfTI voxels and affine, laid out like dcm2niix's.

Every flavour reader (classic, mosaic, enhanced) hands over the same thing: the frames as one
C-ordered array ``(volumes, slices, rows, columns)`` with **rows already flipped** (the first
DICOM row is the last NIfTI row) and slices ascending along the slice normal, plus the LPS
affine of the unflipped (column, row, slice) grid.  Viewed in Fortran order, that array is
NIfTI's ``(i, j, k, t)`` without any copy.

Layout rules (dcm2niix's): ``i`` runs along the DICOM columns and ``j`` along the rows; a 3D
volume with more than one slice is permuted/flipped to the closest RAS layout, a 4D series is
not; stored integers are kept with the DICOM rescale in ``scl_slope`` / ``scl_inter``.

No nibabel here (its import costs more than a whole conversion); the axis matching follows
nibabel's ``io_orientation`` rule and is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nifti1 import nifti1_header
from .series import SeriesGeometryError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: NIfTI's RGB24 voxel type (three bytes per voxel)
RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


@dataclass
class NiftiVolume:
    """Voxels in NIfTI axis order (a view, Fortran-ordered where possible) and their header."""

    data: np.ndarray
    affine: np.ndarray  # voxel -> RAS mm, written as both qform and sform (code 1)
    tr_seconds: float | None
    slope: float = 1.0
    inter: float = 0.0
    #: True when the axes were permuted/flipped to RAS (3D); False in acquisition layout
    reoriented: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def header_bytes(self) -> bytes:
        return nifti1_header(
            self.shape, self.data.dtype, self.affine, self.tr_seconds, self.slope, self.inter
        )


def lps_affine(orientation, pixel_spacing, slice_step: float, position) -> np.ndarray:
    """Voxel (column, row, slice) -> LPS mm from the DICOM plane and the slice step."""
    iop = np.asarray(orientation, dtype=float)
    row_cos, col_cos = iop[:3], iop[3:]
    dr, dc = (float(v) for v in pixel_spacing)  # between rows, between columns
    aff = np.eye(4)
    aff[:3, 0] = row_cos * dc
    aff[:3, 1] = col_cos * dr
    aff[:3, 2] = np.cross(row_cos, col_cos) * slice_step
    aff[:3, 3] = np.asarray(position, dtype=float)
    return aff


def closest_axes(affine: np.ndarray) -> list[tuple[int, int]]:
    """For each voxel axis: (world axis it runs closest to, +1 or -1).

    The rotation is the polar factor of the affine's 3x3 part; axes are matched strongest
    first, each world axis used once (nibabel's ``io_orientation`` rule).
    """
    m = np.asarray(affine, dtype=float)[:3, :3]
    m = m / np.sqrt((m**2).sum(axis=0))
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    out: list[tuple[int, int]] = [(0, 1)] * 3
    for voxel_axis in np.argsort(np.min(-(r**2), axis=0), kind="stable"):
        col = r[:, voxel_axis]
        world = int(np.argmax(np.abs(col)))
        out[int(voxel_axis)] = (world, 1 if col[world] > 0 else -1)
        r[world, :] = 0
    return out


def to_closest_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permute/flip the first three axes to the closest RAS layout (views, no resampling)."""
    axes = closest_axes(affine)
    order = [0, 0, 0]
    signs = [1, 1, 1]
    for voxel_axis, (world, sign) in enumerate(axes):
        order[world] = voxel_axis
        signs[world] = sign
    to_old = np.zeros((4, 4))
    to_old[3, 3] = 1.0
    index: list[slice] = []
    for world, voxel_axis in enumerate(order):
        n = data.shape[voxel_axis]
        if signs[world] > 0:
            to_old[voxel_axis, world] = 1.0
            index.append(slice(None))
        else:
            to_old[voxel_axis, world] = -1.0
            to_old[voxel_axis, 3] = n - 1
            index.append(slice(None, None, -1))
    rest = list(range(3, data.ndim))
    out = data.transpose(*order, *rest)[tuple(index)]
    return out, affine @ to_old


def frames_to_volume(
    stack: np.ndarray,
    affine_lps: np.ndarray,
    repetition_time_ms: float | None,
    slope: float = 1.0,
    inter: float = 0.0,
    acquisition_3d: bool = True,
) -> NiftiVolume:
    """NIfTI voxels and affine of ``stack`` (see module docstring), without copying.

    Only 3D acquisitions (MRAcquisitionType 3D) are turned to the closest RAS layout, as
    dcm2niix does: a 2D stack keeps its acquisition slice order.
    """
    _check_affine(affine_lps)
    n_vol, n_slices, n_rows, _ = stack.shape
    arr = stack.transpose(3, 2, 1, 0)  # (cols, rows, slices, volumes), Fortran-contiguous
    if n_vol == 1:
        arr = arr[..., 0]
    row_flip = np.eye(4)
    row_flip[1, 1] = -1.0
    row_flip[1, 3] = n_rows - 1
    ras = LPS_TO_RAS @ affine_lps @ row_flip
    reoriented = acquisition_3d and n_vol == 1 and n_slices > 1
    if reoriented:
        arr, ras = to_closest_ras(arr, ras)
    tr = _finite_or_none(repetition_time_ms)
    # a NaN, infinite or float32-overflowing TR is left out of the header
    tr = tr / 1000.0 if tr and abs(tr / 1000.0) <= _FLOAT32_MAX else None
    return NiftiVolume(arr, ras, tr, float(slope), float(inter), reoriented)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_affine(affine_lps: np.ndarray) -> None:
    """The last guard before a header is written: voxel axes of finite, non-zero length."""
    matrix = np.asarray(affine_lps, dtype=float)
    lengths = np.linalg.norm(matrix[:3, :3], axis=0)
    fits = bool(np.all(np.abs(matrix) <= _FLOAT32_MAX))  # NaN fails too; the header is float32
    usable = fits and bool(np.all(lengths > 0))
    if not usable or abs(np.linalg.det(matrix[:3, :3] / lengths)) < 1e-6:  # collinear axes
        raise SeriesGeometryError(
            f"no usable voxel-to-world matrix (voxel sizes {np.round(lengths, 6).tolist()} "
            "mm): check ImagePositionPatient, PixelSpacing and the slice step "
            "(positions, SpacingBetweenSlices or SliceThickness)"
        )


def _finite_or_none(value) -> float | None:
    try:
        out = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return out if out is not None and np.isfinite(out) else None


def output_dtype(
    bits_allocated: int, pixel_representation: int, bits_stored: int | None
) -> np.dtype:
    """Stored sample type; unsigned 16-bit with < 16 bits stored becomes int16 (dcm2niix)."""
    signed = int(pixel_representation or 0) == 1
    bits = int(bits_allocated)
    if bits not in (8, 16, 32):
        raise ValueError(f"{bits}-bit samples are not supported")
    if bits == 16 and not signed and bits_stored is not None and int(bits_stored) < 16:
        signed = True
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
