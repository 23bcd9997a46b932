"""The fast header scanner against pydicom (the reference reader) on every encoding it walks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from anatprep.interfaces.dicomio.headers import read_header, read_slice_header
from anatprep.interfaces.dicomio.pixels import read_frames
from anatprep.interfaces.dicomio.scan import (
    FIELDS,
    GE_IMAGE_TYPE,
    ScannedHeader,
    ScanUnsupported,
    scan_file,
)
from anatprep.pipelines.synthetic import write_series


def _reference(ds: pydicom.Dataset, keyword: str, kind: str):
    value = ds[keyword].value
    if kind == "ds":
        if isinstance(value, pydicom.multival.MultiValue):
            return tuple(float(v) for v in value)
        return float(value)
    if kind == "strs":
        return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)
    if kind in ("int", "us"):
        return int(value)
    if kind == "uss":
        return tuple(int(v) for v in (value if isinstance(value, list | tuple) else [value]))
    if kind in ("fl", "fd"):  # binary floats: one number, or a tuple of several
        if isinstance(value, pydicom.multival.MultiValue | list | tuple):
            return tuple(float(v) for v in value) if len(value) != 1 else float(value[0])
        return float(value)
    return str(value).strip()


def _assert_same_fields(path: Path) -> ScannedHeader:
    scanned = scan_file(path)
    ds = pydicom.dcmread(path)
    for keyword, kind in FIELDS.values():
        if not tag_for_keyword(keyword):  # private values stored under our own names
            continue
        if keyword in ds and ds[keyword].value not in (None, ""):
            assert scanned.get(keyword) == _reference(ds, keyword, kind), keyword
    offset = scanned.pixel_offset
    raw = path.read_bytes()[offset : offset + scanned.pixel_length]
    assert raw == ds.PixelData
    return scanned


def _with_sequences(path: Path, syntax: str) -> Path:
    """Rewrite a file with nested sequences of undefined length before its geometry tags."""
    ds = pydicom.dcmread(path)
    inner = Dataset()
    inner.CodeValue = "X"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([item, item])
    ds.file_meta.TransferSyntaxUID = syntax
    out = path.with_name(path.name + f".{syntax.name.split()[0]}.dcm")
    ds.save_as(out, enforce_file_format=True)
    return out


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_fields_and_pixels_equal_pydicom(tmp_path, syntax):
    (path, *_) = write_series(np.arange(8 * 6 * 2).reshape(8, 6, 2), np.eye(4), tmp_path / "s")
    scanned = _assert_same_fields(_with_sequences(path, syntax))
    assert scanned.transfer_syntax == syntax


def test_pixels_read_like_pydicom(tmp_path):
    vol = np.random.default_rng(1).integers(0, 4000, size=(7, 5, 3))
    paths = write_series(vol, np.eye(4), tmp_path / "s")
    for path in paths:
        header = read_header(path)
        assert isinstance(header, ScannedHeader)
        np.testing.assert_array_equal(
            read_frames(path, header)[0], pydicom.dcmread(path).pixel_array
        )


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_other_encodings_fall_back_to_pydicom(tmp_path, syntax):
    (path, *_) = write_series(np.ones((6, 6, 2)), np.eye(4), tmp_path / "s")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    out = tmp_path / "other.dcm"
    pydicom.dcmwrite(
        out,
        ds,
        little_endian=syntax != ExplicitVRBigEndian,
        implicit_vr=False,
        enforce_file_format=True,
    )
    with pytest.raises(ScanUnsupported):
        scan_file(out)
    header = read_header(out)
    assert isinstance(header, pydicom.Dataset)
    assert read_slice_header(out).rows == 6
    np.testing.assert_array_equal(read_frames(out, header)[0], pydicom.dcmread(out).pixel_array)


def test_not_dicom_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ScanUnsupported):
        scan_file(path)


@pytest.mark.slow
def test_real_files_equal_pydicom(data_dir):
    """Every real file of the dcm_qa sets: each field equal to pydicom's, pixels located."""
    n = 0
    for path in sorted((data_dir / "dicom").glob("*/In/**/*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        try:
            scanned = scan_file(path)
        except ScanUnsupported:  # left to pydicom: only encodings the scanner does not walk
            syntax = str(ds.file_meta.TransferSyntaxUID)
            assert syntax in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"), (path, syntax)
            continue
        for keyword, kind in FIELDS.values():
            if keyword == GE_IMAGE_TYPE:
                if (0x0043, 0x102F) in ds:
                    assert scanned[keyword] == int(ds[0x0043, 0x102F].value), path
            elif not tag_for_keyword(keyword):
                continue
            elif keyword in ds and ds[keyword].value not in (None, ""):
                assert scanned.get(keyword) == _reference(ds, keyword, kind), (path, keyword)
        assert (scanned.pixel_offset is not None) == ("PixelData" in pydicom.dcmread(path)), path
        n += 1
    assert n > 900
