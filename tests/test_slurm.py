"""Per-subject job arrays on a real SLURM (slurmctld + slurmd + munge on localhost).

``tests/slurm/up.sh`` brings the cluster up (``.ci/run`` calls it); the tests skip when it
cannot start, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipelines.demo import build_demo_study
from pipelines.slurm.client import SlurmClient, slurm_available

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm():
    if not slurm_available():
        res = subprocess.run(["bash", str(REPO / "tests" / "slurm" / "up.sh")], text=True,
                             capture_output=True)  # fmt: skip
        if res.returncode != 0 or not slurm_available():
            why = f"SLURM could not start: {res.stderr.strip()[-300:]}"
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(why)
            pytest.skip(why)
    return SlurmClient(outage_s=30)


@pytest.fixture(scope="module")
def demo_dicom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slurm_demo")
    build_demo_study(root / "dicom", root / "truth")
    return root / "dicom"


def _config(path: Path, plugin: str, extra: str = "") -> Path:
    path.write_text(
        "brain_extraction:\n  quality: fast\n"
        f"execution:\n  plugin: {plugin}\n  n_procs: 2\n"
        "  slurm:\n    cpus_per_task: 1\n    mem_gb: 3\n    poll_seconds: 1\n"
        "    outage_seconds: 240\n" + extra
    )
    return path


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", *map(str, args)],
        capture_output=True, text=True, timeout=1800, cwd=REPO, **kwargs,
    )  # fmt: skip


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_array_outputs_equal_multiproc(slurm, demo_dicom, tmp_path):
    """Same input and config: the job array's BIDS tree is byte-identical to MultiProc's;
    a re-run resubmits nothing."""
    multi = _run([demo_dicom, tmp_path / "multi", "--config",
                  _config(tmp_path / "m.yaml", "MultiProc")])  # fmt: skip
    assert multi.returncode == 0, multi.stderr
    cfg = _config(tmp_path / "a.yaml", "SLURMArray")
    array = _run([demo_dicom, tmp_path / "array", "--config", cfg])
    assert array.returncode == 0, array.stderr
    assert "submitted array" in array.stderr
    assert _tree(tmp_path / "array") == _tree(tmp_path / "multi")
    logs = sorted((tmp_path / "array.work" / "slurm" / "logs").glob("anatprep-*_*.out"))
    assert len(logs) == 2 and "anatprep: subject 01" in logs[0].read_text()
    again = _run([demo_dicom, tmp_path / "array", "--config", cfg])
    assert again.returncode == 0 and "not resubmitted: 01, 02" in again.stderr


def _wait_running(client: SlurmClient, n: int, timeout: float = 120) -> list[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-o", "%i"],
                             capture_output=True, text=True).stdout.split()  # fmt: skip
        if len(out) >= n:
            return sorted(out)
        time.sleep(1)
    raise AssertionError(f"{n} running task(s) expected within {timeout} s")


def test_killed_task_fails_its_subject_only_and_rerun_resumes(slurm, demo_dicom, tmp_path):
    """scancel of one task mid-run: that subject fails with the job id and SLURM's state in
    its crash report, the other completes, exit 4; the re-run submits only the killed one."""
    cfg = _config(tmp_path / "a.yaml", "SLURMArray")
    out = tmp_path / "out"
    head = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", str(demo_dicom), str(out),
         "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    running = _wait_running(slurm, 2)
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
    again = _run([demo_dicom, out, "--config", cfg])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "not resubmitted: 01" in again.stderr and "submitted array" in again.stderr


def test_controller_outage_during_run(slurm, demo_dicom, tmp_path):
    """slurmctld stopped for 60 s while the array runs: the head retries and finishes."""
    cfg = _config(tmp_path / "a.yaml", "SLURMArray")
    head = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", str(demo_dicom), str(tmp_path / "out"),
         "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    _wait_running(slurm, 1)
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
