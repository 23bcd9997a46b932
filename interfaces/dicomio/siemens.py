"""Siemens values that are not in one standard element: slice timing of old software and
classic 2D series, field-map echo times, the protocol (ASCCONV).

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
  relative times by up to 16 ms and can make distinct times equal, e.g. a single-band field
  map reported as multiband 2); when they span more than TR they
  are not a slice timing and are left out.
* **XA classic (interoperability) export** writes a 4D run as one file per slice, every volume
  with its own SeriesNumber (16001, 16002, ...) but one SeriesInstanceUID.  As dcm2niix does for
  XA10/XA11/XA20/XA30/XA31 software, such files (SeriesNumber > 1000, same thousand) form one
  series: :func:`xa_series_stack` gives the shared number, and :mod:`.series` keeps every
  other split (SeriesInstanceUID, orientation, matrix, pixel spacing, echo, image type).  Files
  with different SeriesInstanceUIDs are never joined (neither does dcm2niix).  The per-file
  values of the "SIEMENS MR SDI 02" block (0021,0011) give the phase direction sign (xx1C),
  BandwidthPerPixelPhaseEncode (xx53) and the slice time (xx04, s after the run's start);
  slice times are taken from the second volume (the first volume of a multiband run is timed
  as single band, as in enhanced files) and not written for a single volume.
* **Phase-difference field maps** (gre_field_mapping): the phase image carries only the second
  echo time; EchoTime1 and EchoTime2 are the protocol's ``alTE[0]`` and ``alTE[1]``, written
  when the protocol has exactly two contrasts and the image's EchoTime is the second.
* **ASL timing** (:func:`protocol_asl`), as dcm2niix reads the protocol: the sequence is known
  by a case-sensitive part of ``tSequenceFileName``.  ``ep2d_asl`` (a product sequence, e.g.
  XA): LabelingDuration = ``sAsl.ulLabelingDuration``, PostLabelingDelay =
  ``sAsl.sPostLabelingDelay[0]`` (us -> s), no labeling type (the protocol's ``sAsl.ulMode``
  is not read: dcm2niix ignores it and its codes are not documented).  LOFT's ``ep2d_pcasl``:
  PCASL, PostLabelingDelay = ``sWipMemBlock.adFree[2]``; ``tgse_pcasl``: PCASL,
  LabelingDuration = ``adFree[2]`` (us -> s); Oxford's ``to_ep2d_VEPCASL`` and
  ``jw_tgse_VEPCASL``: PCASL; ``ep2d_pasl``, ``tgse_pasl``, ``ep2d_fairest``: PASL.
  Unlike dcm2niix, a multi-delay ``ep2d_asl`` protocol (``sAsl.ulDelayArraySize`` > 1) gets
  no PostLabelingDelay (its first delay alone is not the run's), and the labeling duration
  dcm2niix computes for ``ep2d_pcasl`` (an assumed 18.4 ms per RF block) and the delay it
  reads for ``ep2d_fairest`` (adFree[4] / 1000, units unstated) are not written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .dicom_file import UnusableFile, open_dicom
from .formats import g_number
from .scan import (
    SIEMENS_SDI_CREATOR,
    SIEMENS_XA_BW_PHASE,
    SIEMENS_XA_PE_POSITIVE,
    SIEMENS_XA_SLICE_TIME,
    private_field,
)
from .vendors import SIEMENS, vendor_of

#: (0029,1020): CSA series header, which holds the protocol as ASCCONV text
CSA_SERIES = (0x0029, 0x1020)
_ASCCONV = re.compile(rb"### ASCCONV BEGIN[^\n]*\n(.*?)### ASCCONV END", re.S)
_SDS_CREATOR = "SIEMENS MR SDS 01"
_LINE = re.compile(r"^\s*([A-Za-z_][\w.\[\]]*)\s*=\s*(.*?)\s*$")


def is_siemens(header) -> bool:
    return vendor_of(header) == SIEMENS


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


def _private_value(item, group: int, creator: str, offset: int):
    """Value of element ``offset`` of the private block reserved by ``creator`` in ``item``."""
    for block in range(0x10, 0x100):
        found = item.get((group, block))
        if found is not None and str(found.value).strip() == creator:
            element = item.get((group, (block << 8) | offset))
            return None if element is None else element.value
    return None


def series_protocol(path: str) -> dict[str, str]:
    """The ASCCONV protocol of one file ({} when it has none): in the CSA series header
    (0029,1020) up to VE11, in the XA private block "SIEMENS MR SDS 01" (element xx19) at the
    top level (XA classic export) or in the shared functional groups (XA enhanced).

    Read with pydicom for this one file only: the header scan skips the protocol (~100 kB a
    file) for every other file.
    """
    try:
        ds, _ = open_dicom(path, stop_before_pixels=True)
    except UnusableFile:
        return {}
    candidates = [ds[CSA_SERIES].value if CSA_SERIES in ds else None]
    candidates.append(_private_value(ds, 0x0021, _SDS_CREATOR, 0x19))
    for shared in ds.get("SharedFunctionalGroupsSequence") or []:
        for elem in shared:
            if elem.tag.group == 0x0021 and elem.VR == "SQ" and elem.value:
                candidates.append(_private_value(elem.value[0], 0x0021, _SDS_CREATOR, 0x19))
    for raw in candidates:
        if isinstance(raw, bytes):
            protocol = parse_ascconv(raw)
            if protocol:
                return protocol
    return {}


def _is_phase(header) -> bool:
    kinds = [str(v).upper() for v in (header.get("FrameType") or header.get("ImageType") or [])]
    component = str(header.get("ComplexImageComponent") or "").upper()
    return component == "PHASE" or "P" in kinds[2:] or "PHASE" in kinds


def field_map_echo_times(header, path: str) -> dict[str, float | int]:
    """EchoTime1 / EchoTime2 (s) of a Siemens phase-difference field map: the protocol's two
    echo times (``alTE[0]``, ``alTE[1]``) when it has exactly two contrasts and the phase
    image is labelled with the second; else nothing."""
    if not is_siemens(header) or not _is_phase(header):
        return {}
    protocol = series_protocol(str(path))
    te1, te2 = _number(protocol.get("alTE[0]")), _number(protocol.get("alTE[1]"))
    if _number(protocol.get("lContrasts")) != 2 or not te1 or not te2 or te2 <= te1:
        return {}
    echo = header.get("EchoTime")
    if echo is None or abs(float(echo) - te2 / 1000.0) > 1e-3:
        return {}
    return {"EchoTime1": g_number(te1 / 1e6), "EchoTime2": g_number(te2 / 1e6)}


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
    found = [_seconds_of_day(h.get("AcquisitionTime")) for h in headers]
    times = [t for t in found if t is not None]
    if len(times) < len(found):
        return None
    start = min(times)
    relative = [round(t - start, 6) for t in times]
    span = max(relative)
    if span <= 0 or span >= float(tr_ms) / 1000.0:
        return None
    return relative


#: software whose classic export numbers each volume as its own series (16001, 16002, ...)
XA_CLASSIC_VERSIONS = ("XA10", "XA11", "XA20", "XA30", "XA31")
_SDI_CREATOR = "SIEMENS MR SDI 02"


def xa_series_stack(header, series_number: int | None) -> int | None:
    """The number shared by the volumes of one XA classic run (SeriesNumber // 1000), or None
    when the file is not such a volume."""
    if series_number is None or series_number <= 1000 or not is_siemens(header):
        return None
    software = header.get("SoftwareVersions") or ""
    text = software if isinstance(software, str) else "\\".join(map(str, software))
    if not any(version in text for version in XA_CLASSIC_VERSIONS):
        return None
    return series_number // 1000


def _sdi(header, name: str):
    """A value of the top-level "SIEMENS MR SDI 02" block (XA classic files), else None."""
    if str(private_field(header, SIEMENS_SDI_CREATOR) or "").strip() != _SDI_CREATOR:
        return None
    return private_field(header, name)


def xa_phase_info(header) -> tuple[int | None, float | None]:
    """(phase direction positive flag, BandwidthPerPixelPhaseEncode) of an XA classic file."""
    positive, bandwidth = _sdi(header, SIEMENS_XA_PE_POSITIVE), _sdi(header, SIEMENS_XA_BW_PHASE)
    try:
        positive = int(positive) if positive is not None else None
        bandwidth = float(bandwidth) if bandwidth else None
    except (TypeError, ValueError):
        return None, None
    return positive, bandwidth


def xa_slice_times(headers: Sequence, n_slices: int, n_volumes: int) -> list[float] | None:
    """Slice times (s, NIfTI slice order) of an XA classic run from the second volume's
    per-file slice times; None for one volume or when a file lacks the value."""
    if n_volumes < 2 or n_slices < 2:
        return None
    second = headers[n_slices : 2 * n_slices]
    times = [_sdi(h, SIEMENS_XA_SLICE_TIME) for h in second]
    if any(t is None for t in times):
        return None
    values = [float(t) for t in times]
    start = min(values)
    return [round(t - start, 6) for t in values]


def has_xa_slice_times(header) -> bool:
    return _sdi(header, SIEMENS_XA_SLICE_TIME) is not None


#: tSequenceFileName parts (case-sensitive, as dcm2niix matches them) -> labeling type
_ASL_SEQUENCE_TYPES = (
    ("ep2d_pcasl", "PCASL"),
    ("tgse_pcasl", "PCASL"),
    ("to_ep2d_VEPCASL", "PCASL"),
    ("jw_tgse_VEPCASL", "PCASL"),
    ("ep2d_pasl", "PASL"),
    ("tgse_pasl", "PASL"),
    ("ep2d_fairest", "PASL"),
)


def _seconds(protocol: dict[str, str], key: str) -> float | int | None:
    """A positive protocol time in us, in s (%g, as dcm2niix writes it); None when absent."""
    value = _number(protocol.get(key))
    if value is None or value <= 0:
        return None
    return g_number(value / 1e6)


def protocol_asl(protocol: dict[str, str]) -> dict[str, float | int | str]:
    """LabelingDuration, PostLabelingDelay (s) and ArterialSpinLabelingType that the protocol
    of an ASL sequence gives (see the module docstring); {} for any other protocol."""
    sequence = protocol.get("tSequenceFileName") or ""
    out: dict[str, float | int | str | None] = {}
    if "ep2d_asl" in sequence:
        out["LabelingDuration"] = _seconds(protocol, "sAsl.ulLabelingDuration")
        delays = _number(protocol.get("sAsl.ulDelayArraySize"))
        if delays is None or delays <= 1:
            out["PostLabelingDelay"] = _seconds(protocol, "sAsl.sPostLabelingDelay[0]")
    if "ep2d_pcasl" in sequence:
        out["PostLabelingDelay"] = _seconds(protocol, "sWipMemBlock.adFree[2]")
    if "tgse_pcasl" in sequence:
        out["LabelingDuration"] = _seconds(protocol, "sWipMemBlock.adFree[2]")
    types = {kind for part, kind in _ASL_SEQUENCE_TYPES if part in sequence}
    if len(types) == 1:
        out["ArterialSpinLabelingType"] = types.pop()
    return {key: value for key, value in out.items() if value is not None}


_ASL_SEQUENCE_BYTES = re.compile(
    rb"ep2d_asl|" + b"|".join(re.escape(part.encode()) for part, _ in _ASL_SEQUENCE_TYPES)
)
_DEFLATED_SYNTAX = b"1.2.840.10008.1.2.1.99"


def _may_name_an_asl_sequence(path: str) -> bool:
    """False only when the file's bytes cannot hold an ASL sequence name (a plain, not
    deflated file without any of them): spares reading the protocol of every other series."""
    import mmap

    if path.endswith(".gz"):
        return True
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as raw:
            if raw.find(_DEFLATED_SYNTAX, 0, 4096) >= 0:
                return True
            return _ASL_SEQUENCE_BYTES.search(raw) is not None
    except (OSError, ValueError):
        return True


def asl_fields(header, path: str) -> dict[str, float | int | str]:
    """The ASL keys of a Siemens series' protocol (:func:`protocol_asl`); {} for others."""
    if not is_siemens(header) or not _may_name_an_asl_sequence(str(path)):
        return {}
    return protocol_asl(series_protocol(str(path)))
