"""One DICOM file opened with pydicom, and why a file is unusable.

The lowest reading layer: :mod:`.headers` builds slice headers on it, and the vendor modules
(:mod:`.siemens`, :mod:`.uih`) and the voxel reader (:mod:`.pixels`) open files with it, so
none of them imports the header reader that imports them.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from .scan import FIELDS, UNCOMPRESSED_SYNTAXES, ScannedHeader, header_digest

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

    Raises :class:`UnusableFile` when the file is not DICOM or cannot be parsed, or (on a
    header-only read) :class:`PixelDataProblem` when its pixel data is missing or shorter
    than the header says.  A header-only
    read sets ``ds.header_digest`` (see :func:`.scan.header_digest`).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
            stream: io.BufferedIOBase = io.BytesIO(raw)
            size = len(raw)
        else:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
            size = path.stat().st_size
        try:
            ds = pydicom.dcmread(stream, stop_before_pixels=stop_before_pixels, defer_size=None)
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
    except InvalidDicomError:
        raise UnusableFile(path, "not a DICOM file (no DICM preamble or valid header)") from None
    except zlib.error as exc:
        reason = f"data set does not inflate under its deflated transfer syntax ({describe(exc)})"
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


def expected_pixel_bytes(ds) -> int:
    """The pixel data size the header of ``ds`` (a dataset or scanned header) declares."""
    return (
        int(ds.Rows)
        * int(ds.Columns)
        * max(int(ds.get("NumberOfFrames") or 1), 1)
        * int(ds.get("SamplesPerPixel") or 1)
        * int(ds.get("BitsAllocated") or 16)
        // 8
    )


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
    return truncation(available, expected_pixel_bytes(ds))


def truncation(available: int, expected: int) -> str | None:
    """Why ``available`` pixel bytes cannot hold the ``expected`` ones, or None."""
    if available < expected:
        return f"truncated pixel data ({max(available, 0)} of {expected} bytes present)"
    return None
