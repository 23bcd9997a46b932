"""From the series table to a plan: subjects, sessions, and a BIDS name for every series.

Labels come from folder names (or the config's subject map) and are reduced to BIDS's
``[a-zA-Z0-9]`` alphabet, so no header field or folder name can steer a path outside OUTPUT.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from anatprep.interfaces.dicomio.table import SeriesEntry, SeriesTable

from .config import Config, SeriesRule
from .labels import sanitize_label


@dataclass(frozen=True)
class PlannedSeries:
    series_id: str
    datatype: str  # anat | extra
    suffix: str  # T1w, T2w, FLAIR, or "" for unclassified
    stem: str  # BIDS file name without extension
    description: str

    @property
    def is_t1w(self) -> bool:
        return self.suffix == "T1w"


@dataclass
class SubjectPlan:
    subject: str
    session: str | None
    folder: str
    series: list[PlannedSeries] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    @property
    def rel_dir(self) -> str:
        return f"sub-{self.subject}" + (f"/ses-{self.session}" if self.session else "")

    @property
    def t1w(self) -> list[PlannedSeries]:
        return [s for s in self.series if s.is_t1w]


def _text_fields(entry: SeriesEntry) -> list[str]:
    return [entry.series_description or "", entry.protocol_name or "", entry.sequence_name or ""]


def matches(rule: SeriesRule, entry: SeriesEntry) -> bool:
    texts = _text_fields(entry)
    if not any(re.search(p, t) for p in rule.description for t in texts):
        return False
    if any(re.search(p, t) for p in rule.exclude_description for t in texts):
        return False
    image_type = " ".join(entry.image_type or ()).upper()
    if any(re.search(p, image_type) for p in rule.exclude_image_type):
        return False
    if rule.require_3d and (entry.n_volumes or 1) != 1:
        return False
    if rule.magnitude_only and (entry.part or "mag") != "mag":
        return False
    n_slices = entry.n_slices or 0
    return not (rule.require_3d and n_slices and n_slices < rule.min_slices)


def classify(entry: SeriesEntry, cfg: Config) -> str:
    """The first rule (T1w, T2w, FLAIR order) the series matches, or '' when none does."""
    for suffix, rule in cfg.series.rules.items():
        if matches(rule, entry):
            return suffix
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
    """Group series by subject/session and give each a unique BIDS stem."""
    root_name = (table.root or "input").rstrip("/").rsplit("/", 1)[-1]
    groups: dict[tuple[str, str | None], list[SeriesEntry]] = defaultdict(list)
    folders: dict[tuple[str, str | None], str] = {}
    for entry in table.series:
        if entry.skipped:  # left out by the geometry policy; reported by the caller
            continue
        subject, session, folder = subject_session(entry, cfg, root_name)
        groups[(subject, session)].append(entry)
        folders.setdefault((subject, session), folder)
    wanted = {sanitize_label(p.removeprefix("sub-")) for p in participant_labels or []}
    plans = []
    for key in sorted(groups, key=lambda k: (k[0], k[1] or "")):
        subject, session = key
        if wanted and subject not in wanted:
            continue
        plan = SubjectPlan(subject, session, folders[key])
        plan.series = _name_series(plan, groups[key], cfg)
        plans.append(plan)
    return plans


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
    number>[...]`` under ``extra/`` for the rest."""
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
                desc = entry.series_description or entry.protocol_name or ""
                if suffix:
                    run_part = f"_run-{run}" if len(acquisitions) > 1 else ""
                    stem = f"{plan.key}{run_part}{entities[entry.id]}_{suffix}"
                    datatype = "anat"
                else:
                    number = entry.series_number
                    acq = sanitize_label(desc, "unknown")
                    stem = f"{plan.key}_acq-{acq}_run-{number or run}{entities[entry.id]}"
                    datatype = "extra"
                base, n = stem, 1
                while stem in used:  # still one name for several volumes (orientations)
                    n += 1
                    stem = f"{base}part{n}"
                used.add(stem)
                named.append(PlannedSeries(entry.id, datatype, suffix, stem, desc))
    return named
