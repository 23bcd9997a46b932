"""Per-subject job arrays on a real SLURM (slurmctld + slurmd + munge on localhost).

``tests/slurm/up.sh`` brings the cluster up (``.ci/run`` calls it); the tests skip when it
cannot start, except under CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest
from conftest import run_anatprep, run_config, tree_differences

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slurm


def _start(src: Path, out: Path, cfg: Path) -> subprocess.Popen:
    """``anatprep run`` in the background (the waiting head process)."""
    return subprocess.Popen(
        [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(src), str(out),
         "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["SLURM", "SLURMGraph", "SLURMArray"])
def test_outputs_equal_multiproc(slurm, demo_dicom, multiproc_run, tmp_path, mode):
    """Same input and config, LOGNAME unset (as under CI): each SLURM mode's BIDS tree is
    byte-identical to MultiProc's; job logs are kept under the run's log folder."""
    env = {k: v for k, v in os.environ.items() if k != "LOGNAME"}
    cfg = run_config(tmp_path / "c.yaml", mode)
    res = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg], env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    differ = tree_differences(multiproc_run, tmp_path / "out")
    assert not differ, "\n".join(differ)
    logs = tmp_path / "out.work" / ("slurm/logs" if mode == "SLURMArray" else "logs/slurm")
    names = sorted(p.name for p in logs.iterdir())
    if mode == "SLURMArray":
        assert len(names) == 2
        # each task got its subject's series table and indexed nothing itself
        for label in ("01", "02"):
            task = tmp_path / "out.work" / "slurm" / label
            assert (task / "series_table.json").is_file() and not (task / "index").exists()
        again = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg], env=env)
        assert again.returncode == 0 and "not resubmitted: 01, 02" in again.stderr
    else:  # one log per job, named by subject and node
        assert any(n.startswith("anatprep-sub-02-brain_extraction-") for n in names), names


def test_graph_mode_failing_subject(slurm, demo_dicom, tmp_path):
    """A truncated file in sub-02: under SLURMGraph its conversion job fails, its dependents
    never run, sub-01 completes; exit 4 with the crash file named."""
    src = tmp_path / "dicom"
    shutil.copytree(demo_dicom, src)
    victim = sorted((src / "sub-02").rglob("*.dcm"))[10]
    victim.write_bytes(victim.read_bytes()[:-2000])
    cfg = run_config(tmp_path / "c.yaml", "SLURMGraph", brain_extraction="enabled: false")
    res = run_anatprep([src, tmp_path / "out", "--config", cfg])
    assert res.returncode == 4, res.stdout + res.stderr
    assert "1 of 2 subject(s) complete" in res.stdout
    assert "sub-02" in res.stdout and victim.name in res.stdout
    assert re.search(r"SLURM job \d+ \(anatprep-sub-02-\w+\) ended FAILED", res.stderr)
    assert (tmp_path / "out" / "sub-01" / "anat" / "sub-01_T1w.nii.gz").is_file()


def _job_ids() -> set[str]:
    """Every job the controller knows (any state, array tasks expanded)."""
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return set(out.split())


def _wait_running(n: int, ignore: set[str], timeout: float = 120) -> list[str]:
    """The ids of ``n`` running jobs not in ``ignore`` (those there before this test's run)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-o", "%i"],
                             capture_output=True, text=True).stdout.split()  # fmt: skip
        mine = sorted(set(out) - ignore)
        if len(mine) >= n:
            return mine
        time.sleep(1)
    raise AssertionError(f"{n} running task(s) expected within {timeout} s")


def test_killed_node_job_fails_its_subject_only(slurm, demo_dicom, tmp_path):
    """Per-node jobs: scancel of sub-02's brain-extraction job mid-run ends that subject
    with a crash report naming the job and SLURM's state; sub-01 completes; exit 4. The
    re-run submits jobs for sub-02's unfinished nodes only."""
    cfg = run_config(tmp_path / "c.yaml", "SLURM")
    before = _job_ids()
    head = _start(demo_dicom, tmp_path / "out", cfg)
    end, victim = time.monotonic() + 300, None
    while victim is None and time.monotonic() < end:
        jobs = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %j"],
                              capture_output=True, text=True).stdout.split("\n")  # fmt: skip
        victim = next((j.split()[0] for j in jobs if "sub-02-brain_extraction" in j
                       and j.split()[0] not in before), None)  # fmt: skip
        time.sleep(1)
    assert victim, "sub-02's brain-extraction job never ran"
    time.sleep(3)
    subprocess.run(["scancel", victim], check=True)
    stdout, stderr = head.communicate(timeout=1800)
    assert head.returncode == 4, stdout + stderr
    assert "1 of 2 subject(s) complete" in stdout
    assert f"SLURM job {victim} ended CANCELLED" in stdout + stderr
    crashes = list((tmp_path / "out.work" / "logs").glob("crash-*brain_extraction*"))
    assert crashes and f"SLURM job {victim} ended CANCELLED" in crashes[0].read_text()
    # the re-run submits only what did not finish: sub-02's brain extraction and after
    logs = tmp_path / "out.work" / "logs" / "slurm"
    before = {p.name for p in logs.iterdir()}
    again = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg])
    assert again.returncode == 0, again.stdout + again.stderr
    new = sorted({p.name for p in logs.iterdir()} - before)
    assert new and all(n.startswith("anatprep-sub-02-") for n in new), new
    assert any("brain_extraction" in n for n in new), new


def test_killed_task_fails_its_subject_only_and_rerun_resumes(slurm, demo_dicom, tmp_path):
    """scancel of one task mid-run: that subject fails with the job id and SLURM's state in
    its crash report, the other completes, exit 4; the re-run submits only the killed one."""
    cfg = run_config(tmp_path / "a.yaml", "SLURMArray")
    out = tmp_path / "out"
    before = _job_ids()
    head = _start(demo_dicom, out, cfg)
    running = _wait_running(2, before)
    victim = running[-1]  # task 1: sub-02
    time.sleep(5)
    subprocess.run(["scancel", victim], check=True)
    stdout, stderr = head.communicate(timeout=1800)
    assert head.returncode == 4, stdout + stderr
    assert "1 of 2 subject(s) complete" in stdout
    assert "sub-02" in stdout and "CANCELLED" in stdout
    crash = (tmp_path / "out.work" / "logs" / "crash-slurm-sub-02.txt").read_text()
    assert f"SLURM job id: {victim}" in crash and "State: CANCELLED" in crash
    assert (out / "derivatives" / "anatprep" / "sub-01" / "anat").is_dir()
    again = run_anatprep([demo_dicom, out, "--config", cfg])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "not resubmitted: 01" in again.stderr and "submitted array" in again.stderr


def test_controller_outage_during_run(slurm, demo_dicom, tmp_path):
    """slurmctld stopped for 60 s while the array runs: the head retries and finishes."""
    cfg = run_config(tmp_path / "a.yaml", "SLURMArray")
    before = _job_ids()
    head = _start(demo_dicom, tmp_path / "out", cfg)
    _wait_running(1, before)
    subprocess.run(["pkill", "-x", "slurmctld"], check=True)
    restart = threading.Timer(60, lambda: subprocess.run(["/usr/sbin/slurmctld"]))
    restart.start()
    try:
        stdout, stderr = head.communicate(timeout=1800)
    finally:
        restart.join()
    assert head.returncode == 0, stdout + stderr
    assert "retrying" in stderr
    assert "2 of 2 subject(s) complete" in stdout


def test_interrupted_run_cancels_its_jobs(slurm, demo_dicom, tmp_path):
    """Ctrl-C on the waiting process: it cancels its own job array before exiting."""
    cfg = run_config(tmp_path / "a.yaml", "SLURMArray")
    before = _job_ids()
    head = _start(demo_dicom, tmp_path / "out", cfg)
    running = _wait_running(2, before)
    head.send_signal(signal.SIGINT)
    _, stderr = head.communicate(timeout=120)
    assert head.returncode != 0
    assert "cancelling job array" in stderr
    end = time.monotonic() + 30
    while time.monotonic() < end and slurm.states(running):
        time.sleep(1)
    assert not slurm.states(running), "jobs still queued after the interrupt"


def test_array_rerun_resubmits_a_subject_whose_input_changed(slurm, demo_dicom, tmp_path):
    """A finished subject is resubmitted when its DICOM files are edited in place (its
    series table changes with their fingerprints); the unchanged one is not."""
    src = tmp_path / "dicom"
    shutil.copytree(demo_dicom, src)
    cfg = run_config(tmp_path / "c.yaml", "SLURMArray", brain_extraction="enabled: false")
    first = run_anatprep([src, tmp_path / "out", "--config", cfg])
    assert first.returncode == 0, first.stdout + first.stderr
    for path in (src / "sub-01").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.RepetitionTime = "1234"
        ds.save_as(path)
    again = run_anatprep([src, tmp_path / "out", "--config", cfg])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "not resubmitted: 02" in again.stderr and "submitted array" in again.stderr
    (sidecar,) = (tmp_path / "out" / "sub-01").rglob("*_T1w.json")
    assert json.loads(sidecar.read_text())["RepetitionTime"] == 1.234
