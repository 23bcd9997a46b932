"""Atomic, deterministic file output: a file appears under its final name only when complete.

Data is written to a hidden temporary file in the destination folder and renamed into place
(``os.replace`` is atomic on POSIX within one file system).  Gzip streams carry no timestamp
and no file name, so the same image always gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nb


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """Gzip with a zeroed timestamp and no embedded file name (reproducible output)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def write_nifti(img: nb.Nifti1Image, path: str | os.PathLike, level: int = 6) -> Path:
    """Serialise a NIfTI-1 image (``.nii`` or ``.nii.gz``) atomically and reproducibly."""
    path = Path(path)
    data = img.to_bytes()
    if path.name.endswith(".gz"):
        data = gzip_bytes(data, level)
    return atomic_write_bytes(path, data)


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON (two-space indent, keys in insertion order, trailing newline) atomically."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a file's bytes atomically (the source is only read)."""
    return atomic_write_bytes(dst, Path(src).read_bytes())


__all__ = ["atomic_write_bytes", "copy_file", "gzip_bytes", "write_json", "write_nifti"]
