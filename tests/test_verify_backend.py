"""The ``verify`` safety net and the optional dcm2niix backend (dcm2niix run live)."""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
from conftest import grep_outputs

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.reference import ConverterOutput, compare, run_on_series
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry
from anatprep.interfaces.dicomio.sidecar import FORBIDDEN_KEYS
from anatprep.pipelines.cli import main
from anatprep.pipelines.synthetic import FAKE_PHI, write_series

AFFINE = np.array([[-0.9, 0, 0, 40.0], [0, -1.1, 0, 30.0], [0, 0, 1.7, -12.0], [0, 0, 0, 1]])


def _series(tmp_path):
    vol = np.random.default_rng(3).integers(0, 3000, size=(20, 18, 10)).astype(float)
    write_series(vol, AFFINE, tmp_path / "dcm", series_number=4)
    (entry,) = index_tree(tmp_path / "dcm").series
    return entry


def test_verify_records_agreement_in_sidecar(tmp_path):
    entry = _series(tmp_path)
    _, js = convert_entry(entry, tmp_path / "out" / "t1", verify=True)
    report = json.loads(js.read_text())["ConversionVerification"]
    assert report["Agrees"] is True, report
    assert report["VoxelsIdentical"] and report["KeysCompared"] > 10
    assert report["Reference"].startswith("dcm2niix v")


def test_verify_flags_a_difference(tmp_path):
    entry = _series(tmp_path)
    nii, js = convert_entry(entry, tmp_path / "out" / "t1")
    img = nb.load(nii)
    data = np.asanyarray(img.dataobj.get_unscaled()).copy()
    data[0, 0, 0] += 1  # one voxel off
    tampered = tmp_path / "tampered.nii"
    nb.save(nb.Nifti1Image(data, img.affine, img.header), tampered)
    sidecar = json.loads(js.read_text())
    sidecar["EchoTime"] = 1.0
    with run_on_series(entry.files) as outputs:
        parity = compare(ConverterOutput(tampered, sidecar), outputs[0])
    assert not parity.agrees
    assert not parity.voxels_identical
    assert parity.keys_differing == ("EchoTime",)
    assert any(d.startswith("EchoTime: ours 1.0") for d in parity.differences)


def test_convert_command_verify_prints_verdict(tmp_path, capsys):
    _series(tmp_path)
    assert main(["convert", "--verify", str(tmp_path / "dcm"), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "verify against dcm2niix v1." in out and ": 1 equal, 0 differ, 0 unchecked" in out


def test_dcm2niix_backend_same_layout_no_identifiers(tmp_path):
    entry = _series(tmp_path)
    ours_nii, _ = convert_entry(entry, tmp_path / "ours" / "t1")
    nii, js = convert_entry(entry, tmp_path / "ref" / "t1", converter="dcm2niix")
    assert nii.name == "t1.nii.gz" and js.name == "t1.json"
    a, b = nb.load(ours_nii), nb.load(nii)
    np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
    sidecar = json.loads(js.read_text())
    assert sidecar["ConversionSoftware"] == "dcm2niix"
    assert not FORBIDDEN_KEYS & sidecar.keys()
    needles = [v.encode() for v in FAKE_PHI.values() if len(v) >= 4]
    assert not grep_outputs(tmp_path / "ref", needles)


def test_verify_reads_gzipped_dicom(tmp_path):
    """The dcm2niix wheel does not read .dcm.gz: verify hands it decompressed copies."""
    import gzip

    _series(tmp_path)
    for path in sorted((tmp_path / "dcm").iterdir()):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    (entry,) = index_tree(tmp_path / "dcm").series
    assert all(f.endswith(".gz") for f in entry.files)
    _, js = convert_entry(entry, tmp_path / "out" / "t1", verify=True)
    assert json.loads(js.read_text())["ConversionVerification"]["Agrees"] is True
