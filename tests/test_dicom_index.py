"""Header-only indexing: grouping, splitting, ordering and the reasons files are unusable."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pydicom
import pytest

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series import SeriesGeometryError, check_uniform_spacing
from anatprep.pipelines.synthetic import write_series

AXIAL = np.diag([-1.0, -1.0, 2.0, 1.0])
SAGITTAL = np.array([[0, 0, 2.0, 0], [-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]])


def test_three_plane_localizer_split_by_orientation(tmp_path):
    """One SeriesInstanceUID holding two orientations becomes two groups."""
    vol = np.ones((8, 8, 3))
    write_series(vol, AXIAL, tmp_path / "loc", study_key="loc", prefix="A")
    write_series(vol, SAGITTAL, tmp_path / "loc", study_key="loc", prefix="S")
    table = index_tree(tmp_path)
    assert len(table.series) == 2
    assert {s.n_slices for s in table.series} == {3}


def test_files_listed_in_spatial_order(tmp_path):
    paths = write_series(np.ones((8, 8, 6)), AXIAL, tmp_path / "s", descending=True)
    (entry,) = index_tree(tmp_path).series
    assert entry.files == tuple(str(p) for p in paths)  # slice order, not instance order
    assert entry.n_slices == 6 and entry.n_volumes == 1


def test_echoes_split(tmp_path):
    vol = np.ones((8, 8, 4))
    for echo in (1, 2):
        paths = write_series(vol, AXIAL, tmp_path / "me", prefix=f"E{echo}")
        for p in paths:
            ds = pydicom.dcmread(p)
            ds.EchoNumbers = echo
            ds.save_as(p)
    assert sorted(s.echo_number for s in index_tree(tmp_path).series) == [1, 2]


def test_unusable_files_listed_with_reasons(tmp_path):
    write_series(np.ones((8, 8, 4)), AXIAL, tmp_path / "ok")
    (tmp_path / "ok" / "notes.txt").write_text("scanner notes")
    (tmp_path / "ok" / "empty.dcm").write_bytes(b"")
    header_only = write_series(
        np.ones((8, 8, 1)), AXIAL, tmp_path / "h", series_number=9, study_key="h"
    )[0]
    ds = pydicom.dcmread(header_only)
    del ds.PixelData
    ds.save_as(header_only)
    table = index_tree(tmp_path)
    reasons = {u.path.rsplit("/", 1)[1]: u.reason for u in table.unusable}
    assert "not a DICOM file" in reasons["notes.txt"]
    assert "not a DICOM file" in reasons["empty.dcm"] or "unreadable" in reasons["empty.dcm"]
    assert "no pixel data" in reasons[header_only.name]
    assert [s.n_slices for s in table.series if not s.problems] == [4]


def test_gzipped_files_read_transparently(tmp_path):
    paths = write_series(np.ones((8, 8, 3)), AXIAL, tmp_path / "gz")
    for p in paths:
        p.with_name(p.name + ".gz").write_bytes(gzip.compress(p.read_bytes()))
        p.unlink()
    (entry,) = index_tree(tmp_path).series
    assert entry.n_slices == 3 and all(f.endswith(".dcm.gz") for f in entry.files)


def test_table_has_no_identifiers(tmp_path):
    write_series(np.ones((8, 8, 3)), AXIAL, tmp_path / "s")
    text = index_tree(tmp_path).save(tmp_path / "series_table.json").read_text()
    for needle in ("Doe^Jane", "PID-0042", "19710203", "Saint Nowhere", "1.2.826.0.1.3680043"):
        assert needle not in text
    assert json.loads(text)["series"][0]["series_description"] == "t1_mprage_sag_p2_iso"


def test_spacing_checks():
    assert check_uniform_spacing([0.0, 1.0, 2.0, 3.0]) == pytest.approx(1.0)
    with pytest.raises(SeriesGeometryError, match="2 missing"):
        check_uniform_spacing([0.0, 1.0, 4.0, 5.0])
    with pytest.raises(SeriesGeometryError, match="share one position"):
        check_uniform_spacing([0.0, 0.0])


def test_symlinked_folders_are_followed_once(tmp_path):
    write_series(np.ones((8, 8, 4)), AXIAL, tmp_path / "real" / "s")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "subj").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real", target_is_directory=True)
    (entry,) = index_tree(tmp_path / "in").series
    assert entry.n_slices == 4


@pytest.mark.parametrize("vendor", ["GE", "Philips"])
def test_b0_map_in_hz_is_not_a_magnitude_part(data_dir, vendor):
    """A B0 map in Hz beside its magnitude: its own part, so no magnitude-only rule takes it."""
    from anatprep.interfaces.dicomio.index import index_tree

    table = index_tree(data_dir / "dicom" / "dcm_qa_fmap" / "In" / vendor)
    assert sorted(e.part for e in table.series) == ["fieldmaphz", "mag"]
