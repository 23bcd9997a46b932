"""One DICOM file opened with pydicom, and why a file is unusable.

The lowest reading layer: :mod:`.headers` builds slice headers on it, and the vendor modules
(:mod:`.siemens`, :mod:`.uih`) and the voxel reader (:mod:`.pixels`) open files with it, so
none of them imports the header reader that imports them.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from .limits import ImageTooLarge, declared_bytes
from .scan import (
    DEFLATED_LE,
    FIELDS,
    UNCOMPRESSED_SYNTAXES,
    ScannedHeader,
    check_deflated,
    header_digest,
    read_file_bytes,
)

if TYPE_CHECKING:  # pydicom is imported where a file needs it (its import is slow)
    import pydicom

    from .slice_header import SliceHeader

    #: the header of one file: a pydicom Dataset or a ScannedHeader
    Header = pydicom.Dataset | ScannedHeader


class UnusableFile(Exception):
    """A file that cannot contribute a slice; ``str()`` names the file and the reason."""

    def __init__(
        self,
        path: str | os.PathLike,
        reason: str,
        header: SliceHeader | None = None,
        own_series: bool = True,
    ):
        self.path = str(path)
        self.reason = reason
        #: the file's header keys when they were readable (so the file's series is known);
        #: for a file rejected for its geometry, its identity only (geometry zeros)
        self.header = header
        #: False: the file fails the series it belongs to, but files that all share this
        #: problem (e.g. non-spatial images without a plane) are only listed, not a series
        self.own_series = own_series
        super().__init__(f"{self.path}: {reason}")


class PixelDataProblem(UnusableFile):
    """A header-only read whose pixel data is missing or shorter than the header says;
    ``dataset`` is the header that was read, so the caller can name the file's series."""

    def __init__(self, path: str | os.PathLike, reason: str, dataset: pydicom.Dataset):
        super().__init__(path, reason)
        self.dataset = dataset


class UndeflatedFile(UnusableFile):
    """A file whose data set does not inflate under its deflated transfer syntax; the caller
    may still read its identity from the plain bytes (:mod:`.headers`)."""


#: header fields by keyword (a KeyError or AttributeError naming one names the field)
_KEYWORDS = frozenset(name for name, _kind in FIELDS.values())


def describe(exc: BaseException) -> str:
    """``'<type>: <message>'`` of an exception (module-qualified unless built in), prefixed
    with ``'field <keyword>: '`` when it is a missing header field's KeyError/AttributeError."""
    kind = type(exc)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    name = f"{module}{kind.__qualname__}"
    text = f"{name}: {exc}" if str(exc) else name
    if isinstance(exc, KeyError | AttributeError) and exc.args and exc.args[0] in _KEYWORDS:
        text = f"field {exc.args[0]}: {text}"
    return text


def open_dicom(path: str | os.PathLike, stop_before_pixels: bool) -> tuple[pydicom.Dataset, int]:
    """Read one file (plain or ``.gz``); return the dataset and the file size in bytes.

    Raises :class:`UnusableFile` when the file is not DICOM or cannot be parsed,
    :class:`PixelDataProblem` when the file is cut short or (on a header-only read) its pixel
    data is missing or shorter than the header says, :class:`UndeflatedFile` when its data set
    does not inflate.  A header-only
    read sets ``ds.header_digest`` (see :func:`.scan.header_digest`).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        if path.suffix == ".gz":
            try:
                raw = read_file_bytes(path)  # inflated as a stream, within the limits
            except EOFError as exc:
                raise UnusableFile(path, f"compressed file is truncated ({exc})") from None
            stream: io.BufferedIOBase = io.BytesIO(raw)
            size = len(raw)
        else:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
            size = path.stat().st_size
        try:
            check_deflated(stream)  # pydicom inflates a deflated data set whole
            ds = pydicom.dcmread(stream, stop_before_pixels=stop_before_pixels, defer_size=None)
            cut = _cut_short(ds, stream, size)
            if cut:  # pydicom reads a cut file without a word: what it lost may be the image
                raise PixelDataProblem(path, cut, ds)
            _drop_unreadable(ds)
            if stop_before_pixels:
                end = stream.tell()
                stream.seek(0)
                object.__setattr__(ds, "header_digest", header_digest(stream.read(end)))
                problem = _pixel_length_problem(ds, size - end)
                if problem:
                    raise PixelDataProblem(path, problem, ds)
        finally:
            stream.close()
    except UnusableFile:
        raise
    except ImageTooLarge as exc:
        raise UnusableFile(path, str(exc)) from None
    except InvalidDicomError:
        raise UnusableFile(path, "not a DICOM file (no DICM preamble or valid header)") from None
    except zlib.error as exc:
        reason = f"data set does not inflate under its deflated transfer syntax ({exc})"
        raise UndeflatedFile(path, reason) from None
    except struct.error as exc:  # pydicom's reading of a file meta group cut short
        reason = f"file meta information is cut short or malformed ({exc})"
        raise UnusableFile(path, reason) from None
    except (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UnusableFile(path, f"unreadable DICOM ({type(exc).__name__}: {exc})") from None
    return ds, size


#: what pydicom raises when it converts a value it cannot read
CONVERSION_ERRORS = (ValueError, OverflowError, TypeError)


def _drop_unreadable(ds: pydicom.Dataset) -> None:
    """pydicom converts a value when it is first read, and some text that is not a number
    (IS 'inf', '1e400') raises there.  Like the scanner, leave such top-level elements out and
    name them in ``ds.malformed`` (the checks of :func:`.headers.slice_header_from_dataset`
    see it)."""
    from pydicom.datadict import keyword_for_tag

    bad = set()
    for tag in list(ds.keys()):
        try:
            ds[tag]
        except CONVERSION_ERRORS:
            bad.add(keyword_for_tag(tag) or str(tag))
            del ds[tag]
    if bad:
        object.__setattr__(ds, "malformed", frozenset(bad))


def _pixel_length_problem(ds: pydicom.Dataset, remaining: int) -> str | None:
    """After a header-only read the stream sits at the pixel data tag: check what follows."""
    if "Rows" not in ds or "Columns" not in ds:
        return None  # not an image; reported by the caller
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if syntax and syntax not in UNCOMPRESSED_SYNTAXES:
        return None  # encapsulated: lengths are per fragment
    if remaining <= 0:
        return "no pixel data (file ends after the header)"
    available = remaining - 12 if syntax != "1.2.840.10008.1.2" else remaining - 8
    return truncation(available, declared_bytes(ds))


def truncation(available: int, expected: int) -> str | None:
    """Why ``available`` pixel bytes cannot hold the ``expected`` ones, or None."""
    if available < expected:
        return f"truncated pixel data ({max(available, 0)} of {expected} bytes present)"
    return None


_UNDEFINED_LENGTH = 0xFFFFFFFF


def _cut_short(ds: pydicom.Dataset, stream, size: int) -> str | None:
    """Why the file ends before its data set does (pydicom stops quietly where the bytes
    end), or None: the file meta group shorter than its group length, the last element's
    value shorter than its length, or bytes after it (not NUL padding) too few for an
    element header.  ``stream``: the file pydicom read, at where it stopped."""
    read_to = stream.tell()
    meta_length = ds.file_meta.get("FileMetaInformationGroupLength", 0) if ds.file_meta else 0
    if not isinstance(meta_length, int) or size < 144 + meta_length:  # preamble, DICM, 0002
        return f"file is truncated: it ends at byte {size}, inside its file meta information"
    if read_to < size:  # stopped at the pixel data: their length is checked by the caller
        return None
    if str(ds.file_meta.get("TransferSyntaxUID", "")) == DEFLATED_LE:
        return None  # read from the inflated copy (a cut deflate stream does not inflate)
    tags = list(ds.keys())
    if not tags:
        return None
    last = ds.get_item(tags[-1])
    length, tell = getattr(last, "length", None), getattr(last, "value_tell", None)
    if not isinstance(length, int) or tell is None or length == _UNDEFINED_LENGTH:
        return None
    tag = f"({last.tag.group:04X},{last.tag.element:04X})"
    held = len(last.value) if isinstance(last.value, bytes) else length
    if held < length:
        before = "" if last.tag == 0x7FE00010 else ", before the pixel data"
        return (
            f"file is truncated: it ends inside element {tag} "
            f"({held} of its {length} bytes present){before}"
        )
    if tell + length < size and last.tag != 0x7FE00010:  # (bytes after the pixels: unread)
        stream.seek(tell + length)
        rest = stream.read()
        stream.seek(read_to)
        if rest.strip(b"\0"):
            return f"file is truncated: it ends inside the element header after {tag}"
    return None
