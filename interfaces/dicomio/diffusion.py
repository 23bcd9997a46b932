"""Diffusion gradient tables: ``.bval`` / ``.bvec`` in FSL's convention, as dcm2niix writes them.

Per volume, the b-value and the gradient direction (patient LPS) come from the enhanced
MR diffusion macro (``DiffusionBValue``, ``DiffusionGradientOrientation``), the standard
single-frame tags of the same names, the Siemens CSA header (``B_value``,
``DiffusionGradientDirection``) or UIH's private tags (see :mod:`.uih`).  FSL wants directions
in the image's voxel axes, and for an image whose voxel axes form a right-handed
(neurological) system the first component negated.  b = 0 volumes get a zero vector.  A
value the headers do not carry gives no table (None).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .csa import CsaImage
from .volume import LPS_TO_RAS


def volume_gradient(header) -> tuple[float, np.ndarray] | None:
    """(b-value, unit direction in LPS) of the volume this header's slice belongs to."""
    from . import uih  # uih's reader imports classic, which imports this module

    found = uih.volume_gradient(header)
    if found is not None:
        return found
    b = header.get("DiffusionBValue")
    vec = header.get("DiffusionGradientOrientation")
    if b is None:
        csa = CsaImage.from_header(header)
        if csa is None or csa.scalar("B_value") is None:
            return None
        b = csa.scalar("B_value")
        vec = csa.vector("DiffusionGradientDirection") or None
    b = float(b)
    direction = np.zeros(3) if vec is None or b == 0 else np.asarray(vec, dtype=float)
    if direction.shape != (3,):
        return None
    return b, direction


def fsl_bvecs(directions_lps: np.ndarray, affine_ras: np.ndarray) -> np.ndarray:
    """(3, n) gradient directions in the image's voxel axes, FSL's sign convention."""
    axes = (LPS_TO_RAS @ affine_ras)[:3, :3]  # voxel axes in LPS
    axes = axes / np.linalg.norm(axes, axis=0)
    vox = axes.T @ np.asarray(directions_lps, dtype=float).T
    if np.linalg.det(affine_ras[:3, :3]) > 0:
        vox[0] = -vox[0]
    vox[np.abs(vox) < 5e-7] = 0.0
    return vox


def gradient_files(headers_per_volume: Sequence, affine_ras: np.ndarray) -> tuple[str, str] | None:
    """Text of the ``.bval`` and ``.bvec`` files, or None when this is not a DWI series."""
    table = [volume_gradient(h) for h in headers_per_volume]
    if len(table) < 2 or any(t is None for t in table):
        return None
    bvals = [t[0] for t in table]
    vecs = fsl_bvecs(np.array([t[1] for t in table]), affine_ras)

    def line(values) -> str:
        return " ".join(f"{float(v):g}" for v in values) + "\n"

    return line(bvals), "".join(line(row) for row in vecs)
