"""Gradient tables of classic (file-per-slice) DWI series: standard tags (Canon, Toshiba),
Siemens' (0019,100C/100E) without a CSA header, Philips' private tags and derived volumes,
the per-vendor reader hook; synthetic series checked against dcm2niix run live."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pydicom
import pytest
from conftest import run_dcm2niix
from pydicom.uid import generate_uid

from anatprep.interfaces.dicomio import diffusion
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.scan import ScannedHeader
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry
from anatprep.pipelines.synthetic import rotation, write_series

#: b-value and LPS direction per volume: b=0, four directions, b=0 again
TABLE = [
    (0.0, (0.0, 0.0, 0.0)),
    (1000.0, (1.0, 0.0, 0.0)),
    (1000.0, (0.0, 0.70710678, 0.70710678)),
    (1000.0, (0.26726124, -0.53452248, 0.80178373)),
    (2000.0, (-0.6, 0.0, 0.8)),
    (0.0, (0.0, 0.0, 0.0)),
]


def _standard_tags(ds: pydicom.Dataset, b: float, vec) -> None:
    ds.add_new((0x0018, 0x9087), "FD", b)
    ds.add_new((0x0018, 0x9089), "FD", list(vec))


def _siemens_tags(ds: pydicom.Dataset, b: float, vec) -> None:
    ds.add_new((0x0019, 0x0010), "LO", "SIEMENS MR HEADER")
    ds.add_new((0x0019, 0x100C), "IS", str(int(b)))
    if b > 0:
        ds.add_new((0x0019, 0x100E), "FD", list(vec))


def _philips_tags(ds: pydicom.Dataset, b: float, vec) -> None:
    ds.add_new((0x2001, 0x0010), "LO", "Philips Imaging DD 001")
    ds.add_new((0x2001, 0x1003), "FL", b)
    ds.add_new((0x2005, 0x0010), "LO", "Philips MR Imaging DD 001")
    for element, value in zip((0x10B0, 0x10B1, 0x10B2), vec, strict=True):
        ds.add_new((0x2005, element), "FL", value)


def write_dwi(
    out: Path, manufacturer: str, tags, table=TABLE, shape=(12, 10, 5), oblique: bool = True
) -> Path:
    """A classic DWI series: one file per slice and volume, volumes in acquisition order."""
    dirs = np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float).T
    if oblique:
        dirs = rotation(0, 14.0) @ rotation(1, -9.0) @ dirs
    affine = np.eye(4)
    affine[:3, :3] = dirs * 2.0
    affine[:3, 3] = (-10.0, 8.0, -4.0)
    rng = np.random.default_rng(3)
    n = shape[2]
    for v, (b, vec) in enumerate(table):
        vol = rng.integers(0, 1000, size=shape).astype(float)
        meta = {"Manufacturer": manufacturer, "SeriesDescription": "dwi", "ProtocolName": "dwi"}
        meta["MRAcquisitionType"] = "2D"
        paths = write_series(vol, affine, out, meta=meta, prefix=f"V{v:02d}_")
        for k, path in enumerate(paths):
            ds = pydicom.dcmread(path)
            ds.InstanceNumber = v * n + k + 1
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[ds.SOPInstanceUID, str(v)])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.AcquisitionNumber = v + 1
            ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
            tags(ds, b, vec)
            ds.save_as(path)
    return out


def _ours(dicom: Path, out: Path) -> tuple[nb.Nifti1Image, dict, np.ndarray | None, np.ndarray]:
    table = index_tree(dicom)
    assert len(table.series) == 1, table
    nii, js = convert_entry(table.series[0], out / "ours")
    stem = str(nii).removesuffix(".nii.gz")
    has_table = Path(stem + ".bval").exists()
    bvec = np.loadtxt(stem + ".bvec") if has_table else None
    bval = np.loadtxt(stem + ".bval") if has_table else None
    return nb.load(nii), json.loads(js.read_text()), bvec, bval


def _reference(dicom: Path, out: Path) -> tuple[nb.Nifti1Image, np.ndarray, np.ndarray]:
    nii = run_dcm2niix(dicom, out)[0]
    stem = str(nii).removesuffix(".nii")
    return nb.load(nii), np.loadtxt(stem + ".bval"), np.loadtxt(stem + ".bvec")


@pytest.mark.parametrize(
    ("manufacturer", "tags"),
    [("CANON_MEC", _standard_tags), ("TOSHIBA_MEC", _standard_tags), ("SIEMENS", _siemens_tags)],
)
def test_classic_dwi_table_matches_dcm2niix(tmp_path, manufacturer, tags):
    dicom = write_dwi(tmp_path / "dcm", manufacturer, tags)
    img, _, bvec, bval = _ours(dicom, tmp_path)
    ref, ref_bval, ref_bvec = _reference(dicom, tmp_path / "ref")
    assert img.shape == ref.shape == (12, 10, 5, len(TABLE))
    np.testing.assert_allclose(bval, ref_bval)
    np.testing.assert_allclose(bvec, ref_bvec, atol=1e-4)
    np.testing.assert_allclose(bval, [b for b, _ in TABLE])


def test_philips_private_tags_and_trace_volume_removed(tmp_path):
    table = [*TABLE[:5], (1000.0, (0.0, 0.0, 0.0))]  # the last: the scanner's isotropic trace
    dicom = write_dwi(tmp_path / "dcm", "Philips Medical Systems", _philips_tags, table)
    img, sidecar, bvec, bval = _ours(dicom, tmp_path)
    ref, ref_bval, ref_bvec = _reference(dicom, tmp_path / "ref")
    assert img.shape == ref.shape == (12, 10, 5, 5)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), np.asanyarray(ref.dataobj))
    np.testing.assert_allclose(bval, ref_bval)
    np.testing.assert_allclose(bvec, ref_bvec, atol=1e-4)
    removed = sidecar["DiffusionDerivedVolumesRemoved"]
    assert removed["Count"] == 1 and removed["Volumes"] == [5]


def test_b0_only_series_has_no_table(tmp_path):
    """An fMRI run whose files carry the diffusion tags with b = 0 is no DWI series."""
    table = [(0.0, (0.0, 0.0, 0.0))] * 3
    dicom = write_dwi(tmp_path / "dcm", "Philips Medical Systems", _standard_tags, table)
    img, sidecar, bvec, bval = _ours(dicom, tmp_path)
    assert img.shape[3] == 3 and bvec is None and bval is None
    assert "DiffusionDerivedVolumesRemoved" not in sidecar


def test_b0_and_trace_pair_keeps_both():
    """dcm2niix keeps a lone derived volume beside a single other one (b=0 + trace DWI)."""
    headers = [
        ScannedHeader(Manufacturer="Philips", DiffusionBValue=0.0),
        ScannedHeader(Manufacturer="Philips", DiffusionBValue=1000.0),
    ]
    for h in headers:
        h["DiffusionGradientOrientation"] = (0.0, 0.0, 0.0)
    plan = diffusion.diffusion_plan(headers)
    assert plan.removed == () and [b for b, _ in plan.table] == [0.0, 1000.0]


def test_all_derived_volumes_give_no_table_and_keep_the_image():
    headers = [
        ScannedHeader(
            Manufacturer="Philips", DiffusionBValue=b, DiffusionGradientOrientation=(0, 0, 0)
        )
        for b in (1000.0, 2000.0, 1000.0)
    ]
    plan = diffusion.diffusion_plan(headers)
    assert plan.table is None and plan.removed == ()


def test_vendor_reader_hook(monkeypatch):
    """A vendor's own reader (e.g. GE's) answers first; None defers to the standard tags."""
    calls = []

    def reader(header):
        calls.append(header)
        return (700.0, (0.0, 0.0, 2.0)) if header.get("Own") else None

    monkeypatch.setitem(diffusion.VENDOR_READERS, "Canon", reader)  # vendors.CANON
    own = ScannedHeader(Manufacturer="CANON_MEC", Own=True, DiffusionBValue=5.0)
    b, direction = diffusion.volume_gradient(own)
    assert b == 700.0 and direction.tolist() == [0.0, 0.0, 2.0]  # not scaled: not listed
    std = ScannedHeader(
        Manufacturer="Canon", DiffusionBValue=5.0, DiffusionGradientOrientation=(0, 1, 0)
    )
    assert diffusion.volume_gradient(std)[0] == 5.0
    assert len(calls) == 2


def test_philips_directions_scaled_to_unit_length():
    h = ScannedHeader(
        Manufacturer="Philips", DiffusionBValue=1000.0, DiffusionGradientOrientation=(0, 0.6, 0.79)
    )
    _, direction = diffusion.volume_gradient(h)
    assert np.linalg.norm(direction) == pytest.approx(1.0)
