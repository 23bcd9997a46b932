"""Write a volume as a classic single-frame MR DICOM series with pydicom.

Used by the demo and by the tests to make DICOM whose true geometry and voxels are known.
Voxel ``(i, j, k)`` of ``volume`` is the pixel at column ``i``, row ``j`` of slice ``k``;
``affine`` (RAS, like NIfTI) maps it to world mm.  Nothing here is read back by anatprep's
own code paths except through real DICOM files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: realistic but fictitious identifying values: tests assert none of them reaches an output
FAKE_PHI: dict[str, str] = {
    "PatientName": "Doe^Jane^Q",
    "PatientID": "PID-0042-XYZ",
    "PatientBirthDate": "19710203",
    "PatientSex": "F",
    "PatientAge": "052Y",
    "InstitutionName": "Saint Nowhere Imaging Centre",
    "InstitutionAddress": "12 Fictional Road, Nowhere",
    "StationName": "STATION-7781",
    "DeviceSerialNumber": "SN-99017",
    "AccessionNumber": "ACC-552211",
    "StudyDate": "20230415",
    "SeriesDate": "20230415",
    "AcquisitionDate": "20230415",
    "ContentDate": "20230415",
    "ReferringPhysicianName": "House^Gregory",
}

T1W_META: dict[str, Any] = {
    "Manufacturer": "SIEMENS",
    "ManufacturerModelName": "Prisma_fit",
    "MagneticFieldStrength": 3,
    "ImagingFrequency": 123.2556,
    "RepetitionTime": 2300,
    "EchoTime": 2.98,
    "InversionTime": 900,
    "FlipAngle": 9,
    "ScanningSequence": ["GR", "IR"],
    "SequenceVariant": ["SK", "SP", "MP"],
    "ScanOptions": "IR",
    "SequenceName": "*tfl3d1_16ns",
    "MRAcquisitionType": "3D",
    "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"],
    "SeriesDescription": "t1_mprage_sag_p2_iso",
    "ProtocolName": "t1_mprage_sag_p2_iso",
    "BodyPartExamined": "BRAIN",
    "PatientPosition": "HFS",
    "SoftwareVersions": "syngo MR E11",
    "PixelBandwidth": 240,
    "AcquisitionTime": "101502.125000",
}


def rotation(axis: int, deg: float) -> np.ndarray:
    """3x3 rotation by ``deg`` degrees about world axis ``axis`` (0=x, 1=y, 2=z)."""
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


def _uid(*parts: object) -> UID:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_series(
    volume: np.ndarray,
    affine: np.ndarray,
    out_dir: str | Path,
    *,
    series_number: int = 1,
    meta: Mapping[str, Any] | None = None,
    rescale: tuple[float, float] = (1.0, 0.0),
    descending: bool = False,
    study_key: str = "study",
    signed: bool = False,
    prefix: str = "IM",
) -> list[Path]:
    """Write one file per slice ``k``; return the paths in slice order.

    ``rescale`` = (slope, intercept): stored = round((value - intercept) / slope).
    ``descending``: instance numbers run against the slice axis.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError("volume must be 3D")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lps = RAS_TO_LPS @ np.asarray(affine, dtype=float)
    col_vec, row_vec, slice_vec = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    dc, dr = np.linalg.norm(col_vec), np.linalg.norm(row_vec)
    row_cos, col_cos = col_vec / dc, row_vec / dr  # DICOM: row direction = along a row
    slope, inter = rescale
    stored = np.rint((volume.astype(float) - inter) / slope)
    dtype = np.int16 if signed else np.uint16
    info = np.iinfo(dtype)
    if stored.min() < info.min or stored.max() > info.max:
        raise ValueError("values do not fit the stored 16-bit type with this rescale")
    stored = stored.astype(dtype)
    fields = {**T1W_META, **FAKE_PHI, **(meta or {})}
    study_uid = _uid(study_key, "study")
    series_uid = _uid(study_key, "series", series_number)
    frame_uid = _uid(study_key, "frame")
    n = volume.shape[2]
    paths = []
    for k in range(n):
        instance = (n - k) if descending else (k + 1)
        position = lps[:3, 3] + slice_vec * k
        sop_uid = _uid(study_key, series_number, k)
        file_meta = FileMetaDataset()
        file_meta.MediaStorageSOPClassUID = MRImageStorage
        file_meta.MediaStorageSOPInstanceUID = sop_uid
        file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        file_meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.10.1234.1")
        path = out_dir / f"{prefix}{series_number:03d}_{instance:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=file_meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "MR"
        ds.SeriesNumber = series_number
        ds.InstanceNumber = instance
        ds.AcquisitionNumber = 1
        ds.EchoNumbers = 1
        for key, value in fields.items():
            setattr(ds, key, value)
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_cos, *col_cos)]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.PixelSpacing = [f"{dr:.6f}", f"{dc:.6f}"]
        ds.SliceThickness = f"{np.linalg.norm(slice_vec):.6f}"
        ds.SliceLocation = f"{float(np.dot(position, np.cross(row_cos, col_cos))):.6f}"
        ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[0])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        if (slope, inter) != (1.0, 0.0):
            ds.RescaleSlope = f"{slope:g}"
            ds.RescaleIntercept = f"{inter:g}"
            ds.RescaleType = "US"
        # pixel (row j, column i) = volume[i, j, k]
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(
    vol: np.ndarray, path: str | Path, per_frame_items: int | None = None
) -> Path:
    """One enhanced (multi-frame) MR file holding ``vol``'s slices as frames (axial, 1 x 1 x
    2 mm, SeriesNumber 5, described "enh"); ``per_frame_items``: a frame-group count that
    differs from the frame count (a broken file)."""
    path = Path(path)
    n = vol.shape[2]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.Manufacturer, ds.SeriesNumber = "MR", "SIEMENS", 5
    ds.ProtocolName = ds.SeriesDescription = "enh"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.Rows, ds.Columns = vol.shape[1], vol.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.NumberOfFrames = n
    measures = Dataset()
    measures.PixelSpacing = ["1", "1"]
    measures.SliceThickness = "2"
    orientation = Dataset()
    orientation.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in range(n if per_frame_items is None else per_frame_items):
        plane = Dataset()
        plane.ImagePositionPatient = ["0", "0", f"{2.0 * k:g}"]
        item = Dataset()
        item.PlanePositionSequence = Sequence([plane])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    stored = vol.astype(np.uint16).transpose(2, 1, 0)  # (frames, rows, columns)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
