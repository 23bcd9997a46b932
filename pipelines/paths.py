"""The folders of a run, checked before any work: INPUT is only read, OUTPUT and the work dir
are separate folders we can write.

Refused (exit code 2): OUTPUT or the work dir equal to INPUT or inside it (INPUT must never
be written); OUTPUT and the work dir equal or one inside the other; an OUTPUT or work dir we
cannot create or write; OUTPUT or the work dir being ``/`` or a folder of the operating
system, or inside one (:func:`check_not_system`).  INPUT inside OUTPUT is allowed
(``OUTPUT/sourcedata/dicom``): the run never writes below INPUT.  A relative work dir is
taken from the current directory.  A refused run leaves no folder behind
(:func:`folders_undone_on_error`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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


#: the operating system's folders (the Filesystem Hierarchy Standard's, and the kernel's
#: pseudo file systems): never an OUTPUT or work dir, nor anything inside them ...
SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
                  "/proc", "/run", "/sbin", "/sys", "/usr", "/var")  # fmt: skip
#: ... but below these, where sites keep data (/var/tmp, /run/user/<uid>, /usr/local/...)
DATA_BELOW = ("/run", "/var", "/usr/local")


def _inside(path: Path, folder: str) -> bool:
    return Path(folder) in path.parents


def check_not_system(label: str, folder: Path) -> None:
    """Refuse ``folder`` when it is one of :data:`SYSTEM_FOLDERS` or lies inside one other
    than ``/`` (except below :data:`DATA_BELOW`), as given or with links resolved."""
    for path in {Path(os.path.normpath(folder.absolute())), folder.resolve()}:
        for system in SYSTEM_FOLDERS:
            inside = system != "/" and _inside(path, system)
            if path == Path(system) or (inside and not any(_inside(path, d) for d in DATA_BELOW)):
                where = "is" if path == Path(system) else "lies inside"
                raise UsageError(
                    f"{label} {folder} {where} the system folder {system}: choose a folder "
                    "for data (not /, /bin, /boot, /dev, /etc, /lib*, /proc, /run, /sbin, "
                    "/sys, /usr or /var, nor inside them but below /run, /var or /usr/local)"
                )


@contextlib.contextmanager
def folders_undone_on_error() -> Iterator[list[Path]]:
    """A list for the folders a run creates (:func:`check_writable`); when the block raises
    (the run is refused), those still empty are removed again, deepest first."""
    created: list[Path] = []
    try:
        yield created
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _make_folder(folder: Path, created: list[Path]) -> None:
    """``mkdir -p``, adding each folder it creates to ``created`` (outermost first)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        created.append(path)


def check_writable(label: str, folder: Path, created: list[Path] | None = None) -> None:
    """Create ``folder`` (and its parents; each one created is added to ``created``) and
    write a probe file in it, or raise."""
    try:
        _make_folder(folder, [] if created is None else created)
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
