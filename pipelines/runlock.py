"""One run at a time per OUTPUT and per work dir.

A run holds an OS lock (``fcntl.flock``, exclusive) on ``.anatprep.lock`` inside OUTPUT and
inside its work dir for its whole duration; the file holds the holder's PID, host and start
time, for the message of a second run, which is refused (exit code 2): ``OUTPUT <path> is in
use by PID N on <host> since <time>``.  The OS drops the lock when the holding process ends,
however it ends (SIGKILL included), so a lock file left behind by a killed run is simply
taken over by the next run, which logs that it did.  A run that ends removes its lock file;
one left behind is hidden, like the ``.part`` files, so the BIDS validator skips it.

The lock files are opened close-on-exec and closed in forked children (the MultiProc
workers): only the run's main process holds the lock, so workers orphaned by a SIGKILL of
the main process never keep a dead run's lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .paths import UsageError

LOG = logging.getLogger("anatprep")

LOCK_NAME = ".anatprep.lock"

#: the lock file descriptors this process holds (closed in forked children)
_HELD: set[int] = set()


class LockBusy(Exception):
    """Another run holds the folder (exit code 2)."""


def _close_held_in_child() -> None:
    """After a fork: the child must not keep the parent's locks alive (closing a duplicate
    leaves the parent's lock in place; only LOCK_UN or the last close releases it)."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def _holder(fd: int) -> dict:
    """What a lock file says about its holder ({} when empty or unreadable)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "another anatprep run"
    host = f" on {holder['host']}" if holder.get("host") != socket.gethostname() else ""
    return f"PID {holder['pid']}{host} since {holder.get('since', '?')}"


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (its holder may have removed it
    between our open and our lock)."""
    try:
        st, now = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


#: ``flock`` errors of a file system without locks (some network mounts)
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _open_locked(path: Path, label: str, folder: Path) -> int:
    """Open and lock ``path``; raise :class:`LockBusy` when another process holds it.  On a
    file system without locks, warn and go on unlocked."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _NO_LOCKS:
                LOG.warning(
                    "%s %s: no file locks here (%s): another run using it at the same time "
                    "would not be noticed", label, folder, exc.strerror,
                )  # fmt: skip
                return fd
            holder = _holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise LockBusy(f"{label} {folder} is in use by {_describe(holder)}") from None
        if _same_file(fd, path):
            return fd
        os.close(fd)


def _write_holder(fd: int) -> None:
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)


@contextlib.contextmanager
def hold_lock(folder: Path, label: str) -> Iterator[Path]:
    """Hold the lock of ``folder`` (an existing folder; ``label`` names it in messages:
    ``OUTPUT``, ``work dir``) while the block runs; yield the lock file's path.

    Raises :class:`LockBusy` when another process holds it.  A lock file whose holder is
    gone (killed, crashed) is taken over, with a log line."""
    path = folder / LOCK_NAME
    fd = _open_locked(path, label, folder)
    _HELD.add(fd)
    try:
        previous = _holder(fd)
        if previous.get("pid"):
            LOG.warning(
                "%s %s: taking over the stale lock of %s (that run is no longer running)",
                label, folder, _describe(previous),
            )  # fmt: skip
        try:
            _write_holder(fd)
        except OSError as exc:  # e.g. a full disk: nothing can be written there
            raise UsageError(f"{label} {folder} cannot be written: {exc.strerror or exc}") from None
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still locked: a waiting run then locks a new file
        _HELD.discard(fd)
        os.close(fd)
