"""Index time of a synthetic tree with the header cache: cold, warm, warm after one change.

Writes ``--subjects`` series of ``--slices`` slices (``anatprep.pipelines.synthetic``), dates
the files back (the cache never trusts files modified just before it is saved), then indexes
the tree in fresh processes: without a cache, with a missing cache (cold), with the cache it
wrote (warm, ``--runs`` times) and after rewriting one file.

    python benchmarks/index_cache.py [--subjects 20] [--slices 170] [--matrix 128] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import json, sys, time
from pathlib import Path
from anatprep.interfaces.dicomio.index import index_tree
cache = Path(sys.argv[2]) if sys.argv[2] != "-" else None
t = time.perf_counter()
table = index_tree(sys.argv[1], cache_file=cache)
print(json.dumps({"seconds": time.perf_counter() - t, "files": table.n_files}))
"""


def write_tree(root: Path, subjects: int, slices: int, matrix: int) -> list[Path]:
    from anatprep.pipelines.synthetic import write_series

    rng = np.random.default_rng(0)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    paths: list[Path] = []
    for s in range(subjects):
        vol = rng.integers(0, 3000, size=(matrix, matrix, slices)).astype(float)
        paths += write_series(vol, affine, root / f"sub{s:02d}" / "t1", study_key=f"s{s}")
    then = time.time_ns() - 60 * 10**9
    for path in paths:
        os.utime(path, ns=(then, then))
    return paths


def timed(root: Path, cache: Path | None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(cache) if cache else "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--slices", type=int, default=170)
    parser.add_argument("--matrix", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the tree here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "dcm"
        paths = write_tree(root, args.subjects, args.slices, args.matrix)
        cache = Path(tmp) / "header_cache.json"
        plain = [timed(root, None) for _ in range(args.runs)]
        cold = timed(root, cache)
        warm = [timed(root, cache) for _ in range(args.runs)]
        data = bytearray(paths[len(paths) // 2].read_bytes())
        data[-1] ^= 0xFF
        paths[len(paths) // 2].write_bytes(bytes(data))
        os.utime(paths[len(paths) // 2], ns=(time.time_ns() - 10**10,) * 2)
        changed = timed(root, cache)
        size = cache.stat().st_size / 1e6
    print(
        f"{len(paths)} files ({args.subjects} x {args.slices}, {args.matrix}^2): "
        f"no cache {statistics.median(plain):.2f} s (median of {args.runs}), "
        f"cold {cold:.2f} s, warm {statistics.median(warm):.2f} s "
        f"(runs {[round(w, 2) for w in warm]}), one file changed {changed:.2f} s; "
        f"cache {size:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
