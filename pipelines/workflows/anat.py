"""Workflow factories (niworkflows style): every factory returns a Workflow with an
``inputnode`` and/or ``outputnode``; connections are given as one list of tuples."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from anatprep.interfaces.bids_sink import BidsSink
from anatprep.interfaces.brain_extraction import AntsBrainExtraction, extraction_memory_gb
from anatprep.interfaces.convert import DicomToNifti
from anatprep.interfaces.dicomio.table import SeriesEntry
from anatprep.interfaces.qc import MaskReport
from anatprep.interfaces.reorient import Reorient
from anatprep.interfaces.templates import resolve_template

from ..config import Config
from ..rules import PlannedSeries, SubjectPlan, shown_entry
from .derivatives import anat_derivatives, init_anat_derivatives_wf, input_fields


def node_name(text: str) -> str:
    """A nipype-safe node or workflow name."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def series_tag(plan: SubjectPlan, series: PlannedSeries) -> str:
    """The node-name part of one series' nodes (``convert_<tag>``, ``sink_raw_<tag>``...)."""
    return node_name(series.stem.removeprefix(plan.key).strip("_")) or "series"


@dataclass(frozen=True)
class SeriesSize:
    """What the series table says of a series' size, for the memory its nodes declare."""

    files: int = 1
    voxels: int = 0  # rows x columns x slices of one volume (0: unknown)

    @classmethod
    def of(cls, entry: SeriesEntry) -> SeriesSize:
        rows, cols, slices = (int(v or 0) for v in (entry.rows, entry.columns, entry.n_slices))
        return cls(files=max(1, len(entry.files)), voxels=rows * cols * slices)


def init_anat_wf(cfg: Config, *, name: str = "anat_wf", n_voxels: int = 0) -> pe.Workflow:
    """Reorient a converted T1w, extract the brain with ANTs and draw the QC figure.

    Inputs (``inputnode``): ``t1w`` (NIfTI from the converter), ``title`` (figure title).
    Outputs (``outputnode``): ``t1w_preproc`` (reoriented, bias corrected), ``brain_mask``,
    ``t1w_brain``, each with ``<name>_meta`` (its sidecar values known only after the run);
    ``probseg_csf``, ``probseg_gm``, ``probseg_wm`` (``''`` each when Atropos is off);
    ``tpl2t1w_affine`` (``.mat``) and ``tpl2t1w_warp`` (template to T1w; ``''`` each when
    the input was already skull-stripped); ``report`` (SVG), ``stats`` (JSON).
    ``n_voxels`` (the T1w's size, 0 when unknown) sets the memory the brain-extraction node
    declares (:func:`anatprep.interfaces.brainmask.resources.memory_gb`, never below the
    config's ``memory_gb``).
    """
    bex_cfg = cfg.brain_extraction
    template = resolve_template(
        bex_cfg.template, bex_cfg.template_head, bex_cfg.template_mask,
        bex_cfg.template_resolution,
    )  # fmt: skip
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w", "title"]), name="inputnode")
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=["t1w_preproc", "t1w_preproc_meta", "brain_mask", "brain_mask_meta",
                    "t1w_brain", "t1w_brain_meta", "probseg_csf", "probseg_gm", "probseg_wm",
                    "tpl2t1w_affine", "tpl2t1w_warp", "report", "stats"]
        ),
        name="outputnode",
    )  # fmt: skip
    reorient = pe.Node(Reorient(orientation=cfg.reorient.orientation), name="reorient", mem_gb=1.0)
    bex = pe.Node(
        AntsBrainExtraction(
            template_head=str(template.head),
            template_mask=str(template.mask),
            template_name=template.name,
            quality=bex_cfg.quality,
            parameters=dict(bex_cfg.parameters),
            random_seed=bex_cfg.random_seed,
            num_threads=bex_cfg.num_threads,
            volume_range_ml=tuple(bex_cfg.volume_range_ml),
        ),
        name="brain_extraction",
        mem_gb=max(bex_cfg.memory_gb, extraction_memory_gb(n_voxels)),
        n_procs=bex_cfg.num_threads,
    )
    report = pe.Node(MaskReport(), name="mask_report", mem_gb=1.0)
    wf.connect([
        (inputnode, reorient, [("t1w", "in_file")]),
        (reorient, bex, [("out_file", "in_file")]),
        (bex, report, [("bias_corrected", "in_file"), ("out_mask", "mask_file")]),
        (inputnode, report, [("title", "title")]),
        (bex, outputnode, [("bias_corrected", "t1w_preproc"),
                           ("bias_corrected_meta", "t1w_preproc_meta"),
                           ("out_mask", "brain_mask"), ("out_mask_meta", "brain_mask_meta"),
                           ("out_brain", "t1w_brain"), ("out_brain_meta", "t1w_brain_meta"),
                           ("out_probseg_csf", "probseg_csf"), ("out_probseg_gm", "probseg_gm"),
                           ("out_probseg_wm", "probseg_wm"), ("out_affine", "tpl2t1w_affine"),
                           ("out_warp", "tpl2t1w_warp"), ("out_stats", "stats")]),
        (report, outputnode, [("out_report", "report")]),
    ])  # fmt: skip
    return wf


def _convert_mem_gb(entry_files: int) -> float:
    # ~0.5 MB per slice as stored, held three times during conversion
    return round(0.3 + entry_files * 0.5 * 3 / 1024, 2)


def _sink(name: str, output_dir: Path, files: list[Path]):
    """A node placing files under their final names; it always runs (outputs may be gone)."""
    sink = BidsSink(base_dir=str(output_dir), out_files=[str(p) for p in files])
    return pe.Node(sink, name=name, run_without_submitting=True, overwrite=True)


def init_subject_wf(
    plan: SubjectPlan,
    *,
    entries: dict[str, SeriesEntry],
    output_dir: Path,
    cfg: Config,
) -> pe.Workflow:
    """One subject (and session): convert every planned series; run ``anat_wf`` on each T1w.

    ``entries``: the series table's entries by series id; each conversion node gets its own
    series' entry only.
    Raw BIDS files go to ``OUTPUT/sub-<label>[/ses-<label>]/<datatype>/``, derivatives to
    ``OUTPUT/derivatives/anatprep/...``; each file appears only when complete.
    """
    wf = pe.Workflow(name=node_name(f"{plan.key}_wf"))
    for series in plan.series:
        _add_series(wf, plan, series, entries[series.series_id], output_dir, cfg)
    return wf


def _add_series(
    wf: pe.Workflow,
    plan: SubjectPlan,
    series: PlannedSeries,
    entry: SeriesEntry,
    output_dir: Path,
    cfg: Config,
) -> None:
    tag = series_tag(plan, series)
    size = SeriesSize.of(entry)
    # strict: the node's inputs (kept in its work folder and in crash files) hold no
    # description; the input is left unset in standard mode (the node's hash as before)
    strict: dict[str, str | float] = {"deidentify": "strict"} if cfg.deidentify == "strict" else {}
    if cfg.conversion.max_image_gb is not None:  # else the converting machine's default
        strict["max_image_gb"] = cfg.conversion.max_image_gb
    convert = pe.Node(
        DicomToNifti(
            series_entry=shown_entry(entry, cfg).to_json(),
            out_stem=series.stem,
            compression=cfg.conversion.compression_level,
            verify=cfg.conversion.verify,
            converter=cfg.conversion.converter,
            **strict,
        ),
        name=f"convert_{tag}",
        mem_gb=_convert_mem_gb(size.files),
    )
    raw_dir = output_dir / plan.rel_dir / series.datatype
    raw_sink = _sink(
        f"sink_raw_{tag}",
        output_dir,
        [raw_dir / f"{series.stem}.nii.gz", raw_dir / f"{series.stem}.json"],
    )
    merge = pe.Node(niu.Merge(2), name=f"merge_raw_{tag}", run_without_submitting=True)
    wf.connect([
        (convert, merge, [("out_file", "in1"), ("out_json", "in2")]),
        (merge, raw_sink, [("out", "in_files")]),
    ])  # fmt: skip
    if not (series.is_t1w and cfg.brain_extraction.enabled):
        return

    anat_wf = init_anat_wf(cfg, name=f"anat_{tag}_wf", n_voxels=size.voxels)
    anat_wf.inputs.inputnode.title = f"{series.stem}: brain mask"
    raw_rel = f"{plan.rel_dir}/anat/{series.stem}.nii.gz"
    derivatives = anat_derivatives(cfg, raw_rel)
    deriv_wf = init_anat_derivatives_wf(
        derivatives, output_dir=output_dir, source_file=raw_rel, name=f"deriv_{tag}_wf"
    )
    wf.connect([
        (convert, anat_wf, [("out_file", "inputnode.t1w")]),
        (anat_wf, deriv_wf, [(f"outputnode.{f}", f"inputnode.{f}")
                             for f in input_fields(derivatives)]),
    ])  # fmt: skip


def init_anatprep_wf(
    plans: list[SubjectPlan],
    *,
    entries: dict[str, SeriesEntry],
    output_dir: Path,
    work_dir: Path,
    cfg: Config,
) -> pe.Workflow:
    """All subjects in one workflow (independent subgraphs, run in parallel); ``entries``:
    the series table's entries by series id."""
    wf = pe.Workflow(name="anatprep_wf", base_dir=str(work_dir))
    for plan in plans:
        wf.add_nodes([init_subject_wf(plan, entries=entries, output_dir=output_dir, cfg=cfg)])
    return wf
