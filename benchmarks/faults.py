"""Faults staged against real runs: kills, SIGTERM, a full disk, two runs on one OUTPUT.

Each case starts ``anatprep run`` as a user would (its own process), stages the fault at a
moment read off the run's own files, lets the fault play out, then runs the same command
again and compares OUTPUT with a clean reference run of the same study:

* ``kill -9 during conversion``: SIGKILL of the main process once the first converted image
  is in OUTPUT (conversion-only study of ``--convert-subjects`` demo heads);
* ``kill -9 during brain extraction``: SIGKILL once a brain-extraction node is running;
* ``SIGTERM during brain extraction``: what SLURM, ``timeout`` and container runtimes send;
* ``full work disk``: the work dir on a 2 MB tmpfs with 40 kB free (then freed);
* ``full OUTPUT disk``: OUTPUT on such a tmpfs (then freed);
* ``two concurrent runs``: a second run on the same OUTPUT while the first runs;
* ``nested: OUTPUT inside a live convert's OUTPUT`` and ``nested: a live convert's OUTPUT
  inside OUTPUT`` (conversion only, the issue 22 race; ``--cases nested`` runs just these):
  ``anatprep convert`` of the ``--convert-subjects`` study into ``outer`` (or
  ``outer/inner``) and, while it runs, of a one-subject study into ``outer/inner`` (or
  ``outer``); the second must be refused and the first lose nothing.

One table: case, outcome of the faulted run (exit code, what it said), whether the rerun
completed and OUTPUT is byte-identical to the reference, files lost (in the reference and
not in OUTPUT), stray ``.part`` files, and live processes left by the killed run.  For the
nested cases: the second command's exit and message, the first's OUTPUT against a clean
``convert`` of the same study.

    python benchmarks/faults.py [--quality fast] [--convert-subjects 8] [--keep DIR]
                                [--cases SUBSTRING ...]   # only the cases named so

Needs root for the tmpfs cases (skipped, and said so, otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from anatprep.pipelines.demo import DemoSubject, build_demo_study
from anatprep.pipelines.provenance import is_run_record


@dataclass
class Case:
    name: str
    exit_code: int | None = None
    outcome: str = ""
    resumed_identical: str = "no"
    files_lost: int = -1
    stray_parts: int = -1
    live_workers: int = 0
    seconds: float = 0.0


def _subjects(n: int) -> tuple[DemoSubject, ...]:
    return tuple(
        DemoSubject(f"{k:02d}", "axial" if k % 2 else "sagittal", 0.0 if k % 2 else 12.0, k)
        for k in range(1, n + 1)
    )


def _cmd(src: Path, out: Path, work: Path, cfg: Path) -> list[str]:
    return [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(src), str(out),
            "--work-dir", str(work), "--config", str(cfg)]  # fmt: skip


def _start(src: Path, out: Path, work: Path, cfg: Path, log: Path) -> subprocess.Popen:
    fh = open(log, "w")  # noqa: SIM115 - kept open for the child's lifetime
    return subprocess.Popen(_cmd(src, out, work, cfg), stdout=fh, stderr=subprocess.STDOUT)


def _run(src: Path, out: Path, work: Path, cfg: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(src, out, work, cfg), capture_output=True, text=True)


def _digests(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        # left out: hidden files (a running run's lock) and the run records (times, by design)
        if path.is_file() and not path.name.startswith(".") and not is_run_record(rel):
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _descendants(pid: int) -> list[int]:
    """Live processes whose ancestry leads to ``pid`` (zombies excluded)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parent[int(entry)] = int(fields[1])
    found = []
    for child in parent:
        p = child
        while p in parent and p != pid:
            p = parent[p]
        if p == pid and child != pid:
            found.append(child)
    return found


def _wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _finish(case: Case, src, out, work, cfg, reference: dict[str, str]) -> None:
    """Run the same command again; compare OUTPUT with the reference."""
    again = _run(src, out, work, cfg)
    got = _digests(out)
    case.files_lost = len(set(reference) - set(got))
    same = again.returncode == 0 and got == reference
    case.resumed_identical = "yes" if same else f"no (exit {again.returncode})"
    case.stray_parts = len([p for p in out.rglob("*.part")])


def _tail(log: Path, n: int = 1) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    wanted = [ln for ln in lines if "anatprep:" in ln or "FAILED" in ln or "in use" in ln]
    return " | ".join((wanted or lines)[-n:])[:110]


def _signal_case(name, sig, trigger, src, base: Path, cfg, reference) -> Case:
    case = Case(name)
    out, work = base / "out", base / "work"
    start = time.perf_counter()
    proc = _start(src, out, work, cfg, base / "log")
    if not _wait_for(lambda: trigger(out, work) or proc.poll() is not None, 900):
        case.outcome = "trigger never came"
    if proc.poll() is None:
        children = _descendants(proc.pid)
        os.kill(proc.pid, sig)
        proc.wait(timeout=120)
        time.sleep(2)  # the workers' parent-death signal, or the SIGTERM handler's clean-up
        case.live_workers = len([c for c in children if Path(f"/proc/{c}").exists()
                                 and "Z" not in Path(f"/proc/{c}/stat").read_text()])  # fmt: skip
        case.outcome = case.outcome or f"signal {sig.name} sent; {_tail(base / 'log')}"
    else:
        case.outcome = "finished before the fault"
    case.exit_code = proc.returncode
    _finish(case, src, out, work, cfg, reference)
    case.seconds = time.perf_counter() - start
    return case


def _be_running(out: Path, work: Path) -> bool:
    """A brain-extraction node has started (nipype saves its inputs first), 3 s ago."""
    started = list(work.glob("anatprep_wf/*/anat_*/brain_extraction/_inputs.pklz"))
    return bool(started) and time.time() - started[0].stat().st_mtime > 3


def _converted(out: Path, work: Path) -> bool:
    return any(out.glob("sub-*/anat/*.nii.gz"))


def _mount_tmpfs(where: Path, size_kb: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def _size_kb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024


def _full_disk_case(name: str, which: str, src, base: Path, cfg, reference, size_kb) -> Case:
    """The work dir or OUTPUT on a tmpfs big enough for the whole run (``size_kb``), filled
    up to 40 kB free; freed again before the rerun."""
    case = Case(name)
    disk = base / "disk"
    if not _mount_tmpfs(disk, size_kb):
        case.outcome = "skipped: cannot mount a tmpfs (needs root)"
        return case
    try:
        out = disk / "out" if which == "output" else base / "out"
        work = disk / "work" if which == "work" else base / "work"
        filler = disk / "filler"
        free_kb = shutil.disk_usage(disk).free // 1024
        filler.write_bytes(b"\0" * (free_kb - 40) * 1024)
        start = time.perf_counter()
        try:
            res = subprocess.run(_cmd(src, out, work, cfg), capture_output=True, text=True,
                                 timeout=600)  # fmt: skip
            case.exit_code = res.returncode
            said = [ln for ln in (res.stdout + res.stderr).splitlines() if "No space" in ln]
            first = said[0].strip()[:70] if said else ""
            case.outcome = f"ended; {len(said)} line(s) name the full disk, e.g. '{first}'"
        except subprocess.TimeoutExpired:
            case.outcome = "HUNG (killed after 600 s)"
        filler.unlink()
        _finish(case, src, out, work, cfg, reference)
        case.seconds = time.perf_counter() - start
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    return case


def _concurrent_case(src, base: Path, cfg, reference) -> Case:
    case = Case("two concurrent runs")
    out, work = base / "out", base / "work"
    start = time.perf_counter()
    first = _start(src, out, work, cfg, base / "log")
    _wait_for(lambda: (out / ".anatprep.lock").exists() or first.poll() is not None, 120)
    second = _run(src, out, base / "work2", cfg)
    first.wait()
    said = next((ln for ln in second.stderr.splitlines() if "in use" in ln), second.stderr[-100:])
    case.exit_code = second.returncode
    case.outcome = f"first exit {first.returncode}; second: {said.strip()[:90]}"
    return _compared(case, out, out, reference, start)


def _compared(case: Case, out: Path, scope: Path, reference, start: float) -> Case:
    """``case`` with the first run's OUTPUT ``out`` against ``reference`` (files lost,
    identical) and the ``.part`` files left below ``scope``."""
    got = _digests(out)
    case.files_lost = len(set(reference) - set(got))
    case.resumed_identical = "yes" if got == reference else "no"
    case.stray_parts = len(list(scope.rglob("*.part")))
    case.seconds = time.perf_counter() - start
    return case


def _convert_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "anatprep.pipelines.cli", "convert", str(src), str(out)]


def _nested_case(name: str, src, small, base: Path, reference, first_inside: bool) -> Case:
    """``convert src`` into one of ``outer`` / ``outer/inner`` and, while it holds its
    OUTPUT, ``convert small`` into the other: the second must be refused (exit 2) and the
    first's OUTPUT lose nothing (against ``reference``, a clean convert of ``src``)."""
    case = Case(name)
    outer = base / "outer"
    first_out, second_out = (outer / "inner", outer) if first_inside else (outer, outer / "inner")
    start = time.perf_counter()
    with open(base / "log", "w") as log:
        first = subprocess.Popen(_convert_cmd(src, first_out), stdout=log, stderr=log)
        _wait_for(lambda: (first_out / ".anatprep.lock").exists() or first.poll() is not None, 120)
        live = first.poll() is None
        second = subprocess.run(_convert_cmd(small, second_out), capture_output=True, text=True)
        first.wait()
    said = next((ln for ln in second.stderr.splitlines() if "error:" in ln), "")
    race = "" if live else " (NOT concurrent: the first had ended)"
    case.exit_code = second.returncode
    case.outcome = f"first exit {first.returncode}{race}; second: {said.strip()[:110]}"
    _compared(case, first_out, outer, reference, start)
    if second.returncode != 2:
        case.resumed_identical += f" (second exit {second.returncode}, not refused)"
    return case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", default="fast", help="brain-extraction preset")
    parser.add_argument("--convert-subjects", type=int, default=8)
    parser.add_argument("--keep", help="work here and keep it")
    parser.add_argument("--cases", nargs="+", metavar="SUBSTRING",
                        help="run only the cases whose name holds one of these")  # fmt: skip
    args = parser.parse_args()

    def wanted(name: str) -> bool:
        return not args.cases or any(s.lower() in name.lower() for s in args.cases)

    tmp = tempfile.mkdtemp(prefix="anatprep-faults-", dir=args.keep)
    root = Path(tmp)
    be_src, conv_src = root / "be_dicom", root / "conv_dicom"
    be_cfg, conv_cfg = root / "be.yaml", root / "conv.yaml"
    be_cfg.write_text(f"brain_extraction: {{quality: {args.quality}}}\nexecution: {{n_procs: 2}}\n")
    conv_cfg.write_text("brain_extraction: {enabled: false}\nexecution: {n_procs: 2}\n")
    built: set[Path] = set()
    refs: dict[str, dict[str, str]] = {}

    def source(src: Path, n: int) -> Path:
        if src not in built:
            build_demo_study(src, root / "truth", _subjects(n))
            built.add(src)
        return src

    def ref(name: str) -> dict[str, str]:
        """The reference OUTPUT of ``be`` / ``conv`` (run) or ``convert``, made once."""
        if name not in refs:
            t0 = time.perf_counter()
            out = root / f"ref_{name}" / "out"
            if name == "convert":
                res = subprocess.run(_convert_cmd(source(conv_src, args.convert_subjects), out),
                                     capture_output=True, text=True)  # fmt: skip
            else:
                src = source(be_src, 2) if name == "be" else source(
                    conv_src, args.convert_subjects)
                cfg = be_cfg if name == "be" else conv_cfg
                res = _run(src, out, root / f"ref_{name}" / "work", cfg)
            if res.returncode != 0:
                raise SystemExit(f"reference {name} failed ({res.returncode}):\n"
                                 f"{res.stdout}{res.stderr}")  # fmt: skip
            refs[name] = _digests(out)
            print(f"reference {name}: {len(refs[name])} files, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        return refs[name]

    cases = []
    plan = [
        ("kill -9 during conversion", signal.SIGKILL, _converted, conv_src, conv_cfg, "conv"),
        ("kill -9 during brain extraction", signal.SIGKILL, _be_running, be_src, be_cfg, "be"),
        ("SIGTERM during brain extraction", signal.SIGTERM, _be_running, be_src, be_cfg, "be"),
    ]
    for i, (name, sig, trigger, src, cfg, kind) in enumerate(plan):
        if not wanted(name):
            continue
        base = root / f"case{i}"
        base.mkdir()
        reference = ref(kind)
        cases.append(_signal_case(name, sig, trigger, src, base, cfg, reference))
        print(f"done: {name}", flush=True)
    for i, which in enumerate(("work", "output")):
        label = f"full {'work' if which == 'work' else 'OUTPUT'} disk (40 kB free)"
        if not wanted(label):
            continue
        base = root / f"disk{i}"
        base.mkdir()
        reference = ref("conv")
        used = _size_kb(root / "ref_conv" / ("out" if which == "output" else "work"))
        cases.append(_full_disk_case(label, which, conv_src, base, conv_cfg, reference,
                                     2 * used + 8192))  # fmt: skip
        print(f"done: {label}", flush=True)
    if wanted("two concurrent runs"):
        base = root / "concurrent"
        base.mkdir()
        reference = ref("be")
        cases.append(_concurrent_case(be_src, base, be_cfg, reference))
    for i, (label, first_inside) in enumerate((
        ("nested: OUTPUT inside a live convert's OUTPUT", False),
        ("nested: a live convert's OUTPUT inside OUTPUT", True),
    )):  # fmt: skip
        if not wanted(label):
            continue
        base = root / f"nested{i}"
        base.mkdir()
        reference = ref("convert")
        small = source(root / "small_dicom", 1)
        cases.append(_nested_case(label, conv_src, small, base, reference, first_inside))
        print(f"done: {label}", flush=True)

    print()
    print("| case | exit | outcome | resumed byte-identical | files lost | stray .part "
          "| workers left | s |")
    print("|---|---|---|---|---|---|---|---|")
    for c in cases:
        cells = [c.name, c.exit_code, c.outcome, c.resumed_identical, c.files_lost,
                 c.stray_parts, c.live_workers, f"{c.seconds:.0f}"]  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    bad = [c for c in cases if not c.outcome.startswith("skipped") and
           (c.resumed_identical != "yes" or c.files_lost or c.stray_parts or c.live_workers)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
