"""Header indexing rate and memory: a dcm_qa set replicated (hard links) into a large tree.

Each size runs in a fresh process ``--runs`` times; prints the median files/s and the peak RSS
growth of the indexing call, so memory can be compared between tree sizes.

    python benchmarks/index.py [--data ../shared/data] [--set dcm_qa_nih] [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from anatprep.interfaces.dicomio.index import index_tree
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
table = index_tree(sys.argv[1])
dt = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
growth = (after - before) / 1024
print(json.dumps({"seconds": dt, "files": table.n_files, "rss_growth_mb": growth}))
"""


def replicate(src: Path, dst: Path, n: int) -> None:
    files = sorted(p for p in src.rglob("*.dcm"))
    for k in range(n):
        f = files[k % len(files)]
        folder = dst / f"copy{k // len(files):04d}" / f.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        os.link(f, folder / f.name)


def main() -> int:
    default_data = os.environ.get(
        "ANATPREP_TEST_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data)
    parser.add_argument("--set", default="dcm_qa_nih")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    src = Path(args.data) / "dicom" / args.set / "In"
    if not src.is_dir():
        print(f"needs {src}", file=sys.stderr)
        return 2
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            replicate(src, Path(tmp), size)
            runs = []
            for _ in range(args.runs):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, tmp], check=True, capture_output=True, text=True
                )
                runs.append(json.loads(out.stdout))
        rate = statistics.median(r.files / r["seconds"] for r in runs)
        rss = statistics.median(r["rss_growth_mb"] for r in runs)
        print(
            f"{args.set} x{size} files: median {rate:.0f} files/s "
            f"(runs {[round(r.files / r['seconds']) for r in runs]}), "
            f"peak RSS growth {rss:.1f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
