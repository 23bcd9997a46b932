"""GE private header values: the protocol data block and phase-encoding polarity.

The protocol block (0025,101B) holds a gzip stream of ``KEY "value"`` lines after a short
binary prefix.  ``SLICEORDER`` is 0 for sequential and 1 for interleaved acquisition; slices
are acquired in prescription (InstanceNumber) order, interleaved ones odd positions first.
Phase polarity is read only from the standard (0018,9034) RectilinearPhaseEncodeReordering
(LINEAR: unflipped, REVERSE_LINEAR: flipped; GE Rx27 and later); older GE software keeps it
in an undocumented byte stream that is not parsed, so no PhaseEncodingDirection is written.
"""

from __future__ import annotations

import gzip
import re
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


def phase_positive(header) -> int | None:
    """1 (unflipped), 0 (flipped) or None (unknown) from (0018,9034)."""
    value = str(header.get("RectilinearPhaseEncodeReordering") or "").strip().upper()
    return {"LINEAR": 1, "REVERSE_LINEAR": 0}.get(value)
