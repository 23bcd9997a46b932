"""Importing ANTs the deterministic way.

ITK reads its thread count once per process, at its first call, so the count goes into the
environment before ``ants`` is first imported; later calls with another count are refused
rather than silently ignored.  Registration and Atropos get the fixed seed on their command
lines (``--random-seed`` / ``-r``), so one thread per subject gives bit-identical results.
"""

from __future__ import annotations

import os
import sys

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
