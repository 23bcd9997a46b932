"""Conversion speed: anatprep's converter against dcm2niix on the same series.

Converts ``dcm_qa_asl_t1`` (192-slice 1 mm MPRAGE) to ``.nii.gz`` + JSON with each tool,
alternating, ``--runs`` times; prints the medians and the ratio (ours / dcm2niix) and the
output sizes.  Both run as fresh processes so start-up costs count alike.

Then the multi-vendor figure: every shared set (``dicom/dcm_qa_*/In``, a gunzipped copy so
both tools read the same files), each tool over each set in turn, ``--runs`` times: the
median wall per set and in total, and the ratio.

    python benchmarks/convert.py [--data ../shared/data] [--runs 5] [--no-sets]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from anatprep.interfaces.atomic import DEFAULT_LEVEL
from anatprep.interfaces.dicomio.reference import readable_copy

MEMORY = """
import json, resource, sys
from pathlib import Path
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry
from anatprep.interfaces.dicomio.index import index_tree
table = index_tree(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
nii, _ = convert_entry(table.series[0], Path(sys.argv[2]) / "mem")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024}))
"""


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def multi_vendor(data: Path, exe: str, runs: int, compression: int) -> None:
    """Every shared set with each tool: median wall per set, totals and their ratio."""
    sets = sorted(p.parent for p in (data / "dicom").glob("dcm_qa_*/In"))
    ours_cmd = [sys.executable, "-m", "anatprep.pipelines.cli", "convert", "--compression"]
    medians: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for folder in sets:
            src = readable_copy(folder / "In", Path(tmp) / folder.name / "in")  # no .dcm.gz
            t_o, t_r = [], []
            for run in range(runs):
                out_o, out_r = (
                    Path(tmp) / folder.name / f"o{run}",
                    Path(tmp) / folder.name / f"r{run}",
                )
                out_o.mkdir(parents=True)
                out_r.mkdir(parents=True)
                start = time.perf_counter()
                subprocess.run(
                    [*ours_cmd, str(compression), str(src), str(out_o)], capture_output=True
                )  # fmt: skip  (exit 4: a failed series)
                t_o.append(time.perf_counter() - start)
                t_r.append(_time([exe, "-z", "y", "-b", "y", "-f", "%s_%p", "-o", str(out_r),
                                  str(src)]))  # fmt: skip
            medians[folder.name] = (statistics.median(t_o), statistics.median(t_r))
    print(f"\nall shared sets, {runs} runs each (medians, s):")
    print(f"{'set':16} {'anatprep':>9} {'dcm2niix':>9} {'ratio':>6}")
    for name, (o, r) in medians.items():
        print(f"{name:16} {o:9.3f} {r:9.3f} {o / r:6.2f}")
    total_o = sum(o for o, _ in medians.values())
    total_r = sum(r for _, r in medians.values())
    print(f"{'total':16} {total_o:9.3f} {total_r:9.3f} {total_o / total_r:6.2f}")


def main() -> int:
    default_data = os.environ.get(
        "ANATPREP_TEST_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compression", type=int, default=DEFAULT_LEVEL, help="zlib level 0-9")
    parser.add_argument("--no-sets", action="store_true", help="skip the multi-vendor figure")
    args = parser.parse_args()
    src = Path(args.data) / "dicom" / "dcm_qa_asl_t1" / "In" / "T1"
    local = Path(sys.executable).parent / "dcm2niix"
    exe = str(local) if local.is_file() else shutil.which("dcm2niix")
    if not src.is_dir() or exe is None:
        print(f"needs {src} and dcm2niix on PATH", file=sys.stderr)
        return 2
    ours_cmd = [sys.executable, "-m", "anatprep.pipelines.cli"]  # what the `anatprep` script runs
    ours_t, ref_t = [], []
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            out_o, out_r = Path(tmp) / f"o{run}", Path(tmp) / f"r{run}"
            out_o.mkdir()
            out_r.mkdir()
            ours_t.append(
                _time(
                    [
                        *ours_cmd,
                        "convert",
                        "--compression",
                        str(args.compression),
                        str(src),
                        str(out_o),
                    ]
                )
            )
            ref_t.append(_time([exe, "-z", "y", "-b", "y", "-f", "t1", "-o", str(out_r), str(src)]))
        sizes["ours"] = next((Path(tmp) / "o0").glob("*.nii.gz")).stat().st_size
        sizes["dcm2niix"] = (Path(tmp) / "r0" / "t1.nii.gz").stat().st_size
        out = subprocess.run(
            [sys.executable, "-c", MEMORY, str(src), tmp], check=True, capture_output=True
        )
        growth = json.loads(out.stdout)["growth_mb"]
    volume_mb = 192 * 256 * 256 * 2 / 2**20  # the int16 output volume
    mo, mr = statistics.median(ours_t), statistics.median(ref_t)
    print(
        f"series: {src} (192 slices), {args.runs} runs each, our deflate level {args.compression}"
    )
    print(f"anatprep  median {mo:.3f} s  runs {[round(t, 3) for t in ours_t]}")
    print(f"dcm2niix  median {mr:.3f} s  runs {[round(t, 3) for t in ref_t]}")
    print(f"time ratio anatprep/dcm2niix = {mo / mr:.2f}")
    print(
        f"size: anatprep {sizes['ours'] / 1e6:.2f} MB, dcm2niix {sizes['dcm2niix'] / 1e6:.2f} MB,"
        f" ratio {sizes['ours'] / sizes['dcm2niix']:.3f}"
    )
    print(
        f"memory: peak RSS growth of one conversion {growth:.1f} MiB = "
        f"{growth / volume_mb:.2f}x the {volume_mb:.1f} MiB output volume"
    )
    if not args.no_sets:
        multi_vendor(Path(args.data), exe, args.runs, args.compression)
    return 0


if __name__ == "__main__":
    sys.exit(main())
