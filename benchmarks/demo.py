"""``anatprep demo`` as a new user runs it: wall time of the whole command and the Dice of each
extracted mask with the demo's truth, the figures the README quotes.

Each run is a fresh process in a fresh folder (the installed console script, beside this
interpreter); the table is printed as Markdown with the date, so the README can quote it with
its source.

    python benchmarks/demo.py [--runs 1] [--quality default] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _demo(folder: Path, quality: str | None) -> tuple[float, dict[str, float]]:
    exe = Path(sys.executable).with_name("anatprep")
    cmd = [str(exe), "demo", str(folder / "demo")]
    if quality:
        cmd += ["--quality", quality]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=folder)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"anatprep demo failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    dice = json.loads((folder / "demo" / "demo_dice.json").read_text())
    return seconds, dice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quality", choices=["fast", "default", "precise"], default=None,
                        help="the demo's own preset when not given")  # fmt: skip
    parser.add_argument("--keep", type=Path, help="keep the runs' folders under DIR")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="anatprep-demo-bench-", dir=args.keep))
    times: list[float] = []
    dices: list[dict[str, float]] = []
    try:
        for k in range(args.runs):
            folder = root / f"run{k}"
            folder.mkdir()
            seconds, dice = _demo(folder, args.quality)
            times.append(seconds)
            dices.append(dice)
            print(f"run {k}: {seconds:.1f} s, Dice {dice}", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    today = datetime.date.today().isoformat()
    labels = sorted(dices[0])
    print(f"`anatprep demo` ({today}, {os.cpu_count()} cores, {args.runs} run(s), "
          f"quality {args.quality or 'default'}):\n")  # fmt: skip
    print("| wall time (median) | " + " | ".join(f"Dice sub-{s}" for s in labels) + " |")
    print("|---|" + "---|" * len(labels))
    cells = [f"{statistics.median(d[s] for d in dices):.3f}" for s in labels]
    print(f"| {statistics.median(times):.0f} s | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
