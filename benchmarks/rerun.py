"""Reruns of ``anatprep run`` on the same OUTPUT and work dir: nothing changed, one file
changed, one subject added.

Builds ``--subjects`` demo heads (``anatprep.pipelines.demo``: the template head warped,
bias and noise, 1.5 mm, axial and oblique sagittal in turn) as DICOM, runs the whole
pipeline once, then in fresh processes (wall time of the command, as a user sees it):

* no-op reruns (``--runs``, median): goal <= 10 s for 20 subjects (issue 13);
* one DICOM file of one subject rewritten in place (a pixel changed): only that subject's
  conversion and what follows it rerun (the nodes that ran are printed by the run);
* a new subject added: only its nodes run.

    python benchmarks/rerun.py [--subjects 20] [--runs 3] [--quality fast] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom

from anatprep.pipelines.demo import DemoSubject, build_demo_study


def _subjects(n: int, start: int = 1) -> tuple[DemoSubject, ...]:
    return tuple(
        DemoSubject(f"{k:02d}", "axial" if k % 2 else "sagittal", 0.0 if k % 2 else 12.0, k)
        for k in range(start, start + n)
    )


def _run(src: Path, out: Path, cfg: Path) -> tuple[float, str]:
    start = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(src), str(out),
         "--config", str(cfg)],
        capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"anatprep run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    found = re.search(r"nodes run: (\d+ of \d+)", res.stdout)
    return wall, found.group(1) if found else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quality", default="fast", help="brain-extraction preset, or 'off'")
    parser.add_argument("--keep", help="work here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(args.keep or tmp_name)
        src, out = tmp / "dicom", tmp / "out"
        build_demo_study(src, tmp / "truth", _subjects(args.subjects))
        cfg = tmp / "config.yaml"
        brain = "enabled: false" if args.quality == "off" else f"quality: {args.quality}"
        cfg.write_text(f"brain_extraction:\n  {brain}\n")
        rows = [("first run", *_run(src, out, cfg))]
        noop = [_run(src, out, cfg) for _ in range(args.runs)]
        rows.append((f"no-op rerun (median of {args.runs})",
                     statistics.median(w for w, _ in noop), noop[0][1]))  # fmt: skip
        path = sorted((src / "sub-05").rglob("*.dcm"))[10]
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.copy()
        pixels[0, 0] = pixels.max()
        ds.PixelData = pixels.tobytes()
        ds.save_as(path)
        rows.append(("one file of sub-05 changed", *_run(src, out, cfg)))
        build_demo_study(src, tmp / "truth", _subjects(1, start=args.subjects + 1))
        rows.append(("one subject added", *_run(src, out, cfg)))
    print(f"{args.subjects} subjects, brain extraction {args.quality}")
    print(f"{'run':36} {'wall s':>8}  nodes run")
    for name, wall, nodes in rows:
        print(f"{name:36} {wall:8.1f}  {nodes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
