"""Index a DICOM tree by headers only and write the series table (JSON).

The series table lists every series that can form one volume, with its files in volume-major
spatial order and the metadata needed to classify it, plus every file that could not be used,
with the reason.  It never holds patient identifiers or UIDs: series are keyed by number and a
hash.

Headers are read in parallel (one process per available core, forked) when a tree holds
more than :data:`PARALLEL_MIN_FILES` files; results are the same as a serial read.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import GeometryPolicy, is_tilted, tilt_degrees, uniform_runs
from .headers import SliceHeader, UnusableFile, read_slice_headers
from .series import (
    SeriesGeometryError,
    check_uniform_spacing,
    group_series,
    order_slices,
    series_id,
)


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below ``root`` in sorted order (hidden entries skipped).

    Symbolic links to folders are followed (studies are often assembled from links), each
    real folder once, so a link loop cannot recurse.
    """
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            yield Path(dirpath) / name


#: below this many files a process pool costs more than it saves
PARALLEL_MIN_FILES = 1000
_CHUNK = 200

#: a read that failed: (path, reason, the header when it was readable, whether the file
#: makes a failed series of its own when no readable file shares its series)
Rejected = tuple[str, str, SliceHeader | None, bool]


def _read_one(path: str) -> list[SliceHeader] | Rejected:
    try:
        return read_slice_headers(path)
    except UnusableFile as exc:
        return (str(path), exc.reason, exc.header, exc.own_series)


def _read_chunk(paths: Sequence[str]) -> list[list[SliceHeader] | Rejected]:
    return [_read_one(p) for p in paths]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: header fields that repeat across a series' files: each distinct value is kept once
_SHARED_FIELDS = (
    "series_uid", "image_type", "orientation", "pixel_spacing", "series_description",
    "protocol_name", "sequence_name", "mr_acquisition_type", "flavour",
)  # fmt: skip


def _share(item: list[SliceHeader] | Rejected, seen: dict) -> list[SliceHeader] | Rejected:
    """Point repeated field values of ``item``'s headers at one shared copy (a header from
    another process arrives with its own copies; on 10,000 files this took the peak memory
    growth from 15.3 to 9.7 MB)."""
    if isinstance(item, list):
        for header in item:
            for name in _SHARED_FIELDS:
                value = getattr(header, name)
                object.__setattr__(header, name, seen.setdefault(value, value))
    return item


def read_headers(
    paths: Sequence[str], n_procs: int | None = None
) -> Iterator[list[SliceHeader] | Rejected]:
    """Slice headers of each path (in order), in parallel for large trees; yielded as they
    arrive, repeated values shared."""
    n_procs = available_cores() if n_procs is None else max(1, n_procs)
    seen: dict = {}
    pool = None
    if n_procs > 1 and len(paths) >= PARALLEL_MIN_FILES:
        try:
            pool = ProcessPoolExecutor(n_procs, mp_context=multiprocessing.get_context("fork"))
        except (OSError, ValueError):  # no fork here: read serially
            pool = None
    if pool is None:
        for path in paths:
            yield _share(_read_one(path), seen)
        return
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    with pool:
        for chunk in pool.map(_read_chunk, chunks):
            for item in chunk:
                yield _share(item, seen)


def complex_part(image_type: tuple[str, ...]) -> str:
    """BIDS ``part`` label from the image type: mag, phase, real or imag; ``fieldmaphz`` for a
    B0 map in Hz (GE's FIELDMAPHZ, Philips' FIELD_MAP frames): not a magnitude image."""
    values = set(image_type)
    if values & {"FIELDMAPHZ", "FIELD_MAP"}:
        return "fieldmaphz"
    if values & {"P", "PHASE"}:
        return "phase"
    if "REAL" in values:
        return "real"
    if values & {"IMAGINARY", "I"}:
        return "imag"
    return "mag"


def _top_folders(path: Path, root: Path, levels: int) -> list[str]:
    parts = path.relative_to(root).parts[:-1]
    return list(parts[:levels])


def index_tree(
    root: str | os.PathLike,
    folder_levels: int = 2,
    n_procs: int | None = None,
    geometry: GeometryPolicy | None = None,
) -> dict[str, Any]:
    """Build the series table of ``root`` (see module docstring).

    ``geometry`` decides what happens to irregular, tilted and localizer series (see
    :mod:`.geometry`); skipped series stay in the table with ``skipped`` set to the reason.
    """
    geometry = geometry or GeometryPolicy()
    root = Path(root).resolve()
    headers: list[SliceHeader] = []
    rejected: list[tuple[dict[str, Any], SliceHeader | None, bool]] = []
    for item in read_headers([str(p) for p in iter_files(root)], n_procs):
        if isinstance(item, list):
            headers.extend(item)
        else:
            path, reason, header, own_series = item
            rejected.append(({"path": path, "reason": reason, "series": None}, header, own_series))

    # files rejected after their series was identified (e.g. truncated pixel data) are
    # attached to that series so its conversion can fail loudly instead of losing a slice
    series_list = []
    groups = group_series(headers)
    planes_per_uid: dict[str, int] = {}
    for members in groups.values():
        uid = members[0].series_uid
        planes_per_uid[uid] = planes_per_uid.get(uid, 0) + 1
    for sid, members in groups.items():
        entry = _series_entry(sid, members[0], root, folder_levels)
        try:
            order = order_slices(members)
        except SeriesGeometryError as exc:
            entry["files"] = sorted({h.path for h in members})
            entry["problems"].append(str(exc))
            series_list.append(entry)
            continue
        _fill(entry, order.files, order.frames, order.n_slices, order.n_volumes)
        localizer = "LOCALIZER" in members[0].image_type or (
            planes_per_uid[members[0].series_uid] > 1 and order.n_slices < 3
        )
        if localizer and geometry.localizers == "skip":
            entry["skipped"] = "localizer (conversion.geometry.localizers: skip)"
        series_list.extend(_apply_geometry(entry, members, order, geometry))
    uids = {sid: members[0].series_uid for sid, members in groups.items()}
    _attach_rejected(rejected, series_list, root, folder_levels, uids)
    return {
        "root": str(root),
        "n_files": len(headers) + len(rejected),
        "series": series_list,
        "unusable": [item for item, _, _ in rejected],
    }


def _fill(entry: dict[str, Any], files, frames, n_slices: int, n_volumes: int) -> None:
    entry.update(files=list(files), n_slices=n_slices, n_volumes=n_volumes)
    if any(f is not None for f in frames):
        entry["frames"] = list(frames)


def _apply_geometry(
    entry: dict[str, Any], members: list[SliceHeader], order, policy: GeometryPolicy
) -> list[dict[str, Any]]:
    """The entry as it is, skipped, failed, split into even runs, or marked for resampling."""
    if order.n_slices < 2 or entry.get("skipped"):
        return [entry]
    normal = members[0].normal
    by_path = {(h.path, h.frame): h for h in members}
    keys = list(zip(order.files, order.frames, strict=True))[: order.n_slices]
    first_volume = [by_path[k] for k in keys]
    positions = np.array([h.position for h in first_volume])
    if is_tilted(positions, normal):
        angle = tilt_degrees(positions, normal)
        reason = f"gantry tilt of {angle:.2f} degrees (slices drift off the slice normal)"
        if policy.gantry_tilt == "skip":
            entry["skipped"] = f"{reason} (conversion.geometry.gantry_tilt: skip)"
        elif policy.gantry_tilt == "resample":
            entry["resample_tilt"] = True
        else:
            entry["problems"].append(
                f"{reason}: refusing to write a wrong affine "
                "(set conversion.geometry.gantry_tilt to resample or skip)"
            )
        return [entry]
    try:
        check_uniform_spacing(order.distances)
        return [entry]
    except SeriesGeometryError as exc:
        reason = str(exc)
    if policy.irregular_spacing == "skip":
        entry["skipped"] = f"{reason} (conversion.geometry.irregular_spacing: skip)"
        return [entry]
    if policy.irregular_spacing == "fail" or order.n_volumes > 1:
        hint = "" if order.n_volumes == 1 else " (split applies to 3D series only)"
        entry["problems"].append(reason + hint)
        return [entry]
    parts = []
    runs = uniform_runs(list(order.distances))
    for k, run in enumerate(runs, start=1):
        part = {**entry, "id": f"{entry['id']}-r{k}", "problems": [], "split_from": entry["id"]}
        _fill(
            part,
            [order.files[i] for i in run],
            [order.frames[i] for i in run],
            len(run),
            1,
        )
        part["split_reason"] = f"{reason}: part {k} of {len(runs)}"
        parts.append(part)
    return parts


def _series_entry(sid: str, first: SliceHeader, root: Path, folder_levels: int) -> dict[str, Any]:
    return {
        "id": sid,
        "folders": _top_folders(Path(first.path), root, folder_levels),
        "flavour": first.flavour,
        "series_number": first.series_number,
        "series_description": first.series_description,
        "protocol_name": first.protocol_name,
        "sequence_name": first.sequence_name,
        "image_type": list(first.image_type),
        "mr_acquisition_type": first.mr_acquisition_type,
        # entries split from one DICOM series share this (a hash, never the UID itself)
        "acquisition": hashlib.sha1(first.series_uid.encode()).hexdigest()[:8],
        "echo_number": first.echo_number,
        "echo_time": first.echo_time,
        "part": complex_part(first.image_type),
        "rows": first.rows,
        "columns": first.columns,
        "files": [],
        "n_slices": None,
        "n_volumes": None,
        "problems": [],
    }


def _attach_rejected(
    rejected: list[tuple[dict[str, Any], SliceHeader | None, bool]],
    series_list: list[dict[str, Any]],
    root: Path,
    folder_levels: int,
    uids: dict[str, str],
) -> None:
    """A rejected file whose header was readable fails the series it belongs to; when its
    own keys are broken (so it matches no group), every series of its SeriesInstanceUID.
    Without such series it is a failed series of its own, unless ``own_series`` is False."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for s in series_list:
        by_id.setdefault(s.get("split_from", s["id"]), []).append(s)
    for item, header, own_series in rejected:
        if header is None:
            continue
        sid = series_id(header)
        targets = by_id.get(sid) or [
            s for base, parts in by_id.items() if uids.get(base) == header.series_uid for s in parts
        ]
        if not targets and not own_series:  # e.g. a non-spatial image: listed only
            continue
        if not targets:  # every file of that series was rejected
            targets = by_id[sid] = [_series_entry(sid, header, root, folder_levels)]
            uids[sid] = header.series_uid
            series_list.extend(targets)
        item["series"] = sid if sid in by_id else targets[0]["id"]
        for target in targets:
            target["problems"].append(f"{item['path']}: {item['reason']}")
