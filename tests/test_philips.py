"""Philips intensity scaling (one rule for classic and enhanced files) and the enhanced
sidecar keys dcm2niix reads from the enhanced macros, on the shared dcm_qa data."""

from __future__ import annotations

import json
import logging

import nibabel as nb
import pydicom
import pytest

from anatprep.interfaces.dicomio import philips
from anatprep.interfaces.dicomio.frames import frame_headers
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.scan import PHILIPS_SCALE_SLOPE, ScannedHeader
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry
from anatprep.interfaces.dicomio.sidecar import build_sidecar


def _header(**values) -> ScannedHeader:
    return ScannedHeader({"Manufacturer": "Philips Medical Systems", **values})


def test_precise_value_formula():
    # P = (stored x RS + RI) / (RS x SS)
    slope, inter = philips.precise_rescale(2.0, 10.0, 0.5)
    for stored in (0.0, 7.0, 100.0):
        assert stored * slope + inter == pytest.approx((stored * 2.0 + 10.0) / (2.0 * 0.5))


def test_rescale_rule():
    h = _header(RescaleSlope=2.0, RescaleIntercept=10.0, **{PHILIPS_SCALE_SLOPE: 0.25})
    assert philips.rescale(h) == pytest.approx((4.0, 20.0))
    assert philips.rescale(h, precise=False) == (2.0, 10.0)
    no_ss = _header(RescaleSlope=2.0, RescaleIntercept=10.0)
    assert philips.rescale(no_ss) == (2.0, 10.0)
    other = ScannedHeader(Manufacturer="SIEMENS", RescaleSlope=2.0, **{PHILIPS_SCALE_SLOPE: 0.5})
    assert philips.rescale(other) == (2.0, 0.0)
    assert philips.sidecar_fields(other, True) == {}


def test_enhanced_frames_with_different_scales_keep_display_values():
    frames = [
        _header(RescaleSlope=2.0, **{PHILIPS_SCALE_SLOPE: 0.5}),
        _header(RescaleSlope=3.0, **{PHILIPS_SCALE_SLOPE: 0.5}),
    ]
    assert not philips.uses_precise(frames, enhanced=True)
    assert philips.uses_precise(frames, enhanced=False)  # classic: per file, like dcm2niix
    fields = philips.sidecar_fields(frames[0], precise=False)
    assert fields["UsePhilipsFloatNotDisplayScaling"] == 0


def _convert(data_dir, folder, tmp_path):
    table = index_tree(data_dir / "dicom" / folder)
    out = []
    for entry in table.series:
        nii, js = convert_entry(entry, tmp_path / entry.id)
        out.append((nb.load(nii), json.loads(js.read_text()), nii))
    return out


def test_classic_philips_fmri_precise_scaling(data_dir, tmp_path):
    [(img, sidecar, _)] = _convert(data_dir, "dcm_qa_philips/In/Magdeburg_2014", tmp_path)
    ss = sidecar["PhilipsScaleSlope"]
    assert ss == pytest.approx(0.00428404)
    assert sidecar["PhilipsRescaleSlope"] == pytest.approx(1.29035)
    assert sidecar["PhilipsRescaleIntercept"] == 0
    assert sidecar["UsePhilipsFloatNotDisplayScaling"] == 1
    assert img.dataobj.slope == pytest.approx(1 / ss, rel=1e-5)
    assert sidecar["ImageType"][-1] == "MAGNITUDE"
    assert sidecar["SequenceName"] == "FEEPI"


@pytest.mark.slow
def test_classic_philips_dti_drops_trace_like_dcm2niix(data_dir, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="anatprep"):
        [(img, sidecar, nii)] = _convert(data_dir, "dcm_qa_philips/In/Vanderbilt_2018", tmp_path)
    assert "1 of 17 volumes are scanner-derived" in caplog.text
    assert "Vanderbilt" not in caplog.text  # no paths (folders may name a patient)
    assert img.shape == (80, 80, 40, 16)
    assert sidecar["DiffusionDerivedVolumesRemoved"]["Count"] == 1
    bval = nii.with_name(nii.name.removesuffix(".nii.gz") + ".bval").read_text().split()
    assert bval == ["0"] + ["2000"] * 15


def test_enhanced_philips_b0_map_keys(data_dir, tmp_path):
    outputs = _convert(data_dir, "dcm_qa_enh/In/Philips", tmp_path)
    by_type = {tuple(s["ImageType"]): (img, s) for img, s, _ in outputs}
    img, fieldmap = by_type[("ORIGINAL", "PRIMARY", "T1", "MIXED", "FIELDMAPHZ")]
    # SS is chosen so that the precise value is the display value (Hz)
    assert img.dataobj.slope == pytest.approx(0.2442, rel=1e-5)
    assert img.dataobj.inter == pytest.approx(-500, rel=1e-5)
    assert fieldmap["PhilipsScaleSlope"] == pytest.approx(4.095)
    assert fieldmap["UsePhilipsFloatNotDisplayScaling"] == 1
    assert fieldmap["AcquisitionTime"] == "15:25:09.020000"
    assert fieldmap["ImagingFrequency"] == pytest.approx(127.763573)
    assert fieldmap["SequenceName"] == "FFE"
    assert fieldmap["PhaseEncodingSteps"] == 64


def test_enhanced_siemens_xa_keys(data_dir, tmp_path):
    [(_, sidecar, _)] = _convert(data_dir, "dcm_qa_xa30/In/5_anat-T1w_acq-tfl", tmp_path)
    assert sidecar["ScanningSequence"] == "GR\\IR"
    assert sidecar["SequenceVariant"] == "SK\\SP\\MP"
    assert sidecar["ScanOptions"] == "IR"
    assert sidecar["SequenceName"] == "*tfl3d1_16ns"
    assert sidecar["InversionTime"] == pytest.approx(0.9)
    assert sidecar["AcquisitionTime"] == "12:05:17.042500"
    assert sidecar["PhaseEncodingSteps"] == 128
    assert sidecar["ImagingFrequency"] == pytest.approx(123.262417)


def test_enhanced_acquisition_time_from_date_time():
    """AcquisitionDateTime gives the time of day only: no date, no UTC offset."""
    ds = pydicom.Dataset()
    ds.AcquisitionDateTime = "20220711120517.0425+0100"
    item = pydicom.Dataset()
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([item])
    [frame] = frame_headers(ds)
    assert frame["AcquisitionTime"] == "120517.0425"
    assert build_sidecar(frame)["AcquisitionTime"] == "12:05:17.042500"
    assert "AcquisitionDateTime" not in build_sidecar(frame)
