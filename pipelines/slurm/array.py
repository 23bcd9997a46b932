"""Per-subject job arrays: the batch is one ``sbatch --array``; task *k* runs subject *k*'s
task (:mod:`..subject_tasks`: its whole graph with MultiProc inside, in its own work dir
``<work>/slurm/<label>``; with ``execution.container``, in the image), and this process
waits for the array, then reports each subject's outcome.

* A subject whose task ends COMPLETED is done.  A task that exits 4 failed some nodes: their
  crash files are in the task's work dir.  Any other end (cancelled, time limit, out of
  memory, node failure, another exit code) is a failure of that subject whose crash report
  names the job id, SLURM's state and reason, and the task's log file.
* Finished subjects are remembered (:func:`..subject_tasks.plan_tasks`): a re-run submits
  only the subjects that did not finish.
* If this process is interrupted or fails while waiting, it cancels its array.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path

from anatprep.interfaces.atomic import atomic_write_bytes
from anatprep.interfaces.dicomio.table import SeriesTable

from ..config import Config
from ..subject_tasks import TaskOutcome, mark_done, plan_tasks, task_arguments
from .client import SlurmClient

LOG = logging.getLogger("anatprep.slurm")

TASK_SCRIPT = """#!/bin/bash
# anatprep job array: task k processes the k-th subject of labels.txt
set -u
label="$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {labels})"
echo "anatprep: subject $label, job ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
exec {command} \\
    --participant-label "$label" --work-dir {work}/"$label" \\
    --series-table {work}/"$label"/series_table.json
"""


def _sbatch_args(cfg: Config, n: int, log_dir: Path, job_name: str) -> list[str]:
    s = cfg.execution.slurm
    array = f"0-{n - 1}" + (f"%{s.throttle}" if s.throttle else "")
    args = [
        f"--array={array}",
        f"--job-name={job_name}",
        f"--cpus-per-task={s.cpus_per_task}",
        f"--mem={int(s.mem_gb * 1024)}M",
        f"--time={s.time}",
        f"--output={log_dir}/anatprep-%A_%a.out",
    ]
    if s.partition:
        args.append(f"--partition={s.partition}")
    if s.account:
        args.append(f"--account={s.account}")
    return args + list(s.extra_args)


def prepare(
    tables: dict[str, SeriesTable],
    input_dir: Path,
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
    python: list[str] | None = None,
    image_digest: str = "",
) -> tuple[Path, list[str], dict[str, str]]:
    """Write the task script, config, label list and each subject's series table
    (:func:`~..subject_tasks.plan_tasks`); return (script, labels to run, their digests).
    ``python``: the command that runs Python for a task (default: this one; with
    ``execution.container``, the image's, whose ``image_digest`` is part of each task's)."""
    root = work_dir / "slurm"
    todo, digests = plan_tasks(tables, input_dir, output_dir, root, cfg, image_digest)
    atomic_write_bytes(root / "labels.txt", "".join(f"{x}\n" for x in todo).encode())
    script = root / "task.sh"
    args = task_arguments(input_dir, output_dir, root, cfg.execution.slurm.cpus_per_task)
    text = TASK_SCRIPT.format(
        labels=shlex.quote(str(root / "labels.txt")),
        command=shlex.join([*(python or [sys.executable]), *args]),
        work=shlex.quote(str(root)),
    )
    atomic_write_bytes(script, text.encode())
    os.chmod(script, 0o755)
    return script, todo, digests


def run_array(
    tables: dict[str, SeriesTable],
    input_dir: Path,
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
    client: SlurmClient | None = None,
    python: list[str] | None = None,
    image_digest: str = "",
) -> dict[str, TaskOutcome]:
    """Submit and wait; the outcome of each subject (``tables``: its series table, by
    label) that ran; subjects finished in an earlier run are not resubmitted."""
    client = client or SlurmClient(outage_s=cfg.execution.slurm.outage_seconds)
    root = work_dir / "slurm"
    script, todo, digests = prepare(
        tables, input_dir, output_dir, work_dir, cfg, python, image_digest
    )
    skipped = sorted(set(tables) - set(todo))
    if skipped:
        LOG.info("already finished, not resubmitted: %s", ", ".join(skipped))
    if not todo:
        return {}
    job_name = f"anatprep-{output_dir.name}"[:64]
    args = _sbatch_args(cfg, len(todo), root / "logs", job_name)
    started = time.monotonic()
    job = client.sbatch(args, str(script))
    LOG.info(
        "submitted array %s (%d subject(s)) in %.1f s", job, len(todo), time.monotonic() - started
    )
    try:
        while True:
            if not client.states([job]):
                break  # no task queued or running any more
            time.sleep(cfg.execution.slurm.poll_seconds)
    except BaseException:
        LOG.error("interrupted: cancelling job array %s", job)
        client.cancel([job])
        raise
    finals = client.final_states(job)
    outcomes: dict[str, TaskOutcome] = {}
    for k, label in enumerate(todo):
        key = f"{job}_{k}"
        state = finals.get(key) or (finals.get(job) if len(todo) == 1 else None)
        outcome = TaskOutcome(
            job=key,
            what=f"SLURM job {key}",
            state=state.state if state else "UNKNOWN",
            exit_code=state.exit_code if state else "",
            reason=state.reason if state else "job not found in scontrol or sacct",
            log=str(root / "logs" / f"anatprep-{job}_{k}.out"),
            work_dir=str(root / label),
        )
        if outcome.completed:
            mark_done(root, label, digests[label])
        outcomes[label] = outcome
    return outcomes
