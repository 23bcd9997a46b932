"""The journal of temporary files: the ``.part`` files written under a run's lock.

A run holds the lock file ``.anatprep.lock`` at the top of each folder it writes (OUTPUT,
its work dir; see ``pipelines/runlock.py``).  Every atomic write (:func:`create_part`)
first appends the path of its temporary file to the journal ``.anatprep.parts`` beside the
nearest lock file above it, and only then creates the file: a write killed at any moment
leaves its file on record.  The run that takes that lock next (or the run itself when it
ends) removes exactly the recorded files that are still there, and lists them
(:func:`remove_journaled`).  Nothing else is removed: not a file another program named like
ours, not the files of a run whose OUTPUT is nested in ours (its writes are journaled beside
its own lock), and no folder is walked.  Writes outside every locked folder keep no journal.

The journal belongs to the lock, not to a work dir, so a killed run's files are found by
whichever run takes its lock next, whatever work dir that run uses (``convert`` has none).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

#: a run's lock file, at the top of each folder it holds
LOCK_NAME = ".anatprep.lock"
#: the journal of the temporary files written below that folder, beside the lock
JOURNAL_NAME = ".anatprep.parts"

#: temporary files: ``.<final name>.<8 random characters>.part``
PART_SUFFIX = ".part"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"
_PART_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(PART_SUFFIX))


def lock_folder(folder: Path) -> Path | None:
    """The nearest folder at or above ``folder`` holding a lock file (None: none does)."""
    for candidate in (folder, *folder.parents):
        if (candidate / LOCK_NAME).is_file():
            return candidate
    return None


def create_part(path: Path) -> tuple[int, Path]:
    """Create the temporary file of an atomic write of ``path`` (mode 0600, exclusive) and
    return its descriptor and path; the path is journaled before the file exists."""
    folder = path.parent.absolute()
    owner = lock_folder(folder)
    while True:
        token = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        tmp = folder / f".{path.name}.{token}{PART_SUFFIX}"
        if owner is not None:
            _append(owner / JOURNAL_NAME, f"{tmp}\n")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:  # another write drew the same name: draw again
            continue


def _append(journal: Path, line: str) -> None:
    """One line, one ``write`` with O_APPEND: lines of concurrent writers never mix."""
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def _ours(path: Path, folder: Path, keep: tuple[Path, ...]) -> bool:
    """Whether a journal line of ``folder`` names a temporary file this lock may remove:
    named as :func:`create_part` names them, below ``folder`` (resolved) with no other lock
    between and outside the (resolved) folders ``keep``, a regular file (not a link)."""
    if not _PART_NAME.fullmatch(path.name) or not path.is_absolute():
        return False
    with contextlib.suppress(OSError):
        if not path.is_file():  # most lines: renamed into place long ago
            return False
        owner, parent = lock_folder(path.parent), path.parent.resolve()
        if owner is None or owner.resolve() != folder:
            return False
        if any(parent.is_relative_to(k) for k in keep):
            return False
        return not path.is_symlink() and parent.is_relative_to(folder)
    return False


def remove_journaled(folder: Path, keep: tuple[Path, ...] = ()) -> list[Path]:
    """Remove the temporary files journaled under ``folder``'s lock that are still there
    (never below a folder of ``keep``), then the journal; return what was removed.  Call it
    holding that lock."""
    journal = folder / JOURNAL_NAME
    folder, keep = folder.resolve(), tuple(k.resolve() for k in keep)
    removed = []
    try:
        with journal.open("rb") as lines:
            for raw in lines:
                path = Path(os.fsdecode(raw.rstrip(b"\n")))
                if _ours(path, folder, keep):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(path)
    except FileNotFoundError:
        return removed
    with contextlib.suppress(FileNotFoundError):
        journal.unlink()
    return sorted(set(removed))


__all__ = [
    "JOURNAL_NAME",
    "LOCK_NAME",
    "PART_SUFFIX",
    "create_part",
    "lock_folder",
    "remove_journaled",
]
