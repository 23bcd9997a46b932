"""Run a study: pre-flight checks, index, plan, build the workflow, execute, summarise.

Failures are per node: one bad series or subject never stops the others (nipype keeps running
independent branches); afterwards each crash file is mapped back to its subject.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anatprep.interfaces.atomic import atomic_write_bytes, write_json
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.table import SeriesTable, SeriesTableError
from anatprep.interfaces.templates import Template, TemplateError, resolve_template

from . import provenance
from .config import Config
from .container import ContainerLauncher, prepare_launcher
from .exitcodes import EXIT_OK, EXIT_PARTIAL
from .labels import sanitize_label
from .paths import (
    UsageError,
    check_input,
    check_not_system,
    check_separate,
    check_writable,
    folders_undone_on_error,
    work_dir_for,
)
from .report import (
    PrintableFilter,
    SeriesOutcome,
    in_words,
    printable,
    unusable_files,
    unusable_images,
)
from .rules import SubjectPlan, plan_subjects, shown_table, subject_session
from .run_environment import ContainerInfo, EnvironmentInfo
from .runlock import check_not_nested, hold_lock
from .slurm.client import SlurmError
from .unwritten import flat_graph, unwritten

LOG = logging.getLogger("anatprep")
LOG.addFilter(PrintableFilter())  # header and folder text never reach a log raw


class NoDataError(Exception):
    """Nothing usable in INPUT (exit code 3)."""


@dataclass
class Failure:
    subject: str
    node: str
    message: str
    crash_file: str
    #: the output files the failure kept from being written (:mod:`.unwritten`)
    unwritten: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    subjects: list[str]
    failures: list[Failure] = field(default_factory=list)
    unusable_files: int = 0
    #: what became of every series of the table (and of unusable image files)
    series: list[SeriesOutcome] = field(default_factory=list)
    #: nodes that ran in this run (work-dir paths, e.g. ``sub-01_wf/convert_T1w``) and all
    #: nodes of the graph; the others were cached (None: not counted, e.g. SLURMArray)
    nodes_run: list[str] | None = None
    nodes_total: int = 0

    @property
    def failed_subjects(self) -> list[str]:
        return sorted({f.subject for f in self.failures})

    @property
    def exit_code(self) -> int:
        failed = self.failures or any(o.status == "failed" for o in self.series)
        return EXIT_PARTIAL if failed else EXIT_OK


def check_paths(
    input_dir: Path, output_dir: Path, work_dir: Path, created: list[Path] | None = None
) -> None:
    """Fail early on a missing INPUT, OUTPUT or work dir in INPUT, overlapping each other or
    a system folder, or an OUTPUT/work dir we cannot write (see :mod:`.paths`; ``created``
    gets the folders made for them)."""
    check_input(input_dir)
    check_not_system("OUTPUT", output_dir)
    check_not_system("work dir", work_dir)
    check_separate(input_dir, output_dir, work_dir)
    check_writable("OUTPUT", output_dir, created)
    check_writable("work dir", work_dir, created)


def load_series_table(path: Path) -> SeriesTable:
    """The ``--series-table`` file, or UsageError naming it and what is wrong."""
    try:
        return SeriesTable.load(path)
    except SeriesTableError as exc:
        raise UsageError(f"--series-table {exc}") from None


def check_template(cfg: Config) -> Template | None:
    """The brain-extraction template, found before any work (None: no brain extraction);
    UsageError naming what is missing."""
    bex = cfg.brain_extraction
    if not bex.enabled:
        return None
    try:
        return resolve_template(
            bex.template, bex.template_head, bex.template_mask, bex.template_resolution
        )
    except TemplateError as exc:
        raise UsageError(f"brain_extraction.template: {exc}") from None


def index_input(input_dir: Path, work_dir: Path, cfg: Config) -> SeriesTable:
    """The series table of INPUT (also saved as ``<work>/index/series_table.json``).  The
    header cache beside it lets a rerun read only the files that changed."""
    index_dir = work_dir / "index"
    index_dir.mkdir(parents=True, exist_ok=True)
    table = index_tree(
        input_dir.resolve(),
        folder_levels=5,
        geometry=cfg.conversion.geometry.policy(),
        cache_file=index_dir / "header_cache.json",
    )
    try:
        table.save(index_dir / "series_table.json")
    except OSError as exc:  # e.g. a full disk: nothing has run yet
        raise UsageError(f"work dir {work_dir} cannot be written: {exc.strerror or exc}") from None
    return table


def _describe_unusable(table: SeriesTable, limit: int = 5) -> str:
    items = table.unusable
    lines = [printable(f"  {u.path}: {u.reason}") for u in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)


def write_dataset_files(
    output_dir: Path, plans: list[SubjectPlan], container: ContainerInfo | None = None
) -> None:
    """dataset_description.json (raw and derivatives), README, .bidsignore (participants.tsv
    after the run: :func:`write_participants`).  ``container``: the image the work runs in
    (``execution.container``); default: the one this process runs in, if any."""
    generated = provenance.generated_by(container or provenance.detect_container())
    raw_desc = output_dir / "dataset_description.json"
    if not raw_desc.exists():
        write_json(
            {
                "Name": "anatprep conversion",
                "BIDSVersion": "1.9.0",
                "DatasetType": "raw",
                "GeneratedBy": generated,
            },
            raw_desc,
        )
    deriv = output_dir / "derivatives" / "anatprep"
    write_json(
        {
            "Name": "anatprep derivatives",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": generated,
            "DatasetLinks": {"raw": "../../"},
        },
        deriv / "dataset_description.json",
    )
    readme = output_dir / "README"
    if not readme.exists():
        atomic_write_bytes(
            readme,
            b"BIDS dataset converted from DICOM by anatprep.\n"
            b"Series no rule classified are kept under sub-*/extra/.\n",
        )
    # a pattern with a trailing slash leaves the folder itself NOT_INCLUDED (validator 2.x)
    atomic_write_bytes(output_dir / ".bidsignore", b"**/extra\n")


def write_participants(output_dir: Path) -> None:
    """participants.tsv: every subject with output in OUTPUT (this run's or an earlier one's);
    a subject that failed before writing anything is not a participant of the dataset."""
    ids = [
        folder.name
        for folder in sorted(output_dir.glob("sub-*"))
        if folder.is_dir() and any(f.is_file() for f in folder.rglob("*"))
    ]
    tsv = output_dir / "participants.tsv"
    atomic_write_bytes(tsv, ("participant_id\n" + "".join(f"{i}\n" for i in ids)).encode())


def _subject_of(node: str, key_by_wf: dict[str, str]) -> str:
    """The subject of a node's full name (``anatprep_wf.<subject>_wf.<node>``)."""
    parts = node.split(".")
    return key_by_wf.get(parts[1], parts[1]) if len(parts) > 1 else "?"


def _crash_failures(crash_dir: Path, since: float, key_by_wf: dict[str, str]) -> list[Failure]:
    failures: list[Failure] = []
    if not crash_dir.is_dir():
        return failures
    for crash in sorted(crash_dir.glob("crash-*")):
        if crash.stat().st_mtime < since - 1:
            continue
        text = crash.read_text(errors="replace")
        node = next(
            (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Node:")),
            crash.name,
        )
        subject = _subject_of(node, key_by_wf)
        lines = [ln for ln in text.splitlines() if ln.strip()]
        # a SLURM job that ended without a result says so (state, reason); else the error
        message = next(
            (ln.strip() for ln in lines if ln.lstrip().startswith("SLURM job ")),
            next(
                (ln.strip() for ln in reversed(lines) if "Error" in ln or "Exception" in ln),
                lines[-1] if lines else "",
            ),
        )
        failures.append(Failure(subject, node, message, str(crash)))
    return failures


def unlisted_subjects(
    table: SeriesTable, cfg: Config, participant_labels: list[str] | None
) -> list[Failure]:
    """A failure for each subject folder indexing could not list (e.g. permission denied):
    its subject is counted, and failed, rather than missing from the run."""
    from anatprep.interfaces.dicomio.index import UNREADABLE_FOLDER
    from anatprep.interfaces.dicomio.table import SeriesEntry

    root = Path(table.root or ".")
    wanted = {sanitize_label(p.removeprefix("sub-")) for p in participant_labels or []}
    failures = []
    for item in table.unusable:
        parts = Path(item.path).relative_to(root).parts if item.path.startswith(str(root)) else ()
        if not item.reason.startswith(UNREADABLE_FOLDER) or len(parts) != cfg.labels.subject_level:
            continue
        subject = subject_session(SeriesEntry(id="", folders=parts), cfg, root.name)[0]
        if not wanted or subject in wanted:
            failures.append(Failure(f"sub-{subject}", "index", f"{item.path}: {item.reason}", ""))
    return failures


def series_outcomes(
    table: SeriesTable,
    plans: list[SubjectPlan],
    output_dir: Path,
    failures: list[Failure],
    cfg: Config,
    participant_labels: list[str] | None,
) -> list[SeriesOutcome]:
    """What became of each series of ``table`` in a finished run (see :mod:`.report`)."""
    from .workflows.anat import series_tag

    planned = {s.series_id: (p, s) for p in plans for s in p.series}
    wanted = {sanitize_label(p.removeprefix("sub-")) for p in participant_labels or []}
    root_name = Path(table.root or "input").name
    outcomes = []
    for entry in table.series:
        sid, desc = entry.id, entry.series_description or ""
        if entry.skipped:
            outcomes.append(SeriesOutcome(sid, desc, "skipped", entry.skipped))
            continue
        if sid not in planned:
            subject = subject_session(entry, cfg, root_name)[0]
            reason = (
                "its subject is not among --participant-label"
                if wanted and subject not in wanted
                else "matched no series rule (series.convert_other: false)"
            )
            outcomes.append(SeriesOutcome(sid, desc, "skipped", reason))
            continue
        plan, series = planned[sid]
        if plan.conflicts:
            reason = f"not run: conflicting subject labels (see FAILED {plan.key}: labels)"
            outcomes.append(SeriesOutcome(sid, desc, "failed", reason, plan.key))
            continue
        tag = series_tag(plan, series)
        nodes = (f".convert_{tag}", f".sink_raw_{tag}")  # converting, or placing in OUTPUT
        crash = next(
            (f for f in failures if f.subject == plan.key and f.node.endswith(nodes)), None
        )
        final = output_dir / plan.rel_dir / series.datatype / f"{series.stem}.nii.gz"
        if crash is not None:
            outcome = SeriesOutcome(sid, desc, "failed", crash.message, plan.key)
        elif final.is_file():
            outcome = SeriesOutcome(sid, desc, "converted", str(final), plan.key)
        else:
            outcome = SeriesOutcome(sid, desc, "failed", "no output (see the failures)", plan.key)
        outcomes.append(outcome)
    return outcomes + unusable_images(table.unusable)


def run_study(
    input_dir: Path,
    output_dir: Path,
    cfg: Config,
    participant_labels: list[str] | None = None,
    series_table: Path | None = None,
    command: list[str] | None = None,
) -> RunSummary:
    """Index INPUT, plan subjects, run the workflow, and summarise the outcome.

    ``series_table``: a table already made for INPUT (a SLURMArray task gets its subject's
    part of the batch's table), used instead of indexing again.  ``command``: the command
    line for the run record (:mod:`.provenance`; default ``sys.argv``), which every run but
    a SLURMArray task's (its batch writes one) leaves in OUTPUT.

    Holds the locks of OUTPUT and of the work dir for the whole run (:mod:`.runlock`; a
    SLURMArray task only its work dir's: the batch holds OUTPUT's) and raises
    :class:`~.runlock.LockBusy` when another run holds one; removes the temporary files an
    interrupted run left in OUTPUT before any work.  A refused run (:class:`UsageError`,
    :class:`~.runlock.LockBusy`) leaves no folder it created behind."""

    work_dir = work_dir_for(cfg.execution.work_dir, output_dir)
    table = load_series_table(series_table) if series_table is not None else None
    template = check_template(cfg)
    with folders_undone_on_error() as created:
        check_paths(input_dir, output_dir, work_dir, created)
        image = None
        if table is None:  # (a SLURMArray task, given its table, runs in its batch's image)
            image = _container(input_dir, output_dir, work_dir, cfg, template)
        return _locked_run(
            input_dir, output_dir, work_dir, cfg, participant_labels, table, command, image
        )


def _locked_run(
    input_dir: Path,
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
    participant_labels: list[str] | None,
    table: SeriesTable | None,
    command: list[str] | None,
    image: tuple[ContainerLauncher, provenance.EnvironmentInfo] | None,
) -> RunSummary:
    """:func:`run_study` once the paths are checked: under the locks, with the record."""
    with contextlib.ExitStack() as locks:
        if table is None:  # a SLURMArray task runs under its batch's OUTPUT lock
            locks.enter_context(hold_lock(output_dir, "OUTPUT", keep=(input_dir,)))
            check_not_nested(output_dir, "OUTPUT", skip=(input_dir,))
        locks.enter_context(hold_lock(work_dir, "work dir"))
        started = provenance.utc_now()
        summary = _index_plan_run(
            input_dir, output_dir, work_dir, cfg, participant_labels, table,
            image[0] if image else None,
        )  # fmt: skip
        if table is None:
            try:
                provenance.write_run_record(
                    input_dir=input_dir, output_dir=output_dir, work_dir=work_dir, cfg=cfg,
                    started=started, exit_code=summary.exit_code, command=command,
                    outcomes=summary.series, container=image[0].info if image else None,
                    environment=image[1] if image else None,
                )  # fmt: skip
            except OSError as exc:  # e.g. a full disk
                message = f"cannot write the run record: {exc.strerror or exc}"
                summary.failures.append(Failure("dataset", "provenance", message, ""))
        return summary


def _container(
    input_dir: Path, output_dir: Path, work_dir: Path, cfg: Config, tpl: Template | None
) -> tuple[ContainerLauncher, EnvironmentInfo] | None:
    """The image the work runs in (``execution.container``), checked (:mod:`.container`);
    INPUT and the template's folder mounted read-only (a TemplateFlow template: its
    TemplateFlow home, named to the image too), OUTPUT and the work dir read-write."""
    conf = cfg.execution.container
    if conf is None:
        return None
    read_only = [input_dir]
    env: dict[str, str] = {}
    if tpl is not None:
        read_only += [tpl.head.parent, tpl.mask.parent]
        if tpl.name not in ("robex", "custom"):  # tasks look it up again, offline
            home = next((p.parent for p in tpl.head.parents if p.name.startswith("tpl-")), None)
            if home is not None:
                read_only.append(home)
                env = {"TEMPLATEFLOW_HOME": str(home), "TEMPLATEFLOW_AUTOUPDATE": "0"}
    launcher, found = prepare_launcher(conf, read_only, [output_dir, work_dir], env)
    LOG.info(
        "work runs in %s %s (%s)", conf.engine, launcher.info.tag, launcher.info.digest or "?"
    )
    return launcher, found


def _index_plan_run(
    input_dir: Path,
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
    participant_labels: list[str] | None,
    series_table: SeriesTable | None,
    launcher: ContainerLauncher | None = None,
) -> RunSummary:
    """:func:`run_study` once the paths are checked and locked."""
    log_dir = work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    table = index_input(input_dir, work_dir, cfg) if series_table is None else series_table
    for entry in table.series:
        if entry.skipped:
            LOG.warning("series %s skipped: %s", entry.id, entry.skipped)
    if not table.series:
        reason = (
            "INPUT holds no files"
            if table.n_files == 0 and not table.unusable
            else f"no usable DICOM among {table.n_files} files:\n{_describe_unusable(table)}"
        )
        raise NoDataError(f"{input_dir}: {reason}")
    if launcher is not None:  # input files linked from outside INPUT: mounted too
        root = input_dir.resolve()
        targets = (Path(f).resolve() for entry in table.series for f in entry.files)
        launcher = launcher.with_read_only(
            {t.parent for t in targets if not t.is_relative_to(root)}
        )
    plans = plan_subjects(table, cfg, participant_labels)
    # from here on (messages, nodes, the account) as deidentify allows; SLURMArray tasks
    # get the whole entries (they plan their subject again)
    shown = shown_table(table, cfg)
    if not plans:
        raise NoDataError(f"none of the participant labels {participant_labels} is in {input_dir}")
    blocked = [p for p in plans if p.conflicts]
    for plan in blocked:
        for message in plan.conflicts:
            LOG.error("%s not run: %s", plan.key, message)
    plans = [p for p in plans if not p.conflicts]
    for plan in plans:
        if not plan.series:
            LOG.warning("%s: no series to convert (none matched a rule)", plan.key)
    plans = [p for p in plans if p.series]
    if not plans and not blocked:
        raise NoDataError(f"{input_dir}: no series matched a rule and series.convert_other is off")
    for item in table.unusable:
        words = in_words(item.reason)
        LOG.warning("skipped %s: %s", item.path, words)
        if words != item.reason:  # -v: the reason with its exception classes
            LOG.debug("skipped %s: %s", item.path, item.reason)
    for plan in plans:
        kinds = ", ".join(f"{s.stem} ({s.description})" if s.description else s.stem
                          for s in plan.series)  # fmt: skip
        LOG.info("%s: %s", plan.key, kinds)
        if not plan.t1w and cfg.brain_extraction.enabled:
            LOG.warning("%s: no series matched the T1w rules; nothing to skull-strip", plan.key)

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_dataset_files(output_dir, plans, launcher.info if launcher else None)
    except OSError as exc:  # e.g. a full disk: nothing has run yet
        raise UsageError(f"OUTPUT {output_dir} cannot be written: {exc.strerror or exc}") from None
    if not plans:
        summary = RunSummary(subjects=[], unusable_files=unusable_files(table.unusable))
    elif cfg.execution.plugin == "SLURMArray" or (
        launcher is not None and cfg.execution.plugin in ("MultiProc", "Linear")
    ):
        summary = _run_subject_tasks(plans, input_dir, output_dir, work_dir, cfg, table, launcher)
    else:
        summary = _run_workflow(plans, output_dir, work_dir, cfg, shown, launcher)
    try:
        write_participants(output_dir)
    except OSError as exc:
        message = f"cannot write {output_dir / 'participants.tsv'}: {exc.strerror or exc}"
        summary.failures.append(Failure("dataset", "participants.tsv", message, ""))
    summary.subjects = sorted(summary.subjects + [p.key for p in blocked])
    summary.failures += [Failure(p.key, "labels", "; ".join(p.conflicts), "") for p in blocked]
    for failure in unlisted_subjects(table, cfg, participant_labels):
        if failure.subject not in summary.subjects:
            summary.subjects.append(failure.subject)
            summary.failures.append(failure)
    summary.series = series_outcomes(
        shown, plans + blocked, output_dir, summary.failures, cfg, participant_labels
    )
    return summary


def _run_workflow(
    plans: list[SubjectPlan],
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
    table: SeriesTable,
    launcher: ContainerLauncher | None = None,
) -> RunSummary:
    """MultiProc, Linear, SLURM or SLURMGraph: one nipype workflow over all subjects (SLURM
    and SLURMGraph: each node's job in the image of ``launcher``, if any)."""
    from .workflows import init_anatprep_wf
    from .workflows.anat import node_name

    log_dir = work_dir / "logs"
    entries = table.by_id()
    wf = init_anatprep_wf(
        plans, entries=entries, output_dir=output_dir.resolve(), work_dir=work_dir, cfg=cfg
    )
    wf.config["execution"].update(
        {
            "crashdump_dir": str(log_dir),
            "crashfile_format": "txt",
            "stop_on_first_crash": "false",
            "remove_unnecessary_outputs": "false",
            "create_report": "false",
            # the conversion nodes hash their series' entry, file fingerprints included
            # (what changes in INPUT reruns its series); what flows between nodes lives in
            # the work dir, so size and mtime tell a changed intermediate (no re-reading)
            "hash_method": "timestamp",
        }
    )
    plugin_args: dict[str, Any] = {"raise_insufficient": False}
    if cfg.execution.plugin == "MultiProc":
        plugin_args["n_procs"] = cfg.execution.n_procs or os.cpu_count() or 1
        if cfg.execution.memory_gb:
            plugin_args["memory_gb"] = cfg.execution.memory_gb
    started = time.time()
    summary = RunSummary(
        subjects=[p.key for p in plans], unusable_files=unusable_files(table.unusable)
    )
    plugin: Any = cfg.execution.plugin
    if plugin in ("SLURM", "SLURMGraph"):
        from .slurm.plugins import SlurmGraphSubmitPlugin, SlurmNodesPlugin

        slurm_logs = log_dir / "slurm"
        slurm_logs.mkdir(parents=True, exist_ok=True)
        args = {
            **cfg.execution.plugin_args,
            "log_dir": str(slurm_logs),
            "outage_seconds": cfg.execution.slurm.outage_seconds,
            "poll_seconds": cfg.execution.slurm.poll_seconds,
        }
        if launcher is not None:
            args["python"] = launcher.python(str(work_dir))
        kind = SlurmNodesPlugin if plugin == "SLURM" else SlurmGraphSubmitPlugin
        plugin = kind(plugin_args=args)
        wf.config["execution"]["poll_sleep_duration"] = cfg.execution.slurm.poll_seconds
        plugin_args = {}
    else:
        plugin_args.update(cfg.execution.plugin_args)
        if plugin == "MultiProc":
            from .multiproc import SettlingMultiProcPlugin

            plugin, plugin_args = SettlingMultiProcPlugin(plugin_args=plugin_args), {}
    key_by_wf = {node_name(f"{p.key}_wf"): p.key for p in plans}
    try:
        wf.run(plugin=plugin, plugin_args=plugin_args)
    except SlurmError as exc:  # sbatch refused the jobs, or the controller stayed down
        summary.failures = cluster_failures(
            exc, plans, _crash_failures(log_dir, started, key_by_wf)
        )
    except RuntimeError as exc:
        summary.failures = _crash_failures(log_dir, started, key_by_wf)
        for crash in getattr(plugin, "unwritten_crashes", []):  # e.g. a full work disk
            summary.failures.append(
                Failure(_subject_of(crash.node, key_by_wf), crash.node, crash.message, "")
            )
        if not summary.failures:
            raise RuntimeError(f"workflow failed without a crash file: {exc}") from exc
        graph = flat_graph(wf)
        for failure in summary.failures:
            failure.unwritten = unwritten(graph, failure.node)
    summary.nodes_run = nodes_run_since(work_dir / wf.name, started)
    summary.nodes_total = _work_nodes(wf)
    return summary


def cluster_failures(
    exc: SlurmError, plans: list[SubjectPlan], failures: list[Failure]
) -> list[Failure]:
    """``failures``, and a failure with SLURM's message for every other subject: the cluster
    did not take or report their work (a rerun resumes what did finish)."""
    failed = {f.subject for f in failures}
    message = f"the SLURM cluster failed the work: {exc}"
    return failures + [Failure(p.key, "SLURM", message, "") for p in plans if p.key not in failed]


def _work_nodes(wf) -> int:
    """The nodes of a (nested) workflow that run (nipype drops pass-through identity nodes
    such as ``inputnode`` / ``outputnode`` before running)."""
    from nipype.interfaces.utility import IdentityInterface

    return sum(
        not isinstance(node.interface, IdentityInterface) for node in wf._get_all_nodes()
    )


def nodes_run_since(graph_dir: Path, started: float) -> list[str]:
    """The nodes under ``graph_dir`` whose result file was written after ``started`` (those
    that ran; a cached node keeps its earlier result), as paths relative to ``graph_dir``."""
    if not graph_dir.is_dir():
        return []
    return sorted(
        str(result.parent.relative_to(graph_dir))
        for result in graph_dir.rglob("result_*.pklz")
        if result.stat().st_mtime >= started
    )


def _run_subject_tasks(
    plans: list[SubjectPlan],
    input_dir: Path,
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
    table: SeriesTable,
    launcher: ContainerLauncher | None,
) -> RunSummary:
    """A task per subject (:mod:`.subject_tasks`): SLURMArray's job array, or here in the
    image (MultiProc / Linear with ``execution.container``).  Each subject's failures come
    from its task's crash files, or from the account of a task that did not end by itself."""
    from .subject_tasks import run_local
    from .workflows.anat import node_name

    tables: dict[str, SeriesTable] = {}
    for label in sorted({p.subject for p in plans}):
        ids = {s.series_id for p in plans if p.subject == label for s in p.series}
        mine = tuple(e for e in table.series if e.id in ids)
        tables[label] = SeriesTable(root=table.root, n_files=len(mine), series=mine)
    summary = RunSummary(
        subjects=[p.key for p in plans], unusable_files=unusable_files(table.unusable)
    )
    started = time.time()
    if cfg.execution.plugin == "SLURMArray":
        from .slurm.array import run_array

        python, digest = None, ""
        if launcher is not None:
            python, digest = launcher.python(str(work_dir)), launcher.info.digest or ""
        try:
            outcomes = run_array(
                tables, input_dir, output_dir, work_dir, cfg, python=python, image_digest=digest
            )
        except SlurmError as exc:  # sbatch refused the array, or the controller stayed down
            summary.failures = cluster_failures(exc, plans, [])
            return summary
    else:
        assert launcher is not None
        outcomes = run_local(tables, input_dir, output_dir, work_dir, cfg, launcher)
    log_dir = work_dir / "logs"
    for label, outcome in sorted(outcomes.items()):
        state, code = outcome.state, outcome.exit_code
        if outcome.completed:
            continue
        keys = {node_name(f"{p.key}_wf"): p.key for p in plans if p.subject == label}
        crashes = _crash_failures(Path(outcome.work_dir) / "logs", started, keys)
        if state == "FAILED" and code.startswith(f"{EXIT_PARTIAL}:") and crashes:
            summary.failures += crashes
            continue
        kind = "slurm" if cfg.execution.plugin == "SLURMArray" else "task"
        report = log_dir / f"crash-{kind}-sub-{label}.txt"
        text = (
            f"Node: {outcome.what} (subject sub-{label})\n"
            f"{'SLURM job id' if kind == 'slurm' else 'Task'}: {outcome.job}\n"
            f"State: {state}\nReason: {outcome.reason}\n"
            f"ExitCode: {code}\nTask log: {outcome.log}\n"
        )
        atomic_write_bytes(report, text.encode())
        message = f"{outcome.what} ended {state} ({outcome.reason}, exit {code})"
        summary.failures.append(Failure(f"sub-{label}", outcome.what, message, str(report)))
    return summary
