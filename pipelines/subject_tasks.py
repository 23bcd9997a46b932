"""A subject per task: each subject's whole graph as its own ``anatprep run`` of that subject
(``--participant-label``, its part of the batch's series table, its own work dir), with
MultiProc inside.  SLURMArray submits the tasks as one job array (:mod:`.slurm.array`);
with ``execution.container`` and MultiProc or Linear, :func:`run_local` runs them here, each in
the image (MultiProc: as many at once as ``n_procs`` allows, the processors and memory budget
shared between them; Linear: one at a time, one process each).

* Finished subjects are remembered (``<root>/<label>/done`` holding the digest of the task's
  config, paths and series table): a re-run starts only the subjects that did not finish,
  or whose input or config changed.
* A task that exits 4 failed some nodes: their crash files are in the task's work dir.  Any
  other end is a failure of that subject, named with its log file.
* If this process is interrupted while tasks run, it ends them (SIGTERM, which the engines
  pass on to the container; after a grace period SIGKILL, and a podman / docker container is
  removed by name).  Each task has its own session (a Ctrl-C at the terminal reaches this
  process only, which ends them once) and gets SIGTERM if this process dies.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from anatprep.interfaces.atomic import atomic_write_bytes
from anatprep.interfaces.dicomio.table import SeriesTable

from .config import Config, dump_config
from .container import ContainerLauncher
from .processes import die_with_parent

LOG = logging.getLogger("anatprep")

#: the local tasks' folder in the work dir (SLURMArray's is ``slurm``)
LOCAL_DIR = "tasks"
#: how long a task is given to end after SIGTERM before it is killed
_GRACE_S = 20.0


@dataclass(frozen=True)
class TaskOutcome:
    """How one subject's task ended."""

    job: str  #: the task's name: SLURM's ``<array job>_<task>``, or ``sub-<label>`` here
    what: str  #: how the account names it (``SLURM job 12_0``, ``container task sub-01``)
    state: str  #: COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, ... or UNKNOWN
    exit_code: str  #: ``<code>:<signal>`` as sacct gives it ('' when unknown)
    reason: str
    log: str  #: the task's log file
    work_dir: str  #: the task's own work dir (its crash files are under logs/)

    @property
    def completed(self) -> bool:
        return self.state == "COMPLETED"


def task_config(cfg: Config) -> str:
    """The config a task runs with: MultiProc in its own work dir, in no further container."""
    data = cfg.model_copy(deep=True)
    data.execution.plugin = "MultiProc"
    data.execution.work_dir = None
    data.execution.container = None
    return dump_config(data)


def plan_tasks(
    tables: dict[str, SeriesTable],
    input_dir: Path,
    output_dir: Path,
    root: Path,
    cfg: Config,
    image_digest: str = "",
) -> tuple[list[str], dict[str, str]]:
    """Write the tasks' config (``root/config.yaml``) and each subject's series table (its
    task's plan: no task indexes INPUT again); return (labels to run, their digests).  A
    subject runs again unless it finished with the same config, paths and series table (an
    edited input file changes its entry's fingerprints, hence the digest) and, with
    ``execution.container``, in the same image (``image_digest``)."""
    (root / "logs").mkdir(parents=True, exist_ok=True)
    config_text = task_config(cfg)
    common = config_text + str(input_dir.resolve()) + str(output_dir.resolve()) + image_digest
    digests: dict[str, str] = {}
    for label, table in tables.items():
        table_file = table.save(root / label / "series_table.json")
        text = common + table_file.read_text()
        digests[label] = hashlib.sha256(text.encode()).hexdigest()[:16]
    todo = [
        label
        for label in tables
        if not (
            (root / label / "done").is_file()
            and (root / label / "done").read_text() == digests[label]
        )
    ]
    atomic_write_bytes(root / "config.yaml", config_text.encode())
    return todo, digests


def task_arguments(input_dir: Path, output_dir: Path, root: Path, n_procs: int) -> list[str]:
    """``anatprep run``'s arguments for a task, but ``--participant-label`` and the
    subject's folders (``root/<label>``), which the caller adds."""
    return [
        "-m", "anatprep.pipelines.cli", "run", str(input_dir.resolve()),
        str(output_dir.resolve()), "--config", str(root / "config.yaml"),
        "--n-procs", str(n_procs),
    ]  # fmt: skip


def subject_arguments(root: Path, label: str) -> list[str]:
    folder = root / label
    return [
        "--participant-label", label, "--work-dir", str(folder),
        "--series-table", str(folder / "series_table.json"),
    ]  # fmt: skip


def mark_done(root: Path, label: str, digest: str) -> None:
    atomic_write_bytes(root / label / "done", digest.encode())


def _memory_gb(cfg: Config) -> float:
    """The run's memory budget: ``execution.memory_gb``, else 90% of RAM (nipype's)."""
    if cfg.execution.memory_gb:
        return cfg.execution.memory_gb
    return 0.9 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def _exit_code(returncode: int) -> str:
    return f"0:{-returncode}" if returncode < 0 else f"{returncode}:0"


def run_local(
    tables: dict[str, SeriesTable],
    input_dir: Path,
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
    launcher: ContainerLauncher,
) -> dict[str, TaskOutcome]:
    """Run each subject's task in the image here (at most ``n_procs`` at once, the
    processors shared between them) and wait; the outcome of each subject that ran."""
    root = work_dir / LOCAL_DIR
    todo, digests = plan_tasks(
        tables, input_dir, output_dir, root, cfg, launcher.info.digest or launcher.image
    )
    skipped = sorted(set(tables) - set(todo))
    if skipped:
        LOG.info("already finished, not run again: %s", ", ".join(skipped))
    if not todo:
        return {}
    n_procs = cfg.execution.n_procs or os.cpu_count() or 1
    if cfg.execution.plugin == "Linear":
        n_procs = 1
    at_once = max(1, min(len(todo), n_procs))
    common = task_arguments(input_dir, output_dir, root, max(1, n_procs // at_once))
    common += ["--mem-gb", f"{_memory_gb(cfg) / at_once:.3f}"]  # the budget shared too
    waiting = list(todo)
    running: dict[str, subprocess.Popen] = {}
    outcomes: dict[str, TaskOutcome] = {}
    LOG.info("%d subject(s) in %s, %d at once", len(todo), launcher.info.tag, at_once)
    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                label = waiting.pop(0)
                log = root / "logs" / f"anatprep-sub-{label}.out"
                python = launcher.python(str(work_dir), name=_name(label))
                with open(log, "wb") as out:
                    running[label] = subprocess.Popen(
                        [*python, *common, *subject_arguments(root, label)],
                        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        start_new_session=True, preexec_fn=die_with_parent,
                    )  # fmt: skip
            for label, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[label]
                outcome = TaskOutcome(
                    job=f"sub-{label}",
                    what=f"container task sub-{label}",
                    state="COMPLETED" if code == 0 else "FAILED",
                    exit_code=_exit_code(code),
                    reason=f"{launcher.engine} exit {code}" if code else "",
                    log=str(root / "logs" / f"anatprep-sub-{label}.out"),
                    work_dir=str(root / label),
                )
                if outcome.completed:
                    mark_done(root, label, digests[label])
                outcomes[label] = outcome
            time.sleep(0.5)
    except BaseException:
        LOG.error("interrupted: ending %d container task(s)", len(running))
        _end(running, launcher)
        raise
    return outcomes


def _name(label: str) -> str:
    """A task's container name (podman / docker): unique to this run and subject."""
    return f"anatprep-{os.getpid()}-sub-{label}"


def _end(running: dict[str, subprocess.Popen], launcher: ContainerLauncher) -> None:
    """SIGTERM each task's session (the engines pass it on to the container), then SIGKILL
    after a grace period and remove a container that outlived its client."""
    for proc in running.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_S
    for label, proc in running.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            launcher.remove(_name(label))
