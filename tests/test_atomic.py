"""One atomic writer (:mod:`anatprep.interfaces.atomic`): every file is written under a
temporary name journaled under the run's lock, so the next holder of the lock removes it
when the run was killed before the rename (:mod:`anatprep.interfaces.part_journal`)."""

from __future__ import annotations

import os

import pytest

from anatprep.interfaces import atomic
from anatprep.interfaces.brainmask import extract
from anatprep.interfaces.part_journal import JOURNAL_NAME, LOCK_NAME


@pytest.fixture
def renames(monkeypatch, tmp_path) -> list[tuple[str, list[str]]]:
    """Each rename into place: the temporary name, and the files the journal of the run
    holding ``tmp_path`` lists at that moment (a run killed just before the rename would
    leave exactly these for the next holder to remove)."""
    (tmp_path / LOCK_NAME).write_text("")
    seen: list[tuple[str, list[str]]] = []
    real = os.replace

    def replace(src, dst):
        journal = (tmp_path / JOURNAL_NAME).read_text().splitlines()
        seen.append((str(src), journal))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return seen


def test_copy_file_streams_the_bytes_unchanged(tmp_path, renames):
    data = os.urandom(3 * (1 << 22) + 17)  # several chunks and a remainder
    (tmp_path / "src.bin").write_bytes(data)
    out = atomic.copy_file(tmp_path / "src.bin", tmp_path / "sub" / "dst.bin")
    assert out.read_bytes() == data and oct(out.stat().st_mode & 0o777) == "0o644"
    ((tmp, strays),) = renames
    assert strays == [tmp]


def test_brain_extraction_places_its_transforms_with_the_atomic_writer(tmp_path, renames):
    """The warp and affine a brain extraction keeps are copied as every other output is: an
    interrupted copy is a stray file the next run removes."""
    (tmp_path / "warp0.nii.gz").write_bytes(b"warp")
    final = tmp_path / "out" / "template_to_t1w_warp.nii.gz"
    assert extract._place(tmp_path / "warp0.nii.gz", final) == str(final)
    assert final.read_bytes() == b"warp"
    ((tmp, strays),) = renames
    assert strays == [tmp]
