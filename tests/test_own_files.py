"""A run touches only its own files (issue 22, item 1).

* The clean-up of interrupted writes removes only the temporary files journaled under the
  lock it takes (by a dead run that held it) and lists them; a file merely named like ours
  stays, and so does every file of another run.
* OUTPUT may not be ``/`` or a system folder, nor hold or lie inside a folder another live
  run holds: exit 2 with the reason, for ``run``, ``convert`` and ``demo``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anatprep.interfaces.atomic import atomic_write_bytes
from anatprep.interfaces.part_journal import JOURNAL_NAME, LOCK_NAME, create_part
from anatprep.pipelines import paths, runlock
from anatprep.pipelines.cli import main
from anatprep.pipelines.synthetic import write_series


def _small_study(root: Path) -> Path:
    write_series(np.full((16, 16, 6), 300.0), np.eye(4), root / "s1" / "t1", study_key="s1")
    return root


def _convert(src: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "anatprep.pipelines.cli", "convert", str(src), str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _stale_lock(folder: Path) -> None:
    """The lock file a killed run left (no process holds it)."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": 999999, "host": os.uname().nodename, "since": "earlier"}
    (folder / LOCK_NAME).write_text(json.dumps(holder) + "\n")


@pytest.mark.slow
def test_convert_keeps_a_nested_live_runs_temporary_files(tmp_path):
    """The issue's race, made deterministic: a run holds outer/inner and has a write in
    flight there; ``convert small outer`` must neither delete that file nor write into a
    folder that holds another run's (exit 2, naming it)."""
    src, outer = _small_study(tmp_path / "small"), tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    with runlock.hold_lock(inner, "OUTPUT"):
        fd, in_flight = create_part(inner / "sub-01_T1w.nii.gz")
        os.close(fd)
        res = _convert(src, outer)
        assert in_flight.is_file(), "another run's temporary file was removed"
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"OUTPUT {outer} holds {inner}, which another run holds (PID {os.getpid()}" in (
            res.stderr
        )
        assert "Traceback" not in res.stderr
        assert not list(outer.glob("*.nii.gz"))


@pytest.mark.slow
def test_convert_into_a_live_runs_output_refused(tmp_path):
    src, outer = _small_study(tmp_path / "small"), tmp_path / "outer"
    outer.mkdir()
    with runlock.hold_lock(outer, "OUTPUT"):
        res = _convert(src, outer / "inner")
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"OUTPUT {outer / 'inner'} lies inside {outer}, which another run holds" in res.stderr
    assert not (outer / "inner").exists()  # a refused run leaves no folder behind


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_stale_nested_lock_does_not_refuse(tmp_path):
    src, outer = _small_study(tmp_path / "small"), tmp_path / "outer"
    _stale_lock(outer / "inner")
    res = _convert(src, outer)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
@pytest.mark.pipeline
def test_only_journaled_temporary_files_are_removed_and_listed(tmp_path):
    """A dead run's journaled files go (listed); files merely named like ours stay, and so
    do those journaled under a nested lock."""
    src, out = _small_study(tmp_path / "in"), tmp_path / "out"
    _stale_lock(out)
    ours = [out / ".participants.tsv.k3j_x9q2.part", out / "sub-1" / ".a.nii.gz.ab12cd34.part"]
    others = [
        out / ".dataset_description.json.zz99yy88.part",  # our name, never journaled
        out / "nested" / ".b.nii.gz.cd34ef56.part",  # journaled, but under another lock
        out / "notes.part",
    ]
    _stale_lock(out / "nested")
    for path in ours + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (out / JOURNAL_NAME).write_text("".join(f"{p}\n" for p in [*ours, others[1]]))
    res = _convert(src, out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not [p for p in ours if p.exists()]
    assert all(p.read_text() == "x" for p in others)
    listed = "removed 2 temporary file(s) an interrupted run left: "
    assert f"{listed}.participants.tsv.k3j_x9q2.part, sub-1/.a.nii.gz.ab12cd34.part" in (
        res.stderr
    )
    assert not (out / JOURNAL_NAME).exists()


def test_an_atomic_write_is_journaled_under_its_lock(tmp_path, caplog, monkeypatch):
    """Each temporary file is on record before it exists; a write cut short within the run
    is removed when the run releases its lock, and said so."""
    import logging

    monkeypatch.setattr(logging.getLogger("anatprep"), "propagate", True)
    with caplog.at_level(logging.WARNING, "anatprep"):
        with runlock.hold_lock(tmp_path, "OUTPUT"):
            atomic_write_bytes(tmp_path / "sub-1" / "done.json", b"{}")
            fd, cut = create_part(tmp_path / "sub-1" / "cut.json")
            os.close(fd)
            journal = (tmp_path / JOURNAL_NAME).read_text().splitlines()
            assert len(journal) == 2 and journal[1] == str(cut)
            assert journal[0].startswith(str(tmp_path / "sub-1" / ".done.json."))
        assert not cut.exists() and (tmp_path / "sub-1" / "done.json").read_bytes() == b"{}"
    assert "removed 1 temporary file(s) this run's ended writes left: sub-1/.cut.json." in (
        caplog.text
    )
    assert not (tmp_path / JOURNAL_NAME).exists() and not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize(
    ("folder", "system", "where"),
    [
        ("/", "/", "is"),
        ("/etc", "/etc", "is"),
        ("/usr/lib/out", "/usr", "lies inside"),
        ("/proc/x", "/proc", "lies inside"),
        ("/var", "/var", "is"),
        ("/usr/local", "/usr", "lies inside"),
    ],
)
def test_system_folders_refused(folder, system, where):
    expected = f"OUTPUT {folder} {where} the system folder {system}:"
    with pytest.raises(paths.UsageError, match=expected):
        paths.check_not_system("OUTPUT", Path(folder))


@pytest.mark.parametrize("folder", ["/var/tmp/study", "/run/user/0/out", "/usr/local/data"])
def test_data_folders_below_system_ones_allowed(folder):
    paths.check_not_system("OUTPUT", Path(folder))


@pytest.mark.parametrize(
    "argv",
    [
        ["convert", "{src}", "/"],
        ["run", "{src}", "/proc/x"],
        ["demo", "/proc/x"],
        ["run", "{src}", "{tmp}/out", "--work-dir", "/etc/anatprep-work"],
    ],
    ids=["convert-root", "run-proc", "demo-proc", "run-workdir-etc"],
)
def test_commands_refuse_system_folders(tmp_path, capsys, argv):
    src = _small_study(tmp_path / "in")
    before = set(os.listdir("/"))
    args = [a.format(src=src, tmp=tmp_path) for a in argv]
    assert main([*args, "--config", str(_no_bex(tmp_path))] if argv[0] != "convert" else args) == 2
    err = capsys.readouterr().err
    assert "the system folder" in err and "Traceback" not in err and "internal error" not in err
    assert set(os.listdir("/")) == before
    assert not Path("/etc/anatprep-work").exists() and not (tmp_path / "out").exists()


def _no_bex(tmp_path: Path) -> Path:
    cfg = tmp_path / "nobe.yaml"
    cfg.write_text("brain_extraction: {enabled: false}\n")
    return cfg
