"""A fast, read-only DICOM element scanner for the header fields the converter needs.

pydicom builds a full dataset for every element it meets (a GE slice carries ~300 of them),
which makes header reading of large trees slow.  This scanner walks the element stream of a
memory-mapped file with ``struct`` and decodes only the tags listed in :data:`FIELDS`; every
other value (private CSA blocks, sequences) is skipped by its length.  It also records where
the pixel data starts, so voxels can be read without a second parse.

Rule: :func:`scan_file` returns a :class:`ScannedHeader` or raises :class:`ScanUnsupported`
when the file uses an encoding this scanner does not walk (no ``DICM`` preamble, big endian,
deflated, malformed lengths).  Callers then read the file with pydicom, which stays the
reference reader; the scanner never guesses.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import limits

_U16 = struct.Struct("<H")
_S16 = struct.Struct("<h")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")
_EXPLICIT_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xE000
_ITEM_END = 0xE00D
_SEQ_END = 0xE0DD
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"  # retired
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
#: transfer syntaxes whose pixel data are raw little-endian samples (what the scanner walks)
NATIVE_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE})
#: transfer syntaxes whose pixel data are raw samples of either byte order: their length
#: follows from the header (rows x columns x frames x bits), so truncation can be checked
UNCOMPRESSED_SYNTAXES = NATIVE_SYNTAXES | {EXPLICIT_BE}
PIXEL_DATA = (0x7FE0, 0x0010)


def is_encapsulated(syntax: str) -> bool:
    """JPEG family (``1.2.840.10008.1.2.4.*``) or RLE: pixel data in fragments."""
    return syntax.startswith("1.2.840.10008.1.2.4.") or syntax == "1.2.840.10008.1.2.5"


#: private tags have no keyword: the name they are stored under
GE_IMAGE_TYPE = "GEComplexImageComponent"  # (0043,102F): 0 magnitude, 1 phase, 2 real, 3 imag
GE_ECHO_SPACING = "GEEffectiveEchoSpacing"  # (0043,102C): microseconds
GE_ASSET = "GEAssetRFactors"  # (0043,1083): in-plane, through-plane acceleration
GE_PROTOCOL = "GEProtocolDataBlock"  # (0025,101B): gzipped 'KEY "value"' lines
GE_USER_DATA = "GEUserDefineData"  # (0043,102A): binary block with EPI phase polarity
GE_PULSE_SEQUENCE = "GEPulseSequenceName"  # (0019,109C): 'epiRT', 'epi2', 'B0rf', ...
GE_INTERNAL_SEQUENCE = "GEInternalPulseSequenceName"  # (0019,109E): 'EPI', 'EPI2', 'B0map'
GE_USER_DATA_12 = "GEUserData12"  # (0019,10B3): diffusion cycling mode / pepolar scheme
GE_USER_DATA_15 = "GEUserData15"  # (0019,10B6): diffusion cycling 'special off' marker
GE_DIFFUSION_X = "GEDiffusionDirectionX"  # (0019,10BB): gradient, GE logical frame
GE_DIFFUSION_Y = "GEDiffusionDirectionY"  # (0019,10BC)
GE_DIFFUSION_Z = "GEDiffusionDirectionZ"  # (0019,10BD)
GE_DIFFUSION_DIRECTIONS = "GENumberOfDiffusionDirections"  # (0019,10E0)
GE_VELOCITY_ENCODE_SCALE = "GEVelocityEncodeScale"  # (0019,10E2): B0 map delta TE
GE_LOCATIONS = "GELocationsInAcquisition"  # (0021,104F): slices per volume
GE_SERIES_DIFFUSION_TYPE = "GESeriesDiffusionType"  # (0021,105A): 16 = DTI
GE_B_VALUE = "GEBValue"  # (0043,1039): b-value (+ 10^9 bias) and flags
GE_VAS_COLLAPSE = "GEVasCollapseFlag"  # (0043,1030): 14 / 16 = diffusion T2 / DTI image
GE_GROUP_DELAY = "GEGroupDelay"  # (0043,107C): epiRT delay after each volume, s
GE_MULTIBAND = "GEMultibandParameters"  # (0043,10B6): HyperBand factor, shift, calibration
CSA_IMAGE = "SiemensCSAImageHeader"  # (0029,1010)
#: Siemens XA classic (interoperability) export: per-file values of block (0021,0011), valid
#: only when that block's creator is "SIEMENS MR SDI 02" (see :mod:`.siemens`)
SIEMENS_SDI_CREATOR = "SiemensPrivateCreator002100011"  # (0021,0011)
SIEMENS_XA_SLICE_TIME = "SiemensXASliceTime"  # (0021,1104): the slice's time after start, s
SIEMENS_XA_PE_POSITIVE = "SiemensXAPhaseEncodingDirectionPositive"  # (0021,111C)
SIEMENS_XA_BW_PHASE = "SiemensXABandwidthPerPixelPhaseEncode"  # (0021,1153), FD
UIH_GRID = "UIHNumberOfImagesInGrid"  # (0065,1050): slices tiled in one image (see uih)
UIH_B_VALUE = "UIHDiffusionBValue"  # (0065,1009): FD
UIH_GRADIENT = "UIHDiffusionGradientDirection"  # (0065,1037): 3 FD, image axes
UIH_PHASE_POSITIVE = "UIHPhaseEncodingDirectionPositive"  # (0065,1058): IS

SIEMENS_B_VALUE = "SiemensBValue"  # (0019,100C): b-value of classic (non-mosaic) DWI
SIEMENS_DIFFUSION_DIRECTION = "SiemensDiffusionGradientDirection"  # (0019,100E): LPS
PHILIPS_B_FACTOR = "PhilipsDiffusionBFactor"  # (2001,1003)
PHILIPS_DIFFUSION_DIRECTION = "PhilipsDiffusionDirection"  # (2001,1004): 'I' isotropic
PHILIPS_TECHNIQUE = "PhilipsScanningTechniqueDescription"  # (2001,1020): the sequence name
PHILIPS_SCALE_SLOPE = "PhilipsScaleSlope"  # (2005,100E): the floating-point scale slope
PHILIPS_DIRECTION_RL = "PhilipsDiffusionDirectionRL"  # (2005,10B0)
PHILIPS_DIRECTION_AP = "PhilipsDiffusionDirectionAP"  # (2005,10B1)
PHILIPS_DIRECTION_FH = "PhilipsDiffusionDirectionFH"  # (2005,10B2)

#: (group, element) -> (keyword, kind); kinds: str, strs (multi-valued), ds (decimal
#: strings), int (integer string), us / ss (binary unsigned / signed short), uss (unsigned
#: shorts), sl (signed long), fl (float32), fd (float64), bytes (raw).  Grouping, geometry,
#: pixel and sidecar fields: everything the converter reads.
FIELDS: dict[tuple[int, int], tuple[str, str]] = {
    (0x0008, 0x1090): ("ManufacturerModelName", "str"),
    (0x0018, 0x0015): ("BodyPartExamined", "str"),
    (0x0018, 0x0020): ("ScanningSequence", "strs"),
    (0x0018, 0x0021): ("SequenceVariant", "strs"),
    (0x0018, 0x0022): ("ScanOptions", "strs"),
    (0x0018, 0x0081): ("EchoTime", "ds"),
    (0x0018, 0x0082): ("InversionTime", "ds"),
    (0x0018, 0x0084): ("ImagingFrequency", "ds"),
    (0x0018, 0x0087): ("MagneticFieldStrength", "ds"),
    (0x0018, 0x0088): ("SpacingBetweenSlices", "ds"),
    (0x0018, 0x0089): ("NumberOfPhaseEncodingSteps", "int"),
    (0x0018, 0x0093): ("PercentSampling", "ds"),
    (0x0018, 0x0094): ("PercentPhaseFieldOfView", "ds"),
    (0x0018, 0x0095): ("PixelBandwidth", "ds"),
    (0x0018, 0x1020): ("SoftwareVersions", "strs"),
    (0x0018, 0x1312): ("InPlanePhaseEncodingDirection", "str"),
    (0x0018, 0x1314): ("FlipAngle", "ds"),
    (0x0018, 0x5100): ("PatientPosition", "str"),
    (0x0018, 0x9005): ("PulseSequenceName", "str"),
    (0x0018, 0x9087): ("DiffusionBValue", "fd"),
    (0x0018, 0x9089): ("DiffusionGradientOrientation", "fd"),
    (0x0018, 0x9250): ("ArterialSpinLabelingContrast", "str"),
    (0x0019, 0x100C): (SIEMENS_B_VALUE, "int"),
    (0x0019, 0x100E): (SIEMENS_DIFFUSION_DIRECTION, "fd"),
    (0x0029, 0x1010): (CSA_IMAGE, "bytes"),
    (0x0021, 0x0011): (SIEMENS_SDI_CREATOR, "str"),
    (0x0021, 0x1104): (SIEMENS_XA_SLICE_TIME, "ds"),
    (0x0021, 0x111C): (SIEMENS_XA_PE_POSITIVE, "int"),
    (0x0021, 0x1153): (SIEMENS_XA_BW_PHASE, "fd"),
    (0x0018, 0x9034): ("RectilinearPhaseEncodeReordering", "str"),
    (0x0025, 0x101B): (GE_PROTOCOL, "bytes"),
    (0x0043, 0x102A): (GE_USER_DATA, "bytes"),
    (0x0043, 0x102C): (GE_ECHO_SPACING, "ss"),
    (0x0043, 0x102F): (GE_IMAGE_TYPE, "ss"),
    (0x0043, 0x1083): (GE_ASSET, "ds"),
    (0x0018, 0x1310): ("AcquisitionMatrix", "uss"),
    (0x0019, 0x109C): (GE_PULSE_SEQUENCE, "str"),
    (0x0019, 0x109E): (GE_INTERNAL_SEQUENCE, "str"),
    (0x0019, 0x10B3): (GE_USER_DATA_12, "ds"),
    (0x0019, 0x10B6): (GE_USER_DATA_15, "ds"),
    (0x0019, 0x10BB): (GE_DIFFUSION_X, "ds"),
    (0x0019, 0x10BC): (GE_DIFFUSION_Y, "ds"),
    (0x0019, 0x10BD): (GE_DIFFUSION_Z, "ds"),
    (0x0019, 0x10E0): (GE_DIFFUSION_DIRECTIONS, "ds"),
    (0x0019, 0x10E2): (GE_VELOCITY_ENCODE_SCALE, "ds"),
    (0x0020, 0x1002): ("ImagesInAcquisition", "int"),
    (0x0021, 0x104F): (GE_LOCATIONS, "ss"),
    (0x0021, 0x105A): (GE_SERIES_DIFFUSION_TYPE, "sl"),
    (0x0043, 0x1030): (GE_VAS_COLLAPSE, "ss"),
    (0x0043, 0x1039): (GE_B_VALUE, "ds"),
    (0x0043, 0x107C): (GE_GROUP_DELAY, "fl"),
    (0x0043, 0x10B6): (GE_MULTIBAND, "strs"),
    (0x0065, 0x1009): (UIH_B_VALUE, "bytes"),
    (0x0065, 0x1037): (UIH_GRADIENT, "bytes"),
    (0x0065, 0x1050): (UIH_GRID, "ds"),
    (0x0065, 0x1058): (UIH_PHASE_POSITIVE, "int"),
    (0x2001, 0x1003): (PHILIPS_B_FACTOR, "fl"),
    (0x2001, 0x1004): (PHILIPS_DIFFUSION_DIRECTION, "str"),
    (0x2001, 0x1020): (PHILIPS_TECHNIQUE, "str"),
    (0x2005, 0x100E): (PHILIPS_SCALE_SLOPE, "fl"),
    (0x2005, 0x10B0): (PHILIPS_DIRECTION_RL, "fl"),
    (0x2005, 0x10B1): (PHILIPS_DIRECTION_AP, "fl"),
    (0x2005, 0x10B2): (PHILIPS_DIRECTION_FH, "fl"),
    (0x0008, 0x0008): ("ImageType", "strs"),
    (0x0008, 0x0016): ("SOPClassUID", "str"),
    (0x0008, 0x0032): ("AcquisitionTime", "str"),
    (0x0008, 0x0060): ("Modality", "str"),
    (0x0008, 0x0070): ("Manufacturer", "str"),
    (0x0008, 0x103E): ("SeriesDescription", "str"),
    (0x0018, 0x0023): ("MRAcquisitionType", "str"),
    (0x0018, 0x0024): ("SequenceName", "str"),
    (0x0018, 0x0050): ("SliceThickness", "ds"),
    (0x0018, 0x0080): ("RepetitionTime", "ds"),
    (0x0018, 0x0086): ("EchoNumbers", "int"),
    (0x0018, 0x1030): ("ProtocolName", "str"),
    (0x0018, 0x1120): ("GantryDetectorTilt", "ds"),
    (0x0020, 0x000E): ("SeriesInstanceUID", "str"),
    (0x0020, 0x0011): ("SeriesNumber", "int"),
    (0x0020, 0x0012): ("AcquisitionNumber", "int"),
    (0x0020, 0x0013): ("InstanceNumber", "int"),
    (0x0020, 0x0032): ("ImagePositionPatient", "ds"),
    (0x0020, 0x0037): ("ImageOrientationPatient", "ds"),
    (0x0020, 0x0100): ("TemporalPositionIdentifier", "int"),
    (0x0028, 0x0002): ("SamplesPerPixel", "us"),
    (0x0028, 0x0004): ("PhotometricInterpretation", "str"),
    (0x0028, 0x0008): ("NumberOfFrames", "int"),
    (0x0028, 0x0010): ("Rows", "us"),
    (0x0028, 0x0011): ("Columns", "us"),
    (0x0028, 0x0030): ("PixelSpacing", "ds"),
    (0x0028, 0x0100): ("BitsAllocated", "us"),
    (0x0028, 0x0101): ("BitsStored", "us"),
    (0x0028, 0x0102): ("HighBit", "us"),
    (0x0028, 0x0103): ("PixelRepresentation", "us"),
    (0x0028, 0x1052): ("RescaleIntercept", "ds"),
    (0x0028, 0x1053): ("RescaleSlope", "ds"),
}


#: private fields (odd groups) by the name they are stored under
PRIVATE_TAGS: dict[str, tuple[int, int]] = {
    name: tag for tag, (name, _kind) in FIELDS.items() if tag[0] % 2
}


def private_field(header, name: str) -> Any:
    """A private field of a scanned header or a pydicom dataset, decoded the same way for
    both (pydicom leaves unknown private elements as raw bytes); ``None`` when absent."""
    if isinstance(header, ScannedHeader):
        return header.get(name)
    tag = PRIVATE_TAGS[name]
    if tag not in header:
        return None
    value = header[tag].value
    kind = FIELDS[tag][1]
    if isinstance(value, bytes):
        return _decode(value, kind, None)
    if kind in ("us", "ss", "sl", "fl", "fd"):
        try:
            return float(value) if kind in ("fl", "fd") else int(value)
        except (TypeError, ValueError):
            return None
    if kind in ("fl", "fd"):
        try:
            values = tuple(
                float(v) for v in (value if isinstance(value, list | tuple) else [value])
            )
        except (TypeError, ValueError):
            return None
        return values if len(values) != 1 else values[0]
    if kind == "ds":
        items = [value] if isinstance(value, str | int | float) else list(value)
        return _decode("\\".join(str(v) for v in items).encode("latin-1"), kind, None)
    return value


def number_or(value: Any, absent: float) -> float:
    """A header number: ``absent`` when the value is absent, NaN when it is not a number (so
    callers refuse it rather than read it as absent)."""
    if value is None or value == "":
        return absent
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class ScanUnsupported(Exception):
    """The file is not in an encoding this scanner walks; read it with pydicom instead."""


class ScannedHeader(dict):
    """Decoded header fields by DICOM keyword, with attribute access like a pydicom Dataset.

    Extra attributes: ``transfer_syntax``, ``pixel_offset`` / ``pixel_length`` (bytes in the
    file; ``pixel_length`` is ``None`` for encapsulated data), ``file_size``, ``header_end``
    (where the pixel data element starts, else the file's end) and, from :func:`scan_file`,
    ``header_digest`` (see :func:`header_digest`).
    """

    transfer_syntax: str = ""
    #: frame index within an enhanced (multi-frame) file; None for single-frame files
    frame: int | None = None
    pixel_offset: int | None = None
    pixel_length: int | None = None
    file_size: int = 0
    #: bytes before the pixel data element (the whole file when it has none)
    header_end: int = 0
    header_digest: str = ""
    #: number fields whose text is not a number (left out of the mapping, named here)
    malformed: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _decode(raw: bytes, kind: str, vr: bytes | None) -> Any:
    if kind == "bytes":
        return raw
    if kind in ("us", "ss"):
        if len(raw) < 2:
            return None
        return (_U16 if kind == "us" else _S16).unpack_from(raw)[0]
    if kind in ("fl", "fd"):
        size = 4 if kind == "fl" else 8
        if not raw or len(raw) % size:
            return None  # not the binary value this tag should hold (e.g. another creator's)
        floats = struct.unpack(f"<{len(raw) // size}{'f' if size == 4 else 'd'}", raw)
        return floats if len(floats) != 1 else floats[0]
    if kind == "sl":
        return struct.unpack_from("<i", raw)[0] if len(raw) >= 4 else None
    if kind == "uss":
        return struct.unpack_from(f"<{len(raw) // 2}H", raw) if len(raw) >= 2 else None
    text = raw.decode("latin-1").strip(" \x00")
    if kind == "str":
        return text
    parts = [p.strip(" \x00") for p in text.split("\\")]
    if kind == "strs":
        return tuple(parts)
    if kind == "int":
        try:
            return int(parts[0]) if parts[0] else None
        except ValueError:
            return None
    try:
        values = tuple(float(p) for p in parts if p)
    except ValueError:
        return None
    return values if len(values) != 1 else values[0]


class _Walker:
    def __init__(self, buf, implicit: bool):
        self.buf = buf
        self.size = len(buf)
        self.implicit = implicit

    def element(self, pos: int, implicit: bool) -> tuple[int, int, bytes | None, int, int]:
        """(group, element, vr, length, value position) of the element at ``pos``."""
        buf = self.buf
        if pos + 8 > self.size:
            raise ScanUnsupported("element header runs past the end of the file")
        group, elem = _TAG.unpack_from(buf, pos)
        if group == 0xFFFE or implicit:
            return group, elem, None, _U32.unpack_from(buf, pos + 4)[0], pos + 8
        vr = bytes(buf[pos + 4 : pos + 6])
        if vr in _EXPLICIT_LONG_VRS:
            if pos + 12 > self.size:
                raise ScanUnsupported("element header runs past the end of the file")
            return group, elem, vr, _U32.unpack_from(buf, pos + 8)[0], pos + 12
        if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            raise ScanUnsupported(f"invalid VR {vr!r} at byte {pos}")
        return group, elem, vr, _U16.unpack_from(buf, pos + 6)[0], pos + 8

    def skip_undefined(self, pos: int, implicit: bool) -> int:
        """Position after a sequence of undefined length whose first item starts at ``pos``."""
        while True:
            group, elem, _, length, vpos = self.element(pos, implicit)
            if group != 0xFFFE:
                raise ScanUnsupported(f"expected an item tag at byte {pos}")
            if elem == _SEQ_END:
                return vpos
            if elem != _ITEM:
                raise ScanUnsupported(f"unexpected delimiter ({group:04X},{elem:04X}) at {pos}")
            if length != _UNDEFINED:
                pos = vpos + length
                continue
            pos = vpos
            while True:  # elements of an item of undefined length
                group, elem, vr, length, vpos = self.element(pos, implicit)
                if group == 0xFFFE and elem == _ITEM_END:
                    pos = vpos
                    break
                pos = self.after_value(vr, length, vpos, implicit)

    def after_value(self, vr: bytes | None, length: int, vpos: int, implicit: bool) -> int:
        if length != _UNDEFINED:
            end = vpos + length
            if end > self.size:
                raise ScanUnsupported("value runs past the end of the file")
            return end
        # undefined length: a sequence; UN of undefined length holds implicit-VR items
        return self.skip_undefined(vpos, implicit or vr == b"UN")


def _file_meta(buf) -> tuple[str, int]:
    """(transfer syntax, where the data set starts) from the file meta group of ``buf``."""
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        raise ScanUnsupported("no DICM preamble")
    walker = _Walker(buf, implicit=False)
    pos = 132
    syntax = ""
    while pos + 8 <= len(buf) and _TAG.unpack_from(buf, pos)[0] == 0x0002:
        _, elem, vr, length, vpos = walker.element(pos, False)
        if elem == 0x0010:
            syntax = bytes(buf[vpos : vpos + length]).decode("ascii", "replace").strip(" \x00")
        pos = walker.after_value(vr, length, vpos, False)
    return syntax, pos


def _syntax_and_start(buf) -> tuple[str, int]:
    syntax, pos = _file_meta(buf)
    # deflated and big-endian streams are left to pydicom; encapsulated (JPEG, RLE, JPEG-LS,
    # JPEG 2000) headers are explicit little endian like native ones
    if syntax not in NATIVE_SYNTAXES and not is_encapsulated(syntax):
        raise ScanUnsupported(f"transfer syntax {syntax or '(none)'}")
    return syntax, pos


def scan_buffer(buf) -> ScannedHeader:
    """Scan a whole DICOM file held in ``buf`` (bytes, mmap or memoryview)."""
    syntax, pos = _syntax_and_start(buf)
    implicit = syntax == IMPLICIT_LE
    walker = _Walker(buf, implicit)
    out = ScannedHeader()
    out.transfer_syntax = syntax
    out.file_size = size = len(buf)
    out.header_end = size
    try:
        pos = _walk(buf, pos, out, walker, implicit)
    except struct.error:  # an element header cut by the file's end
        raise ScanUnsupported("element header runs past the end of the file") from None
    if out.pixel_offset is None and pos != size:
        raise ScanUnsupported("element header runs past the end of the file")
    return out


def _walk(buf, pos: int, out: ScannedHeader, walker: _Walker, implicit: bool) -> int:
    """Decode the elements from ``pos`` into ``out``; the position where the walk ended."""
    size = out.file_size
    fields = FIELDS
    tag_from, u16_from, u32_from = _TAG.unpack_from, _U16.unpack_from, _U32.unpack_from
    long_vrs = _EXPLICIT_LONG_VRS
    tail_unchecked = True
    # the hot loop is inlined: a GE slice has ~300 elements before its pixel data
    while pos + 8 <= size:
        group, elem = tag_from(buf, pos)
        if implicit or group == 0xFFFE:
            vr = None
            length = u32_from(buf, pos + 4)[0]
            vpos = pos + 8
        else:
            vr = buf[pos + 4 : pos + 6]
            if vr in long_vrs:
                length = u32_from(buf, pos + 8)[0]
                vpos = pos + 12
            elif vr.isalpha():
                length = u16_from(buf, pos + 6)[0]
                vpos = pos + 8
            else:
                raise ScanUnsupported(f"invalid VR {bytes(vr)!r} at byte {pos}")
        if group > LAST_FIELD_GROUP and tail_unchecked:
            tail_unchecked = False
            if _pixel_data_at_end(buf, out, implicit):
                break
        if group == 0x7FE0 and elem == 0x0010:
            out.header_end = pos
            out.pixel_offset = vpos
            out.pixel_length = None if length == _UNDEFINED else length
            break
        field = fields.get((group, elem))
        if field is not None and length != _UNDEFINED:
            value = _decode(bytes(buf[vpos : vpos + length]), field[1], vr)
            if value is not None and value != "" and value != ():
                out[field[0]] = value
            elif (
                value is None
                and field[1] in ("ds", "int")
                and buf[vpos : vpos + length].strip(b" \0")
            ):
                out.malformed = out.malformed | {field[0]}  # text that is not a number
        elif group == 0x5200 and elem == 0x9230:
            out["PerFrameFunctionalGroupsSequence"] = True
        if length == _UNDEFINED:
            pos = walker.after_value(vr, length, vpos, implicit)
        else:
            pos = vpos + length
            if pos > size:
                raise ScanUnsupported("value runs past the end of the file")
    return pos


#: the highest group in FIELDS; past it only the pixel data element is still wanted
LAST_FIELD_GROUP = max(group for group, _ in FIELDS)


def _pixel_data_at_end(buf, out: ScannedHeader, implicit: bool) -> bool:
    """For native pixel data, find the pixel data element from the file's end.

    Native pixel data are the last element and their length follows from the header, so the
    private blocks between the header and the pixels need not be walked.  Returns False when
    the element is not where it should be (padding, trailing tags, truncation): the caller
    then keeps walking and finds the element, or the file's true end, by itself.
    """
    if out.transfer_syntax not in NATIVE_SYNTAXES or "PerFrameFunctionalGroupsSequence" in out:
        return False
    try:
        expected = (
            int(out["Rows"])
            * int(out["Columns"])
            * int(out.get("NumberOfFrames") or 1)
            * int(out.get("SamplesPerPixel") or 1)
            * int(out["BitsAllocated"])
            // 8
        )
    except (KeyError, TypeError, ValueError):
        return False
    if expected <= 0:  # a fuzzed size: let the walk find the element
        return False
    for header_len, length in (
        ((8, expected), (8, expected + 1)) if implicit else ((12, expected), (12, expected + 1))
    ):
        start = out.file_size - length - header_len
        if start < 132:
            continue
        if _TAG.unpack_from(buf, start) != PIXEL_DATA:
            continue
        stored = _U32.unpack_from(buf, start + header_len - 4)[0]
        if stored == length:
            out.header_end = start
            out.pixel_offset = start + header_len
            out.pixel_length = length
            return True
    return False


def read_file_bytes(path: str | os.PathLike):
    """The file's bytes: a read-only mmap for plain files, inflated bytes for ``.gz`` (see
    :func:`inflate_gz`; raises :class:`.limits.ImageTooLarge` and, cut short, EOFError).

    The caller closes the returned object when it is an mmap.
    """
    path = Path(path)
    if path.suffix == ".gz":
        return inflate_gz(path)[0]
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


_INFLATE_CHUNK = 1 << 20


def inflate_gz(path: str | os.PathLike, pixels: str = "keep") -> tuple[bytes, int]:
    """(bytes, inflated size) of a ``.dcm.gz``, inflated as a stream, never whole.

    First the header, up to the pixel data element (at most :data:`.limits.HEADER_LIMIT`);
    then only as many bytes as the header declares for the pixels (checked against the
    ceiling first; encapsulated data at most twice the image plus 1 MiB, and no more may
    follow).  ``pixels="count"`` counts those bytes without keeping them (a header read: the
    size says whether the pixels are all there; only the axes are checked), ``"skip"`` stops
    at the header (its size is then what was inflated).  A data set the scanner does not walk
    (deflated, big endian) is kept whole up to the ceiling.  Raises EOFError when the stream
    ends early and :class:`.limits.ImageTooLarge` when a bound is passed.
    """
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    size = 0
    need: int | None = None  # the bytes to inflate, once the header says
    must_end = False  # nothing may follow the bytes needed (else they were not all)
    check_at = 1 << 16
    with open(path, "rb") as fh:
        while need is None or size < need:
            data = inflater.unconsumed_tail or fh.read(_INFLATE_CHUNK)
            if not data:
                raise EOFError("compressed file ended before the end-of-stream marker")
            want = _INFLATE_CHUNK if need is None else min(_INFLATE_CHUNK, need - size)
            chunk = inflater.decompress(data, want)
            size += len(chunk)
            if need is None or pixels == "keep":
                out += chunk
            if inflater.eof:
                break
            if need is None and (size >= check_at or size >= limits.HEADER_LIMIT):
                check_at *= 2
                need, must_end = _inflated_size_needed(bytes(out), pixels)
                if need is not None and pixels == "skip":
                    return bytes(out), size
                if need is None and size >= limits.HEADER_LIMIT:
                    raise limits.ImageTooLarge(
                        "no pixel data element within the first "
                        f"{limits.human_bytes(limits.HEADER_LIMIT)} of the inflated file"
                    )
        if must_end and need is not None and (size > need or _inflates_on(inflater, fh)):
            raise limits.ImageTooLarge(
                f"the file inflates to more than {limits.human_bytes(size)}, beyond what "
                "its header declares or conversion.max_image_gb allows"
            )
    return bytes(out), size


def _inflates_on(inflater, fh) -> bool:
    """Whether the stream holds at least one more inflated byte."""
    if inflater.eof:
        return False
    return bool(inflater.decompress(inflater.unconsumed_tail or fh.read(_INFLATE_CHUNK), 1))


#: what is checked of a declared size before its bytes are inflated: all of it when they are
#: kept, only the axes when counted (the header read reports what is wrong with the file)
_CHECKS: dict[str, Callable[[ScannedHeader, str], int]] = {
    "keep": limits.check_declared,
    "count": limits.check_axes,
    "skip": limits.declared_bytes,
}


def _inflated_size_needed(head: bytes, pixels: str) -> tuple[int | None, bool]:
    """(inflated bytes needed, whether the stream must end there) once ``head`` holds the
    header; (None, False) while it does not yet.  The declared size is checked first as
    :func:`inflate_gz`'s ``pixels`` says."""
    try:
        syntax, _ = _syntax_and_start(head)
    except ScanUnsupported:  # not walked here: pydicom needs it whole, up to the ceiling
        return limits.image_ceiling() + limits.HEADER_LIMIT, True
    try:
        header = scan_buffer(head)
    except ScanUnsupported:
        return None, False  # the header goes on past what is inflated so far
    if header.pixel_offset is None:
        return None, False
    declared = _CHECKS[pixels](header, syntax)
    if header.pixel_length is None:  # fragments: no larger than twice the image
        return header.pixel_offset + 2 * declared + _INFLATE_CHUNK, True
    return header.pixel_offset + min(header.pixel_length, declared + 1), False


def check_deflated(stream) -> None:
    """A data set under the deflated transfer syntax inflates to no more than its header
    declares (up to its pixel data, at most :data:`.limits.HEADER_LIMIT`; then the declared
    pixels, checked by :func:`.limits.check_declared`, and at most 1 MiB after them), as
    pydicom inflates it whole.  Counted as a stream from ``stream`` (a binary file at its
    start), the header kept only until it is read.  Raises :class:`.limits.ImageTooLarge`;
    the stream is rewound, and other transfer syntaxes pass untouched."""
    head = stream.read(1 << 16)
    try:
        syntax, start = _file_meta(head)
    except ScanUnsupported:
        syntax, start = "", 0
    if syntax != DEFLATED_LE:
        stream.seek(0)
        return
    inflater = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
    body = bytearray()
    need: int | None = None
    data, size, check_at = head[start:], 0, 1 << 16
    while data and not inflater.eof:
        while data:
            chunk = inflater.decompress(data, _INFLATE_CHUNK)
            size += len(chunk)
            data = inflater.unconsumed_tail
            if need is None:
                body += chunk
                if len(body) >= check_at:
                    check_at *= 2
                    need = _deflated_size_needed(bytes(body))
            if size > (limits.HEADER_LIMIT if need is None else need):
                raise limits.ImageTooLarge(
                    f"the deflated data set inflates to more than {limits.human_bytes(size)}, "
                    "beyond what its header declares"
                )
        data = stream.read(_INFLATE_CHUNK)
    stream.seek(0)


def scan_data_set(buf, start: int = 0) -> ScannedHeader:
    """Scan the data set from ``start`` of ``buf`` as explicit VR little endian, whatever
    the file meta says (an inflated data set; or, for its identity only, one that does not
    inflate); raises :class:`ScanUnsupported`."""
    out = ScannedHeader()
    out.transfer_syntax = EXPLICIT_LE
    out.file_size = out.header_end = len(buf)
    try:
        _walk(buf, start, out, _Walker(buf, implicit=False), implicit=False)
    except struct.error:
        raise ScanUnsupported("element header runs past the end of the file") from None
    return out


def data_set_start(buf) -> int:
    """Where the data set of a DICOM file in ``buf`` starts (after its file meta group);
    raises :class:`ScanUnsupported`."""
    return _file_meta(buf)[1]


def _deflated_size_needed(body: bytes) -> int | None:
    """The most an inflated data set (explicit VR little endian) may hold once ``body``
    reaches its pixel data; None before."""
    try:
        out = scan_data_set(body)
    except ScanUnsupported:
        return None  # the header goes on past what is inflated so far
    if out.pixel_offset is None:
        return None
    declared = limits.check_declared(out, EXPLICIT_LE)
    pixels = declared + 1 if out.pixel_length is None else min(out.pixel_length, declared + 1)
    return out.pixel_offset + pixels + _INFLATE_CHUNK


def header_digest(header_bytes) -> str:
    """The first 16 hex digits of the SHA-256 of a file's header bytes (everything before
    its pixel data element; decompressed for ``.gz``): a file's content fingerprint that needs
    no pixel read."""
    return hashlib.sha256(header_bytes).hexdigest()[:16]


def scan_file(path: str | os.PathLike) -> ScannedHeader:
    """Scan one file; see the module docstring for the rule."""
    if Path(path).suffix == ".gz":  # the header, and the count of the bytes after it
        head, size = inflate_gz(path, pixels="count")
        out = scan_buffer(head)
        out.header_digest = header_digest(head[: out.header_end])
        out.file_size = size
        return out
    buf = read_file_bytes(path)
    try:
        out = scan_buffer(buf)
        out.header_digest = header_digest(buf[: out.header_end])
        return out
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
