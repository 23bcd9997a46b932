"""United Imaging (UIH) private values: grid ("SaveBySlc") geometry, diffusion, timing.

UIH scanners can store all slices of one volume as tiles of one image, one file per volume,
with no ImagePositionPatient at the top level.  The private group (0065,10xx) of creator
"Image Private Header" then carries what a volume needs, read the way dcm2niix reads it:

* (0065,1050) the number of tiles; they fill a grid of ``ceil(sqrt(n))`` columns and
  ``ceil(n / columns)`` rows, row-major from the top left, so the tile is
  ``Rows / grid rows`` x ``Columns / grid columns`` pixels;
* (0065,1051) a sequence with one item per tile, in tile order: its ImagePositionPatient (the
  tile's top-left voxel), AcquisitionTime and AcquisitionDuration (ms);
* (0065,1009) the b-value and (0065,1037) the gradient direction in the image's own axes
  (row, column, slice normal); (0065,1058) 1 when the phase-encoding polarity is flipped.

The header keeps dcm2niix's values: ImagePositionPatient is the first position in the file,
AcquisitionTime the last acquisition time (stream order).  SliceTiming is each tile's
acquisition time in seconds after the earliest one, from the first volume, with dcm2niix's
precision (the HHMMSS value held as a 32-bit float, seconds rounded to five decimals).
TotalReadoutTime is the first non-zero AcquisitionDuration over 1000, as dcm2niix writes it
for UIH when no echo spacing is known.  A UIH file that has neither ImagePositionPatient nor
these private positions is rejected with the reason; nothing is guessed.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .dicom_file import UnusableFile, open_dicom
from .scan import (
    UIH_B_VALUE,
    UIH_GRADIENT,
    UIH_GRID,
    UIH_PHASE_POSITIVE,
    ScannedHeader,
    private_field,
)
from .vendors import UIH, vendor_of

if TYPE_CHECKING:
    from .dicom_file import Header

#: the private sequence with one item per tile (dcm2niix: MRVFrameSequence)
FRAME_SEQUENCE = (0x0065, 0x1051)
_ACQUISITION_DURATION = (0x0018, 0x9073)
#: slice positions of the files of one series may differ this much (mm)
POSITION_TOLERANCE = 1e-3


def is_uih(header) -> bool:
    """Manufacturer UIH (United Imaging Healthcare)."""
    return vendor_of(header) == UIH


def grid_size(header) -> int:
    """Number of tiles (0065,1050); 1 when absent or unreadable."""
    value = private_field(header, UIH_GRID)
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    try:
        return max(1, round(float(value))) if value is not None else 1
    except (TypeError, ValueError):
        return 1


@dataclass(frozen=True)
class UihGrid:
    """The tiles of one UIH grid file, in tile order."""

    n_images: int
    positions: tuple[tuple[float, float, float], ...]
    #: AcquisitionTime of each tile (DICOM TM text), empty when any tile lacks one
    times: tuple[str, ...]
    #: first non-zero AcquisitionDuration (ms) in stream order, None when there is none
    acquisition_duration: float | None

    @property
    def columns(self) -> int:
        return math.ceil(math.sqrt(self.n_images))

    @property
    def rows(self) -> int:
        return math.ceil(self.n_images / self.columns)


def needs_private_geometry(header) -> bool:
    """A UIH file whose slices are placed by the private group: a grid of tiles, or a file
    without ImagePositionPatient."""
    if not is_uih(header):
        return False
    return grid_size(header) > 1 or "ImagePositionPatient" not in header


def with_private_geometry(header: Header, path) -> Header:
    """The header, completed from the private group where UIH keeps the slice geometry.

    Adds ImagePositionPatient (the first position of the file) and AcquisitionTime (the
    last one) as dcm2niix reads them, and ``uih_grid`` for grid files.  Other files are
    returned unchanged.  Raises :class:`UnusableFile` (naming the file) when the private
    positions are missing or do not fit the grid.
    """
    if not needs_private_geometry(header):
        return header
    ds = header if not isinstance(header, ScannedHeader) else open_dicom(path, True)[0]
    grid = read_grid(ds, path)
    top = header.get("ImagePositionPatient")
    first = np.asarray(grid.positions[0], float)
    if top is not None and not np.allclose(np.asarray(top, float), first, atol=POSITION_TOLERANCE):
        raise UnusableFile(
            path,
            "UIH ImagePositionPatient differs from the first private slice position "
            "(0065,1051): cannot tell where the slices are",
        )
    if top is None:
        _set(header, "ImagePositionPatient", tuple(grid.positions[0]))
    last_time = _last_acquisition_time(ds)
    if last_time:
        _set(header, "AcquisitionTime", last_time)
    if grid.n_images > 1:
        header.uih_grid = grid  # type: ignore[union-attr]  # an extra attribute, both types
    return header


def _set(header, keyword: str, value) -> None:
    if isinstance(header, ScannedHeader):
        header[keyword] = value
    else:
        setattr(header, keyword, list(value) if isinstance(value, tuple) else value)


def read_grid(ds, path) -> UihGrid:
    """The tiles of one file from its pydicom dataset; raises :class:`UnusableFile`."""
    n = grid_size(ds)
    items = list(ds[FRAME_SEQUENCE].value) if FRAME_SEQUENCE in ds else []
    if not items:
        raise UnusableFile(
            path,
            "UIH image without ImagePositionPatient and without the private slice positions "
            "(0065,1051): cannot place the slices in space",
        )
    if len(items) != n:
        raise UnusableFile(
            path,
            f"UIH grid of {n} images (0065,1050) but {len(items)} private slice positions "
            "(0065,1051): cannot place the slices in space",
        )
    positions = []
    for k, item in enumerate(items, start=1):
        try:
            pos = tuple(float(v) for v in item.ImagePositionPatient)
        except (AttributeError, TypeError, ValueError):
            pos = ()
        if len(pos) != 3 or not all(np.isfinite(pos)):
            raise UnusableFile(
                path,
                f"UIH private slice position {k} of {n} (0065,1051) has no valid "
                "ImagePositionPatient: cannot place the slice in space",
            )
        positions.append(pos)
    times = tuple(str(item.get("AcquisitionTime") or "").strip() for item in items)
    durations = [ds.get(_ACQUISITION_DURATION)] + [it.get(_ACQUISITION_DURATION) for it in items]
    duration = next((d for d in map(_duration, durations) if d), None)
    return UihGrid(
        n_images=n,
        positions=tuple(positions),
        times=times if all(times) else (),
        acquisition_duration=duration,
    )


def _duration(element) -> float | None:
    if element is None:
        return None
    value = element.value
    if isinstance(value, bytes):
        value = struct.unpack("<d", value[:8])[0] if len(value) >= 8 else None
    try:
        out = float(value[0] if isinstance(value, list | tuple) else value)
    except (TypeError, ValueError, IndexError):
        return None
    return out if math.isfinite(out) and out > 0 else None


def _last_acquisition_time(ds) -> str | None:
    """dcm2niix keeps the last AcquisitionTime met in the file (items come after the top)."""
    found = str(ds.get("AcquisitionTime") or "").strip() or None
    if FRAME_SEQUENCE in ds:
        for item in ds[FRAME_SEQUENCE].value:
            found = str(item.get("AcquisitionTime") or "").strip() or found
    return found


def _doubles(value, n: int) -> tuple[float, ...] | None:
    """``n`` FD values from raw little-endian bytes (scanner, implicit VR) or pydicom's."""
    if value is None:
        return None
    if isinstance(value, bytes):
        if len(value) < 8 * n:
            return None
        out = struct.unpack_from(f"<{n}d", value)
    else:
        items = [value] if isinstance(value, int | float) else list(value)
        if len(items) < n:
            return None
        try:
            out = tuple(float(v) for v in items[:n])
        except (TypeError, ValueError):
            return None
    return out if all(math.isfinite(v) for v in out) else None


def volume_gradient(header) -> tuple[float, np.ndarray] | None:
    """(b-value, unit direction in patient LPS) of a UIH volume, or None (not UIH / no b).

    The direction is stored in the image's axes (row, column, slice normal); dcm2niix keeps
    32-bit floats of both values.  A missing direction is a zero vector.
    """
    found = _image_gradient(header) if is_uih(header) else None
    iop = np.asarray(header.get("ImageOrientationPatient") or (), dtype=float)
    if found is None or iop.shape != (6,):
        return None
    axes = np.stack([iop[:3], iop[3:], np.cross(iop[:3], iop[3:])], axis=1)
    return float(found[0]), axes @ found[1].astype(float)


def _image_gradient(header) -> tuple[np.float32, np.ndarray] | None:
    """(b, direction in image axes) as 32-bit floats, like dcm2niix holds them."""
    b = _doubles(private_field(header, UIH_B_VALUE), 1)
    if b is None:
        return None
    vec = _doubles(private_field(header, UIH_GRADIENT), 3)
    return np.float32(b[0]), np.zeros(3, np.float32) if vec is None else np.array(vec, np.float32)


def gradient_texts(headers_per_volume) -> tuple[str, str] | None:
    """``.bval`` / ``.bvec`` text of a UIH series kept in acquisition layout, or None.

    dcm2niix's rules for one b-value per file: at least three volumes, every one with a
    b-value; when the b-value never changes (and is at most 50) only a varying direction
    makes a table, with b = 0 where the direction is zero.  The direction is already in
    the image's axes: FSL's vector is (row, -column, normal) as the rows are stored
    flipped, and this layout is never right-handed, so no axis is mirrored.
    """
    found = [_image_gradient(h) for h in headers_per_volume]
    table = [t for t in found if t is not None]
    if len(found) < 3 or len(table) < len(found):
        return None
    bvals = np.array([t[0] for t in table], dtype=np.float32)
    vecs = np.array([t[1] for t in table], dtype=np.float32)
    zero = ~np.any(vecs, axis=1)
    if np.all(bvals == bvals[0]) and bvals.min() <= 50 and zero[0]:
        if np.all(vecs == vecs[0]) or not zero.any():
            return None
        bvals[zero] = 0
    vecs[:, 1] = -vecs[:, 1]
    vecs[vecs == 0] = 0  # no "-0"

    def line(values) -> str:
        return " ".join(f"{float(v):g}" for v in values) + "\n"

    return line(bvals), "".join(line(row) for row in vecs.T)


def phase_positive(header) -> int | None:
    """1 / 0 (dcm2niix's phase direction positive flag) from (0065,1058), else None.

    UIH writes 1 when the polarity is flipped, 0 when it is not."""
    if not is_uih(header):
        return None
    value = private_field(header, UIH_PHASE_POSITIVE)
    if value in (0, 1):
        return 1 - int(value)
    return None


def _dicom_time_to_seconds(value: float) -> float:
    """HHMMSS.ffffff (a number) -> seconds, read like dcm2niix: printed with five decimals
    and split into hours, minutes and seconds."""
    text = f"{value:+013.5f}"
    return int(text[:3]) * 3600 + int(text[3:5]) * 60 + float(text[5:])


def slice_times(times: tuple[str, ...]) -> list[float] | None:
    """Seconds after the earliest tile, in tile order, with dcm2niix's precision; None when
    unknown or when every tile has the same time."""
    if len(times) < 2:
        return None
    try:
        held = [float(np.float32(float(t))) for t in times]  # dcm2niix keeps 32-bit floats
    except ValueError:
        return None
    seconds = [np.float32(_dicom_time_to_seconds(t)) for t in held]
    if max(seconds) - min(seconds) > 43200:  # the volume crossed midnight
        seconds = [np.float32(s - 86400) if s > 43200 else s for s in seconds]
    first = min(seconds)
    relative = [float(np.float32(s - first)) for s in seconds]
    if max(relative) == 0:
        return None
    return [float(np.float32(round(r, 5) * 1000.0)) / 1000.0 for r in relative]
