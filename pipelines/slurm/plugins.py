"""nipype's two SLURM plugins, made robust (per-node jobs: ``SLURM``; the whole graph
submitted with dependencies: ``SLURMGraph``).

What nipype 1.11's plugins get wrong, and what these subclasses do instead:

* ``LOGNAME`` unset -> KeyError: job names are ``anatprep-<subject>-<node>`` and never read it.
* sbatch/squeue errors swallowed or fatal: every call goes through :class:`SlurmClient`
  (retries with backoff over a controller outage, clear error after ``outage_seconds``).
* one ``squeue`` per job per poll: one query per poll for all jobs.
* a job killed by scancel, time limit or OOM: nipype waits for a result file that never
  comes, then fails with a TypeError; here the job's end is read from SLURM and becomes the
  node's crash report (job id, state, reason, log file).
* SLURMGraph: crashes without ``plugin_args`` and returns before the jobs run; here it
  waits for every job, writes a crash report for each job that ended without one, and
  raises when any node failed, like the other plugins.
* nothing cancelled on abort: on any exception or Ctrl-C the plugin cancels its own jobs.
* job logs: under ``log_dir`` (the run's log folder), one per job, kept.
* ``python`` (ours): the command that runs a node's script, e.g. the image's Python with
  ``execution.container`` (default: this process's interpreter).

Overrides and calls private methods of nipype's plugins: setup.cfg allows only the nipype
minor version they are written for, and ``tests/test_nipype_overrides.py`` records their
signatures.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
import time
from glob import glob
from pathlib import Path

from nipype.pipeline.plugins.base import create_pyscript, report_crash
from nipype.pipeline.plugins.slurm import SLURMPlugin
from nipype.pipeline.plugins.slurmgraph import SLURMGraphPlugin, node_completed_status

from ..config import SlurmConfig
from .client import SlurmClient, SlurmError

#: outage and poll defaults when the plugins are used without our config (one source)
_DEFAULTS = SlurmConfig()

LOG = logging.getLogger("anatprep.slurm")

#: plugin_args of ours (everything else goes to nipype's plugin)
_OWN_ARGS = ("outage_seconds", "log_dir", "job_prefix", "poll_seconds", "python")


def job_name(prefix: str, node) -> str:
    """``<prefix>-<subject>-<node>``: the subject from the node's workflow path."""
    match = re.search(r"sub_([A-Za-z0-9]+)", node._hierarchy or "")
    subject = f"sub-{match.group(1)}" if match else "all"
    return f"{prefix}-{subject}-{node._id}"[:120]


def _split_args(plugin_args: dict | None) -> tuple[dict, dict]:
    args = dict(plugin_args or {})
    own = {k: args.pop(k) for k in _OWN_ARGS if k in args}
    return own, args


def _sbatch_list(*parts: str | None) -> list[str]:
    return [item for part in parts if part for item in shlex.split(part)]


def _ended(job: str, state) -> str:
    """The crash-report line of a job that ended without a result."""
    what = f"{state.state} ({state.reason}, exit {state.exit_code})" if state else "unknown"
    return f"SLURM job {job} ended {what} without a result"


class _OwnJobs:
    """What both plugins share: our plugin_args, the SLURM client, job names and logs."""

    def _take_own_args(self, plugin_args: dict | None) -> dict:
        """Set up from our plugin_args; the rest, for nipype's plugin."""
        own, args = _split_args(plugin_args)
        self._client = SlurmClient(
            outage_s=float(own.get("outage_seconds", _DEFAULTS.outage_seconds))
        )
        self._log_dir = own.get("log_dir")
        self._prefix = own.get("job_prefix", "anatprep")
        # SLURMGraph's own wait loop
        self._poll_s = float(own.get("poll_seconds", _DEFAULTS.poll_seconds))
        python = own.get("python") or [sys.executable]
        self._python = shlex.split(python) if isinstance(python, str) else list(python)
        return args

    def _run_line(self, pyscript: str) -> str:
        """The job script's command: the node's script run by our Python."""
        return shlex.join([*self._python, pyscript])

    def _job_args(self, node, script_dir: str, *sbatch_args: str | None) -> list[str]:
        """sbatch arguments: the user's, then the job name and its log file."""
        name = job_name(self._prefix, node)
        log = os.path.join(self._log_dir or script_dir, f"{name}-%j.out")
        return [*_sbatch_list(*sbatch_args), "-J", name, "-o", log]


class SlurmNodesPlugin(_OwnJobs, SLURMPlugin):
    """One SLURM job per node (nipype's ``SLURM`` plugin with the fixes above)."""

    def __init__(self, **kwargs):
        kwargs["plugin_args"] = self._take_own_args(kwargs.get("plugin_args"))
        self._snapshot: dict = {}
        self._snapshot_at = -1e9
        super().__init__(**kwargs)

    def _queued(self) -> dict:
        """This poll's squeue answer for all our jobs (at most one query a second)."""
        now = time.monotonic()
        if now - self._snapshot_at > 1.0:
            ids = [str(t) for t in self._pending]
            self._snapshot = self._client.states(ids) if ids else {}
            self._snapshot_at = now
        return self._snapshot

    def _is_pending(self, taskid) -> bool:
        state = self._queued().get(str(taskid))
        return state is not None and not state.final

    def _submit_job(self, node, updatehash=False):
        """nipype's job script, its Python command ours (:meth:`_run_line`)."""
        pyscript = create_pyscript(node, updatehash=updatehash)
        script = Path(pyscript).with_name(f"batchscript_{Path(pyscript).stem}.sh")
        script.write_text(f"{self._template.rstrip()}\n{self._run_line(pyscript)}\n")
        return self._submit_batchtask(str(script), node)

    def _submit_batchtask(self, scriptfile, node):
        args = self._job_args(
            node,
            os.path.dirname(scriptfile),
            self._sbatch_args,
            node.plugin_args.get("sbatch_args"),
        )
        taskid = int(self._client.sbatch(args, scriptfile))
        self._pending[taskid] = node.output_dir()
        self._snapshot_at = -1e9  # the next poll includes the new job
        LOG.debug("submitted %s as job %s", job_name(self._prefix, node), taskid)
        return taskid

    def _get_result(self, taskid):
        if self._is_pending(taskid):
            return None
        node_dir = self._pending[taskid]
        for _ in range(5):  # a finished job's files may take a moment on shared storage
            if glob(os.path.join(node_dir, "result_*.pklz")):
                return super()._get_result(taskid)
            time.sleep(1)
        state = self._client.final_states(str(taskid)).get(str(taskid))
        message = f"{_ended(str(taskid), state)} (log: {self._log_dir or node_dir})\n"
        # a list: nipype's report_crash appends lines to it
        return {"result": None, "traceback": [message], "hostname": "unknown"}

    def run(self, graph, config, updatehash=False):
        try:
            return super().run(graph, config, updatehash=updatehash)
        except BaseException:
            try:
                active = [str(t) for t in self._pending if self._is_pending(t)]
            except SlurmError:  # the controller does not answer: cancel all of ours
                active = [str(t) for t in self._pending]
            if active:
                LOG.error("cancelling %d job(s): %s", len(active), ", ".join(active))
                self._client.cancel(active)
            raise


class SlurmGraphSubmitPlugin(_OwnJobs, SLURMGraphPlugin):
    """The whole graph submitted at once with ``afterok`` dependencies, then waited for
    (nipype's ``SLURMGraph`` plugin with the fixes above)."""

    def __init__(self, **kwargs):
        args = self._take_own_args(kwargs.get("plugin_args"))
        resubmit = args.pop("dont_resubmit_completed_jobs", True)
        super().__init__(plugin_args=args)
        self._dont_resubmit_completed_jobs = bool(resubmit)

    def _submit_graph(self, pyfiles, dependencies, nodes):
        done = {
            idx: self._dont_resubmit_completed_jobs and node_completed_status(node)
            for idx, node in enumerate(nodes)
        }
        jobs: dict[int, str] = {}
        try:
            for idx, pyscript in enumerate(pyfiles):
                if done[idx] and all(done[d] for d in dependencies.get(idx, [])):
                    continue
                after = [jobs[d] for d in dependencies.get(idx, []) if d in jobs]
                jobs[idx] = self._submit_one(nodes[idx], pyscript, after)
            LOG.info("submitted %d job(s) with dependencies", len(jobs))
            while any(not s.final for s in self._client.states(list(jobs.values())).values()):
                time.sleep(self._poll_s)
        except BaseException:
            LOG.error("cancelling %d job(s)", len(jobs))
            self._client.cancel(list(jobs.values()))
            raise
        failed = self._report_failures(nodes, jobs)
        if failed:
            raise RuntimeError(f"{failed} node job(s) failed; see the crash files")

    def _submit_one(self, node, pyscript: str, after: list[str]) -> str:
        template, sbatch_args = self._get_args(node, ["template", "sbatch_args"])
        script = Path(pyscript).with_suffix(".sh")
        script.write_text(f"{template}\n{self._run_line(pyscript)}\n")
        args = self._job_args(node, str(script.parent), sbatch_args)
        if after:
            args += [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"]
        return self._client.sbatch(args, str(script))

    def _report_failures(self, nodes, jobs: dict[int, str]) -> int:
        """A crash report for each job that failed without writing one; the count of
        failed nodes (their dependents, cancelled by SLURM, are not counted)."""
        failed = 0
        for idx, job in jobs.items():
            state = self._client.final_states(job).get(job)
            if state is None or state.state == "COMPLETED":
                continue
            if state.state == "CANCELLED" and "Dependency" in state.reason:
                continue  # not run: an upstream node failed
            failed += 1
            node = nodes[idx]
            LOG.error(
                "SLURM job %s (%s) ended %s (%s, exit %s)",
                job, job_name(self._prefix, node), state.state, state.reason, state.exit_code,
            )  # fmt: skip
            crash_dir = self._config["execution"].get("crashdump_dir") or os.getcwd()
            wrote_own = any(node._id in p for p in glob(os.path.join(crash_dir, "crash-*")))
            if not wrote_own:
                report_crash(node, traceback=[f"{_ended(job, state)}\n"])
        return failed
