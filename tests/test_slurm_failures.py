"""A cluster that fails the work ends in exit 4 naming what failed, never an internal error
(issue 22, item 4): sbatch refusing a flag (SLURM ``plugin_args.sbatch_args``, SLURMArray
``slurm.extra_args``) and a controller that stays silent past ``outage_seconds`` (SLURM,
SLURMGraph, SLURMArray).

The silent controller is simulated for this run only: the SLURM commands on its PATH
answer as SLURM's do when slurmctld is down (all of them from the start, or all but
``sbatch`` and ``scancel`` once the jobs are in).  The shared controller itself is never
stopped (other runs on this machine use it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anatprep.pipelines.synthetic import write_series

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.pipeline]

DOWN = """#!/bin/sh
echo "$(basename "$0"): error: Unable to contact slurm controller (connect failure)" >&2
exit 1
"""


def _study(root: Path) -> Path:
    for subject in ("s1", "s2"):
        write_series(np.full((16, 16, 6), 300.0), np.eye(4), root / subject / "t1",
                     study_key=subject)  # fmt: skip
    return root


def _run(tmp_path: Path, execution: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"brain_extraction: {{enabled: false}}\nexecution:\n{execution}")
    cmd = [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(_study(tmp_path / "in")),
           str(tmp_path / "out"), "--config", str(cfg)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


def _cluster_failed(res: subprocess.CompletedProcess, *named: str) -> None:
    """Exit 4, each subject failed, the account naming what the cluster said."""
    text = res.stdout + res.stderr
    assert res.returncode == 4, text
    assert "Traceback" not in text and "internal error" not in text, text
    assert "0 of 2 subject(s) complete" in res.stdout, text
    for subject in ("sub-s1", "sub-s2"):
        assert f"FAILED {subject}: " in res.stdout, text
    for words in named:
        assert words in res.stdout, text


def test_bogus_sbatch_flag_under_slurm(slurm, tmp_path):
    res = _run(tmp_path, "  plugin: SLURM\n  plugin_args: {sbatch_args: '--bogus-flag'}\n")
    _cluster_failed(res, "the SLURM cluster failed the work: sbatch --parsable failed: ",
                    "--bogus-flag")  # fmt: skip


def test_bogus_extra_args_under_slurm_array(slurm, tmp_path):
    res = _run(tmp_path, "  plugin: SLURMArray\n  slurm: {extra_args: [--bogus]}\n")
    _cluster_failed(res, "the SLURM cluster failed the work: sbatch --parsable failed: ",
                    "--bogus")  # fmt: skip


#: the commands that find the controller silent: from the start (nothing is submitted), or
#: once the jobs are in (the real sbatch submits, the real scancel cancels them)
SILENT = {"from the start": ("sbatch", "squeue", "scontrol", "sacct"),
          "while polling": ("squeue", "scontrol", "sacct")}  # fmt: skip


@pytest.mark.parametrize("when", list(SILENT))
@pytest.mark.parametrize("plugin", ["SLURM", "SLURMGraph", "SLURMArray"])
def test_controller_silent_past_outage_seconds(slurm, tmp_path, plugin, when):
    shims = tmp_path / "down"
    shims.mkdir()
    for name in SILENT[when]:
        (shims / name).write_text(DOWN)
        (shims / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    execution = f"  plugin: {plugin}\n  slurm: {{outage_seconds: 4, poll_seconds: 1}}\n"
    res = _run(tmp_path, execution, env)
    _cluster_failed(res, "Unable to contact slurm controller")
    assert "retrying in" in res.stderr
