"""Provenance: GeneratedBy (deterministic, with the container when run in one), a run record
per run under ``derivatives/anatprep/logs/run-*`` (config and its hash, command, packages,
executor, times, input series digests), the methods text, and ``anatprep provenance OUTPUT
[INPUT]``, which says which input series changed since the run.  Conversion only (fast)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import tool

from anatprep import CODE_URL, __version__
from anatprep.pipelines import provenance
from anatprep.pipelines.cli import main
from anatprep.pipelines.config import Config
from anatprep.pipelines.execution import run_study
from anatprep.pipelines.exitcodes import EXIT_INPUT_CHANGED, EXIT_NO_DATA, EXIT_OK
from anatprep.pipelines.methods import methods_text
from anatprep.pipelines.synthetic import FAKE_PHI, write_series

CONTAINER_VARS = (provenance.IMAGE_ENV, provenance.DIGEST_ENV, provenance.ENGINE_ENV,
                  *provenance.APPTAINER_ENVS, "container")  # fmt: skip


@pytest.fixture(autouse=True)
def _no_container(monkeypatch):
    """Tests run as on a host, whatever the environment they run in."""
    for name in CONTAINER_VARS:
        monkeypatch.delenv(name, raising=False)


def _subject(root: Path, label: str) -> list[Path]:
    vol = np.full((16, 16, 6), 100.0)
    vol[4:10, 4:10, :] = 900.0
    return write_series(vol, np.diag([1.0, 1.0, 2.0, 1.0]), root / f"sub-{label}" / "t1",
                        study_key=label, meta={"RepetitionTime": "2.3"})  # fmt: skip


def _cfg(**conversion) -> Config:
    return Config.model_validate({
        "brain_extraction": {"enabled": False},
        "execution": {"n_procs": 2},
        "conversion": conversion,
    })  # fmt: skip


def _records(out: Path) -> list[dict]:
    paths = sorted((out / provenance.LOGS_DIR).glob("run-*/provenance.json"))
    return [json.loads(p.read_text()) for p in paths]


#: fixtures of this module whose users run a pipeline (tests/conftest.py marks them)
MARKED_FIXTURES = {"study": "pipeline"}


@pytest.fixture
def study(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    files = {label: _subject(src, label) for label in ("A", "B")}
    summary = run_study(src, out, _cfg(), command=["anatprep", "run", str(src), str(out)])
    assert summary.exit_code == 0
    return src, out, files


def test_run_record_fields_and_types(study):
    src, out, files = study
    (record,) = _records(out)
    assert record["record_version"] == provenance.RECORD_VERSION
    assert record["run_id"].startswith("run-") and record["anatprep_version"] == __version__
    assert record["code_url"] == CODE_URL
    assert record["command"] == ["anatprep", "run", str(src), str(out)]
    for key in ("started", "finished"):  # UTC, ISO 8601
        assert record[key].endswith("Z") and record[key][10] == "T"
    assert record["started"] <= record["finished"] and record["exit_code"] == 0
    # the resolved config, and the sha256 of exactly that text
    assert "brain_extraction:\n  enabled: false" in record["config_yaml"]
    assert record["config_sha256"] == provenance.config_sha256(_cfg())[1]
    packages = record["packages"]
    assert list(packages) == sorted(packages, key=str.lower)
    assert {"nipype", "nibabel", "pydicom", "numpy"} <= set(packages)
    assert all(isinstance(v, str) and v for v in packages.values())
    ex = record["executor"]
    assert ex["plugin"] == "MultiProc" and ex["n_procs"] == 2
    assert isinstance(ex["cpu_count"], int) and ex["python"] and ex["platform"]
    assert ex["container"] is None
    assert record["input_root"] == str(src)
    inputs = record["inputs"]
    assert len(inputs) == 2
    for item in inputs:
        assert set(item) == {"id", "output", "n_files", "n_bytes", "sha256", "status", "error"}
        assert item["error"] is None
        assert item["status"] == "converted" and item["n_files"] == 6
        assert len(item["sha256"]) == 64 and item["n_bytes"] > 0
        assert (out / f"{item['output']}.nii.gz").is_file()
    by_output = {item["output"].split("/")[0]: item for item in inputs}
    assert by_output["sub-A"]["n_bytes"] == sum(p.stat().st_size for p in files["A"])
    # no header text (patient fields, descriptions) in the record
    text = json.dumps(record)
    assert not [v for v in FAKE_PHI.values() if len(v) > 3 and v in text]
    # the methods text beside it, and the latest one in logs/
    run_dir = out / provenance.LOGS_DIR / record["run_id"]
    methods = (run_dir / "CITATION.md").read_text()
    assert methods == (out / provenance.LOGS_DIR / "CITATION.md").read_text()
    assert methods == methods_text(_cfg())


def test_config_hash_follows_the_config(study):
    src, out, _ = study
    assert provenance.config_sha256(_cfg())[1] != provenance.config_sha256(
        _cfg(compression_level=6)
    )[1]
    assert run_study(src, out, _cfg(compression_level=6)).exit_code == 0
    first, second = _records(out)
    assert first["run_id"] != second["run_id"]
    assert first["config_sha256"] != second["config_sha256"]
    assert "compression_level: 6" in second["config_yaml"]
    # the input did not change: the same digests
    assert first["inputs"] == second["inputs"]


def test_provenance_command_flags_a_changed_input_file(study, capsys):
    src, out, files = study
    capsys.readouterr()
    assert main(["provenance", str(out), str(src)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "2 unchanged, 0 changed, 0 missing, 0 new" in text and "sha256" in text
    # same bytes, new time: content unchanged, not flagged
    os.utime(files["B"][0], ns=(1, 1))
    assert main(["provenance", str(out), str(src)]) == EXIT_OK
    capsys.readouterr()
    # one byte of one file's pixel data (the file's last bytes): its series only
    victim = files["A"][3]
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0x01
    victim.write_bytes(bytes(data))
    assert main(["provenance", str(out), str(src)]) == EXIT_INPUT_CHANGED
    lines = capsys.readouterr().out.splitlines()
    changed = [ln for ln in lines if ln.strip().startswith("CHANGED")]
    assert len(changed) == 1 and "sub-A/" in changed[0], lines
    assert not [ln for ln in lines if "sub-B/" in ln and "CHANGED" in ln]
    assert "1 unchanged, 1 changed, 0 missing, 0 new" in "\n".join(lines)


def test_provenance_command_flags_missing_and_new_series(study, capsys):
    src, out, files = study
    for path in files["B"]:
        path.unlink()
    _subject(src, "C")
    capsys.readouterr()
    assert main(["provenance", str(out), str(src)]) == EXIT_INPUT_CHANGED
    text = capsys.readouterr().out
    assert "1 unchanged, 0 changed, 1 missing, 1 new" in text
    assert any(ln.strip().startswith("MISSING") and "sub-B/" in ln for ln in text.splitlines())


def test_provenance_command_without_record(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert main(["provenance", str(tmp_path / "out")]) == EXIT_NO_DATA
    assert "no run record" in capsys.readouterr().err


def test_provenance_command_prints_all_records(study, capsys):
    src, out, _ = study
    assert run_study(src, out, _cfg()).exit_code == 0
    capsys.readouterr()
    assert main(["provenance", str(out)]) == EXIT_OK
    assert capsys.readouterr().out.count("  command   ") == 1
    assert main(["provenance", str(out), "--all"]) == EXIT_OK
    assert capsys.readouterr().out.count("  command   ") == 2


@pytest.mark.pipeline
def test_generated_by_is_deterministic_and_names_the_code(tmp_path):
    descriptions = []
    for name in ("one", "two"):
        src, out = tmp_path / name / "in", tmp_path / name / "out"
        _subject(src, "A")
        assert run_study(src, out, _cfg()).exit_code == 0
        raw = (out / "dataset_description.json").read_bytes()
        deriv = (out / "derivatives" / "anatprep" / "dataset_description.json").read_bytes()
        descriptions.append((raw, deriv, (out / provenance.LOGS_DIR / "CITATION.md").read_bytes()))
        for text in (raw, deriv):
            (generated,) = json.loads(text)["GeneratedBy"]
            assert generated == {"Name": "anatprep", "Version": __version__, "CodeURL": CODE_URL}
    assert descriptions[0] == descriptions[1]


def test_container_detection():
    assert provenance.detect_container({}) is None
    oci = provenance.detect_container({
        provenance.IMAGE_ENV: "anatprep:0.1.0",
        provenance.DIGEST_ENV: "sha256:" + "ab" * 32,
        "container": "podman",
    })  # fmt: skip
    assert oci is not None and oci.type == "podman" and oci.tag == "anatprep:0.1.0"
    assert oci.bids() == {"Type": "podman", "Tag": "anatprep:0.1.0",
                          "URI": "docker://anatprep:0.1.0@sha256:" + "ab" * 32}  # fmt: skip
    # the SIF made from the OCI image keeps its variables; Apptainer's own one decides
    from_oci = provenance.detect_container({"APPTAINER_CONTAINER": "/images/a.sif",
                                            provenance.IMAGE_ENV: "anatprep:0.1.0"})  # fmt: skip
    assert from_oci is not None and (from_oci.type, from_oci.tag) == ("apptainer",
                                                                      "anatprep:0.1.0")  # fmt: skip
    # ... unless whoever started it names the engine (execution.container: the host records
    # the same container as its tasks)
    named = provenance.detect_container({"SINGULARITY_CONTAINER": "/images/a.sif",
                                         provenance.IMAGE_ENV: "a.sif",
                                         provenance.ENGINE_ENV: "apptainer"})  # fmt: skip
    assert named is not None and (named.type, named.tag) == ("apptainer", "a.sif")
    sif = provenance.detect_container({"APPTAINER_CONTAINER": "/images/anatprep.sif"})
    assert sif is not None and (sif.type, sif.tag, sif.sif) == (
        "apptainer", "anatprep.sif", "/images/anatprep.sif"
    )
    assert "URI" not in sif.bids()  # no digest given: no URI claimed
    (entry,) = provenance.generated_by(oci)
    assert entry["Container"]["Tag"] == "anatprep:0.1.0"


@pytest.mark.pipeline
def test_container_in_outputs_and_bids_valid(tmp_path, monkeypatch):
    """Inside a container GeneratedBy names the image; the run records and methods text
    under derivatives/anatprep/logs keep the dataset valid BIDS (validator, recursive)."""
    monkeypatch.setenv(provenance.IMAGE_ENV, "anatprep:0.1.0")
    monkeypatch.setenv(provenance.DIGEST_ENV, "sha256:" + "cd" * 32)
    monkeypatch.setenv(provenance.ENGINE_ENV, "podman")
    src, out = tmp_path / "in", tmp_path / "out"
    _subject(src, "A")
    assert run_study(src, out, _cfg()).exit_code == 0
    deriv = json.loads((out / "derivatives" / "anatprep" / "dataset_description.json").read_text())
    assert deriv["GeneratedBy"][0]["Container"]["Type"] == "podman"
    (record,) = _records(out)
    assert record["executor"]["container"]["digest"] == "sha256:" + "cd" * 32
    res = subprocess.run([tool("bids-validator-deno"), str(out), "-r", "--format", "json"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    issues = json.loads(res.stdout)["issues"]["issues"]
    assert [i for i in issues if i["severity"] == "error"] == []


def test_methods_text_follows_the_config():
    default = methods_text(Config())
    assert "Anatomical processing" in default and "[atropos]" in default
    assert "50x30x5 iterations" in default and "ROBEX" in default
    overrides = {"syn_iterations": [100, 70, 20], "syn_shrink_factors": [4, 2, 1],
                 "atropos": False}  # fmt: skip
    tuned = methods_text(Config.model_validate(
        {"brain_extraction": {"quality": "fast", "parameters": overrides}}
    ))  # fmt: skip
    assert "100x70x20 iterations at shrink factors 4x2x1" in tuned
    assert "quality preset `fast`" in tuned and "No tissue segmentation" in tuned
    assert "[atropos]" not in tuned
    conversion = methods_text(_cfg())
    assert "Anatomical processing" not in conversion and "[syn]" not in conversion
    assert methods_text(Config()) == default  # no time, nothing random


def test_input_digests_are_cached_by_fingerprint(study, monkeypatch):
    """A no-op rerun reads no input file again to digest it; an edited file is re-read."""
    src, out, files = study
    read: list[str] = []
    real = provenance.file_sha256

    def counting(path):
        read.append(str(path))
        return real(path)

    monkeypatch.setattr(provenance, "file_sha256", counting)
    assert run_study(src, out, _cfg()).exit_code == 0
    assert read == []
    victim = files["B"][2]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x01
    victim.write_bytes(bytes(data))
    assert run_study(src, out, _cfg()).exit_code == 0
    assert read == [str(victim)]
    first, _, third = _records(out)
    changed = [a["output"] for a, b in zip(first["inputs"], third["inputs"], strict=True)
               if a["sha256"] != b["sha256"]]  # fmt: skip
    assert changed == [o for o in changed if o.startswith("sub-B/")] and len(changed) == 1


def test_is_run_record():
    logs = "derivatives/anatprep/logs"
    assert provenance.is_run_record(f"{logs}/run-20260101T000000Z/provenance.json")
    assert provenance.is_run_record(f"{logs}/run-20260101T000000Z-2/CITATION.md")
    assert not provenance.is_run_record("derivatives/anatprep/logs/CITATION.md")
    assert not provenance.is_run_record("sub-01/anat/sub-01_T1w.nii.gz")


def test_an_unreadable_input_file_is_named_not_fatal(study, monkeypatch):
    """A file that vanished after indexing: its series has no digest and names the file;
    the run still ends with its own exit code and record."""
    src, out, files = study
    real = provenance.file_sha256
    victim = str(files["A"][1])

    def vanishing(path):
        if str(path) == victim:
            raise FileNotFoundError(2, "No such file or directory", victim)
        return real(path)

    monkeypatch.setattr(provenance, "file_sha256", vanishing)
    victim_path = files["A"][1]
    victim_path.write_bytes(victim_path.read_bytes())  # new mtime: no cached digest
    assert run_study(src, out, _cfg()).exit_code == 0
    record = _records(out)[-1]
    (bad,) = [s for s in record["inputs"] if s["sha256"] is None]
    assert bad["output"].startswith("sub-A/") and victim in bad["error"]
