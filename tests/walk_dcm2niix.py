"""Walk one DICOM set with our converter and with live dcm2niix, and compare every output.

Used by ``tests/test_dcm_qa.py`` (and runnable alone: ``python tests/walk_dcm2niix.py SET...``
prints the table).  For each image dcm2niix writes, the output of ours with the same
SeriesNumber that agrees best is compared by ``reference.compare`` (the rule of ``verify``):
stored values and dtype, scaling, affine (RAS, 0.05 mm), ``.bval``/``.bvec``, and every key
of our sidecar allow-list that dcm2niix also writes (numbers within 1e-5 relative).  Our
outputs that dcm2niix has no image for, series that dcm2niix converts but we do not, and image
files nobody could use, are rows of their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from anatprep.interfaces.dicomio.index import index_tree  # noqa: E402
from anatprep.interfaces.dicomio.reference import (  # noqa: E402
    ConverterOutput,
    best_match,
    compare,
    executable,
    read_outputs,
    readable_copy,
)
from anatprep.interfaces.dicomio.series_to_nifti import (  # noqa: E402
    SeriesConversionError,
    SeriesSkipped,
    convert_entry,
)


@dataclass
class Row:
    set_name: str
    name: str
    series_number: int | None = None
    status: str = "ok"  # ok | differs | not converted | extra output
    shape: tuple = ()
    keys_compared: int = 0
    problems: list[str] = field(default_factory=list)
    #: the file of ours compared (ok / differs rows)
    ours: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not self.problems


#: unusable files that are not images (reports, DICOMDIRs, notes): not series of anyone's
NOT_IMAGES = ("not a DICOM file", "DICOM without an image")


def run_dcm2niix(src: Path, out: Path) -> list[ConverterOutput]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [executable(), "-b", "y", "-ba", "y", "-z", "n", "-f", "%s_%p", "-o", str(out)]
    subprocess.run([*cmd, str(src)], check=True, capture_output=True)
    return read_outputs(out)


def run_ours(src: Path, out: Path) -> tuple[list[ConverterOutput], list[tuple[dict, str]]]:
    table = index_tree(src)
    outputs, failed = [], []
    for entry in table.series:
        try:
            nii, js = convert_entry(entry, out / entry.id)
        except SeriesSkipped as exc:
            failed.append((entry, f"skipped: {exc}"))
            continue
        except SeriesConversionError as exc:
            failed.append((entry, str(exc)))
            continue
        outputs.append(ConverterOutput.beside(nii, json.loads(js.read_text())))
    images = Counter(
        item.reason
        for item in table.unusable
        if item.series is None and not item.reason.startswith(NOT_IMAGES)
    )
    for reason, count in sorted(images.items()):
        failed.append(({"id": f"{count} image file(s)", "series_number": None}, reason))
    return outputs, failed


def walk_set(data_dir: Path, set_name: str, tmp: Path) -> list[Row]:
    src = data_dir / "dicom" / set_name / "In"
    ours, failed = run_ours(src, tmp / "ours")
    refs = run_dcm2niix(readable_copy(src, tmp / "gunzipped"), tmp / "dcm2niix")
    rows: list[Row] = []
    used: set[Path] = set()
    for ref in refs:
        number = ref.sidecar.get("SeriesNumber")
        shape = tuple(nb.load(ref.nifti).shape)
        candidates = [o for o in ours if o.sidecar.get("SeriesNumber") == number]
        if not candidates:
            reasons = [r for e, r in failed if e.series_number == number]
            reason = reasons[0] if reasons else "no output of ours with this SeriesNumber"
            rows.append(Row(set_name, ref.nifti.stem, number, "not converted", shape, 0, [reason]))
            continue
        # an output of ours answers one dcm2niix output: copies of a series (same number,
        # e.g. an archive's re-export beside the original) each get their own match
        free = [o for o in candidates if o.nifti not in used] or candidates
        mine = best_match(free, ref.sidecar, shape)
        used.add(mine.nifti)
        parity = compare(mine, ref, reference="dcm2niix")
        rows.append(
            Row(set_name, ref.nifti.stem, number, "ok" if parity.agrees else "differs", shape,
                parity.keys_compared, list(parity.differences), mine.nifti)
        )  # fmt: skip
    for o in ours:
        if o.nifti not in used:
            rows.append(
                Row(set_name, o.nifti.name, o.sidecar.get("SeriesNumber"), "extra output",
                    tuple(nb.load(o.nifti).shape), 0, ["dcm2niix writes no image like this"],
                    o.nifti)
            )  # fmt: skip
    numbers = {r.series_number for r in rows}
    for entry, reason in failed:
        if entry.series_number not in numbers or entry.series_number is None:
            rows.append(
                Row(set_name, entry.id, entry.series_number, "not converted",
                    problems=[f"(dcm2niix writes nothing for it either) {reason}"])
            )  # fmt: skip
    return rows


def print_table(rows: list[Row]) -> None:
    print(f"\n{'set':15} {'output':44} {'shape':16} {'status':14} keys problems")
    for r in rows:
        shape = "x".join(map(str, r.shape))
        status = "ok" if r.ok else r.status
        problems = " | ".join(r.problems)
        print(
            f"{r.set_name:15} {r.name[:44]:44} {shape:16} {status:14} {r.keys_compared:4} "
            + (problems if len(problems) < 600 else problems[:597] + "...")
        )
    by_set: dict[str, list[Row]] = {}
    for r in rows:
        by_set.setdefault(r.set_name, []).append(r)
    print("\nsummary: " + ", ".join(
        f"{s} {sum(r.ok for r in rs)}/{len(rs)}" for s, rs in by_set.items()
    ))  # fmt: skip


if __name__ == "__main__":
    import tempfile

    data = Path(sys.argv[1])
    all_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sys.argv[2:]:
            all_rows += walk_set(data, name, Path(tmp) / name)
    print_table(all_rows)
