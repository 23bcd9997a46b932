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
