"""Walk one DICOM set with our converter and with live dcm2niix, and compare every output.

Used by ``tests/test_dcm_qa.py`` (and runnable alone: ``python tests/walk_dcm2niix.py SET...``
prints the table).  For each image dcm2niix writes, the output of ours with the same
SeriesNumber that agrees best is compared: stored values and dtype, scaling, affine (RAS,
0.05 mm), ``.bval``/``.bvec``, and every key of our sidecar allow-list that dcm2niix also
writes (numbers within 1e-5 relative).  Our outputs that dcm2niix has no image for, and
series that dcm2niix converts but we do not, are rows of their own.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from interfaces.dicomio.conversion import (  # noqa: E402
    SeriesConversionError,
    SeriesSkipped,
    convert_entry,
)
from interfaces.dicomio.index import index_tree  # noqa: E402
from interfaces.dicomio.sidecar import ALLOWED_KEYS  # noqa: E402

AFFINE_TOL_MM = 0.05
REL_TOL = 1e-5
_IGNORED = {"ConversionSoftware", "ConversionSoftwareVersion"}


def dcm2niix_exe() -> str:
    local = Path(sys.executable).parent / "dcm2niix"
    exe = str(local) if local.is_file() else shutil.which("dcm2niix")
    if exe is None:
        raise RuntimeError("dcm2niix is not installed (pip install '.[test]')")
    return exe


def equal(a, b, rel: float = REL_TOL) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y, rel) for x, y in zip(a, b, strict=True))
    return a == b


@dataclass
class Output:
    nifti: Path
    sidecar: dict
    bval: Path | None = None
    bvec: Path | None = None
    series_id: str = ""

    @classmethod
    def at(cls, nifti: Path, sidecar: Path, series_id: str = "") -> Output:
        stem = nifti.name.removesuffix(".gz").removesuffix(".nii")
        bval, bvec = nifti.with_name(stem + ".bval"), nifti.with_name(stem + ".bvec")
        return cls(
            nifti,
            json.loads(sidecar.read_text()),
            bval if bval.exists() else None,
            bvec if bvec.exists() else None,
            series_id,
        )


@dataclass
class Row:
    set_name: str
    name: str
    series_number: int | None = None
    status: str = "ok"  # ok | differs | not converted | extra output
    shape: tuple = ()
    voxels: bool = False
    scaling: bool = False
    affine_err: float = float("nan")
    keys_matched: int = 0
    keys_total: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not self.problems


def ungzipped_copy(src: Path, dst: Path) -> Path:
    """``src`` as dcm2niix can read it: ``.dcm.gz`` files decompressed into a copy."""
    if not any(p.suffix == ".gz" for p in src.rglob("*")):
        return src
    for path in src.rglob("*"):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".gz":
                target.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
            else:
                shutil.copyfile(path, target)
    return dst


def run_dcm2niix(src: Path, out: Path) -> list[Output]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [dcm2niix_exe(), "-b", "y", "-ba", "y", "-z", "n", "-f", "%s_%p", "-o", str(out)]
    subprocess.run([*cmd, str(src)], check=True, capture_output=True)
    return [
        Output.at(j.with_suffix(".nii"), j)
        for j in sorted(out.glob("*.json"))
        if j.with_suffix(".nii").exists()
    ]


def run_ours(src: Path, out: Path) -> tuple[list[Output], list[tuple[dict, str]]]:
    table = index_tree(src)
    outputs, failed = [], []
    for entry in table["series"]:
        try:
            nii, js = convert_entry(entry, out / entry["id"])
        except SeriesSkipped as exc:
            failed.append((entry, f"skipped: {exc}"))
            continue
        except SeriesConversionError as exc:
            failed.append((entry, str(exc)))
            continue
        outputs.append(Output.at(nii, js, entry["id"]))
    return outputs, failed


def _score(ours: Output, ref: Output, ref_shape: tuple) -> tuple:
    keys = (ours.sidecar.keys() & ref.sidecar.keys()) - _IGNORED
    same_shape = nb.load(ours.nifti).shape == ref_shape
    return (same_shape, sum(equal(ours.sidecar[k], ref.sidecar[k]) for k in keys))


def _text_table(path: Path | None) -> np.ndarray | None:
    return None if path is None else np.atleast_1d(np.loadtxt(path))


def compare(set_name: str, ours: Output, ref: Output) -> Row:
    row = Row(set_name, ref.nifti.stem, ref.sidecar.get("SeriesNumber"))
    mine, theirs = nb.load(ours.nifti), nb.load(ref.nifti)
    row.shape = theirs.shape
    a = np.asanyarray(mine.dataobj.get_unscaled())
    b = np.asanyarray(theirs.dataobj.get_unscaled())
    row.voxels = a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    if not row.voxels:
        detail = f"ours {a.shape} {a.dtype}, dcm2niix {b.shape} {b.dtype}"
        if a.shape == b.shape:
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            detail += f", {int((diff > 0).sum())} voxels differ (max {diff.max():g})"
        row.problems.append(f"stored voxels: {detail}")
    sa, sb = mine.header.get_slope_inter(), theirs.header.get_slope_inter()
    sa = tuple(1.0 if v is None and k == 0 else 0.0 if v is None else v for k, v in enumerate(sa))
    sb = tuple(1.0 if v is None and k == 0 else 0.0 if v is None else v for k, v in enumerate(sb))
    row.scaling = bool(np.allclose(sa, sb, rtol=REL_TOL, atol=1e-9))
    if not row.scaling:
        row.problems.append(f"scaling: ours {sa}, dcm2niix {sb}")
    if mine.shape[:3] == theirs.shape[:3]:
        row.affine_err = float(np.abs(mine.affine - theirs.affine).max())
        if row.affine_err > AFFINE_TOL_MM:
            row.problems.append(f"affine differs by {row.affine_err:.3g} mm")
    else:
        row.problems.append("affine: shapes differ")
    for name, mine_t, ref_t in (
        ("bval", ours.bval, ref.bval),
        ("bvec", ours.bvec, ref.bvec),
    ):
        x, y = _text_table(mine_t), _text_table(ref_t)
        if y is None and x is None:
            continue
        if x is None or y is None:
            what = "missing" if x is None else "written, dcm2niix has none"
            row.problems.append(f".{name}: {what}")
        elif x.shape != y.shape or not np.allclose(x, y, atol=1e-4, rtol=1e-4):
            row.problems.append(f".{name} differs ({x.shape} vs {y.shape})")
    keys = sorted((ALLOWED_KEYS & ref.sidecar.keys()) - _IGNORED)
    row.keys_total = len(keys)
    for key in keys:
        if key in ours.sidecar and equal(ours.sidecar[key], ref.sidecar[key]):
            row.keys_matched += 1
        else:
            got = ours.sidecar.get(key, "<missing>")
            row.problems.append(f"{key}: ours {_short(got)} dcm2niix {_short(ref.sidecar[key])}")
    if row.problems:
        row.status = "differs"
    return row


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def walk_set(data_dir: Path, set_name: str, tmp: Path) -> list[Row]:
    src = data_dir / "dicom" / set_name / "In"
    ours, failed = run_ours(src, tmp / "ours")
    refs = run_dcm2niix(ungzipped_copy(src, tmp / "gunzipped"), tmp / "dcm2niix")
    rows: list[Row] = []
    used: set[str] = set()
    for ref in refs:
        number = ref.sidecar.get("SeriesNumber")
        shape = nb.load(ref.nifti).shape
        candidates = [o for o in ours if o.sidecar.get("SeriesNumber") == number]
        if not candidates:
            reasons = [r for e, r in failed if e.get("series_number") == number]
            rows.append(
                Row(set_name, ref.nifti.stem, number, "not converted", shape,
                    problems=[reasons[0] if reasons else "no output with this SeriesNumber"])
            )  # fmt: skip
            continue
        # an output of ours answers one dcm2niix output: copies of a series (same number,
        # e.g. an archive's re-export beside the original) each get their own match
        best = max(candidates, key=lambda o: (str(o.nifti) not in used, *_score(o, ref, shape)))
        used.add(str(best.nifti))
        rows.append(compare(set_name, best, ref))
    for o in ours:
        if str(o.nifti) not in used:
            rows.append(
                Row(set_name, o.nifti.name, o.sidecar.get("SeriesNumber"), "extra output",
                    nb.load(o.nifti).shape, problems=["dcm2niix writes no image matching this"])
            )  # fmt: skip
    for entry, reason in failed:
        if not any(r.series_number == entry.get("series_number") for r in rows):
            rows.append(
                Row(set_name, entry["id"], entry.get("series_number"), "not converted",
                    problems=[f"dcm2niix writes nothing either; ours: {reason}"])
            )  # fmt: skip
    return rows


def print_table(rows: list[Row]) -> None:
    print(f"\n{'set':15} {'output':44} {'shape':18} {'status':14} keys   problems")
    for r in rows:
        keys = f"{r.keys_matched}/{r.keys_total}"
        shape = "x".join(map(str, r.shape))
        status = "ok" if r.ok else r.status
        print(
            f"{r.set_name:15} {r.name[:44]:44} {shape:18} {status:14} {keys:6} "
            + " | ".join(r.problems)[:400]
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
