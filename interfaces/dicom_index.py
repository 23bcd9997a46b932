"""Nipype interface: index a DICOM tree by headers only into the series table (JSON)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .atomic import write_json
from .dicomio.index import index_tree


class _DicomIndexInputSpec(BaseInterfaceInputSpec):
    dicom_dir = Directory(exists=True, mandatory=True, desc="root of the DICOM tree")
    folder_levels = traits.Int(2, usedefault=True, desc="folder levels kept per series")


class _DicomIndexOutputSpec(TraitedSpec):
    series_table = File(exists=True, desc="series table (JSON)")
    n_series = traits.Int(desc="number of series found")


class DicomIndex(SimpleInterface):
    """Index a DICOM tree (headers only) into a series table.

    Inputs: ``dicom_dir`` (read only), ``folder_levels``.
    Outputs: ``series_table`` (JSON in the working directory), ``n_series``.
    """

    input_spec = _DicomIndexInputSpec
    output_spec = _DicomIndexOutputSpec

    def _run_interface(self, runtime):
        table = index_tree(self.inputs.dicom_dir, self.inputs.folder_levels)
        out = Path(runtime.cwd) / "series_table.json"
        write_json(table, out)
        self._results["series_table"] = str(out)
        self._results["n_series"] = len(table["series"])
        return runtime
