"""Atomic, deterministic file output: a file appears under its final name only when complete.

Data is written to a hidden temporary file in the destination folder and renamed into place
(``os.replace`` is atomic on POSIX within one file system).  Gzip streams carry no timestamp
and no file name, so the same image always gives the same bytes.

Deflate is zlib's (the standard library's, as nibabel writes), levels 0 (stored) to 9
(smallest), 1 by default (nibabel's default too).  Rule: the bytes written are a function of
the input, the level and the zlib version alone, in every process and every run; a faster
deflater is taken only when it keeps that rule (``benchmarks/convert.py`` measures what
writing costs).  NIfTI images are streamed to the compressor in chunks straight from the
voxel array, so writing needs no second copy of the volume in memory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from .part_journal import PART_SUFFIX, create_part

if TYPE_CHECKING:  # nibabel is slow to import; the converter writes without it
    import nibabel as nb

#: zlib deflate levels (0 = stored)
MIN_LEVEL, MAX_LEVEL, DEFAULT_LEVEL = 0, 9, 1
_GZIP_WBITS = 31  # gzip wrapper; zlib-style streams write mtime 0 and no file name
_CHUNK = 1 << 22


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` (journaled under the lock of the folder it is
    in: :mod:`.part_journal`); on success it is synced and renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_part(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


def _check_level(level: int) -> int:
    if not MIN_LEVEL <= int(level) <= MAX_LEVEL:
        raise ValueError(f"compression level {level} outside {MIN_LEVEL}..{MAX_LEVEL} (zlib)")
    return int(level)


def _fortran_bytes(arr: np.ndarray) -> memoryview:
    """Voxels in Fortran order as bytes: a view when the array allows it, else one copy."""
    if not arr.flags.f_contiguous:
        arr = np.asfortranarray(arr)
    return arr.T.view(np.uint8).data.cast("B")  # arr.T of a Fortran array: C order


def write_nifti_parts(
    path: str | os.PathLike, header: bytes, data: np.ndarray, level: int = DEFAULT_LEVEL
) -> Path:
    """Write a single-file NIfTI (``header`` incl. extension block, then ``data``) atomically.

    ``.gz`` paths are deflated in chunks straight from the array.
    """
    path = Path(path)
    body = _fortran_bytes(data)
    with atomic_open(path) as fh:
        if not path.name.endswith(".gz"):
            fh.write(header)
            fh.write(body)
            return path
        comp = zlib.compressobj(_check_level(level), zlib.DEFLATED, _GZIP_WBITS)
        fh.write(comp.compress(header))
        for start in range(0, len(body), _CHUNK):
            fh.write(comp.compress(body[start : start + _CHUNK]))
        fh.write(comp.flush())
    return path


def write_nifti(img: nb.Nifti1Image, path: str | os.PathLike, level: int = DEFAULT_LEVEL) -> Path:
    """Serialise a nibabel NIfTI-1 image (``.nii`` or ``.nii.gz``) atomically, reproducibly.

    The scaling stored in the header (``scl_slope`` / ``scl_inter``) is written as set; the
    voxel array is written as it is, in the header's data type.
    """
    img.update_header()  # affine, shape and dtype into the header, as nibabel's save does
    hdr = img.header.copy()
    if hdr.get_slope_inter()[0] is None:  # unscaled: nibabel's save writes 1 and 0 too
        hdr.set_slope_inter(1.0, 0.0)
    hdr["vox_offset"] = 352
    hdr["magic"] = b"n+1"
    arr = np.asanyarray(img.dataobj)
    dtype = hdr.get_data_dtype()
    if arr.dtype != dtype:
        if arr.dtype.kind == "f" and dtype.kind in "iu":
            raise ValueError(f"float voxels for a {dtype} header: scale them before writing")
        arr = arr.astype(dtype)
    return write_nifti_parts(path, hdr.binaryblock + b"\x00" * 4, arr, level)


_DROP = object()


def _finite_only(obj: Any) -> Any:
    """``obj`` without its non-finite numbers: a mapping entry whose value is or holds NaN or
    an infinity is left out (JSON has no such numbers; a sidecar never guesses one)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return _DROP
    if isinstance(obj, dict):
        out = {key: _finite_only(value) for key, value in obj.items()}
        return {key: value for key, value in out.items() if value is not _DROP}
    if isinstance(obj, list | tuple):
        items = [_finite_only(value) for value in obj]
        return _DROP if any(value is _DROP for value in items) else items
    return obj


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON (two-space indent, keys in insertion order, trailing newline) atomically.

    Entries holding NaN or infinite numbers are left out (see :func:`_finite_only`)."""
    cleaned = _finite_only(obj)
    if cleaned is _DROP:
        raise ValueError(f"{path}: nothing finite to write")
    text = json.dumps(cleaned, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # e.g. a file name that is not UTF-8: kept as \u escapes
        data = (json.dumps(cleaned, indent=2, allow_nan=False) + "\n").encode("ascii")
    return atomic_write_bytes(path, data)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a file's bytes atomically (the source is only read), streamed: a large image
    (e.g. a warp field) is never held in memory whole."""
    with open(src, "rb") as source, atomic_open(dst) as fh:
        shutil.copyfileobj(source, fh, _CHUNK)
    return Path(dst)


__all__ = [
    "PART_SUFFIX",
    "atomic_write_bytes",
    "copy_file",
    "write_json",
    "write_nifti",
    "write_nifti_parts",
]
