"""What to do with series that cannot be one regular NIfTI volume as they are.

Each condition has a named outcome, chosen in the config (``conversion.geometry``):

* ``irregular_spacing`` (missing slices, uneven gaps): ``fail`` (the series fails with the
  positions and the expected count), ``skip`` (left out, with the reason in the series table
  and the run report) or ``split`` (one output per evenly spaced run of slices);
* ``gantry_tilt`` (slice positions drift sideways along the stack): ``fail``, ``skip`` or
  ``resample`` (each slice shifted in-plane onto an orthogonal grid, linear interpolation,
  with ``GantryTiltCorrection`` in the sidecar);
* ``localizers`` (ImageType LOCALIZER, or stacks of fewer than 3 slices in a multi-plane
  series): ``convert`` (kept, under ``extra/`` in the pipeline) or ``skip``.

Mixed orientations within one DICOM series are always split by orientation (each plane is
its own output).  No outcome ever writes an affine that does not match the slice positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

IrregularOutcome = Literal["fail", "skip", "split"]
TiltOutcome = Literal["fail", "skip", "resample"]
LocalizerOutcome = Literal["convert", "skip"]


@dataclass(frozen=True)
class GeometryPolicy:
    irregular_spacing: IrregularOutcome = "fail"
    gantry_tilt: TiltOutcome = "fail"
    localizers: LocalizerOutcome = "convert"


def lateral_drift(positions: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Per-slice sideways step (mm, perpendicular to the normal) of slices ordered along it."""
    if len(positions) < 2:
        return np.zeros(3)
    offset = positions[-1] - positions[0]
    along = float(np.dot(offset, normal))
    return (offset - along * normal) / (len(positions) - 1)


def is_tilted(positions: np.ndarray, normal: np.ndarray) -> bool:
    """Slices drift off the normal by more than 0.05 mm (or 1% of the stack length)."""
    if len(positions) < 2:
        return False
    offset = positions[-1] - positions[0]
    along = abs(float(np.dot(offset, normal)))
    drift = float(np.linalg.norm(lateral_drift(positions, normal))) * (len(positions) - 1)
    return drift > max(0.05, 0.01 * along)


def tilt_degrees(positions: np.ndarray, normal: np.ndarray) -> float:
    """Angle between the slice stacking direction and the slice normal."""
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    cosine = abs(float(np.dot(step, normal))) / float(np.linalg.norm(step))
    return float(np.degrees(np.arccos(min(1.0, cosine))))


def uniform_runs(
    distances: list[float], rel_tol: float = 0.02, abs_tol: float = 0.02
) -> list[list[int]]:
    """Split slice indices into runs of even spacing (the most common step defines even)."""
    if len(distances) < 3:
        return [list(range(len(distances)))]
    steps = np.diff(np.asarray(distances, dtype=float))
    step = float(np.median(steps))
    runs: list[list[int]] = [[0]]
    for i, s in enumerate(steps, start=1):
        if abs(s - step) > max(abs_tol, rel_tol * step):
            runs.append([i])
        else:
            runs[-1].append(i)
    return runs
