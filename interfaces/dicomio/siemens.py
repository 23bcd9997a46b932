"""Siemens values that are not in one standard element: slice timing of old software and
classic 2D series, the protocol (ASCCONV) of the CSA series header.

Rules (dcm2niix's, so both write the same sidecar where the headers allow it):

* **Mosaics without MosaicRefAcqTimes** (VB12/VB13): the slice times follow from the
  protocol's slice order ``sSliceArray.ucMode`` (1 ascending, 2 descending, 4 interleaved)
  spread evenly over TA = TR - ``lDelayTimeInTR``.  Interleaved starts with the first slice
  when the number of slices is odd, with the second when it is even.  Not used for multiband
  (its slice pattern is not in the protocol) nor when ``sSliceArray.ucImageNumb`` reverses the
  image numbering.
* **Classic 2D series** (one file per slice, e.g. E11 field maps): the times are the
  AcquisitionTime of the first volume's files, relative to the earliest.  Unlike dcm2niix, the
  times are computed exactly (dcm2niix rounds HHMMSS to single precision first, which moves
  times by up to 8 ms and can make distinct times equal); when they span more than TR they
  are not a slice timing and are left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

#: (0029,1020): CSA series header, which holds the protocol as ASCCONV text
CSA_SERIES = (0x0029, 0x1020)
_ASCCONV = re.compile(rb"### ASCCONV BEGIN[^\n]*\n(.*?)### ASCCONV END", re.S)
_LINE = re.compile(r"^\s*([A-Za-z_][\w.\[\]]*)\s*=\s*(.*?)\s*$")


def is_siemens(header) -> bool:
    return str(header.get("Manufacturer") or "").strip().upper().startswith("SIEMENS")


def parse_ascconv(raw: bytes) -> dict[str, str]:
    """``key = value`` pairs of the first ASCCONV block in ``raw`` (values as text)."""
    match = _ASCCONV.search(raw)
    if not match:
        return {}
    out: dict[str, str] = {}
    for line in match.group(1).decode("latin-1").splitlines():
        found = _LINE.match(line)
        if found:
            out.setdefault(found.group(1), found.group(2))
    return out


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.split("#")[0].strip().strip('"')
    try:
        return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
    except ValueError:
        return None


@lru_cache(maxsize=32)
def series_protocol(path: str) -> dict[str, str]:
    """The ASCCONV protocol of one file's CSA series header ({} when it has none).

    Read with pydicom for this one file only: the header scan skips the series header (the
    whole protocol, ~100 kB a file) for every other file.
    """
    from .headers import UnusableFile, open_dicom

    try:
        ds, _ = open_dicom(path, stop_before_pixels=True)
    except UnusableFile:
        return {}
    if CSA_SERIES not in ds:
        return {}
    value = ds[CSA_SERIES].value
    return parse_ascconv(value) if isinstance(value, bytes) else {}


def protocol_slice_times(
    protocol: dict[str, str], n_slices: int, tr_ms: float | None
) -> list[float] | None:
    """Slice times (ms, protocol slice order) from the slice order mode and TA; None when the
    protocol does not give them (see the module docstring)."""
    mode = _number(protocol.get("sSliceArray.ucMode"))
    if mode not in (1, 2, 4) or n_slices < 2 or not tr_ms:
        return None
    if "sSliceArray.ucImageNumb" in protocol:
        return None
    multiband = _number(protocol.get("sSliceAcceleration.lMultiBandFactor"))
    if multiband is not None and multiband > 1:
        return None
    delay_ms = (_number(protocol.get("lDelayTimeInTR")) or 0.0) / 1000.0
    step = (float(tr_ms) - delay_ms) / n_slices
    if step <= 0:
        return None
    if mode == 1:
        order = list(range(n_slices))
    elif mode == 2:
        order = list(range(n_slices - 1, -1, -1))
    else:
        first = range(0, n_slices, 2) if n_slices % 2 else range(1, n_slices, 2)
        second = range(1, n_slices, 2) if n_slices % 2 else range(0, n_slices, 2)
        order = [*first, *second]  # slices in acquisition order
    times = [0.0] * n_slices
    for rank, index in enumerate(order):
        times[index] = rank * step
    return times


def _seconds_of_day(value) -> float | None:
    text = str(value or "").strip()
    if len(text) < 6 or not text[:6].isdigit():
        return None
    try:
        return int(text[:2]) * 3600 + int(text[2:4]) * 60 + float(text[4:])
    except ValueError:
        return None


def acquisition_time_slice_times(headers: Sequence, tr_ms: float | None) -> list[float] | None:
    """Slice times (s) of one volume's single-slice headers (in NIfTI slice order) from their
    AcquisitionTime; None when absent, all equal or spanning more than TR."""
    if len(headers) < 2 or not tr_ms:
        return None
    times = [_seconds_of_day(h.get("AcquisitionTime")) for h in headers]
    if any(t is None for t in times):
        return None
    start = min(times)  # type: ignore[type-var]
    relative = [round(t - start, 6) for t in times]  # type: ignore[operator]
    span = max(relative)
    if span <= 0 or span >= float(tr_ms) / 1000.0:
        return None
    return relative
