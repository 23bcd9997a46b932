"""The grids a brain extraction works on: the working grid and the head box.

- **Working grid**: the input with no voxel side finer than ``working_spacing_mm``.  An
  input finer than that along any axis (0.5 mm research scans, 0.7 mm HCP-style T1w) is
  resampled (linear) once; N4, registration and Atropos run there, and the mask, the tissue
  maps and the bias field are brought back to the input's own grid at the end.  An input at
  or coarser than the working spacing is its own working grid (nothing is resampled).
- **Head box**: the working grid cut to the bounding box of the head's top
  :data:`HEAD_HEIGHT_MM` plus a margin.  Empty field of view (air around the head in a
  256^3 conformed image) costs registration, N4 and the morphology time in proportion to
  its size and informs nothing; neck and shoulders mislead the registration's start.  The
  box is found on a coarse copy (see :func:`_head`), grown by ``margin_mm``.

Sub-images keep their physical placement (origin moved to the box's first voxel), so every
transform and resampling between them and the full grids is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the part of the head kept, measured down from its top (vertex, scalp included): the brain
#: down to the foramen magnum lies within ~150 mm of the top of an adult head; neck and
#: shoulders below (a long field of view) would pull the centre of mass, hence the start of
#: the registration, away from the brain.  FSL's ``robustfov`` keeps 170 mm the same way.
HEAD_HEIGHT_MM = 180.0
#: a voxel side this much below the working spacing still counts as "at" it (1 mm scans
#: stored as 0.9999 mm, 0.98 mm in-plane from a 250 mm field of view over 256)
_SPACING_SLACK = 0.9


@dataclass(frozen=True)
class Box:
    """An index box ``[lower, upper)`` of a 3D grid of ``shape``."""

    lower: tuple[int, int, int]
    upper: tuple[int, int, int]
    shape: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        lo, up = self.lower, self.upper
        return slice(lo[0], up[0]), slice(lo[1], up[1]), slice(lo[2], up[2])

    def cut(self, ants, img):
        """The part of ``img`` (on the full grid) inside the box, placed where it was."""
        origin = index_to_point(img, np.array(self.lower, float))
        return ants.from_numpy(
            np.ascontiguousarray(img.numpy()[self.slices]),
            origin=tuple(float(o) for o in origin),
            spacing=img.spacing,
            direction=img.direction,
        )

    def paste(self, arr: np.ndarray, dtype=None) -> np.ndarray:
        """``arr`` (on the box) on the full grid, zero outside the box."""
        full = np.zeros(self.shape, dtype or arr.dtype)
        full[self.slices] = arr
        return full


def _index_matrix(img) -> np.ndarray:
    return np.asarray(img.direction, float) @ np.diag(np.asarray(img.spacing, float))


def index_to_point(img, index: np.ndarray) -> np.ndarray:
    """Physical (ITK, LPS) coordinates of continuous voxel indices (rows of ``index``)."""
    return np.asarray(index, float) @ _index_matrix(img).T + np.asarray(img.origin, float)


def point_to_index(img, point: np.ndarray) -> np.ndarray:
    """Continuous voxel indices of physical points (rows of ``point``)."""
    inverse = np.linalg.inv(_index_matrix(img))
    return (np.asarray(point, float) - np.asarray(img.origin, float)) @ inverse.T


def bounding_box(mask: np.ndarray, spacing, margin_mm: float) -> Box:
    """The bounding box of ``mask`` grown by ``margin_mm`` (within the grid)."""
    shape = tuple(int(n) for n in mask.shape)
    lower, upper = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        grow = int(np.ceil(margin_mm / float(spacing[axis])))
        lower.append(max(0, int(hit[0]) - grow) if hit.size else 0)
        upper.append(min(shape[axis], int(hit[-1]) + 1 + grow) if hit.size else shape[axis])
    # 3 entries each (a 3D grid): a tuple length mypy cannot see
    return Box(tuple(lower), tuple(upper), shape)  # type: ignore[arg-type]


def needs_working_grid(spacing, working_spacing_mm: float) -> bool:
    return any(float(s) < _SPACING_SLACK * working_spacing_mm for s in spacing)


def working_image(ants, img, working_spacing_mm: float):
    """``img`` on the working grid (see the module docstring); ``img`` itself when it is
    not finer than ``working_spacing_mm`` along any axis."""
    if not needs_working_grid(img.spacing, working_spacing_mm):
        return img
    target = tuple(max(float(s), working_spacing_mm) for s in img.spacing)
    return ants.resample_image(img, target, use_voxels=False, interp_type=0)


def _head(arr: np.ndarray) -> np.ndarray:
    """The largest connected part above 10% of the robust (2nd-98th percentile) range: the
    background threshold of FSL BET, inclusive enough for a dark, bias-shaded scalp."""
    from scipy import ndimage

    low, high = np.percentile(arr, [2, 98])
    labels, n = ndimage.label(arr > low + 0.1 * (high - low))
    if n == 0:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def head_box(
    ants,
    img,
    margin_mm: float = 15.0,
    coarse_mm: float = 4.0,
    head_height_mm: float = HEAD_HEIGHT_MM,
) -> Box:
    """The bounding box of the head's top ``head_height_mm`` on ``img``'s grid, grown by
    ``margin_mm`` (whole image when no head is found)."""
    shape = tuple(int(n) for n in img.shape)
    target = tuple(max(coarse_mm, float(s)) for s in img.spacing)
    coarse = ants.resample_image(img, target, use_voxels=False, interp_type=0)
    head = _head(coarse.numpy())
    if not head.any():
        return Box((0, 0, 0), shape, shape)  # type: ignore[arg-type]  # shape: 3D
    # height above the feet: ITK's physical axes are LPS, so superior is +z
    superior = index_to_point(coarse, np.argwhere(head).astype(float))[:, 2]
    keep = np.zeros_like(head)
    keep[tuple(np.argwhere(head)[superior >= superior.max() - head_height_mm].T)] = True
    head = keep
    corners = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(head.any(axis=others))
        corners.append((hit[0] - 0.5, hit[-1] + 0.5))  # voxel edges, coarse index
    box_corners = np.array([[i, j, k] for i in corners[0] for j in corners[1] for k in corners[2]])
    idx = point_to_index(img, index_to_point(coarse, box_corners))
    grow = np.array([margin_mm / float(s) for s in img.spacing])
    lower = np.floor(idx.min(0) - grow).astype(int)
    upper = np.ceil(idx.max(0) + grow).astype(int) + 1
    lower = np.clip(lower, 0, shape)
    upper = np.clip(upper, 0, shape)
    # 3 entries each (a 3D grid): a tuple length mypy cannot see
    return Box(tuple(int(v) for v in lower), tuple(int(v) for v in upper), shape)  # type: ignore[arg-type]
