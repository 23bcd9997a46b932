"""A failed node's account names the outputs it kept from being written: the sinks
downstream of it in the graph nipype runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anatprep.interfaces.dicomio.table import SeriesEntry
from anatprep.pipelines.config import load_config
from anatprep.pipelines.rules import PlannedSeries, SubjectPlan
from anatprep.pipelines.synthetic import write_series
from anatprep.pipelines.unwritten import flat_graph, unwritten
from anatprep.pipelines.workflows import init_anatprep_wf

REPO = Path(__file__).resolve().parents[1]
SUBJECT = "anatprep_wf.sub_01_wf."
DERIVED = [
    "sub-01_desc-preproc_T1w.nii.gz", "sub-01_desc-brain_mask.nii.gz",
    "sub-01_desc-brain_T1w.nii.gz",
]  # fmt: skip


def _graph(tmp_path):
    """A T1w (brain extraction on: built, never run) and an unclassified series."""
    plan = SubjectPlan("01", None, "in", [
        PlannedSeries("s1", "anat", "T1w", "sub-01_T1w", "t1"),
        PlannedSeries("s2", "extra", "", "sub-01_acq-loc_run-2", "loc"),
    ])  # fmt: skip
    entries = {s: SeriesEntry(id=s, files=("/in/a.dcm",), rows=8, columns=8, n_slices=4)
               for s in ("s1", "s2")}  # fmt: skip
    wf = init_anatprep_wf([plan], entries=entries, output_dir=tmp_path / "out",
                          work_dir=tmp_path / "work", cfg=load_config())  # fmt: skip
    return flat_graph(wf)


def test_a_failed_node_names_the_files_downstream_of_it(tmp_path):
    graph = _graph(tmp_path)
    convert = unwritten(graph, SUBJECT + "convert_T1w")
    assert convert[:2] == ["sub-01_T1w.nii.gz", "sub-01_T1w.json"]
    assert set(DERIVED) <= set(convert)
    assert "sub-01_label-GM_probseg.nii.gz (optional)" in convert
    assert not any("acq-loc" in name for name in convert)  # the other series is not below it
    extraction = unwritten(graph, SUBJECT + "anat_T1w_wf.brain_extraction")
    assert set(DERIVED) <= set(extraction) and "sub-01_T1w.nii.gz" not in extraction
    assert "sub-01_desc-brain_mask.svg" in unwritten(graph, SUBJECT + "anat_T1w_wf.mask_report")
    assert unwritten(graph, SUBJECT + "sink_raw_acq_loc_run_2") == [
        "sub-01_acq-loc_run-2.nii.gz", "sub-01_acq-loc_run-2.json"
    ]
    assert unwritten(graph, "anatprep_wf.sub_02_wf.convert_T1w") == []


@pytest.mark.pipeline
def test_the_account_names_them(tmp_path):
    """A conversion-only run whose one series fails (a missing slice): its files are named."""
    files = write_series(np.ones((8, 8, 6)), np.eye(4), tmp_path / "in" / "01" / "t1",
                         meta={"SeriesDescription": "localizer"})  # fmt: skip
    files[3].unlink()
    done = subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(tmp_path / "in"),
         str(tmp_path / "out"), "--config", str(REPO / "configs" / "fast-conversion-only.yaml")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert (
        "  therefore not written: sub-01_acq-localizer_run-1.nii.gz, "
        "sub-01_acq-localizer_run-1.json\n"
    ) in done.stdout
