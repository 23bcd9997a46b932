"""Convert one series of the series table to NIfTI + BIDS JSON sidecar (our own converter).

One reader class per DICOM flavour (see :data:`READERS`); each gives a NIfTI image and the
dataset the sidecar is built from.  dcm2niix is the yardstick this converter is tested and
benchmarked against; it is never called here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import DEFAULT_LEVEL, atomic_write_bytes, write_json, write_nifti_parts
from .classic import ClassicSeries
from .enhanced import EnhancedSeries
from .headers import UnusableFile
from .mosaic import MosaicSeries
from .series import SeriesGeometryError
from .sidecar import build_sidecar

#: one reader class per DICOM flavour (as detected by the header reader)
READERS: dict[str, type[ClassicSeries]] = {
    "classic": ClassicSeries,
    "mosaic": MosaicSeries,
    "enhanced": EnhancedSeries,
}


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


def convert_entry(
    entry: dict[str, Any], out_stem: Path, compression: int = DEFAULT_LEVEL
) -> tuple[Path, Path]:
    """Write ``<out_stem>.nii.gz`` and ``<out_stem>.json`` for one series-table entry."""
    name = describe(entry)
    if entry.get("problems"):
        raise SeriesConversionError(f"{name} cannot be converted: " + "; ".join(entry["problems"]))
    reader = READERS.get(entry.get("flavour"))
    if reader is None:
        raise SeriesConversionError(
            f"{name}: {entry.get('flavour')} DICOM is not supported by this converter yet"
        )
    try:
        series = reader(entry["files"], entry.get("frames"))
        volume = series.to_volume()
    except (SeriesGeometryError, UnusableFile) as exc:
        raise SeriesConversionError(f"{name} cannot be converted: {exc}") from None
    sidecar = build_sidecar(series.first, series.sidecar_extra(volume))
    gradients = series.gradient_files(volume)
    nii = write_nifti_parts(
        out_stem.with_name(out_stem.name + ".nii.gz"),
        volume.header_bytes(),
        volume.data,
        compression,
    )
    if gradients is not None:  # beside the image, as dcm2niix writes them
        atomic_write_bytes(out_stem.with_name(out_stem.name + ".bval"), gradients[0].encode())
        atomic_write_bytes(out_stem.with_name(out_stem.name + ".bvec"), gradients[1].encode())
    js = write_json(sidecar, out_stem.with_name(out_stem.name + ".json"))
    return nii, js
