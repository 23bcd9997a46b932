"""SIGTERM like SIGINT, and no worker process outliving its run.

SLURM, ``timeout`` and container runtimes stop a program with SIGTERM, usually sent to the
main process only.  While :func:`sigterm_as_interrupt` is active, SIGTERM raises
:class:`Terminated` (a :class:`KeyboardInterrupt`, so every clean-up written for Ctrl-C runs)
in the main process; the command line then ends the processes below it
(:func:`end_descendants`: the MultiProc and indexing workers and whatever they started) and
exits with 143 (128 + SIGTERM).

Processes forked meanwhile (the workers) get SIGTERM's default action back, so a SIGTERM
ends them even inside a long computation in C, and on Linux they are killed when the process
that forked them dies (``PR_SET_PDEATHSIG``): a SIGKILL of the main process leaves no worker
running and writing into the work dir.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM received (exit code 143)."""


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not break the clean-up
    raise Terminated(f"signal {signal.Signals(signum).name}")


_forking_pid = 0


def _remember_parent() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _child_defaults() -> None:
    """In a child forked while SIGTERM raises: default SIGTERM, and die with the parent."""
    if signal.getsignal(signal.SIGTERM) is not _raise_terminated:
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != _forking_pid:  # the parent died before prctl took effect
            os._exit(1)


os.register_at_fork(before=_remember_parent, after_in_child=_child_defaults)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """``preexec_fn`` of a program started with :mod:`subprocess` (which runs no fork
    handler): it gets ``signum`` when this process dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parent_of(pid: int) -> int | None:
    """The parent PID of a live process (None for a zombie or a vanished one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold ")"
    return None if fields[0] in ("Z", "X") else int(fields[1])


def descendants(pid: int | None = None) -> list[int]:
    """The live processes below ``pid`` (default: this process), children first (Linux
    ``/proc``; empty elsewhere)."""
    root = os.getpid() if pid is None else pid
    parents = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                parent = _parent_of(int(entry))
                if parent is not None:
                    parents[int(entry)] = parent
    found: list[int] = []
    level = [root]
    while level:
        level = [p for p, parent in parents.items() if parent in level and p not in found]
        found += level
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie is not)."""
    return _parent_of(pid) is not None


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def end_descendants(grace_s: float = 5.0) -> list[int]:
    """SIGTERM every process below this one, SIGKILL those still running after ``grace_s``;
    return the PIDs that were running."""
    pids = descendants()
    if not pids:
        return []
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    _signal_all([p for p in pids if alive(p)] + descendants(), signal.SIGKILL)
    return pids
