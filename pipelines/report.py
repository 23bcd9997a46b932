"""The end-of-run account: every series converted, skipped (by which option) or failed (why).

``anatprep convert`` and ``anatprep run`` both end with this list, so no series can vanish
without a line saying what became of it.  Text from headers (descriptions) is printed with
control characters escaped.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from anatprep.interfaces.dicomio.index import HIDDEN_FOLDER, NOT_REGULAR, UNREADABLE_FOLDER
from anatprep.interfaces.dicomio.table import UnusableItem

from .rules import subject_of

Status = Literal["converted", "skipped", "failed"]

#: unusable files that are not images (reports, DICOMDIRs, notes, FIFOs): nobody's series
NOT_IMAGE_REASONS = ("not a DICOM file", "DICOM without an image", NOT_REGULAR)
#: what the walk left out on purpose: listed as skipped, not failed
SKIPPED_REASONS = (HIDDEN_FOLDER,)


#: a Python exception's class before its message (``ValueError: ``, ``struct.error: ``,
#: ``numpy._core._exceptions._ArrayMemoryError: ``): the technical record, not the reason
_EXCEPTION_CLASS = re.compile(
    r"\b(?:[a-z_][a-z0-9_]*\.)*(?:_?[A-Z][A-Za-z0-9]*(?:Error|Exception|Exit|Interrupt)"
    r"|error|timeout|gaierror|herror)(?=: )(?: ?: )"
)


def in_words(text: str, verbose: bool = False) -> str:
    """A failure reason as the account prints it: what is wrong, in words, without the Python
    exception classes that the crash file and the log keep (``-v`` keeps them here too)."""
    return text if verbose else _EXCEPTION_CLASS.sub("", text)


@dataclass(frozen=True)
class SeriesOutcome:
    """What became of one series (or of one image file no series could take)."""

    series_id: str
    description: str
    status: Status
    #: the output path (converted), the option that left it out (skipped) or the reason
    detail: str
    subject: str = ""


def printable(text: str) -> str:
    """``text`` with control characters (newlines, ESC, NUL) shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class PrintableFilter(logging.Filter):
    """Escapes control characters in every record's message (header and folder text must
    never write raw newlines or terminal escapes into a log); tracebacks keep their lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it when formatting
            return True
        record.msg, record.args = printable(message), None
        return True


def unusable_files(unusable: Iterable[UnusableItem]) -> int:
    """How many of ``unusable`` are files (not folders the walk left out)."""
    folders = (*SKIPPED_REASONS, UNREADABLE_FOLDER)
    return sum(1 for item in unusable if not item.reason.startswith(folders))


def unusable_images(unusable: Iterable[UnusableItem]) -> list[SeriesOutcome]:
    """Image files that could not be used and belong to no series (and folders that could
    not be listed): failures of their own, one line per folder and reason (``<folder>/ (17
    image files)``); hidden folders, which are not searched, as skipped."""
    groups: dict[tuple[str, str], list[str]] = {}
    outcomes = []
    for item in unusable:
        reason = item.reason
        if item.series is None and reason.startswith(SKIPPED_REASONS):
            outcomes.append(SeriesOutcome(item.path + "/", "", "skipped", reason))
        elif item.series is None and reason.startswith(UNREADABLE_FOLDER):
            outcomes.append(SeriesOutcome(item.path + "/", "", "failed", reason))
        elif item.series is None and not reason.startswith(NOT_IMAGE_REASONS):
            folder, _, name = item.path.rpartition("/")
            groups.setdefault((folder, reason), []).append(name)
    for (folder, reason), names in sorted(groups.items()):
        where = f"{folder}/{names[0]}" if len(names) == 1 else f"{folder}/ ({len(names)} files)"
        outcomes.append(SeriesOutcome(where, "", "failed", reason))
    return outcomes


def format_completed(keys: list[str], completed: list[str]) -> str:
    """``N of M subject(s) complete``, counting the run's units of work (plan keys): with
    sessions, each subject-session is one, so they are counted as sessions of so many
    subjects."""
    head = f"{len(completed)} of {len(keys)}"
    subjects = {subject_of(key) for key in keys}
    if subjects == set(keys):
        return f"{head} subject(s) complete"
    return f"{head} session(s) of {len(subjects)} subject(s) complete"


def format_nodes_run(ran: int, total: int) -> str:
    """How many of the graph's nodes ran; the rest were cached (reused from the work dir)."""
    cached = total - ran
    return f"nodes run: {ran} of {total}" + (f" ({cached} cached)" if cached > 0 else "")


def format_outcomes(
    outcomes: list[SeriesOutcome], verbose_ok: bool = True, verbose: bool = False
) -> str:
    """A header line with the counts, then one line per series (failures last); reasons in
    words (:func:`in_words`) unless ``verbose``."""
    counts = Counter(o.status for o in outcomes)
    head = (
        f"series: {counts['converted']} converted, {counts['skipped']} skipped, "
        f"{counts['failed']} failed"
    )
    order = {"converted": 0, "skipped": 1, "failed": 2}
    lines = [head]
    for o in sorted(outcomes, key=lambda o: order[o.status]):
        if o.status == "converted" and not verbose_ok:
            continue
        who = f"{o.subject} " if o.subject else ""
        desc = f" '{o.description}'" if o.description else ""
        word = "FAILED" if o.status == "failed" else o.status
        detail = o.detail if o.status == "converted" else in_words(o.detail, verbose)
        lines.append(printable(f"  {word:9} {who}{o.series_id}{desc}: {detail}"))
    return "\n".join(lines)
