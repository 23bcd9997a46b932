"""Nipype interface: reorient an image to an axis code without resampling
(:mod:`anatprep.interfaces.orientation` holds the rule)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .atomic import copy_file, write_nifti
from .nifti import load_nifti
from .orientation import reorient_image


class _ReorientInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="NIfTI image")
    orientation = traits.Str("RAS", usedefault=True, desc="target axis code, e.g. RAS")


class _ReorientOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="reoriented image")
    changed = traits.Bool(desc="whether axes were permuted or flipped")


class Reorient(SimpleInterface):
    """Reorient to ``orientation`` without resampling.

    Inputs: ``in_file``, ``orientation`` (3-letter code).
    Outputs: ``out_file``, ``changed``.
    """

    input_spec = _ReorientInputSpec
    output_spec = _ReorientOutputSpec

    def _run_interface(self, runtime):
        src = Path(self.inputs.in_file)
        img = load_nifti(src)
        out = reorient_image(img, self.inputs.orientation)
        suffix = ".nii.gz" if src.name.endswith(".gz") else ".nii"
        dst = Path(runtime.cwd) / f"reoriented{suffix}"
        if out is None:
            copy_file(src, dst)
        else:
            write_nifti(out, dst)
        self._results["out_file"] = str(dst)
        self._results["changed"] = out is not None
        return runtime
