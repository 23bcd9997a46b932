"""``anatprep convert`` accounts for every series: converted, skipped by which option, or
failed with the reason; any failure (a series, or an image file no series could take) means
exit 4.  ``--verify`` ends with a parity table naming each differing field."""

from __future__ import annotations

import numpy as np

from anatprep.pipelines.cli import main
from anatprep.pipelines.report import SeriesOutcome, format_outcomes, printable
from anatprep.pipelines.synthetic import write_series

AFFINE = np.array([[-0.9, 0, 0, 40.0], [0, -1.1, 0, 30.0], [0, 0, 1.7, -12.0], [0, 0, 0, 1]])


def _study(tmp_path):
    vol = np.random.default_rng(1).integers(0, 3000, size=(16, 14, 8)).astype(float)
    write_series(vol, AFFINE, tmp_path / "dcm" / "good", series_number=3)
    write_series(vol, AFFINE, tmp_path / "dcm" / "gappy", series_number=5)
    files = sorted((tmp_path / "dcm" / "gappy").iterdir())
    files[3].unlink()  # a missing slice: this series fails
    return tmp_path / "dcm"


def test_failed_series_is_listed_and_exits_4(tmp_path, capsys):
    code = main(["convert", str(_study(tmp_path)), str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 4
    assert "series: 1 converted, 0 skipped, 1 failed" in out
    failed = [ln for ln in out.splitlines() if ln.strip().startswith("FAILED")]
    assert len(failed) == 1 and "non-uniform slice spacing" in failed[0]
    assert len(list((tmp_path / "out").glob("*.nii.gz"))) == 1


def test_unusable_image_file_is_a_failure(tmp_path, capsys):
    dcm = _study(tmp_path)
    for path in (dcm / "gappy").iterdir():
        path.unlink()
    good = sorted((dcm / "good").iterdir())
    truncated = dcm / "stray.dcm"
    truncated.write_bytes(good[0].read_bytes()[:-100])
    code = main(["convert", str(dcm), str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 4
    assert "truncated pixel data" in out and "stray.dcm" in out


def test_skipped_series_names_the_option(tmp_path, capsys):
    dcm = _study(tmp_path)
    code = main(["convert", "--irregular-spacing", "skip", str(dcm), str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "series: 1 converted, 1 skipped, 0 failed" in out
    assert "(conversion.geometry.irregular_spacing: skip)" in out


def test_verify_table_names_differing_fields():
    from pathlib import Path

    from anatprep.pipelines.convert_command import format_parity

    rows = [
        (
            "sn001-a",
            Path("a.nii.gz"),
            {"Reference": "dcm2niix v1", "Agrees": False,
             "Differences": ["EchoTime: ours 1, dcm2niix 2", ".bval: missing"]},
        ),
        ("sn002-b", Path("b.nii.gz"), {"Reference": "dcm2niix v1", "Agrees": True}),
        ("sn003-c", Path("c.nii.gz"), {"Agrees": None, "Error": "dcm2niix is not installed"}),
    ]  # fmt: skip
    text = format_parity(rows)
    assert text.splitlines()[0] == "verify against dcm2niix v1: 1 equal, 1 differ, 1 unchecked"
    assert "DIFFERS   sn001-a a.nii.gz: EchoTime, .bval" in text
    assert "unchecked sn003-c c.nii.gz: dcm2niix is not installed" in text


def test_report_escapes_control_characters():
    line = format_outcomes([SeriesOutcome("sn1", "evil\nanatprep: 2 of 2", "failed", "x\x1b[2J")])
    assert "\n" not in line.split("\n", 1)[1] and "\\n" in line and "\\x1b" in line
    assert printable("a\x00b") == "a\\x00b"
