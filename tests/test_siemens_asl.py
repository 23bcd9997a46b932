"""ASL timing in the sidecar, as dcm2niix writes it: LabelingDuration / PostLabelingDelay from
the Siemens protocol (CSA series header, XA classic top-level block, XA enhanced shared
groups), ArterialSpinLabelingType from (0018,9250) or the sequence name."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from conftest import run_dcm2niix

from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry
from anatprep.interfaces.dicomio.sidecar import ALLOWED_KEYS, asl_fields
from anatprep.interfaces.dicomio.siemens import protocol_asl
from anatprep.pipelines.synthetic import write_series

KEYS = ("LabelingDuration", "PostLabelingDelay", "ArterialSpinLabelingType")


def _protocol(sequence: str, **values: str) -> dict[str, str]:
    return {"tSequenceFileName": f'""%SiemensSeq%\\{sequence}""', **values}


ASL_VALUES = {
    "sAsl.ulMode": "32",
    "sAsl.ulLabelingDuration": "1650000",
    "sAsl.ulDelayArraySize": "1",
    "sAsl.sPostLabelingDelay[0]": "1400000",
    "sWipMemBlock.adFree[2]": "1525000.0",
}


def test_asl_keys_are_allowed():
    assert set(KEYS) <= ALLOWED_KEYS


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        # product ep2d_asl: the sAsl times, no labeling type
        ("ep2d_asl", {"LabelingDuration": 1.65, "PostLabelingDelay": 1.4}),
        # LOFT 2D / 3D pCASL: adFree[2] is the delay (2D) or the labeling duration (3D)
        ("ep2d_pcasl", {"PostLabelingDelay": 1.525, "ArterialSpinLabelingType": "PCASL"}),
        ("ep2d_pcasl_UI_PHC", {"PostLabelingDelay": 1.525, "ArterialSpinLabelingType": "PCASL"}),
        ("tgse_pcasl", {"LabelingDuration": 1.525, "ArterialSpinLabelingType": "PCASL"}),
        ("to_ep2d_VEPCASL", {"ArterialSpinLabelingType": "PCASL"}),
        ("jw_tgse_VEPCASL", {"ArterialSpinLabelingType": "PCASL"}),
        ("ep2d_pasl", {"ArterialSpinLabelingType": "PASL"}),
        ("tgse_pasl", {"ArterialSpinLabelingType": "PASL"}),
        ("ep2d_fairest", {"ArterialSpinLabelingType": "PASL"}),
        # not an ASL sequence dcm2niix knows (its match is case-sensitive): nothing
        ("ep2d_bold", {}),
        ("tgse_asl", {}),
        ("EP2D_PCASL", {}),
    ],
)
def test_protocol_asl_by_sequence(sequence, expected):
    assert protocol_asl(_protocol(sequence, **ASL_VALUES)) == expected


@pytest.mark.parametrize("mode", ["1", "2", "4", "8", "16", "32", "64", "0x99"])
def test_asl_mode_code_never_gives_a_labeling_type(mode):
    """sAsl.ulMode is not read (dcm2niix ignores it): no code is mapped, none guessed."""
    protocol = _protocol("ep2d_asl", **{**ASL_VALUES, "sAsl.ulMode": mode})
    assert "ArterialSpinLabelingType" not in protocol_asl(protocol)


def test_absent_or_zero_times_are_not_written():
    assert protocol_asl(_protocol("ep2d_asl")) == {}
    zero = {"sAsl.ulLabelingDuration": "0", "sAsl.sPostLabelingDelay[0]": "0"}
    assert protocol_asl(_protocol("ep2d_asl", **zero)) == {}
    assert protocol_asl(_protocol("ep2d_pcasl")) == {"ArterialSpinLabelingType": "PCASL"}
    assert protocol_asl({}) == {}


def test_multi_delay_protocol_has_no_single_post_labeling_delay():
    """Several delays: the first alone is not the run's PostLabelingDelay (dcm2niix writes it)."""
    protocol = _protocol("ep2d_asl", **{**ASL_VALUES, "sAsl.ulDelayArraySize": "4"})
    assert protocol_asl(protocol) == {"LabelingDuration": 1.65}


@pytest.mark.parametrize(
    ("contrast", "expected"),
    [
        ("PSEUDOCONTINUOUS", "PCASL"),
        ("CONTINUOUS", "CASL"),
        ("PULSED", "PASL"),
        ("VELOCITY", None),  # not a standard term: nothing guessed
        (None, None),
    ],
)
def test_labeling_type_from_the_standard_contrast(contrast, expected):
    header = {"Manufacturer": "Philips", "ArterialSpinLabelingContrast": contrast}
    assert asl_fields(header, "unused").get("ArterialSpinLabelingType") == expected


# -- synthetic files checked against live dcm2niix ---------------------------------------------

PROTOCOL = b"""<XProtocol> ...
### ASCCONV BEGIN object=MrProtDataImpl@MrProtocolData version=51130001 ###
tSequenceFileName                        = ""%%SiemensSeq%%\\%s""
sAsl.ulMode                              = 32
sAsl.ulLabelingDuration                  = 1650000
sAsl.ulDelayArraySize                    = 1
sAsl.sPostLabelingDelay[0]               = 1400000
sWipMemBlock.adFree[2]                   = 1525000.0
### ASCCONV END ###
"""


def _asl_series(root, sequence: str, where: str, contrast: str | None):
    """A Siemens 2D series whose protocol sits in the CSA series header (E11) or in the top-level
    "SIEMENS MR SDS 01" block (XA classic export)."""
    software = "syngo MR E11" if where == "csa" else "syngo MR XA30"
    meta = {
        "SoftwareVersions": software,
        "MRAcquisitionType": "2D",
        "ProtocolName": "asl",
        "SeriesDescription": "asl",
        "ImageType": ["ORIGINAL", "PRIMARY", "ASL", "NONE"],
    }
    vol = np.random.default_rng(1).integers(0, 4000, (8, 6, 3)).astype(float)
    for path in write_series(vol, np.diag([2.0, 2.0, 3.0, 1.0]), root, meta=meta):
        ds = pydicom.dcmread(path)
        protocol = PROTOCOL % sequence.encode()
        if where == "csa":  # (0029,1020)
            block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
            block.add_new(0x20, "OB", protocol)
        else:  # (0021,xx19)
            ds.private_block(0x0021, "SIEMENS MR SDS 01", create=True).add_new(0x19, "OB", protocol)
        if contrast:
            ds.ArterialSpinLabelingContrast = contrast
        ds.save_as(path)
    return root


@pytest.mark.parametrize(
    ("sequence", "where", "contrast"),
    [
        ("ep2d_asl", "sds", None),
        ("ep2d_asl", "csa", None),
        ("ep2d_asl", "sds", "PULSED"),
        ("ep2d_pcasl", "csa", None),
        ("tgse_pcasl", "csa", None),
        ("ep2d_pasl", "sds", None),
    ],
)
def test_synthetic_asl_matches_dcm2niix(tmp_path, sequence, where, contrast):
    root = _asl_series(tmp_path / "dcm", sequence, where, contrast)
    (entry,) = index_tree(root).series
    _, js = convert_entry(entry, tmp_path / "ours")
    ours = json.loads(js.read_text())
    (ref_nii,) = run_dcm2niix(root, tmp_path / "ref")
    ref = json.loads(ref_nii.with_suffix(".json").read_text())
    expected = {k: ref[k] for k in KEYS if k in ref}
    assert expected  # every case writes at least one key
    assert {k: ours[k] for k in KEYS if k in ours} == expected


def test_disagreeing_labeling_types_write_none(tmp_path):
    """Sequence name says PCASL, (0018,9250) says PULSED: dcm2niix writes both keys (the JSON
    reader keeps the last); we write no type."""
    root = _asl_series(tmp_path / "dcm", "ep2d_pcasl", "sds", "PULSED")
    (entry,) = index_tree(root).series
    _, js = convert_entry(entry, tmp_path / "ours")
    ours = json.loads(js.read_text())
    assert "ArterialSpinLabelingType" not in ours
    assert ours["PostLabelingDelay"] == 1.525


# -- real XA30 enhanced files ------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["25_asl_2d_tra", "27_asl_2d_tra", "28_asl_2d_tra"])
def test_xa30_enhanced_asl_matches_dcm2niix(data_dir, tmp_path, folder):
    src = data_dir / "dicom" / "dcm_qa_xa30" / "In" / folder
    (entry,) = index_tree(src).series
    _, js = convert_entry(entry, tmp_path / "ours")
    ours = json.loads(js.read_text())
    (ref_nii,) = run_dcm2niix(src, tmp_path / "ref")
    ref = json.loads(ref_nii.with_suffix(".json").read_text())
    assert {k: ours.get(k) for k in KEYS} == {k: ref.get(k) for k in KEYS}
    assert (ours["LabelingDuration"], ours["PostLabelingDelay"]) == (1.8, 1.8)
    assert ours["ArterialSpinLabelingType"] == "PCASL"


def test_only_files_that_may_name_an_asl_sequence_have_their_protocol_read(tmp_path):
    from anatprep.interfaces.dicomio.siemens import _may_name_an_asl_sequence

    plain, asl, deflated = tmp_path / "a.dcm", tmp_path / "b.dcm", tmp_path / "c.dcm"
    plain.write_bytes(b"\0" * 200 + b'tSequenceFileName = ""%SiemensSeq%\\ep2d_bold""')
    asl.write_bytes(b"\0" * 200 + b'tSequenceFileName = ""%CustomerSeq%\\jw_tgse_VEPCASL""')
    deflated.write_bytes(b"\0" * 200 + b"1.2.840.10008.1.2.1.99" + b"\0" * 100)
    assert not _may_name_an_asl_sequence(str(plain))
    assert _may_name_an_asl_sequence(str(asl))
    assert _may_name_an_asl_sequence(str(deflated))  # its protocol is compressed: read it
    assert _may_name_an_asl_sequence(str(tmp_path / "x.dcm.gz"))
