"""GE private values: protocol block parsing, slice acquisition order, phase polarity."""

from __future__ import annotations

import gzip

from interfaces.dicomio import ge


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


def test_phase_polarity_only_from_the_standard_tag():
    assert ge.phase_positive({"RectilinearPhaseEncodeReordering": "LINEAR"}) == 1
    assert ge.phase_positive({"RectilinearPhaseEncodeReordering": "REVERSE_LINEAR"}) == 0
    assert ge.phase_positive({}) is None
