"""Siemens XA classic (interoperability) export: a 4D run written as one file per slice, each
volume with its own SeriesNumber (16001, 16002, ...) under one SeriesInstanceUID.

Synthetic series (no shared data has this export): they must become one 4D image with the
sidecar values of the "SIEMENS MR SDI 02" block, as dcm2niix makes them, and files that do not
belong together must stay apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pydicom
import pytest
from conftest import assert_same_image, run_dcm2niix

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series_to_nifti import SeriesConversionError, convert_entry
from anatprep.pipelines.synthetic import write_series

N_SLICES, TR_S = 4, 2.0
#: slice times (s) of an interleaved acquisition: slices 0, 2 first, then 1, 3
INTERLEAVED = [0.0, 1.0, 0.5, 1.5]


def xa_run(
    root: Path,
    numbers=(16001, 16002, 16003),
    uid: str | None = "1.2.826.0.1.3680043.10.1234.99",
    software="syngo MR XA30",
    times=None,
    spacing=None,
) -> Path:
    """One folder per volume; ``times(v)`` gives volume v's slice times (s, slice order);
    ``spacing`` maps a volume index to another PixelSpacing."""
    rng = np.random.default_rng(0)
    times = times or (lambda v: INTERLEAVED)
    for v, number in enumerate(numbers):
        vol = rng.integers(0, 1000, (8, 6, N_SLICES)).astype(float)
        meta = {
            "MRAcquisitionType": "2D",
            "RepetitionTime": TR_S * 1000,
            "SoftwareVersions": software,
            "ProtocolName": "bold",
            "SeriesDescription": "bold",
            "InPlanePhaseEncodingDirection": "COL",
            "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"],
        }
        paths = write_series(
            vol, np.diag([2.0, 2.0, 3.0, 1.0]), root / f"v{v}", series_number=number, meta=meta,
            prefix=f"V{v}_",
        )  # fmt: skip
        for k, path in enumerate(paths):
            ds = pydicom.dcmread(path)
            if uid is not None:
                ds.SeriesInstanceUID = uid
            ds.AcquisitionNumber = v + 1
            ds.AcquisitionTime = f"{120000 + v * 2 + times(v)[k]:013.6f}"
            if spacing and v in spacing:
                ds.PixelSpacing = spacing[v]
            ds.private_block(0x0021, "SIEMENS MR SDS 01", create=True)
            sdi = ds.private_block(0x0021, "SIEMENS MR SDI 02", create=True)
            sdi.add_new(0x04, "DS", f"{v * TR_S + times(v)[k]:.4f}")
            sdi.add_new(0x1C, "IS", "1")
            sdi.add_new(0x53, "FD", 30.0)
            ds.save_as(path)
    return root


def _convert(root: Path, out: Path) -> list[tuple[dict, nb.Nifti1Image, dict]]:
    results = []
    for entry in index_tree(root).series:
        nii, js = convert_entry(entry, out / entry.id)
        results.append((entry, nb.load(nii), json.loads(js.read_text())))
    return results


def test_volumes_become_one_4d_image_like_dcm2niix(tmp_path):
    root = xa_run(tmp_path / "dcm")
    ((entry, ours, sidecar),) = _convert(root, tmp_path / "ours")
    assert ours.shape == (8, 6, N_SLICES, 3)
    (ref_path,) = run_dcm2niix(root, tmp_path / "ref")
    assert_same_image(ours, nb.load(ref_path))
    ref = json.loads(ref_path.with_suffix(".json").read_text())
    assert sidecar["SeriesNumber"] == ref["SeriesNumber"] == 16001
    for key in ("PhaseEncodingDirection", "EffectiveEchoSpacing", "TotalReadoutTime"):
        assert sidecar[key] == pytest.approx(ref[key]), key
    assert sidecar["PhaseEncodingDirection"] == "j-"
    assert sidecar["SliceTiming"] == pytest.approx(ref["SliceTiming"]) == INTERLEAVED
    assert "MultibandAccelerationFactor" not in sidecar
    # volumes in acquisition order: the first volume is series 16001's
    first = pydicom.dcmread(sorted((root / "v0").iterdir())[0])
    assert entry.files[0].startswith(str(root / "v0"))
    assert first.SeriesNumber == 16001


def test_multiband_timing_from_the_second_volume(tmp_path):
    """The first volume of a multiband run is timed as single band: the second is used."""
    multiband = [0.0, 1.0, 0.0, 1.0]
    root = xa_run(tmp_path / "dcm", times=lambda v: INTERLEAVED if v == 0 else multiband)
    ((_, _, sidecar),) = _convert(root, tmp_path / "ours")
    assert sidecar["SliceTiming"] == multiband
    assert sidecar["MultibandAccelerationFactor"] == 2


def test_single_volume_has_no_slice_timing(tmp_path):
    root = xa_run(tmp_path / "dcm", numbers=(16001,))
    ((_, img, sidecar),) = _convert(root, tmp_path / "ours")
    assert img.shape == (8, 6, N_SLICES)
    assert "SliceTiming" not in sidecar
    assert sidecar["PhaseEncodingDirection"] == "j-"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"uid": None},  # every volume its own SeriesInstanceUID: dcm2niix keeps them apart too
        {"software": "syngo MR E11"},  # not XA classic software
        {"software": "syngo MR XA60A"},  # later XA: not stitched by dcm2niix either
        {"numbers": (5, 6, 7)},  # ordinary series numbers
        {"numbers": (16001, 17001, 18001)},  # different runs
    ],
)
def test_unrelated_series_are_not_stitched(tmp_path, kwargs):
    root = xa_run(tmp_path / "dcm", **kwargs)
    results = _convert(root, tmp_path / "ours")
    assert sorted(img.shape for _, img, _ in results) == [(8, 6, N_SLICES)] * 3
    refs = run_dcm2niix(root, tmp_path / "ref")
    assert sorted(nb.load(r).shape for r in refs) == [(8, 6, N_SLICES)] * 3


def test_volume_on_another_grid_is_not_stitched(tmp_path):
    """A volume whose pixel spacing differs stays its own image (never silently resampled)."""
    root = xa_run(tmp_path / "dcm", spacing={2: ["2.5", "2.5"]})
    results = _convert(root, tmp_path / "ours")
    assert sorted(img.shape for _, img, _ in results) == [(8, 6, N_SLICES), (8, 6, N_SLICES, 2)]


def test_volume_with_moved_slices_fails_loudly(tmp_path):
    root = xa_run(tmp_path / "dcm")
    for path in (root / "v1").iterdir():
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [float(v) + (1.5 if i == 2 else 0) for i, v in
                                   enumerate(ds.ImagePositionPatient)]  # fmt: skip
        ds.save_as(path)
    (entry,) = index_tree(root).series
    with pytest.raises(SeriesConversionError, match=r"slice locations|spacing"):
        convert_entry(entry, tmp_path / "ours" / "x")
