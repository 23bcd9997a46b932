"""Nipype interface: index a DICOM tree by headers only into the series table (JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from .dicomio.geometry import GeometryPolicy, IrregularOutcome, LocalizerOutcome, TiltOutcome
from .dicomio.index import index_tree

_POLICY = GeometryPolicy()


def _outcome(default: str, choices: Any) -> traits.Enum:
    """An Enum trait over a geometry outcome's values, the library's default first."""
    others = [v for v in get_args(choices) if v != default]
    return traits.Enum(default, *others, usedefault=True, desc="outcome (see dicomio.geometry)")


class _DicomIndexInputSpec(BaseInterfaceInputSpec):
    dicom_dir = Directory(exists=True, mandatory=True, desc="root of the DICOM tree")
    folder_levels = traits.Int(2, usedefault=True, desc="folder levels kept per series")
    irregular_spacing = _outcome(_POLICY.irregular_spacing, IrregularOutcome)
    gantry_tilt = _outcome(_POLICY.gantry_tilt, TiltOutcome)
    localizers = _outcome(_POLICY.localizers, LocalizerOutcome)
    cache_file = File(desc="header cache to reuse and rewrite (a rerun reads changed files only)")


class _DicomIndexOutputSpec(TraitedSpec):
    series_table = File(exists=True, desc="series table (JSON)")
    n_series = traits.Int(desc="number of series found")


class DicomIndex(SimpleInterface):
    """Index a DICOM tree (headers only) into a series table.

    Inputs: ``dicom_dir`` (read only), ``folder_levels``, the geometry outcomes
    ``irregular_spacing``, ``gantry_tilt``, ``localizers``, and optionally ``cache_file``
    (the header cache, see :mod:`.dicomio.index_cache`).
    Outputs: ``series_table`` (JSON in the working directory), ``n_series``.
    """

    input_spec = _DicomIndexInputSpec
    output_spec = _DicomIndexOutputSpec

    def _run_interface(self, runtime):
        policy = GeometryPolicy(
            self.inputs.irregular_spacing, self.inputs.gantry_tilt, self.inputs.localizers
        )
        cache = Path(self.inputs.cache_file) if isdefined(self.inputs.cache_file) else None
        table = index_tree(
            self.inputs.dicom_dir, self.inputs.folder_levels, geometry=policy, cache_file=cache
        )
        out = table.save(Path(runtime.cwd) / "series_table.json")
        self._results["series_table"] = str(out)
        self._results["n_series"] = len(table.series)
        return runtime
