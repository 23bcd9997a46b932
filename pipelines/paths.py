"""The folders of a run, checked before any work: INPUT is only read, OUTPUT and the work dir
are separate folders we can write.

Refused (exit code 2): OUTPUT or the work dir equal to INPUT or inside it (INPUT must never
be written); OUTPUT and the work dir equal or one inside the other; an OUTPUT or work dir we
cannot create or write.  INPUT inside OUTPUT is allowed (``OUTPUT/sourcedata/dicom``): the
run never writes below INPUT.  A relative work dir is taken from the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path


class UsageError(Exception):
    """Bad arguments or paths, found before any work (exit code 2)."""


def same_or_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (symbolic links resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_input(input_dir: Path) -> None:
    """INPUT must be an existing folder."""
    if not input_dir.is_dir():
        raise UsageError(f"INPUT {input_dir} is not a directory")


def check_separate(input_dir: Path, output_dir: Path, work_dir: Path | None = None) -> None:
    """Refuse OUTPUT or the work dir in INPUT, and OUTPUT and the work dir overlapping."""
    if same_or_inside(output_dir, input_dir):
        raise UsageError(
            f"OUTPUT {output_dir} must not be inside INPUT {input_dir} (INPUT is only read)"
        )
    if work_dir is None:
        return
    if same_or_inside(work_dir, input_dir):
        raise UsageError(
            f"work dir {work_dir} must not be inside INPUT {input_dir} (INPUT is only read)"
        )
    if same_or_inside(work_dir, output_dir) or same_or_inside(output_dir, work_dir):
        raise UsageError(
            f"work dir {work_dir} and OUTPUT {output_dir} must be separate folders "
            "(neither inside the other)"
        )


def check_writable(label: str, folder: Path) -> None:
    """Create ``folder`` (and its parents) and write a probe file in it, or raise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".anatprep-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{label} {folder} is not writable: {exc.strerror or exc}") from None


def work_dir_for(configured: str | None, output_dir: Path) -> Path:
    """The work dir: as configured (a relative one from the current directory), absolute;
    by default ``OUTPUT.work`` beside OUTPUT."""
    if configured:
        return Path(configured).absolute()
    out = output_dir.resolve()
    return out.parent / f"{out.name}.work"
