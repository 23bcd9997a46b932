"""Reading a file named on the command line or in a config: a regular file, of bounded size.

A FIFO would block the read forever and a device (``/dev/zero``) never ends: only a regular
file is read, opened without blocking and checked on the open descriptor (no race between
a check and the open), and no more than a limit is read, so a huge file costs no memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISDIR, "folder"),
)


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is (``FIFO``, ``character device``, ...)."""
    return next((name for test, name in _KINDS if test(mode)), "special file")


class FileRefused(ValueError):
    """Not a regular file, or larger than the limit; the message says which, in words, to
    follow "<file> is" (``a FIFO, not a regular file``)."""


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    :class:`FileRefused` for anything else (a FIFO, a device, a folder) and for a larger
    file; OSError (missing, permission denied) passes through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"a {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise FileRefused(f"larger than {_size(limit)} ({info.st_size} bytes)")
        with os.fdopen(os.dup(fd), "rb") as stream:
            data = stream.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # grew since the check
        raise FileRefused(f"larger than {_size(limit)}")
    return data


__all__ = ["FileRefused", "file_kind", "read_regular_file"]
