"""A nearly full disk under the work dir or OUTPUT (a small tmpfs): the run ends, never hangs.

* Work dir nearly full: nipype's own files (node inputs, results, crash files) cannot be
  written.  Every job still reports back (``pipelines/multiproc.py``), so the run ends with
  exit 4, each failed series named with "No space left on device"; a crash file that could
  not be written is said so.
* OUTPUT nearly full: a series whose image or sidecar cannot be placed fails alone, and
  nothing of it stays (no image without its sidecar); ``participants.tsv`` that cannot be
  written is a named failure; a disk too full for the dataset's first files is exit 2.
* Either way no traceback on the terminal, no ``.part`` file, and once space is freed the
  same command completes every series.

The file systems are real (``mount -t tmpfs``, as root); where mounting is impossible the
tests skip, except under CI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import CI

from anatprep.pipelines.synthetic import write_series

pytestmark = pytest.mark.pipeline

SUBJECTS = ("a", "b", "c")


def _tmpfs(mountpoint: Path, size_kb: int) -> None:
    mountpoint.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mountpoint)],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        reason = f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}"
        if CI:
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    _tmpfs(disk, 2048)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path, leave_kb: int) -> Path:
    """Fill ``disk`` up to ``leave_kb`` free kilobytes; return the filler file."""
    filler = disk / "filler"
    free_kb = shutil.disk_usage(disk).free // 1024
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free_kb - leave_kb) * 1024)
    return filler


def _study(root: Path) -> Path:
    for s in SUBJECTS:
        write_series(np.full((16, 16, 6), 300.0), np.eye(4), root / s / "t1", study_key=s)
    return root


def _run(src: Path, out: Path, work: Path, config: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(src), str(out),
           "--work-dir", str(work), "--config", str(config)]  # fmt: skip
    # a hang is the failure this guards against: the timeout makes it a test failure
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


@pytest.fixture
def conversion_only(tmp_path) -> Path:
    cfg = tmp_path / "nobe.yaml"
    cfg.write_text("brain_extraction: {enabled: false}\nexecution: {n_procs: 2}\n")
    return cfg


def _assert_no_partial(out: Path) -> None:
    images = sorted(out.rglob("*.nii.gz"))
    for image in images:
        assert image.with_name(image.name.replace(".nii.gz", ".json")).is_file(), image
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def _assert_resumes(src, out, work, cfg, filler: Path) -> None:
    filler.unlink()
    again = _run(src, out, work, cfg)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "series: 3 converted, 0 skipped, 0 failed" in again.stdout
    assert len(list(out.rglob("sub-*/extra/*.nii.gz"))) == len(SUBJECTS)
    _assert_no_partial(out)


def test_nearly_full_work_dir_ends_with_exit_4_and_resumes(
    tmp_path, small_disk, conversion_only
):
    src, out, work = _study(tmp_path / "in"), tmp_path / "out", small_disk / "work"
    filler = _fill(small_disk, leave_kb=40)
    result = _run(src, out, work, conversion_only)
    text = result.stdout + result.stderr
    assert result.returncode == 4, text
    assert "Traceback" not in text
    assert "failed" in result.stdout and "No space left on device" in result.stdout
    assert "subject(s) complete" in result.stdout
    _assert_no_partial(out)
    _assert_resumes(src, out, work, conversion_only, filler)


def test_nearly_full_output_fails_only_what_cannot_be_placed(
    tmp_path, small_disk, conversion_only
):
    src, out, work = _study(tmp_path / "in"), small_disk / "out", tmp_path / "work"
    filler = _fill(small_disk, leave_kb=40)
    result = _run(src, out, work, conversion_only)
    text = result.stdout + result.stderr
    assert result.returncode == 4, text
    assert "Traceback" not in text
    assert "No space left on device" in result.stdout
    converted = int(result.stdout.split("series: ")[1].split(" converted")[0])
    assert converted < len(SUBJECTS)  # the disk did run out
    assert len(list(out.rglob("sub-*/extra/*.nii.gz"))) == converted
    _assert_no_partial(out)
    _assert_resumes(src, out, work, conversion_only, filler)


def test_output_too_full_for_the_dataset_files_is_exit_2(tmp_path, small_disk, conversion_only):
    src, work = _study(tmp_path / "in"), tmp_path / "work"
    out = small_disk / "out"
    out.mkdir()
    filler = _fill(small_disk, leave_kb=0)
    result = _run(src, out, work, conversion_only)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"OUTPUT {out} cannot be written: No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(out.rglob("sub-*"))
    _assert_resumes(src, out, work, conversion_only, filler)
