"""Convert one series of the series table to NIfTI + BIDS JSON sidecar (our own converter).

dcm2niix is the yardstick this converter is tested and benchmarked against; it is never
called here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .atomic import write_json, write_nifti
from .dicomio.classic import ClassicSeries
from .dicomio.headers import UnusableFile
from .dicomio.series import SeriesGeometryError
from .dicomio.sidecar import build_sidecar


class SeriesConversionError(RuntimeError):
    """A series that cannot be converted; the message names the series and the reason."""


def load_series_entry(table_file: str, series_id: str) -> dict[str, Any]:
    table = json.loads(Path(table_file).read_text())
    for entry in table["series"]:
        if entry["id"] == series_id:
            return entry
    raise SeriesConversionError(f"series {series_id} is not in {table_file}")


def describe(entry: dict[str, Any]) -> str:
    desc = entry.get("series_description") or entry.get("protocol_name") or "?"
    folder = "/".join(entry.get("folders") or [])
    return f"series {entry['id']} ('{desc}' in {folder or '.'})"


def convert_entry(entry: dict[str, Any], out_stem: Path, compression: int = 6) -> tuple[Path, Path]:
    """Write ``<out_stem>.nii.gz`` and ``<out_stem>.json`` for one series-table entry."""
    name = describe(entry)
    if entry.get("problems"):
        raise SeriesConversionError(f"{name} cannot be converted: " + "; ".join(entry["problems"]))
    if entry.get("flavour") != "classic":
        raise SeriesConversionError(
            f"{name}: {entry.get('flavour')} DICOM is not supported by this converter yet"
        )
    try:
        series = ClassicSeries(entry["files"])
        img = series.to_nifti()
    except (SeriesGeometryError, UnusableFile) as exc:
        raise SeriesConversionError(f"{name} cannot be converted: {exc}") from None
    extra: dict[str, Any] = {}
    if series.n_slices > 1:
        extra["SliceSpacingFromPositions"] = round(series.slice_spacing, 6)
    sidecar = build_sidecar(series.first, extra)
    nii = write_nifti(img, out_stem.with_name(out_stem.name + ".nii.gz"), compression)
    js = write_json(sidecar, out_stem.with_name(out_stem.name + ".json"))
    return nii, js


class _DicomToNiftiInputSpec(BaseInterfaceInputSpec):
    series_table = File(exists=True, mandatory=True, desc="series table from DicomIndex")
    series_id = traits.Str(mandatory=True, desc="id of the series to convert")
    out_stem = traits.Str("series", usedefault=True, desc="output file name without extension")
    compression = traits.Range(0, 9, 6, usedefault=True, desc="gzip level of the .nii.gz")


class _DicomToNiftiOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="NIfTI-1 image (.nii.gz)")
    out_json = File(exists=True, desc="BIDS JSON sidecar")


class DicomToNifti(SimpleInterface):
    """Convert one series to NIfTI with a BIDS sidecar.

    Inputs: ``series_table``, ``series_id``, ``out_stem``, ``compression``.
    Outputs: ``out_file`` (``.nii.gz``, laid out like dcm2niix's), ``out_json``.
    Fails with a message naming the series when its files cannot form one volume.
    """

    input_spec = _DicomToNiftiInputSpec
    output_spec = _DicomToNiftiOutputSpec

    def _run_interface(self, runtime):
        entry = load_series_entry(self.inputs.series_table, self.inputs.series_id)
        nii, js = convert_entry(
            entry, Path(runtime.cwd) / self.inputs.out_stem, self.inputs.compression
        )
        self._results["out_file"] = str(nii)
        self._results["out_json"] = str(js)
        return runtime
