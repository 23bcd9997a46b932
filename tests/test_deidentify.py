"""``deidentify: strict``: operator-typed free text (SeriesDescription, ProtocolName, where
a patient's name sometimes gets typed) reaches no output file (names or contents), no line
printed or logged and no crash file; in the work dir only ``index/`` keeps it.  The default,
``standard``, keeps today's behaviour (descriptions in sidecars, ``extra/`` and ``convert``
names and messages), which is what shows these tests can fail.

A name is planted in SeriesDescription, ProtocolName and ImageComments of a T1w series, an
unclassified series and a series that fails (a missing slice), then ``convert`` and ``run``
(conversion only) are run as the command line runs them and every file is searched, gzip
streams (``.nii.gz``, nipype's ``.pklz``) decompressed.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
import yaml

from anatprep.interfaces.dicomio.sidecar import FREE_TEXT_KEYS
from anatprep.interfaces.dicomio.table import SeriesEntry
from anatprep.pipelines.config import Config
from anatprep.pipelines.rules import plan_subjects
from anatprep.pipelines.synthetic import write_series

pytestmark = pytest.mark.pipeline

#: the planted name, in the spellings that are searched for (case-insensitive)
TOKENS = (b"jane", b"doe^", b"doe ")
NAME = {
    "SeriesDescription": "t1_mprage DOE^JANE",
    "ProtocolName": "Jane Doe mprage",
    "ImageComments": "Jane Doe, call back",
}
OTHER = {**NAME, "SeriesDescription": "DOE^JANE notes", "ProtocolName": "Jane Doe notes",
         "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"], "SequenceName": "*fl2d1"}  # fmt: skip
#: the work-dir files that keep descriptions in every mode (classification reads them)
INDEX_FILES = ("index/series_table.json", "index/header_cache.json")


def _study(root: Path) -> Path:
    src = root / "dicom"
    rng = np.random.default_rng(7)
    t1 = rng.integers(50, 900, size=(16, 16, 44)).astype(float)
    affine = np.diag([1.0, 1.0, 1.2, 1.0])
    write_series(t1, affine, src / "sub-01" / "t1", series_number=3, meta=NAME, study_key="s")
    small = t1[:, :, :8]
    write_series(small, affine, src / "sub-01" / "other", series_number=4, meta=OTHER,
                 study_key="s")  # fmt: skip
    gappy = write_series(small, affine, src / "sub-01" / "gappy", series_number=5,
                         meta=OTHER, study_key="s")  # fmt: skip
    gappy[3].unlink()  # a missing slice: this series fails, with a message and a crash file
    return src


def _cli(*args: object) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "anatprep.pipelines.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, timeout=600)


def _texts(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> content, gzip streams opened); the
    path itself is part of the text searched."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or rel in skip:
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        out[rel] = rel.encode() + b"\n" + data
    return out


def _hits(texts: dict[str, bytes]) -> list[str]:
    return sorted(name for name, data in texts.items() if any(t in data.lower() for t in TOKENS))


def _conversion_config(tmp_path: Path, **extra) -> Path:
    cfg = {"brain_extraction": {"enabled": False}, "execution": {"n_procs": 2}, **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return _study(tmp_path_factory.mktemp("deid"))


@pytest.mark.parametrize("converter", ["anatprep", "dcm2niix"])
def test_convert_strict_leaks_no_description(study, tmp_path, converter):
    out = tmp_path / "out"
    done = _cli("convert", study, out, "--deidentify", "strict", "--converter", converter,
                *(["--verify"] if converter == "anatprep" else []))  # fmt: skip
    assert done.returncode == 4, done.stderr  # the gappy series failed, named
    printed = {"stdout": done.stdout, "stderr": done.stderr}
    assert b"FAILED series sn005-" in done.stderr
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["series_3.nii.gz", "series_4.nii.gz"]
    assert _hits(_texts(out)) == [] and _hits(printed) == []
    sidecar = json.loads((out / "series_4.json").read_text())
    assert not FREE_TEXT_KEYS & set(sidecar) and sidecar["SequenceName"] == "*fl2d1"
    header = nb.load(out / "series_4.nii.gz").header
    assert header["aux_file"].tobytes().strip(b"\0") == b""  # (dcm2niix puts ImageComments there)


def test_convert_standard_keeps_descriptions(study, tmp_path):
    """Today's behaviour, kept as the default: the name reaches names, sidecars and the
    account (which is why strict exists)."""
    out = tmp_path / "out"
    done = _cli("convert", study, out)
    assert done.returncode == 4
    assert "JaneDoemprage_3.nii.gz" in {p.name for p in out.iterdir()}
    assert json.loads((out / "JaneDoenotes_4.json").read_text())["SeriesDescription"] == (
        "DOE^JANE notes"
    )
    assert b"'DOE^JANE notes'" in done.stdout + done.stderr
    assert all(b"jane" not in t for n, t in _texts(out).items() if n.endswith(".nii.gz"))


@pytest.mark.parametrize("mode", ["strict", "standard"])
def test_run_strict_leaks_no_description(study, tmp_path, mode):
    """``run`` (with ``-v``: nipype's node log too, and ``verify``): nothing in OUTPUT, on
    the terminal, in the crash file or in the work dir outside ``index/``; standard mode
    shows the same searches find the name."""
    out, work = tmp_path / "out", tmp_path / "work"
    config = _conversion_config(tmp_path, conversion={"verify": True})
    done = _cli("run", study, out, "--work-dir", work, "--config", config, "-v",
                "--deidentify", mode)  # fmt: skip
    assert done.returncode == 4, done.stderr
    crashes = list((work / "logs").glob("crash-*"))
    assert len(crashes) == 1 and "convert_acq" in crashes[0].name
    printed = {"stdout": done.stdout, "stderr": done.stderr}
    found = _hits(_texts(out)) + _hits(printed) + _hits(_texts(work, skip=INDEX_FILES))
    extra = sorted(p.name for p in (out / "sub-01" / "extra").glob("*.nii.gz"))
    if mode == "standard":
        assert "sub-01/extra/sub-01_acq-DOEJANEnotes_run-4.json" in found
        assert "stdout" in found and any(n.startswith("logs/crash-") for n in found)
        assert extra == ["sub-01_acq-DOEJANEnotes_run-4.nii.gz"]
        return
    assert found == []
    assert extra == ["sub-01_acq-other_run-4.nii.gz"]
    assert (out / "sub-01" / "anat" / "sub-01_T1w.nii.gz").is_file()
    for sidecar in out.rglob("sub-01*.json"):
        data = json.loads(sidecar.read_text())
        assert not FREE_TEXT_KEYS & set(data)
        assert data["ConversionVerification"]["Agrees"] is True  # descriptions not compared
    assert b"FAILED sub-01: anatprep_wf.sub_01_wf.convert_acq_other_run_5" in done.stdout
    assert b"(in sub-01/gappy) cannot be converted" in done.stdout  # no description shown
    assert _hits(_texts(work)) == sorted(INDEX_FILES)  # what the README says the index keeps


def test_run_strict_with_dcm2niix(study, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    config = _conversion_config(tmp_path, conversion={"converter": "dcm2niix"})
    done = _cli("run", study, out, "--work-dir", work, "--config", config,
                "--deidentify", "strict")  # fmt: skip
    assert done.returncode == 4, done.stderr
    printed = {"stdout": done.stdout, "stderr": done.stderr}
    assert (out / "sub-01" / "extra" / "sub-01_acq-other_run-4.json").is_file()
    assert _hits(_texts(out)) + _hits(printed) + _hits(_texts(work, skip=INDEX_FILES)) == []


def _plans(study: Path, mode: str):
    from anatprep.interfaces.dicomio.index import index_tree

    cfg = Config.model_validate({"deidentify": mode})
    table = index_tree(study, folder_levels=5)
    return cfg, table, plan_subjects(table, cfg)


def test_conversion_node_inputs(study, tmp_path):
    """Strict: the node gets the entry without descriptions (files and fingerprints kept,
    so an edited file still reruns its series); standard: ``deidentify`` left unset, so the
    node's hash is what it was before the option existed (work dirs stay cached)."""
    from nipype.interfaces.base import isdefined

    from anatprep.pipelines.workflows.anat import init_subject_wf

    for mode in ("standard", "strict"):
        cfg, table, plans = _plans(study, mode)
        entries = table.by_id()
        wf = init_subject_wf(plans[0], entries=entries, output_dir=tmp_path, cfg=cfg)
        nodes = [wf.get_node(n) for n in wf.list_node_names() if n.startswith("convert_")]
        assert len(nodes) == 3
        for node in nodes:
            given = SeriesEntry.from_json(node.inputs.series_entry)
            full = entries[given.id]
            assert given.fingerprints == full.fingerprints and given.files == full.files
            if mode == "standard":
                assert given == full and not isdefined(node.inputs.deidentify)
            else:
                assert given == full.without_free_text() and node.inputs.deidentify == "strict"
                assert "jane" not in node.inputs.series_entry.lower()


def test_strict_names_by_rule_and_number(study):
    _, _, plans = _plans(study, "strict")
    stems = sorted((s.stem, s.description) for s in plans[0].series)
    assert stems == [
        ("sub-01_T1w", ""),
        ("sub-01_acq-other_run-4", ""),
        ("sub-01_acq-other_run-5", ""),
    ]
    assert SeriesEntry("sn004-x", folders=("sub-01",)).describe() == "series sn004-x (in sub-01)"


# --- every text value of a real series, in both converters and both modes -----------------

#: a Siemens mosaic series of the shared sets, with (0051,100E) and (0051,100F)
SIEMENS = "dcm_qa_nih/In/20180918Si/mr_0003"
#: text VRs and the value planted in each (valid for the VR; each searched for as it is)
PLANTED = {
    "PN": "Zqxplant^Person", "LO": "ZQXPLANT-LO Jane", "SH": "ZQXPLANT-SH", "ST": "ZQXPLANT-ST",
    "LT": "ZQXPLANT-LT", "UT": "ZQXPLANT-UT", "UC": "ZQXPLANT-UC", "AE": "ZQXPLANTAE",
    "DA": "19330517", "DT": "19330517111213", "TM": "111213.4242", "AS": "077Y",
}  # fmt: skip
SIEMENS_TEXT = {(0x0051, 0x100E): "ZQXPLANT-ORIENT", (0x0051, 0x100F): "ZQXPLANT-COIL Doe"}


def _plant(ds, keep: frozenset[str]) -> int:
    """Plant :data:`PLANTED` in every text element of ``ds`` and its sequences (private
    ones too, not their creators) whose keyword is not in ``keep``; the Siemens text tags
    get their own values.  Returns how many were planted."""
    planted = 0
    for elem in list(ds.iterall()):
        private_creator = elem.tag.is_private and elem.tag.element < 0x1000
        if elem.VR not in PLANTED or elem.keyword in keep or private_creator:
            continue
        elem.value = PLANTED[elem.VR]
        planted += 1
    for tag, text in SIEMENS_TEXT.items():
        assert tag in ds, tag
        ds[tag].VR, ds[tag].value = "LO", text
    return planted + len(SIEMENS_TEXT)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["strict", "standard"])
@pytest.mark.parametrize("converter", ["anatprep", "dcm2niix"])
def test_no_planted_text_value_reaches_any_output(tmp_path, data_dir, converter, mode):
    """Issue 22 item 5: the dcm2niix backend's sidecar was filtered by a deny-list, so
    Siemens' (0051,100F) and (0051,100E) carried a planted name into CoilString and
    ImageOrientationText.  Every text value that no allow-listed sidecar key is made from
    (in strict mode the descriptions too) is planted; none may reach an output or a line."""
    import pydicom

    from anatprep.interfaces.dicomio.sidecar import SIDECAR_FIELDS

    keep = {keyword for _key, keyword, _ in SIDECAR_FIELDS} | {"SpecificCharacterSet"}
    if mode == "strict":
        keep -= {"SeriesDescription", "ProtocolName"}
    src = tmp_path / "in" / "mosaic"
    src.mkdir(parents=True)
    for path in sorted((data_dir / "dicom" / SIEMENS).glob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert _plant(ds, frozenset(keep)) > 20
        ds.save_as(src / path.name)
    out = tmp_path / "out"
    done = _cli("convert", tmp_path / "in", out, "--deidentify", mode, "--converter", converter)
    assert done.returncode == 0, done.stderr
    texts = {**_texts(out), "stdout": done.stdout, "stderr": done.stderr}
    assert any(name.endswith(".json") for name in texts)
    values = [*PLANTED.values(), *SIEMENS_TEXT.values()]
    hits = [(name, v) for name, data in texts.items() for v in values if v.encode() in data]
    assert hits == []
