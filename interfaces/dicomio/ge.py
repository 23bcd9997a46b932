"""GE private header values: the protocol data block and phase-encoding polarity.

The protocol block (0025,101B) holds a gzip stream of ``KEY "value"`` lines after a short
binary prefix.  ``SLICEORDER`` is 0 for sequential and 1 for interleaved acquisition; slices
are acquired in prescription (InstanceNumber) order, interleaved ones odd positions first.

Phase polarity comes from the standard (0018,9034) RectilinearPhaseEncodeReordering (LINEAR:
unflipped, REVERSE_LINEAR: flipped; GE Rx27 and later).  Older GE software keeps it only in
the UserDefineData block (0043,102A), read the way dcm2niix reads it: a little-endian
``uint16`` at byte 24 gives the offset of the raw header, whose first ``float32`` is its
version; from version 25.002 on the fields sit 0x4C bytes further in.  There, bit 0x800 of
the ``uint16`` at +0x3A marks EPI (polarity is only defined for EPI), bit 0x4 of the
``uint16`` at +0x30 is the flipped flag, and the ``uint16`` at +0x394 (+0x308 from 25.002)
is the k-space view order, whose bottom-up value (2) inverts the polarity.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib

_LINE = re.compile(r'^(\w+) "([^"]*)"', re.M)


def protocol_block(raw: bytes | None) -> dict[str, str]:
    """Key -> value of the protocol data block; {} when absent or unreadable."""
    if not raw:
        return {}
    start = raw.find(b"\x1f\x8b")
    if start < 0:
        return {}
    try:
        text = gzip.decompress(raw[start:]).decode("latin-1")
    except (OSError, EOFError, zlib.error):
        return {}
    return dict(_LINE.findall(text))


def acquisition_ranks(n: int, interleaved: bool) -> list[int]:
    """Acquisition rank of each prescription position 0..n-1."""
    order = list(range(0, n, 2)) + list(range(1, n, 2)) if interleaved else list(range(n))
    ranks = [0] * n
    for rank, position in enumerate(order):
        ranks[position] = rank
    return ranks


def phase_positive(header, user_data: bytes | None = None) -> int | None:
    """1 (unflipped), 0 (flipped) or None (unknown): from (0018,9034), else from the
    UserDefineData block ``user_data``."""
    value = str(header.get("RectilinearPhaseEncodeReordering") or "").strip().upper()
    if value in ("LINEAR", "REVERSE_LINEAR"):
        return 1 if value == "LINEAR" else 0
    return user_data_phase_positive(user_data)


_VIEW_ORDER_BOTTOM_UP = 2


def user_data_phase_positive(raw: bytes | None) -> int | None:
    """Polarity from GE's UserDefineData (see the module docstring); None when the block is
    absent, too short, of an unknown version or not from an EPI acquisition."""
    if not raw or len(raw) < 26:
        return None
    (offset,) = struct.unpack_from("<H", raw, 24)
    if len(raw) < offset + 916:
        return None
    (version,) = struct.unpack_from("<f", raw, offset)
    if not 5.0 <= version <= 40.0:
        return None
    base, view_order_at = offset, 0x394
    if version >= 25.002:
        base, view_order_at = offset + 0x4C, 0x394 - 0x8C
    (epi_bits,) = struct.unpack_from("<H", raw, base + 0x3A)
    if not epi_bits & 0x800:
        return None
    (polarity_bits,) = struct.unpack_from("<H", raw, base + 0x30)
    (view_order,) = struct.unpack_from("<H", raw, base + view_order_at)
    flipped = bool(polarity_bits & 0x4) != (view_order == _VIEW_ORDER_BOTTOM_UP)
    return 0 if flipped else 1


def polarity_name(positive: int | None) -> str | None:
    """dcm2niix's PhaseEncodingPolarityGE value."""
    return None if positive is None else ("Unflipped" if positive else "Flipped")
