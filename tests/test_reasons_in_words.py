"""Failure reasons in words (issue 22, item 8): the account and the FAILED lines say what is
wrong with which file, without Python exception classes; ``-v`` keeps the classes (the crash
files and the log always do)."""

from __future__ import annotations

import numpy as np
import pytest

from anatprep.pipelines import convert_command
from anatprep.pipelines.cli import main
from anatprep.pipelines.report import in_words
from anatprep.pipelines.synthetic import write_series


@pytest.mark.parametrize(
    ("technical", "words"),
    [
        ("unreadable DICOM (ValueError: invalid literal for int(): 'x')",
         "unreadable DICOM (invalid literal for int(): 'x')"),
        ("numpy._core._exceptions._ArrayMemoryError: Unable to allocate 78.1 TiB",
         "Unable to allocate 78.1 TiB"),
        ("zlib.error: Error -3 while decompressing data", "Error -3 while decompressing data"),
        ("series sn3 cannot be converted: anatprep.interfaces.dicomio.series."
         "SeriesGeometryError: non-uniform slice spacing",
         "series sn3 cannot be converted: non-uniform slice spacing"),
        ("OSError: [Errno 28] No space left on device", "[Errno 28] No space left on device"),
        ("SLURM job 12 (sub-01) ended FAILED", "SLURM job 12 (sub-01) ended FAILED"),
        ("sub-01: 3 errors: see the log", "sub-01: 3 errors: see the log"),
    ],
)  # fmt: skip
def test_in_words_drops_exception_classes_only(technical, words):
    assert in_words(technical) == words
    assert in_words(technical, verbose=True) == technical


def test_convert_failure_lines_without_classes_unless_verbose(tmp_path, capsys, monkeypatch):
    write_series(np.ones((8, 8, 4)), np.eye(4), tmp_path / "in" / "s1")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(convert_command, "convert_entry", full_disk)
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "out")]) == 4
    err = capsys.readouterr().err
    assert "No space left on device" in err and "OSError" not in err
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "out2"), "-v"]) == 4
    assert "OSError: [Errno 28] No space left on device" in capsys.readouterr().err
