"""One run at a time per OUTPUT and per work dir.

A run holds an OS lock (``fcntl.flock``, exclusive) on ``.anatprep.lock`` inside OUTPUT and
inside its work dir for its whole duration; the file holds the holder's PID, host and start
time, for the message of a second run, which is refused (exit code 2): ``OUTPUT <path> is in
use by PID N on <host> since <time>``.  The OS drops the lock when the holding process ends,
however it ends (SIGKILL included), so a lock file left behind by a killed run is simply
taken over by the next run, which logs that it did.  A run that ends removes its lock file;
one left behind is hidden, like the ``.part`` files, so the BIDS validator skips it.

Taking a lock removes the temporary files journaled under it by a run that held it before
and died (``interfaces/part_journal.py``), and so does releasing it (a worker killed within
the run); each removal is listed in the log.  A run's OUTPUT may not hold, nor lie inside,
a folder another live run holds (:func:`check_not_nested`): each run's files stay its own.

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

from anatprep.interfaces.part_journal import LOCK_NAME, remove_journaled

from .paths import UsageError

LOG = logging.getLogger("anatprep")

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
    host = holder.get("host")
    host = f" on {host}" if host and host != socket.gethostname() else ""
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


#: how long a busy lock is tried again before the run is refused: another run's
#: :func:`held` probe holds a lock for a moment and must not refuse a starting run
_BUSY_RETRIES, _BUSY_WAIT = 5, 0.02


def _flock_exclusive(fd: int) -> None:
    for _ in range(_BUSY_RETRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            time.sleep(_BUSY_WAIT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _open_locked(path: Path, label: str, folder: Path) -> int:
    """Open and lock ``path``; raise :class:`LockBusy` when another process holds it.  On a
    file system without locks, warn and go on unlocked."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _flock_exclusive(fd)
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
def hold_lock(folder: Path, label: str, keep: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Hold the lock of ``folder`` (an existing folder; ``label`` names it in messages:
    ``OUTPUT``, ``work dir``) while the block runs; yield the lock file's path.

    Raises :class:`LockBusy` when another process holds it.  A lock file whose holder is
    gone (killed, crashed) is taken over, with a log line.  The temporary files journaled
    under the lock are removed on taking and on releasing it, never below ``keep`` (INPUT,
    which is only read, may lie inside OUTPUT)."""
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
        _remove_parts(folder, label, keep, "an interrupted run left")
        yield path
    finally:
        with contextlib.suppress(OSError):
            _remove_parts(folder, label, keep, "this run's ended writes left")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still locked: a waiting run then locks a new file
        _HELD.discard(fd)
        os.close(fd)


def _remove_parts(folder: Path, label: str, keep: tuple[Path, ...], whose: str) -> None:
    """Remove the temporary files journaled under ``folder``'s lock (none below ``keep``);
    list them in the log."""
    removed = remove_journaled(folder, keep)
    if removed:
        names = ", ".join(str(p.relative_to(folder.resolve())) for p in removed)
        LOG.warning(
            "%s %s: removed %d temporary file(s) %s: %s", label, folder, len(removed), whose, names
        )


def held(lock_file: Path) -> dict | None:
    """What ``lock_file`` says about its holder when a live process holds it, else None.

    Probes with a shared lock taken and dropped at once (a starting run retries a busy lock
    for a moment, so the probe never refuses it)."""
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EACCES) else None
        os.close(fd)
        return holder
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return None


def _locks_below(folder: Path, skip: set[Path]) -> Iterator[Path]:
    """Lock files below ``folder`` (not its own), neither in ``skip`` nor through symbolic
    links."""
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or Path(entry.path).resolve() in skip:
                continue
            sub = Path(entry.path)
            if (sub / LOCK_NAME).is_file():
                yield sub / LOCK_NAME
            stack.append(sub)


def check_not_nested(folder: Path, label: str, skip: tuple[Path, ...] = ()) -> None:
    """Refuse (:class:`~.paths.UsageError`) a ``folder`` inside a folder another live run
    holds, or holding one (``skip``: folders not searched, e.g. INPUT inside OUTPUT).
    Call it holding ``folder``'s own lock: of two runs starting at once, the later check
    sees the other."""
    folder = folder.resolve()
    for parent in folder.parents:
        holder = held(parent / LOCK_NAME)
        if holder is not None:
            raise UsageError(
                f"{label} {folder} lies inside {parent}, which another run holds "
                f"({_describe(holder)}): a run's folder may not lie inside another run's"
            )
    for lock_file in _locks_below(folder, {s.resolve() for s in skip}):
        holder = held(lock_file)
        if holder is not None:
            raise UsageError(
                f"{label} {folder} holds {lock_file.parent}, which another run holds "
                f"({_describe(holder)}): a run's folder may not hold another run's"
            )
