"""Header-only DICOM reading: one :class:`SliceHeader` per file, or a reason it is unusable.

Rule: :func:`read_slice_header` returns a :class:`SliceHeader` for a readable image file and
raises :class:`UnusableFile` (with a human reason naming the file) for anything else: not
DICOM, unreadable, no pixel data, truncated pixel data, or an image without the geometry tags a
volume needs.  Derived values never raise; absent optional tags give ``None``.

Headers are read by the fast scanner (:mod:`.scan`) and, for encodings it does not walk, by
pydicom; both give a mapping by DICOM keyword, so everything downstream reads them alike.
UIH files that keep their slice positions in a private group are completed from it
(:mod:`.uih`).  A file rejected for its geometry still names its series (``header`` of the
:class:`UnusableFile`), so that series fails loudly instead of vanishing.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import sys
import traceback
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from . import ge, uih
from .dicom_file import (
    CONVERSION_ERRORS,
    PixelDataProblem,
    UndeflatedFile,
    UnusableFile,
    describe,
    open_dicom,
    truncation,
)
from .frames import frame_headers
from .limits import HEADER_LIMIT, ImageTooLarge, axis_problem, declared_bytes
from .scan import (
    UNCOMPRESSED_SYNTAXES,
    ScannedHeader,
    ScanUnsupported,
    data_set_start,
    inflate_gz,
    scan_buffer,
    scan_data_set,
    scan_file,
)
from .siemens import xa_series_stack
from .slice_header import SliceHeader

if TYPE_CHECKING:
    import pydicom

    from .dicom_file import Header



def describe_unexpected(exc: BaseException) -> str:
    """The reason for a file whose read failed in an unforeseen way: the exception and the
    line of anatprep (or the library) that raised it, so a bug can be found from the table."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f", at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"header could not be read ({describe(exc)}{where})"


def _first_unreadable(ds: pydicom.Dataset, where: str = "") -> str | None:
    """Path of the first element in ``ds`` (sequences included) whose value pydicom cannot
    convert, e.g. ``PerFrameFunctionalGroupsSequence[3].PlanePositionSequence[0].X``."""
    from pydicom.datadict import keyword_for_tag

    for tag in list(ds.keys()):
        name = f"{where}{keyword_for_tag(tag) or tag}"
        try:
            elem = ds[tag]
        except (*CONVERSION_ERRORS, NotImplementedError):  # NotImplemented: an unknown VR
            return name
        if elem.VR == "SQ":
            for k, item in enumerate(elem.value):
                found = _first_unreadable(item, f"{name}[{k}].")
                if found:
                    return found
    return None


def _float_tuple(value, n: int, name: str) -> tuple[tuple[float, ...], str | None]:
    """(values, problem): NaN stands in for what is not a number, so the file's series can
    still be identified when the problem is reported."""
    if value is None:
        return (float("nan"),) * n, f"{name} is missing"
    if isinstance(value, str | bytes | int | float):
        value = [value]  # one value where several belong (the scanner unpacks singletons)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return (float("nan"),) * n, f"{name} is not numeric: {value!r}"
    if len(out) != n or not all(map(math.isfinite, out)):
        return out, f"{name} must hold {n} finite numbers, got {value!r}"
    return out, None


#: number fields whose unreadable text fails the file (the scanner leaves them out)
_MUST_PARSE = (
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "PixelSpacing",
    "RescaleSlope",
    "RescaleIntercept",
    "NumberOfFrames",
)
#: direction cosines further than this from unit length / orthogonality are not a plane
COSINE_TOLERANCE = 0.01
#: sample sizes a volume can be stored in
SUPPORTED_BITS = (8, 16, 32)


def _value_problem(
    orientation: tuple[float, ...], spacing: tuple[float, ...], ds: Header
) -> str | None:
    """Why finite geometry and pixel description values cannot make a slice, or None."""
    row, col = orientation[:3], orientation[3:]  # plain floats: this runs for every slice
    lengths = (math.sqrt(sum(v * v for v in row)), math.sqrt(sum(v * v for v in col)))
    if (
        any(abs(n - 1.0) > COSINE_TOLERANCE for n in lengths)
        or abs(sum(a * b for a, b in zip(row, col, strict=True))) > COSINE_TOLERANCE
    ):
        return (
            "ImageOrientationPatient is not two orthogonal unit vectors: "
            f"{tuple(ds.ImageOrientationPatient)!r}"
        )
    if min(spacing) <= 0:
        return f"PixelSpacing must be positive, got {tuple(ds.PixelSpacing)!r}"
    for key in ("Rows", "Columns"):
        count = _int_or_none(ds.get(key))
        if count is None or count < 1:
            return f"{key}={ds.get(key)!r}: an image needs at least one {key[:-1].lower()}"
    problem = axis_problem(ds)
    if problem:
        return problem
    frames = ds.get("NumberOfFrames")
    if frames not in (None, "") and _int_or_none(frames) is None:
        return f"NumberOfFrames={frames!r} is not a number"
    bits = _int_or_none(ds.get("BitsAllocated"))
    if bits not in SUPPORTED_BITS:
        return f"BitsAllocated={ds.get('BitsAllocated')!r} is not supported (8, 16 or 32)"
    return None


#: timing fields a file's grouping and sidecar rest on: a value that is not finite (NaN, inf)
#: or negative (no time runs backwards) fails the file; read as absent, it would split the
#: file off its series, and written, it would be a plausible-looking wrong sidecar
_MUST_BE_FINITE = ("EchoTime", "RepetitionTime", "InversionTime")


def _non_finite_problem(ds) -> str | None:
    """Why a timing value of ``ds`` is unusable (NaN, infinite or negative), or None."""
    for key in _MUST_BE_FINITE:
        value = ds.get(key)
        values = [value] if value is None or isinstance(value, str | bytes | int | float) else value
        for v in values:
            try:
                number = float(v) if v not in (None, "") else 0.0
            except (TypeError, ValueError):
                continue  # text that is no number: left out, as the scanner does
            if not math.isfinite(number):
                return f"{key}={v!s} is not a finite number"
            if number < 0:
                return f"{key}={v!s} is negative"
    return None


def _float_or_none(value) -> float | None:
    """A finite number, else None (NaN and infinities never reach a key or a sidecar)."""
    try:
        out = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return out if out is None or math.isfinite(out) else None


def _int_or_none(value) -> int | None:
    """An integer in the range of DICOM's IS (32 bits), else None."""
    try:
        out = int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None
    return out if out is None or -(2**31) <= out < 2**31 else None


def detect_flavour(ds: Header) -> str:
    """``enhanced`` (multi-frame functional groups), ``uih`` (UIH grid), ``mosaic`` (Siemens
    CSA) or ``classic``."""
    if (
        "PerFrameFunctionalGroupsSequence" in ds
        or (_int_or_none(ds.get("NumberOfFrames")) or 1) > 1
    ):
        return "enhanced"
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if getattr(ds, "uih_grid", None) is not None:
        return "uih"  # UIH tiles, placed by the private group (see uih)
    if "MOSAIC" in image_type:
        return "mosaic"
    return "classic"


def slice_header_from_dataset(ds: Header, path: str) -> SliceHeader:
    """Build a :class:`SliceHeader`; raise :class:`UnusableFile` when a geometry key is absent."""
    has_pixels = ds.pixel_offset is not None if isinstance(ds, ScannedHeader) else "PixelData" in ds
    pixelless = None
    if not has_pixels and "Rows" not in ds:
        from pydicom.uid import UID

        sop = ds.get("SOPClassUID")
        kind = UID(sop).name if sop else "no SOP class"
        if not kind.endswith(" Image Storage"):  # a report, a presentation state, a DICOMDIR
            raise UnusableFile(path, f"DICOM without an image ({kind})")
        # an image object is an image: a lost one fails its series, never shortens it
        pixelless = f"{kind} without pixel data or Rows: the image is lost"
    flavour = detect_flavour(ds)
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    if not uid:
        raise UnusableFile(path, "SeriesInstanceUID is missing")
    frame = getattr(ds, "frame", None)
    where = path if frame is None else f"{path} (frame {frame + 1})"
    flavour_problem = None
    if flavour == "enhanced" and frame is None:
        flavour_problem = "multi-frame DICOM without per-frame functional groups"
    missing = next(
        (
            f"{key} is missing: cannot place the slice in space"
            for key in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing")
            if key not in ds
        ),
        None,
    )
    orientation, bad_orientation = _float_tuple(
        ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient"
    )
    position, bad_position = _float_tuple(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient")
    spacing, bad_spacing = _float_tuple(ds.get("PixelSpacing"), 2, "PixelSpacing")
    unreadable = next(
        (f"{key} is not a number" for key in _MUST_PARSE if key in getattr(ds, "malformed", ())),
        None,
    )
    problem = pixelless or unreadable or missing or flavour_problem
    problem = problem or bad_orientation or bad_position or bad_spacing
    if problem is None:
        problem = _value_problem(orientation, spacing, ds) or _non_finite_problem(ds)
    # enhanced frames: the frame's own type (magnitude/phase/...) decides its output
    image_type = ds.get("FrameType") or ds.get("ImageType") or []
    if isinstance(image_type, str):
        image_type = [image_type]
    image_type = ge.grouping_image_type(ds, tuple(str(v).upper() for v in image_type))
    series_number = _int_or_none(ds.get("SeriesNumber"))
    header = SliceHeader(
        path=path,
        series_uid=sys.intern(uid),
        series_number=series_number,
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        echo_number=_int_or_none(ds.get("EchoNumbers")),
        image_type=tuple(sys.intern(str(v).upper()) for v in image_type),
        orientation=orientation,
        position=position,  # type: ignore[arg-type]  # 3 values, else a problem is set
        rows=_int_or_none(ds.get("Rows")) or 0,
        columns=_int_or_none(ds.get("Columns")) or 0,
        pixel_spacing=spacing,  # type: ignore[arg-type]  # 2 values, else a problem is set
        temporal_position=_int_or_none(ds.get("TemporalPositionIdentifier")),
        acquisition_time=str(ds.get("AcquisitionTime", "") or "") or None,
        # text shared by all files of a series is stored once (memory of large trees)
        series_description=sys.intern(str(ds.get("SeriesDescription", "") or "")),
        protocol_name=sys.intern(str(ds.get("ProtocolName", "") or "")),
        sequence_name=sys.intern(str(ds.get("SequenceName", "") or "")),
        mr_acquisition_type=sys.intern(str(ds.get("MRAcquisitionType", "") or "")),
        n_frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        flavour=flavour,
        frame=frame,
        echo_time=_float_or_none(ds.get("EchoTime")),
        series_stack=xa_series_stack(ds, series_number),
    )
    if problem is not None:  # the header goes along: the file's series fails, naming it
        raise UnusableFile(where, problem, header, own_series=problem != missing)
    return header


def _header_for_report(ds, path: str) -> SliceHeader | None:
    """The file's slice header when its keys are readable (also when the file has a problem
    of its own), so the series it belongs to can be failed; else None."""
    try:
        return slice_header_from_dataset(ds, path)
    except UnusableFile as exc:
        return exc.header
    except (AttributeError, KeyError, TypeError, ValueError):  # not even the keys are readable
        return None


def read_header(path: str | os.PathLike) -> Header:
    """Header of one file (scanner first, pydicom for other encodings).

    Raises :class:`UnusableFile` for files that are not DICOM, cannot be parsed, or whose
    pixel data is shorter than the header says.
    """
    try:
        scanned = scan_file(path)
    except ScanUnsupported:
        return _vendor_geometry(_open_header(path), path)
    except OSError as exc:
        raise UnusableFile(path, f"unreadable ({exc.strerror or exc})") from None
    except EOFError as exc:  # a .gz cut short: the part that decompresses names the series
        reason = f"compressed file is truncated ({exc})"
        raise UnusableFile(path, reason, _truncated_gzip_identity(path)) from None
    except ImageTooLarge as exc:  # from a .gz's header: it names the series
        raise UnusableFile(path, str(exc), _gzip_identity(path)) from None
    problem = _scanned_pixel_problem(scanned)
    if problem:
        try:
            identity = _header_for_report(_vendor_geometry(scanned, path), str(path))
        except UnusableFile as exc:
            identity = exc.header
        raise UnusableFile(path, problem, identity)
    return _vendor_geometry(scanned, path)


def _open_header(path: str | os.PathLike) -> pydicom.Dataset:
    """:func:`.dicom_file.open_dicom`'s header-only read; a file cut short, whose pixel data
    falls short or whose deflated data set does not inflate names the series it belongs to
    when its keys are readable (the series then fails instead of losing a slice)."""
    try:
        return open_dicom(path, stop_before_pixels=True)[0]
    except PixelDataProblem as exc:
        exc.header = _header_for_report(exc.dataset, str(path))
        raise
    except UndeflatedFile as exc:
        exc.header = _undeflated_identity(path)
        raise


def _gzip_identity(path: str | os.PathLike) -> SliceHeader | None:
    """The header keys of a ``.gz`` file, inflating no more than its header; else None."""
    try:
        return _header_for_report(scan_buffer(inflate_gz(path, pixels="skip")[0]), str(path))
    except Exception:  # best effort: the file is reported either way
        return None


def _truncated_gzip_identity(path: str | os.PathLike) -> SliceHeader | None:
    """The header keys of a truncated ``.gz`` file from the part that decompresses (its
    header, mostly), so the series it belongs to fails instead of losing a slice; else None."""
    try:
        with open(path, "rb") as fh:
            head = zlib.decompressobj(wbits=31).decompress(fh.read(HEADER_LIMIT), HEADER_LIMIT)
        try:
            return _header_for_report(scan_buffer(head), str(path))
        except ScanUnsupported:  # cut inside the header: what pydicom reads of it
            import pydicom

            ds = pydicom.dcmread(io.BytesIO(head), stop_before_pixels=True, defer_size=None)
            return _header_for_report(ds, str(path))
    except Exception:  # best effort: the file is reported either way
        return None


def _undeflated_identity(path: str | os.PathLike) -> SliceHeader | None:
    """The header keys of a file whose data set does not inflate under its deflated
    transfer syntax, read as the plain data set it often is (for naming its series only,
    never for its data); else None."""
    try:
        with open(path, "rb") as fh:
            buf = fh.read(HEADER_LIMIT)
        return _header_for_report(scan_data_set(buf, data_set_start(buf)), str(path))
    except Exception:  # best effort: the file is reported either way
        return None


def identify(path: str | os.PathLike) -> SliceHeader | None:
    """Best-effort header keys of a file whose read failed unexpectedly (its series then
    fails loudly); None when not even those are readable."""
    try:
        return _header_for_report(read_header(path), str(path))
    except UnusableFile as exc:
        return exc.header
    except Exception:  # best effort: the file is reported either way
        return None


def _vendor_geometry(header: Header, path: str | os.PathLike) -> Header:
    """UIH keeps slice positions in a private group (see :mod:`.uih`); a file whose private
    geometry is unusable is rejected with its series named."""
    try:
        return uih.with_private_geometry(header, path)
    except UnusableFile as exc:
        if exc.header is None:
            exc.header = _header_for_report(header, str(path))
        if exc.header is not None and uih.grid_size(header) > 1:  # fails the grid series
            exc.header = dataclasses.replace(exc.header, flavour="uih")
        raise


def _scanned_pixel_problem(h: ScannedHeader) -> str | None:
    if "Rows" not in h or "Columns" not in h:
        return None  # not an image; reported by slice_header_from_dataset
    if h.pixel_offset is None:
        return "no pixel data (file ends after the header)"
    if h.transfer_syntax not in UNCOMPRESSED_SYNTAXES:
        return None
    available = min(h.pixel_length or 0, h.file_size - h.pixel_offset)
    return truncation(available, declared_bytes(h))


def read_slice_header(path: str | os.PathLike) -> SliceHeader:
    """Header-only read of one single-frame file; raises :class:`UnusableFile`."""
    return slice_header_from_dataset(read_header(path), str(path))


def read_headers(path: str | os.PathLike) -> list[Header]:
    """Headers of one file: one per frame for enhanced files, else one."""
    return _frames(read_header(path), path)


def _frames(header: Header, path: str | os.PathLike) -> list[Header]:
    """``header`` itself, or one header per frame when it is an enhanced file's."""
    if detect_flavour(header) != "enhanced":
        return [header]

    ds = header if not isinstance(header, ScannedHeader) else _open_header(path)
    try:
        frames = frame_headers(ds)
    except (*CONVERSION_ERRORS, NotImplementedError) as exc:
        field = _first_unreadable(ds) or "a functional group value"
        what = "cannot be decoded" if isinstance(exc, NotImplementedError) else "is not a number"
        report = _header_for_report(ds, str(path))  # the file's series fails, naming it
        raise UnusableFile(path, f"{field} {what} ({exc})", report) from None
    for frame in frames:  # what the file-level read left out applies to every frame
        frame.malformed = frozenset(getattr(ds, "malformed", ()))
    if not frames:
        slice_header_from_dataset(ds, str(path))  # raises, with the header when readable
        raise UnusableFile(path, "enhanced DICOM without per-frame functional groups")
    declared = _int_or_none(ds.get("NumberOfFrames") or 1)  # as the pixel reader counts
    if declared != len(frames):  # frames would be lost, or read past the pixel data
        raise UnusableFile(
            path,
            f"NumberOfFrames={ds.get('NumberOfFrames')} but PerFrameFunctionalGroupsSequence "
            f"holds {len(frames)} item(s): the frames cannot be placed",
            _header_for_report(frames[0], str(path)),
        )
    return list(frames)  # as Header (a list is invariant)


def read_slice_headers(path: str | os.PathLike) -> list[SliceHeader]:
    """One :class:`SliceHeader` per slice the file holds; raises :class:`UnusableFile`.

    A multi-frame file some of whose frames have a plane and others not is broken, not a
    non-spatial image: it fails as a series of its own when it has no other."""
    return read_file_headers(path)[0]


def read_file_headers(path: str | os.PathLike) -> tuple[list[SliceHeader], str]:
    """:func:`read_slice_headers` and the digest of the file's header bytes (see
    :func:`.scan.header_digest`), from one read."""
    header = read_header(path)
    digest = getattr(header, "header_digest", "")
    return _slice_headers(_frames(header, path), path), digest


def _slice_headers(headers: list[Header], path: str | os.PathLike) -> list[SliceHeader]:
    out: list[SliceHeader] = []
    problem: UnusableFile | None = None
    for h in headers:
        try:
            out.append(slice_header_from_dataset(h, str(path)))
        except UnusableFile as exc:
            problem = problem or exc
    if problem is None:
        return out
    if out and not problem.own_series:
        raise UnusableFile(problem.path, problem.reason, problem.header)
    raise problem
