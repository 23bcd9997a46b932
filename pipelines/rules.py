"""From the series table to a plan: subjects, sessions, and a BIDS name for every series.

Labels come from folder names (or the config's subject map) and are reduced to BIDS's
``[a-zA-Z0-9]`` alphabet, so no header field or folder name can steer a path outside OUTPUT.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from anatprep.interfaces.dicomio.table import SeriesEntry, SeriesTable

from .config import Config, ConfigError, SeriesRule
from .labels import sanitize_label
from .patterns import SEARCH_SECONDS, PatternTimeout, search


@dataclass(frozen=True)
class PlannedSeries:
    series_id: str
    datatype: str  # anat | extra
    suffix: str  # T1w, T2w, FLAIR, or "" for unclassified
    stem: str  # BIDS file name without extension
    description: str  # "" with deidentify: strict

    @property
    def is_t1w(self) -> bool:
        return self.suffix == "T1w"


#: what joins a plan's subject and session in its key (``sub-01_ses-2``)
_SESSION_KEY = "_ses-"


def subject_of(key: str) -> str:
    """The subject (``sub-01``) of a plan's key (``sub-01`` or ``sub-01_ses-2``)."""
    return key.split(_SESSION_KEY, 1)[0]


@dataclass
class SubjectPlan:
    subject: str
    session: str | None
    folder: str
    series: list[PlannedSeries] = field(default_factory=list)
    #: why this subject cannot be run as planned (label collisions, see :func:`conflicts`)
    conflicts: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"sub-{self.subject}" + (f"{_SESSION_KEY}{self.session}" if self.session else "")

    @property
    def rel_dir(self) -> str:
        return f"sub-{self.subject}" + (f"/ses-{self.session}" if self.session else "")

    @property
    def t1w(self) -> list[PlannedSeries]:
        return [s for s in self.series if s.is_t1w]


def _text_fields(entry: SeriesEntry) -> list[str]:
    return [entry.series_description or "", entry.protocol_name or "", entry.sequence_name or ""]


def matches(rule: SeriesRule, entry: SeriesEntry) -> bool:
    """Whether ``entry`` is ``rule``'s kind; :class:`~.patterns.PatternTimeout` when a
    pattern's search outlasts its time bound."""
    texts = _text_fields(entry)
    if not any(search(p, t) for p in rule.description for t in texts):
        return False
    if any(search(p, t) for p in rule.exclude_description for t in texts):
        return False
    image_type = " ".join(entry.image_type or ()).upper()
    if any(search(p, image_type) for p in rule.exclude_image_type):
        return False
    if rule.require_3d and (entry.n_volumes or 1) != 1:
        return False
    if rule.magnitude_only and (entry.part or "mag") != "mag":
        return False
    n_slices = entry.n_slices or 0
    return not (rule.require_3d and n_slices and n_slices < rule.min_slices)


def classify(entry: SeriesEntry, cfg: Config) -> str:
    """The first rule (T1w, T2w, FLAIR order) the series matches, or '' when none does.

    A pattern whose search outlasts its bound is a config error naming the rule, the
    pattern and the series (its id: no header text)."""
    for suffix, rule in cfg.series.rules.items():
        try:
            if matches(rule, entry):
                return suffix
        except PatternTimeout as exc:
            raise ConfigError(
                f"series.rules.{suffix}: regular expression {exc.args[0]!r} took more than "
                f"{SEARCH_SECONDS} s on series {entry.id}: simplify it"
            ) from None
    return ""


def subject_session(
    entry: SeriesEntry, cfg: Config, root_name: str
) -> tuple[str, str | None, str]:
    folders = entry.folders
    level = cfg.labels.subject_level
    folder = folders[level - 1] if len(folders) >= level else root_name
    mapped = cfg.labels.subject_map.get(folder, folder)
    subject = sanitize_label(mapped.removeprefix("sub-"), "unknown")
    session = None
    if cfg.labels.session_level is not None:
        lvl = cfg.labels.session_level
        if len(folders) >= lvl:
            session = sanitize_label(folders[lvl - 1].removeprefix("ses-"))
    return subject, session, folder


def plan_subjects(
    table: SeriesTable, cfg: Config, participant_labels: list[str] | None = None
) -> list[SubjectPlan]:
    """Group series by subject/session and give each a unique BIDS stem.  A subject whose
    label is ambiguous (see :func:`conflicts`) is planned with its ``conflicts`` set; a
    subject folder whose only series is another subject's gets such a plan too."""
    root_name = (table.root or "input").rstrip("/").rsplit("/", 1)[-1]
    groups: dict[tuple[str, str | None], list[SeriesEntry]] = defaultdict(list)
    folders: dict[tuple[str, str | None], str] = {}
    for entry in table.series:
        if entry.skipped:  # left out by the geometry policy; reported by the caller
            continue
        subject, session, folder = subject_session(entry, cfg, root_name)
        groups[(subject, session)].append(entry)
        folders.setdefault((subject, session), folder)
    found = conflicts(table, cfg, root_name)
    for key, (folder, _) in found.items():
        folders.setdefault(key, folder)
    wanted = {sanitize_label(p.removeprefix("sub-")) for p in participant_labels or []}
    plans = []
    for key in sorted(set(groups) | set(found), key=lambda k: (k[0], k[1] or "")):
        subject, session = key
        if wanted and subject not in wanted:
            continue
        plan = SubjectPlan(subject, session, folders[key])
        plan.series = _name_series(plan, groups.get(key, []), cfg)
        plan.conflicts = found.get(key, ("", []))[1]
        plans.append(plan)
    return plans


_RESOLVE = "give each subject folder its own label in labels.subject_map (config)"


def conflicts(
    table: SeriesTable, cfg: Config, root_name: str
) -> dict[tuple[str, str | None], tuple[str, list[str]]]:
    """Subjects that would silently merge different folders: (subject, session) -> (a folder,
    the messages).  Three cases, each naming the folders: several folders reduced to one label
    (``sub-01``, ``01``, ``sub-ü01``), a folder that leaves no letters or digits (``sub-``,
    ``sub-日本``; else ``sub-unknown``), and one DICOM series with files in two subjects'
    folders.  Folders all named in ``labels.subject_map`` are the user's choice: no conflict.
    Session folders of one subject reduced to one session label (or to none) conflict too.
    """
    mapped = cfg.labels.subject_map
    by_label: dict[str, set[str]] = defaultdict(set)
    sessions: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    keys: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    subject_folder: dict[tuple[str, str | None], str] = {}
    found: dict[tuple[str, str | None], tuple[str, list[str]]] = {}

    def add(key: tuple[str, str | None], folder: str, message: str) -> None:
        messages = found.setdefault(key, (folder, []))[1]
        if message not in messages:
            messages.append(message)

    for entry in table.series:
        if entry.skipped:
            continue
        subject, session, folder = subject_session(entry, cfg, root_name)
        by_label[subject].add(folder)
        keys[subject].add((subject, session))
        subject_folder.setdefault((subject, session), folder)
        level = cfg.labels.session_level
        if session is not None and level is not None:
            sessions[(subject, session)].add(entry.folders[level - 1])
        if folder not in mapped and not sanitize_label(folder.removeprefix("sub-"), ""):
            add((subject, session), folder, (
                f"subject folder '{folder}' has no letters or digits A-Z, a-z, 0-9 for a BIDS "
                f"label (it would become sub-{subject}): {_RESOLVE}"
            ))  # fmt: skip
        for other in entry.also_in:
            theirs = subject_session(replace(entry, folders=other), cfg, root_name)
            if theirs[:2] != (subject, session):
                message = (
                    f"{shown_entry(entry, cfg).describe()} also has files in '{'/'.join(other)}' "
                    f"(sub-{theirs[0]}): one DICOM series in two subjects' folders; remove the "
                    "copy, or map both folders to one label in labels.subject_map (config)"
                )
                add((subject, session), folder, message)
                add(theirs[:2], theirs[2], message)
    for subject, names in by_label.items():
        if len(names) > 1 and not names <= set(mapped):
            listed = ", ".join(f"'{n}'" for n in sorted(names))
            message = f"folders {listed} all become subject sub-{subject}: {_RESOLVE}"
            for key in keys[subject]:
                add(key, sorted(names)[0], message)
    for key, names in sessions.items():
        empty = not all(sanitize_label(n.removeprefix("ses-"), "") for n in names)
        if len(names) > 1 or empty:
            listed = ", ".join(f"'{n}'" for n in sorted(names))
            message = (
                f"session folder(s) {listed} of sub-{key[0]} become ses-{key[1]} (BIDS labels "
                "are letters and digits only): rename the session folders"
            )
            add(key, subject_folder[key], message)
    return found


#: the ``acq-`` label of unclassified series under ``deidentify: strict`` (no description)
STRICT_ACQ = "other"


def shown_entry(entry: SeriesEntry, cfg: Config) -> SeriesEntry:
    """``entry`` as messages and conversion nodes may show it: without its free-text
    descriptions under ``deidentify: strict`` (classification still reads them)."""
    return entry.without_free_text() if cfg.deidentify == "strict" else entry


def shown_table(table: SeriesTable, cfg: Config) -> SeriesTable:
    """``table`` with each entry as :func:`shown_entry` gives it."""
    return table.without_free_text() if cfg.deidentify == "strict" else table


def _acquisition_key(entry: SeriesEntry) -> tuple:
    """One acquisition: series number, description and DICOM series (the index's
    ``acquisition`` hash), so unrelated series that share a number are never its echoes."""
    return (
        entry.series_number,
        entry.series_description or "",
        entry.acquisition,
    )


def _acquisition_entities(entries: list[SeriesEntry]) -> dict[str, str]:
    """``_echo-<k>`` / ``_part-<x>`` for the outputs of one acquisition (see
    :func:`_acquisition_key`): echoes numbered by echo time, parts only when more than one is
    present."""
    echo_times = sorted({e.echo_time for e in entries if e.echo_time is not None})
    parts = {e.part or "mag" for e in entries}
    out = {}
    for e in entries:
        text = ""
        if len(echo_times) > 1 and e.echo_time is not None:
            text += f"_echo-{echo_times.index(e.echo_time) + 1}"
        if len(parts) > 1:
            text += f"_part-{e.part or 'mag'}"
        out[e.id] = text
    return out


def _name_series(
    plan: SubjectPlan, entries: list[SeriesEntry], cfg: Config
) -> list[PlannedSeries]:
    """``<key>[_run-<n>][_echo-<k>][_part-<x>]_<suffix>`` for classified series (runs in
    series-number order, one run per acquisition); ``<key>_acq-<description>_run-<series
    number>[...]`` under ``extra/`` for the rest (``acq-other`` with ``deidentify: strict``,
    where no description is kept)."""
    strict = cfg.deidentify == "strict"
    by_suffix: dict[str, list[SeriesEntry]] = defaultdict(list)
    for entry in entries:
        by_suffix[classify(entry, cfg)].append(entry)
    if not cfg.series.convert_other:
        by_suffix.pop("", None)
    named: list[PlannedSeries] = []
    used: set[str] = set()
    entities: dict[str, str] = {}  # over whole acquisitions: a phase part names its echo too
    whole: dict[tuple, list[SeriesEntry]] = defaultdict(list)
    for entry in entries:
        whole[_acquisition_key(entry)].append(entry)
    for members in whole.values():
        entities.update(_acquisition_entities(members))
    for suffix in sorted(by_suffix, key=lambda s: (s == "", s)):
        group = sorted(by_suffix[suffix], key=lambda e: (e.series_number or 0, e.id))
        acquisitions: dict[tuple, list[SeriesEntry]] = defaultdict(list)
        for entry in group:
            acquisitions[_acquisition_key(entry)].append(entry)
        for run, members in enumerate(acquisitions.values(), start=1):
            for entry in members:
                desc = "" if strict else entry.series_description or entry.protocol_name or ""
                if suffix:
                    run_part = f"_run-{run}" if len(acquisitions) > 1 else ""
                    stem = f"{plan.key}{run_part}{entities[entry.id]}_{suffix}"
                    datatype = "anat"
                else:
                    number = entry.series_number
                    acq = STRICT_ACQ if strict else sanitize_label(desc, "unknown")
                    stem = f"{plan.key}_acq-{acq}_run-{number or run}{entities[entry.id]}"
                    datatype = "extra"
                base, n = stem, 1
                while stem in used:  # still one name for several volumes (orientations)
                    n += 1
                    stem = f"{base}part{n}"
                used.add(stem)
                named.append(PlannedSeries(entry.id, datatype, suffix, stem, desc))
    return named
