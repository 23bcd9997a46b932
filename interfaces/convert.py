"""Nipype interface: convert one series of the series table to NIfTI + BIDS JSON sidecar."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .atomic import DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL
from .dicomio.conversion import convert_entry, load_series_entry


class _DicomToNiftiInputSpec(BaseInterfaceInputSpec):
    series_table = File(exists=True, mandatory=True, desc="series table from DicomIndex")
    series_id = traits.Str(mandatory=True, desc="id of the series to convert")
    out_stem = traits.Str("series", usedefault=True, desc="output file name without extension")
    compression = traits.Range(
        MIN_LEVEL, MAX_LEVEL, DEFAULT_LEVEL, usedefault=True, desc="ISA-L deflate level"
    )

    verify = traits.Bool(False, usedefault=True, desc="compare with dcm2niix, record in sidecar")
    converter = traits.Enum("anatprep", "dcm2niix", usedefault=True, desc="conversion backend")


class _DicomToNiftiOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="NIfTI-1 image (.nii.gz)")
    out_json = File(exists=True, desc="BIDS JSON sidecar")


class DicomToNifti(SimpleInterface):
    """Convert one series to NIfTI with a BIDS sidecar.

    Inputs: ``series_table``, ``series_id``, ``out_stem``, ``compression``, ``verify``,
    ``converter``.
    Outputs: ``out_file`` (``.nii.gz``, laid out like dcm2niix's), ``out_json``.
    Fails with a message naming the series when its files cannot form one volume.
    """

    input_spec = _DicomToNiftiInputSpec
    output_spec = _DicomToNiftiOutputSpec

    def _run_interface(self, runtime):
        entry = load_series_entry(self.inputs.series_table, self.inputs.series_id)
        nii, js = convert_entry(
            entry,
            Path(runtime.cwd) / self.inputs.out_stem,
            self.inputs.compression,
            verify=self.inputs.verify,
            converter=self.inputs.converter,
        )
        self._results["out_file"] = str(nii)
        self._results["out_json"] = str(js)
        return runtime
