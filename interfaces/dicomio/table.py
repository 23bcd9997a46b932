"""The series table as typed, frozen data: what indexing decided about every series.

:func:`.index.index_tree` builds a :class:`SeriesTable`; conversion, planning, execution and
the reports read its attributes (no string keys).  It is saved as JSON in the work dir and
a conversion node gets one :class:`SeriesEntry` as canonical JSON (:meth:`SeriesEntry.to_json`),
so the node's hash follows that series' files and decisions only.

Rules: every field has a type and a default where it may be absent; loading refuses a
document that does not match (:class:`SeriesTableError`, naming the field) rather than
guessing, and reads only a regular file of at most :data:`MAX_TABLE_BYTES`.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: the largest series table read: about 170 bytes a file, so some 1.5 million files (a
#: SLURMArray task reads one subject's part); the parsed table takes a few times as much
MAX_TABLE_BYTES = 256 << 20


class SeriesTableError(ValueError):
    """A series-table document that does not match the dataclasses (names the field)."""


@dataclass(frozen=True)
class SeriesEntry:
    """One series (or one evenly spaced part of a split series) as indexing left it."""

    id: str
    #: the top folders below INPUT (subject / session come from them)
    folders: tuple[str, ...] = ()
    #: other top folders holding files of this series (the same series in two folders)
    also_in: tuple[tuple[str, ...], ...] = ()
    #: the reader that converts it: classic, mosaic, enhanced or uih
    flavour: str = "classic"
    series_number: int | None = None
    series_description: str = ""
    protocol_name: str = ""
    sequence_name: str = ""
    image_type: tuple[str, ...] = ()
    mr_acquisition_type: str = ""
    #: entries split from one DICOM series share this (a hash, never the UID itself)
    acquisition: str = ""
    echo_number: int | None = None
    echo_time: float | None = None
    #: BIDS part: mag, phase, real, imag (or fieldmaphz)
    part: str = "mag"
    rows: int | None = None
    columns: int | None = None
    #: the files in slice order (volume by volume) and, per file, its fingerprint
    #: ``<size>-<mtime_ns>-<header digest>``
    files: tuple[str, ...] = ()
    fingerprints: tuple[str, ...] = ()
    #: the frame of each file item (enhanced / multi-frame files), None for single frames
    frames: tuple[int | None, ...] | None = None
    n_slices: int | None = None
    n_volumes: int | None = None
    #: why the series cannot be converted (it then fails, with these reasons)
    problems: tuple[str, ...] = ()
    #: why the geometry policy left it out (not a failure)
    skipped: str | None = None
    resample_tilt: bool = False
    split_from: str | None = None
    split_reason: str | None = None

    @property
    def description(self) -> str:
        return self.series_description or self.protocol_name

    def describe(self) -> str:
        """``series <id> ('<description>' in <folders>)`` for messages (``series <id> (in
        <folders>)`` without a description: see :meth:`without_free_text`)."""
        folder = "/".join(self.folders)
        desc = f"'{self.description}' " if self.description else ""
        return f"series {self.id} ({desc}in {folder or '.'})"

    def without_free_text(self) -> SeriesEntry:
        """This entry with its operator-typed descriptions (SeriesDescription, ProtocolName)
        blanked: what ``deidentify: strict`` shows in messages and gives conversion nodes
        (their files, fingerprints and geometry unchanged).  SequenceName (set by the
        sequence, not typed) stays."""
        return replace(self, series_description="", protocol_name="")

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no NaN): equal entries give equal text."""
        return json.dumps(_plain(self), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> SeriesEntry:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SeriesTableError(f"series entry is not JSON: {exc}") from None
        return _build(cls, data, "entry")


@dataclass(frozen=True)
class UnusableItem:
    """A file indexing could not use, with the reason; ``series`` is the id of the series it
    belongs to (that series then fails) or None."""

    path: str
    reason: str
    series: str | None = None


@dataclass(frozen=True)
class SeriesTable:
    root: str
    #: files looked at (usable or not)
    n_files: int
    series: tuple[SeriesEntry, ...] = ()
    unusable: tuple[UnusableItem, ...] = ()

    def by_id(self) -> dict[str, SeriesEntry]:
        return {s.id: s for s in self.series}

    def without_free_text(self) -> SeriesTable:
        """The table with every entry's descriptions blanked
        (:meth:`SeriesEntry.without_free_text`)."""
        return replace(self, series=tuple(s.without_free_text() for s in self.series))

    def save(self, path: str | Path) -> Path:
        """Write atomically as JSON."""
        from ..atomic import atomic_write_bytes

        text = json.dumps(_plain(self), indent=1, allow_nan=False) + "\n"
        return atomic_write_bytes(path, text.encode())

    @classmethod
    def load(cls, path: str | Path) -> SeriesTable:
        """The table saved in ``path``; :class:`SeriesTableError` naming the file and what is
        wrong (missing, not a regular file, too large, not JSON, not a series table)."""
        from ..bounded_read import FileRefused, read_regular_file

        try:
            raw = read_regular_file(Path(path), MAX_TABLE_BYTES)
        except FileRefused as exc:
            raise SeriesTableError(f"{path} is {exc}") from None
        except OSError as exc:
            raise SeriesTableError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise SeriesTableError(f"{path} is not a series table (not JSON: {exc})") from None
        try:
            return cls.from_dict(data)
        except SeriesTableError as exc:
            raise SeriesTableError(f"{path} is not a series table: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> SeriesTable:
        return _build(cls, data, "table")


#: fields left out of the JSON while empty, so an entry written before they existed keeps
#: its text (and the conversion node hashing it stays cached)
_OMIT_EMPTY = ("also_in",)


def _plain(obj: Any) -> Any:
    data = asdict(obj)
    for entry in [data, *data.get("series", ())]:
        for name in _OMIT_EMPTY:
            if name in entry and not entry[name]:
                del entry[name]
    return data


_NESTED: dict[tuple[type, str], type] = {
    (SeriesTable, "series"): SeriesEntry,
    (SeriesTable, "unusable"): UnusableItem,
}


def _build(cls: type[T], data: Any, where: str) -> T:
    """``cls`` from a JSON object: lists become tuples, nested entries their dataclass;
    unknown or missing required keys raise :class:`SeriesTableError`."""
    if not isinstance(data, dict):
        raise SeriesTableError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SeriesTableError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = [
        n for n, f in known.items()
        if n not in data and f.default is MISSING and f.default_factory is MISSING
    ]  # fmt: skip
    if missing:
        raise SeriesTableError(f"{where}: missing field(s) {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        nested = _NESTED.get((cls, name))
        if nested is not None:
            if not isinstance(value, list):
                raise SeriesTableError(f"{where}.{name}: expected a list")
            value = tuple(_build(nested, v, f"{where}.{name}[{k}]") for k, v in enumerate(value))
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        values[name] = value
    return cls(**values)


__all__ = ["SeriesEntry", "SeriesTable", "SeriesTableError", "UnusableItem"]
