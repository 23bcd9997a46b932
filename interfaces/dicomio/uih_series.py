"""The reader of UIH grid ("SaveBySlc") series: one file per volume, its tiles the slices
(:mod:`.uih` holds the UIH private values and rules it reads)."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from . import uih
from .classic import ClassicSeries
from .formats import g_number
from .geometry import is_tilted
from .series import SeriesGeometryError, check_uniform_spacing
from .uih import UihGrid
from .volume import NiftiVolume, lps_affine


class UihSeries(ClassicSeries):
    """UIH grid files of one series (one file per volume, tiles = slices) as a 3D/4D image."""

    FLAVOUR = "uih"

    def __init__(self, paths, frames=None, resample_tilt: bool = False):
        super().__init__(paths, frames, resample_tilt)
        if self._order.n_slices != 1:
            raise SeriesGeometryError(
                f"UIH grid files at {self._order.n_slices} different positions: expected one "
                "position per series (one file per volume)"
            )
        self.grid: UihGrid = self.headers[0].uih_grid
        for h, path in zip(self.headers, self.files, strict=True):
            other = h.uih_grid
            if other.n_images != self.grid.n_images or not np.allclose(
                other.positions, self.grid.positions, atol=uih.POSITION_TOLERANCE
            ):
                raise SeriesGeometryError(
                    f"{path}: UIH slice positions (0065,1051) differ from those of {self.files[0]}"
                )
        rows, cols = int(self.headers[0].Rows), int(self.headers[0].Columns)
        if rows % self.grid.rows or cols % self.grid.columns:
            raise SeriesGeometryError(
                f"{self.files[0]}: {rows}x{cols} image does not split into the "
                f"{self.grid.rows}x{self.grid.columns} grid of {self.grid.n_images} UIH tiles"
            )
        steps = np.diff(self._distances)
        if self.grid.n_images > 1 and not (np.all(steps > 0) or np.all(steps < 0)):
            raise SeriesGeometryError(
                f"{self.files[0]}: UIH tiles are not stored in spatial order along the slice "
                "normal: cannot form a volume"
            )
        if is_tilted(np.asarray(self.grid.positions), self._normal):
            raise SeriesGeometryError(
                f"{self.files[0]}: UIH slice positions drift off the slice normal (gantry tilt): "
                "refusing to write a wrong affine"
            )

    @cached_property
    def _distances(self) -> np.ndarray:
        return np.asarray(self.grid.positions, dtype=float) @ self._normal

    @cached_property
    def descending(self) -> bool:
        """Tiles run against row x column: they are reversed so slices ascend."""
        return self.grid.n_images > 1 and bool(self._distances[-1] < self._distances[0])

    @property
    def n_slices(self) -> int:
        return self.grid.n_images

    @property
    def n_volumes(self) -> int:
        return len(self.files)

    @property
    def frame_shape(self) -> tuple[int, int]:
        h = self.headers[0]
        return int(h.Rows) // self.grid.rows, int(h.Columns) // self.grid.columns

    def frames_of(self, pixels: np.ndarray) -> np.ndarray:
        rows, cols = self.frame_shape
        grid = pixels[0].reshape(self.grid.rows, rows, self.grid.columns, cols)
        tiles = grid.transpose(0, 2, 1, 3).reshape(-1, rows, cols)[: self.n_slices]
        return tiles[::-1] if self.descending else tiles

    @cached_property
    def _positions(self) -> np.ndarray:
        positions = np.asarray(self.grid.positions, dtype=float)
        return positions[::-1] if self.descending else positions

    @cached_property
    def slice_spacing(self) -> float:
        if self.n_slices == 1:
            h = self.headers[0]
            return float(h.get("SpacingBetweenSlices") or h.get("SliceThickness") or 1.0)
        return check_uniform_spacing(sorted(self._distances.tolist()))

    @cached_property
    def affine_lps(self) -> np.ndarray:
        h = self.headers[0]
        return lps_affine(
            h.ImageOrientationPatient, h.PixelSpacing, self.slice_spacing, self._positions[0]
        )

    def gradient_files(self, volume: NiftiVolume) -> tuple[str, str] | None:
        return None if volume.reoriented else uih.gradient_texts(self.headers)

    def slice_times(self) -> list[float] | None:
        times = uih.slice_times(self.grid.times)
        if times is None or len(times) != self.n_slices:
            return None
        return times[::-1] if self.descending else times

    def sidecar_extra(self, volume: NiftiVolume) -> dict:
        extra = super().sidecar_extra(volume)
        extra.pop("MultibandAccelerationFactor", None)  # dcm2niix does not infer it for UIH
        duration = self.grid.acquisition_duration
        if duration and "EffectiveEchoSpacing" not in extra:
            extra["TotalReadoutTime"] = g_number(float(np.float32(duration)) / 1000.0)
        return extra
