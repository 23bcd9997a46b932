"""The header cache of :func:`.index.index_tree`: a rerun reads only the files that changed.

Each file's read (its slice headers, or why it was rejected) and fingerprint are kept under its
absolute path with the size and modification time (ns) it had when read; a file whose size or
time differs is read again.  The cache is JSON written atomically (it only holds numbers and
text) and carries the version of the reading code (a digest of this package's sources) and
the header fields: a cache from other code, a damaged or unreadable one is ignored (the tree
is read in full and the cache rewritten), never an error.

Not cached: reads that failed on an I/O error or unexpectedly (they may pass next time), and
files modified within :data:`RACY_SECONDS` of the save (a change in the same clock tick would
keep size and time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import logging
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from ..atomic import atomic_write_bytes
from .slice_header import SliceHeader

LOG = logging.getLogger("anatprep")

#: the layout of the file; another value is ignored
CACHE_FORMAT = 1
#: files modified this recently when the cache is saved are read again next time
RACY_SECONDS = 2.0

#: a read that failed: (path, reason, the header when it was readable, whether the file
#: makes a failed series of its own when no readable file shares its series)
Rejected = tuple[str, str, SliceHeader | None, bool]
Result = list[SliceHeader] | Rejected


class FileRead(NamedTuple):
    """One file's read: the result, ``"<size>-<mtime_ns>-<digest>"`` (empty for a rejected
    file), the size and time it was read at, and whether the result may be cached."""

    result: Result
    fingerprint: str
    size: int
    mtime_ns: int
    cacheable: bool


_FIELDS = [f.name for f in dataclasses.fields(SliceHeader)]


@functools.cache
def reader_version() -> str:
    """A digest of the header-reading code (this package's sources and pydicom's version): a
    cache written by other code is not trusted."""
    digest = hashlib.sha256()
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        digest.update(importlib.metadata.version("pydicom").encode() + b"\0")
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


Check = Callable[[Any], bool]


def _checker(kind: Any) -> Check:
    """A test of whether a decoded JSON value fits a SliceHeader field's annotation."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [_checker(a) for a in args]
        return lambda v: any(check(v) for check in options)
    if kind is type(None):
        return lambda v: v is None
    if origin is tuple and args[-1:] == (Ellipsis,):
        item = _checker(args[0])
        return lambda v: isinstance(v, list) and all(map(item, v))
    if origin is tuple:
        items = [_checker(a) for a in args]

        def fixed(v: Any) -> bool:
            if not isinstance(v, list) or len(v) != len(items):
                return False
            return all(check(x) for check, x in zip(items, v, strict=True))

        return fixed
    if kind is float:
        return lambda v: type(v) in (float, int)
    if kind is int:
        return lambda v: type(v) is int
    return lambda v: isinstance(v, kind)


@functools.cache
def _checks() -> tuple[Check, ...]:
    hints = typing.get_type_hints(SliceHeader)
    return tuple(_checker(hints[name]) for name in _FIELDS)


def _encode_header(h: SliceHeader) -> list[Any]:
    return [getattr(h, name) for name in _FIELDS]


def _decode_header(values: Any) -> SliceHeader:
    if not isinstance(values, list) or len(values) != len(_FIELDS):
        raise ValueError("not a header")
    for name, value, check in zip(_FIELDS, values, _checks(), strict=True):
        if not check(value):
            raise ValueError(f"{name}={value!r}")
    fields: list[Any] = [tuple(v) if isinstance(v, list) else v for v in values]
    return SliceHeader(*fields)


def _encode(read: FileRead) -> list[Any]:
    result = read.result
    if isinstance(result, list):
        body: dict[str, Any] = {"headers": [_encode_header(h) for h in result]}
    else:
        _path, reason, header, own_series = result
        identity = None if header is None else _encode_header(header)
        body = {"rejected": [reason, identity, own_series]}
    return [read.size, read.mtime_ns, read.fingerprint, body]


def _decode(path: str, item: Any) -> FileRead:
    size, mtime_ns, fingerprint, body = item
    if not (isinstance(size, int) and isinstance(mtime_ns, int) and isinstance(fingerprint, str)):
        raise ValueError("bad key")
    if "headers" in body:
        result: Result = [_decode_header(v) for v in body["headers"]]
    else:
        reason, identity, own_series = body["rejected"]
        if not isinstance(reason, str) or not isinstance(own_series, bool):
            raise ValueError("bad rejection")
        header = None if identity is None else _decode_header(identity)
        result = (path, reason, header, own_series)
    return FileRead(result, fingerprint, size, mtime_ns, True)


class HeaderCache:
    """Cached reads by path (see the module docstring); :meth:`get` checks size and time."""

    def __init__(self, path: Path | None):
        self.path = path
        self._entries: dict[str, Any] = self._load() if path is not None else {}

    def _load(self) -> dict[str, Any]:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except Exception as exc:  # damaged (any way at all): ignored and rebuilt
            LOG.warning("header cache %s ignored (%s): reading every file", self.path, exc)
            return {}
        expected = {"format": CACHE_FORMAT, "reader": reader_version(), "fields": _FIELDS}
        if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected.items()):
            LOG.info("header cache %s is from other code: reading every file", self.path)
            return {}
        files = data.get("files")
        return files if isinstance(files, dict) else {}

    def get(self, path: str, size: int, mtime_ns: int) -> FileRead | None:
        """The cached read of ``path`` if it was made at this size and time, else None."""
        item = self._entries.get(path)
        if item is None:
            return None
        try:
            read = _decode(path, item)
        except Exception as exc:  # a damaged entry (any way at all): the file is read again
            LOG.debug("header cache entry of %s ignored: %s", path, exc)
            return None
        return read if (read.size, read.mtime_ns) == (size, mtime_ns) else None

    def save(self, reads: dict[str, FileRead]) -> None:
        """Replace the cache with ``reads`` (those that may be cached), atomically."""
        if self.path is None:
            return
        newest = time.time_ns() - int(RACY_SECONDS * 1e9)
        files = {
            path: _encode(read)
            for path, read in reads.items()
            if read.cacheable and read.mtime_ns < newest
        }
        data = {"format": CACHE_FORMAT, "reader": reader_version(), "fields": _FIELDS}
        data["files"] = files
        text = json.dumps(data, separators=(",", ":"), allow_nan=True)  # ASCII: \u escapes
        try:
            atomic_write_bytes(self.path, text.encode("ascii"))
        except OSError as exc:  # the index itself is complete: only the next run is slower
            LOG.warning("header cache %s not written: %s", self.path, exc)


__all__ = ["FileRead", "HeaderCache", "Rejected", "Result"]
