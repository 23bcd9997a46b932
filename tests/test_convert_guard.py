"""One series' failure never takes down the others, and never leaves an image without its
sidecar: a header value no rule foresaw fails that series with the series and the problem
named (issue 14, item 1)."""

from __future__ import annotations

import gzip
import json

import nibabel as nb
import numpy as np
import pytest

from anatprep.interfaces.dicomio import series_to_nifti
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry
from anatprep.pipelines.convert_command import convert_tree
from anatprep.pipelines.synthetic import write_series


def _study(root, **meta_a):
    write_series(np.full((8, 8, 4), 100.0), np.eye(4), root / "a", meta=meta_a or None,
                 study_key="a")  # fmt: skip
    write_series(np.full((8, 8, 4), 100.0), np.eye(4), root / "b", study_key="b",
                 series_number=2)  # fmt: skip


@pytest.mark.parametrize("key", ["RepetitionTime", "EchoTime", "InversionTime"])
def test_negative_timing_fails_the_file_by_name(tmp_path, key):
    _study(tmp_path / "in", **{key: "-1e308"})
    table = index_tree(tmp_path / "in")
    (item,) = [u for u in table.unusable if "/a/" in u.path][:1]
    assert f"{key}=-1e+308 is negative" in item.reason or f"{key}=-1e308 is negative" in (
        item.reason
    )
    assert convert_tree(tmp_path / "in", tmp_path / "out", 1) == 4
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == [
        "t1mpragesagp2iso_2.json", "t1mpragesagp2iso_2.nii.gz",
    ]  # fmt: skip


def test_non_finite_sidecar_value_is_left_out_and_the_json_written(tmp_path, monkeypatch):
    _study(tmp_path / "in")
    (entry, _) = index_tree(tmp_path / "in").series
    real = series_to_nifti.build_sidecar

    def poisoned(*args, **kwargs):
        return {**real(*args, **kwargs), "FlipAngle": float("inf")}

    monkeypatch.setattr(series_to_nifti, "build_sidecar", poisoned)
    _, js = convert_entry(entry, tmp_path / "out" / "x")
    sidecar = json.loads(js.read_text())
    assert "FlipAngle" not in sidecar and sidecar["RepetitionTime"] > 0


def test_a_failed_sidecar_write_leaves_no_image(tmp_path, monkeypatch):
    _study(tmp_path / "in")
    (entry, _) = index_tree(tmp_path / "in").series

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(series_to_nifti, "write_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        convert_entry(entry, tmp_path / "out" / "x")
    assert list((tmp_path / "out").iterdir()) == []


def test_unforeseen_error_in_one_series_leaves_the_others(tmp_path, monkeypatch, capsys):
    _study(tmp_path / "in")
    real = series_to_nifti.ClassicSeries.to_volume

    def broken(self):
        if "/a/" in self.files[0]:
            raise OverflowError("int too large to convert to float")
        return real(self)

    monkeypatch.setattr(series_to_nifti.ClassicSeries, "to_volume", broken)
    assert convert_tree(tmp_path / "in", tmp_path / "out", 1) == 4
    out = capsys.readouterr().out
    # in words: the exception's class is the crash file's and -v's (issue 22, item 8)
    assert "cannot be converted: int too large to convert to float" in out
    assert "OverflowError" not in out
    assert "in a)" in out  # the series is named by its folder
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["t1mpragesagp2iso_2.json", "t1mpragesagp2iso_2.nii.gz"]


def test_write_failure_of_one_series_leaves_the_others(tmp_path, monkeypatch, capsys):
    _study(tmp_path / "in")
    real = series_to_nifti.write_nifti_parts

    def full_disk(path, *args, **kwargs):
        if "_1" in path.name:
            raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(series_to_nifti, "write_nifti_parts", full_disk)
    assert convert_tree(tmp_path / "in", tmp_path / "out", 1) == 4
    assert "No space left on device" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["t1mpragesagp2iso_2.json", "t1mpragesagp2iso_2.nii.gz"]


def test_dcm2niix_backend_blanks_header_text(tmp_path):
    write_series(np.full((8, 8, 4), 100.0), np.eye(4), tmp_path / "in" / "a",
                 meta={"ImageComments": "Jane Doe scanned twice"}, study_key="a")  # fmt: skip
    (entry,) = index_tree(tmp_path / "in").series
    nii, _ = convert_entry(entry, tmp_path / "out" / "a", converter="dcm2niix")
    header = nb.load(nii).header
    for field in ("aux_file", "intent_name", "db_name"):
        assert bytes(header[field]).strip(b"\0") == b"", field
    assert b"Jane" not in gzip.decompress(nii.read_bytes())
