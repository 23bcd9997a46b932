"""Diffusion gradient tables: ``.bval`` / ``.bvec`` in FSL's convention, as dcm2niix writes them.

Per volume, the b-value and the gradient direction (patient LPS) come from, in this order:

0. UIH's private tags (:mod:`.uih`), directions in the image's axes;
1. a vendor reader of :data:`VENDOR_READERS` (by manufacturer), for vendors whose own tags
   take precedence or that have no standard ones; it returns None to defer to the others;
2. the standard tags: the enhanced MR diffusion macro or, in classic single-frame files,
   (0018,9087) ``DiffusionBValue`` / (0018,9089) ``DiffusionGradientOrientation`` (Canon,
   Toshiba, Philips, Siemens XA, UIH...);
3. the Siemens CSA header (``B_value``, ``DiffusionGradientDirection``).

A vendor plugs in by adding its reader, e.g. ``VENDOR_READERS["GE"] = ge.volume_gradient``
(and, where its derived volumes follow the Philips rule, its prefix to
:data:`DERIVED_VOLUME_VENDORS`).  Registered vendor readers: Philips' private tags
(:mod:`.philips`; where a file also has the standard ones they agree, and dcm2niix, reading
the file in tag order, keeps the private values) and Siemens' classic (0019,100C) B_value /
(0019,100E) DiffusionGradientDirection, used only when neither the standard tags nor a CSA
header give the values.

The table follows dcm2niix's rules (its ``nii_saveDTI``): none for a series whose b-values and
directions never change (an fMRI run with b = 0 tags), nor when all volumes share one b <= 50
and none lacks a direction; Philips
volumes with b > 0 and no direction are images the scanner derived (isotropic trace, ADC):
they are removed from the image and the table (:func:`diffusion_plan`), except a lone one
beside a single other volume (a b = 0 + trace pair keeps both), or when removing them would
leave fewer than two volumes (then no table).  FSL wants directions in the image's voxel
axes, and for an image whose voxel axes form a right-handed (neurological) system the first
component negated; Siemens and Philips directions are scaled to unit length.  b = 0 volumes
get a zero vector.  A value the headers do not carry gives no table (None).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from . import philips, uih, vendors
from .csa import CsaImage
from .scan import SIEMENS_B_VALUE, SIEMENS_DIFFUSION_DIRECTION, private_field
from .vendors import vendor_of
from .volume import LPS_TO_RAS

#: (b-value, LPS direction or None) of one volume, as a vendor reader returns it
RawGradient = tuple[float, Sequence[float] | np.ndarray | None]

#: b-values up to this are unweighted (dcm2niix's threshold: CMRR b=0 volumes carry b=5)
UNWEIGHTED_B = 50.0


def _standard(header) -> RawGradient | None:
    b = header.get("DiffusionBValue")
    if b is None:
        return None
    vec = header.get("DiffusionGradientOrientation")
    return float(b), vec


def _csa(header) -> RawGradient | None:
    csa = CsaImage.from_header(header)
    if csa is None:
        return None
    b = csa.scalar("B_value")
    if b is None:
        return None
    return csa.number("B_value", b), csa.vector("DiffusionGradientDirection") or None


def _siemens_private(header) -> RawGradient | None:
    """Classic Siemens files without a CSA header (anonymised, XA classic export)."""
    b = private_field(header, SIEMENS_B_VALUE)
    if b is None or header.get("DiffusionBValue") is not None:
        return None
    if CsaImage.from_header(header) is not None:
        return None  # the CSA header is read after the standard tags
    vec = private_field(header, SIEMENS_DIFFUSION_DIRECTION)
    return float(b), vec if isinstance(vec, tuple | list) and len(vec) == 3 else None


#: maker (:mod:`.vendors`) -> reader of its own diffusion tags (see module docstring)
VENDOR_READERS: dict[str, Callable[[object], RawGradient | None]] = {
    vendors.PHILIPS: philips.diffusion,
    vendors.SIEMENS: _siemens_private,
}

#: makers whose b > 0 volumes without a direction are derived images to remove
DERIVED_VOLUME_VENDORS = frozenset({vendors.PHILIPS})
#: makers whose directions are scaled to unit length (dcm2niix does so for these two:
#: Philips stores them a little short of it)
UNIT_LENGTH_VENDORS = frozenset({vendors.PHILIPS, vendors.SIEMENS})


def volume_gradient(header) -> tuple[float, np.ndarray] | None:
    """(b-value, direction in LPS; zeros for b = 0 or no direction) of the volume this
    header's slice belongs to, or None when the headers carry no diffusion values."""
    found: RawGradient | None = uih.volume_gradient(header)
    if found is None:
        reader = VENDOR_READERS.get(vendor_of(header))
        found = reader(header) if reader is not None else None
    if found is None:
        found = _standard(header) or _csa(header)
    if found is None:
        return None
    b, vec = found
    b = float(b)
    direction = np.zeros(3) if vec is None or b == 0 else np.asarray(vec, dtype=float)
    if direction.shape != (3,):
        return None
    length = float(np.linalg.norm(direction))
    if length > 0 and vendor_of(header) in UNIT_LENGTH_VENDORS:
        direction = direction / length
    return b, direction


def _no_direction(direction: np.ndarray) -> bool:
    return bool(np.all(np.abs(direction) < 1e-6))


@dataclass(frozen=True)
class DiffusionPlan:
    """The gradient table of a series and the volumes its image leaves out."""

    #: (b-value, LPS direction) of each kept volume; None: no table for this series
    table: list[tuple[float, np.ndarray]] | None
    #: 0-based indices (acquisition order) of derived volumes removed from the image
    removed: tuple[int, ...] = ()


def diffusion_plan(headers_per_volume: Sequence) -> DiffusionPlan:
    """Table and removed volumes for a series (one header per volume), by the module's rules."""
    if len(headers_per_volume) < 2:
        return DiffusionPlan(None)
    found = [volume_gradient(h) for h in headers_per_volume]
    gradients = [t for t in found if t is not None]
    if len(gradients) < len(found):
        return DiffusionPlan(None)
    table = [(b, d.copy()) for b, d in gradients]
    bvals = [b for b, _ in table]
    if len(set(bvals)) == 1 and bvals[0] <= UNWEIGHTED_B:  # one unweighted b for all
        if all(np.array_equal(d, table[0][1]) for _, d in table):
            return DiffusionPlan(None)  # nothing varies: not a diffusion series
        unweighted = [i for i, (_, d) in enumerate(table) if _no_direction(d)]
        if not unweighted:
            return DiffusionPlan(None)
        for i in unweighted:
            table[i] = (0.0, table[i][1])
    derived: list[int] = []
    if vendor_of(headers_per_volume[0]) in DERIVED_VOLUME_VENDORS:
        derived = [i for i, (b, d) in enumerate(table) if b != 0 and _no_direction(d)]
    if derived:
        kept = len(table) - len(derived)
        if len(derived) == len(table):
            return DiffusionPlan(None)  # all isotropic: no directions to write
        if len(derived) == 1 and kept < 2:
            derived = []  # a b = 0 + trace pair: both volumes stay, the table tells them apart
        elif kept < 2:
            return DiffusionPlan(None)
    removed = tuple(derived)
    return DiffusionPlan([t for i, t in enumerate(table) if i not in removed], removed)


def fsl_bvecs(directions_lps: np.ndarray, affine_ras: np.ndarray) -> np.ndarray:
    """(3, n) gradient directions in the image's voxel axes, FSL's sign convention."""
    axes = (LPS_TO_RAS @ affine_ras)[:3, :3]  # voxel axes in LPS
    axes = axes / np.linalg.norm(axes, axis=0)
    vox = axes.T @ np.asarray(directions_lps, dtype=float).T
    if np.linalg.det(affine_ras[:3, :3]) > 0:
        vox[0] = -vox[0]
    vox[np.abs(vox) < 5e-7] = 0.0
    return vox


def table_files(
    table: Sequence[tuple[float, np.ndarray]], affine_ras: np.ndarray
) -> tuple[str, str]:
    """Text of the ``.bval`` and ``.bvec`` files of a table."""
    bvals = [b for b, _ in table]
    vecs = fsl_bvecs(np.array([d for _, d in table]), affine_ras)

    def line(values) -> str:
        return " ".join(f"{float(v):g}" for v in values) + "\n"

    return line(bvals), "".join(line(row) for row in vecs)


def gradient_files(headers_per_volume: Sequence, affine_ras: np.ndarray) -> tuple[str, str] | None:
    """Text of the ``.bval`` and ``.bvec`` files, or None when this is not a DWI series."""
    plan = diffusion_plan(headers_per_volume)
    return None if plan.table is None else table_files(plan.table, affine_ras)
