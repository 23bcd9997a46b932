"""nipype's MultiProc plugin, with the nodes that need no worker settled at once.

nipype's scheduler loop hands out at most one batch of jobs per poll (``poll_sleep_duration``,
2 s), and a cached node takes a processor slot of that batch like a real job.  A rerun
where almost everything is cached therefore advances a couple of nodes every 2 s: 43 s for
20 unchanged subjects without brain extraction.  Here, before each batch, every ready node
that is cached (its hash matches its work dir) or runs in this process
(``run_without_submitting``: the sinks) is settled immediately, level after level, until
only real work remains; that work is scheduled by nipype as before (same resources, same
order), so a first run is unchanged and a no-op rerun takes one pass.
"""

from __future__ import annotations

import sys
from traceback import format_exception

import numpy as np
from nipype.pipeline.engine import MapNode
from nipype.pipeline.plugins.multiproc import MultiProcPlugin


class SettlingMultiProcPlugin(MultiProcPlugin):
    """MultiProc that settles cached and in-process nodes without waiting for a poll."""

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
