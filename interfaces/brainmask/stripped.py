"""Detecting input that is already skull-stripped (a border test like sMRIPrep's).

An image counts as skull-stripped when its outer faces are (almost) all exactly zero and
the non-zero voxels form a brain-sized body (``STRIPPED_RANGE_ML``): a whole head with zero
padding is far larger (skull, scalp and neck add well over 1,000 mL).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: volume of the non-zero body (mL) that a stripped brain can have
STRIPPED_RANGE_ML = (600.0, 2300.0)


def _faces(data: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            data[[0, -1], :, :].ravel(),
            data[:, [0, -1], :].ravel(),
            data[:, :, [0, -1]].ravel(),
        ]
    )


def stripped_mask(data: np.ndarray, voxel_ml: float) -> np.ndarray | None:
    """The brain mask of a skull-stripped image (largest non-zero body, holes filled), or
    ``None`` when the image does not look skull-stripped."""
    if np.mean(_faces(data) == 0) < 0.99:
        return None
    body = data != 0
    labels, n = ndimage.label(body)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    body = labels == (int(np.argmax(sizes)) + 1)
    volume = float(body.sum()) * voxel_ml
    low, high = STRIPPED_RANGE_ML
    if not low <= volume <= high:
        return None
    return ndimage.binary_fill_holes(body)
