"""GE private header values, read the way dcm2niix reads them.

Protocol data block (0025,101B): a gzip stream of ``KEY "value"`` lines after a short binary
prefix.  ``SLICEORDER`` 0 is sequential, anything else (or absent) interleaved; ``MBACCEL``
the HyperBand factor; ``DELACQ`` / ``DELACQNOAV`` the multiphase group delay (s); ``IOPT`` the
imaging options (``FMRI``, ``MPh``, ``MPhVar``, ``DIFF``).

Sequence family (dcm2niix's ``epiVersionGE``): from the pulse sequence name (0019,109C)
``epi_pepolar`` / ``epi2`` / ``epiRT`` / ``epi`` (first match), the internal name (0019,109E)
``EPI`` turning anything but epiRT and pepolar into plain ``epi``, and the epiRT group delay
(0043,107C) marking epiRT.  The internal name ``EPI2`` marks spin-echo (diffusion) EPI.

Phase polarity: the standard (0018,9034) wins (LINEAR is *flipped*, REVERSE_LINEAR unflipped:
GE Rx27+).  Older software keeps it only in the UserDefineData block (0043,102A): a
little-endian ``uint16`` at byte 24 gives the offset of the raw header, whose first ``float32``
is its version; from version 25.002 on the fields sit 0x4C bytes further in.  Bit 0x800 of the
``uint16`` at +0x3A marks EPI (polarity is only defined for EPI), bit 0x4 of the ``uint16`` at
+0x30 is the flipped flag and the ``uint16`` at +0x394 (+0x308 from 25.002) the k-space view
order, whose bottom-up value (2) inverts the polarity.  The ``epi_pepolar`` research sequence
reverses the polarity when UserData12 (0019,10B3) is 1 and alternates it per volume when it is
2 or 3 (then the series has no single polarity).

Effective echo spacing (FSL's definition): total readout time = (ceil(PE lines / R / f) x f -
1) x echo spacing (0043,102C, us), with PE lines from AcquisitionMatrix (0018,1310), R the
reciprocal of the first ASSET factor (0043,1083) and f 4 with partial Fourier (ScanOptions
``PFF``) else 2; the effective spacing is that time over (acquired PE lines - 1), and the
written TotalReadoutTime is the effective spacing x (reconstructed PE lines - 1).

Timing: RepetitionTime includes the epiRT group delay (0043,107C, s).  Slice times follow from
TR, the slice order and the HyperBand factor (max of (0043,10B6) and ``MBACCEL``), excitation
``k`` of ``n = ceil(slices / MB)`` at ``k (TR - group delay) / n`` (interleaved: even
excitations first); before software 27.0 R03 an even ``n`` gets one more excitation, from then
on the last and third-last excitation swap when ``n`` is even and interleaved.  Diffusion
(epi2) is interleaved, pre-R03 style and without group delay, and only when the gradient
cycling of Premier / UHP / 7.0T systems is off (UserData15 (0019,10B6), UserData12).

Diffusion: b-value = first value of (0043,1039) modulo 10^9; direction (0019,10BB/10BC/10BD)
in GE's logical frame, turned into patient space with dcm2niix's per-orientation rule (head
first supine only).  B0 field maps (pulse sequence ``*b0map*`` or internal ``B0map``) hold the
field map in Hz in the images numbered up to the locations per volume (0021,104F) and the
magnitude after them; the Hz map's echo times are TE and TE + 1/(2 pi |VelocityEncodeScale|).
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .scan import (
    GE_ASSET,
    GE_B_VALUE,
    GE_DIFFUSION_DIRECTIONS,
    GE_DIFFUSION_X,
    GE_DIFFUSION_Y,
    GE_DIFFUSION_Z,
    GE_ECHO_SPACING,
    GE_GROUP_DELAY,
    GE_IMAGE_TYPE,
    GE_INTERNAL_SEQUENCE,
    GE_LOCATIONS,
    GE_MULTIBAND,
    GE_PROTOCOL,
    GE_PULSE_SEQUENCE,
    GE_SERIES_DIFFUSION_TYPE,
    GE_USER_DATA_12,
    GE_USER_DATA_15,
    GE_VAS_COLLAPSE,
    GE_VELOCITY_ENCODE_SCALE,
    private_field,
)
from .vendors import GE, vendor_of

_LINE = re.compile(r'^(\w+) "([^"]*)"', re.M)

#: dcm2niix's epiVersionGE values
EPI, EPI_RT, EPI2, EPI_PEPOLAR = 0, 1, 2, 3


def is_ge(header) -> bool:
    return vendor_of(header) == GE


def _number(value) -> float | None:
    """First number of a scalar or multi-valued field (bytes of a FL tag included)."""
    if isinstance(value, bytes):
        return struct.unpack_from("<f", value)[0] if len(value) >= 4 else None
    if not isinstance(value, str) and isinstance(value, Sequence):
        value = value[0] if len(value) else None
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _text(header, name: str) -> str:
    return str(private_field(header, name) or "").strip()


# ---------------------------------------------------------------- protocol data block


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


def _block_number(block: dict[str, str], key: str) -> float | None:
    try:
        return float(block[key])
    except (KeyError, ValueError):
        return None


# ---------------------------------------------------------------- sequence family


def epi_version(header) -> int | None:
    """dcm2niix's epiVersionGE: EPI, EPI_RT, EPI2, EPI_PEPOLAR or None (not EPI)."""
    name = _text(header, GE_PULSE_SEQUENCE)
    version = None
    if "epi_pepolar" in name:
        version = EPI_PEPOLAR
    elif "epi2" in name:
        version = EPI2
    elif "epiRT" in name:
        version = EPI_RT
    elif "epi" in name:
        version = EPI
    if _text(header, GE_INTERNAL_SEQUENCE) == "EPI" and version in (None, EPI, EPI2):
        version = EPI
    if private_field(header, GE_GROUP_DELAY) is not None:
        version = EPI_RT
    return version


def is_spin_echo_epi(header) -> bool:
    """Diffusion EPI (epi2 or internal EPI2)."""
    return epi_version(header) == EPI2 or _text(header, GE_INTERNAL_SEQUENCE) == "EPI2"


def sequence_name(header) -> str | None:
    """What dcm2niix writes as SequenceName for GE: (0018,0024), else (0019,109C)."""
    own = str(header.get("SequenceName") or "").strip()
    return own or _text(header, GE_PULSE_SEQUENCE) or None


# ---------------------------------------------------------------- phase encoding


def phase_positive(header, user_data: bytes | None = None) -> int | None:
    """1 (unflipped), 0 (flipped) or None (unknown): from (0018,9034), else from the
    UserDefineData block ``user_data``; reversed for the epi_pepolar research sequence."""
    value = str(header.get("RectilinearPhaseEncodeReordering") or "").strip().upper()
    positive: int | None
    if value in ("LINEAR", "REVERSE_LINEAR"):
        positive = 0 if value == "LINEAR" else 1
    else:
        positive = user_data_phase_positive(user_data)
    if positive is None or epi_version(header) != EPI_PEPOLAR:
        return positive
    cycle = _number(private_field(header, GE_USER_DATA_12))
    if cycle is not None and round(cycle) == 1:
        return 1 - positive
    if cycle is not None and round(cycle) in (2, 3):
        return None  # polarity alternates volume by volume
    return positive


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


def phase_encoding_lines(header) -> int | None:
    """Acquired PE lines from AcquisitionMatrix (0018,1310): its phase rows, else columns."""
    matrix = header.get("AcquisitionMatrix")
    if matrix is None or isinstance(matrix, str | bytes) or len(matrix) != 4:
        return None
    lines = int(matrix[2]) or int(matrix[3])
    return lines or None


def in_plane_acceleration(header) -> float | None:
    """ASSET in-plane factor R: the reciprocal of the first value of (0043,1083)."""
    first = _number(private_field(header, GE_ASSET))
    return 1.0 / first if first and first > 0 else None


def effective_echo_spacing(header) -> float | None:
    """FSL's effective echo spacing in s (module docstring); None when a value is missing."""
    spacing_us = _number(private_field(header, GE_ECHO_SPACING))
    lines = phase_encoding_lines(header)
    accel = in_plane_acceleration(header)
    if not spacing_us or spacing_us <= 0 or not lines or lines < 2 or not accel:
        return None
    options = header.get("ScanOptions") or ()
    options = [options] if isinstance(options, str) else [str(v) for v in options]
    partial_fourier = any("PFF" in v for v in options) or (
        str(header.get("PartialFourier") or "").strip().upper().startswith("Y")
    )
    round_factor = 4.0 if partial_fourier else 2.0
    readout = (math.ceil(lines / accel / round_factor) * round_factor - 1.0) * spacing_us * 1e-6
    return readout / (lines - 1)  # per acquired line: interpolation does not change it


# ---------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Series timing as dcm2niix reports it for GE."""

    #: RepetitionTime in ms, group delays included
    repetition_time_ms: float | None
    #: slice times in s by prescription (instance) order, or None
    slice_times: list[float] | None
    #: HyperBand factor (1 when none)
    multiband: int


def software_version(header) -> tuple[float, bool] | None:
    """(major.minor, is 27.0 R03 or later) from SoftwareVersions, e.g. 'DV28.0_R02' or
    'MR29.1_EA'; None when no such token is present."""
    value = header.get("SoftwareVersions") or ""
    text = value if isinstance(value, str) else "\\".join(str(v) for v in value)
    match = re.search(r"[A-Za-z]{2}(\d+)\.(\d+)_(EA|R(\d+))", text)
    if not match:
        return None
    major, minor = int(match[1]), int(match[2])
    release = 0 if match[3] == "EA" else int(match[4])
    version = major + 0.1 * minor
    return version, version >= 27.1 or (major == 27 and release >= 3)


def multiband_tag(header) -> int:
    """HyperBand factor from (0043,10B6) (first value), 1 when absent."""
    value = _number(private_field(header, GE_MULTIBAND))
    return int(value) if value and value > 1 else 1


def diffusion_cycling_off(header) -> bool:
    """True unless a Premier / UHP / 7.0T diffusion scan cycles its gradients over TRs."""
    model = str(header.get("ManufacturerModelName") or "")
    premier = "Premier" in model
    uhp = "UHP" in model or "7.0T" in model
    if not (premier or uhp):
        return True
    special = _number(private_field(header, GE_USER_DATA_15))
    if special is not None and premier and abs(special - 0.72) < 1e-4:
        return True
    return special is not None and uhp and 0.5 <= special <= 1.0


def excitation_times(
    n_slices: int, multiband: int, tr_ms: float, interleaved: bool, is27r3: bool, delay_ms: float
) -> list[float]:
    """Slice times (ms, prescription order) of one volume: dcm2niix's sliceTimeGE."""
    n = math.ceil(n_slices / multiband)
    if multiband > 1 and not is27r3 and n % 2 == 0:
        n += 1
    step = (tr_ms - delay_ms) / n
    if interleaved:
        first_odd = (n - 1) // 2
        times = [(k // 2 if k % 2 == 0 else first_odd + (k + 1) // 2) * step for k in range(n)]
        if multiband > 1 and is27r3 and n > 2 and n % 2 == 0:
            times[n - 1], times[n - 3] = times[n - 3], times[n - 1]
    else:
        times = [k * step for k in range(n)]
    return [times[k % n] for k in range(n_slices)]


def timing(header, n_slices: int, n_volumes: int) -> Timing:
    """RepetitionTime, slice times and HyperBand factor of a GE series from its first header."""
    tr = _number(header.get("RepetitionTime"))
    rt_delay = _number(private_field(header, GE_GROUP_DELAY)) or 0.0
    rt_delay_ms = rt_delay * 1000.0 if rt_delay > 0 else 0.0
    tr_ms = tr + rt_delay_ms if tr else None
    multiband = multiband_tag(header)
    is_3d = str(header.get("MRAcquisitionType") or "").strip().upper() == "3D"
    block = protocol_block(private_field(header, GE_PROTOCOL))
    if is_3d or n_volumes < 2 or n_slices < 2 or not block or not tr_ms:
        return Timing(tr_ms, None, multiband)
    multiband = max(multiband, int(_block_number(block, "MBACCEL") or 1))
    order = _block_number(block, "SLICEORDER")
    interleaved = order is None or order != 0
    options = block.get("IOPT", "")
    version = epi_version(header)
    delay_ms = rt_delay_ms
    is27r3 = None
    if version in (EPI_PEPOLAR, EPI_RT) or "FMRI" in options:
        pass  # epiRT: the group delay (0043,107C) is already in TR
    elif version == EPI or "MPh" in options:
        delay_ms = 1000.0 * (_block_number(block, "DELACQNOAV") or 0.0)
        if "MPh" in options and block.get("DELACQ") == "Minimum":
            delay_ms = 0.0
        if "MPhVar" in options:
            return Timing(tr_ms, None, multiband)  # variable delays: no single pattern
        if delay_ms > 0:
            tr_ms += delay_ms
    elif version == EPI2 or is_spin_echo_epi(header) or "DIFF" in options:
        if not (is_spin_echo_epi(header) and diffusion_cycling_off(header)):
            return Timing(tr_ms, None, multiband)
        interleaved, is27r3, delay_ms = True, False, 0.0
    else:
        return Timing(tr_ms, None, multiband)
    parsed = software_version(header)
    if multiband > 1 and (parsed is None or parsed[0] < 26.0):
        return Timing(tr_ms, None, multiband)  # early HyperBand: slice order unknown
    if is27r3 is None:
        is27r3 = bool(parsed and parsed[1])
    times = excitation_times(n_slices, multiband, tr_ms, interleaved, is27r3, delay_ms)
    if len(set(times)) < 2:
        return Timing(tr_ms, None, multiband)
    return Timing(tr_ms, [t / 1000.0 for t in times], multiband)


# ---------------------------------------------------------------- image type, field maps


_PARTS = ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY")


def _is_b0_map(header) -> bool:
    return "b0map" in _text(header, GE_PULSE_SEQUENCE) or (
        _text(header, GE_INTERNAL_SEQUENCE) == "B0map"
    )


def is_fieldmap_hz(header) -> bool:
    """The field map (Hz) half of a GE B0 map series (see the module docstring)."""
    if not is_ge(header) or not _is_b0_map(header):
        return False
    images = _number(header.get("ImagesInAcquisition"))
    locations = _number(private_field(header, GE_LOCATIONS))
    instance = _number(header.get("InstanceNumber"))
    if not images or not locations or instance is None or images == locations:
        return False
    thickness = _number(header.get("SliceThickness"))
    spacing = _number(header.get("SpacingBetweenSlices"))
    if thickness and spacing and spacing > 0:
        zip_factor = round(thickness / spacing)
        if zip_factor > 1:
            locations *= zip_factor
    return instance <= locations


def image_type_part(header) -> str | None:
    """The ImageType part dcm2niix appends for GE: FIELDMAPHZ, else from (0043,102F)."""
    if is_fieldmap_hz(header):
        return "FIELDMAPHZ"
    code = private_field(header, GE_IMAGE_TYPE)
    return _PARTS[code] if isinstance(code, int) and 0 <= code < 4 else None


def grouping_image_type(header, image_type: tuple[str, ...]) -> tuple[str, ...]:
    """Image type for grouping: GE's phase / real / imaginary code and the B0 map's Hz half
    split a series the way dcm2niix does (magnitude images keep their type)."""
    if not is_ge(header):
        return image_type
    part = image_type_part(header)
    if part is None or part == "MAGNITUDE" or part in image_type:
        return image_type
    return (*image_type, part)


def fieldmap_echo_times(header) -> tuple[float, float] | None:
    """(EchoTime1, EchoTime2) in s of a GE field map in Hz, else None."""
    te = _number(header.get("EchoTime"))
    scale = _number(private_field(header, GE_VELOCITY_ENCODE_SCALE))
    if not is_fieldmap_hz(header) or not te or te <= 0 or scale is None or scale >= 0:
        return None
    te1 = te / 1000.0
    return te1, te1 - 1.0 / (2.0 * math.pi * scale)


# ---------------------------------------------------------------- diffusion


def diffusion_values(header) -> tuple[float, np.ndarray] | None:
    """(b, GE logical direction) of one image: b from (0043,1039) modulo 10^9."""
    b = _number(private_field(header, GE_B_VALUE))
    parts = [_number(private_field(header, name)) for name in GE_DIFFUSION_AXES]
    if b is None or any(p is None for p in parts):
        return None
    return float(int(b) % 1_000_000_000), np.array(parts, dtype=float)


GE_DIFFUSION_AXES = (GE_DIFFUSION_X, GE_DIFFUSION_Y, GE_DIFFUSION_Z)


def _directions_counted(header) -> bool:
    """dcm2niix's NumberOfDiffusionDirectionGE is non-zero (not a trace/ADC series)."""
    count = _number(private_field(header, GE_DIFFUSION_DIRECTIONS))
    image_kind = private_field(header, GE_VAS_COLLAPSE)
    series_kind = _number(private_field(header, GE_SERIES_DIFFUSION_TYPE))
    if isinstance(image_kind, int) and image_kind > 0 and image_kind not in (14, 16):
        return False
    if series_kind is not None and series_kind > 0 and round(series_kind) != 16:
        return False
    return bool(count)


def _orientation_class(normal: np.ndarray) -> int:
    """1 sagittal, 2 coronal, 3 axial: the LPS axis the slice normal is nearest (ties to
    the later axis, as dcm2niix)."""
    a = np.abs(normal)
    if a[2] >= a[0] and a[2] >= a[1]:
        return 3
    if a[1] >= a[0] and a[1] >= a[2]:
        return 2
    return 1


def lps_direction(
    vector: np.ndarray, orientation: Sequence[float], column_phase: bool, prescription_sign: int
) -> np.ndarray:
    """A GE logical gradient direction in patient LPS.

    dcm2niix writes the FSL vector of its image (voxel axes: the row cosine, the negated
    column cosine, the slice normal) by swapping x/y for row phase encoding, negating axes
    by slice orientation and prescription direction, then y, then all; that FSL vector is
    mapped back through those voxel axes here.
    """
    iop = np.asarray(orientation, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    x, y, z = (float(v) for v in vector)
    v = np.array([x, y, z]) if column_phase else np.array([y, -x, z])
    flips = {1: [1, 1, 0], 2: [0, 1, 1], 3: [0, 0, 1]}[_orientation_class(normal)]
    if prescription_sign < 0:
        flips[2] = 1 - flips[2]
    v = np.where(np.array(flips) == 1, -v, v)
    v[1] = -v[1]
    fsl = -v
    return fsl[0] * row - fsl[1] * col + fsl[2] * normal


def volume_gradient(
    header, prescription_sign: int | None = None
) -> tuple[float, np.ndarray] | None:
    """(b, LPS direction) of the volume this GE header belongs to, as dcm2niix derives them.

    ``prescription_sign`` is +1 when the series' slices were prescribed (InstanceNumber order)
    along the slice normal, -1 against it: GE's slice axis follows the prescription, so
    without it (None) no direction is exact and None is returned.  None also for a trace /
    ADC volume, a position other than head first supine or unreadable values.
    """
    values = diffusion_values(header)
    if prescription_sign is None or values is None:
        return None
    if str(header.get("PatientPosition") or "").strip().upper() != "HFS":
        return None  # dcm2niix's GE rule is defined for head-first supine only
    direction = str(header.get("InPlanePhaseEncodingDirection") or "").strip().upper()
    orientation = header.get("ImageOrientationPatient")
    if direction not in ("ROW", "COL", "COLUMN") or orientation is None:
        return None
    b, vec = values
    if b > 0 and not np.any(np.abs(vec) > 1e-6):
        if not _directions_counted(header):
            return None  # a trace / ADC volume: dcm2niix drops it from the image
        b = 0.0  # GE's b = 0 volume of a DTI series
    length = float(np.linalg.norm(vec))
    if b <= 0 or length <= 1e-7:
        return b, np.zeros(3)
    if 0.03 < length < 0.97:  # b scaled by |g|^2 (GE): round to 5 s/mm^2, |g| back to 1
        scaled = b * length * length
        new_b = 5.0 if 0 < scaled < 5 else float(int((scaled + 2.5) / 5) * 5)
        vec = vec * (math.sqrt(b / new_b) if new_b else 0.0)
        b = new_b
    return b, lps_direction(vec, orientation, direction != "ROW", prescription_sign)


def gradient_table(
    headers_per_volume: Sequence, prescription_sign: int
) -> list[tuple[float, np.ndarray]] | None:
    """(b, LPS direction) per volume of a GE diffusion series (:func:`volume_gradient`);
    None when a volume has none or nothing varies (no diffusion table, as dcm2niix)."""
    if len(headers_per_volume) < 2:
        return None
    found = [diffusion_values(h) for h in headers_per_volume]
    raw = [r for r in found if r is not None]
    if len(raw) < len(found):
        return None
    b0, v0 = raw[0]
    if b0 <= 50 and not np.any(v0) and all(b == b0 and np.array_equal(v, v0) for b, v in raw):
        return None  # nothing varies: not a diffusion table
    gradients = [volume_gradient(h, prescription_sign) for h in headers_per_volume]
    table = [t for t in gradients if t is not None]
    return None if len(table) < len(gradients) else table
