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

from .headers import UnusableFile, open_dicom
from .scan import NATIVE_SYNTAXES, ScannedHeader, read_file_bytes


def _fast_path(header) -> bool:
    if not isinstance(header, ScannedHeader) or header.transfer_syntax not in NATIVE_SYNTAXES:
        return False
    if header.pixel_offset is None or header.pixel_length is None:
        return False
    if int(header.get("SamplesPerPixel") or 1) != 1:
        return False
    bits = int(header.get("BitsAllocated") or 0)
    stored = int(header.get("BitsStored") or bits)
    signed = int(header.get("PixelRepresentation") or 0) == 1
    # signed samples narrower than their container need sign extension: pydicom does that
    return bits in (8, 16, 32) and not (signed and stored < bits)


def read_frames(path: str | os.PathLike, header) -> np.ndarray:
    """Stored values of ``path`` as ``(frames, rows, columns[, samples])``; raises
    :class:`UnusableFile`."""
    rows, cols = int(header.Rows), int(header.Columns)
    frames = int(header.get("NumberOfFrames") or 1)
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
        return arr.reshape(frames, rows, cols)
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
    return arr
