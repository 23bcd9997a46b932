"""Binary morphology in millimetres, on numpy masks with their voxel size.

Radii are physical: dilating by 2 mm means every voxel within 2 mm (Euclidean, voxel
centres, anisotropic voxels measured as they are) joins, which is what a ball structuring
element of that radius does on an isotropic grid.  Each operation works on the mask's
bounding box grown by the radius, so its cost follows the brain, not the field of view.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

Spacing = Sequence[float]


def _box(mask: np.ndarray, grow: Sequence[int]) -> tuple[slice, ...]:
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        if hit.size == 0:
            return tuple(slice(0, 0) for _ in range(mask.ndim))
        box.append(
            slice(max(0, hit[0] - grow[axis]), min(mask.shape[axis], hit[-1] + 1 + grow[axis]))
        )
    return tuple(box)


def _grow(spacing: Spacing, mm: float) -> list[int]:
    return [int(np.ceil(mm / float(s))) + 1 for s in spacing]


def dilate(mask: np.ndarray, mm: float, spacing: Spacing) -> np.ndarray:
    """Voxels within ``mm`` of ``mask``."""
    out = np.zeros(mask.shape, bool)
    box = _box(mask, _grow(spacing, mm))
    sub = mask[box]
    if sub.size:
        out[box] = ndimage.distance_transform_edt(~sub, sampling=spacing) <= mm
    return out


def erode(mask: np.ndarray, mm: float, spacing: Spacing) -> np.ndarray:
    """Voxels of ``mask`` farther than ``mm`` from its outside (the image border counts as
    outside)."""
    out = np.zeros(mask.shape, bool)
    box = _box(mask, [1, 1, 1])
    sub = np.pad(mask[box], 1)
    if mask[box].size:
        far = ndimage.distance_transform_edt(sub, sampling=spacing) > mm
        out[box] = far[1:-1, 1:-1, 1:-1]
    return out


def close(mask: np.ndarray, mm: float, spacing: Spacing) -> np.ndarray:
    """Dilate then erode by ``mm``: bridges gaps narrower than ~2 ``mm``, keeps the outline."""
    return erode(dilate(mask, mm, spacing), mm, spacing)


def open_(mask: np.ndarray, mm: float, spacing: Spacing) -> np.ndarray:
    """Erode then dilate by ``mm``: cuts bridges narrower than ~2 ``mm``."""
    return dilate(erode(mask, mm, spacing), mm, spacing)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected (6-neighbour) part: a single piece under any connectivity."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background region that does not reach the image border filled."""
    out = mask.copy()
    box = _box(mask, [1, 1, 1])
    out[box] = ndimage.binary_fill_holes(mask[box])
    return out
