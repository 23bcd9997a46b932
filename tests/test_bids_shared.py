"""``anatprep run`` over every shared DICOM set at once (one subject per set, conversion
only): the official BIDS validator reports no error, and every series is accounted for.

Five of the sets hold copies of the same DICOM series (dcm_qa_stc collects slice-timing
series from the others): one series in two subjects' folders is an error that names both
folders, and the user's remedy is ``labels.subject_map``; the run here applies it, as a
user would."""

from __future__ import annotations

import json
import subprocess
import tempfile

import pytest
from conftest import REPO, tool

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def shared_run(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    study = root / "in"
    study.mkdir()
    for folder in sorted((data_dir / "dicom").glob("dcm_qa_*/In")):
        (study / folder.parent.name).symlink_to(folder, target_is_directory=True)
    out = root / "out"
    config = root / "config.yaml"
    shared = ("dcm_qa_enh", "dcm_qa_fmap", "dcm_qa_mosaic", "dcm_qa_stc", "dcm_qa_ts")
    config.write_text(
        (REPO / "configs" / "fast-conversion-only.yaml").read_text()
        + "labels:\n  subject_map:\n"
        + "".join(f"    {name}: overlap\n" for name in shared)
    )
    done = subprocess.run(
        [tool("anatprep"), "run", str(study), str(out), "--n-procs", "2",
         "--config", str(config)],
        capture_output=True, text=True, timeout=1200, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    return done, out


def test_run_accounts_for_every_series(shared_run):
    done, out = shared_run
    assert done.returncode in (0, 4), done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    head = next(ln for ln in done.stdout.splitlines() if ln.startswith("series: "))
    converted = int(head.split()[1])
    assert converted >= 70 and head.endswith(" 0 failed"), head
    assert len(list(out.glob("sub-*/*/*.nii.gz"))) == converted


def test_validator_reports_no_error(shared_run):
    _, out = shared_run
    res = subprocess.run(
        [tool("bids-validator-deno"), str(out), "--format", "json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    issues = json.loads(res.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert not errors, errors[:5]
    assert (out / "sub-dcmqage" / "extra").is_dir()  # the validator saw the extra/ folders
