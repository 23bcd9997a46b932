"""GE private values: protocol block parsing, slice acquisition order, phase polarity."""

from __future__ import annotations

import gzip
import struct

import pydicom
import pytest

from interfaces.dicomio import ge
from interfaces.dicomio.scan import GE_ECHO_SPACING, GE_USER_DATA, ScannedHeader, private_field


def test_protocol_block_after_binary_prefix():
    text = b'SLICEORDER "1"\nVIEWORDER "0"\nPHASEFOV "1.00"\n'
    raw = b"\x00\x01\x02\x03" + gzip.compress(text)
    assert ge.protocol_block(raw) == {"SLICEORDER": "1", "VIEWORDER": "0", "PHASEFOV": "1.00"}
    assert ge.protocol_block(b"no gzip here") == {}
    assert ge.protocol_block(b"\x1f\x8bbroken") == {}
    assert ge.protocol_block(None) == {}


def test_acquisition_ranks():
    assert ge.acquisition_ranks(5, interleaved=False) == [0, 1, 2, 3, 4]
    # odd prescription positions (1st, 3rd, 5th) first, then the even ones
    assert ge.acquisition_ranks(5, interleaved=True) == [0, 3, 1, 4, 2]


def test_phase_polarity_from_the_standard_tag():
    assert ge.phase_positive({"RectilinearPhaseEncodeReordering": "LINEAR"}) == 1
    assert ge.phase_positive({"RectilinearPhaseEncodeReordering": "REVERSE_LINEAR"}) == 0
    assert ge.phase_positive({}) is None
    # the standard tag wins over the private block
    flipped = _user_data(flipped=True)
    assert ge.phase_positive({"RectilinearPhaseEncodeReordering": "LINEAR"}, flipped) == 1
    assert ge.phase_positive({}, flipped) == 0


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
