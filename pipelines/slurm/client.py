"""The SLURM commands, made robust to what real clusters do.

* Every command is retried with exponential backoff while the controller does not answer
  (down, restarting, busy): ``outage_s`` bounds the total wait, after which
  :class:`SlurmError` names the command and SLURM's last message.
* Polling asks once per poll for all jobs (``squeue -r -j a,b,c``); finished jobs are looked
  up with ``scontrol show job`` (else ``sacct``), which gives each array task's final state,
  exit code and reason (CANCELLED, TIMEOUT, OUT_OF_MEMORY, FAILED ...).
* ``queries`` counts scheduler queries and ``polls`` the polls, for the benchmark.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass

LOG = logging.getLogger("anatprep.slurm")

#: states after which a job never runs again
FINAL = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED",
}  # fmt: skip


class SlurmError(RuntimeError):
    """A SLURM command failed for good (the message says which and why)."""


@dataclass
class JobState:
    job_id: str
    state: str
    exit_code: str = ""
    reason: str = ""

    @property
    def final(self) -> bool:
        return self.state in FINAL


def slurm_available(timeout_s: float = 5.0) -> bool:
    """A controller answers on this machine (a short probe: ``sinfo`` hangs ~10 s when the
    controller is down)."""
    if shutil.which("sinfo") is None:
        return False
    try:
        res = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0 and bool(res.stdout.strip())


class SlurmClient:
    def __init__(self, outage_s: float, first_backoff_s: float = 1.0):
        self.outage_s = outage_s
        self.first_backoff_s = first_backoff_s
        self.queries = 0
        self.polls = 0

    def _run(self, argv: list[str], query: bool = False) -> str:
        """stdout of ``argv``, retried with backoff while SLURM does not answer."""
        deadline = time.monotonic() + self.outage_s
        delay = self.first_backoff_s
        while True:
            if query:
                self.queries += 1
            try:
                res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                message = (res.stderr or res.stdout).strip()
                if res.returncode == 0:
                    return res.stdout
            except subprocess.TimeoutExpired:
                message = "no answer within 60 s"
            if not _transient(message) or time.monotonic() + delay > deadline:
                raise SlurmError(f"{' '.join(argv[:2])} failed: {message}")
            LOG.warning("%s: %s; retrying in %.0f s", argv[0], message, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def sbatch(self, args: list[str], script: str) -> str:
        """Submit ``script`` (path) with ``args``; the job id."""
        out = self._run(["sbatch", "--parsable", *args, script])
        return out.strip().split(";")[0]

    def cancel(self, job_ids: list[str]) -> None:
        if job_ids:
            try:
                self._run(["scancel", *job_ids])
            except SlurmError as exc:
                LOG.error("could not cancel jobs %s: %s", ", ".join(job_ids), exc)

    def states(self, job_ids: list[str]) -> dict[str, JobState]:
        """State of every job (array tasks as ``<id>_<task>``), one squeue for all; jobs no
        longer queued come from the completion log."""
        found: dict[str, JobState] = {}
        if not job_ids:
            return found
        self.polls += 1
        try:
            out = self._run(
                ["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%i|%T|%r"], query=True
            )
        except SlurmError as exc:
            if "invalid job id" not in str(exc).lower():
                raise
            out = ""  # every job has left the controller's memory (older than MinJobAge)
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3:
                found[parts[0]] = JobState(parts[0], parts[1], "", parts[2])
        return found

    def final_states(self, job_id: str) -> dict[str, JobState]:
        """State, exit code and reason of each task of job ``job_id`` (keys ``<id>_<task>``
        for arrays), from ``scontrol`` (the controller keeps finished jobs ``MinJobAge``
        seconds), else from ``sacct``."""
        try:
            out = self._run(["scontrol", "show", "job", "-o", job_id], query=True)
        except SlurmError:
            out = ""
        found: dict[str, JobState] = {}
        for line in out.splitlines():
            fields = dict(
                item.split("=", 1) for item in line.split() if "=" in item and item[0].isupper()
            )
            if "JobState" not in fields:
                continue
            task = fields.get("ArrayTaskId")
            key = f"{fields.get('ArrayJobId')}_{task}" if task else fields.get("JobId", job_id)
            found[key] = JobState(
                key, fields["JobState"], fields.get("ExitCode", ""), fields.get("Reason", "")
            )
        if found:
            return found
        out = self._run(
            ["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,ExitCode"], query=True
        )
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 3 and parts[0]:
                found[parts[0]] = JobState(parts[0], parts[1].split()[0], parts[2], parts[1])
        return found


def _transient(message: str) -> bool:
    """SLURM's wording for a controller that is down, busy or restarting."""
    text = message.lower()
    return any(
        key in text
        for key in (
            "unable to contact slurm controller",
            "connection refused",
            "socket timed out",
            "slurm_persist_conn",
            "resource temporarily unavailable",
            "slurmctld is busy",
            "no answer within",
            "communication connection failure",
            "zero bytes were transmitted",
        )
    )
