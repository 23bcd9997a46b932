"""Graph tests (sMRIPrep style): every ``init_*_wf`` factory built and never run.  For each,
the node names, the connections (source node.field -> destination node.field) and the config
values each node receives.  The subject graphs are built from a plan that the real indexing
and planning code makes of a tiny synthetic DICOM study, as a run makes it.

``execution.container`` never reaches the graph (the host builds one graph whatever runs it):
its tests check that the graph is the same with and without it, then follow it to where it
lands, the node jobs' Python (SLURM, SLURMGraph) and the subject tasks (MultiProc, Linear,
SLURMArray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from nipype.interfaces.base import isdefined
from nipype.pipeline import engine as pe

from anatprep.interfaces.atomic import DEFAULT_LEVEL
from anatprep.interfaces.brain_extraction import extraction_memory_gb
from anatprep.interfaces.dicomio.table import SeriesEntry
from anatprep.interfaces.templates import robex_template
from anatprep.pipelines import execution, subject_tasks, workflows
from anatprep.pipelines.config import Config, load_config
from anatprep.pipelines.container import ContainerLauncher
from anatprep.pipelines.provenance import ContainerInfo
from anatprep.pipelines.rules import plan_subjects, shown_table
from anatprep.pipelines.slurm import array
from anatprep.pipelines.slurm.plugins import SlurmGraphSubmitPlugin, SlurmNodesPlugin
from anatprep.pipelines.synthetic import write_series
from anatprep.pipelines.workflows import init_anat_wf, init_anatprep_wf, init_subject_wf
from anatprep.pipelines.workflows.derivatives import (
    DERIVATIVES,
    Derivative,
    init_anat_derivatives_wf,
)

Link = tuple[str, str, str, str]  # (source node, its field, destination node, its field)

#: the synthetic T1w volume (columns, rows, slices): the T1w rule wants 40 slices or more
T1W_SHAPE = (6, 5, 40)
#: an unclassified series (no rule matches): converted under extra/, never skull-stripped
BOLD_META = {
    "SeriesDescription": "ep2d_bold_rest",
    "ProtocolName": "ep2d_bold_rest",
    "SequenceName": "epfid2d1",
    "MRAcquisitionType": "2D",
}
#: free text of the study's series that ``deidentify: strict`` keeps out of the graph
DESCRIPTIONS = ("t1_mprage", "ep2d", "bold")


def links(wf: pe.Workflow) -> set[Link]:
    """The connections of ``wf``'s own graph (a sub-workflow is one node there; its fields
    read ``inputnode.<field>`` / ``outputnode.<field>``)."""
    return {
        (src.name, src_field, dst.name, dst_field)
        for src, dst, data in wf._graph.edges(data=True)
        for src_field, dst_field in data["connect"]
    }


def flat_links(wf: pe.Workflow) -> set[Link]:
    """The connections nipype runs (the flattened graph), each node named by its path below
    ``wf`` (``sub_01_wf.anat_T1w_wf.reorient``)."""
    graph = wf._create_flat_graph()
    return {
        (_below(wf, src), src_field, _below(wf, dst), dst_field)
        for src, dst, data in graph.edges(data=True)
        for src_field, dst_field in data["connect"]
    }


def _below(wf: pe.Workflow, node: pe.Node) -> str:
    return node.fullname.removeprefix(f"{wf.name}.")


def node_inputs(wf: pe.Workflow) -> dict[str, dict[str, Any]]:
    """Every node of the flattened graph by its path below ``wf`` -> the inputs set on it and
    the resources it declares: all a node gets from the factory's arguments."""
    return {
        _below(wf, node): {**given(node), "mem_gb": node.mem_gb, "n_procs": node.n_procs}
        for node in wf._create_flat_graph().nodes()
    }


def given(node: pe.Node) -> dict[str, Any]:
    """The inputs set on ``node`` (the unset ones left out)."""
    return node.inputs.get_traitsfree()


def _fields(node: pe.Node) -> set[str]:
    return set(node.inputs.copyable_trait_names())


# ---------------------------------------------------------------------------------------------
# the study: two subjects; sub-01 has a T1w and an unclassified series, sub-02 a T1w


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("graphs") / "in"
    t1w = np.arange(np.prod(T1W_SHAPE), dtype=float).reshape(T1W_SHAPE) % 500
    for subject in ("01", "02"):
        write_series(t1w, np.eye(4), root / subject / "t1", series_number=2, study_key=subject)
    write_series(np.ones((4, 4, 3)), np.eye(4), root / "01" / "s5", series_number=5,
                 meta=BOLD_META, study_key="01")  # fmt: skip
    return root


def planned(study: Path, work_dir: Path, cfg: Config):
    """(plans, entries by series id) as a run makes them (``execution._index_plan_run``):
    INPUT indexed, subjects planned, entries as ``deidentify`` allows the graph to see them."""
    table = execution.index_input(study, work_dir, cfg)
    return plan_subjects(table, cfg), shown_table(table, cfg).by_id()


def subject_wf(study: Path, tmp_path: Path, cfg: Config):
    """sub-01's graph, its plan and the entries."""
    plans, entries = planned(study, tmp_path / "work", cfg)
    plan = plans[0]
    wf = init_subject_wf(plan, entries=entries, output_dir=tmp_path / "out", cfg=cfg)
    return wf, plan, entries


# ---------------------------------------------------------------------------------------------
# init_anat_wf

ANAT_LINKS = {
    ("inputnode", "t1w", "reorient", "in_file"),
    ("inputnode", "title", "mask_report", "title"),
    ("reorient", "out_file", "brain_extraction", "in_file"),
    ("brain_extraction", "bias_corrected", "mask_report", "in_file"),
    ("brain_extraction", "out_mask", "mask_report", "mask_file"),
    ("mask_report", "out_report", "outputnode", "report"),
    *(
        ("brain_extraction", src, "outputnode", dst)
        for src, dst in [
            ("bias_corrected", "t1w_preproc"), ("bias_corrected_meta", "t1w_preproc_meta"),
            ("out_mask", "brain_mask"), ("out_mask_meta", "brain_mask_meta"),
            ("out_brain", "t1w_brain"), ("out_brain_meta", "t1w_brain_meta"),
            ("out_probseg_csf", "probseg_csf"), ("out_probseg_gm", "probseg_gm"),
            ("out_probseg_wm", "probseg_wm"), ("out_affine", "tpl2t1w_affine"),
            ("out_warp", "tpl2t1w_warp"), ("out_stats", "stats"),
        ]
    ),
}  # fmt: skip


def test_anat_wf_nodes_and_links():
    wf = init_anat_wf(load_config())
    assert wf.name == "anat_wf"
    assert set(wf.list_node_names()) == {
        "inputnode", "reorient", "brain_extraction", "mask_report", "outputnode",
    }  # fmt: skip
    assert links(wf) == ANAT_LINKS
    # every output is fed, and the inputs are the two the docstring names
    fed = {dst_field for _, _, dst, dst_field in ANAT_LINKS if dst == "outputnode"}
    assert _fields(wf.get_node("outputnode")) == fed
    assert _fields(wf.get_node("inputnode")) == {"t1w", "title"}


@pytest.mark.parametrize("quality", ["fast", "default", "precise"])
def test_anat_wf_brain_extraction_inputs(quality):
    """The preset and the run's settings reach the node as given; the preset is resolved
    (with ``parameters``' overrides) in the node, at run time."""
    cfg = load_config(overrides={
        "brain_extraction.quality": quality,
        "brain_extraction.random_seed": 7,
        "brain_extraction.num_threads": 3,
        "brain_extraction.volume_range_ml": [800, 2000],
        "brain_extraction.memory_gb": 3.0,
        "reorient.orientation": "LPS",
    })  # fmt: skip
    wf = init_anat_wf(cfg, name="anat_x_wf", n_voxels=64**3)
    assert wf.name == "anat_x_wf"
    bex = wf.get_node("brain_extraction")
    robex = robex_template()
    assert given(bex) == {
        "template_head": str(robex.head),
        "template_mask": str(robex.mask),
        "template_name": "robex",
        "quality": quality,
        "parameters": {},
        "random_seed": 7,
        "num_threads": 3,
        "volume_range_ml": (800.0, 2000.0),
    }
    # ITK's threads are the processors the node declares; the config's memory is the least
    assert (bex.n_procs, bex.mem_gb) == (3, 3.0)
    assert wf.get_node("reorient").inputs.orientation == "LPS"


def test_anat_wf_memory_follows_the_image_size():
    """``n_voxels`` sets the memory the node declares (unknown, 0: a whole 256^3 head's)."""
    cfg = load_config()
    small, unknown = extraction_memory_gb(64**3), extraction_memory_gb(0)
    assert small != unknown  # else this test could not tell them apart
    assert init_anat_wf(cfg, n_voxels=64**3).get_node("brain_extraction").mem_gb == small
    assert init_anat_wf(cfg).get_node("brain_extraction").mem_gb == unknown


def test_factories_take_their_options_by_keyword():
    with pytest.raises(TypeError, match="positional"):
        init_anat_wf(load_config(), "anat_wf")
    with pytest.raises(TypeError, match="positional"):
        init_anat_derivatives_wf([], Path("out"), "sub-01_T1w.nii.gz")


# ---------------------------------------------------------------------------------------------
# init_anat_derivatives_wf


def test_anat_derivatives_wf(tmp_path):
    """One sink per derivative, fed its file and, when it has one, its run-time sidecar
    values; each sink named from its entities beside the raw file."""
    derivatives = [
        Derivative("mask", "mask", ".nii.gz", {"desc": "brain"}, metadata={"Type": "Brain"},
                   meta_field="mask_meta"),
        Derivative("figure", "mask", ".svg", {"desc": "brain"}, datatype="figures",
                   optional=True),
    ]  # fmt: skip
    source = "sub-01/anat/sub-01_T1w.nii.gz"
    wf = init_anat_derivatives_wf(derivatives, output_dir=tmp_path, source_file=source)
    assert wf.name == "anat_derivatives_wf"
    assert set(wf.list_node_names()) == {"inputnode", "ds_mask", "ds_figure"}
    assert _fields(wf.get_node("inputnode")) == {"mask", "mask_meta", "figure"}
    assert links(wf) == {
        ("inputnode", "mask", "ds_mask", "in_file"),
        ("inputnode", "mask_meta", "ds_mask", "meta_dict"),
        ("inputnode", "figure", "ds_figure", "in_file"),
    }
    common = {"base_dir": str(tmp_path / DERIVATIVES), "source_file": source,
              "entities": {"desc": "brain"}, "suffix": "mask"}  # fmt: skip
    assert given(wf.get_node("ds_mask")) == {
        **common, "datatype": "anat", "extension": ".nii.gz", "metadata": {"Type": "Brain"},
        "allow_absent": False,
    }  # fmt: skip
    assert given(wf.get_node("ds_figure")) == {
        **common, "datatype": "figures", "extension": ".svg", "metadata": {},
        "allow_absent": True,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# init_subject_wf

#: sub-01's graph (sub-workflows as one node each): conversion and raw sink per series,
#: anat_wf and its derivatives for the T1w
SUBJECT_NODES = {
    "convert_T1w", "merge_raw_T1w", "sink_raw_T1w", "anat_T1w_wf", "deriv_T1w_wf",
    "convert_acq_ep2dboldrest_run_5", "merge_raw_acq_ep2dboldrest_run_5",
    "sink_raw_acq_ep2dboldrest_run_5",
}  # fmt: skip
DERIVED = [
    "t1w_preproc", "t1w_preproc_meta", "brain_mask", "brain_mask_meta", "t1w_brain",
    "t1w_brain_meta", "probseg_csf", "probseg_gm", "probseg_wm", "tpl2t1w_affine",
    "tpl2t1w_warp", "report",
]  # fmt: skip


def _raw_links(tag: str) -> set[Link]:
    return {
        (f"convert_{tag}", "out_file", f"merge_raw_{tag}", "in1"),
        (f"convert_{tag}", "out_json", f"merge_raw_{tag}", "in2"),
        (f"merge_raw_{tag}", "out", f"sink_raw_{tag}", "in_files"),
    }


def test_subject_wf_nodes_and_links(study, tmp_path):
    wf, plan, entries = subject_wf(study, tmp_path, load_config())
    assert plan.key == "sub-01" and wf.name == "sub_01_wf"
    assert set(wf.list_node_names()) >= {f"anat_T1w_wf.{n}" for n in ("reorient", "outputnode")}
    assert {n.split(".")[0] for n in wf.list_node_names()} == SUBJECT_NODES
    assert links(wf) == {
        *_raw_links("T1w"),
        *_raw_links("acq_ep2dboldrest_run_5"),
        ("convert_T1w", "out_file", "anat_T1w_wf", "inputnode.t1w"),
        *(("anat_T1w_wf", f"outputnode.{f}", "deriv_T1w_wf", f"inputnode.{f}") for f in DERIVED),
    }
    # the raw files land under their BIDS names; the figure is titled by its series
    out = tmp_path / "out" / "sub-01"
    sinks = {n: wf.get_node(f"sink_raw_{n}").inputs.out_files
             for n in ("T1w", "acq_ep2dboldrest_run_5")}  # fmt: skip
    assert sinks == {
        "T1w": [str(out / "anat" / f"sub-01_T1w{x}") for x in (".nii.gz", ".json")],
        "acq_ep2dboldrest_run_5": [
            str(out / "extra" / f"sub-01_acq-ep2dboldrest_run-5{x}") for x in (".nii.gz", ".json")
        ],
    }
    assert wf.get_node("anat_T1w_wf.inputnode").inputs.title == "sub-01_T1w: brain mask"
    derivatives = wf.get_node("deriv_T1w_wf.ds_t1w_preproc").inputs
    assert derivatives.source_file == "sub-01/anat/sub-01_T1w.nii.gz"
    # each conversion node gets its own series' entry, under its BIDS stem
    ids = {s.stem: s.series_id for s in plan.series}
    for node, stem in [
        ("convert_T1w", "sub-01_T1w"),
        ("convert_acq_ep2dboldrest_run_5", "sub-01_acq-ep2dboldrest_run-5"),
    ]:
        convert = wf.get_node(node).inputs
        assert (convert.out_stem, convert.series_entry) == (stem, entries[ids[stem]].to_json())


def test_subject_wf_brain_extraction_memory_from_the_series(study, tmp_path):
    """The T1w's size in the series table (rows x columns x slices) sets the memory of its
    brain-extraction node."""
    wf, *_ = subject_wf(study, tmp_path, load_config())
    voxels = int(np.prod(T1W_SHAPE))
    assert extraction_memory_gb(voxels) != extraction_memory_gb(0)  # else nothing is tested
    assert wf.get_node("anat_T1w_wf.brain_extraction").mem_gb == extraction_memory_gb(voxels)


@pytest.mark.parametrize(
    ("converter", "level", "verify"),
    [("anatprep", DEFAULT_LEVEL, False), ("anatprep", 1, True), ("dcm2niix", 9, False)],
)
def test_conversion_settings_reach_every_conversion_node(study, tmp_path, converter, level, verify):
    cfg = load_config(overrides={
        "conversion.converter": converter,
        "conversion.compression_level": level,
        "conversion.verify": verify,
    })  # fmt: skip
    wf, *_ = subject_wf(study, tmp_path, cfg)
    converts = [wf.get_node(n) for n in wf.list_node_names() if n.startswith("convert_")]
    assert len(converts) == 2
    for node in converts:
        assert (node.inputs.converter, node.inputs.compression, node.inputs.verify) == (
            converter, level, verify,
        )  # fmt: skip
    # the converter changes what a node runs, not the graph
    assert {n.split(".")[0] for n in wf.list_node_names()} == SUBJECT_NODES


def test_brain_extraction_off_converts_only(study, tmp_path):
    cfg = load_config(overrides={"brain_extraction.enabled": False})
    wf, *_ = subject_wf(study, tmp_path, cfg)
    assert set(wf.list_node_names()) == {n for n in SUBJECT_NODES if not n.endswith("_wf")}
    assert links(wf) == _raw_links("T1w") | _raw_links("acq_ep2dboldrest_run_5")


def test_atropos_off_reaches_the_node_and_keeps_optional_sinks(study, tmp_path):
    """``parameters: {atropos: false}`` reaches the brain-extraction node, which then gives
    '' for each probability map; their sinks stay in the graph as optional ones, which write
    nothing for '' (the graph does not depend on the parameters)."""
    on = subject_wf(study, tmp_path / "on", load_config())[0]
    cfg = load_config(overrides={"brain_extraction.parameters": {"atropos": False}})
    wf, *_ = subject_wf(study, tmp_path / "off", cfg)
    assert on.get_node("anat_T1w_wf.brain_extraction").inputs.parameters == {}
    assert wf.get_node("anat_T1w_wf.brain_extraction").inputs.parameters == {"atropos": False}
    probsegs = [f"deriv_T1w_wf.ds_probseg_{t}" for t in ("csf", "gm", "wm")]
    assert all(wf.get_node(n).inputs.allow_absent is True for n in probsegs)
    assert flat_links(wf) == flat_links(on)


@pytest.mark.parametrize("mode", ["standard", "strict"])
def test_deidentify_keeps_descriptions_out_of_the_graph(study, tmp_path, mode):
    """Strict: no node name or input anywhere in the graph holds a series description (the
    unclassified series is ``acq-other``); standard keeps them (so the check can fail)."""
    cfg = load_config(overrides={"deidentify": mode})
    wf, *_ = subject_wf(study, tmp_path, cfg)
    text = repr(node_inputs(wf)).lower()
    found = [d for d in DESCRIPTIONS if d in text]
    if mode == "strict":
        assert found == []
        assert "convert_acq_other_run_5" in wf.list_node_names()
        for name in wf.list_node_names():
            if name.startswith("convert_"):
                node = wf.get_node(name)
                entry = SeriesEntry.from_json(node.inputs.series_entry)
                assert entry == entry.without_free_text() and node.inputs.deidentify == "strict"
    else:
        assert found == list(DESCRIPTIONS)
        assert not isdefined(wf.get_node("convert_T1w").inputs.deidentify)


# ---------------------------------------------------------------------------------------------
# init_anatprep_wf


def test_anatprep_wf_one_independent_subgraph_per_subject(study, tmp_path):
    cfg = load_config(overrides={"conversion.compression_level": 3})
    plans, entries = planned(study, tmp_path / "work", cfg)
    assert [p.key for p in plans] == ["sub-01", "sub-02"]
    wf = init_anatprep_wf(
        plans, entries=entries, output_dir=tmp_path / "out", work_dir=tmp_path / "w", cfg=cfg
    )
    assert (wf.name, wf.base_dir) == ("anatprep_wf", str(tmp_path / "w"))
    assert {n.split(".")[0] for n in wf.list_node_names()} == {"sub_01_wf", "sub_02_wf"}
    assert links(wf) == set()
    # each subject's subgraph is the one init_subject_wf makes of it: the same connections
    # (none across subjects) and the same inputs on every node
    flat, inputs = flat_links(wf), node_inputs(wf)
    for plan in plans:
        alone = init_subject_wf(plan, entries=entries, output_dir=tmp_path / "out", cfg=cfg)
        prefix = f"{alone.name}."
        assert {
            (s.removeprefix(prefix), sf, d.removeprefix(prefix), df)
            for s, sf, d, df in flat
            if s.startswith(prefix) or d.startswith(prefix)
        } == {(s, sf, d, df) for s, sf, d, df in flat_links(alone)}
        mine = {k.removeprefix(prefix): v for k, v in inputs.items() if k.startswith(prefix)}
        assert mine == node_inputs(alone)
    assert {v["compression"] for k, v in inputs.items() if ".convert_" in k} == {3}


# ---------------------------------------------------------------------------------------------
# execution.container: not in the graph; in the node jobs' Python and the subject tasks

CONTAINER = {"engine": "podman", "image": "anatprep:test"}


def test_container_never_reaches_the_graph(study, tmp_path):
    host = load_config(overrides={"execution.plugin": "SLURM"})
    boxed = load_config(overrides={"execution.plugin": "SLURM", "execution.container": CONTAINER})
    graphs = []
    for cfg in (host, boxed):
        plans, entries = planned(study, tmp_path / "work", cfg)
        graphs.append(init_anatprep_wf(
            plans, entries=entries, output_dir=tmp_path / "out", work_dir=tmp_path / "w", cfg=cfg
        ))  # fmt: skip
    assert node_inputs(graphs[0]) == node_inputs(graphs[1])
    assert flat_links(graphs[0]) == flat_links(graphs[1])


def _launcher(study: Path, output_dir: Path, work_dir: Path) -> ContainerLauncher:
    """A launcher as ``execution._container`` makes it, without asking an engine."""
    info = ContainerInfo("podman", "anatprep:test", "sha256:" + "1" * 64)
    return ContainerLauncher("podman", "/usr/bin/podman", "sha256:" + "2" * 64, info,
                             read_only=(str(study),),
                             read_write=(str(output_dir), str(work_dir)))  # fmt: skip


@pytest.mark.parametrize("plugin", ["MultiProc", "Linear", "SLURM", "SLURMGraph", "SLURMArray"])
def test_container_lands_in_the_execution_layer(study, tmp_path, monkeypatch, plugin):
    """SLURM / SLURMGraph: the host's graph, each node's job script run by the image's Python.
    MultiProc / Linear / SLURMArray: no graph here; one task per subject in the image, whose
    own run builds its subject's graph with no container.  Nothing runs: the workflow's run
    and the task runners are replaced by recorders."""
    out, work = tmp_path / "out", tmp_path / "work"
    cfg = load_config(overrides={"execution.plugin": plugin, "execution.container": CONTAINER})
    launcher = _launcher(study, out, work)
    seen: dict[str, Any] = {}

    def run(self, plugin=None, plugin_args=None, updatehash=False):
        seen["graph"], seen["plugin"] = self, plugin

    def run_local(tables, input_dir, output_dir, work_dir, cfg, launcher):
        seen["tasks"], seen["launcher"] = sorted(tables), launcher
        return {}

    def run_array(tables, input_dir, output_dir, work_dir, cfg, python=None, image_digest=""):
        seen["tasks"], seen["python"], seen["digest"] = sorted(tables), python, image_digest
        return {}

    def no_graph(*args, **kwargs):
        raise AssertionError("the host builds no graph when subject tasks run in the image")

    monkeypatch.setattr(pe.Workflow, "run", run)
    monkeypatch.setattr(subject_tasks, "run_local", run_local)
    monkeypatch.setattr(array, "run_array", run_array)
    if plugin not in ("SLURM", "SLURMGraph"):
        monkeypatch.setattr(workflows, "init_anatprep_wf", no_graph)
    summary = execution._index_plan_run(study, out, work, cfg, None, None, launcher)
    assert summary.subjects == ["sub-01", "sub-02"] and summary.failures == []
    image_python = launcher.python(str(work))
    if plugin in ("SLURM", "SLURMGraph"):
        kind = SlurmNodesPlugin if plugin == "SLURM" else SlurmGraphSubmitPlugin
        assert type(seen["plugin"]) is kind and seen["graph"].name == "anatprep_wf"
        assert seen["plugin"]._run_line("/w/pyscript.py").split() == [
            *image_python, "/w/pyscript.py",
        ]  # fmt: skip
        return
    assert seen["tasks"] == ["01", "02"]
    if plugin == "SLURMArray":
        assert (seen["python"], seen["digest"]) == (image_python, launcher.info.digest)
    else:
        assert seen["launcher"] == launcher
    task = yaml.safe_load(subject_tasks.task_config(cfg))["execution"]
    assert (task["container"], task["plugin"]) == (None, "MultiProc")


def test_the_study_is_planned_as_a_run_plans_it(study, tmp_path):
    """What the graphs above are built from (no hand-made records): two subjects, the
    unclassified series under extra/."""
    plans, _ = planned(study, tmp_path / "work", load_config())
    assert [[(s.stem, s.datatype) for s in p.series] for p in plans] == [
        [("sub-01_T1w", "anat"), ("sub-01_acq-ep2dboldrest_run-5", "extra")],
        [("sub-02_T1w", "anat")],
    ]
