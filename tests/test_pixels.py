"""Stored bits: samples keep only their BitsStored low bits, on both pixel paths, every vendor.

Old scanners leave other bits above BitsStored (a Siemens VB12 EPI stores 12 bits in 16 and
some voxels read exactly 4096 too high unless masked).  Synthetic files carry random garbage in
every bit above BitsStored.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np
import pydicom
import pytest
from conftest import assert_same_image, run_dcm2niix

from anatprep.interfaces.dicomio.dicom_file import UnusableFile
from anatprep.interfaces.dicomio.headers import read_header
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.pixels import keep_stored_bits, read_frames
from anatprep.interfaces.dicomio.series_to_nifti import SeriesConversionError, convert_entry
from anatprep.pipelines.synthetic import write_series

SHAPE = (12, 10, 4)


def _garbage_series(
    folder: Path, bits_stored: int, signed: bool, high_bit: int | None = None, seed: int = 0
) -> list[tuple[Path, np.ndarray]]:
    """A series whose every 16-bit sample is random (garbage above BitsStored); returns each
    file with its raw samples."""
    rng = np.random.default_rng(seed)
    paths = write_series(np.zeros(SHAPE), np.diag([1.0, 1.0, 1.0, 1.0]), folder, signed=signed)
    out = []
    for path in paths:
        ds = pydicom.dcmread(path)
        raw = rng.integers(0, 1 << 16, SHAPE[0] * SHAPE[1]).astype(np.uint16)
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1 if high_bit is None else high_bit
        ds.PixelData = raw.tobytes()
        ds.save_as(path)
        out.append((path, raw.reshape(SHAPE[1], SHAPE[0])))
    return out


def _expected(raw: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    value = raw.astype(np.int64) & ((1 << bits_stored) - 1)
    if signed:
        value = np.where(value >= 1 << (bits_stored - 1), value - (1 << bits_stored), value)
    return value


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits_stored", [8, 10, 12, 15])
def test_fast_and_pydicom_paths_keep_stored_bits(tmp_path, bits_stored, signed):
    for path, raw in _garbage_series(tmp_path, bits_stored, signed, seed=bits_stored):
        scanned = read_header(path)
        fast = read_frames(path, scanned)  # the scanner's native fast path
        slow = read_frames(path, pydicom.dcmread(path, stop_before_pixels=True))  # pydicom
        want = _expected(raw, bits_stored, signed)
        np.testing.assert_array_equal(fast[0].astype(np.int64), want)
        np.testing.assert_array_equal(slow[0].astype(np.int64), want)
        assert fast.dtype == slow.dtype == np.dtype(np.int16 if signed else np.uint16)


@pytest.mark.parametrize("signed", [False, True])
def test_12_bit_garbage_matches_dcm2niix(tmp_path, signed):
    """dcm2niix masks (unsigned) or sign-extends (signed) 12-bit samples: so do we."""
    files = _garbage_series(tmp_path / "dcm", 12, signed, seed=3)
    table = index_tree(tmp_path / "dcm")
    nii, _ = convert_entry(table.series[0], tmp_path / "ours")
    ours = nb.load(nii)
    ref = nb.load(run_dcm2niix(tmp_path / "dcm", tmp_path / "ref")[0])
    assert_same_image(ours, ref)
    data = np.asanyarray(ours.dataobj).astype(np.int64)
    lo, hi = (-2048, 2047) if signed else (0, 4095)
    assert data.min() >= lo and data.max() <= hi
    every = np.concatenate([_expected(raw, 12, signed).ravel() for _, raw in files])
    np.testing.assert_array_equal(np.sort(data.ravel()), np.sort(every))


def test_inconsistent_high_bit_is_refused(tmp_path):
    """HighBit 15 with BitsStored 12: the value could sit in the low or in the high bits;
    the series fails with the reason instead of a guess."""
    _garbage_series(tmp_path / "dcm", 12, False, high_bit=15)
    table = index_tree(tmp_path / "dcm")
    with pytest.raises(SeriesConversionError, match="HighBit 15 with BitsStored 12"):
        convert_entry(table.series[0], tmp_path / "ours")


def test_keep_stored_bits_leaves_full_width_and_read_only_input_alone():
    full = np.array([[0xFFFF, 0x1234]], dtype=np.uint16)
    header = {"BitsStored": 16, "HighBit": 15, "PixelRepresentation": 0}
    assert keep_stored_bits(full, header, "x") is full
    frozen = np.array([[0xF123]], dtype=np.uint16)
    frozen.flags.writeable = False
    out = keep_stored_bits(frozen, {"BitsStored": 12, "PixelRepresentation": 0}, "x")
    assert out[0, 0] == 0x123 and frozen[0, 0] == 0xF123
    with pytest.raises(UnusableFile, match="HighBit 11 with BitsStored 10"):
        keep_stored_bits(full, {"BitsStored": 10, "HighBit": 11}, "x")


def test_multi_frame_pixels_found_by_scan_equal_pydicom(data_dir):
    """An enhanced frame's header (parsed by pydicom for its frame groups) carries no pixel
    offset: the file's own scan finds the pixels, read as pydicom decodes them."""
    from anatprep.interfaces.dicomio.headers import read_headers

    path = sorted((data_dir / "dicom" / "dcm_qa_xa30" / "In" / "5_anat-T1w_acq-tfl").iterdir())[0]
    frame = read_headers(path)[0]
    assert frame.pixel_offset is None
    fast = read_frames(path, frame)
    np.testing.assert_array_equal(fast, pydicom.dcmread(path).pixel_array)


def test_scanned_twin_of_another_layout_is_not_used(data_dir):
    from anatprep.interfaces.dicomio.headers import read_headers
    from anatprep.interfaces.dicomio.pixels import _scanned_twin

    path = sorted((data_dir / "dicom" / "dcm_qa_xa30" / "In" / "5_anat-T1w_acq-tfl").iterdir())[0]
    frame = read_headers(path)[0]
    assert _scanned_twin(path, frame) is not frame
    frame["BitsStored"] = 8  # a header that disagrees with the file: no fast path from it
    assert _scanned_twin(path, frame) is frame
