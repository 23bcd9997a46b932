"""dcm2niix beside our converter: the ``verify`` safety net and the optional backend.

:func:`run_on_series` runs dcm2niix (``-ba y``: its own anonymised sidecar) on exactly the
files of one series, linked into a private folder, and returns its outputs.
:func:`compare` states how our output agrees with the matching dcm2niix output: stored voxels,
scaling, affine and every sidecar key both write.  Nothing here ever modifies an input.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_IGNORED_KEYS = {"ConversionSoftware", "ConversionSoftwareVersion"}


class ReferenceUnavailable(RuntimeError):
    """dcm2niix is not installed or failed on the series."""


def executable() -> str:
    """The dcm2niix program (beside this Python first, then PATH)."""
    local = Path(sys.executable).parent / "dcm2niix"
    found = str(local) if local.is_file() else shutil.which("dcm2niix")
    if not found:
        raise ReferenceUnavailable(
            "dcm2niix is not installed: pip install 'anatprep[dcm2niix]' (or put it on PATH)"
        )
    return found


def version() -> str:
    out = subprocess.run([executable(), "--version"], capture_output=True, text=True)
    found = re.search(r"v\d+\.\d+\.\d+", out.stdout + out.stderr)
    return found.group(0) if found else "unknown"


@dataclass
class ReferenceOutput:
    nifti: Path
    sidecar: dict[str, Any]
    bval: Path | None
    bvec: Path | None


@contextmanager
def run_on_series(files: Sequence[str]) -> Iterator[list[ReferenceOutput]]:
    """dcm2niix's outputs for these files (a temporary folder, removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="anatprep-dcm2niix-") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        out.mkdir()
        for n, path in enumerate(dict.fromkeys(files)):
            suffix = ".dcm.gz" if str(path).endswith(".gz") else ".dcm"
            os.symlink(os.path.abspath(path), src / f"{n:06d}{suffix}")
        cmd = [executable(), "-b", "y", "-ba", "y", "-z", "n", "-f", "%s_%e_%p", "-o", str(out)]
        done = subprocess.run([*cmd, str(src)], capture_output=True, text=True)
        outputs = []
        for js in sorted(out.glob("*.json")):
            nii = js.with_suffix(".nii")
            if nii.exists():
                bval, bvec = js.with_suffix(".bval"), js.with_suffix(".bvec")
                outputs.append(
                    ReferenceOutput(
                        nii,
                        json.loads(js.read_text()),
                        bval if bval.exists() else None,
                        bvec if bvec.exists() else None,
                    )
                )
        if not outputs:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ReferenceUnavailable(f"dcm2niix wrote no image ({' | '.join(tail)})")
        yield outputs


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or abs(a - b) <= 1e-6 * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def best_match(outputs: list[ReferenceOutput], sidecar: dict[str, Any]) -> ReferenceOutput:
    """The output whose sidecar agrees with ``sidecar`` on the most keys."""

    def score(o: ReferenceOutput) -> int:
        keys = (o.sidecar.keys() & sidecar.keys()) - _IGNORED_KEYS
        return sum(_equal(o.sidecar[k], sidecar[k]) for k in keys)

    return max(outputs, key=score)


def compare(ours_nifti: Path, ours_sidecar: dict[str, Any], ref: ReferenceOutput) -> dict:
    """Agreement of our output with dcm2niix's, as a JSON-ready dict."""
    import nibabel as nb
    import numpy as np

    mine, theirs = nb.load(ours_nifti), nb.load(ref.nifti)
    a = np.asanyarray(mine.dataobj.get_unscaled())
    b = np.asanyarray(theirs.dataobj.get_unscaled())
    same_voxels = a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    scale_a = [mine.dataobj.slope, mine.dataobj.inter]
    scale_b = [theirs.dataobj.slope, theirs.dataobj.inter]
    same_scaling = bool(np.allclose(scale_a, scale_b, rtol=1e-5))
    affine_diff = float(np.abs(mine.affine - theirs.affine).max()) if a.shape == b.shape else None
    keys = sorted((ours_sidecar.keys() & ref.sidecar.keys()) - _IGNORED_KEYS)
    differing = [k for k in keys if not _equal(ours_sidecar[k], ref.sidecar[k])]
    agrees = (
        same_voxels
        and same_scaling
        and affine_diff is not None
        and affine_diff <= 1e-3
        and not differing
    )
    return {
        "Reference": f"dcm2niix {version()}",
        "Agrees": agrees,
        "VoxelsIdentical": same_voxels,
        "ScalingIdentical": same_scaling,
        "MaxAffineDifferenceMm": affine_diff,
        "KeysCompared": len(keys),
        "KeysDiffering": differing,
    }


def dcm2niix_agreement(
    files: Sequence[str], ours_nifti: Path, ours_sidecar: dict[str, Any]
) -> dict[str, Any]:
    """Run dcm2niix on the series and compare (see :func:`compare`); never raises."""
    try:
        with run_on_series(files) as outputs:
            return compare(ours_nifti, ours_sidecar, best_match(outputs, ours_sidecar))
    except (ReferenceUnavailable, OSError) as exc:
        return {"Reference": "dcm2niix", "Agrees": None, "Error": str(exc)}
