"""Brain extraction interface: ANTs' algorithm (N4, template registration, Atropos, mask
refinement) from :mod:`anatprep.interfaces.brainmask`, as one nipype node."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .brainmask.extract import (
    BrainExtractionError,
    BrainExtractionResult,
    check_t1w_input,
    extract_brain,
)
from .brainmask.params import PRESETS, BrainExtractionParams, preset
from .brainmask.resources import memory_gb as extraction_memory_gb

__all__ = [
    "AntsBrainExtraction",
    "BrainExtractionError",
    "check_t1w_input",
    "extraction_memory_gb",
]


#: the library's defaults (one source for the config, this interface and the library)
_DEFAULTS = BrainExtractionParams()


class _AntsBrainExtractionInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="T1w image (3D)")
    template_head = File(exists=True, mandatory=True, desc="whole-head template T1w")
    template_mask = File(exists=True, mandatory=True, desc="template brain probability/mask")
    template_name = traits.Str("template", usedefault=True, desc="recorded in the stats")
    quality = traits.Enum("default", *sorted(set(PRESETS) - {"default"}), usedefault=True,
                          desc="preset")  # fmt: skip
    parameters = traits.Dict(traits.Str, traits.Any, desc="overrides of preset fields")
    random_seed = traits.Int(_DEFAULTS.random_seed, usedefault=True)
    num_threads = traits.Int(_DEFAULTS.num_threads, usedefault=True)
    volume_range_ml = traits.Tuple(_DEFAULTS.volume_range_ml, traits.Float, traits.Float,
                                   usedefault=True)  # fmt: skip


class _AntsBrainExtractionOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc="binary brain mask (uint8)")
    out_brain = File(exists=True, desc="skull-stripped, bias-corrected T1w")
    bias_corrected = File(exists=True, desc="bias-corrected T1w")
    out_probseg_csf = traits.Str(desc="CSF probability; '' when Atropos is off")
    out_probseg_gm = traits.Str(desc="GM probability; '' when Atropos is off")
    out_probseg_wm = traits.Str(desc="WM probability; '' when Atropos is off")
    out_affine = traits.Str(desc="template-to-T1w affine (.mat); '' when not registered")
    out_warp = traits.Str(desc="template-to-T1w warp field (.nii.gz); '' when not registered")
    out_stats = File(
        exists=True, desc="JSON: volumes, components, mask QC signals, timings, parameters"
    )
    mask_volume_ml = traits.Float(desc="mask volume in mL")
    skull_stripped = traits.Bool(desc="the input was already skull-stripped")
    out_mask_meta = traits.Dict(desc="sidecar values of ``out_mask`` known after the run")
    out_brain_meta = traits.Dict(desc="sidecar values of ``out_brain`` known after the run")
    bias_corrected_meta = traits.Dict(
        desc="sidecar values of ``bias_corrected`` known after the run"
    )


class AntsBrainExtraction(SimpleInterface):
    """Template-based brain extraction with ANTs.

    Inputs: ``in_file`` (3D T1w), the template pair, ``quality`` preset with optional
    ``parameters`` overrides, ``random_seed``, ``num_threads``, ``volume_range_ml``.
    Outputs: ``out_mask``, ``out_brain``, ``bias_corrected``; ``out_probseg_csf``,
    ``out_probseg_gm``, ``out_probseg_wm`` (``''`` when Atropos is off: ``parameters``
    ``atropos: false``); ``out_affine``, ``out_warp`` (template to T1w; ``''`` when the input
    was already skull-stripped: no registration); ``out_stats``, ``mask_volume_ml``,
    ``skull_stripped``; ``out_mask_meta``, ``out_brain_meta``, ``bias_corrected_meta``
    (sidecar values known only after the run); the mask's carry its QC signals
    (``MaskQuality``) and the ``QualityFlags`` of those out of range
    (:mod:`anatprep.interfaces.brainmask.quality`): a flagged mask is still written.
    Raises :class:`BrainExtractionError` on non-3D or constant input, a template mask that
    misses its head, or a warped or final mask volume outside ``volume_range_ml``.
    """

    input_spec = _AntsBrainExtractionInputSpec
    output_spec = _AntsBrainExtractionOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        overrides = dict(i.parameters) if i.parameters else {}
        overrides.update(
            random_seed=i.random_seed,
            num_threads=i.num_threads,
            volume_range_ml=tuple(i.volume_range_ml),
        )
        params = preset(i.quality, overrides)
        out = extract_brain(
            i.in_file,
            Path(i.template_head),
            Path(i.template_mask),
            Path(runtime.cwd),
            params,
            template_name=i.template_name,
        )
        probsegs = out.probsegs
        notes = _sidecar_notes(
            out, i.template_name, i.quality, i.random_seed, atropos=params.atropos
        )
        self._results.update(
            out_mask=out.mask,
            out_brain=out.brain,
            bias_corrected=out.bias_corrected,
            out_probseg_csf=probsegs.get("CSF", ""),
            out_probseg_gm=probsegs.get("GM", ""),
            out_probseg_wm=probsegs.get("WM", ""),
            out_affine=out.affine or "",
            out_warp=out.warp or "",
            out_stats=out.stats,
            mask_volume_ml=out.mask_volume_ml,
            skull_stripped=out.skull_stripped_input,
            out_mask_meta=notes["mask"],
            out_brain_meta=notes["brain"],
            bias_corrected_meta=notes["preproc"],
        )
        return runtime


def _sidecar_notes(
    out: BrainExtractionResult, template: str, quality: str, seed: int, atropos: bool = True
) -> dict[str, dict]:
    """Sidecar values known only after the run, for the ``preproc`` (bias-corrected),
    ``mask`` and ``brain`` outputs."""
    stripped = bool(out.skull_stripped_input)
    if stripped:
        method = "given mask of a skull-stripped input (no registration)"
    elif atropos:
        method = "ANTs: N4, template registration (rigid, affine, SyN), Atropos refinement"
    else:
        method = "ANTs: N4, template registration (rigid, affine, SyN), warped template mask"
    run = {
        "SkullStrippedInput": stripped,
        "BrainExtraction": {
            "Template": template if not stripped else None,
            "Quality": quality,
            "RandomSeed": seed,
            "MaskVolumeML": out.mask_volume_ml,
            "Method": method,
        },
    }
    preproc = {"SkullStripped": stripped, **run}
    mask = {**run, "MaskQuality": out.mask_quality, "QualityFlags": list(out.quality_flags)}
    return {"preproc": preproc, "mask": mask, "brain": run}
