"""Provenance: what ran, where, how, and on which input bytes.

Two kinds of record, kept apart because one must be deterministic and the other cannot be:

- ``GeneratedBy`` of both ``dataset_description.json`` files (:func:`generated_by`): name,
  version, code URL and, inside a container, the image (:func:`detect_container`).  No time:
  part of the compared, byte-identical outputs.
- a **run record** per run, ``derivatives/anatprep/logs/run-<UTC time>/provenance.json``
  (:func:`write_run_record`): the resolved config (YAML and its sha256), the command line,
  every installed distribution and version, the executor, start and end times (UTC), the exit
  code and a digest of every input series.  It holds times, so it is not part of the outputs
  that runs compare byte for byte (:func:`is_run_record` names them).  Beside it, the
  methods text of that run (:mod:`.methods`), also written to ``logs/CITATION.md`` (the
  latest run's; deterministic).

Input series digests (:func:`series_digests`): sha256 over the concatenated sha256 of each
of the series' files (their bytes, whole), files in sorted path order.  Keyed by the series
id (series number and a hash, never a UID or description) and the BIDS name it became; no
header text reaches the record.  A file's sha256 is cached in the work dir by its index
fingerprint (size, mtime_ns, header digest), so a no-op rerun reads no DICOM again;
:func:`check_inputs` (``anatprep provenance OUTPUT INPUT``) never uses that cache.

Container detection, from the environment (the image sets the first two; Apptainer sets its
own): ``ANATPREP_CONTAINER_IMAGE`` (the image reference, e.g. ``anatprep:0.1.0``),
``ANATPREP_CONTAINER_DIGEST`` (``sha256:...``, passed at run time: an image cannot know its
own digest), ``ANATPREP_CONTAINER_ENGINE`` (optional: ``podman``, ``docker``...),
``APPTAINER_CONTAINER`` / ``SINGULARITY_CONTAINER`` (the SIF, set by Apptainer itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from anatprep import CODE_URL, __version__
from anatprep.interfaces.atomic import atomic_write_bytes, write_json
from anatprep.interfaces.dicomio.table import SeriesTable

from .config import Config, dump_config
from .report import SeriesOutcome
from .run_environment import ContainerInfo, EnvironmentInfo

LOG = logging.getLogger("anatprep")

#: the run records' folder, relative to OUTPUT
LOGS_DIR = Path("derivatives") / "anatprep" / "logs"
RECORD_NAME = "provenance.json"
METHODS_NAME = "CITATION.md"
#: version of the run record's layout (raise when fields change meaning)
RECORD_VERSION = 1

IMAGE_ENV = "ANATPREP_CONTAINER_IMAGE"
DIGEST_ENV = "ANATPREP_CONTAINER_DIGEST"
ENGINE_ENV = "ANATPREP_CONTAINER_ENGINE"
APPTAINER_ENVS = ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER")

_CHUNK = 1 << 20  # files are hashed in 1 MiB reads
_CACHE_NAME = "content_digests.json"


class ProvenanceError(Exception):
    """No run record where one was expected, or one that cannot be read (names the file)."""


# ---------------------------------------------------------------------------- container


def detect_container(environ: Mapping[str, str] | None = None) -> ContainerInfo | None:
    """The container this process runs in, from the environment; None outside one."""
    env = os.environ if environ is None else environ
    image = env.get(IMAGE_ENV, "").strip()
    sif_var = next((name for name in APPTAINER_ENVS if env.get(name)), None)
    if not image and sif_var is None:
        return None
    sif = env[sif_var] if sif_var else None
    if env.get(ENGINE_ENV, "").strip():  # named by whoever started it (execution.container)
        kind = env[ENGINE_ENV].strip()
    elif sif_var:  # set by Apptainer itself at run time: it wins over what an image says
        kind = "apptainer" if sif_var.startswith("APPTAINER") else "singularity"
    elif env.get("container"):  # podman sets container=podman
        kind = env["container"].strip()
    elif Path("/.dockerenv").exists():
        kind = "docker"
    else:
        kind = "oci"
    tag = image or Path(sif or "").name
    return ContainerInfo(kind, tag, env.get(DIGEST_ENV, "").strip() or None, sif)


def generated_by(container: ContainerInfo | None = None) -> list[dict[str, Any]]:
    """``GeneratedBy`` of dataset_description.json (deterministic: no time, no host path)."""
    entry: dict[str, Any] = {"Name": "anatprep", "Version": __version__, "CodeURL": CODE_URL}
    if container is not None:
        entry["Container"] = container.bids()
    return [entry]


# ----------------------------------------------------------------------- input digests


@dataclass(frozen=True)
class SeriesDigest:
    #: the series id of the series table (series number and a hash)
    id: str
    #: where it went in OUTPUT (``sub-01/anat/sub-01_T1w``), None when it was not converted
    output: str | None
    n_files: int
    n_bytes: int
    #: None when a file could not be read (``error`` names it)
    sha256: str | None
    #: what became of it in the run (converted, skipped, failed); None outside a run
    status: str | None = None
    error: str | None = None


def file_sha256(path: str | os.PathLike) -> tuple[str, int]:
    """sha256 of a file's bytes (read in 1 MiB chunks) and its size."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class _DigestCache:
    """path -> [fingerprint, sha256, size]; an entry counts only while its fingerprint (the
    index's: size, mtime_ns, header digest) is the file's."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        if path is not None and path.is_file():
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(path.read_text())
                if isinstance(loaded, dict):
                    self.entries = loaded
        self.used: dict[str, list[Any]] = {}

    def get(self, name: str, fingerprint: str) -> tuple[str, int]:
        hit = self.entries.get(name)
        if fingerprint and isinstance(hit, list) and len(hit) == 3 and hit[0] == fingerprint:
            self.used[name] = hit
            return str(hit[1]), int(hit[2])
        sha, size = file_sha256(name)
        if fingerprint:
            self.used[name] = [fingerprint, sha, size]
        return sha, size

    def save(self) -> None:
        if self.path is not None and self.used != self.entries:
            text = json.dumps(self.used, sort_keys=True, separators=(",", ":"))
            try:
                atomic_write_bytes(self.path, text.encode() + b"\n")
            except OSError as exc:  # a cache only: the next run reads the files again
                LOG.warning("digest cache %s not written: %s", self.path, exc.strerror or exc)


def series_digests(
    table: SeriesTable,
    outcomes: Sequence[SeriesOutcome] = (),
    output_dir: Path | None = None,
    cache_file: Path | None = None,
) -> list[SeriesDigest]:
    """A digest of every series of ``table`` (see the module docstring), in table order.
    ``outcomes``: the run's account of the series (status, and the output, relative to
    ``output_dir``).  ``cache_file``: the per-file digest cache (None: every file is read)."""
    status = {o.series_id: o.status for o in outcomes}
    outputs = {
        o.series_id: _relative_stem(o.detail, output_dir)
        for o in outcomes if o.status == "converted"
    }  # fmt: skip
    cache = _DigestCache(cache_file)
    out = []
    for entry in table.series:
        prints = dict(zip(entry.files, entry.fingerprints, strict=False))
        names = sorted(set(entry.files))
        combined = hashlib.sha256()
        total = 0
        error = None
        for name in names:
            try:
                sha, size = cache.get(name, prints.get(name, ""))
            except OSError as exc:  # gone or unreadable since the index: said, not fatal
                error = f"{name}: {exc.strerror or exc}"
                break
            combined.update(sha.encode() + b"\n")
            total += size
        out.append(SeriesDigest(entry.id, outputs.get(entry.id), len(names), total,
                                None if error else combined.hexdigest(), status.get(entry.id),
                                error))  # fmt: skip
    cache.save()
    return out


# -------------------------------------------------------------------------- run record


@dataclass
class RunRecord:
    """What one run did (``provenance.json``); see the module docstring."""

    record_version: int
    run_id: str
    anatprep_version: str
    code_url: str
    started: str
    finished: str
    exit_code: int
    command: list[str]
    config_yaml: str
    config_sha256: str
    executor: dict[str, Any]
    packages: dict[str, str]
    input_root: str
    inputs: list[SeriesDigest] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RunRecord:
        try:
            values = dict(data)
            values["inputs"] = [SeriesDigest(**s) for s in values.get("inputs", [])]
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ProvenanceError(f"{where}: not a run record of this version: {exc}") from None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def config_sha256(cfg: Config) -> tuple[str, str]:
    """The resolved config as YAML and the sha256 of that text."""
    text = dump_config(cfg)
    return text, hashlib.sha256(text.encode()).hexdigest()


def installed_packages() -> dict[str, str]:
    """Every distribution of this environment, name -> version, sorted by name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(name, dist.version)
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def environment_info() -> EnvironmentInfo:
    """This environment's :class:`EnvironmentInfo`."""
    import nipype

    from anatprep.interfaces.dicomio.reference import ReferenceUnavailable, version

    try:
        dcm2niix: str | None = version()
    except (ReferenceUnavailable, OSError):
        dcm2niix = None
    return EnvironmentInfo(__version__, nipype.__version__, dcm2niix, installed_packages())


def executor_info(cfg: Config, container: ContainerInfo | None) -> dict[str, Any]:
    ex = cfg.execution
    return {
        "plugin": ex.plugin,
        "n_procs": ex.n_procs or os.cpu_count() or 1,
        "memory_gb": ex.memory_gb,
        "plugin_args": dict(ex.plugin_args),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "container": asdict(container) if container else None,
    }


def _relative_stem(path: str, root: Path | None) -> str:
    """``OUTPUT/sub-01/anat/sub-01_T1w.nii.gz`` -> ``sub-01/anat/sub-01_T1w``."""
    relative = Path(path)
    if root is not None:
        with contextlib.suppress(ValueError):
            relative = relative.relative_to(root)
    return str(relative).removesuffix(".gz").removesuffix(".nii")


def _run_dir(output_dir: Path, started: datetime) -> Path:
    base = output_dir / LOGS_DIR / f"run-{started.strftime('%Y%m%dT%H%M%SZ')}"
    folder, n = base, 1
    while folder.exists():  # two runs within one second
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def write_run_record(
    *,
    input_dir: Path,
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
    started: datetime,
    exit_code: int,
    command: Sequence[str] | None = None,
    outcomes: Sequence[SeriesOutcome] = (),
    container: ContainerInfo | None = None,
    environment: EnvironmentInfo | None = None,
) -> Path:
    """Write this run's record and methods text under ``OUTPUT/derivatives/anatprep/logs``
    (and the methods text as ``logs/CITATION.md``); return the record's path.  The inputs
    are the series table the run saved in ``work_dir/index``.  ``container`` and
    ``environment``: the image the work ran in (``execution.container``) and what it
    holds (default: this process's container, if any, and this environment)."""
    from .methods import methods_text

    table = SeriesTable.load(work_dir / "index" / "series_table.json")
    digests = series_digests(table, outcomes, output_dir, work_dir / "index" / _CACHE_NAME)
    container = container or detect_container()
    yaml_text, sha = config_sha256(cfg)
    folder = _run_dir(output_dir, started)
    record = RunRecord(
        record_version=RECORD_VERSION,
        run_id=folder.name,
        anatprep_version=__version__,
        code_url=CODE_URL,
        started=_iso(started),
        finished=_iso(utc_now()),
        exit_code=exit_code,
        command=list(sys.argv if command is None else command),
        config_yaml=yaml_text,
        config_sha256=sha,
        executor=executor_info(cfg, container),
        packages=dict(environment.packages) if environment else installed_packages(),
        input_root=str(input_dir),
        inputs=digests,
    )
    methods = methods_text(cfg, environment, container).encode()
    atomic_write_bytes(folder / METHODS_NAME, methods)
    atomic_write_bytes(output_dir / LOGS_DIR / METHODS_NAME, methods)
    return write_json(asdict(record), folder / RECORD_NAME)


def is_run_record(relative: str | os.PathLike) -> bool:
    """Whether a path relative to OUTPUT is part of a run record (differs from run to run by
    design; outputs compared byte for byte leave these out)."""
    parts = Path(relative).parts
    n = len(LOGS_DIR.parts)
    return parts[:n] == LOGS_DIR.parts and len(parts) > n + 1 and parts[n].startswith("run-")


# ------------------------------------------------------------------ reading and checking


def load_records(output_dir: Path) -> list[tuple[Path, RunRecord]]:
    """Every run record in OUTPUT, oldest first (raises when there is none)."""
    folder = output_dir / LOGS_DIR
    paths = sorted(folder.glob(f"run-*/{RECORD_NAME}"), key=lambda p: _run_order(p.parent.name))
    if not paths:
        raise ProvenanceError(f"{output_dir}: no run record (no {LOGS_DIR}/run-*/{RECORD_NAME})")
    records = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ProvenanceError(f"{path}: not readable as JSON: {exc}") from None
        records.append((path, RunRecord.from_dict(data, str(path))))
    return records


def _run_order(name: str) -> tuple[str, int]:
    stamp, _, n = name.partition("-")[2].partition("-")
    return stamp, int(n) if n.isdigit() else 1


def format_record(record: RunRecord, path: Path | None = None) -> str:
    ex = record.executor
    lines = [
        f"{record.run_id}  anatprep {record.anatprep_version}  exit {record.exit_code}"
        + (f"  ({path})" if path else ""),
        f"  started   {record.started}   finished {record.finished}",
        f"  command   {' '.join(record.command)}",
        f"  config    sha256 {record.config_sha256}",
        f"  executor  {ex.get('plugin')}, {ex.get('n_procs')} process(es), "
        f"{ex.get('cpu_count')} CPU(s), {ex.get('platform')}, Python {ex.get('python')}",
    ]
    container = ex.get("container")
    if container:
        digest = f" @ {container['digest']}" if container.get("digest") else ""
        lines.append(f"  container {container['type']} {container['tag']}{digest}")
    key = ("anatprep", "nipype", "nibabel", "pydicom", "antspyx", "nilearn", "numpy")
    shown = ", ".join(f"{n} {record.packages[n]}" for n in key if n in record.packages)
    lines.append(f"  packages  {len(record.packages)} installed ({shown})")
    files = sum(s.n_files for s in record.inputs)
    size = sum(s.n_bytes for s in record.inputs)
    lines.append(f"  inputs    {len(record.inputs)} series, {files} files, "
                 f"{size / 1e6:.1f} MB under {record.input_root}")  # fmt: skip
    for s in record.inputs:
        digest = f"sha256 {s.sha256[:16]}" if s.sha256 else f"UNREADABLE {s.error}"
        lines.append(f"    {s.id:<22} {s.output or '(not converted)':<48} "
                     f"{s.n_files:>5} files  {digest}")  # fmt: skip
    return "\n".join(lines)


@dataclass(frozen=True)
class InputCheck:
    """How INPUT's series compare with a run record's (series ids)."""

    changed: list[str]
    missing: list[str]
    new: list[str]
    unchanged: list[str]

    @property
    def clean(self) -> bool:
        return not (self.changed or self.missing or self.new)


def check_inputs(record: RunRecord, input_dir: Path) -> InputCheck:
    """Index INPUT as the recorded config did and digest every series afresh (every file
    read: no cache), then compare with the record."""
    import yaml

    from anatprep.interfaces.dicomio.index import index_tree

    from .config import validate_config
    from .config_yaml import parse

    try:
        cfg = validate_config(parse(record.config_yaml), f"the config of {record.run_id}")
    except (ValueError, yaml.YAMLError) as exc:  # ConfigError, ConfigYAMLError
        raise ProvenanceError(f"{record.run_id}: its config cannot be read: {exc}") from None
    # series ids come from headers only (the folder depth does not change them)
    table = index_tree(input_dir.resolve(), geometry=cfg.conversion.geometry.policy())
    now = {d.id: d.sha256 for d in series_digests(table)}
    then = {d.id: d.sha256 for d in record.inputs}
    both = then.keys() & now.keys()
    # a series unreadable then or now (no digest) cannot be shown unchanged
    same = {i for i in both if then[i] is not None and then[i] == now[i]}
    return InputCheck(
        changed=sorted(both - same),
        missing=sorted(then.keys() - now.keys()),
        new=sorted(now.keys() - then.keys()),
        unchanged=sorted(same),
    )


def format_check(record: RunRecord, check: InputCheck) -> str:
    outputs = {s.id: s.output for s in record.inputs}
    lines = [f"inputs against {record.run_id}: {len(check.unchanged)} unchanged, "
             f"{len(check.changed)} changed, {len(check.missing)} missing, "
             f"{len(check.new)} new"]  # fmt: skip
    for word, ids in (("CHANGED", check.changed), ("MISSING", check.missing),
                      ("NEW", check.new)):  # fmt: skip
        for sid in ids:
            where = outputs.get(sid)
            lines.append(f"  {word:<8} {sid}" + (f"  ({where})" if where else ""))
    return "\n".join(lines)


__all__ = [
    "ContainerInfo",
    "InputCheck",
    "ProvenanceError",
    "RunRecord",
    "SeriesDigest",
    "check_inputs",
    "detect_container",
    "generated_by",
    "is_run_record",
    "load_records",
    "series_digests",
    "write_run_record",
]
