"""Runs that meet each other, signals and killed runs, and folders that must not overlap.

* One run per OUTPUT and per work dir: a second run exits 2 naming the holder's PID; the
  lock of a killed run is taken over (with a log line).
* SIGTERM behaves like SIGINT: the workers are ended, exit 143.  After a SIGKILL of the main
  process no worker keeps running, and the next run removes the hidden ``.part`` files of
  interrupted writes (only those) and completes.
* INPUT is never written (no OUTPUT or work dir inside it); OUTPUT and the work dir are
  separate; a relative work dir is taken from the current directory; ``convert`` refuses an
  OUTPUT it cannot write or one inside INPUT with exit 2, not a traceback.

The long-running runs skull-strip a small synthetic phantom (``quality: fast``): its brain
extraction keeps a MultiProc worker busy for several seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from anatprep.pipelines.cli import main
from anatprep.pipelines.synthetic import write_series

LOCK = ".anatprep.lock"
BE_NODE = Path("anatprep_wf", "sub_good_wf", "anat_T1w_wf", "brain_extraction")


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "anatprep.pipelines.cli", *map(str, args)]


def _run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), capture_output=True, text=True, cwd=cwd, timeout=600)


def _phantom(shape=(40, 48, 44)) -> np.ndarray:
    z = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1)[:, None, None, None] / 2
    r = np.sqrt((((z - centre) / (np.array(shape)[:, None, None, None] / 2.4)) ** 2).sum(0))
    return np.where(r < 1, 1000.0 - 300 * r, 20.0)


def _t1w_study(root: Path) -> Path:
    """One subject with a T1w series (brain extraction runs on it)."""
    write_series(
        _phantom(), np.diag([-2.0, -2.0, 2.0, 1.0]), root / "good" / "t1", series_number=2,
        meta={"SeriesDescription": "t1_mprage"}, study_key="good",
    )  # fmt: skip
    return root


def _small_study(root: Path) -> Path:
    """One subject, one small series (converted to ``extra/``; nothing to skull-strip)."""
    write_series(np.full((16, 16, 6), 300.0), np.eye(4), root / "s1" / "t1", study_key="s1")
    return root


def _config(tmp_path: Path, brain_extraction: bool) -> Path:
    cfg = tmp_path / ("be.yaml" if brain_extraction else "nobe.yaml")
    be = "{quality: fast}" if brain_extraction else "{enabled: false}"
    cfg.write_text(f"brain_extraction: {be}\nexecution: {{n_procs: 2}}\n")
    return cfg


def _live_descendants(pid: int) -> list[int]:
    """Processes below ``pid`` that are running (zombies excluded), from ``/proc``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] not in "ZX":
                parents[int(entry)] = int(fields[1])
    found: list[int] = []
    level = [pid]
    while level:
        level = [p for p, parent in parents.items() if parent in level]
        found += level
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _lock_pid(folder: Path) -> int | None:
    try:
        return json.loads((folder / LOCK).read_text()).get("pid")
    except (OSError, ValueError):
        return None


@dataclass
class Background:
    """A run in the background: its process, folders and stderr file."""

    proc: subprocess.Popen
    src: Path
    out: Path
    work: Path
    stderr: Path

    def finish(self, timeout: float = 60) -> str:
        """Wait for the end of the run; its stderr."""
        self.proc.wait(timeout=timeout)
        return self.stderr.read_text()


#: fixtures of this module whose users run ANTs (tests/conftest.py marks them)
MARKED_FIXTURES = {"skull_stripping": "ants"}


@pytest.fixture
def skull_stripping(tmp_path) -> Iterator[Background]:
    """``anatprep run`` in the background, caught while a worker skull-strips; killed at
    the end if still running."""
    src, out, work = _t1w_study(tmp_path / "in"), tmp_path / "out", tmp_path / "work"
    log = tmp_path / "first.err"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            _cli("run", src, out, "--work-dir", work, "--config", _config(tmp_path, True)),
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        _wait_for(
            lambda: (work / BE_NODE).is_dir() and _live_descendants(proc.pid),
            180, "the brain extraction worker",
        )  # fmt: skip
        yield Background(proc, src, out, work, log)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(timeout=60)


@pytest.mark.pipeline
def test_second_run_on_the_same_output_exits_2(skull_stripping, tmp_path):
    first = skull_stripping
    os.kill(first.proc.pid, signal.SIGSTOP)  # keeps its locks until the test is done
    res = _run("run", first.src, first.out, "--work-dir", tmp_path / "w2", "--config",
               _config(tmp_path, False))  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert f"OUTPUT {first.out} is in use by PID {first.proc.pid} since " in res.stderr
    assert _lock_pid(first.out) == first.proc.pid  # left alone


@pytest.mark.pipeline
def test_second_run_in_the_same_work_dir_exits_2(skull_stripping, tmp_path):
    first = skull_stripping
    os.kill(first.proc.pid, signal.SIGSTOP)
    res = _run("run", first.src, tmp_path / "out2", "--work-dir", first.work, "--config",
               _config(tmp_path, False))  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert f"work dir {first.work} is in use by PID {first.proc.pid} since " in res.stderr


def test_convert_on_an_output_in_use_exits_2(tmp_path, capsys):
    from anatprep.pipelines.runlock import hold_lock

    src, out = _small_study(tmp_path / "in"), tmp_path / "out"
    out.mkdir()
    with hold_lock(out, "OUTPUT"):  # as a run holds it
        assert main(["convert", str(src), str(out)]) == 2
    assert f"OUTPUT {out} is in use by PID {os.getpid()} since " in capsys.readouterr().err
    assert not list(out.glob("*.nii.gz"))


@pytest.mark.pipeline
def test_stale_lock_of_a_dead_run_is_taken_over(tmp_path):
    src, out, work = _small_study(tmp_path / "in"), tmp_path / "out", tmp_path / "work"
    dead = subprocess.Popen(["true"])
    dead.wait()
    for folder in (out, work):
        folder.mkdir()
        stale = {"pid": dead.pid, "host": os.uname().nodename, "since": "yesterday"}
        (folder / LOCK).write_text(json.dumps(stale))
    res = _run("run", src, out, "--work-dir", work, "--config", _config(tmp_path, False))
    assert res.returncode == 0, res.stderr
    for label, folder in (("OUTPUT", out), ("work dir", work)):
        assert f"{label} {folder}: taking over the stale lock of PID {dead.pid}" in res.stderr
        assert not (folder / LOCK).exists()  # removed at the end of the run


@pytest.mark.pipeline
def test_sigterm_ends_the_workers_and_exits_143(skull_stripping):
    run = skull_stripping
    workers = _live_descendants(run.proc.pid)
    run.proc.send_signal(signal.SIGTERM)
    err = run.finish()
    assert run.proc.returncode == 143, err
    assert "terminated by SIGTERM" in err and "BrokenProcessPool" not in err
    time.sleep(0.5)
    assert not [p for p in workers if _running(p)]


@pytest.mark.pipeline
def test_sigkill_leaves_no_worker_and_the_next_run_resumes(skull_stripping, tmp_path):
    run = skull_stripping
    workers = _live_descendants(run.proc.pid)
    run.proc.kill()
    run.finish()
    _wait_for(lambda: not [p for p in workers if _running(p)], 10, "the orphaned workers")
    res = _run("run", run.src, run.out, "--work-dir", run.work, "--config",
               _config(tmp_path, False))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"taking over the stale lock of PID {run.proc.pid}" in res.stderr
    assert (run.out / "sub-good" / "anat" / "sub-good_T1w.nii.gz").is_file()


@pytest.mark.pipeline
def test_next_run_removes_only_our_stray_part_files(tmp_path):
    """The hidden temporary files a killed run journaled go (listed); anything else stays,
    our own names that were never journaled included, and nothing below INPUT is touched
    (here INPUT is OUTPUT/sourcedata/dicom, a BIDS layout)."""
    out = tmp_path / "out"
    src = _small_study(out / "sourcedata" / "dicom")
    ours = [
        out / ".participants.tsv.k3j_x9q2.part",
        out / "sub-s1" / "extra" / ".sub-s1_acq-t1mpragesagp2iso_run-1.nii.gz.ab12cd34.part",
        out / "derivatives" / "anatprep" / "sub-s1" / ".sub-s1_desc-brain_mask.json.zz99yy88.part",
    ]
    others = [
        out / "notes.part",
        out / ".notes.part",
        out / ".sub-s1_T1w.nii.gz.short.part",
        out / "sub-s1" / "extra" / "sub-s1_T1w.nii.gz.ab12cd34.part",
        out / ".README.ab12cd34.part",  # named as ours, never journaled
        src / ".IM0001.dcm.ab12cd34.part",  # below INPUT: never written
    ]
    for path in ours + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (out / LOCK).write_text(json.dumps({"pid": 999999, "since": "earlier"}) + "\n")
    (out / ".anatprep.parts").write_text("".join(f"{p}\n" for p in [*ours, others[-1]]))
    res = _run("run", src, out, "--work-dir", tmp_path / "work", "--config",
               _config(tmp_path, False))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"OUTPUT {out}: removed 3 temporary file(s) an interrupted run left: " in res.stderr
    assert not [p for p in ours if p.exists()]
    assert all(p.read_text() == "x" for p in others)


def test_work_dir_inside_input_refused(tmp_path, capsys):
    src = _small_study(tmp_path / "in")
    work = src / "work"
    assert main(["run", str(src), str(tmp_path / "out"), "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err
    assert f"work dir {work} must not be inside INPUT {src}" in err
    assert not work.exists()


@pytest.mark.pipeline
def test_relative_work_dir_is_taken_from_the_current_directory(tmp_path, monkeypatch, capsys):
    src, cfg = _small_study(tmp_path / "in"), _config(tmp_path, False)
    monkeypatch.chdir(tmp_path)
    # relative and inside INPUT: refused like an absolute one, before anything is written
    assert main(["run", "in", "out", "--work-dir", "in/work", "--config", str(cfg)]) == 2
    assert f"work dir {src / 'work'} must not be inside INPUT" in capsys.readouterr().err
    assert not (src / "work").exists()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    args = ["run", str(src), str(tmp_path / "out"), "--work-dir", "w", "--config", str(cfg)]
    assert main(args) == 0
    assert (tmp_path / "cwd" / "w" / "index" / "series_table.json").is_file()
    assert list((tmp_path / "out" / "sub-s1").rglob("*.nii.gz"))


@pytest.mark.parametrize("layout", ["same", "work_in_output", "output_in_work"])
def test_output_and_work_dir_overlap_refused(tmp_path, capsys, layout):
    src = _small_study(tmp_path / "in")
    out, work = {
        "same": (tmp_path / "out", tmp_path / "out"),
        "work_in_output": (tmp_path / "out", tmp_path / "out" / "work"),
        "output_in_work": (tmp_path / "work" / "out", tmp_path / "work"),
    }[layout]
    assert main(["run", str(src), str(out), "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err
    assert f"work dir {work} and OUTPUT {out} must be separate folders" in err
    assert not out.exists() and not work.exists()


@pytest.mark.parametrize("inside", [False, True])
def test_convert_output_inside_input_refused(tmp_path, capsys, inside):
    src = _small_study(tmp_path / "in")
    out = src / "nifti" if inside else src
    assert main(["convert", str(src), str(out)]) == 2
    assert f"OUTPUT {out} must not be inside INPUT {src}" in capsys.readouterr().err
    assert not (src / "nifti").exists() and not list(src.rglob("*.nii.gz"))


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder we cannot write in: a mode 555 folder, or (as root, who ignores modes) a
    read-only tmpfs mounted for the test."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        yield folder
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "anatprep-ro",
                            str(folder)], capture_output=True)  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"no read-only folder available: {mount.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("case", ["read_only", "parent_is_a_file"])
def test_convert_unwritable_output_exit_2(tmp_path, capsys, case, request):
    src = _small_study(tmp_path / "in")
    if case == "read_only":
        out = request.getfixturevalue("read_only_folder") / "out"
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "sub" / "out"  # its parent cannot be made
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"anatprep convert: error: OUTPUT {out} is not writable" in err
    assert "Traceback" not in err


def test_file_system_without_locks_warns_and_runs(tmp_path, monkeypatch, caplog):
    """Some network mounts refuse ``flock``: the run goes on, unlocked, and says so."""
    import errno
    import logging

    from anatprep.pipelines import runlock

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runlock.fcntl, "flock", no_locks)
    monkeypatch.setattr(logging.getLogger("anatprep"), "propagate", True)
    with caplog.at_level(logging.WARNING, "anatprep"), runlock.hold_lock(tmp_path, "OUTPUT"):
        assert _lock_pid(tmp_path) == os.getpid()
    assert f"OUTPUT {tmp_path}: no file locks here (No locks available)" in caplog.text
    assert not (tmp_path / LOCK).exists()


def test_refused_run_leaves_no_folder_behind(tmp_path, capsys, read_only_folder):
    """A run refused with exit 2 (here: its work dir cannot be written) creates nothing:
    not the OUTPUT folder, nor its parents."""
    src = _small_study(tmp_path / "in")
    out, work = tmp_path / "new" / "out", read_only_folder / "work"
    args = ["run", str(src), str(out), "--work-dir", str(work), "--config"]
    assert main([*args, str(_config(tmp_path, False))]) == 2
    assert f"work dir {work} is not writable" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
