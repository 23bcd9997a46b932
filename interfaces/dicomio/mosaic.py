"""Siemens mosaic series: one file per volume, the slices tiled in one image.

Geometry from the CSA image header (what dcm2niix and nibabel use):

* ``NumberOfImagesInMosaic`` slices sit on a square grid of ``ceil(sqrt(n))`` tiles,
  row-major from the top left, each ``Rows / grid`` x ``Columns / grid`` pixels;
* ImagePositionPatient is that of the whole mosaic's top-left pixel: the first slice's corner
  is shifted by half the size difference between mosaic and tile along rows and columns;
* slices follow ``SliceNormalVector`` in tile order, ``SpacingBetweenSlices`` apart; when that
  vector runs against row x column (descending acquisitions), the slices and their times are
  reversed so the NIfTI slice axis ascends along row x column, as dcm2niix does;
* ``MosaicRefAcqTimes`` gives each slice's acquisition time: the BIDS ``SliceTiming``.
  The first volume's times are used unless they look wrong: all equal, beyond TR, or
  spanning a different range than the second volume's (the first volume of some runs is
  timed differently); then the second volume's times are used, when they are plausible.
  This is dcm2niix's rule (its ``checkSliceTiming``), so both write the same SliceTiming.
  Old software (VB12/VB13) has no MosaicRefAcqTimes: the times then come from the protocol's
  slice order and TA (:func:`.siemens.protocol_slice_times`).
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from . import siemens
from .classic import ClassicSeries
from .csa import CsaImage
from .series import SeriesGeometryError
from .volume import NiftiVolume, lps_affine


class MosaicSeries(ClassicSeries):
    """Mosaic files of one series (volumes in acquisition order) as a 3D/4D image."""

    FLAVOUR = "mosaic"

    def __init__(self, paths, frames=None, resample_tilt: bool = False):
        super().__init__(paths, frames, resample_tilt)
        if self._order.n_slices != 1:
            raise SeriesGeometryError(
                f"mosaic files at {self._order.n_slices} different positions: "
                "expected one position per series (one file per volume)"
            )
        csa = CsaImage.from_header(self.headers[0], self.files[0])
        if csa is None or not csa.n_images_in_mosaic:
            raise SeriesGeometryError(
                f"{self.files[0]}: mosaic without a readable CSA NumberOfImagesInMosaic"
            )
        self.csa = csa
        self._check_slice_normal()
        rows, cols = int(self.headers[0].Rows), int(self.headers[0].Columns)
        self.grid = math.ceil(math.sqrt(csa.n_images_in_mosaic))
        if rows % self.grid or cols % self.grid:
            raise SeriesGeometryError(
                f"{self.files[0]}: {rows}x{cols} mosaic does not split into a "
                f"{self.grid}x{self.grid} grid of tiles"
            )

    def _check_slice_normal(self) -> None:
        """The tiles' order along the slice normal comes from ``SliceNormalVector`` alone:
        without it (or with one that is not along row x column) it is unknown, and a guess
        would flip the slice axis."""
        normal = self.csa.slice_normal
        iop = np.asarray(self.headers[0].ImageOrientationPatient, dtype=float)
        cross = np.cross(iop[:3], iop[3:])
        along = float(np.dot(normal, cross) / np.linalg.norm(normal)) if normal else 0.0
        if not abs(along) > 0.99:  # NaN too
            got = "missing" if normal is None else f"{normal} is not along row x column"
            raise SeriesGeometryError(
                f"{self.files[0]}: mosaic CSA header (0029,1010) SliceNormalVector {got}: "
                "the order of its slices is unknown"
            )

    @property
    def n_slices(self) -> int:
        n_images = self.csa.n_images_in_mosaic
        assert n_images, "checked in __init__"
        return n_images

    @property
    def n_volumes(self) -> int:
        return len(self.files)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return int(self.headers[0].Rows) // self.grid, int(self.headers[0].Columns) // self.grid

    @cached_property
    def descending(self) -> bool:
        """Tiles run against row x column (``SliceNormalVector`` points the other way)."""
        h = self.headers[0]
        iop = np.asarray(h.ImageOrientationPatient, dtype=float)
        normal = self.csa.slice_normal
        return normal is not None and float(np.dot(normal, np.cross(iop[:3], iop[3:]))) < 0

    def frames_of(self, pixels: np.ndarray) -> np.ndarray:
        rows, cols = self.frame_shape
        tiles = pixels[0].reshape(self.grid, rows, self.grid, cols).transpose(0, 2, 1, 3)
        tiles = tiles.reshape(self.grid * self.grid, rows, cols)[: self.n_slices]
        return tiles[::-1] if self.descending else tiles

    @cached_property
    def slice_spacing(self) -> float:
        """The slice step, a header value here: SpacingBetweenSlices, else SliceThickness,
        else 1 mm.  A value that is there but is no positive number fails the series, named
        (falling back to the other would misplace every slice of a gapped acquisition)."""
        h = self.headers[0]
        for key in ("SpacingBetweenSlices", "SliceThickness"):
            value = h.get(key)
            unreadable = key in getattr(h, "malformed", ())
            if value in (None, "") and not unreadable:
                continue
            try:
                step = math.nan if unreadable or value is None else float(value)
            except (TypeError, ValueError):
                step = math.nan
            if not step > 0:  # NaN too
                got = " is not a number" if unreadable else f"={value!s}"
                raise SeriesGeometryError(
                    f"{self.files[0]}: {key}{got}: a mosaic's slice step must be a positive number"
                )
            return step
        return 1.0

    @cached_property
    def affine_lps(self) -> np.ndarray:
        h = self.headers[0]
        iop = np.asarray(h.ImageOrientationPatient, dtype=float)
        row_cos, col_cos = iop[:3], iop[3:]
        dr, dc = (float(v) for v in h.PixelSpacing)
        tile_rows, tile_cols = self.frame_shape
        corner = (
            np.asarray(h.ImagePositionPatient, dtype=float)
            + row_cos * dc * (int(h.Columns) - tile_cols) / 2.0
            + col_cos * dr * (int(h.Rows) - tile_rows) / 2.0
        )
        if self.descending:  # the last tile is the first NIfTI slice
            normal = np.cross(row_cos, col_cos)
            corner = corner - normal * self.slice_spacing * (self.n_slices - 1)
        return lps_affine(iop, (dr, dc), self.slice_spacing, corner)

    def sidecar_extra(self, volume: NiftiVolume) -> dict:
        extra = super().sidecar_extra(volume)
        extra.pop("SliceSpacingFromPositions", None)  # the slice step is a header value here
        return extra

    def slice_times(self) -> list[float] | None:
        times = self.csa.slice_times_ms
        if not times:  # VB12/VB13: no MosaicRefAcqTimes; the protocol's slice order
            tr = self.headers[0].get("RepetitionTime")
            times = (
                siemens.protocol_slice_times(
                    siemens.series_protocol(self.files[0]), self.n_slices, tr
                )
                or []
            )
        elif self.n_volumes > 1:
            second = CsaImage.from_header(self.headers[1], self.files[1])
            tr = float(self.headers[0].get("RepetitionTime") or 0.0)
            if second is not None:
                times = checked_slice_times(times, second.slice_times_ms, tr)
        times = times[:: -1 if self.descending else 1]
        return [t / 1000.0 for t in times] if len(times) == self.n_slices else None


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1.0)


def checked_slice_times(first: list[float], second: list[float], tr_ms: float) -> list[float]:
    """The first volume's slice times (ms), or the second's when the first look wrong
    (see the module docstring); the second's are shifted to start at 0."""
    n = min(len(first), len(second))
    if n < 2 or tr_ms <= 0:
        return first
    lo0, hi0 = min(first[:n]), max(first[:n])
    lo1, hi1 = min(second[:n]), max(second[:n])
    if lo0 != hi0 and hi0 <= tr_ms and _same(hi0 - lo0, hi1 - lo1):
        return first
    if lo1 >= hi1 or hi1 >= tr_ms:
        return first
    shift = max(lo1, 0.0)
    return [t - shift for t in second[:n]]
