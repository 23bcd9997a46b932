"""A seeded fuzz campaign over ``anatprep convert`` (issue 14, item 1 and its acceptance).

Mutants are made from small base series, synthetic ones (classic 3D axial and oblique with
rescale, enhanced multi-frame, ``.dcm.gz``) and, when the shared data is there, real ones
(Siemens mosaic with CSA, Siemens XA enhanced, Philips enhanced field map, Philips and GE
single-frame slices).  Each mutant is one series in its own folder with its own
SeriesInstanceUID, changed by one mutation of the kinds the adversarial campaign used:
non-finite or huge numbers in sidecar fields, deleted geometry and pixel-description fields,
all-zero orientation, zero or huge negative pixel spacing, unsupported bit depths, zero rows,
corrupt or truncated CSA headers, an invalid VR in an enhanced file, deflate syntax on plain
data, truncated files and ``.dcm.gz``, random byte flips in the header, a wrong
NumberOfFrames, text garbage in number fields, control characters in descriptions; and, drawn
twice as often, valid geometry changes (pixel spacing, slice thickness, the whole stack moved
or rotated, instance numbers swapped) that the image must follow.

All mutants of one group are converted by one in-process ``anatprep convert`` (the CLI's
``main``); then, for each mutant: the exit code is 0 or 4 (never 1), nothing prints a
traceback, every NIfTI has its JSON and every JSON its NIfTI, each written image's shape and
affine agree with an expectation computed here from the mutated files' own headers (pydicom
and numpy, nibabel's mosaic reader for mosaics; a file pydicom cannot parse is judged by its
original's headers), up to the voxel layout, and a mutant that is rejected is named with its
file or a field.  Run with ``-s`` for the tally; ``ANATPREP_FUZZ_SEED`` draws other mutants.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import nibabel as nb
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.pipelines.cli import main
from anatprep.pipelines.convert_command import output_stems
from anatprep.pipelines.exitcodes import EXIT_NO_DATA, EXIT_OK, EXIT_PARTIAL
from anatprep.pipelines.synthetic import rotation, write_enhanced, write_series

#: pydicom warns about every broken value the mutants are made of, numpy about huge ones
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:pydicom"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]

#: fixed, so every run makes the same mutants; set ANATPREP_FUZZ_SEED to explore others
SEED = int(os.environ.get("ANATPREP_FUZZ_SEED", "2026"))
#: mutants per base series (synthetic, shared)
PER_SYNTHETIC_BASE = 50
PER_SHARED_BASE = 30
#: world distance allowed between our corner voxels and the expected ones
ATOL_MM = 0.05
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


# --- base series ------------------------------------------------------------------------


@dataclass
class Base:
    name: str
    files: list[Path]
    #: kinds drawn more often for this base (those only it can exercise)
    focus: tuple[str, ...] = ()


def _synthetic_bases(root: Path) -> list[Base]:
    rng = np.random.default_rng(SEED)
    vol = rng.integers(0, 3000, size=(10, 8, 5)).astype(float)
    axial = np.diag([-1.1, -0.9, 2.0, 1.0])
    axial[:3, 3] = (40.0, 30.0, -10.0)
    oblique = np.eye(4)
    oblique[:3, :3] = rotation(0, 17.0) @ rotation(2, -8.0) @ np.diag([0.8, 1.2, 1.6])
    oblique[:3, 3] = (-20.0, 11.0, 5.0)
    bases = [
        Base("classic", write_series(vol, axial, root / "classic", study_key="fz-classic")),
        Base(
            "oblique",
            write_series(
                vol * 0.5 - 200,
                oblique,
                root / "oblique",
                rescale=(0.5, -300.0),
                study_key="fz-oblique",
                descending=True,
            ),
        ),
        Base(
            "enhanced",
            [write_enhanced(vol, root / "enhanced" / "enh.dcm")],
            focus=("invalid_vr", "frames"),
        ),
    ]
    gz = write_series(vol, axial, root / "gz", study_key="fz-gz", series_number=3)
    for path in gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        path.unlink()
    bases.append(Base("gz", [p.with_name(p.name + ".gz") for p in gz]))
    return bases


#: small real series of the shared sets: (name, set folder, files)
SHARED = [
    ("mosaic", "dcm_qa_nih/In/20180918Si/mr_0003", ["epi_pe_ap-00001.dcm"]),
    ("xa_enhanced", "dcm_qa_enh/In/Siemens/XA10", ["6_2.dcm"]),
    ("philips_enhanced", "dcm_qa_enh/In/Philips", ["IM_0027_fMAP.dcm"]),
    (
        "philips_classic",
        "dcm_qa_philips/In/Magdeburg_2014/fmri",
        [f"201_EPI_asc_CLEAR_0001_{k:02d}.dcm" for k in (1, 4, 7)],
    ),
    ("ge_classic", "dcm_qa_stc/In/GE/RTIAold/15_Zugfahrt", ["0001.dcm", "0002.dcm", "0003.dcm"]),
]


FOCUS = {
    "mosaic": ("csa", "csa", "csa", "csa"),
    "xa_enhanced": ("invalid_vr", "frames"),
    "philips_enhanced": ("invalid_vr", "frames"),
}


def _shared_bases(data_dir: Path, root: Path) -> list[Base]:
    bases = []
    for name, folder, names in SHARED:
        files = []
        for fname in names:
            files.append(root / name / fname)
            files[-1].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_dir / "dicom" / folder / fname, files[-1])
        bases.append(Base(name, files, focus=FOCUS.get(name, ())))
    gz = root / "ge_gz" / "0001.dcm.gz"  # a real file as .dcm.gz
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress((root / "ge_classic" / "0001.dcm").read_bytes(), mtime=0))
    bases.append(Base("ge_gz", [gz]))
    return bases


# --- reading and writing a (possibly gzipped) file ---------------------------------------


def _load_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _store_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def _read(path: Path, stop_before_pixels: bool = False) -> Dataset:
    return pydicom.dcmread(io.BytesIO(_load_bytes(path)), stop_before_pixels=stop_before_pixels)


def _edit(path: Path, change: Callable[[Dataset], None]) -> None:
    ds = _read(path)
    change(ds)
    out = io.BytesIO()
    ds.save_as(out)
    _store_bytes(path, out.getvalue())


def _holders(ds: Dataset, keyword: str) -> list[Dataset]:
    """Every data set (the file's and its sequence items) holding ``keyword``."""
    found = [ds] if keyword in ds else []
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                found += _holders(item, keyword)
    return found


#: binary VRs: a number is stored in its binary form, anything else as its bytes
_BINARY = {"US": "<H", "SS": "<h", "UL": "<I", "SL": "<i", "FL": "<f", "FD": "<d"}


def _set_raw(ds: Dataset, keyword: str, text: str) -> None:
    """Store ``text`` as ``keyword``'s value byte for byte (pydicom would refuse some)."""
    tag = pydicom.tag.Tag(pydicom.datadict.tag_for_keyword(keyword))
    vr = pydicom.datadict.dictionary_VR(tag)
    raw = text.encode("latin-1")
    if vr in _BINARY:
        try:
            number = float(text)
            raw = struct.pack(_BINARY[vr], number if vr[0] == "F" else int(number))
        except (ValueError, OverflowError, struct.error):
            pass  # e.g. 'abc' in Rows: three bytes where two belong
    raw += b" " * (len(raw) % 2)
    ds[tag] = pydicom.dataelem.RawDataElement(tag, vr, len(raw), raw, 0, False, True)


# --- mutations ----------------------------------------------------------------------------
# each takes (rng, the mutant's files) and returns what it did (a note naming the field),
# or None when it does not apply to these files


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _targets(rng, files: list[Path]) -> list[Path]:
    """One file (an edge or a middle one) or all of them."""
    return list(files) if rng.random() < 0.3 else [_pick(rng, files)]


def _raw_value(rng, files, keywords, values, everywhere: bool = False) -> str:
    key, text = _pick(rng, keywords), _pick(rng, values)

    def change(ds):
        holders = _holders(ds, key)
        if not holders or (not everywhere and rng.random() < 0.5):
            holders = [ds]
        for h in holders:
            _set_raw(h, key, text)

    for path in _targets(rng, files):
        _edit(path, change)
    return f"{key}={text!r}"


NON_FINITE = ["NaN", "nan", "inf", "-inf", "Infinity", "1e309", "-1e308", "1e308", "-0"]


def m_sidecar_number(rng, files):
    keys = [
        "RepetitionTime",
        "EchoTime",
        "FlipAngle",
        "RescaleSlope",
        "RescaleIntercept",
        "InversionTime",
        "MagneticFieldStrength",
        "ImagingFrequency",
        "PixelBandwidth",
        "SpacingBetweenSlices",
        "SliceThickness",
        "EchoTrainLength",
    ]
    return _raw_value(rng, files, keys, NON_FINITE)


def m_delete(rng, files):
    key = _pick(
        rng,
        [
            "Rows",
            "Columns",
            "BitsAllocated",
            "PixelSpacing",
            "ImageOrientationPatient",
            "ImagePositionPatient",
        ],
    )

    def change(ds):
        holders = _holders(ds, key)
        for h in holders if rng.random() < 0.5 else holders[:1]:
            del h[key]

    for path in _targets(rng, files):
        _edit(path, change)
    return f"{key} deleted"


def m_orientation_zero(rng, files):
    return _raw_value(
        rng,
        files,
        ["ImageOrientationPatient"],
        ["0\\0\\0\\0\\0\\0", "0\\0\\0\\0\\0\\1", "1\\0\\0\\1\\0\\0"],
        True,
    )


def m_spacing(rng, files):
    return _raw_value(
        rng,
        files,
        ["PixelSpacing"],
        ["0\\0", "-1e308\\1", "0\\1", "1e308\\1e308", "-1\\-1", "1"],
        True,
    )


def m_bits(rng, files):
    return _raw_value(rng, files, ["BitsAllocated"], ["1", "12", "0", "64", "7"])


def m_rows_zero(rng, files):
    return _raw_value(rng, files, ["Rows", "Columns"], ["0", "65535", "1"])


def _element_span(data: bytes, tag: tuple[int, int]) -> tuple[int, int] | None:
    """(value start, value length) of an explicit-VR OB/UN element, else None."""
    key = tag[0].to_bytes(2, "little") + tag[1].to_bytes(2, "little")
    at = data.find(key)
    if at < 0:
        return None
    if data[at + 4 : at + 6] in (b"OB", b"UN"):
        return at + 12, int.from_bytes(data[at + 8 : at + 12], "little")
    return at + 8, int.from_bytes(data[at + 4 : at + 8], "little")  # implicit VR


def m_csa(rng, files):
    """Corrupt the Siemens CSA image header (0029,1010) in place (same length)."""
    done = []
    for path in _targets(rng, files):
        data = bytearray(_load_bytes(path))
        span = _element_span(bytes(data), (0x0029, 0x1010))
        if span is None:
            continue
        start, length = span
        how = _pick(rng, ["zeros", "flip", "count", "cut"])
        if how == "zeros":
            cut = int(rng.integers(0, length))
            data[start + cut : start + length] = bytes(length - cut)
        elif how == "flip":
            for _ in range(int(rng.integers(1, 20))):
                data[start + int(rng.integers(length))] = int(rng.integers(256))
        elif how == "count":  # the number of tags, or of a tag's items
            at = start + (8 if data[start : start + 4] == b"SV10" else 0)
            data[at : at + 4] = int(rng.integers(0, 2**32)).to_bytes(4, "little")
        else:  # a truncated CSA: its declared length kept, its tail garbage
            cut = int(rng.integers(16, max(17, length)))
            data[start + cut : start + length] = bytes(
                rng.integers(0, 256, length - cut, dtype=np.uint8)
            )
        _store_bytes(path, bytes(data))
        done.append(how)
    return f"CSA {'/'.join(done)}" if done else None


def m_invalid_vr(rng, files):
    """An unknown VR on an element inside the functional groups of an enhanced file."""
    done = False
    for path in files:
        data = bytearray(_load_bytes(path))
        starts = [
            m.start()
            for m in re.finditer(
                rb"\x28\x00\x30\x00DS|\x20\x00\x32\x00DS|"
                rb"\x20\x00\x37\x00DS|\x18\x00\x50\x00DS",
                bytes(data),
            )
        ]
        per_frame = bytes(data).find(b"\x00\x52\x30\x92")  # (5200,9230)
        starts = [s for s in starts if 0 <= per_frame < s]
        if not starts:
            continue
        at = _pick(rng, starts)
        data[at + 4 : at + 6] = _pick(rng, [b"ZZ", b"\x00\x00", b"ds", b"SQ"])
        _store_bytes(path, bytes(data))
        done = True
    return "invalid VR in a functional group" if done else None


def m_deflate(rng, files):
    """Declare the deflated transfer syntax on data stored plain."""
    for path in _targets(rng, files):
        data = _load_bytes(path)
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        body = data[132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength) :]
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        meta = DicomBytesIO()
        meta.is_little_endian, meta.is_implicit_VR = True, False
        write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
        _store_bytes(path, b"\0" * 128 + b"DICM" + meta.getvalue() + body)
    return "TransferSyntaxUID deflated on plain data"


def m_truncate(rng, files):
    path = _pick(rng, files)
    data = path.read_bytes()
    cut = int(rng.integers(0, len(data)))
    path.write_bytes(data[:cut])
    return f"{path.name} truncated at {cut} of {len(data)} bytes"


def m_truncate_gz(rng, files):
    path = _pick(rng, files)
    gz = path if path.name.endswith(".gz") else path.with_name(path.name + ".gz")
    data = gzip.compress(_load_bytes(path), mtime=0)
    if gz != path:
        path.unlink()
    gz.write_bytes(data[: int(rng.integers(10, len(data) - 1))])
    return f"{gz.name} truncated"


def m_byte_flips(rng, files):
    notes = []
    for path in _targets(rng, files):
        data = bytearray(_load_bytes(path))
        end = bytes(data).rfind(PIXEL_DATA_TAG)
        end = end if end > 132 else len(data)
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(132, end))
            data[at] = int(rng.integers(256))
            notes.append(str(at))
        _store_bytes(path, bytes(data))
    return "bytes flipped at " + ",".join(notes)


def m_frames(rng, files):
    return _raw_value(
        rng, files, ["NumberOfFrames"], ["0", "-1", "2", "7", "65", "2147483648", "3.5", "1e9"]
    )


GARBAGE = ["abc", "1.2.3", "--1", "1e", "\\", "0x10", " ", "1\\2\\3\\4", "\x01\x02", "NaNa"]


def m_garbage(rng, files):
    keys = [
        "SliceThickness",
        "SpacingBetweenSlices",
        "InstanceNumber",
        "EchoNumbers",
        "SeriesNumber",
        "RepetitionTime",
        "EchoTime",
        "PixelSpacing",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "RescaleSlope",
        "RescaleIntercept",
        "AcquisitionNumber",
        "TemporalPositionIdentifier",
        "FlipAngle",
        "SliceLocation",
        "Rows",
        "NumberOfFrames",
    ]
    return _raw_value(rng, files, keys, GARBAGE)


def m_control_chars(rng, files):
    text = _pick(
        rng,
        [
            "a\x1b[2Jb",
            "x\r\nanatprep: 2 of 2 subject(s) complete",
            "n\x00ul",
            "\x07\x08\x7f",
            "t\tab",
        ],
    )
    key = _pick(rng, ["SeriesDescription", "ProtocolName", "ImageComments", "SequenceName"])

    def change(ds):
        setattr(ds, key, text)

    for path in files:
        _edit(path, change)
    return f"{key}={text!r}"


def _ds_numbers(values: list[float]) -> list[str]:
    return [f"{v:.8g}" for v in values]


def m_geometry(rng, files):
    """A valid change of the geometry, the same in every file: the image must follow it
    (pixel spacing, slice thickness, the whole stack rotated or moved, instance numbers
    swapped)."""
    has_csa = any((0x0029, 0x1010) in _read(p, stop_before_pixels=True) for p in files)
    ways = ["spacing", "thickness", "shift"] + ([] if has_csa else ["rotate"])
    how = _pick(rng, ways + (["swap"] if len(files) > 1 else []))
    angles = rng.uniform(-40.0, 40.0, 3)
    turn = rotation(0, angles[0]) @ rotation(1, angles[1]) @ rotation(2, angles[2])
    move = rng.uniform(-60.0, 60.0, 3)
    scale = rng.uniform(0.4, 2.5, 2)

    def change(ds):
        if how == "spacing":
            for h in _holders(ds, "PixelSpacing"):
                spacing = [float(v) for v in h.PixelSpacing]
                h.PixelSpacing = _ds_numbers(list(np.multiply(spacing[:2], scale)))
        elif how == "thickness":
            for key in ("SliceThickness", "SpacingBetweenSlices"):
                for h in _holders(ds, key):
                    setattr(h, key, f"{scale[0] * 3:.6g}")
        else:
            for h in _holders(ds, "ImagePositionPatient"):
                pos = np.asarray([float(v) for v in h.ImagePositionPatient])
                pos = (turn @ pos if how == "rotate" else pos) + move
                h.ImagePositionPatient = _ds_numbers(list(pos))
            if how == "rotate":
                for h in _holders(ds, "ImageOrientationPatient"):
                    iop = np.asarray([float(v) for v in h.ImageOrientationPatient])
                    iop = np.concatenate([turn @ iop[:3], turn @ iop[3:]])
                    h.ImageOrientationPatient = _ds_numbers(list(iop))

    if how == "swap":
        a, b = (files[int(i)] for i in rng.choice(len(files), 2, replace=False))
        numbers = [_read(p, stop_before_pixels=True).InstanceNumber for p in (a, b)]
        _edit(a, lambda ds: setattr(ds, "InstanceNumber", numbers[1]))
        _edit(b, lambda ds: setattr(ds, "InstanceNumber", numbers[0]))
        return f"InstanceNumber of {a.name} and {b.name} swapped"
    for path in files:
        _edit(path, change)
    return f"geometry {how}"


MUTATIONS: dict[str, Callable] = {
    "geometry": m_geometry,
    "sidecar_number": m_sidecar_number,
    "delete": m_delete,
    "orientation_zero": m_orientation_zero,
    "spacing": m_spacing,
    "bits": m_bits,
    "rows": m_rows_zero,
    "csa": m_csa,
    "invalid_vr": m_invalid_vr,
    "deflate": m_deflate,
    "truncate": m_truncate,
    "truncate_gz": m_truncate_gz,
    "byte_flips": m_byte_flips,
    "frames": m_frames,
    "garbage": m_garbage,
    "control_chars": m_control_chars,
}


#: kinds drawn twice as often for every base: valid geometry changes test the affine most
EXTRA = ("geometry",)


# --- mutants ------------------------------------------------------------------------------


@dataclass
class Mutant:
    folder: Path
    base: str
    kind: str
    note: str
    files: list[Path] = field(default_factory=list)
    #: each file's original (the base's file it was made from)
    originals: dict[str, Path] = field(default_factory=dict)


def _fresh_uid(uid: bytes, k: int) -> bytes:
    """A UID of the same length with its last six digits replaced by ``k``'s (the file
    layout stays as it was)."""
    out, digits = bytearray(uid), f"{k:06d}".encode()
    at = len(out)
    for digit in reversed(digits):
        at -= 1
        while out[at : at + 1] == b".":
            at -= 1
        out[at] = digit
    return bytes(out)


def _copy_with_uid(base: Base, dest: Path, k: int) -> list[Path]:
    uid = str(_read(base.files[0], stop_before_pixels=True).SeriesInstanceUID).encode()
    new = _fresh_uid(uid, k)
    dest.mkdir(parents=True)
    out = []
    for src in base.files:
        out.append(dest / src.name)
        _store_bytes(out[-1], _load_bytes(src).replace(uid, new))
    return out


def make_mutants(bases: list[Base], root: Path, per_base: int, rng, start: int) -> list[Mutant]:
    mutants: list[Mutant] = []
    k = start
    for base in bases:
        made, todo = 0, []
        while made < per_base:
            if not todo:  # every kind in turn, in a random order
                todo = [str(kind) for kind in rng.permutation([*MUTATIONS, *EXTRA, *base.focus])]
            kind = todo.pop()
            k += 1
            folder = root / f"m{k:04d}_{base.name}_{kind}"
            files = _copy_with_uid(base, folder, k)
            note = MUTATIONS[kind](rng, files)
            if note is None:  # not applicable to this base (no CSA, not enhanced)
                shutil.rmtree(folder)
                continue
            files = sorted(p for p in folder.iterdir())
            by_name = {p.name: p for p in base.files}
            originals = {str(f): by_name.get(f.name) or by_name[f.name[:-3]] for f in files}
            mutants.append(Mutant(folder, base.name, kind, note, files, originals))
            made += 1
    return mutants


# --- the expectation, from the mutated files' own headers --------------------------------


def _numbers(value, n: int) -> np.ndarray:
    out = np.asarray(
        [
            float(v)
            for v in (
                value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
            )
        ]
    )
    assert out.shape == (n,) and np.all(np.isfinite(out)), value
    return out


def _group_value(ds: Dataset, frame: int | None, sequence: str, keyword: str):
    """``keyword`` of a frame: from its per-frame group, else the shared group (in
    ``sequence``, else in any standard sequence of the group, as dcm2niix finds values by
    tag), else the file's own."""
    if frame is not None:
        for groups, index in (
            ("PerFrameFunctionalGroupsSequence", frame),
            ("SharedFunctionalGroupsSequence", 0),
        ):
            items = ds.get(groups)
            if items is None or len(items) <= index:
                continue
            item = items[index]
            if sequence in item and len(item[sequence].value) and keyword in item[sequence][0]:
                return item[sequence][0][keyword].value
            found = _nested(item, keyword)
            if found is not None:
                return found
    return ds[keyword].value


def _nested(item: Dataset, keyword: str):
    if keyword in item:
        return item[keyword].value
    for elem in item:
        if elem.VR == "SQ" and not elem.tag.is_private and len(elem.value):
            found = _nested(elem.value[0], keyword)
            if found is not None:
                return found
    return None


def _plane(ds: Dataset, frame: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iop = _numbers(
        _group_value(ds, frame, "PlaneOrientationSequence", "ImageOrientationPatient"), 6
    )
    ipp = _numbers(_group_value(ds, frame, "PlanePositionSequence", "ImagePositionPatient"), 3)
    spacing = _numbers(_group_value(ds, frame, "PixelMeasuresSequence", "PixelSpacing"), 2)
    return iop, ipp, spacing


T = TypeVar("T")

#: what pydicom raises on a value or structure it cannot decode (after an unknown VR it
#: may lose its way and miss the elements that follow: KeyError)
_UNDECODABLE = (
    NotImplementedError,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    OverflowError,
    KeyError,
    AttributeError,
)


def expected_geometry(
    entry, cache: dict, originals: dict[str, Path]
) -> tuple[tuple[int, ...], np.ndarray, bool]:
    """(spatial shape, LPS affine, single slice) of ``entry`` from its files' headers, in
    nibabel's voxel order (row index, column index, slice).

    A file whose geometry pydicom cannot decode (a flipped byte broke a VR or a length that
    our scanner reads past) is judged by its original's headers: what it said before.
    """

    def header(path: str, original: bool = False) -> Dataset:
        key = (path, original)
        if key not in cache:
            cache[key] = _read(originals[path] if original else Path(path), True)
        return cache[key]

    def decoded(read: Callable[[Dataset], T], path: str) -> T:
        try:
            return read(header(path))
        except _UNDECODABLE:
            return read(header(path, original=True))

    if entry.flavour == "mosaic":
        from nibabel.nicom.dicomwrappers import wrapper_from_data

        def mosaic(ds: Dataset) -> tuple[tuple[int, ...], np.ndarray]:
            wrapper = wrapper_from_data(ds)
            shape = (*wrapper.image_shape[:2], int(wrapper.n_mosaic))
            return shape, np.asarray(wrapper.affine, dtype=float)

        shape, affine = decoded(mosaic, entry.files[0])
        return shape, affine, shape[2] == 1
    frames = entry.frames or [None] * len(entry.files)
    planes = [
        decoded(lambda ds, f=f: _plane(ds, f), p) for p, f in zip(entry.files, frames, strict=True)
    ]
    iop, _, spacing = planes[0]
    for other_iop, _, other_spacing in planes:
        np.testing.assert_allclose(other_iop, iop, atol=1e-4)
        np.testing.assert_allclose(other_spacing, spacing, atol=1e-4)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    positions = np.array([ipp for _, ipp, _ in planes])
    unique = sorted({round(float(np.dot(p, normal)), 3): tuple(p) for p in positions}.items())
    n = len(unique)
    assert len(positions) % n == 0, f"{len(positions)} slices at {n} positions"
    first, last = np.array(unique[0][1]), np.array(unique[-1][1])
    step = (last - first) / (n - 1) if n > 1 else normal
    rows, cols = decoded(lambda ds: (int(ds.Rows), int(ds.Columns)), entry.files[0])
    affine = np.eye(4)
    affine[:3, 0] = col * spacing[0]
    affine[:3, 1] = row * spacing[1]
    affine[:3, 2] = step
    affine[:3, 3] = first
    return (rows, cols, n), affine, n == 1


def assert_geometry(
    img: nb.Nifti1Image, shape: tuple[int, ...], lps: np.ndarray, single: bool
) -> None:
    """Same voxel grid in the world, up to a permutation and flips of the voxel axes."""
    ours = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine  # RAS -> LPS
    if single:  # one slice: its thickness is a header choice; keep the direction only
        for aff in (ours, lps):
            aff[:3, 2] = np.cross(lps[:3, 0], lps[:3, 1])
            aff[:3, 2] /= np.linalg.norm(aff[:3, 2])
    mapping = np.linalg.solve(lps, ours)
    perm = np.rint(mapping[:3, :3])
    assert np.allclose(mapping[:3, :3], perm, atol=1e-3), f"not a voxel permutation:\n{mapping}"
    assert sorted(np.abs(perm).sum(axis=0)) == [1, 1, 1], perm
    ours_shape = img.shape[:3]
    for a in range(3):  # our axis a runs along expected axis b
        b = int(np.argmax(np.abs(perm[:, a])))
        assert ours_shape[a] == shape[b], f"shape {img.shape} vs expected {shape}"

    def corners(aff, dims):
        idx = np.array(np.meshgrid(*[[0, d - 1] for d in dims], indexing="ij")).reshape(3, -1)
        return (aff[:3, :3] @ idx + aff[:3, 3:4]).T

    for point in corners(ours, ours_shape):
        gap = np.min(np.linalg.norm(corners(lps, shape) - point, axis=1))
        assert gap < ATOL_MM, f"corner {point} is {gap:.3f} mm from the expected grid"


# --- the campaign -------------------------------------------------------------------------


FILE_NAME = re.compile(r"[\w.-]+\.(dcm|img|gz)\b")


def _named(line: str) -> bool:
    """A failure line naming a file or a DICOM field."""
    if FILE_NAME.search(line) or re.search(r"\([0-9A-F]{4},[0-9A-F]{4}\)", line):
        return True
    words = re.findall(r"[A-Z][A-Za-z]+", line)
    return any(pydicom.datadict.tag_for_keyword(w) is not None for w in words)


def run_campaign(mutants: list[Mutant], root: Path, out: Path, capsys, caplog) -> Counter:
    """Convert ``root`` in one in-process ``anatprep convert``; check every mutant."""
    table = index_tree(root)
    stems = output_stems(table.series)
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        code = main(["convert", str(root), str(out), "--compression", "1"])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    # no usable DICOM at all (exit 3) is possible only when every file is a mutant's (one
    # mutant alone, as in the sample), and then each file must be named with its reason
    alone = {str(path) for m in mutants for path in m.files}
    assert code in (EXIT_OK, EXIT_PARTIAL) or (code == EXIT_NO_DATA and all(
        f"{path}:" in text for path in alone
    )), f"exit {code}\n{text[-3000:]}"
    assert "Traceback" not in text
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "Traceback" not in record.getMessage()
    tally: Counter = Counter()
    if code == EXIT_NO_DATA:
        tally["failed, named"] = len(mutants)
        return tally
    names = {p.name for p in out.iterdir()}
    assert not [n for n in names if n.startswith(".") or n.endswith(".part")], names
    for name in names:
        if name.endswith(".nii.gz"):
            assert name[: -len(".nii.gz")] + ".json" in names, f"{name} without its JSON"
        elif name.endswith(".json"):
            assert name[: -len(".json")] + ".nii.gz" in names, f"{name} without its image"

    problems: list[str] = []
    lines = text.splitlines()
    cache: dict = {}
    originals = {path: orig for m in mutants for path, orig in m.originals.items()}
    for mutant in mutants:
        tally[f"kind {mutant.kind}"] += 1
        mine = [e for e in table.series if mutant.folder.name in e.folders]
        converted = 0
        for entry in mine:
            nii = out / f"{stems[entry.id]}.nii.gz"
            if not nii.exists():
                continue
            converted += 1
            where = f"{mutant.folder.name} ({mutant.note}): {nii.name}"
            try:
                shape, lps, single = expected_geometry(entry, cache, originals)
            except Exception as exc:
                problems.append(f"{where} was converted, but its headers give no geometry: {exc!r}")
                continue
            try:
                assert_geometry(nb.load(nii), shape, lps, single)
            except (AssertionError, np.linalg.LinAlgError) as exc:
                problems.append(f"{where}: {exc!r}\nexpected {shape}\n{lps}")
        about = [ln for ln in lines if mutant.folder.name in ln]
        failures = [ln for ln in about if "FAILED" in ln or ln.startswith("skipped ")]
        if converted and not failures:
            tally["converted"] += 1
            continue
        if not (failures or converted):
            problems.append(f"{mutant.folder.name} ({mutant.note}) vanished: {about}")
        elif not any(map(_named, failures)):
            problems.append(
                f"{mutant.folder.name} ({mutant.note}) failed naming no file or "
                f"field: {failures[-1]}"
            )
        tally["converted in part" if converted else "failed, named"] += 1
    assert not problems, "\n".join(problems)
    return tally


def _report(title: str, mutants: list[Mutant], tally: Counter, seconds: float) -> None:
    print(f"\n{title}: {len(mutants)} mutants in {seconds:.1f} s")
    for key in sorted(tally):
        print(f"  {key:28} {tally[key]}")


def _campaign(request, tmp_path, make_bases, per_base, start, title) -> tuple[int, float]:
    """Make the bases and their mutants, convert, check; (mutants, seconds in all)."""
    capsys, caplog = request.getfixturevalue("capsys"), request.getfixturevalue("caplog")
    t0 = time.perf_counter()
    bases = make_bases(tmp_path / "bases")
    rng = np.random.default_rng(SEED + start)
    mutants = make_mutants(bases, tmp_path / "in", per_base, rng, start)
    tally = run_campaign(mutants, tmp_path / "in", tmp_path / "out", capsys, caplog)
    seconds = time.perf_counter() - t0
    if request.config.getoption("capture") == "no":  # the tally, with -s
        with capsys.disabled():
            _report(title, mutants, tally, seconds)
    return len(mutants), seconds


#: the fast tier's sample: 30 mutants drawn round-robin over the bases, apart from the two
#: campaigns below (other starts), one test per mutant; the Philips enhanced base's mutants
#: take over a second each (a large multi-frame header read and written whole), so its three
#: are in the slow tier
SAMPLE_BASES = ["classic", "oblique", "enhanced", "gz", *(n for n, _, _ in SHARED), "ge_gz"]
HEAVY_BASES = ("philips_enhanced",)
_LIGHT = [name for name in SAMPLE_BASES if name not in HEAVY_BASES]
SAMPLE = [(_LIGHT[k % len(_LIGHT)], k // len(_LIGHT)) for k in range(30)]
SAMPLE += [(name, k) for name in HEAVY_BASES for k in range(3)]


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(k, marks=[pytest.mark.slow] if name in HEAVY_BASES else [])
        for k, (name, _) in enumerate(SAMPLE)
    ],
    ids=[f"{n}-{k}" for n, k in SAMPLE],
)
def test_fuzzed_sample(request, tmp_path, data_dir, index):
    name = SAMPLE[index][0]

    def bases(root: Path) -> list[Base]:
        made = _synthetic_bases(root / "synthetic") + _shared_bases(data_dir, root / "shared")
        return [b for b in made if b.name == name]

    n, _seconds = _campaign(request, tmp_path, bases, 1, 20000 + index, f"sample {index}")
    assert n == 1


@pytest.mark.slow
def test_fuzzed_synthetic_series(request, tmp_path):
    n, _seconds = _campaign(request, tmp_path, _synthetic_bases, PER_SYNTHETIC_BASE, 0, "synthetic")
    assert n >= 200  # its time is printed (-s), not asserted: timings are benchmarks' job


@pytest.mark.slow
def test_fuzzed_shared_series(request, tmp_path, data_dir):
    def bases(root: Path) -> list[Base]:
        return _shared_bases(data_dir, root)

    n, _seconds = _campaign(request, tmp_path, bases, PER_SHARED_BASE, 10000, "shared")
    assert n >= 180  # with the synthetic campaign: >= 380 mutants (time printed with -s)


def test_the_geometry_check_sees_a_wrong_affine_or_shape():
    """The check is up to voxel layout only: a flipped or permuted axis is the same grid;
    a shift, a wrong zoom, axes permuted without their sizes or a wrong slice count are
    not."""
    lps = np.diag([0.9, 1.1, 2.0, 1.0])
    lps[:3, 3] = (10.0, -5.0, 3.0)
    shape = (8, 6, 4)
    flipped = lps @ np.array([[-1, 0, 0, 7], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    assert_geometry(nb.Nifti1Image(np.zeros(shape), ras @ flipped), shape, lps, False)
    shifted = flipped.copy()
    shifted[2, 3] += 0.1
    zoomed = flipped @ np.diag([1.05, 1.0, 1.0, 1.0])
    swapped = flipped @ np.diag([1.0, 1.0, 1.0, 1.0])[[1, 0, 2, 3]]  # the same grid...
    assert_geometry(nb.Nifti1Image(np.zeros((6, 8, 4)), ras @ swapped), shape, lps, False)
    for aff, dims in ((shifted, shape), (zoomed, shape), (swapped, shape), (flipped, (8, 6, 5))):
        with pytest.raises(AssertionError):
            assert_geometry(nb.Nifti1Image(np.zeros(dims), ras @ aff), shape, lps, False)


# --- what the campaign found (each failed before its fix) ---------------------------------


def _convert_one(src: Path, out: Path, capsys) -> tuple[int, str, list[str]]:
    code = main(["convert", str(src), str(out), "--compression", "1"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, sorted(p.name for p in out.iterdir())


def _mosaic_copy(data_dir: Path, dest: Path, old: bytes, new: bytes) -> Path:
    """The shared mosaic with one CSA byte string replaced (same length)."""
    src = data_dir / "dicom" / SHARED[0][1] / SHARED[0][2][0]
    data = src.read_bytes()
    assert len(old) == len(new) and (old == b"" or data.count(old) == 1)
    dest.mkdir(parents=True)
    (dest / src.name).write_bytes(data.replace(old, new))
    return dest / src.name


def test_csa_value_that_is_no_number_fails_naming_file_and_tag(tmp_path, data_dir, capsys):
    """nicom reads CSA values by their type: a byte flip in one gave a bare ValueError."""
    at = b"M\x00\x00\x00\t\x00\x00\x005       "  # NumberOfImagesInMosaic's item
    path = _mosaic_copy(data_dir, tmp_path / "in" / "m", at, at[:-7] + b"x" + at[-6:])
    code, text, written = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 4 and written == []
    assert f"{path}: Siemens CSA image header (0029,1010) cannot be read (invalid literal" in text


def test_csa_item_beyond_its_multiplicity_fails_naming_file_and_tag(tmp_path, data_dir, capsys):
    """nicom asserts that items past a tag's value multiplicity are empty: a bare
    AssertionError before."""
    head = b"SliceNormalVector\0"
    src = data_dir / "dicom" / SHARED[0][1] / SHARED[0][2][0]
    data = src.read_bytes()
    at = data.index(head) + 64  # the tag's VM: 3 -> 1, its second item is not empty
    assert data[at : at + 4] == b"\x03\0\0\0"
    old, new = data[at - 64 : at + 8], data[at - 64 : at] + b"\x01\0\0\0" + data[at + 4 : at + 8]
    path = _mosaic_copy(data_dir, tmp_path / "in" / "m", old, new)
    code, text, written = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 4 and written == []
    assert f"{path}: Siemens CSA image header (0029,1010) cannot be read (an item is " in text


def test_mosaic_without_slice_normal_fails_instead_of_guessing_the_slice_order(
    tmp_path, data_dir, capsys
):
    """Without SliceNormalVector the tiles' order along the normal is unknown: the mosaic
    was written ascending, a guess nibabel makes the other way."""
    path = _mosaic_copy(
        data_dir, tmp_path / "in" / "m", b"SliceNormalVector\0", b"SliceNormalVectoX\0"
    )
    code, text, written = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 4 and written == []
    assert f"{path}: mosaic CSA header (0029,1010) SliceNormalVector missing" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [("--1", "SpacingBetweenSlices is not a number"), ("-0", "SpacingBetweenSlices=-0")],
)
def test_mosaic_slice_step_that_is_no_positive_number_fails_by_name(
    tmp_path, data_dir, capsys, text, message
):
    """The mosaic's slice step fell back to SliceThickness when SpacingBetweenSlices was
    text or zero: a guess (nibabel fails on the one and writes a flat volume for the other)."""
    path = _mosaic_copy(data_dir, tmp_path / "in" / "m", b"", b"")
    _edit(path, lambda ds: _set_raw(ds, "SpacingBetweenSlices", text))
    code, out, written = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 4 and written == []
    assert f"{path}: {message}" in out and "slice step must be a positive number" in out


@pytest.mark.parametrize("columns", ["6", "3"])
def test_negative_number_of_frames_reads_one_frame(tmp_path, capsys, columns):
    """NumberOfFrames <= 1 is one frame for the index; the pixel reader took -1 as 'all the
    data' and failed with a bare ValueError when there was more than one frame's worth.
    With half the columns the file holds twice the pixel data its header says: another
    layout than declared, which fails the file by name (it was read as if it were right)."""
    paths = write_series(np.full((6, 4, 3), 100.0), np.eye(4), tmp_path / "in" / "t1")
    for path in paths:
        _edit(
            path,
            lambda ds: (_set_raw(ds, "Columns", columns), _set_raw(ds, "NumberOfFrames", "-1")),
        )
    code, text, written = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    if columns == "6":
        assert code == 0, text
        assert nb.load(tmp_path / "out" / written[1]).shape == (6, 4, 3)
        return
    assert code == 4 and written == [], text
    assert f"{paths[0]}: pixel data longer than" in text and "ValueError" not in text


def test_bits_allocated_8_over_2_bytes_per_pixel_fails_the_file(tmp_path, capsys):
    """Issue 22 item 7: BitsAllocated 8 on pixel data holding 2 bytes per pixel gave byte
    garbage (dcm2niix does the same); the data length says it is not the declared layout."""
    paths = write_series(np.full((6, 4, 3), 300.0), np.eye(4), tmp_path / "in" / "t1")
    eight = {"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}
    for path in paths:
        _edit(path, lambda ds: [setattr(ds, k, v) for k, v in eight.items()])
    code, text, written = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 4 and written == [], text
    assert (
        f"{paths[0]}: pixel data longer than Rows x Columns x NumberOfFrames x SamplesPerPixel "
        "x BitsAllocated says (48, not 24 bytes; they hold 2 bytes per pixel, BitsAllocated 8)"
    ) in text


def test_a_gap_names_the_files_around_it(tmp_path, capsys):
    """A blank EchoTime in one file splits it off its series (another echo); the gap it
    leaves was reported without a file name to look at."""
    paths = write_series(
        np.full((6, 6, 5), 100.0), np.diag([1.0, 1.0, 2.0, 1.0]), tmp_path / "in" / "t1"
    )
    _edit(paths[2], lambda ds: _set_raw(ds, "EchoTime", " "))
    code, text, _ = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 4
    assert f"between slices 1 and 2 ({paths[1]} and {paths[3]})" in text


# --- the corrupted-member family: one file of a series cannot give its pixels ------------


def _cut_at(path: Path, where: str) -> None:
    """Cut ``path`` (a copy) where its pixels get lost: in its header after the element
    ``where`` names (its value half there, or its successor's header half there), or drop
    the pixel data element."""
    data = path.read_bytes()
    ds = pydicom.dcmread(path)
    if where == "pixel data dropped":
        del ds.PixelData
        ds.save_as(path)
        return
    tag = {"in a value": (0x0029, 0x1010), "in an element header": (0x0020, 0x0037)}[where]
    if tag not in ds:
        tag = (0x0020, 0x0037)
    key = tag[0].to_bytes(2, "little") + tag[1].to_bytes(2, "little")
    at = data.index(key, 132)
    length = len(ds[tag].value) + (12 if data[at + 4 : at + 6] in (b"OB", b"UN") else 8)
    path.write_bytes(data[: at + length // 2 if where == "in a value" else at + length + 3])


@pytest.mark.parametrize("where", ["pixel data dropped", "in a value", "in an element header"])
@pytest.mark.parametrize("base", ["classic", "mosaic"])
def test_a_member_that_lost_its_pixels_fails_its_series(tmp_path, data_dir, capsys, base, where):
    """A file of a series (by its UIDs) cut short in its header was listed as 'DICOM without
    an image' and the series converted from the others (8 slices -> 7, a mosaic's 2 volumes
    -> 1), exit 0.  The series is not the one the scanner wrote: it fails, naming the file."""
    src = tmp_path / "in" / "s"
    if base == "classic":
        files = write_series(np.full((6, 5, 8), 100.0), np.eye(4), src)
    else:
        src.mkdir(parents=True)
        folder = data_dir / "dicom" / SHARED[0][1]
        files = [src / p.name for p in sorted(folder.glob("*.dcm"))]
        for path in files:
            shutil.copyfile(folder / path.name, path)
    _cut_at(files[-1], where)
    code, text, written = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 4, text
    assert written == [], text
    assert "FAILED series" in text and str(files[-1]) in text, text


# --- the bomb family: a file that claims more memory than it holds ------------------------
# each is built from a small valid synthetic file by editing its header, streaming where it
# inflates large, so nothing big is ever on disk; `anatprep convert` runs in a child of a
# fresh Python that reads its peak RSS (RUSAGE_CHILDREN) when it ends


def _gzip_with_zeros(head: bytes, zeros: int, path: Path) -> None:
    """``head`` and then ``zeros`` zero bytes as one gzip member, written streaming: after a
    full flush, deflating 1 MiB of zeros gives the same bytes every time."""
    chunk = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc = zlib.crc32(head)
    with open(path, "wb") as fh:
        fh.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # gzip header, no name
        fh.write(comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH))
        block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
        whole, rest = divmod(zeros, len(chunk))
        for _ in range(whole):
            fh.write(block)
            crc = zlib.crc32(chunk, crc)
        fh.write(comp.compress(chunk[:rest]) + comp.flush())
        crc = zlib.crc32(chunk[:rest], crc)
        fh.write(struct.pack("<II", crc, (len(head) + zeros) & 0xFFFFFFFF))


def _head_with_pixels(src: Path, rows: int, cols: int, length: int) -> bytes:
    """``src``'s bytes up to its pixel data, with Rows and Columns set, and a pixel data
    element header (OW) of ``length``."""
    ds = pydicom.dcmread(src)
    ds.Rows, ds.Columns = rows, cols
    del ds.PixelData
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue() + PIXEL_DATA_TAG + b"OW\0\0" + struct.pack("<I", length)


def _small(root: Path) -> Path:
    return write_series(np.full((16, 16, 1), 100.0), np.eye(4), root / "src")[0]


def _bomb_gzip_zeros(root: Path) -> Path:
    """A 16 x 16 image whose pixel data element holds 4 GiB of zeros (4 MB as .dcm.gz)."""
    n = 0xFFFFFFFE
    _gzip_with_zeros(_head_with_pixels(_small(root), 16, 16, n), n, root / "in" / "z.dcm.gz")
    return root / "in" / "z.dcm.gz"


def _bomb_gzip_large(root: Path) -> Path:
    """A 32768 x 32768 image of zeros (2 GiB; 2 MB as .dcm.gz)."""
    n = 32768 * 32768 * 2
    _gzip_with_zeros(_head_with_pixels(_small(root), 32768, 32768, n), n, root / "in" / "l.dcm.gz")
    return root / "in" / "l.dcm.gz"


def _bomb_rle(root: Path) -> Path:
    """An RLE file of a 16 x 16 image claiming 65535 x 65535."""
    ds = pydicom.dcmread(_small(root))
    ds.compress(pydicom.uid.RLELossless)
    ds.Rows = ds.Columns = 65535
    ds.save_as(root / "in" / "rle.dcm")
    return root / "in" / "rle.dcm"


def _bomb_jpeg2000(root: Path) -> Path:
    """An enhanced JPEG 2000 file of 64 frames of 64 x 64 claiming 8192 x 8192 (8 GiB)."""
    ds = pydicom.dcmread(write_enhanced(np.full((64, 64, 64), 100.0), root / "src" / "e.dcm"))
    ds.compress(pydicom.uid.JPEG2000Lossless)
    ds.Rows = ds.Columns = 8192
    ds.save_as(root / "in" / "j2k.dcm")
    return root / "in" / "j2k.dcm"


def _bomb_deflated(root: Path) -> Path:
    """A 16 x 16 image under the deflated transfer syntax whose data set inflates to 3 GiB
    (zeros in a padding element after the pixel data; 3 MB on disk)."""
    ds = pydicom.dcmread(_small(root))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    meta_end = 144 + int.from_bytes(data[140:144], "little")
    body = zlib.decompress(data[meta_end:], -15)
    n = 3 << 30
    padding = b"\xfc\xff\xfc\xffOB\0\0" + struct.pack("<I", n)  # (FFFC,FFFC)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    path = root / "in" / "deflated.dcm"
    with open(path, "wb") as fh:
        fh.write(data[:meta_end] + comp.compress(body + padding) + comp.flush(zlib.Z_FULL_FLUSH))
        block = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
        for _ in range(n >> 20):
            fh.write(block)
        fh.write(comp.flush())
    return path


def _bomb_truncated(root: Path) -> Path:
    """A 512 x 512 image whose pixel data element holds 12 bytes."""
    path = root / "in" / "cut.dcm"
    path.write_bytes(_head_with_pixels(_small(root), 512, 512, 12) + bytes(12))
    return path


#: bomb -> (how it is built, what the failure line says)
BOMBS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "gzip of 4 GiB of zeros": (
        _bomb_gzip_zeros,
        "pixel data longer than Rows x Columns x NumberOfFrames x "
        "SamplesPerPixel x BitsAllocated says (4294967294, not 512 bytes",
    ),
    "gzip of a 32768^2 image": (
        _bomb_gzip_large,
        "Rows=32768: more voxels along an axis than NIfTI-1 holds (32767)",
    ),
    "RLE claiming 65535^2": (
        _bomb_rle,
        "Rows=65535: more voxels along an axis than NIfTI-1 holds (32767)",
    ),
    "JPEG 2000 claiming 64 x 8192^2": (
        _bomb_jpeg2000,
        "of compressed pixel data claim an image of 8.0 GiB: more than 1000:1",
    ),
    "deflated data set of 3 GiB": (
        _bomb_deflated,
        "the deflated data set inflates to more than 2.0 MiB, beyond what its header declares",
    ),
    "truncated payload": (_bomb_truncated, "truncated pixel data (12 of 524288 bytes present)"),
}

#: run in a fresh Python: the command line given, then its exit code and peak RSS (KiB).
#: The child's address space is capped at 6 GiB so that a regression fails this test, not
#: the machine (the cap is far above the 1 GiB asserted)
PEAK_RSS = """
import resource, subprocess, sys
cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
run = subprocess.run(sys.argv[1:], capture_output=True, text=True, preexec_fn=cap)
print(run.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(run.stdout + run.stderr)
"""
#: Python's words for a failure (a class name) that a failure line must not show
PYTHON_WORDS = re.compile(r"\b\w*(Error|error|Exception)\b|numpy\.|struct\.|Traceback")


@pytest.mark.slow
@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_memory_bomb_fails_named_within_1_gb(tmp_path, bomb):
    """Issue 22 item 3: a file whose header claims more than it holds used 6 to 14 GB (or
    failed with struct.error / numpy's _ArrayMemoryError, no file named).  Each fails by
    name, in words, before the memory is used: peak RSS of `anatprep convert` under 1 GiB."""
    build, reason = BOMBS[bomb]
    (tmp_path / "in").mkdir()
    path = build(tmp_path)
    cmd = [sys.executable, "-m", "anatprep.pipelines.cli", "convert", str(tmp_path / "in"),
           str(tmp_path / "out"), "--compression", "1"]  # fmt: skip
    run = subprocess.run([sys.executable, "-c", PEAK_RSS, *cmd], capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    head, _, text = run.stdout.partition("\n")
    code, peak_kib = map(int, head.split())
    assert code == 4, text
    assert peak_kib < 1 << 20, f"peak RSS {peak_kib / 1024:.0f} MiB\n{text}"
    failures = [ln for ln in text.splitlines() if "FAILED" in ln]
    assert failures and all(str(path) in ln for ln in failures), text
    assert any(reason in ln for ln in failures), text
    assert not any(PYTHON_WORDS.search(ln) for ln in failures), failures


def test_an_image_above_the_ceiling_fails_by_name(tmp_path, capsys):
    """``--max-image-gb`` (``conversion.max_image_gb``) fails a file above it, named, in
    words, before its pixels are read; the default lets the same series through."""
    paths = write_series(np.full((16, 16, 2), 100.0), np.eye(4), tmp_path / "in" / "t1")
    argv = ["convert", str(tmp_path / "in"), str(tmp_path / "out"), "--compression", "1"]
    code = main([*argv, "--max-image-gb", "0.0000001"])  # 107 bytes; each file has 512
    text = "".join(capsys.readouterr())
    assert code == 4, text
    assert (
        f"{paths[0]}: the image would need 512 bytes, more than conversion.max_image_gb "
        "allows (107 bytes)"
    ) in text
    assert main(argv) == 0


@pytest.mark.parametrize("cut", [153, 300])
def test_a_file_cut_in_its_file_meta_fails_in_words(tmp_path, capsys, cut):
    """Cut inside its file meta group a file names no series: it fails on its own, exit 4,
    in words (pydicom's struct.error leaked at 153 bytes; at 300 it read as 'DICOM without
    an image' and the run ended 0)."""
    paths = write_series(np.full((6, 5, 3), 100.0), np.eye(4), tmp_path / "in" / "s")
    paths[-1].write_bytes(paths[-1].read_bytes()[:cut])
    code, text, _ = _convert_one(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 4, text
    (line,) = [ln for ln in text.splitlines() if "FAILED" in ln and str(paths[-1]) in ln]
    assert "file meta information" in line and not PYTHON_WORDS.search(line), line
