"""Group slice headers into series that can each form one NIfTI volume, and order them.

A DICOM series (SeriesInstanceUID) is split where its files cannot share one voxel grid:
echo number, image type, slice orientation, matrix size and pixel spacing.  Within a group,
slices are ordered by their position projected on the slice normal and, at each position, by
acquisition order (temporal position, then instance number), which gives a volume-major file
list; images stacked at one position must not be shifted in-plane.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .slice_header import SliceHeader

#: direction cosines that differ less than this are the same orientation
ORIENTATION_TOLERANCE = 1e-4
#: positions closer than this (mm) along the normal are the same slice location
POSITION_TOLERANCE = 1e-3


class SeriesGeometryError(ValueError):
    """The files of a series cannot form one regular volume."""


@dataclass(frozen=True)
class SliceOrder:
    """Files in volume-major order, with the slice and volume counts."""

    files: tuple[str, ...]
    #: frame index in each file (enhanced files), else None
    frames: tuple[int | None, ...]
    n_slices: int
    n_volumes: int
    #: positions of the slices of the first volume along the normal (mm), ascending
    distances: tuple[float, ...]

    def slice_names(self) -> list[str]:
        """The file (and frame) of each slice of the first volume, for messages."""
        return [
            path if frame is None else f"{path} (frame {frame + 1})"
            for path, frame in zip(self.files, self.frames, strict=True)
        ][: self.n_slices]


def _rounded_orientation(orientation: Sequence[float]) -> tuple[float, ...]:
    step = ORIENTATION_TOLERANCE * 10
    return tuple(round(v / step) * step + 0.0 if np.isfinite(v) else v for v in orientation)


def split_key(h: SliceHeader) -> tuple:
    """What must be equal for two files of one series to share a volume."""
    return (
        h.series_uid,
        h.echo_number,
        h.image_type,
        _rounded_orientation(h.orientation),
        h.rows,
        h.columns,
        tuple(round(v, 4) for v in h.pixel_spacing),  # one voxel grid: one in-plane spacing
        h.flavour,
        None if h.echo_time is None else round(h.echo_time, 3),
    )


def series_id(h: SliceHeader) -> str:
    """A stable, non-identifying id: series number plus a short hash of the split key.

    Siemens XA classic volumes (each its own SeriesNumber, one SeriesInstanceUID: see
    :mod:`.siemens`) share the id of their run, ``sn16xxx-...``, and so form one 4D series.
    """
    digest = hashlib.sha1(repr(split_key(h)).encode()).hexdigest()[:8]
    number = f"{h.series_number:03d}" if h.series_number is not None else "none"
    if h.series_stack is not None:
        number = f"{h.series_stack}xxx"
    return f"sn{number}-{digest}"


def group_series(headers: Iterable[SliceHeader]) -> dict[str, list[SliceHeader]]:
    """Map series id -> headers, ordered by (series number, id)."""
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for h in headers:
        groups[series_id(h)].append(h)

    def sort_key(item: tuple[str, list[SliceHeader]]):
        sn = item[1][0].series_number
        return (sn if sn is not None else 1 << 30, item[0])

    return dict(sorted(groups.items(), key=sort_key))


def order_slices(headers: Sequence[SliceHeader]) -> SliceOrder:
    """Order the files of one group; raise :class:`SeriesGeometryError` when not a volume."""
    if not headers:
        raise SeriesGeometryError("no files")
    normal = headers[0].normal
    dist = np.array([np.dot(normal, h.position) for h in headers])
    order = np.argsort(dist, kind="stable")
    # cluster equal positions
    locations: list[list[int]] = []
    last = None
    for idx in order:
        if last is None or dist[idx] - last > POSITION_TOLERANCE:
            locations.append([])
            last = dist[idx]
        locations[-1].append(int(idx))
    counts = {len(loc) for loc in locations}
    if len(counts) != 1:
        per = [len(loc) for loc in locations]
        raise SeriesGeometryError(
            "slice locations hold different numbers of images "
            f"(min {min(per)}, max {max(per)} over {len(per)} locations): "
            "incomplete time series or missing files"
        )
    n_volumes = counts.pop()
    _check_same_place(headers, locations)
    _check_in_line(headers, [loc[0] for loc in locations], dist)

    def acquisition_key(i: int):
        h = headers[i]
        return (
            h.temporal_position if h.temporal_position is not None else 0,
            h.series_number if h.series_number is not None else 0,  # XA classic: a volume each
            h.instance_number if h.instance_number is not None else 0,
            h.frame if h.frame is not None else 0,
            h.acquisition_time or "",
            h.path,
        )

    per_location = [sorted(loc, key=acquisition_key) for loc in locations]
    picked = [headers[per_location[s][v]] for v in range(n_volumes) for s in range(len(locations))]
    files = tuple(h.path for h in picked)
    frames = tuple(h.frame for h in picked)
    distances = tuple(float(dist[loc[0]]) for loc in per_location)
    return SliceOrder(
        files=files,
        frames=frames,
        n_slices=len(locations),
        n_volumes=n_volumes,
        distances=distances,
    )


def _in_plane_tolerance(h: SliceHeader) -> float:
    """How far (mm) a slice corner may sit off its place in the grid: a tenth of a pixel, at
    least 0.1 mm (positions are often written with one or two decimals)."""
    return max(0.1, 0.1 * min(h.pixel_spacing))


def _where(h: SliceHeader) -> str:
    return h.path if h.frame is None else f"{h.path} (frame {h.frame + 1})"


def _check_same_place(headers: Sequence[SliceHeader], locations: list[list[int]]) -> None:
    """Images stacked at one slice location must cover the same plane patch: a 4D series
    keeps one affine, so an in-plane shift between its volumes cannot be written."""
    for loc in locations:
        first = headers[loc[0]]
        for i in loc[1:]:
            shift = np.subtract(headers[i].position, first.position)
            if float(np.max(np.abs(shift))) > _in_plane_tolerance(first):
                raise SeriesGeometryError(
                    f"{_where(headers[i])}: ImagePositionPatient {headers[i].position} is "
                    f"shifted in-plane by {np.round(shift, 4).tolist()} mm from "
                    f"{_where(first)} at the same slice location; "
                    "the images cannot share one affine"
                )


def _check_in_line(headers: Sequence[SliceHeader], firsts: list[int], dist: np.ndarray) -> None:
    """The slice corners of one volume must lie on one straight line (along the normal, or
    drifting evenly for a gantry tilt): a slice shifted sideways on its own would be stacked
    into a wrong place."""
    if len(firsts) < 3:
        return
    pos = np.array([headers[i].position for i in firsts], dtype=float)
    normal = headers[firsts[0]].normal
    normal = normal / np.linalg.norm(normal)
    along = dist[firsts] - dist[firsts[0]]
    lateral = (pos - pos[0]) - np.outer(along, normal)
    if along[-1] <= 0:
        return  # one position: clustering put these in one location already
    expected = np.outer(along / along[-1], lateral[-1])
    off = np.linalg.norm(lateral - expected, axis=1)
    worst = int(np.argmax(off))
    if off[worst] > _in_plane_tolerance(headers[firsts[0]]):
        h = headers[firsts[worst]]
        raise SeriesGeometryError(
            f"{_where(h)}: ImagePositionPatient {h.position} is {off[worst]:.3g} mm off the "
            "line through the other slices' corners: the slice cannot be placed in the grid"
        )


def check_uniform_spacing(
    distances: Sequence[float],
    rel_tol: float = 0.02,
    abs_tol: float = 0.02,
    where: Sequence[str] | None = None,
) -> float:
    """Return the slice spacing (mm); raise :class:`SeriesGeometryError` on gaps or jitter,
    naming the two slices around it from ``where`` (one name per distance) when given."""
    if len(distances) < 2:
        return 0.0
    steps = np.diff(np.asarray(distances, dtype=float))
    median = float(np.median(steps))
    if median <= 0:
        raise SeriesGeometryError("slices share one position: cannot form a volume")
    bad = np.flatnonzero(np.abs(steps - median) > max(abs_tol, rel_tol * median))
    if bad.size:
        i = int(bad[0])
        missing = steps[i] / median - 1
        hint = f" (about {round(missing)} missing slice(s))" if missing > 0.5 else ""
        files = f" ({where[i]} and {where[i + 1]})" if where and len(where) > i + 1 else ""
        raise SeriesGeometryError(
            f"non-uniform slice spacing: step {steps[i]:.4g} mm between slices {i} and {i + 1}"
            f"{files} where the others are {median:.4g} mm{hint}"
        )
    return float((distances[-1] - distances[0]) / (len(distances) - 1))
