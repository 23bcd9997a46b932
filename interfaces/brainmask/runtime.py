"""Importing ANTs the deterministic way.

ITK reads its thread count once per process, at its first call, so the count goes into the
environment before ``ants`` is first imported; later calls with another count are refused
rather than silently ignored.  Registration and Atropos get the fixed seed on their command
lines (``--random-seed`` / ``-r``), so one thread per subject gives bit-identical results.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_THREADS_VAR = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


class ThreadCountError(RuntimeError):
    """ANTs was already initialised in this process with another thread count."""


def import_ants(num_threads: int):
    wanted = str(int(num_threads))
    if "ants" in sys.modules and os.environ.get(_THREADS_VAR) not in (None, wanted):
        raise ThreadCountError(
            f"ANTs already runs with {os.environ[_THREADS_VAR]} thread(s) in this process; "
            f"{wanted} requested (ITK fixes its thread count at its first call)"
        )
    os.environ[_THREADS_VAR] = wanted
    os.environ.setdefault("OMP_NUM_THREADS", wanted)
    import ants

    return ants


@contextmanager
def native_output_to(path: Path) -> Iterator[None]:
    """Send what ANTs' C++ code prints to the process's stdout and stderr (antsAI's
    "bad det ...", antsRegistration's "file NULL does not exist" for an absent fixed mask)
    to ``path`` instead of the user's terminal and logs."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                ctypes.CDLL(None).fflush(None)  # C stdio buffers go to the log, not after it
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])
