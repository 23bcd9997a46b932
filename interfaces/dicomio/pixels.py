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

from .dicom_file import UnusableFile, open_dicom
from .scan import NATIVE_SYNTAXES, ScannedHeader, ScanUnsupported, read_file_bytes, scan_file


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
    :class:`UnusableFile`."""
    rows, cols = int(header.Rows), int(header.Columns)
    frames = max(int(header.get("NumberOfFrames") or 1), 1)  # <= 1: one, as indexing reads it
    if not _fast_path(header):  # e.g. an enhanced frame's header: find the pixels by a scan
        header = _scanned_twin(path, header)
    if _fast_path(header):
        bits = int(header.BitsAllocated)
        signed = int(header.get("PixelRepresentation") or 0) == 1
        dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
        count = rows * cols * frames
        if header.pixel_length < count * dtype.itemsize:
            raise UnusableFile(path, "truncated pixel data")
        buf = read_file_bytes(path)
        try:
            arr = np.frombuffer(buf, dtype=dtype, count=count, offset=header.pixel_offset).copy()
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()
        return keep_stored_bits(arr.reshape(frames, rows, cols), header, path)
    import pydicom

    ds, _ = open_dicom(path, stop_before_pixels=False)
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # decoder errors come in many types; name the file and reason
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = pydicom.uid.UID(str(syntax)).name if syntax else "unknown transfer syntax"
        raise UnusableFile(path, f"pixel data cannot be decoded ({name}): {exc}") from None
    samples = int(header.get("SamplesPerPixel") or 1)
    expected = (frames, rows, cols) if samples == 1 else (frames, rows, cols, samples)
    if arr.ndim == len(expected) - 1:
        arr = arr[None]
    if arr.shape != expected:
        raise UnusableFile(path, f"pixel array shape {arr.shape} != {expected}")
    return keep_stored_bits(arr, header, path)
