"""What ``anatprep run`` says at the end and on the way: counts that count what they name,
warnings only where they apply, and a command's own usage for its bad arguments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anatprep.pipelines.report import format_completed, format_nodes_run
from anatprep.pipelines.synthetic import write_series

REPO = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", *map(str, args)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.pipeline
def test_a_conversion_only_run_says_what_ran_and_what_was_cached(tmp_path):
    """A small non-T1w series, brain extraction off: no word of skull-stripping; the first
    run caches nothing, the second all but the sink (which always runs)."""
    write_series(np.ones((8, 8, 4)), np.eye(4), tmp_path / "in" / "s1",
                 meta={"SeriesDescription": "localizer"})  # fmt: skip
    args = ("run", tmp_path / "in", tmp_path / "out",
            "--config", REPO / "configs" / "fast-conversion-only.yaml")  # fmt: skip
    first = _run(*args)
    assert first.returncode == 0, first.stderr
    assert "anatprep: 1 of 1 subject(s) complete" in first.stdout
    assert "skull-strip" not in first.stderr
    ran = next(ln for ln in first.stdout.splitlines() if "nodes run:" in ln).strip()
    total = int(ran.split(" of ")[1])
    assert ran == f"nodes run: {total} of {total}"
    again = _run(*args).stdout
    assert f"nodes run: 1 of {total} ({total - 1} cached)" in again


def test_the_nodes_line_names_the_cached_count():
    assert format_nodes_run(30, 30) == "nodes run: 30 of 30"
    assert format_nodes_run(3, 63) == "nodes run: 3 of 63 (60 cached)"


def test_sessions_are_counted_as_sessions_of_subjects():
    keys = ["sub-01_ses-1", "sub-01_ses-2", "sub-02_ses-1"]
    assert format_completed(keys, keys[1:]) == "2 of 3 session(s) of 2 subject(s) complete"
    assert format_completed(["sub-01", "sub-02"], ["sub-02"]) == "1 of 2 subject(s) complete"


@pytest.mark.slow
def test_an_unknown_option_after_a_command_shows_that_commands_usage(tmp_path):
    res = _run("run", tmp_path, tmp_path / "out", "--no-such-option")
    assert res.returncode == 2
    assert "usage: anatprep run " in res.stderr
    assert "anatprep run: error: unrecognized arguments: --no-such-option" in res.stderr
    top = _run("--no-such-option", "run", tmp_path, tmp_path / "out")
    assert top.returncode == 2 and "anatprep: error: unrecognized arguments" in top.stderr
