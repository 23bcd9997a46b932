"""Enhanced (multi-frame) DICOM files: every frame as a header of its own (used at indexing;
the reader of such series is :mod:`.enhanced`).

An enhanced file keeps per-frame values in functional groups: plane position and orientation,
pixel measures, echo time, frame type / complex component, temporal position, diffusion,
rescale.  :func:`frame_headers` flattens, for each frame, the file's top-level elements, the
shared groups and that frame's groups (frame values win) into one mapping by DICOM keyword,
then gives the enhanced names their classic meaning (``EffectiveEchoTime`` -> ``EchoTime``,
``TemporalPositionIndex`` -> ``TemporalPositionIdentifier``).  Classic sidecar values the
file does not carry at the top level are taken where dcm2niix finds them: AcquisitionTime
from AcquisitionDateTime (time of day only), ImagingFrequency from TransmitterFrequency,
PhaseEncodingSteps from the in-plane acquisition phase steps, InversionTime from
InversionTimes, SequenceName from PulseSequenceName, Siemens XA's ScanningSequence /
SequenceVariant / ScanOptions from its shared "SIEMENS MR SDS 01" block, Philips' from the
classic copies in its per-frame private sequence.  From there frames are grouped
and ordered exactly like classic single-frame files, so one file may hold several outputs
(echoes, magnitude/phase) and one output may span several files (Siemens XA: a file per
volume).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .scan import PHILIPS_SCALE_SLOPE, ScannedHeader

if TYPE_CHECKING:
    import pydicom

#: Siemens XA per-frame private values (sequence (0021,xxFE) of "SIEMENS MR SDI 02")
SIEMENS_PE_POSITIVE = "SiemensPhaseEncodingDirectionPositive"  # (0021,xx1C)
SIEMENS_BW_PHASE = "SiemensBandwidthPerPixelPhaseEncode"  # (0021,xx53)
_SDI_CREATOR = "SIEMENS MR SDI 02"
SIEMENS_SLICE_TIME = "SiemensSliceTime"  # (0021,xx04): the frame's acquisition time, s
_SDI_ELEMENTS = {0x1C: SIEMENS_PE_POSITIVE, 0x53: SIEMENS_BW_PHASE, 0x04: SIEMENS_SLICE_TIME}
_SDI_INTEGERS = {SIEMENS_PE_POSITIVE}

#: Philips per-frame private scale slope ((2005,xx0E) of "Philips MR Imaging DD 001"): the
#: name :mod:`.philips` reads it under, as for classic files
_PHILIPS_CREATOR = "Philips MR Imaging DD 001"

#: Siemens XA shared private values ("SIEMENS MR SDS 01" block of sequence (0021,xxFE)): the
#: classic (0018,0020-22) values, which XA files keep only here
_SDS_CREATOR = "SIEMENS MR SDS 01"
_SDS_ELEMENTS = {0x5A: "ScanningSequence", 0x5B: "SequenceVariant", 0x5C: "ScanOptions"}

#: enhanced keyword -> classic keyword it stands for (the enhanced value wins)
_ALIASES = {
    "EffectiveEchoTime": "EchoTime",
    "TemporalPositionIndex": "TemporalPositionIdentifier",
}
#: enhanced keyword -> classic keyword it fills when the file has no classic value (dcm2niix
#: reads these for its sidecar: MR Imaging Modifier, MR FOV/Geometry, MR Timing macros)
_FALLBACKS = {
    "TransmitterFrequency": "ImagingFrequency",
    "MRAcquisitionPhaseEncodingStepsInPlane": "NumberOfPhaseEncodingSteps",
    "InversionTimes": "InversionTime",
    "PulseSequenceName": "SequenceName",
}
#: classic keywords Philips repeats in each frame's private sequence (2005,140F); like
#: dcm2niix, which reads the file front to back, the last frame's value stands for the file
_PHILIPS_FRAME_COPIES = ("ScanningSequence", "SequenceVariant", "ImagingFrequency")
#: values that describe the file, never overridden by a frame group's nested items
_FILE_LEVEL = ("ImageType", "SeriesNumber", "SeriesDescription", "ProtocolName", "Manufacturer")
_SKIP = {"PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "PixelData"}


def _flatten(item: pydicom.Dataset, out: dict, depth: int = 0) -> None:
    """Leaf values of a functional-group item (first item of each standard sequence).

    Private sequences are skipped: vendors nest copies of other geometry in them (Philips
    keeps a stack-centre ImagePositionPatient there).  Values of deeper sequences never
    override a value found nearer the top.  Elements are decoded only when kept (private
    blocks are large: decoding them all cost a third of an XA conversion).
    """
    from pydicom.datadict import keyword_for_tag

    for tag in item.keys():  # noqa: SIM118 - iterating a Dataset decodes its elements
        if tag.is_private:
            continue
        keyword = keyword_for_tag(tag)
        if _vr(item, tag) == "SQ":
            if keyword not in _SKIP:
                value = item[tag].value
                if value:
                    _flatten(value[0], out, depth + 1)
        elif keyword and (depth <= 1 or keyword not in out):
            out[keyword] = item[tag].value


def _vr(item: pydicom.Dataset, tag) -> str:
    """An element's VR without decoding its value (implicit VR files: decoded to know it)."""
    vr = item.get_item(tag).VR
    return vr if vr else item[tag].VR


def _private_values(
    item: pydicom.Dataset, creator_name: str, elements: dict[int, str]
) -> dict[str, Any]:
    """Values of a vendor's private block inside a frame's private sequences, found by the
    block's creator (private element numbers move between files; creators do not)."""
    out: dict[str, Any] = {}
    for tag in item.keys():  # noqa: SIM118 - iterating a Dataset decodes its elements
        if not tag.is_private or _vr(item, tag) != "SQ":
            continue
        value = item[tag].value
        if not value:
            continue
        inner = value[0]
        # creators: (group, 0x0010-0x00FF), in block order
        for creator_tag in inner.keys():  # noqa: SIM118
            block = creator_tag.element
            if creator_tag.group != tag.group or not 0x10 <= block <= 0xFF:
                continue
            if str(inner[creator_tag].value).strip() != creator_name:
                continue
            for offset, name in elements.items():
                element_tag = (tag.group, (block << 8) | offset)
                if element_tag in inner and inner[element_tag].value not in (None, ""):
                    out[name] = inner[element_tag].value
            return out
    return out


def _vendor_private(item: pydicom.Dataset) -> dict:
    """Siemens XA and Philips per-frame private values the converter uses."""
    out: dict = {}
    for name, value in _private_values(item, _SDI_CREATOR, _SDI_ELEMENTS).items():
        out[name] = int(value) if name in _SDI_INTEGERS else float(value)
    philips = _private_values(item, _PHILIPS_CREATOR, {0x0E: PHILIPS_SCALE_SLOPE})
    if PHILIPS_SCALE_SLOPE in philips:
        out[PHILIPS_SCALE_SLOPE] = float(philips[PHILIPS_SCALE_SLOPE])
    return out


def _file_level(ds: pydicom.Dataset) -> dict:
    """Top-level values, completed with what vendors keep elsewhere for the whole file."""
    base = {e.keyword: e.value for e in ds if e.keyword and e.VR != "SQ" and e.keyword not in _SKIP}
    extra: dict = {}
    for item in ds.get("SharedFunctionalGroupsSequence") or []:
        extra.update(_private_values(item, _SDS_CREATOR, _SDS_ELEMENTS))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if per_frame:
        copies = per_frame[-1].get((0x2005, 0x140F))
        if copies is not None and copies.VR == "SQ" and copies.value:
            for key in _PHILIPS_FRAME_COPIES:
                if key in copies.value[0] and copies.value[0].get(key) not in (None, ""):
                    extra[key] = copies.value[0].get(key)
    date_time = str(base.get("AcquisitionDateTime") or "").strip()
    if "AcquisitionTime" not in base and len(date_time) > 8 and date_time[:8].isdigit():
        # the time of day only: no date, no UTC offset (&ZZXX)
        extra["AcquisitionTime"] = date_time[8:].split("+")[0].split("-")[0]
    for key, value in extra.items():
        base.setdefault(key, value)
    return base


def frame_headers(ds: pydicom.Dataset) -> list[ScannedHeader]:
    """One flattened header per frame (``frame`` attribute = its 0-based index)."""
    base = _file_level(ds)
    shared: dict = {}
    for item in ds.get("SharedFunctionalGroupsSequence") or []:
        _flatten(item, shared)
    frames = []
    for index, item in enumerate(ds.get("PerFrameFunctionalGroupsSequence") or []):
        flat = dict(base)
        flat.update(shared)
        _flatten(item, flat)
        flat.update(_vendor_private(item))
        for key in _FILE_LEVEL:  # vendors nest other images' values in frame groups
            if key in base:
                flat[key] = base[key]
        for enhanced, classic in _ALIASES.items():
            if enhanced in flat:
                flat[classic] = flat[enhanced]
        for enhanced, classic in _FALLBACKS.items():
            if flat.get(classic) in (None, "") and flat.get(enhanced) not in (None, ""):
                value = flat[enhanced]
                multi = not isinstance(value, str | bytes) and hasattr(value, "__len__")
                flat[classic] = value[0] if multi else value
        header = ScannedHeader(flat)
        header.frame = index
        frames.append(header)
    return frames
