"""GE private values, checked against dcm2niix's rules: protocol block, slice timing, echo
spacing, phase polarity, diffusion directions, B0 field maps; and every GE series of the
shared dcm_qa sets against live dcm2niix."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pydicom
import pytest

from anatprep.interfaces.dicomio import ge
from anatprep.interfaces.dicomio.diffusion import fsl_bvecs
from anatprep.interfaces.dicomio.scan import (
    GE_ASSET,
    GE_B_VALUE,
    GE_DIFFUSION_DIRECTIONS,
    GE_DIFFUSION_X,
    GE_DIFFUSION_Y,
    GE_DIFFUSION_Z,
    GE_ECHO_SPACING,
    GE_GROUP_DELAY,
    GE_IMAGE_TYPE,
    GE_INTERNAL_SEQUENCE,
    GE_LOCATIONS,
    GE_MULTIBAND,
    GE_PROTOCOL,
    GE_PULSE_SEQUENCE,
    GE_USER_DATA,
    GE_USER_DATA_12,
    GE_USER_DATA_15,
    GE_VELOCITY_ENCODE_SCALE,
    ScannedHeader,
    private_field,
)


def test_protocol_block_after_binary_prefix():
    text = b'SLICEORDER "1"\nVIEWORDER "0"\nPHASEFOV "1.00"\n'
    raw = b"\x00\x01\x02\x03" + gzip.compress(text)
    assert ge.protocol_block(raw) == {"SLICEORDER": "1", "VIEWORDER": "0", "PHASEFOV": "1.00"}
    assert ge.protocol_block(b"no gzip here") == {}
    assert ge.protocol_block(b"\x1f\x8bbroken") == {}
    assert ge.protocol_block(None) == {}


def test_phase_polarity_from_the_standard_tag():
    # GE Rx27+: LINEAR is the flipped polarity, REVERSE_LINEAR the unflipped one
    assert ge.phase_positive({"RectilinearPhaseEncodeReordering": "LINEAR"}) == 0
    assert ge.phase_positive({"RectilinearPhaseEncodeReordering": "REVERSE_LINEAR"}) == 1
    assert ge.phase_positive({}) is None
    # the standard tag wins over the private block
    unflipped = _user_data(flipped=False)
    assert ge.phase_positive({"RectilinearPhaseEncodeReordering": "LINEAR"}, unflipped) == 0
    assert ge.phase_positive({}, _user_data(flipped=True)) == 0


@pytest.mark.parametrize(("cycle", "positive"), [(None, 0), (1, 1), (2, None), (3, None)])
def test_phase_polarity_of_pepolar_sequence(cycle, positive):
    header = ScannedHeader(
        RectilinearPhaseEncodeReordering="LINEAR", **{GE_PULSE_SEQUENCE: "epi_pepolar"}
    )
    if cycle is not None:
        header[GE_USER_DATA_12] = float(cycle)
    assert ge.phase_positive(header) == positive


def _user_data(
    version: float = 26.002,
    epi: bool = True,
    flipped: bool = False,
    view_order: int = 0,
    offset: int = 3232,
    size: int = 7336,
) -> bytes:
    """A UserDefineData block laid out as GE writes it (offsets from the ge module docs)."""
    raw = bytearray(size)
    struct.pack_into("<H", raw, 24, offset)
    struct.pack_into("<f", raw, offset, version)
    base, view_at = (offset + 0x4C, 0x308) if version >= 25.002 else (offset, 0x394)
    struct.pack_into("<H", raw, base + 0x3A, 0x0801 if epi else 0x0001)
    struct.pack_into("<H", raw, base + 0x30, 0x0004 if flipped else 0x0010)
    struct.pack_into("<H", raw, base + view_at, view_order)
    return bytes(raw)


@pytest.mark.parametrize("version", [24.0, 26.002])
@pytest.mark.parametrize(
    ("flipped", "view_order", "positive"),
    [(False, 0, 1), (True, 0, 0), (False, 2, 0), (True, 2, 1), (False, 1, 1)],
)
def test_user_data_polarity(version, flipped, view_order, positive):
    raw = _user_data(version=version, flipped=flipped, view_order=view_order)
    assert ge.user_data_phase_positive(raw) == positive
    assert ge.polarity_name(positive) == ("Unflipped" if positive else "Flipped")


def test_user_data_polarity_unknown():
    assert ge.user_data_phase_positive(None) is None
    assert ge.user_data_phase_positive(b"\x00" * 20) is None
    assert ge.user_data_phase_positive(_user_data(epi=False)) is None
    assert ge.user_data_phase_positive(_user_data(version=3.0)) is None
    assert ge.user_data_phase_positive(_user_data(size=3232 + 900)) is None  # truncated
    assert ge.polarity_name(None) is None


def test_private_field_same_for_scanned_and_pydicom():
    raw = _user_data()
    scanned = ScannedHeader({GE_USER_DATA: raw, GE_ECHO_SPACING: 540})
    ds = pydicom.Dataset()
    ds.add_new((0x0043, 0x102A), "OB", raw)
    ds.add_new((0x0043, 0x102C), "UN", struct.pack("<h", 540))  # unknown to pydicom
    for header in (scanned, ds):
        assert private_field(header, GE_USER_DATA) == raw
        assert private_field(header, GE_ECHO_SPACING) == 540
    assert private_field(pydicom.Dataset(), GE_USER_DATA) is None


def _block(**values: str) -> bytes:
    text = "".join(f'{k} "{v}"\n' for k, v in values.items())
    return struct.pack("<I", 100) + gzip.compress(text.encode())


def _header(**fields) -> ScannedHeader:
    base = {"Manufacturer": "GE MEDICAL SYSTEMS", "MRAcquisitionType": "2D"}
    return ScannedHeader({**base, **fields})


@pytest.mark.parametrize(
    ("name", "internal", "delay", "version"),
    [
        ("epiRT", "EPI", None, ge.EPI_RT),
        ("epi", "EPI", None, ge.EPI),
        ("epi", "EPI", 0.0, ge.EPI_RT),  # a group delay tag marks epiRT
        ("epi2", "EPI2", None, ge.EPI2),
        ("epi2", "EPI", None, ge.EPI),  # gradient-echo internal name: plain epi
        ("epi_pepolar", "EPI", None, ge.EPI_PEPOLAR),
        ("MP-RAGE", "EFGRE3D", None, None),
    ],
)
def test_epi_version(name, internal, delay, version):
    header = _header(**{GE_PULSE_SEQUENCE: name, GE_INTERNAL_SEQUENCE: internal})
    if delay is not None:
        header[GE_GROUP_DELAY] = delay
    assert ge.epi_version(header) == version


def test_sequence_name_from_pulse_sequence_name():
    assert ge.sequence_name(_header(**{GE_PULSE_SEQUENCE: "epiRT"})) == "epiRT"
    assert ge.sequence_name(_header(SequenceName="x", **{GE_PULSE_SEQUENCE: "epi"})) == "x"
    assert ge.sequence_name(_header()) is None


def test_software_version():
    parse = ge.software_version
    assert parse(_header(SoftwareVersions=("27", "LX", "MR Software release:RX27.0_R02"))) == (
        27.0,
        False,
    )
    assert parse(_header(SoftwareVersions=("27", "LX", "MR Software release:DV27.0_R03"))) == (
        27.0,
        True,
    )
    assert parse(_header(SoftwareVersions=("28", "LX", "MR29.1_EA_2039.g")))[1] is True
    assert parse(_header(SoftwareVersions="30\\LX\\SIGNA_LX1.MR30.1_R01_2322.c"))[0] == 30.1
    assert parse(_header(SoftwareVersions=("14", "LX", "MR Software release:14.0_M4"))) is None


def test_excitation_times_sequential_and_interleaved():
    assert ge.excitation_times(4, 1, 2000.0, False, True, 0.0) == [0, 500, 1000, 1500]
    # interleaved: odd prescription positions (1st, 3rd, 5th) first
    assert ge.excitation_times(5, 1, 1000.0, True, True, 0.0) == [0, 600, 200, 800, 400]
    # the group delay is not part of the slice spread
    assert ge.excitation_times(2, 1, 5000.0, True, True, 3000.0) == [0, 1000]


def test_excitation_times_hyperband():
    # 48 slices, HB3: 16 excitations; from 27.0 R03 the last and third-last swap
    times = ge.excitation_times(48, 3, 2000.0, True, True, 0.0)
    assert times[:16] == [t * 125.0 for t in (0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 15, 7, 14)]
    assert times[16:32] == times[:16] == times[32:]
    # before R03 an even number of excitations gets one more
    older = ge.excitation_times(48, 3, 1700.0, True, False, 0.0)
    assert len(set(older)) == 17 and max(older) == 1600.0
    # HB2 over 9 slices: 5 excitations, the extra slice discarded
    assert ge.excitation_times(9, 2, 1000.0, True, False, 0.0) == [
        0, 600, 200, 800, 400, 0, 600, 200, 800,
    ]  # fmt: skip


def _fmri(**extra) -> ScannedHeader:
    fields = {
        "RepetitionTime": 2000.0,
        "SoftwareVersions": ("28", "LX", "MR Software release:DV28.0_R02_1947.a"),
        GE_PULSE_SEQUENCE: "epiRT",
        GE_INTERNAL_SEQUENCE: "EPI",
        GE_PROTOCOL: _block(SLICEORDER="1", MBACCEL="1", IOPT="EPI, FMRI"),
    }
    return _header(**{**fields, **extra})


def test_timing_epirt_group_delay():
    timing = ge.timing(_fmri(**{GE_GROUP_DELAY: 3.0}), 4, 3)
    assert timing.repetition_time_ms == 5000.0
    assert timing.slice_times == [0, 1.0, 0.5, 1.5]
    assert timing.multiband == 1


def test_timing_hyperband_from_tag_and_block():
    block = _block(SLICEORDER="1", MBACCEL="3", IOPT="EPI, FMRI, HB")
    timing = ge.timing(_fmri(**{GE_PROTOCOL: block, GE_MULTIBAND: ("3", "3", "19")}), 48, 3)
    assert timing.multiband == 3
    assert len(set(timing.slice_times)) == 16
    # early HyperBand: no slice times (the order is not known)
    early = ("25", "LX", "MR Software release:DV25.0_R02")
    assert (
        ge.timing(_fmri(**{GE_PROTOCOL: block, "SoftwareVersions": early}), 48, 3).slice_times
        is None
    )


def test_timing_multiphase_delay():
    def multiphase(**values):
        return _fmri(**{GE_PULSE_SEQUENCE: "epi", GE_PROTOCOL: _block(**values)})

    # no SLICEORDER: interleaved; DELACQ Minimum: no delay
    timing = ge.timing(multiphase(IOPT="MPh, EPI", DELACQ="Minimum", DELACQNOAV="2"), 4, 5)
    assert timing.repetition_time_ms == 2000.0 and timing.slice_times == [0, 1.0, 0.5, 1.5]
    timing = ge.timing(multiphase(IOPT="MPh, EPI", DELACQ="1", DELACQNOAV="1"), 4, 5)
    assert timing.repetition_time_ms == 3000.0 and timing.slice_times == [0, 1.0, 0.5, 1.5]
    assert ge.timing(multiphase(IOPT="MPhVar, EPI", DELACQNOAV="1"), 4, 5).slice_times is None


def test_timing_needs_2d_time_series_and_block():
    assert ge.timing(_fmri(), 4, 1).slice_times is None
    assert ge.timing(_fmri(MRAcquisitionType="3D"), 4, 3).slice_times is None
    assert ge.timing(_fmri(**{GE_PROTOCOL: None}), 4, 3).slice_times is None
    not_epi = {GE_PULSE_SEQUENCE: "fgre", GE_INTERNAL_SEQUENCE: "x"}
    block = _block(SLICEORDER="1")
    assert ge.timing(_fmri(**not_epi, **{GE_PROTOCOL: block}), 4, 3).slice_times is None


@pytest.mark.parametrize(
    ("model", "ud12", "ud15", "timed"),
    [
        ("DISCOVERY MR750", 1.0, 0.0, True),  # no gradient cycling
        ("SIGNA Premier", 1.0, 0.72, True),  # cycling 'special off'
        ("SIGNA Premier", 2.0, 0.0, False),  # 2-TR cycling
        ("SIGNA Premier", 0.0, 0.0, False),  # all-TR cycling
        ("SIGNA UHP", 0.0, 0.53, True),
        ("SIGNA 7.0T", 0.0, 1.2, False),
    ],
)
def test_timing_diffusion(model, ud12, ud15, timed):
    header = _fmri(
        ManufacturerModelName=model,
        RepetitionTime=1000.0,
        **{
            GE_PULSE_SEQUENCE: "epi2",
            GE_INTERNAL_SEQUENCE: "EPI2",
            GE_PROTOCOL: _block(MBACCEL="2", IOPT="EDR, EPI, DIFF, HB"),
            GE_USER_DATA_12: ud12,
            GE_USER_DATA_15: ud15,
        },
    )
    timing = ge.timing(header, 8, 7)
    # interleaved, pre-R03 style: 4 excitations become 5
    assert timing.slice_times == ([0, 0.6, 0.2, 0.8, 0.4, 0, 0.6, 0.2] if timed else None)


def test_effective_echo_spacing():
    # GE README example: 128 lines, ASSET 1.5, PFF, 636 us -> readout 0.055332 s
    header = _header(
        AcquisitionMatrix=(128, 0, 0, 128),
        ScanOptions=("SAT_GEMS", "EPI_GEMS", "PFF"),
        **{GE_ECHO_SPACING: 636, GE_ASSET: (0.666667, 1.0)},
    )
    assert ge.effective_echo_spacing(header) == pytest.approx(0.055332 / 127, rel=1e-6)
    # without partial Fourier the lines round to a multiple of 2: 86 -> 85 x 636 us
    header["ScanOptions"] = ("EPI_GEMS",)
    assert ge.effective_echo_spacing(header) == pytest.approx(85 * 636e-6 / 127)
    for missing in (GE_ECHO_SPACING, GE_ASSET, "AcquisitionMatrix"):
        partial = ScannedHeader({k: v for k, v in header.items() if k != missing})
        assert ge.effective_echo_spacing(partial) is None


def _b0_map(instance: int, **extra) -> ScannedHeader:
    fields = {
        GE_PULSE_SEQUENCE: "B0rf",
        GE_INTERNAL_SEQUENCE: "B0map",
        "ImagesInAcquisition": 32,
        GE_LOCATIONS: 16,
        "InstanceNumber": instance,
        "EchoTime": 4.608,
        GE_VELOCITY_ENCODE_SCALE: -69.077667,
        GE_IMAGE_TYPE: 0,
        "SliceThickness": 5.0,
        "SpacingBetweenSlices": 9.0,
    }
    return _header(**{**fields, **extra})


def test_b0_field_map_halves():
    hz, magnitude = _b0_map(16), _b0_map(17)
    assert ge.is_fieldmap_hz(hz) and not ge.is_fieldmap_hz(magnitude)
    assert ge.image_type_part(hz) == "FIELDMAPHZ" and ge.image_type_part(magnitude) == "MAGNITUDE"
    base = ("ORIGINAL", "PRIMARY", "OTHER")
    assert ge.grouping_image_type(hz, base) == (*base, "FIELDMAPHZ")
    assert ge.grouping_image_type(magnitude, base) == base
    te1, te2 = ge.fieldmap_echo_times(hz)
    assert te1 == pytest.approx(0.004608) and te2 == pytest.approx(0.006912, rel=1e-5)
    assert ge.fieldmap_echo_times(magnitude) is None
    assert ge.fieldmap_echo_times(_b0_map(1, **{GE_VELOCITY_ENCODE_SCALE: 69.0})) is None
    # not a B0 map sequence, or as many images as locations: no Hz half
    assert not ge.is_fieldmap_hz(
        _b0_map(1, **{GE_PULSE_SEQUENCE: "fgre", GE_INTERNAL_SEQUENCE: ""})
    )
    assert not ge.is_fieldmap_hz(_b0_map(1, ImagesInAcquisition=16))


def test_grouping_splits_ge_phase_images():
    phase = _header(**{GE_IMAGE_TYPE: 1})
    assert ge.grouping_image_type(phase, ("ORIGINAL",)) == ("ORIGINAL", "PHASE")
    other = ScannedHeader(Manufacturer="SIEMENS", **{GE_IMAGE_TYPE: 1})
    assert ge.grouping_image_type(other, ("ORIGINAL",)) == ("ORIGINAL",)


AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _dcm2niix_fsl(vector, orientation_class: int, slice_sign: int, column: bool = True):
    """dcm2niix's geCorrectBvecs on one vector (its documented steps)."""
    x, y, z = vector
    v = [x, y, z] if column else [y, -x, z]
    flip = {1: [1, 1, 0], 2: [0, 1, 1], 3: [0, 0, 1]}[orientation_class]
    if slice_sign < 0:
        flip[2] = 1 - flip[2]
    v = [-c if f else c for c, f in zip(v, flip, strict=True)]
    v[1] = -v[1]
    return [-c for c in v]


@pytest.mark.parametrize(
    ("orientation", "klass"),
    [
        (AXIAL, 3),
        ((0.0, 1.0, 0.0, 0.0, 0.0, -1.0), 1),  # sagittal
        ((1.0, 0.0, 0.0, 0.0, 0.0, -1.0), 2),  # coronal
        ((0.99, 0.14, 0.0, -0.14, 0.99, 0.1), 3),  # oblique axial
    ],
)
@pytest.mark.parametrize("slice_sign", [1, -1])
@pytest.mark.parametrize("column", [True, False])
def test_lps_direction_reproduces_dcm2niix_bvec(orientation, klass, slice_sign, column):
    """Through the image axes dcm2niix writes (row, -column, normal), our patient direction
    gives dcm2niix's FSL vector."""
    iop = np.asarray(orientation, dtype=float)
    row = iop[:3] / np.linalg.norm(iop[:3])
    col = iop[3:] - np.dot(iop[3:], row) * row
    col /= np.linalg.norm(col)
    vector = np.array([0.3, -0.5, 0.81])
    lps = ge.lps_direction(vector, [*row, *col], column, slice_sign)
    axes = np.column_stack([row, -col, np.cross(row, col)]) * 2.0
    affine_ras = np.eye(4)
    affine_ras[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ axes
    got = fsl_bvecs(lps[None, :], affine_ras)[:, 0]
    np.testing.assert_allclose(got, _dcm2niix_fsl(vector, klass, slice_sign, column), atol=1e-9)


def _dwi(b: float, vector, **extra) -> ScannedHeader:
    fields = {
        GE_B_VALUE: (b, 8.0, 0.0, 0.0),
        GE_DIFFUSION_X: vector[0],
        GE_DIFFUSION_Y: vector[1],
        GE_DIFFUSION_Z: vector[2],
        GE_DIFFUSION_DIRECTIONS: 6.0,
        "PatientPosition": "HFS",
        "InPlanePhaseEncodingDirection": "COL",
        "ImageOrientationPatient": AXIAL,
    }
    return _header(**{**fields, **extra})


def test_gradient_table():
    table = ge.gradient_table(
        [_dwi(0, (0, 0, 0)), _dwi(1_000_001_000, (0.6, 0.8, 0.0)), _dwi(1000, (0, 0, 0))], 1
    )
    assert [b for b, _ in table] == [0, 1000, 0]  # bias removed; no direction: b = 0
    np.testing.assert_allclose(table[1][1], [-0.6, -0.8, 0.0])
    assert not np.any(table[0][1]) and not np.any(table[2][1])


def test_gradient_table_scaled_b_value():
    # |g| = 0.5: b scaled by |g|^2 (rounded to 5), the direction back to unit length
    b, direction = ge.gradient_table([_dwi(0, (0, 0, 0)), _dwi(1000, (0.0, 0.0, 0.5))], 1)[1]
    assert b == 250.0
    assert np.linalg.norm(direction) == pytest.approx(1.0)


def test_gradient_table_refusals():
    plain = [_dwi(0, (0, 0, 0)), _dwi(0, (0, 0, 0))]
    assert ge.gradient_table(plain, 1) is None  # nothing varies: no diffusion table
    feet_first = [
        _dwi(0, (0, 0, 0), PatientPosition="FFS"),
        _dwi(1000, (1, 0, 0), PatientPosition="FFS"),
    ]
    assert ge.gradient_table(feet_first, 1) is None
    no_dirs = {GE_DIFFUSION_DIRECTIONS: 0.0}
    trace = [_dwi(0, (0, 0, 0), **no_dirs), _dwi(1000, (0, 0, 0), **no_dirs)]
    assert ge.gradient_table(trace, 1) is None  # a trace volume dcm2niix drops
    assert ge.gradient_table([_dwi(0, (0, 0, 0)), _header()], 1) is None


def test_group_delay_read_from_pydicom_and_scanner():
    ds = pydicom.Dataset()
    ds.add_new((0x0043, 0x107C), "UN", struct.pack("<f", 3.0))
    assert private_field(ds, GE_GROUP_DELAY) == 3.0
    assert math.isclose(ge._number(private_field(ds, GE_GROUP_DELAY)), 3.0)


GE_ROWS = {
    "dcm_qa_ge": None,  # every output
    "dcm_qa_fmap": ("6_",),
    "dcm_qa_stc": ("15_", "2_Brain", "4_Brain"),
    "dcm_qa_nih": ("4_DCM", "5_DCM", "6_DCM", "7_DCM"),
}


@pytest.mark.slow
@pytest.mark.parametrize("set_name", sorted(GE_ROWS))
def test_ge_series_equal_dcm2niix(data_dir, tmp_path, set_name):
    """Every GE output of the shared sets: voxels, affine, bval/bvec and sidecar keys equal
    live dcm2niix's (tests/walk_dcm2niix.py)."""
    from walk_dcm2niix import walk_set

    rows = walk_set(data_dir, set_name, tmp_path)
    prefixes = GE_ROWS[set_name]
    rows = [r for r in rows if prefixes is None or r.name.startswith(prefixes)]
    assert rows
    bad = [f"{r.name}: {r.status} {r.problems}" for r in rows if not r.ok]
    assert not bad, bad


def test_volume_gradient_needs_the_prescription_direction():
    header = _dwi(1000, (0.6, 0.8, 0.0))
    assert ge.volume_gradient(header) is None  # GE's slice axis is the prescription's
    b, up = ge.volume_gradient(header, 1)
    _, down = ge.volume_gradient(_dwi(1000, (0.6, 0.8, 0.5)), -1)
    assert b == 1000 and down[2] == pytest.approx(-0.5) and up[2] == 0
