"""Derivatives by name: file names from BIDS entities, one sink per output, absent optional
outputs (no Atropos, no registration) written as nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anatprep.interfaces.bids_sink import ENTITY_ORDER, DerivativesDataSink, bids_name
from anatprep.interfaces.dicomio.table import SeriesEntry
from anatprep.pipelines.config import load_config
from anatprep.pipelines.rules import PlannedSeries, SubjectPlan
from anatprep.pipelines.workflows.anat import init_subject_wf
from anatprep.pipelines.workflows.derivatives import anat_derivatives, input_fields


def test_bids_name_from_entities():
    assert bids_name("sub-01_T1w.nii.gz", {"desc": "brain"}, "mask", ".nii.gz") == (
        "sub-01_desc-brain_mask.nii.gz"
    )
    # the source's entities first, then ours in BIDS order whatever the mapping's order
    xfm = {"desc": "affine", "mode": "image", "to": "T1w", "from": "ROBEX"}
    assert bids_name("sub-01/ses-a/anat/sub-01_ses-a_run-2_T1w.nii.gz", xfm, "xfm", ".mat") == (
        "sub-01_ses-a_run-2_from-ROBEX_to-T1w_mode-image_desc-affine_xfm.mat"
    )
    assert bids_name("sub-x_acq-mp2_T1w", {"label": "GM"}, "probseg", ".nii.gz") == (
        "sub-x_acq-mp2_label-GM_probseg.nii.gz"
    )
    assert bids_name("sub-01_T1w.nii.gz", {}, "T1w", ".json") == "sub-01_T1w.json"
    assert ENTITY_ORDER == ("from", "to", "mode", "label", "desc")


@pytest.mark.parametrize(
    ("source", "entities", "suffix", "extension", "message"),
    [
        ("sub-01_T1w.nii.gz", {"space": "MNI"}, "T1w", ".nii.gz", "unknown BIDS entities"),
        ("sub-01_desc-x_T1w.nii.gz", {"desc": "y"}, "T1w", ".nii.gz", "already has"),
        ("sub-01_T1w.nii.gz", {"desc": "a_b"}, "T1w", ".nii.gz", "letters and digits"),
        ("sub-01_T1w.nii.gz", {}, "T1-w", ".nii.gz", "suffix"),
        ("sub-01_T1w.nii.gz", {}, "T1w", "nii.gz", "extension"),
        ("T1w.nii.gz", {}, "mask", ".nii.gz", "not a BIDS file name"),
    ],
)
def test_bids_name_refuses(source, entities, suffix, extension, message):
    with pytest.raises(ValueError, match=message):
        bids_name(source, entities, suffix, extension)


def _sink(tmp_path: Path, in_file: str, **inputs) -> DerivativesDataSink:
    return DerivativesDataSink(
        in_file=in_file,
        base_dir=str(tmp_path / "deriv"),
        source_file="sub-01/ses-a/anat/sub-01_ses-a_T1w.nii.gz",
        **inputs,
    )


def test_sink_places_file_and_sidecar(tmp_path):
    src = tmp_path / "brain_mask.nii.gz"
    src.write_bytes(b"mask")
    res = _sink(
        tmp_path, str(src), entities={"desc": "brain"}, suffix="mask", extension=".nii.gz",
        metadata={"Type": "Brain", "Sources": ["bids:raw:x"]},
        meta_dict={"Sources": ["bids:raw:y"], "QualityFlags": []},
    ).run(cwd=str(tmp_path))  # fmt: skip
    dst = tmp_path / "deriv/sub-01/ses-a/anat/sub-01_ses-a_desc-brain_mask.nii.gz"
    assert res.outputs.out_file == str(dst) and dst.read_bytes() == b"mask"
    sidecar = dst.with_name("sub-01_ses-a_desc-brain_mask.json")
    assert res.outputs.out_meta == str(sidecar)
    # run-time values update the static ones, in the static ones' key order
    meta = json.loads(sidecar.read_text())
    assert list(meta) == ["Type", "Sources", "QualityFlags"]
    assert meta["Sources"] == ["bids:raw:y"]
    figure = _sink(tmp_path, str(src), datatype="figures", entities={"desc": "brain"},
                   suffix="mask", extension=".svg").run(cwd=str(tmp_path))  # fmt: skip
    svg = tmp_path / "deriv/sub-01/ses-a/figures/sub-01_ses-a_desc-brain_mask.svg"
    assert figure.outputs.out_file == str(svg) and figure.outputs.out_meta == ""
    assert not svg.with_suffix(".json").exists()


def test_absent_optional_output_writes_nothing(tmp_path):
    res = _sink(tmp_path, "", entities={"label": "CSF"}, suffix="probseg",
                extension=".nii.gz", metadata={"Description": "x"},
                allow_absent=True).run(cwd=str(tmp_path))  # fmt: skip
    assert res.outputs.out_file == res.outputs.out_meta == ""
    assert not (tmp_path / "deriv").exists()
    with pytest.raises(ValueError, match="no input file for sub-01_ses-a_desc-brain_mask"):
        _sink(tmp_path, "", entities={"desc": "brain"}, suffix="mask",
              extension=".nii.gz").run(cwd=str(tmp_path))  # fmt: skip


def test_sink_refuses_paths_outside_its_dataset(tmp_path):
    src = tmp_path / "f.nii.gz"
    src.write_bytes(b"x")
    sink = _sink(tmp_path, str(src), suffix="mask", extension=".nii.gz")
    sink.inputs.source_file = "../../anat/sub-01_T1w.nii.gz"
    with pytest.raises(ValueError, match="outside"):
        sink.run(cwd=str(tmp_path))


EXPECTED = {
    "ds_t1w_preproc": "anat/sub-01_ses-a_run-2_desc-preproc_T1w.nii.gz",
    "ds_brain_mask": "anat/sub-01_ses-a_run-2_desc-brain_mask.nii.gz",
    "ds_t1w_brain": "anat/sub-01_ses-a_run-2_desc-brain_T1w.nii.gz",
    "ds_probseg_csf": "anat/sub-01_ses-a_run-2_label-CSF_probseg.nii.gz",
    "ds_probseg_gm": "anat/sub-01_ses-a_run-2_label-GM_probseg.nii.gz",
    "ds_probseg_wm": "anat/sub-01_ses-a_run-2_label-WM_probseg.nii.gz",
    "ds_tpl2t1w_affine": "anat/sub-01_ses-a_run-2_from-ROBEX_to-T1w_mode-image_desc-affine_xfm.mat",
    "ds_tpl2t1w_warp": "anat/sub-01_ses-a_run-2_from-ROBEX_to-T1w_mode-image_desc-warp_xfm.nii.gz",
    "ds_report": "figures/sub-01_ses-a_run-2_desc-brain_mask.svg",
}


def test_one_sink_per_derivative_wired_by_name(tmp_path):
    cfg = load_config()
    stem = "sub-01_ses-a_run-2_T1w"
    plan = SubjectPlan("01", "a", "in", [PlannedSeries("s1", "anat", "T1w", stem, "t1")])
    entry = SeriesEntry(id="s1", files=("/in/a.dcm",), rows=8, columns=8, n_slices=4)
    wf = init_subject_wf(plan, entries={"s1": entry}, output_dir=tmp_path / "out", cfg=cfg)
    deriv = wf.get_node("deriv_run_2_T1w_wf")
    sinks = {n: deriv.get_node(n) for n in deriv.list_node_names() if n != "inputnode"}
    assert sorted(sinks) == sorted(EXPECTED)
    for name, node in sinks.items():
        i = node.inputs
        assert i.base_dir == str(tmp_path / "out" / "derivatives" / "anatprep")
        assert i.source_file == f"sub-01/ses-a/anat/{stem}.nii.gz"
        path = f"{i.datatype}/{bids_name(i.source_file, i.entities, i.suffix, i.extension)}"
        assert path == EXPECTED[name]
        assert i.allow_absent == name.startswith(("ds_probseg", "ds_tpl2t1w"))
    # every sink's file and run-time sidecar values come from anat_wf's output of that name
    edges = {
        (dst, src_field, dst_field)
        for _, dst, data in deriv._graph.in_edges(data=True)
        for src_field, dst_field in data["connect"]
    }
    by_sink = {(dst.name, f) for dst, f, field in edges if field == "in_file"}
    assert by_sink == {(f"ds_{f}", f) for f in (n.removeprefix("ds_") for n in EXPECTED)}
    meta = {(dst.name, f) for dst, f, field in edges if field == "meta_dict"}
    assert meta == {(f"ds_{f}", f"{f}_meta") for f in ("t1w_preproc", "brain_mask", "t1w_brain")}
    links = {
        data_link
        for src, dst, data in wf._graph.edges(data=True)
        if src.name == "anat_run_2_T1w_wf" and dst is deriv
        for data_link in data["connect"]
    }
    fields = input_fields(anat_derivatives(cfg, f"sub-01/ses-a/anat/{stem}.nii.gz"))
    assert links == {(f"outputnode.{f}", f"inputnode.{f}") for f in fields}
    # static sidecars: the probabilities say what they are, the transforms have none
    assert sinks["ds_probseg_gm"].inputs.metadata == {
        "Description": "Atropos posterior probability of GM",
        "Sources": [f"bids:raw:sub-01/ses-a/anat/{stem}.nii.gz"],
    }
    assert sinks["ds_tpl2t1w_warp"].inputs.metadata == {}
