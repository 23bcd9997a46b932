"""Hazards in INPUT (issue 14 items 2, 3, 8, 11): special files, unreadable and hidden
folders, folder names that merge different patients, control characters in header and folder
text, and participants.tsv listing only subjects with output.

Each test fails on the code before the fix: a FIFO hung the walk, an unreadable folder and a
hidden one were skipped without a word, colliding labels and a series copied into two
subjects merged silently, a newline in a description forged report lines, and a failed subject
was listed in participants.tsv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.pipelines.config import Config
from anatprep.pipelines.convert_command import convert_tree
from anatprep.pipelines.execution import RunSummary, run_study
from anatprep.pipelines.synthetic import write_series

FAST = {"brain_extraction": {"enabled": False}, "execution": {"plugin": "Linear"}}


def _series(folder: Path, key: str, **meta) -> list[Path]:
    """A small T1w series (its own SeriesInstanceUID per ``key``) in ``folder``."""
    vol = np.full((12, 12, 5), 100.0)
    vol[3:8, 3:8, :] = 700.0
    return write_series(
        vol, np.diag([1.0, 1.0, 2.0, 1.0]), folder, study_key=key,
        meta={"RepetitionTime": "2.3", **meta},
    )  # fmt: skip


def _cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _run(src: Path, out: Path, extra: dict | None = None) -> RunSummary:
    return run_study(src, out, Config.model_validate({**FAST, **(extra or {})}))


def _failed(summary: RunSummary) -> dict[str, str]:
    return {f.subject: f.message for f in summary.failures}


def _converted_subjects(summary: RunSummary) -> set[str]:
    return {o.subject for o in summary.series if o.status == "converted"}


# item 2: anything that is not a regular file is listed, never opened


def test_fifo_is_listed_not_opened(tmp_path):
    src = tmp_path / "in"
    _series(src / "sub-01" / "t1", "a")
    os.mkfifo(src / "sub-01" / "t1" / "pipe")
    try:  # a hang (the old code opened the FIFO) fails here instead of blocking the suite
        done = _cli("convert", src, tmp_path / "out", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("anatprep convert blocked on a FIFO in INPUT")
    assert done.returncode == 0, done.stderr
    assert "pipe: not a regular file (FIFO)" in done.stderr
    assert "1 converted, 0 skipped, 0 failed" in done.stdout


def test_socket_broken_link_and_link_loop_are_listed(tmp_path):
    import socket

    src = tmp_path / "in"
    files = _series(src / "sub-01" / "t1", "a")
    links = src / "sub-01" / "links"
    links.mkdir()
    (links / "dangling").symlink_to(tmp_path / "nowhere")
    (links / "self").symlink_to(links / "self")
    (links / "up").symlink_to(src)  # a folder loop: each real folder is walked once
    moved = tmp_path / "elsewhere" / files[0].name
    moved.parent.mkdir()
    shutil.move(files[0], moved)
    files[0].symlink_to(moved)  # a link to a regular file is an ordinary file
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(links / "sock"))
        table = index_tree(src)
    finally:
        sock.close()
    reasons = {Path(u.path).name: u.reason for u in table.unusable}
    assert reasons == {
        "dangling": "not a regular file (broken symbolic link)",
        "self": "not a regular file (symbolic link loop)",
        "sock": "not a regular file (socket)",
    }
    assert [s.n_slices for s in table.series] == [5]


# item 3: an unreadable subject folder fails the run, naming the folder


def _unlistable(monkeypatch, folder: Path) -> None:
    """os.scandir raises PermissionError for ``folder``, as for chmod 000 without root."""
    real = os.scandir

    def scandir(path="."):
        if Path(os.fsdecode(path)) == folder:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.pipeline
def test_unreadable_subject_folder_is_listed_and_fails_the_run(tmp_path, monkeypatch):
    src = tmp_path / "in"
    _series(src / "sub-01" / "t1", "a")
    _series(src / "sub-02" / "t1", "b")
    _unlistable(monkeypatch, (src / "sub-02").resolve())
    summary = _run(src, tmp_path / "out")
    assert summary.exit_code == 4
    failed = [o for o in summary.series if o.status == "failed"]
    assert [(o.series_id, o.detail) for o in failed] == [
        (f"{(src / 'sub-02').resolve()}/", "folder not readable (Permission denied)")
    ]
    assert _converted_subjects(summary) == {"sub-01"}
    assert summary.subjects == ["sub-01", "sub-02"] and summary.failed_subjects == ["sub-02"]
    assert "sub-02: folder not readable (Permission denied)" in _failed(summary)["sub-02"]


def test_hidden_folder_is_said_once(tmp_path, capsys):
    src = tmp_path / "in"
    _series(src / "sub-01" / "t1", "a")
    _series(src / "sub-01" / ".backup" / "t1", "b")
    _series(src / ".git" / "x", "c")
    assert convert_tree(src, tmp_path / "out", 1) == 0
    out, err = capsys.readouterr()
    for hidden in (src / "sub-01" / ".backup", src / ".git"):
        line = f"{hidden}: hidden folder (name starts with '.'): not searched"
        assert err.count(line) == 1  # the log
        assert out.count(f"skipped   {hidden}/: hidden folder") == 1  # the account
    assert "1 converted, 2 skipped, 0 failed" in out


# item 8: folders that would merge different patients fail, naming the folders


@pytest.mark.pipeline
def test_folders_reduced_to_one_label_fail_that_subject(tmp_path):
    src = tmp_path / "in"
    for k, folder in enumerate(("sub-01", "01", "sub-ü01", "sub-02")):
        _series(src / folder / "t1", f"p{k}")
    summary = _run(src, tmp_path / "out")
    assert summary.exit_code == 4
    message = _failed(summary)["sub-01"]
    assert "folders '01', 'sub-01', 'sub-ü01' all become subject sub-01" in message
    assert "labels.subject_map" in message
    assert set(_failed(summary)) == {"sub-01"}
    assert _converted_subjects(summary) == {"sub-02"}
    assert not (tmp_path / "out" / "sub-01").exists()


@pytest.mark.pipeline
def test_folder_without_letters_or_digits_fails(tmp_path):
    src = tmp_path / "in"
    for k, folder in enumerate(("sub-日本", "sub-", "sub-02")):
        _series(src / folder / "t1", f"p{k}")
    summary = _run(src, tmp_path / "out")
    assert summary.exit_code == 4
    message = _failed(summary)["sub-unknown"]
    assert "subject folder 'sub-日本' has no letters or digits" in message
    assert "subject folder 'sub-' has no letters or digits" in message
    assert "folders 'sub-', 'sub-日本' all become subject sub-unknown" in message
    assert _converted_subjects(summary) == {"sub-02"}


@pytest.mark.pipeline
def test_subject_map_resolves_a_collision(tmp_path):
    src = tmp_path / "in"
    for k, folder in enumerate(("sub-01", "sub-ü01", "sub-日本")):
        _series(src / folder / "t1", f"p{k}")
    labels = {"subject_map": {"sub-ü01": "01u", "sub-日本": "jp"}}
    summary = _run(src, tmp_path / "out", {"labels": labels})
    assert summary.exit_code == 0, summary.failures
    assert _converted_subjects(summary) == {"sub-01", "sub-01u", "sub-jp"}


@pytest.mark.pipeline
def test_same_series_in_two_subjects_fails_both(tmp_path):
    src = tmp_path / "in"
    _series(src / "sub-01" / "t1", "a")
    _series(src / "sub-03" / "t1", "c")
    shutil.copytree(src / "sub-01", src / "sub-02")
    summary = _run(src, tmp_path / "out")
    assert summary.exit_code == 4
    assert set(_failed(summary)) == {"sub-01", "sub-02"}
    for message in _failed(summary).values():
        assert "in sub-01/t1) also has files in 'sub-02/t1'" in message
        assert "labels.subject_map" in message
    assert _converted_subjects(summary) == {"sub-03"}
    assert summary.subjects == ["sub-01", "sub-02", "sub-03"]


# item 11: control characters never reach the terminal or the log raw; participants.tsv


@pytest.mark.pipeline
def test_control_characters_are_escaped_everywhere(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    forged = "T1 MPRAGE\nanatprep: 2 of 2 subject(s) complete\x1b[2J\x00"
    _series(src / "sub-01" / "t1", "a", SeriesDescription=forged)
    name = "notes\r\nanatprep: 9 of 9 subject(s) complete\x1b]0;x\x07"
    (src / "sub-01" / "t1" / name).write_text("not DICOM")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"brain_extraction": {"enabled": False}}))
    done = _cli("run", src, out, "--config", cfg)
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert "\x1b" not in text and "\x00" not in text and "\r" not in text and "\x07" not in text
    lines = text.splitlines()
    assert [ln for ln in lines if ln.startswith("anatprep: ")] == [
        f"anatprep: 1 of 1 subject(s) complete -> {out}"
    ]
    assert any("T1 MPRAGE\\nanatprep: 2 of 2 subject(s) complete\\x1b[2J" in ln for ln in lines)


@pytest.mark.pipeline
def test_participants_lists_only_subjects_with_output(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _series(src / "sub-01" / "t1", "a")
    broken = _series(src / "sub-02" / "t1", "b")
    broken[2].write_bytes(broken[2].read_bytes()[:-100])  # truncated pixel data
    summary = _run(src, out)
    assert summary.exit_code == 4 and summary.failed_subjects == ["sub-02"]
    assert not (out / "sub-02").exists()
    assert (out / "participants.tsv").read_text() == "participant_id\nsub-01\n"


@pytest.mark.pipeline
def test_session_folders_reduced_to_one_label_fail_that_subject(tmp_path):
    src = tmp_path / "in"
    for k, folder in enumerate(("sub-01/ses-1", "sub-01/ses-ü1", "sub-02/ses-1")):
        _series(src / folder / "t1", f"p{k}")
    summary = _run(src, tmp_path / "out", {"labels": {"session_level": 2}})
    assert summary.exit_code == 4
    assert set(_failed(summary)) == {"sub-01_ses-1"}
    assert "session folder(s) 'ses-1', 'ses-ü1' of sub-01 become ses-1" in _failed(summary)[
        "sub-01_ses-1"
    ]
    assert _converted_subjects(summary) == {"sub-02_ses-1"}
