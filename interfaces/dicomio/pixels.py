"""Pixel data of one DICOM file as a numpy array.

Native (uncompressed little-endian) pixel data are read straight from the file at the offset
the header scan found, with no decoding step.  Everything else (JPEG lossless, JPEG-LS,
JPEG 2000, RLE, deflated, big endian) goes through pydicom's pixel handlers, which use the
installed decoders (``pylibjpeg`` and its plugins).  Either way the result is the array of
stored values, ``(frames, rows, columns)``.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from .dicom_file import UnusableFile, open_dicom, truncation
from .limits import ImageTooLarge, check_declared
from .scan import (
    NATIVE_SYNTAXES,
    ScannedHeader,
    ScanUnsupported,
    is_encapsulated,
    read_file_bytes,
    scan_file,
)


def _fast_path(header) -> bool:
    if not isinstance(header, ScannedHeader) or header.transfer_syntax not in NATIVE_SYNTAXES:
        return False
    if header.pixel_offset is None or header.pixel_length is None:
        return False
    if int(header.get("SamplesPerPixel") or 1) != 1:
        return False
    return int(header.get("BitsAllocated") or 0) in (8, 16, 32)


def keep_stored_bits(arr: np.ndarray, header, path: str | os.PathLike) -> np.ndarray:
    """``arr`` with only the BitsStored low bits of each integer sample: masked when unsigned,
    sign-extended when signed (in place when ``arr`` is writeable); raises
    :class:`UnusableFile` when HighBit puts the sample elsewhere."""
    width = arr.dtype.itemsize * 8
    stored = header.get("BitsStored")
    if arr.dtype.kind not in "iu" or stored is None or not 0 < int(stored) < width:
        return arr
    stored = int(stored)
    high = header.get("HighBit")
    if high is not None and int(high) != stored - 1:
        raise UnusableFile(
            path,
            f"HighBit {int(high)} with BitsStored {stored}: which bits hold the sample is "
            "ambiguous (expected HighBit = BitsStored - 1)",
        )
    if not arr.flags.writeable:
        arr = arr.copy()
    if int(header.get("PixelRepresentation") or 0) == 1:
        view = arr.view(arr.dtype.str.replace("u", "i"))
        shift = width - stored
        np.left_shift(view, shift, out=view)
        np.right_shift(view, shift, out=view)  # arithmetic shift: sign extension
        return view
    view = arr.view(arr.dtype.str.replace("i", "u"))
    np.bitwise_and(view, (1 << stored) - 1, out=view)
    return view


#: what a file's own scan must agree on to stand in for the header it was given
_LAYOUT = ("Rows", "Columns", "NumberOfFrames", "BitsAllocated", "BitsStored",
           "PixelRepresentation", "SamplesPerPixel", "HighBit")  # fmt: skip


def _scanned_twin(path: str | os.PathLike, header):
    """The file's scanned header when it locates native pixel data of the same layout as
    ``header`` (a multi-frame file parsed by pydicom for its frame groups), else ``header``."""
    try:
        scanned = scan_file(path)
    except (ScanUnsupported, OSError):
        return header
    same = all(scanned.get(k) == header.get(k) for k in _LAYOUT if k in header or k in scanned)
    return scanned if same and _fast_path(scanned) else header


def read_frames(path: str | os.PathLike, header) -> np.ndarray:
    """Stored values of ``path`` as ``(frames, rows, columns[, samples])``; raises
    :class:`UnusableFile`, also before any allocation when the declared size is more than
    the file holds or :mod:`.limits` allows."""
    rows, cols = int(header.Rows), int(header.Columns)
    frames = max(int(header.get("NumberOfFrames") or 1), 1)  # <= 1: one, as indexing reads it
    if not _fast_path(header):  # e.g. an enhanced frame's header: find the pixels by a scan
        header = _scanned_twin(path, header)
    try:
        if _fast_path(header):
            expected = check_declared(header, header.transfer_syntax)
            _check_length(path, header, header.pixel_length, expected)
            return _native_frames(path, header, (frames, rows, cols))
        return _decoded_frames(path, header, (frames, rows, cols))
    except ImageTooLarge as exc:
        raise UnusableFile(path, str(exc)) from None


_SIZE_RULE = "Rows x Columns x NumberOfFrames x SamplesPerPixel x BitsAllocated"


def _check_length(path, header, length: int, expected: int) -> None:
    """Uncompressed pixel data hold exactly the declared bytes (one more to pad to even):
    shorter is a cut file, longer another layout than the header says (e.g. 2 bytes per
    pixel under BitsAllocated 8), and neither is read as if it were right."""
    if length in (expected, expected + 1):
        return
    short = truncation(length, expected)
    if short:
        raise UnusableFile(path, short)
    bits = int(header.get("BitsAllocated") or 0)
    pixels = expected * 8 // bits if bits else 0
    whole = pixels and not length % pixels
    width = f"; they hold {length // pixels} bytes per pixel" if whole else ""
    raise UnusableFile(
        path,
        f"pixel data longer than {_SIZE_RULE} says ({length}, not {expected} bytes{width}, "
        f"BitsAllocated {bits}): the layout is not the one the header declares",
    )


def _native_frames(path, header, shape: tuple[int, int, int]) -> np.ndarray:
    bits = int(header.BitsAllocated)
    signed = int(header.get("PixelRepresentation") or 0) == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    count = shape[0] * shape[1] * shape[2]
    buf = read_file_bytes(path)
    try:
        short = truncation(len(buf) - header.pixel_offset, count * dtype.itemsize)
        if short:  # the file ends inside its pixel data element
            raise UnusableFile(path, short)
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=header.pixel_offset).copy()
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    return keep_stored_bits(arr.reshape(shape), header, path)


def _decoded_frames(path, header, shape: tuple[int, int, int]) -> np.ndarray:
    import pydicom

    ds, _ = open_dicom(path, stop_before_pixels=False)
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    payload = ds.get("PixelData")
    if payload is None:
        raise UnusableFile(path, "no pixel data")
    if is_encapsulated(syntax):
        check_declared(ds, syntax, compressed=len(payload))
    else:
        _check_length(path, ds, len(payload), check_declared(ds, syntax))
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # decoder errors come in many types; name the file and reason
        name = pydicom.uid.UID(syntax).name if syntax else "unknown transfer syntax"
        raise UnusableFile(path, f"pixel data cannot be decoded ({name}): {exc}") from None
    samples = int(header.get("SamplesPerPixel") or 1)
    expected = shape if samples == 1 else (*shape, samples)
    if arr.ndim == len(expected) - 1:
        arr = arr[None]
    if arr.shape != expected:
        raise UnusableFile(path, f"pixel array shape {arr.shape} != {expected}")
    return keep_stored_bits(arr, header, path)
