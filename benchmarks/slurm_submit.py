"""Job-array submission at scale: N cheap synthetic subjects through ``SLURMArray``.

Writes N tiny DICOM subjects (a 16-slice 32x32 series each) and, against the local SLURM
(``tests/slurm/up.sh``), measures:

* the user's submission time: ``anatprep run`` started as a fresh process (imports, config,
  subject discovery, task files, one ``sbatch --array``) until it logs the submitted array;
  that process is then interrupted, which cancels the array;
* the real ``run_array`` in this process (conversion only, brain extraction off): the
  ``sbatch`` call's time, the scheduler queries per poll while waiting, the total wall time
  and the subjects' outcomes.

    python benchmarks/slurm_submit.py [--subjects 100]
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anatprep.interfaces.dicomio.index import index_tree  # noqa: E402
from anatprep.interfaces.dicomio.table import SeriesTable  # noqa: E402
from anatprep.pipelines.config import validate_config  # noqa: E402
from anatprep.pipelines.slurm import array  # noqa: E402
from anatprep.pipelines.slurm.client import SlurmClient, slurm_available  # noqa: E402
from anatprep.pipelines.synthetic import write_series  # noqa: E402


def _cli_submission_s(src: Path, out: Path, cfg_file: Path) -> float:
    """Seconds from starting ``anatprep run`` until it reports the submitted array."""
    start = time.perf_counter()
    head = subprocess.Popen(
        [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(src), str(out), "--config",
         str(cfg_file)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO,
    )  # fmt: skip
    assert head.stderr is not None
    elapsed = float("nan")
    for line in head.stderr:
        if "submitted array" in line:
            elapsed = time.perf_counter() - start
            break
    head.send_signal(signal.SIGINT)  # the head cancels its array
    head.communicate(timeout=120)
    return elapsed


class _TimedClient(SlurmClient):
    submit_s = 0.0

    def sbatch(self, args, script):
        start = time.perf_counter()
        try:
            return super().sbatch(args, script)
        finally:
            self.submit_s = time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100)
    args = parser.parse_args()
    if not slurm_available():
        print("no SLURM controller answers: run tests/slurm/up.sh first", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for k in range(args.subjects):
            volume = rng.integers(0, 1000, (32, 32, 16)).astype(np.int16)
            write_series(volume, np.diag([2.0, 2.0, 3.0, 1.0]), tmp / "in" / f"s{k:03d}",
                         meta={"SeriesDescription": "t1_mprage", "PatientID": f"X{k}"},
                         study_key=f"st{k}")  # fmt: skip
        labels = [f"s{k:03d}" for k in range(args.subjects)]
        cfg_file = tmp / "cfg.yaml"
        cfg_file.write_text(
            "brain_extraction: {enabled: false}\n"
            "execution: {plugin: SLURMArray, slurm: {cpus_per_task: 1, mem_gb: 1}}\n"
        )
        cli_s = _cli_submission_s(tmp / "in", tmp / "cli_out", cfg_file)
        time.sleep(5)  # let the cancelled tasks leave the node
        cfg = validate_config(
            {
                "brain_extraction": {"enabled": False},
                "execution": {"plugin": "SLURMArray",
                              "slurm": {"cpus_per_task": 1, "mem_gb": 1, "poll_seconds": 2}},
            }
        )  # fmt: skip
        client = _TimedClient(outage_s=120)
        start = time.perf_counter()
        table = index_tree(tmp / "in", folder_levels=5)
        tables = {
            label: SeriesTable(
                table.root, 0, tuple(e for e in table.series if e.folders[0] == label)
            )
            for label in labels
        }
        outcomes = array.run_array(tables, tmp / "in", tmp / "out", tmp / "work", cfg, client)
        total = time.perf_counter() - start
    states: dict[str, int] = {}
    for outcome in outcomes.values():
        states[outcome.state] = states.get(outcome.state, 0) + 1
    poll_queries = client.queries - 1  # the final scontrol read is not a poll
    print(f"subjects: {args.subjects}")
    print(f"submission, anatprep run from process start to the array submitted: {cli_s:.2f} s")
    print(f"the sbatch --array call: {client.submit_s * 1000:.0f} ms")
    print(f"polls: {client.polls}, scheduler queries while polling: {poll_queries} "
          f"({poll_queries / max(client.polls, 1):.2f} per poll)")  # fmt: skip
    print(f"total wall time: {total:.0f} s; task states: {states}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
