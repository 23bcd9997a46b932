"""Index a DICOM tree by headers only and write the series table (JSON).

The series table lists every series that can form one volume, with its files in volume-major
spatial order and the metadata needed to classify it, plus every file that could not be used,
with the reason.  It never holds patient identifiers or UIDs: series are keyed by number and a
hash.

Headers are read in parallel (one process per available core, forked) when a tree holds
more than :data:`PARALLEL_MIN_FILES` files; results are the same as a serial read.

Every file is read on its own: whatever goes wrong while reading one (an unusable file, or an
exception nobody foresaw) lists that file under ``unusable`` with the reason, and the series
it belongs to, when its header still names it, fails; the index goes on.  Only regular files
are opened: FIFOs, sockets, devices and broken links are listed under ``unusable`` without
being opened, and so are folders that could not be listed and hidden folders (not searched;
see :func:`iter_files`).

Each file in a series entry has a fingerprint, ``"<size>-<mtime_ns>-<digest>"`` (the digest
covers the header bytes before the pixel data, see :func:`.scan.header_digest`), in the
entry's ``fingerprints``, one per item of ``files``.  With a ``cache_file`` a rerun reads only
files whose size or time changed (see :mod:`.index_cache`).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import multiprocessing
import os
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..bounded_read import file_kind
from .dicom_file import UnusableFile
from .geometry import GeometryPolicy, is_tilted, tilt_degrees, uniform_runs
from .headers import (
    describe_unexpected,
    identify,
    read_file_headers,
)
from .index_cache import FileRead, HeaderCache, Result
from .scan import header_digest
from .series import (
    SeriesGeometryError,
    check_uniform_spacing,
    group_series,
    order_slices,
    series_id,
)
from .slice_header import SliceHeader
from .table import SeriesTable


def iter_files(root: Path, passed: list[tuple[str, str]] | None = None) -> Iterator[Path]:
    """Every regular file below ``root`` in sorted order (hidden entries skipped).

    Symbolic links to folders are followed (studies are often assembled from links), each
    real folder once, so a link loop cannot recurse.  Nothing is opened here: anything that is
    not a regular file (FIFO, socket, device, broken or looping link) is never yielded, so no
    read can block on it.  ``passed`` collects ``(path, reason)`` for what was left out and
    should be said: such entries, folders that could not be listed, and hidden folders.
    """
    notes: list[tuple[str, str]] = [] if passed is None else passed
    seen: set[str] = set()

    def unlisted(exc: OSError) -> None:
        where = exc.filename if exc.filename is not None else str(root)
        notes.append((str(where), f"{UNREADABLE_FOLDER} ({exc.strerror or exc})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlisted, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        for name in sorted(d for d in dirnames if d.startswith(".")):
            notes.append((os.path.join(dirpath, name), HIDDEN_FOLDER))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            reason = not_regular(path)
            if reason:
                notes.append((str(path), reason))
            else:
                yield path


#: reasons :func:`iter_files` gives (the reports tell them apart by these prefixes)
UNREADABLE_FOLDER = "folder not readable"
HIDDEN_FOLDER = "hidden folder (name starts with '.'): not searched"
NOT_REGULAR = "not a regular file"

def not_regular(path: str | os.PathLike) -> str:
    """Why ``path`` is not a regular file (``"not a regular file (FIFO)"``), or ``""``.
    Only ``stat``: a FIFO or device is never opened."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{NOT_REGULAR} (symbolic link loop)"
        if os.path.islink(path):
            return f"{NOT_REGULAR} (broken symbolic link)"
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return ""
    return f"{NOT_REGULAR} ({file_kind(mode)})"


LOG = logging.getLogger("anatprep")

#: below this many files a process pool costs more than it saves
PARALLEL_MIN_FILES = 1000
_CHUNK = 200


def _read_one(path: str) -> FileRead:
    """Read one file; never raises (see the module docstring)."""
    try:
        before = os.stat(path)
    except OSError as exc:
        rejected = (path, f"unreadable ({exc.strerror or exc})", None, True)
        return FileRead(rejected, "", -1, -1, False)
    if not stat.S_ISREG(before.st_mode):  # replaced since the walk: never opened
        rejected = (path, not_regular(path) or f"{NOT_REGULAR}", None, False)
        return FileRead(rejected, "", -1, -1, False)
    cacheable = True
    try:
        headers, digest = read_file_headers(path)
        result: Result = headers
    except UnusableFile as exc:
        result, digest = (path, exc.reason, exc.header, exc.own_series), ""
        cacheable = not isinstance(exc.__context__, OSError)  # I/O errors may pass
    except Exception as exc:  # a file must never stop the index: listed with the cause
        result, digest = (path, describe_unexpected(exc), identify(path), True), ""
        cacheable = False
    try:
        after = os.stat(path)
    except OSError:
        after = None
    size, mtime_ns = before.st_size, before.st_mtime_ns
    if after is None or (after.st_size, after.st_mtime_ns) != (size, mtime_ns):
        cacheable = False  # changed while read
    if isinstance(result, list) and not digest:  # a reader that left no digest: whole file
        digest = _file_digest(path)
    fingerprint = f"{size}-{mtime_ns}-{digest}" if digest else ""
    return FileRead(result, fingerprint, size, mtime_ns, cacheable)


def _file_digest(path: str) -> str:
    with open(path, "rb") as fh:
        return header_digest(fh.read())


def _read_chunk(paths: Sequence[str]) -> list[FileRead]:
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


def _share(item: Result, seen: dict) -> Result:
    """Point repeated field values of ``item``'s headers at one shared copy (a header from
    another process arrives with its own copies; on 10,000 files this took the peak memory
    growth from 15.3 to 9.7 MB)."""
    if isinstance(item, list):
        for header in item:
            for name in _SHARED_FIELDS:
                value = getattr(header, name)
                object.__setattr__(header, name, seen.setdefault(value, value))
    return item


def read_files(
    paths: Sequence[str],
    n_procs: int | None = None,
    cache: HeaderCache | None = None,
    stats: dict[str, int] | None = None,
) -> Iterator[FileRead]:
    """The read of each path (in order; see :func:`_read_one`), from ``cache`` when it holds
    the file at its current size and time; the others in parallel for large trees.
    ``stats`` counts the files ``read`` and those taken from the cache (``cached``)."""
    seen: dict = {}
    cached: dict[str, FileRead] = {}
    if cache is not None:
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            hit = cache.get(path, st.st_size, st.st_mtime_ns)
            if hit is not None:
                cached[path] = hit
    missing = [p for p in paths if p not in cached]
    if stats is not None:
        stats["read"] = stats.get("read", 0) + len(missing)
        stats["cached"] = stats.get("cached", 0) + len(cached)
    fresh = _read_all(missing, n_procs)
    for path in paths:
        read = cached.get(path) or next(fresh)
        yield read._replace(result=_share(read.result, seen))


def _read_all(paths: Sequence[str], n_procs: int | None) -> Iterator[FileRead]:
    """Read ``paths`` (in order), in a process pool when there are many."""
    n_procs = available_cores() if n_procs is None else max(1, n_procs)
    pool = None
    if n_procs > 1 and len(paths) >= PARALLEL_MIN_FILES:
        try:
            pool = ProcessPoolExecutor(n_procs, mp_context=multiprocessing.get_context("fork"))
        except (OSError, ValueError):  # no fork here: read serially
            pool = None
    if pool is None:
        for path in paths:
            yield _read_one(path)
        return
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    with pool:
        for chunk in pool.map(_read_chunk, chunks):
            yield from chunk


def bids_part(image_type: tuple[str, ...]) -> str:
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


def _other_folders(
    members: list[SliceHeader], folders: list[str], root: Path, levels: int
) -> list[list[str]]:
    """The top folders holding files of a series other than its first file's ``folders``
    (one DICOM series copied into two subjects' folders; planning refuses that)."""
    dirs = {os.path.dirname(h.path) for h in members}
    tops = {tuple(_top_folders(Path(d) / "f", root, levels)) for d in dirs}
    return [list(t) for t in sorted(tops - {tuple(folders)})]


def index_tree(
    root: str | os.PathLike,
    folder_levels: int = 2,
    n_procs: int | None = None,
    geometry: GeometryPolicy | None = None,
    cache_file: Path | None = None,
) -> SeriesTable:
    """Build the series table of ``root`` (see module docstring).

    ``geometry`` decides what happens to irregular, tilted and localizer series (see
    :mod:`.geometry`); skipped series stay in the table with ``skipped`` set to the reason.
    ``cache_file``: the header cache to read from and rewrite (see :mod:`.index_cache`).
    """
    geometry = geometry or GeometryPolicy()
    root = Path(root).resolve()
    headers: list[SliceHeader] = []
    rejected: list[tuple[dict[str, Any], SliceHeader | None, bool]] = []
    cache = HeaderCache(Path(cache_file)) if cache_file is not None else None
    passed: list[tuple[str, str]] = []
    paths = [str(p) for p in iter_files(root, passed)]
    stats = {"read": 0, "cached": 0}
    reads: dict[str, FileRead] = {}
    for path, read in zip(paths, read_files(paths, n_procs, cache, stats), strict=True):
        reads[path] = read
        item = read.result
        if isinstance(item, list):
            headers.extend(item)
        else:
            _, reason, header, own_series = item
            rejected.append(({"path": path, "reason": reason, "series": None}, header, own_series))
    if cache is not None:
        cache.save(reads)
        LOG.info("index: %d files read, %d from the header cache", stats["read"], stats["cached"])

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
        entry["also_in"] = _other_folders(members, entry["folders"], root, folder_levels)
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
    for entry in series_list:
        entry["fingerprints"] = [reads[f].fingerprint for f in entry["files"]]
    return SeriesTable.from_dict(
        json_safe(
            {
                "root": str(root),
                "n_files": len(reads),
                "series": series_list,
                "unusable": [item for item, _, _ in rejected]
                + [{"path": path, "reason": reason, "series": None} for path, reason in passed],
            }
        )
    )


def json_safe(value: Any) -> Any:
    """``value`` with only JSON types: a number that is not finite becomes None (the header
    checks reject files with non-finite geometry or timing; this guards the write), tuples
    become lists, any other object its text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


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
        check_uniform_spacing(order.distances, where=order.slice_names())
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
        "part": bids_part(first.image_type),
        "rows": first.rows,
        "columns": first.columns,
        "files": [],
        "fingerprints": [],  # one per item of files (see the module docstring)
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
