"""Index a DICOM tree by headers only and write the series table (JSON).

The series table lists every series that can form one volume, with its files in volume-major
spatial order and the metadata needed to classify it, plus every file that could not be used,
with the reason.  It never holds patient identifiers or UIDs: series are keyed by number and a
hash.

Headers are read in parallel (one process per available core, forked) when a tree holds
more than :data:`PARALLEL_MIN_FILES` files; results are the same as a serial read.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .headers import SliceHeader, UnusableFile, read_slice_headers
from .series import SeriesGeometryError, group_series, order_slices, series_id


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below ``root`` in sorted order (hidden entries skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            yield Path(dirpath) / name


#: below this many files a process pool costs more than it saves
PARALLEL_MIN_FILES = 1000
_CHUNK = 200

#: a read that failed: (path, reason, the header when it was readable)
Rejected = tuple[str, str, SliceHeader | None]


def _read_one(path: Path) -> list[SliceHeader] | Rejected:
    try:
        return read_slice_headers(path)
    except UnusableFile as exc:
        return (str(path), exc.reason, exc.header)


def _read_chunk(paths: Sequence[Path]) -> list[list[SliceHeader] | Rejected]:
    return [_read_one(p) for p in paths]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_headers(
    paths: Sequence[Path], n_procs: int | None = None
) -> list[list[SliceHeader] | Rejected]:
    """Slice headers of each path (in order), in parallel for large trees."""
    n_procs = available_cores() if n_procs is None else max(1, n_procs)
    if n_procs == 1 or len(paths) < PARALLEL_MIN_FILES:
        return _read_chunk(paths)
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    try:
        pool = ProcessPoolExecutor(n_procs, mp_context=multiprocessing.get_context("fork"))
    except (OSError, ValueError):  # no fork here: read serially
        return _read_chunk(paths)
    with pool:
        return [item for chunk in pool.map(_read_chunk, chunks) for item in chunk]


def complex_part(image_type: tuple[str, ...]) -> str:
    """BIDS ``part`` label from the image type: mag, phase, real or imag."""
    values = set(image_type)
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
    root: str | os.PathLike, folder_levels: int = 2, n_procs: int | None = None
) -> dict[str, Any]:
    """Build the series table of ``root`` (see module docstring)."""
    root = Path(root).resolve()
    headers: list[SliceHeader] = []
    rejected: list[tuple[dict[str, Any], SliceHeader | None]] = []
    for item in read_headers(list(iter_files(root)), n_procs):
        if isinstance(item, list):
            headers.extend(item)
        else:
            path, reason, header = item
            rejected.append(({"path": path, "reason": reason, "series": None}, header))

    # files rejected after their series was identified (e.g. truncated pixel data) are
    # attached to that series so its conversion can fail loudly instead of losing a slice
    series_list = []
    for sid, members in group_series(headers).items():
        entry = _series_entry(sid, members[0], root, folder_levels)
        try:
            order = order_slices(members)
            entry.update(
                files=list(order.files), n_slices=order.n_slices, n_volumes=order.n_volumes
            )
            if any(f is not None for f in order.frames):
                entry["frames"] = list(order.frames)
        except SeriesGeometryError as exc:
            entry["files"] = sorted({h.path for h in members})
            entry["problems"].append(str(exc))
        series_list.append(entry)
    _attach_rejected(rejected, series_list, root, folder_levels)
    return {
        "root": str(root),
        "n_files": len(headers) + len(rejected),
        "series": series_list,
        "unusable": [item for item, _ in rejected],
    }


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
    rejected: list[tuple[dict[str, Any], SliceHeader | None]],
    series_list: list[dict[str, Any]],
    root: Path,
    folder_levels: int,
) -> None:
    """A rejected file whose header was readable fails the series it belongs to."""
    by_id = {s["id"]: s for s in series_list}
    for item, header in rejected:
        if header is None:
            continue
        sid = series_id(header)
        item["series"] = sid
        if sid not in by_id:  # every file of that series was rejected
            by_id[sid] = _series_entry(sid, header, root, folder_levels)
            series_list.append(by_id[sid])
        by_id[sid]["problems"].append(f"{item['path']}: {item['reason']}")
