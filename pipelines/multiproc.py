"""nipype's MultiProc plugin, with the nodes that need no worker settled at once.

nipype's scheduler loop hands out at most one batch of jobs per poll (``poll_sleep_duration``,
2 s), and a cached node takes a processor slot of that batch like a real job.  A rerun
where almost everything is cached therefore advances a couple of nodes every 2 s: 43 s for
20 unchanged subjects without brain extraction.  Here, before each batch, every ready node
that is cached (its hash matches its work dir) or runs in this process
(``run_without_submitting``: the sinks) is settled immediately, level after level, until
only real work remains; that work is scheduled by nipype as before (same resources, same
order), so a first run is unchanged and a no-op rerun takes one pass.

A worker's job always reports back.  nipype's ``run_node`` reads the node's result file after
a failure; when that file could not be written (a full work disk), the read raises in the
worker, nipype's done-callback raises in turn, the job is never marked finished and the run
waits forever.  Here the worker catches that second failure as well, and a future that ends
in an exception (a pickling error, a worker that died) still records a failed result for its
job, so the node fails with the reason and the run ends.  A crash file that cannot be
written either (the same full disk) is kept in :attr:`SettlingMultiProcPlugin.unwritten_crashes`
so the run still names the failed node and its error.

Overrides and calls private methods of nipype's plugins: setup.cfg allows only the nipype
minor version they are written for, and ``tests/test_nipype_overrides.py`` records their
signatures.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from traceback import format_exception

import numpy as np
from nipype.pipeline.engine import MapNode
from nipype.pipeline.plugins.multiproc import MultiProcPlugin


def run_node(node, updatehash: bool, taskid: int) -> dict:
    """nipype's ``run_node`` that never raises: a node whose result cannot be read back
    (nothing could be written) fails with both errors in its traceback."""
    result: dict = {"result": None, "traceback": None, "taskid": taskid}
    try:
        result["result"] = node.run(updatehash=updatehash)
    except BaseException:
        result["traceback"] = format_exception(*sys.exc_info())
        try:
            result["result"] = node.result
        except BaseException:  # the cause stays last: it is the error the run reports
            result["traceback"] = format_exception(*sys.exc_info()) + result["traceback"]
    return result


@dataclass(frozen=True)
class UnwrittenCrash:
    """A failed node whose crash file could not be written."""

    node: str  #: the node's full name (``anatprep_wf.sub_01_wf....``)
    message: str  #: its last error line, and why the crash file is missing


class SettlingMultiProcPlugin(MultiProcPlugin):
    """MultiProc that settles cached and in-process nodes without waiting for a poll."""

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        self.unwritten_crashes: list[UnwrittenCrash] = []

    def _report_crash(self, node, result=None):
        # where nipype's report_crash writes (the same default)
        crash_dir = Path(self._config["execution"].get("crashdump_dir") or os.getcwd())
        before = set(os.listdir(crash_dir)) if crash_dir.is_dir() else set()
        try:
            return super()._report_crash(node, result=result)
        except OSError as exc:
            if crash_dir.is_dir():  # the crash file begun and not finished
                for name in set(os.listdir(crash_dir)) - before:
                    (crash_dir / name).unlink(missing_ok=True)
            text = "".join((result or {}).get("traceback") or [])
            errors = [ln.strip() for ln in text.splitlines() if "Error" in ln or "Exception" in ln]
            last = errors[-1] if errors else "unknown error"
            self.unwritten_crashes.append(
                UnwrittenCrash(
                    node.fullname, f"{last} (crash file not written: {exc.strerror or exc})"
                )
            )
            return None

    def _submit_job(self, node, updatehash=False):
        self._taskid += 1
        if getattr(node.interface, "terminal_output", "") == "stream":
            node.interface.terminal_output = "allatonce"  # as nipype: no streaming
        future = self.pool.submit(run_node, node, updatehash, self._taskid)
        # known before the callback can run (at once, for a future already done): a future
        # that raised is matched to its task through it
        self._task_obj[self._taskid] = future
        future.add_done_callback(self._async_callback)
        return self._taskid

    def _async_callback(self, args):
        try:
            result = args.result()
        except BaseException:
            taskid = next((t for t, f in self._task_obj.items() if f is args), None)
            if taskid is None:
                raise
            result = {"result": None, "traceback": format_exception(*sys.exc_info()),
                      "taskid": taskid}  # fmt: skip
        self._taskresult[result["taskid"]] = result

    def _send_procs_to_workers(self, updatehash=False, graph=None):
        self._settle_quick_jobs(graph, updatehash)
        super()._send_procs_to_workers(updatehash=updatehash, graph=graph)

    def _settle_quick_jobs(self, graph, updatehash: bool) -> None:
        progress = True
        while progress:
            progress = False
            ready = np.nonzero(~self.proc_done & (self.depidx.sum(0) == 0))[1]
            for jobid in ready:
                node = self.procs[jobid]
                if isinstance(node, MapNode):
                    continue  # nipype expands map nodes itself
                self.proc_done[jobid] = True
                self.proc_pending[jobid] = True
                if node.run_without_submitting:
                    self._run_here(jobid, graph, updatehash)
                elif not self._local_hash_check(jobid, graph):
                    self.proc_done[jobid] = False  # real work: nipype schedules it
                    self.proc_pending[jobid] = False
                    continue
                progress = True

    def _run_here(self, jobid: int, graph, updatehash: bool) -> None:
        """What nipype does for a ``run_without_submitting`` node, without the slot."""
        try:
            self.procs[jobid].run(updatehash=updatehash)
        except Exception:
            traceback = format_exception(*sys.exc_info())
            self._run_errors.append(traceback)
            self._clean_queue(jobid, graph, result={"result": None, "traceback": traceback})
        self._task_finished_cb(jobid)
        self._remove_node_dirs()
