"""Enhanced (multi-frame) DICOM: every frame as a header of its own.

An enhanced file keeps per-frame values in functional groups: plane position and orientation,
pixel measures, echo time, frame type / complex component, temporal position, diffusion,
rescale.  :func:`frame_headers` flattens, for each frame, the file's top-level elements, the
shared groups and that frame's groups (frame values win) into one mapping by DICOM keyword,
then gives the enhanced names their classic meaning (``EffectiveEchoTime`` -> ``EchoTime``,
``TemporalPositionIndex`` -> ``TemporalPositionIdentifier``).  From there frames are grouped
and ordered exactly like classic single-frame files, so one file may hold several outputs
(echoes, magnitude/phase) and one output may span several files (Siemens XA: a file per
volume).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .classic import ClassicSeries
from .scan import ScannedHeader

if TYPE_CHECKING:
    import pydicom

#: Siemens XA per-frame private values (sequence (0021,xxFE) of "SIEMENS MR SDI 02")
SIEMENS_PE_POSITIVE = "SiemensPhaseEncodingDirectionPositive"  # (0021,xx1C)
SIEMENS_BW_PHASE = "SiemensBandwidthPerPixelPhaseEncode"  # (0021,xx53)
_SDI_CREATOR = "SIEMENS MR SDI 02"
SIEMENS_SLICE_TIME = "SiemensSliceTime"  # (0021,xx04): the frame's acquisition time, s
_SDI_ELEMENTS = {0x1C: SIEMENS_PE_POSITIVE, 0x53: SIEMENS_BW_PHASE, 0x04: SIEMENS_SLICE_TIME}
_SDI_INTEGERS = {SIEMENS_PE_POSITIVE}

#: Philips per-frame private scale slope ((2005,xx0E) of "Philips MR Imaging DD 001")
PHILIPS_SCALE_SLOPE = "PhilipsScaleSlope"
_PHILIPS_CREATOR = "Philips MR Imaging DD 001"

#: enhanced keyword -> classic keyword it stands for
_ALIASES = {
    "EffectiveEchoTime": "EchoTime",
    "TemporalPositionIndex": "TemporalPositionIdentifier",
}
#: values that describe the file, never overridden by a frame group's nested items
_FILE_LEVEL = ("ImageType", "SeriesNumber", "SeriesDescription", "ProtocolName", "Manufacturer")
_SKIP = {"PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "PixelData"}


def _flatten(item: pydicom.Dataset, out: dict, depth: int = 0) -> None:
    """Leaf values of a functional-group item (first item of each standard sequence).

    Private sequences are skipped: vendors nest copies of other geometry in them (Philips
    keeps a stack-centre ImagePositionPatient there).  Values of deeper sequences never
    override a value found nearer the top.
    """
    for elem in item:
        if elem.tag.is_private:
            continue
        if elem.VR == "SQ":
            if elem.value and elem.keyword not in _SKIP:
                _flatten(elem.value[0], out, depth + 1)
        elif elem.keyword and (depth <= 1 or elem.keyword not in out):
            out[elem.keyword] = elem.value


def _private_values(
    item: pydicom.Dataset, creator_name: str, elements: dict[int, str]
) -> dict[str, object]:
    """Values of a vendor's private block inside a frame's private sequences, found by the
    block's creator (private element numbers move between files; creators do not)."""
    out: dict[str, object] = {}
    for elem in item:
        if not (elem.tag.is_private and elem.VR == "SQ" and elem.value):
            continue
        inner = elem.value[0]
        for block in range(0x10, 0x100):
            creator = inner.get((elem.tag.group, block))
            if creator is None or str(creator.value).strip() != creator_name:
                continue
            for offset, name in elements.items():
                tag = (elem.tag.group, (block << 8) | offset)
                if tag in inner and inner[tag].value not in (None, ""):
                    out[name] = inner[tag].value
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


def frame_headers(ds: pydicom.Dataset) -> list[ScannedHeader]:
    """One flattened header per frame (``frame`` attribute = its 0-based index)."""
    base = {e.keyword: e.value for e in ds if e.keyword and e.VR != "SQ" and e.keyword not in _SKIP}
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
        header = ScannedHeader(flat)
        header.frame = index
        frames.append(header)
    return frames


class EnhancedSeries(ClassicSeries):
    """Frames of enhanced files that form one 3D/4D image (grouped by the index)."""

    FLAVOUR = "enhanced"

    def _rescale(self, h) -> tuple[float, float]:
        """Philips: the floating-point scale (dcm2niix's default) unless the frame is a B0
        map, which keeps its display scaling (Hz); others: the DICOM rescale."""
        slope, inter = super()._rescale(h)
        scale = h.get(PHILIPS_SCALE_SLOPE)
        frame_type = [str(v).upper() for v in (h.get("FrameType") or [])]
        philips = str(h.get("Manufacturer", "")).upper().startswith("PHILIPS")
        if scale and slope and philips and "FIELD_MAP" not in frame_type:
            return 1.0 / scale, inter / (slope * scale)
        return slope, inter

    def phase_info(self) -> tuple[int | None, float | None, float | None]:
        h = self.headers[0]
        return h.get(SIEMENS_PE_POSITIVE), h.get(SIEMENS_BW_PHASE), None

    def slice_times(self) -> list[float] | None:
        """Siemens' per-frame slice time, else FrameAcquisitionDateTime (differences only).

        Taken from the second volume when there is one: Siemens XA reports single-band
        timing for the first volume of a multiband run (dcm2niix issue 875 does the same).
        """
        start = self.n_slices if self.n_volumes > 1 else 0
        first = self.headers[start : start + self.n_slices]
        times = [h.get(SIEMENS_SLICE_TIME) for h in first]
        if any(t is None for t in times):
            times = [_seconds_of_day(h.get("FrameAcquisitionDateTime")) for h in first]
        return None if any(t is None for t in times) else times  # type: ignore[return-value]


def _seconds_of_day(value) -> float | None:
    """'YYYYMMDDHHMMSS.ffffff' -> seconds since midnight (the date part is dropped)."""
    text = str(value or "").strip()
    if len(text) < 14 or not text[:14].isdigit():
        return None
    hours, minutes = int(text[8:10]), int(text[10:12])
    seconds = float(text[12:].split("+")[0].split("-")[0] or 0)
    return hours * 3600 + minutes * 60 + seconds
