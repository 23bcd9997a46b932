"""Index a DICOM tree by headers only and write the series table (JSON).

The series table lists every series that can form one volume, with its files in volume-major
spatial order and the metadata needed to classify it, plus every file that could not be used,
with the reason.  It never holds patient identifiers or UIDs: series are keyed by number and a
hash.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .headers import SliceHeader, UnusableFile, read_slice_header
from .series import SeriesGeometryError, group_series, order_slices, series_id


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below ``root`` in sorted order (hidden entries skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            yield Path(dirpath) / name


def _top_folders(path: Path, root: Path, levels: int) -> list[str]:
    parts = path.relative_to(root).parts[:-1]
    return list(parts[:levels])


def index_tree(root: str | os.PathLike, folder_levels: int = 2) -> dict[str, Any]:
    """Build the series table of ``root`` (see module docstring)."""
    root = Path(root).resolve()
    headers: list[SliceHeader] = []
    rejected: list[tuple[dict[str, Any], SliceHeader | None]] = []
    for path in iter_files(root):
        try:
            headers.append(read_slice_header(path))
        except UnusableFile as exc:
            rejected.append(({"path": str(path), "reason": exc.reason, "series": None}, exc.header))

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
        except SeriesGeometryError as exc:
            entry["files"] = sorted(h.path for h in members)
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
