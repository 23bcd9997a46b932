"""``anatprep convert``: DICOM tree -> one NIfTI + JSON per series, like ``dcm2niix -z y``.

No workflow engine, no config file: the converter of the pipeline on its own, for users who
want a plain converter (and for benchmarking it against dcm2niix).  Output names are
``<description>_<series number>`` (``series_<series number>`` with ``--deidentify strict``,
which also keeps descriptions out of sidecars and messages); a series whose files split
into several volumes (echoes, magnitude/phase, orientations) gets its short id appended.
One bad series never stops the others: it is reported and the exit code says so.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from anatprep.interfaces.dicomio.geometry import GeometryPolicy
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.limits import ceiling_of
from anatprep.interfaces.dicomio.reference import Converter
from anatprep.interfaces.dicomio.series_to_nifti import (
    SeriesConversionError,
    SeriesSkipped,
    convert_entry,
)
from anatprep.interfaces.dicomio.sidecar import Deidentify
from anatprep.interfaces.dicomio.table import SeriesEntry

from .exitcodes import EXIT_NO_DATA, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from .labels import sanitize_label
from .paths import (
    UsageError,
    check_not_system,
    check_separate,
    check_writable,
    folders_undone_on_error,
)
from .report import SeriesOutcome, format_outcomes, in_words, printable, unusable_images
from .runlock import LockBusy, check_not_nested, hold_lock


def output_stems(
    series: Sequence[SeriesEntry], deidentify: Deidentify = "standard"
) -> dict[str, str]:
    """Series id -> file stem, unique within one output folder.

    ``<protocol>_<series number>`` (``series_<series number>`` in strict mode), with
    dcm2niix's suffixes where one series gives several images: ``_e<k>`` per echo (by echo
    time) and ``_ph`` / ``_real`` / ``_imag`` for non-magnitude parts; any remaining clash
    gets the series id.  Echo numbers are counted only among the images of one acquisition
    (same DICOM series, per the index's ``acquisition`` hash, and same protocol): unrelated
    series that share a number keep their own names, told apart by their ids.
    """
    by_acquisition: dict = {}
    for s in series:
        name = "" if deidentify == "strict" else sanitize_label(
            s.protocol_name or s.series_description or ""
        )
        key = (s.series_number, s.acquisition, name)
        by_acquisition.setdefault(key, []).append(s)
    base = {}
    for (number, _, name), members in by_acquisition.items():
        echoes = sorted({m.echo_time for m in members if m.echo_time is not None})
        for m in members:
            stem = f"{name or 'series'}_{number if number is not None else 'x'}"
            if len(echoes) > 1 and m.echo_time is not None:
                stem += f"_e{echoes.index(m.echo_time) + 1}"
            part = m.part or "mag"
            if part != "mag":
                stem += "_ph" if part == "phase" else f"_{part}"
            base[m.id] = stem
    counts = Counter(base.values())
    return {sid: stem if counts[stem] == 1 else f"{stem}_{sid}" for sid, stem in base.items()}


def convert_tree(
    input_dir: Path,
    output_dir: Path,
    compression: int,
    verify: bool = False,
    converter: Converter = "anatprep",
    geometry: GeometryPolicy | None = None,
    deidentify: Deidentify = "standard",
    max_image_gb: float | None = None,
    verbose: bool = False,
) -> int:
    """Convert every series below ``input_dir`` into ``output_dir``; return the exit code.

    Ends with the per-series account (converted / skipped by which option / failed and why)
    and, with ``verify``, the parity table against dcm2niix.  Exit 4 when any series or
    image file failed; exit 2 when OUTPUT is INPUT or inside it, a system folder, cannot be
    written, is in use by another run, or holds or lies inside a folder another run holds
    (OUTPUT is locked for the whole conversion; the temporary files an interrupted
    conversion journaled there are removed first; a refused conversion leaves no folder).
    ``deidentify="strict"``: no SeriesDescription / ProtocolName in file names, sidecars or
    anything printed.  ``max_image_gb``: the most one image may take (None: half the
    machine's memory).  ``verbose``: failure reasons keep their Python exception classes.
    """
    if not input_dir.is_dir():
        print(f"anatprep convert: {input_dir} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        check_not_system("OUTPUT", output_dir)
        check_separate(input_dir, output_dir)
        with folders_undone_on_error() as created:
            check_writable("OUTPUT", output_dir, created)
            with hold_lock(output_dir, "OUTPUT", keep=(input_dir,)), ceiling_of(max_image_gb):
                check_not_nested(output_dir, "OUTPUT", skip=(input_dir,))
                return _convert_all(
                    input_dir, output_dir, compression, verify, converter, geometry, deidentify,
                    verbose,
                )  # fmt: skip
    except (UsageError, LockBusy) as exc:
        print(f"anatprep convert: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _convert_all(
    input_dir: Path,
    output_dir: Path,
    compression: int,
    verify: bool,
    converter: Converter,
    geometry: GeometryPolicy | None,
    deidentify: Deidentify,
    verbose: bool = False,
) -> int:
    """:func:`convert_tree` once the folders are checked and OUTPUT locked."""
    table = index_tree(input_dir, geometry=geometry)
    for item in table.unusable:
        if item.series is None:
            reason = in_words(item.reason, verbose)
            print(printable(f"skipped {item.path}: {reason}"), file=sys.stderr)
    if not table.series and all(o.status != "failed" for o in unusable_images(table.unusable)):
        print(f"anatprep convert: no DICOM series in {input_dir}", file=sys.stderr)
        return EXIT_NO_DATA
    stems = output_stems(table.series, deidentify)
    outcomes: list[SeriesOutcome] = []
    parity: list[tuple[str, Path, dict]] = []
    series = table.without_free_text().series if deidentify == "strict" else table.series
    for entry in series:
        sid, desc = entry.id, entry.series_description or ""
        try:
            nii, js = convert_entry(
                entry, output_dir / stems[sid], compression, verify, converter, deidentify
            )
        except SeriesSkipped as exc:
            outcomes.append(SeriesOutcome(sid, desc, "skipped", str(entry.skipped or exc)))
            continue
        except SeriesConversionError as exc:
            print(printable(f"FAILED {in_words(str(exc), verbose)}"), file=sys.stderr)
            outcomes.append(SeriesOutcome(sid, desc, "failed", str(exc)))
            continue
        except Exception as exc:  # e.g. OUTPUT filled up: this series fails, the rest go on
            reason = f"{entry.describe()}: {type(exc).__name__}: {exc}"
            print(printable(f"FAILED {in_words(reason, verbose)}"), file=sys.stderr)
            outcomes.append(SeriesOutcome(sid, desc, "failed", reason))
            continue
        outcomes.append(SeriesOutcome(sid, desc, "converted", str(nii)))
        if verify:
            parity.append((sid, nii, json.loads(js.read_text()).get("ConversionVerification", {})))
    outcomes += unusable_images(table.unusable)
    print(format_outcomes(outcomes, verbose=verbose))
    if verify:
        print(format_parity(parity))
    return EXIT_PARTIAL if any(o.status == "failed" for o in outcomes) else EXIT_OK


def format_parity(rows: list[tuple[str, Path, dict]]) -> str:
    """One line per converted series: equal to dcm2niix, or which fields differ."""
    lines = []
    counts: Counter[str] = Counter()
    for sid, nii, report in rows:
        if report.get("Agrees") is True:
            verdict, detail = "equal", ""
        elif report.get("Agrees") is False:
            fields = [d.split(":")[0] for d in report.get("Differences", [])]
            verdict, detail = "DIFFERS", ": " + ", ".join(fields)
        else:
            verdict, detail = "unchecked", f": {report.get('Error', 'no report')}"
        counts[verdict] += 1
        lines.append(printable(f"  {verdict:9} {sid} {nii.name}{detail}"))
    reference = next((r.get("Reference") for _, _, r in rows if r.get("Agrees") is not None), "")
    head = (
        f"verify against {reference or 'dcm2niix'}: {counts['equal']} equal, "
        f"{counts['DIFFERS']} differ, {counts['unchecked']} unchecked"
    )
    return "\n".join([head, *lines])
