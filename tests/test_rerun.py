"""Reruns on the same work dir: what changed in INPUT reruns exactly its series, nothing else.

Every conversion node hashes its own series' entry, the files' fingerprints (size, mtime,
header digest) included; so an in-place edit of a DICOM file (same path) reruns that series
and OUTPUT then holds the new image and sidecar, while a new subject reruns none of the
others' nodes (the run counts the nodes that ran).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pydicom
import pytest

from anatprep.pipelines.config import Config
from anatprep.pipelines.execution import run_study
from anatprep.pipelines.synthetic import write_series

pytestmark = pytest.mark.pipeline


def _subject(root: Path, label: str, value: float = 900.0) -> list[Path]:
    vol = np.full((16, 16, 6), 100.0)
    vol[4:10, 4:10, :] = value
    return write_series(
        vol, np.diag([1.0, 1.0, 2.0, 1.0]), root / f"sub-{label}" / "t1",
        study_key=label, meta={"RepetitionTime": "2.3"},
    )  # fmt: skip


def _converted(summary) -> set[str]:
    """The subject workflows (``sub_A``...) whose conversion node ran."""
    return {p.split("/")[0].removesuffix("_wf") for p in summary.nodes_run if "/convert_" in p}


@pytest.fixture
def study(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    files = {label: _subject(src, label) for label in ("A", "B")}
    cfg = Config.model_validate(
        {"brain_extraction": {"enabled": False}, "execution": {"n_procs": 2}}
    )
    first = run_study(src, out, cfg)
    assert first.exit_code == 0 and _converted(first) == {"sub_A", "sub_B"}
    return src, out, cfg, files


def _image(out: Path, label: str) -> tuple[np.ndarray, dict]:
    nii = next((out / f"sub-{label}").rglob("*.nii.gz"))
    return np.asanyarray(nb.load(nii).dataobj), json.loads(nii.with_suffix("").with_suffix(
        ".json").read_text())  # fmt: skip


def test_nothing_changed_reruns_no_conversion(study):
    src, out, cfg, _ = study
    again = run_study(src, out, cfg)
    assert again.exit_code == 0
    assert _converted(again) == set()
    assert again.nodes_total > len(again.nodes_run)


def test_pixels_edited_in_place_rerun_that_series_only(study):
    src, out, cfg, files = study
    path = files["A"][2]
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.copy()
    pixels[5, 5] = 4000
    ds.PixelData = pixels.tobytes()
    ds.save_as(path)  # same path, same size: only the content and mtime change
    again = run_study(src, out, cfg)
    assert _converted(again) == {"sub_A"}
    data, _ = _image(out, "A")
    assert data.max() == 4000
    assert _image(out, "B")[0].max() == 900


def test_header_value_edited_in_every_file_reaches_the_sidecar(study):
    src, out, cfg, files = study
    for path in files["A"]:
        ds = pydicom.dcmread(path)
        ds.RepetitionTime = "1234"
        ds.save_as(path)
    assert _image(out, "A")[1]["RepetitionTime"] == 0.0023
    again = run_study(src, out, cfg)
    assert _converted(again) == {"sub_A"}
    assert _image(out, "A")[1]["RepetitionTime"] == 1.234
    assert _image(out, "B")[1]["RepetitionTime"] == 0.0023


def test_a_new_subject_reruns_none_of_the_others(study):
    src, out, cfg, _ = study
    _subject(src, "C")
    again = run_study(src, out, cfg)
    assert again.exit_code == 0
    assert _converted(again) == {"sub_C"}
    assert list((out / "sub-C").rglob("*.nii.gz"))
