"""Siemens slice timing without MosaicRefAcqTimes: old mosaics (protocol slice order) and
classic 2D series (AcquisitionTime per file)."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry
from anatprep.interfaces.dicomio.siemens import (
    acquisition_time_slice_times,
    parse_ascconv,
    protocol_slice_times,
)
from anatprep.pipelines.synthetic import write_series

ASCCONV = b"""junk before
### ASCCONV BEGIN ###
alTR[0]                                  = 2200000
sSliceArray.lSize                        = 35
sSliceArray.ucMode                       = 0x4
lDelayTimeInTR                           = 10000
tProtocolName                            = "fMRI  # not a comment"
### ASCCONV END ###
sSliceArray.ucMode = 0x1
"""


def test_parse_ascconv_reads_the_first_block_only():
    protocol = parse_ascconv(ASCCONV)
    assert protocol["sSliceArray.ucMode"] == "0x4"
    assert protocol["lDelayTimeInTR"] == "10000"
    assert protocol["alTR[0]"] == "2200000"
    assert parse_ascconv(b"no protocol here") == {}


@pytest.mark.parametrize(
    ("mode", "n", "ranks"),
    [
        ("0x1", 4, [0, 1, 2, 3]),  # ascending
        ("0x2", 4, [3, 2, 1, 0]),  # descending
        ("0x4", 5, [0, 3, 1, 4, 2]),  # interleaved, odd: first slice first
        ("0x4", 4, [2, 0, 3, 1]),  # interleaved, even: second slice first
        ("1", 3, [0, 1, 2]),  # VD/VE protocols write decimal
    ],
)
def test_protocol_slice_times(mode, n, ranks):
    protocol = {"sSliceArray.ucMode": mode, "lDelayTimeInTR": "100000"}
    times = protocol_slice_times(protocol, n, 2100.0)
    step = (2100.0 - 100.0) / n
    assert times == pytest.approx([r * step for r in ranks])


@pytest.mark.parametrize(
    "extra",
    [
        {"sSliceArray.ucMode": "0x3"},  # no known order
        {"sSliceArray.ucImageNumb": "0x1"},  # reversed image numbering
        {"sSliceAcceleration.lMultiBandFactor": "3"},  # multiband pattern unknown
    ],
)
def test_protocol_slice_times_refused(extra):
    protocol = {"sSliceArray.ucMode": "0x1", **extra}
    assert protocol_slice_times(protocol, 10, 2000.0) is None
    assert protocol_slice_times({}, 10, 2000.0) is None


def test_old_mosaic_slice_timing_from_protocol(data_dir, tmp_path):
    """VB12 and VB13 mosaics carry no MosaicRefAcqTimes: ascending over TR - DelayTimeInTR
    (2200 - 10 ms), as dcm2niix writes them."""
    for folder, n in (("B12", 35), ("B13", 36)):
        table = index_tree(data_dir / "dicom" / "dcm_qa_stc" / "In" / "Siemens" / folder)
        (entry,) = table.series
        _, js = convert_entry(entry, tmp_path / folder)
        sidecar = json.loads(js.read_text())
        assert sidecar["SliceTiming"] == pytest.approx([k * 2.19 / n for k in range(n)], rel=1e-5)
        assert "MultibandAccelerationFactor" not in sidecar


def _series_2d(folder, times, tr=400, acquisition="2D"):
    vol = np.random.default_rng(0).integers(0, 1000, (8, 6, len(times))).astype(float)
    paths = write_series(
        vol,
        np.diag([2.0, 2.0, 3.0, 1.0]),
        folder,
        meta={"MRAcquisitionType": acquisition, "RepetitionTime": tr},
    )
    for path, time in zip(paths, times, strict=True):
        ds = pydicom.dcmread(path)
        ds.AcquisitionTime = time
        ds.save_as(path)
    return paths


def _sidecar(folder, out):
    (entry,) = index_tree(folder).series
    _, js = convert_entry(entry, out / "s")
    return json.loads(js.read_text())


def test_classic_2d_slice_timing_from_acquisition_time(tmp_path):
    """Exact differences of AcquisitionTime (E11 2D, e.g. a field map: interleaved)."""
    times = ["140136.320000", "140136.120000", "140136.332500", "140136.132500"]
    _series_2d(tmp_path / "dcm", times)
    sidecar = _sidecar(tmp_path / "dcm", tmp_path)
    assert sidecar["SliceTiming"] == pytest.approx([0.2, 0.0, 0.2125, 0.0125])
    assert "MultibandAccelerationFactor" not in sidecar


def test_classic_2d_simultaneous_slices_give_multiband(tmp_path):
    times = ["120000.000000", "120000.500000", "120000.000000", "120000.500000"]
    _series_2d(tmp_path / "dcm", times, tr=1000)
    sidecar = _sidecar(tmp_path / "dcm", tmp_path)
    assert sidecar["SliceTiming"] == [0, 0.5, 0, 0.5]
    assert sidecar["MultibandAccelerationFactor"] == 2


@pytest.mark.parametrize(
    ("times", "tr", "acquisition"),
    [
        (["120000.000000"] * 4, 400, "2D"),  # all equal: no timing
        (["120000.000000", "120000.100000", "120000.200000", "120001.000000"], 400, "2D"),
        (["120000.000000", "120000.100000", "120000.200000", "120000.300000"], 400, "3D"),
    ],
)
def test_classic_slice_timing_left_out(tmp_path, times, tr, acquisition):
    _series_2d(tmp_path / "dcm", times, tr=tr, acquisition=acquisition)
    assert "SliceTiming" not in _sidecar(tmp_path / "dcm", tmp_path)


def test_acquisition_time_needs_every_time():
    assert acquisition_time_slice_times([{"AcquisitionTime": "120000"}, {}], 1000) is None


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("dcm_qa_fmap/In/Siemens/4_gre_field_ph", (0.00519, 0.00765)),  # E11: CSA series header
        ("dcm_qa_xa30/In/9_gre_field_mapping", (0.01, 0.01246)),  # XA30 enhanced: shared SDS
    ],
)
def test_phase_difference_echo_times(data_dir, tmp_path, folder, expected):
    table = index_tree(data_dir / "dicom" / folder)
    phase = [e for e in table.series if e.part == "phase"]
    assert phase
    for entry in phase:
        _, js = convert_entry(entry, tmp_path / entry.id)
        sidecar = json.loads(js.read_text())
        assert (sidecar["EchoTime1"], sidecar["EchoTime2"]) == expected


def _with_protocol(path, protocol: bytes, image_type, echo_time):
    """Give a synthetic file an XA classic-style protocol: private block 'SIEMENS MR SDS 01'
    at the top level, element xx19."""
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0021, "SIEMENS MR SDS 01", create=True)
    block.add_new(0x19, "OB", protocol)
    ds.ImageType = image_type
    ds.EchoTime = echo_time
    ds.save_as(path)


FIELDMAP = b"""<XProtocol> ...
### ASCCONV BEGIN object=MrProtDataImpl@MrProtocolData version=51130001 ###
lContrasts                               = %d
alTE[0]                                  = 4920
alTE[1]                                  = 7380
### ASCCONV END ###
"""


@pytest.mark.parametrize(
    ("contrasts", "image_type", "echo_time", "written"),
    [
        (2, ["ORIGINAL", "PRIMARY", "P", "ND"], 7.38, True),
        (2, ["ORIGINAL", "PRIMARY", "M", "ND"], 7.38, False),  # magnitude
        (2, ["ORIGINAL", "PRIMARY", "P", "ND"], 4.92, False),  # phase of the first echo
        (3, ["ORIGINAL", "PRIMARY", "P", "ND"], 7.38, False),  # multi-echo: not a phasediff
    ],
)
def test_phase_difference_echo_times_synthetic(tmp_path, contrasts, image_type, echo_time, written):
    vol = np.random.default_rng(1).integers(0, 4000, (8, 6, 3)).astype(float)
    paths = write_series(vol, np.diag([2.0, 2.0, 3.0, 1.0]), tmp_path / "dcm")
    for path in paths:
        _with_protocol(path, FIELDMAP % contrasts, image_type, echo_time)
    sidecar = _sidecar(tmp_path / "dcm", tmp_path)
    if written:
        assert (sidecar["EchoTime1"], sidecar["EchoTime2"]) == (0.00492, 0.00738)
    else:
        assert "EchoTime1" not in sidecar and "EchoTime2" not in sidecar


def test_field_map_slice_timing_exact_where_dcm2niix_rounds(data_dir, tmp_path):
    """E11 gre_field_mapping: our SliceTiming is the exact AcquisitionTime differences.

    dcm2niix holds HHMMSS.ffffff in single precision (steps of 1/128 s at 14:00), so its times
    (relative to the earliest) are off by up to 16 ms and two distinct times can collapse into
    one: it then reports a
    MultibandAccelerationFactor of 2 for this single-band field map.  This test records that
    known deviation: dcm2niix's values are exactly the single-precision rounding of ours.
    """
    from conftest import run_dcm2niix

    folder = data_dir / "dicom" / "dcm_qa_fmap" / "In" / "Siemens" / "4_gre_field_ph"
    (entry,) = index_tree(folder).series
    _, js = convert_entry(entry, tmp_path / "ours")
    ours = json.loads(js.read_text())
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in entry.files]
    seconds = [
        int(t[:2]) * 3600 + int(t[2:4]) * 60 + float(t[4:])
        for t in (str(h.AcquisitionTime) for h in headers)
    ]
    assert ours["SliceTiming"] == pytest.approx([s - min(seconds) for s in seconds], abs=1e-6)
    assert "MultibandAccelerationFactor" not in ours

    (ref_nii,) = run_dcm2niix(folder, tmp_path / "ref")
    ref = json.loads(ref_nii.with_suffix(".json").read_text())
    single = [np.float32(float(str(h.AcquisitionTime))) for h in headers]
    text = [f"{float(v):+013.5f}" for v in single]  # dcm2niix's own rendering: +HHMMSS.fffff
    as_seconds = [np.float32(int(t[:3]) * 3600 + int(t[3:5]) * 60 + float(t[5:])) for t in text]
    rounded = [float(np.float32(v - min(as_seconds))) for v in as_seconds]
    assert ref["SliceTiming"] == pytest.approx(rounded, abs=1e-5)
    gap = np.abs(np.subtract(ours["SliceTiming"], ref["SliceTiming"]))
    assert gap.max() < 1 / 64
    assert ref.get("MultibandAccelerationFactor") == 2
