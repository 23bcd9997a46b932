"""The anatomical derivatives (sMRIPrep's ``init_anat_derivatives_wf``): one sink node per
output of ``anat_wf``, each with its BIDS entities and sidecar, so nothing is matched by
position and an optional output that a run does not produce is simply not written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from anatprep.interfaces.bids_sink import DerivativesDataSink

from ..config import Config

#: the derivatives dataset, relative to OUTPUT
DERIVATIVES = Path("derivatives") / "anatprep"


def template_label(name: str) -> str:
    """The template's BIDS label (letters and digits), e.g. ``ROBEX``, ``OASIS30ANTs``."""
    label = re.sub(r"[^A-Za-z0-9]", "", name)
    return label.upper() if label.lower() in ("robex", "custom") else label


@dataclass(frozen=True)
class Derivative:
    """One output of ``anat_wf`` as a BIDS derivative (its sink is ``ds_<name>``)."""

    name: str  # the field of anat_wf's outputnode and of the derivatives' inputnode
    suffix: str
    extension: str
    entities: Mapping[str, str] = field(default_factory=dict)  # desc, label, from, to, mode
    datatype: str = "anat"  # folder under the subject's: anat, figures
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the sidecar ({}: none)
    meta_field: str = ""  # the field of its sidecar values known only after the run
    optional: bool = False  # may be absent ('') in a run: then no file, no sidecar


def anat_derivatives(cfg: Config, source_file: str) -> list[Derivative]:
    """The derivatives of one T1w, ``source_file`` (relative to OUTPUT) being its raw file."""
    sources = {"Sources": [f"bids:raw:{source_file}"]}
    xfm = {"from": template_label(cfg.brain_extraction.template), "to": "T1w", "mode": "image"}
    preproc = f"reoriented to {cfg.reorient.orientation}, N4 bias corrected"
    return [
        Derivative("t1w_preproc", "T1w", ".nii.gz", {"desc": "preproc"},
                   metadata={**sources, "Description": preproc}, meta_field="t1w_preproc_meta"),
        Derivative("brain_mask", "mask", ".nii.gz", {"desc": "brain"},
                   metadata={"Type": "Brain", **sources}, meta_field="brain_mask_meta"),
        Derivative("t1w_brain", "T1w", ".nii.gz", {"desc": "brain"},
                   metadata={"SkullStripped": True, **sources}, meta_field="t1w_brain_meta"),
        *(Derivative(f"probseg_{tissue.lower()}", "probseg", ".nii.gz", {"label": tissue},
                     metadata={"Description": f"Atropos posterior probability of {tissue}",
                               **sources},
                     optional=True)
          for tissue in ("CSF", "GM", "WM")),
        Derivative("tpl2t1w_affine", "xfm", ".mat", {**xfm, "desc": "affine"}, optional=True),
        Derivative("tpl2t1w_warp", "xfm", ".nii.gz", {**xfm, "desc": "warp"}, optional=True),
        Derivative("report", "mask", ".svg", {"desc": "brain"}, datatype="figures"),
    ]  # fmt: skip


def input_fields(derivatives: list[Derivative]) -> list[str]:
    """The ``inputnode`` fields of :func:`init_anat_derivatives_wf`: each output and, for
    those with run-time sidecar values, the field carrying them."""
    return [f for d in derivatives for f in (d.name, d.meta_field) if f]


def init_anat_derivatives_wf(
    derivatives: list[Derivative],
    *,
    output_dir: Path,
    source_file: str,
    name: str = "anat_derivatives_wf",
) -> pe.Workflow:
    """Place each of ``derivatives`` under ``OUTPUT/derivatives/anatprep``, named from its
    entities and ``source_file`` (the raw file, relative to OUTPUT: its subject/session
    folders and leading entities), with its sidecar.

    Inputs (``inputnode``): :func:`input_fields` (``anat_wf``'s outputnode names, e.g.
    ``t1w_preproc`` and ``t1w_preproc_meta``).  No outputs: one ``ds_<name>`` node per
    derivative (:class:`~anatprep.interfaces.bids_sink.DerivativesDataSink`), which always
    runs; an optional derivative given ``''`` writes nothing.
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=input_fields(derivatives)), name="inputnode")
    links = []
    for d in derivatives:
        sink = pe.Node(
            DerivativesDataSink(
                base_dir=str(output_dir / DERIVATIVES),
                source_file=source_file,
                datatype=d.datatype,
                entities=dict(d.entities),
                suffix=d.suffix,
                extension=d.extension,
                metadata=dict(d.metadata),
                allow_absent=d.optional,
            ),
            name=f"ds_{d.name}",
            run_without_submitting=True,
            overwrite=True,
        )
        fields = [(d.name, "in_file")] + ([(d.meta_field, "meta_dict")] if d.meta_field else [])
        links.append((inputnode, sink, fields))
    wf.connect(links)
    return wf
