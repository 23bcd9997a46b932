"""Indexing reads every file on its own; fingerprints; the header cache.

Each trigger breaks one file of subject A in a two-subject tree of synthetic series: the index
lists that file under ``unusable`` with a reason naming the problem, A's series fails when the
file's header still names it, and subject B's series are complete and without problems.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

from anatprep.interfaces.dicomio import index as index_module
from anatprep.interfaces.dicomio.geometry import GeometryPolicy
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.table import SeriesTable
from anatprep.pipelines.synthetic import write_enhanced, write_series

AXIAL = np.diag([-1.0, -1.0, 2.0, 1.0])
N_SLICES = 6


def _volume(seed: int) -> np.ndarray:
    """Noise (so a gzipped slice is mostly pixel data)."""
    return np.random.default_rng(seed).integers(0, 3000, size=(32, 32, N_SLICES)).astype(float)


def _two_subjects(root: Path) -> tuple[list[Path], list[Path]]:
    a = write_series(_volume(1), AXIAL, root / "subA" / "t1", study_key="A")
    b = write_series(_volume(2), AXIAL, root / "subB" / "t1", study_key="B")
    return a, b


def _mutate(path: Path, **fields) -> None:
    ds = pydicom.dcmread(path)
    for key, value in fields.items():
        setattr(ds, key, value)
    ds.save_as(path)


def _check(table: dict, broken: Path, needles: list[str], tmp_path: Path) -> dict:
    """``broken`` is listed with a reason holding every needle; subject B is complete; the
    table writes as strict JSON.  Returns the unusable item."""
    (item,) = [u for u in table.unusable if u.path == str(broken)]
    for needle in needles:
        assert needle in item.reason, item.reason
    (b_entry,) = [s for s in table.series if s.folders[0] == "subB"]
    assert b_entry.problems == () and b_entry.n_slices == N_SLICES
    assert len(b_entry.files) == N_SLICES == len(b_entry.fingerprints)
    out = table.save(tmp_path / "table.json")
    json.loads(out.read_text(), parse_constant=_no_constant)
    assert SeriesTable.load(out) == table
    return item


def _no_constant(name: str):
    raise AssertionError(f"series table holds {name}")


def _series_of_a(table: dict) -> dict:
    (entry,) = [s for s in table.series if s.folders[0] == "subA"]
    return entry


def _assert_fails_a(table: dict, item: dict) -> None:
    entry = _series_of_a(table)
    assert item.series == entry.id
    assert any(item.path in p and item.reason in p for p in entry.problems)


# --- the triggers ---------------------------------------------------------------------------


def test_unexpected_exception_lists_the_file_and_fails_its_series(tmp_path, monkeypatch):
    """The catch-all: a bug (here the scanner's ``AttributeError: Rows``) in one file's read."""
    a, _ = _two_subjects(tmp_path / "dcm")
    real = index_module.read_file_headers

    def buggy(path):
        if path == str(a[2]):
            raise AttributeError("Rows")
        return real(path)

    monkeypatch.setattr(index_module, "read_file_headers", buggy)
    table = index_tree(tmp_path / "dcm")
    item = _check(table, a[2], ["field Rows: AttributeError: Rows", "test_index_isolation.py"],
                  tmp_path)  # fmt: skip
    _assert_fails_a(table, item)


def test_process_pool_isolates_files_alike(tmp_path, monkeypatch):
    """Read in forked workers (small chunks), a failing file gives the same table."""
    a, _ = _two_subjects(tmp_path / "dcm")
    real = index_module.read_file_headers

    def buggy(path):
        if path == str(a[4]):
            raise ZeroDivisionError("division by zero")
        return real(path)

    monkeypatch.setattr(index_module, "read_file_headers", buggy)
    serial = index_tree(tmp_path / "dcm", n_procs=1)
    monkeypatch.setattr(index_module, "PARALLEL_MIN_FILES", 2)
    monkeypatch.setattr(index_module, "_CHUNK", 3)
    assert index_tree(tmp_path / "dcm", n_procs=2) == serial
    _assert_fails_a(serial, _check(serial, a[4], ["ZeroDivisionError: division by zero"], tmp_path))


def test_pixel_data_without_rows(tmp_path):
    a, _ = _two_subjects(tmp_path / "dcm")
    ds = pydicom.dcmread(a[2])
    del ds.Rows
    ds.save_as(a[2])
    table = index_tree(tmp_path / "dcm")
    _assert_fails_a(table, _check(table, a[2], ["Rows"], tmp_path))


@pytest.mark.parametrize(
    ("key", "text", "needle"),
    [
        ("EchoTime", "NaN", "EchoTime=nan is not a finite number"),
        ("RepetitionTime", "inf", "RepetitionTime=inf is not a finite number"),
    ],
)
def test_non_finite_timing_in_one_file(tmp_path, key, text, needle):
    """Read as absent, the file would make a series of its own: it is rejected instead."""
    a, _ = _two_subjects(tmp_path / "dcm")
    _mutate(a[0], **{key: text})
    table = index_tree(tmp_path / "dcm")
    _assert_fails_a(table, _check(table, a[0], [needle], tmp_path))
    assert len([s for s in table.series if s.folders[0] == "subA"]) == 1


def test_truncated_gzip(tmp_path):
    a, b = _two_subjects(tmp_path / "dcm")
    gz = []
    for path in a + b:
        gz.append(path.with_name(path.name + ".gz"))
        gz[-1].write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    broken = gz[0]  # an edge slice: no gap would show it missing
    broken.write_bytes(broken.read_bytes()[:-300])
    table = index_tree(tmp_path / "dcm")
    item = _check(table, broken, ["compressed file is truncated", "end-of-stream"], tmp_path)
    _assert_fails_a(table, item)  # the header decompressed: the series is known


def _as_deflated_but_plain(path: Path) -> None:
    """Declare the deflated transfer syntax on a data set that is stored plain."""
    data = path.read_bytes()
    ds = pydicom.dcmread(path)
    body = data[132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength) :]
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    path.write_bytes(b"\0" * 128 + b"DICM" + meta.getvalue() + body)


def test_deflate_syntax_on_plain_data(tmp_path):
    a, _ = _two_subjects(tmp_path / "dcm")
    _as_deflated_but_plain(a[3])
    table = index_tree(tmp_path / "dcm")
    item = _check(table, a[3], ["does not inflate", "while decompressing"], tmp_path)
    _assert_fails_a(table, item)  # its plain header names its series: never a lost slice


def test_invalid_vr_in_an_enhanced_file(tmp_path):
    enh = write_enhanced(np.zeros((8, 6, 4)), tmp_path / "dcm" / "subA" / "enh" / "enh.dcm")
    write_series(_volume(2), AXIAL, tmp_path / "dcm" / "subB" / "t1", study_key="B")
    data = bytearray(enh.read_bytes())
    at = data.find(b"\x20\x00\x32\x00DS")  # the first frame's ImagePositionPatient
    data[at + 4 : at + 6] = b"ZZ"
    enh.write_bytes(bytes(data))
    table = index_tree(tmp_path / "dcm")
    field = "PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient"
    item = _check(table, enh, [field, "cannot be decoded", "'ZZ'"], tmp_path)
    _assert_fails_a(table, item)


@pytest.mark.pipeline
def test_anatprep_run_goes_on_past_a_broken_file(tmp_path):
    """End to end: exit 4, subject B converted, the broken file of A named in the output."""
    a, _ = _two_subjects(tmp_path / "in")
    _as_deflated_but_plain(a[3])
    _mutate(a[1], EchoTime="NaN")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("brain_extraction:\n  enabled: false\n")
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", "run", tmp_path / "in", out,
         "--config", cfg],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    text = res.stdout + res.stderr
    assert res.returncode == 4, text
    assert list((out / "sub-subB").rglob("*.nii.gz"))
    assert not list((out / "sub-subA").rglob("*.nii.gz"))
    assert f"{a[3]}: data set does not inflate" in text
    assert "EchoTime=nan is not a finite number" in text
    assert (out.parent / "out.work" / "index" / "header_cache.json").is_file()


# --- fingerprints ---------------------------------------------------------------------------


def _assert_fingerprints(entry: dict) -> None:
    assert len(entry.fingerprints) == len(entry.files)
    for path, fingerprint in zip(entry.files, entry.fingerprints, strict=True):
        st = os.stat(path)
        size, mtime, digest = fingerprint.split("-")
        assert (int(size), int(mtime)) == (st.st_size, st.st_mtime_ns)
        assert len(digest) == 16 and int(digest, 16) >= 0


def test_fingerprints_align_with_files(tmp_path):
    write_series(_volume(1), AXIAL, tmp_path / "dcm" / "classic")
    write_enhanced(np.zeros((8, 6, 4)), tmp_path / "dcm" / "enh" / "enh.dcm")
    gapped = write_series(_volume(3), AXIAL, tmp_path / "dcm" / "gap", series_number=7)
    gapped[2].unlink()  # irregular spacing: split into two parts
    table = index_tree(tmp_path / "dcm", geometry=GeometryPolicy("split"))
    assert len(table.series) == 4 and sum(s.split_from is not None for s in table.series) == 2
    for entry in table.series:
        _assert_fingerprints(entry)
    (enh,) = [s for s in table.series if s.folders == ("enh",)]
    assert len(set(enh.fingerprints)) == 1 and len(enh.fingerprints) == 4


def test_a_header_change_changes_the_fingerprint_even_at_same_size_and_time(tmp_path):
    paths = write_series(_volume(1), AXIAL, tmp_path / "dcm")
    before = index_tree(tmp_path / "dcm").series[0]
    st = os.stat(paths[2])
    data = paths[2].read_bytes()
    assert data.count(b"t1_mprage_sag") == 2  # description and protocol name
    paths[2].write_bytes(data.replace(b"t1_mprage_sag", b"t1_mprage_cor", 1))
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns))
    after = index_tree(tmp_path / "dcm").series
    changed = next(s for s in after if str(paths[2]) in s.files)
    k = changed.files.index(str(paths[2]))
    old = before.fingerprints[before.files.index(str(paths[2]))]
    assert changed.fingerprints[k] != old
    assert changed.fingerprints[k].split("-")[:2] == old.split("-")[:2]


def test_a_pixel_change_keeps_the_digest_but_not_the_time(tmp_path):
    paths = write_series(_volume(1), AXIAL, tmp_path / "dcm")
    old = index_tree(tmp_path / "dcm").series[0].fingerprints[0]
    data = bytearray(paths[0].read_bytes())
    data[-1] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    new = index_tree(tmp_path / "dcm").series[0].fingerprints[0]
    assert new != old and new.split("-")[2] == old.split("-")[2]


# --- the header cache -----------------------------------------------------------------------


def _age(root: Path, seconds: float = 60.0) -> None:
    """Date a file, or every file below a folder, back (the cache does not trust files
    modified just before a save)."""
    then = time.time_ns() - int(seconds * 1e9)
    for path in [root] if root.is_file() else root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(then, then))


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The paths the index reads (not taken from the cache)."""
    seen: list[str] = []
    real = index_module.read_file_headers

    def counting(path):
        seen.append(path)
        return real(path)

    monkeypatch.setattr(index_module, "read_file_headers", counting)
    return seen


def test_warm_cache_reads_only_the_changed_file(tmp_path, reads):
    _, b = _two_subjects(tmp_path / "dcm")
    (tmp_path / "dcm" / "notes.txt").write_text("not DICOM")  # a cached rejection
    _age(tmp_path / "dcm")
    cache = tmp_path / "work" / "header_cache.json"
    cold = index_tree(tmp_path / "dcm", cache_file=cache)
    assert len(reads) == 2 * N_SLICES + 1 and cache.is_file()
    reads.clear()
    assert index_tree(tmp_path / "dcm", cache_file=cache) == cold
    assert reads == []
    _mutate(b[3], SeriesDescription="t1_changed")
    _age(b[3], 30.0)
    warm = index_tree(tmp_path / "dcm", cache_file=cache)
    assert reads == [str(b[3])]
    reads.clear()
    assert warm == index_tree(tmp_path / "dcm")  # as a read without cache
    assert warm != cold


def test_a_damaged_or_foreign_cache_is_ignored_and_rebuilt(tmp_path, reads):
    _two_subjects(tmp_path / "dcm")
    _age(tmp_path / "dcm")
    cache = tmp_path / "header_cache.json"
    reference = index_tree(tmp_path / "dcm")
    reads.clear()
    for damage in (b"\x00garbage{", b"[]", b'{"format": 999, "files": {}}'):
        cache.write_bytes(damage)
        assert index_tree(tmp_path / "dcm", cache_file=cache) == reference
        assert len(reads) == 2 * N_SLICES
        reads.clear()
    data = json.loads(cache.read_text())
    first = next(iter(data["files"]))
    data["files"][first][3] = {"headers": [["not", "a", "header"]]}
    data["files"][next(iter(list(data["files"])[1:]))] = 7
    cache.write_text(json.dumps(data))
    assert index_tree(tmp_path / "dcm", cache_file=cache) == reference
    assert len(reads) == 2  # the two damaged entries only
    reads.clear()
    data["reader"] = "0" * 16  # written by other code
    cache.write_text(json.dumps(data))
    assert index_tree(tmp_path / "dcm", cache_file=cache) == reference
    assert len(reads) == 2 * N_SLICES


def test_recently_modified_files_are_not_cached(tmp_path, reads):
    _two_subjects(tmp_path / "dcm")  # just written: within the racy window
    cache = tmp_path / "header_cache.json"
    index_tree(tmp_path / "dcm", cache_file=cache)
    reads.clear()
    index_tree(tmp_path / "dcm", cache_file=cache)
    assert len(reads) == 2 * N_SLICES


def test_a_run_keeps_its_index_and_cache_in_the_work_dir(tmp_path):
    from anatprep.pipelines.config import Config
    from anatprep.pipelines.execution import index_input

    _two_subjects(tmp_path / "dcm")
    _age(tmp_path / "dcm")
    work = tmp_path / "work"
    table = index_input(tmp_path / "dcm", work, Config())
    assert len(table.series) == 2 and (work / "index" / "header_cache.json").is_file()
    assert SeriesTable.load(work / "index" / "series_table.json") == table
    assert all(len(s.fingerprints) == len(s.files) for s in table.series)
