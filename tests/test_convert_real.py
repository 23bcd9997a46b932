"""Our converter on real scanner DICOM, against dcm2niix run live and the dcm_qa ``Ref/``."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pydicom
import pytest
from conftest import REAL_PHI, assert_same_image, grep_outputs, run_dcm2niix

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry
from anatprep.interfaces.dicomio.sidecar import FORBIDDEN_KEYS

pytestmark = pytest.mark.data

#: keys every sidecar of ours must have, and hold the same value as dcm2niix's Ref
CORE_KEYS = [
    "Modality",
    "MagneticFieldStrength",
    "Manufacturer",
    "ManufacturersModelName",
    "RepetitionTime",
    "EchoTime",
    "FlipAngle",
    "SeriesDescription",
    "ProtocolName",
    "ImageOrientationPatientDICOM",
    "SeriesNumber",
    "ImageType",
    "AcquisitionTime",
]


def _compare_json(
    ours: dict, ref: dict, required: list[str], rel: float = 1e-6, skip: tuple[str, ...] = ()
) -> None:
    """Every key of ``ref`` we also write holds the same value; ``required`` keys exist."""
    for key in required:
        assert key in ours, f"missing {key}"
    for key, value in ours.items():
        if key not in ref or key.startswith("Conversion") or key in skip:
            continue
        expected = ref[key]
        if isinstance(value, float | int) and isinstance(expected, float | int):
            assert value == pytest.approx(expected, rel=rel, abs=1e-9), key
        elif isinstance(value, list) and value and isinstance(value[0], float | int):
            np.testing.assert_allclose(value, expected, rtol=rel, atol=1e-9, err_msg=key)
        else:
            assert value == expected, key
    assert not FORBIDDEN_KEYS.intersection(ours)


#: fixtures of this module whose users are slow (a 192-slice MPRAGE through both converters)
MARKED_FIXTURES = {"asl_t1": "slow"}


@pytest.fixture(scope="module")
def asl_t1(data_dir, tmp_path_factory):
    src = data_dir / "dicom" / "dcm_qa_asl_t1" / "In" / "T1"
    out = tmp_path_factory.mktemp("asl_t1")
    table = index_tree(src)
    nii, js = convert_entry(table.series[0], out / "ours" / "t1")
    ref = run_dcm2niix(src, out / "ref")
    return src, table, Path(nii), Path(js), ref


def test_asl_t1_voxels_and_affine_equal_dcm2niix(asl_t1):
    _, table, nii, _, ref = asl_t1
    assert len(table.series) == 1 and table.series[0].n_slices == 192
    ours, theirs = nb.load(nii), nb.load(ref[0])
    # dcm2niix computes the re-sliced origin in float32: 1 µm apart over 192 mm
    assert_same_image(ours, theirs, atol_mm=2e-3)


def test_asl_t1_affine_equals_dicom_positions(asl_t1):
    """Independent of any converter: for pixels spread over each sampled slice, the voxel at
    the pixel's DICOM patient position (IPP + column/row steps) holds that pixel's value."""
    _, table, nii, _, _ = asl_t1
    img = nb.load(nii)
    data = np.asanyarray(img.dataobj)
    inv = np.linalg.inv(img.affine)
    for path in table.series[0].files[::37]:
        ds = pydicom.dcmread(path)
        lps = np.asarray(ds.ImagePositionPatient, float)
        iop = np.asarray(ds.ImageOrientationPatient, float)
        col_step = iop[:3] * float(ds.PixelSpacing[1])
        row_step = iop[3:] * float(ds.PixelSpacing[0])
        pixels = ds.pixel_array
        for row, col in ((0, 0), (128, 100), (200, 37), (90, 250)):
            ras = (lps + col * col_step + row * row_step) * [-1, -1, 1]
            ijk = nb.affines.apply_affine(inv, ras)
            np.testing.assert_allclose(ijk, np.rint(ijk), atol=1e-3)
            assert data[tuple(np.rint(ijk).astype(int))] == pixels[row, col]
        assert pixels[128, 100] > 0


def test_asl_t1_sidecar_matches_dcm2niix_and_ref(asl_t1, data_dir):
    _, _, _, js, live = asl_t1
    ours = json.loads(js.read_text())
    _compare_json(
        ours, json.loads(live[0].with_suffix(".json").read_text()), [*CORE_KEYS, "InversionTime"]
    )
    ref = json.loads(
        (
            data_dir
            / "dicom"
            / "dcm_qa_asl_t1"
            / "Ref"
            / "T1_mprage_ns_sag_p2_iso_1.0mm_192_5.json"
        ).read_text()
    )
    # Ref was written by dcm2niix v1.0.20220606, which printed 6 significant digits and did
    # not yet spell out Siemens' 'M' as MAGNITUDE in ImageType nor zero-pad seconds
    _compare_json(
        ours, ref, [*CORE_KEYS, "InversionTime"], rel=5e-6, skip=("ImageType", "AcquisitionTime")
    )


def test_asl_t1_no_phi_anywhere(asl_t1):
    _, _, nii, _, _ = asl_t1
    hits = grep_outputs(nii.parent, REAL_PHI)
    assert not hits, hits
    hdr = nb.load(nii).header
    for field in ("descrip", "aux_file", "intent_name", "db_name"):
        assert hdr[field].tobytes().strip(b"\0") in (b"", b"anatprep")


@pytest.mark.parametrize("series", [4, 5, 6, 7])
def test_ge_4d_series_equal_dcm2niix_and_ref(data_dir, tmp_path, series):
    src = data_dir / "dicom" / "dcm_qa_nih" / "In" / "20180918GE" / f"mr_000{series}"
    table = index_tree(src)
    assert len(table.series) == 1
    entry = table.series[0]
    assert (entry.n_slices, entry.n_volumes) == (15, 10)
    nii, js = convert_entry(entry, tmp_path / "ours")
    ours = nb.load(nii)
    live = nb.load(run_dcm2niix(src, tmp_path / "ref")[0])
    assert_same_image(ours, live)
    ref_dir = data_dir / "dicom" / "dcm_qa_nih" / "Ref"
    ref_img = nb.load(ref_dir / f"DCM2NIIX_regression_test_{series}.nii")
    assert_same_image(ours, ref_img)
    ours_json = json.loads(Path(js).read_text())
    ref_json = json.loads((ref_dir / f"DCM2NIIX_regression_test_{series}.json").read_text())
    _compare_json(ours_json, ref_json, CORE_KEYS)
    live_json = json.loads(
        (tmp_path / "ref" / f"DCM2NIIX_regression_test_{series}.json").read_text()
    )
    _compare_json(ours_json, live_json, CORE_KEYS)
    assert ours.header.get_zooms()[3] == pytest.approx(5.0)
