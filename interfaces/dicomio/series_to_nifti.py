"""Convert one series of the series table to NIfTI + BIDS JSON sidecar (our own converter).

One reader class per DICOM flavour (see :data:`READERS`); each gives a NIfTI image and the
dataset the sidecar is built from.  dcm2niix is the yardstick this converter is tested and
benchmarked against; it runs here only when asked: ``verify`` (beside ours) or the optional
``converter="dcm2niix"`` backend.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..atomic import DEFAULT_LEVEL, atomic_write_bytes, write_json, write_nifti, write_nifti_parts
from .classic import ClassicSeries
from .csa import CsaError
from .dicom_file import UnusableFile, describe
from .enhanced import EnhancedSeries
from .limits import ImageTooLarge
from .mosaic import MosaicSeries
from .reference import (
    Converter,
    ConverterOutput,
    ReferenceUnavailable,
    best_match,
    dcm2niix_agreement,
    run_on_series,
)
from .series import SeriesGeometryError
from .sidecar import ALLOWED_KEYS, FREE_TEXT_KEYS, Deidentify, build_sidecar, deidentified
from .table import SeriesEntry
from .uih_series import UihSeries

LOG = logging.getLogger("anatprep")

#: one reader class per DICOM flavour (as detected by the header reader)
READERS: dict[str, type[ClassicSeries]] = {
    "classic": ClassicSeries,
    "mosaic": MosaicSeries,
    "enhanced": EnhancedSeries,
    "uih": UihSeries,
}


class SeriesConversionError(RuntimeError):
    """A series that cannot be converted; the message names the series and the reason."""


class SeriesSkipped(SeriesConversionError):
    """A series left out on purpose by the geometry policy (not a failure)."""


def convert_entry(
    entry: SeriesEntry,
    out_stem: Path,
    compression: int = DEFAULT_LEVEL,
    verify: bool = False,
    converter: Converter = "anatprep",
    deidentify: Deidentify = "standard",
) -> tuple[Path, Path]:
    """Write ``<out_stem>.nii.gz`` and ``<out_stem>.json`` (+ ``.bval``/``.bvec``) for one
    series-table entry.

    ``converter="dcm2niix"`` runs dcm2niix instead of our converter (same output layout);
    ``verify`` runs dcm2niix beside ours and records the agreement in the sidecar
    (``ConversionVerification``), logging a warning on any difference.
    ``deidentify="strict"``: no free-text description (:data:`.sidecar.FREE_TEXT_KEYS`) in
    the sidecar, the verification report or any message.
    """
    if deidentify == "strict":
        entry = entry.without_free_text()
    name = entry.describe()
    if entry.skipped:
        raise SeriesSkipped(f"{name} skipped: {entry.skipped}")
    if entry.problems:
        raise SeriesConversionError(f"{name} cannot be converted: " + "; ".join(entry.problems))
    if converter == "dcm2niix":
        return _convert_with_dcm2niix(entry, out_stem, compression, name, deidentify)
    if converter != "anatprep":
        raise ValueError(f"unknown converter {converter!r}")
    reader = READERS.get(entry.flavour)
    if reader is None:
        raise SeriesConversionError(
            f"{name}: {entry.flavour} DICOM is not supported by this converter yet"
        )
    try:
        series = reader(list(entry.files), _frames(entry), entry.resample_tilt)
        volume = series.to_volume()
        sidecar = deidentified(
            build_sidecar(series.first, series.sidecar_extra(volume)), deidentify
        )
        gradients = series.gradient_files(volume)
        header = volume.header_bytes()
    except (SeriesGeometryError, UnusableFile, CsaError, ImageTooLarge) as exc:
        raise SeriesConversionError(f"{name} cannot be converted: {exc}") from None
    except MemoryError as exc:  # numpy's names the size it could not get
        raise SeriesConversionError(f"{name} cannot be converted: out of memory ({exc})") from None
    except Exception as exc:  # a header value no rule foresaw: this series fails, named
        raise SeriesConversionError(f"{name} cannot be converted: {describe(exc)}") from exc
    if series.removed_volumes:
        LOG.info(
            "%s: %d of %d volumes are scanner-derived diffusion images (b > 0 without a "
            "gradient direction: isotropic trace/ADC) and are left out, as dcm2niix does",
            name, len(series.removed_volumes), len(series.removed_volumes) + series.n_volumes,
        )  # fmt: skip
    nii = write_nifti_parts(_with_suffix(out_stem, ".nii.gz"), header, volume.data, compression)
    if gradients is not None:  # beside the image, as dcm2niix writes them
        atomic_write_bytes(_with_suffix(out_stem, ".bval"), gradients[0].encode())
        atomic_write_bytes(_with_suffix(out_stem, ".bvec"), gradients[1].encode())
    if verify:
        ours = ConverterOutput.beside(nii, sidecar)
        leave_out = FREE_TEXT_KEYS if deidentify == "strict" else frozenset()
        report = dcm2niix_agreement(list(entry.files), ours, leave_out)
        sidecar["ConversionVerification"] = report
        if report.get("Agrees") is not True:
            LOG.warning(
                "VERIFY: %s differs from dcm2niix or could not be checked: %s", name, report
            )
    try:  # (write_json leaves out entries that are not finite: absent, never NaN)
        js = write_json(sidecar, _with_suffix(out_stem, ".json"))
    except BaseException:
        for ext in (".nii.gz", ".bval", ".bvec"):  # no image without its sidecar
            _with_suffix(out_stem, ext).unlink(missing_ok=True)
        raise
    return nii, js


def _frames(entry: SeriesEntry) -> list[int | None] | None:
    return None if entry.frames is None else list(entry.frames)


def _with_suffix(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


def _convert_with_dcm2niix(
    entry: SeriesEntry, out_stem: Path, compression: int, name: str, deidentify: Deidentify
) -> tuple[Path, Path]:
    """The optional backend: dcm2niix's image and (anonymised, filtered) sidecar."""
    import nibabel as nb

    from .headers import read_headers

    first = read_headers(entry.files[0])
    frame = (entry.frames or (None,))[0]
    header = next((h for h in first if getattr(h, "frame", None) == frame), first[0])
    expected = build_sidecar(header)
    try:
        with run_on_series(list(entry.files)) as outputs:
            out = best_match(outputs, expected)
            img = nb.Nifti1Image.from_filename(out.nifti)
            data = np.asanyarray(img.dataobj.get_unscaled())  # type: ignore[attr-defined]
            result = nb.Nifti1Image(data, img.affine, img.header)
            result.header["descrip"] = b"dcm2niix via anatprep"
            # dcm2niix copies header text (ImageComments, ...) into these: never keep it
            for field in ("aux_file", "intent_name", "db_name"):
                result.header[field] = b""
            nii = write_nifti(result, _with_suffix(out_stem, ".nii.gz"), compression)
            for src, ext in ((out.bval, ".bval"), (out.bvec, ".bvec")):
                if src is not None:
                    atomic_write_bytes(_with_suffix(out_stem, ext), src.read_bytes())
            # ours and dcm2niix's alike: only keys on the allow-list (dcm2niix copies header
            # text, e.g. Siemens' (0051,100F) into CoilString, into keys of its own)
            sidecar = deidentified(
                {k: v for k, v in out.sidecar.items() if k in ALLOWED_KEYS}, deidentify
            )
    except ReferenceUnavailable as exc:
        raise SeriesConversionError(f"{name}: dcm2niix backend failed: {exc}") from None
    js = write_json(sidecar, _with_suffix(out_stem, ".json"))
    return nii, js
