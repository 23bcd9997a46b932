"""dcm2niix beside our converter: the ``verify`` safety net and the optional backend.

:func:`run_on_series` runs dcm2niix (``-ba y``: its own anonymised sidecar) on exactly the
files of one series, linked into a private folder, and returns its outputs.
:func:`compare` states how our output agrees with the matching dcm2niix output (a
:class:`Parity` naming each differing field): stored voxels and data type, scaling, affine,
gradient tables and every key of our sidecar allow-list that dcm2niix writes.  The same rule
is the test suite's walk over the shared DICOM sets.  Nothing here ever modifies an input.
"""

from __future__ import annotations

import gzip
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
from typing import Any, Literal

from ..nifti import array_proxy, load_nifti

#: the converters a conversion can use: ours, or dcm2niix as the optional backend (same
#: output layout); the config, the conversion node and the ``convert`` command take this list
Converter = Literal["anatprep", "dcm2niix"]

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
class ConverterOutput:
    """One image a converter wrote, with its sidecar and gradient tables (if any)."""

    nifti: Path
    sidecar: dict[str, Any]
    bval: Path | None = None
    bvec: Path | None = None

    @classmethod
    def beside(cls, nifti: Path, sidecar: dict[str, Any]) -> ConverterOutput:
        """The output at ``nifti``, with the ``.bval``/``.bvec`` of the same stem if present."""
        stem = nifti.name.removesuffix(".gz").removesuffix(".nii")
        bval, bvec = nifti.with_name(stem + ".bval"), nifti.with_name(stem + ".bvec")
        return cls(
            nifti, sidecar, bval if bval.is_file() else None, bvec if bvec.is_file() else None
        )


#: the agreement rule of ``verify`` and of the test walk: affine within this (mm, RAS) ...
AFFINE_TOLERANCE_MM = 0.05
#: ... numbers (sidecar values, scaling) within this relative difference
RELATIVE_TOLERANCE = 1e-5


@contextmanager
def run_on_series(files: Sequence[str]) -> Iterator[list[ConverterOutput]]:
    """dcm2niix's outputs for these files (a temporary folder, removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="anatprep-dcm2niix-") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        out.mkdir()
        for n, path in enumerate(dict.fromkeys(files)):
            if str(path).endswith(".gz"):  # dcm2niix's wheel does not read .dcm.gz
                (src / f"{n:06d}.dcm").write_bytes(gzip.decompress(Path(path).read_bytes()))
            else:
                os.symlink(os.path.abspath(path), src / f"{n:06d}.dcm")
        # named by series and echo number only: no description in a file name or a message
        cmd = [executable(), "-b", "y", "-ba", "y", "-z", "n", "-f", "%s_%e", "-o", str(out)]
        done = subprocess.run([*cmd, str(src)], capture_output=True, text=True)
        outputs = read_outputs(out)
        if not outputs:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ReferenceUnavailable(f"dcm2niix wrote no image ({' | '.join(tail)})")
        yield outputs


def readable_copy(src: Path, dst: Path) -> Path:
    """``src`` as the dcm2niix wheel can read it: ``src`` itself, or (when it holds
    ``.dcm.gz`` files) a copy in ``dst`` with those decompressed."""
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


def read_outputs(folder: Path) -> list[ConverterOutput]:
    """Every image dcm2niix wrote into ``folder`` (uncompressed, with its JSON)."""
    outputs = []
    for js in sorted(folder.glob("*.json")):
        nii = js.with_suffix(".nii")
        if nii.exists():
            outputs.append(ConverterOutput.beside(nii, json.loads(js.read_text())))
    return outputs


def values_equal(a: Any, b: Any, rel: float = RELATIVE_TOLERANCE) -> bool:
    """Equal, with numbers (also inside lists) within ``rel`` of each other."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y, rel) for x, y in zip(a, b, strict=True))
    return a == b


def _shape(path: Path) -> tuple[int, ...]:
    return tuple(load_nifti(path).shape)


def best_match(
    outputs: list[ConverterOutput], sidecar: dict[str, Any], shape: tuple[int, ...] | None = None
) -> ConverterOutput:
    """The output (of ``shape``, when given) whose sidecar agrees with ``sidecar`` on the
    most keys."""

    def score(o: ConverterOutput) -> tuple[bool, int]:
        keys = (o.sidecar.keys() & sidecar.keys()) - _IGNORED_KEYS
        agreeing = sum(values_equal(o.sidecar[k], sidecar[k]) for k in keys)
        return shape is None or _shape(o.nifti) == shape, agreeing

    return max(outputs, key=score)


@dataclass(frozen=True)
class Parity:
    """How one output of ours agrees with dcm2niix's: each difference names its field."""

    reference: str
    voxels_identical: bool
    scaling_identical: bool
    max_affine_mm: float | None
    keys_compared: int
    differences: tuple[str, ...]
    keys_differing: tuple[str, ...]

    @property
    def agrees(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "Reference": self.reference,
            "Agrees": self.agrees,
            "VoxelsIdentical": self.voxels_identical,
            "ScalingIdentical": self.scaling_identical,
            "MaxAffineDifferenceMm": self.max_affine_mm,
            "KeysCompared": self.keys_compared,
            "KeysDiffering": list(self.keys_differing),
            "Differences": list(self.differences),
        }


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _table(path: Path | None):
    import numpy as np

    return None if path is None else np.atleast_1d(np.loadtxt(path))


def compare(ours: ConverterOutput, ref: ConverterOutput, reference: str = "") -> Parity:
    """Compare stored voxels and data type, scaling, affine (RAS), ``.bval``/``.bvec`` and
    every key of our sidecar allow-list that dcm2niix writes."""
    import numpy as np

    from .sidecar import ALLOWED_KEYS

    problems: list[str] = []
    mine, theirs = load_nifti(ours.nifti), load_nifti(ref.nifti)
    mine_voxels, their_voxels = array_proxy(mine), array_proxy(theirs)
    a = np.asanyarray(mine_voxels.get_unscaled())
    b = np.asanyarray(their_voxels.get_unscaled())
    same_voxels = a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    if not same_voxels:
        detail = f"ours {a.shape} {a.dtype}, dcm2niix {b.shape} {b.dtype}"
        if a.shape == b.shape:
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            detail += f", {int((diff > 0).sum())} voxels differ (max {diff.max():g})"
        problems.append(f"stored voxels: {detail}")
    scale_a = (float(mine_voxels.slope), float(mine_voxels.inter))
    scale_b = (float(their_voxels.slope), float(their_voxels.inter))
    same_scaling = bool(np.allclose(scale_a, scale_b, rtol=RELATIVE_TOLERANCE, atol=1e-9))
    if not same_scaling:
        problems.append(f"scaling (slope, intercept): ours {scale_a}, dcm2niix {scale_b}")
    affine_mm = None
    if a.shape[:3] == b.shape[:3]:
        affine_mm = float(np.abs(mine.affine - theirs.affine).max())
        if affine_mm > AFFINE_TOLERANCE_MM:
            problems.append(f"affine differs by {affine_mm:.3g} mm")
    else:
        problems.append("affine: the grids differ")
    for ext, mine_t, ref_t in ((".bval", ours.bval, ref.bval), (".bvec", ours.bvec, ref.bvec)):
        x, y = _table(mine_t), _table(ref_t)
        if x is None and y is None:
            continue
        if x is None or y is None:
            problems.append(f"{ext}: {'missing' if x is None else 'written, dcm2niix has none'}")
        elif x.shape != y.shape or not np.allclose(x, y, atol=1e-4, rtol=1e-4):
            problems.append(f"{ext} differs (ours {x.shape}, dcm2niix {y.shape})")
    keys = sorted((ALLOWED_KEYS & ref.sidecar.keys()) - _IGNORED_KEYS)
    differing = []
    for key in keys:
        if key not in ours.sidecar or not values_equal(ours.sidecar[key], ref.sidecar[key]):
            differing.append(key)
            got = _short(ours.sidecar[key]) if key in ours.sidecar else "<missing>"
            problems.append(f"{key}: ours {got}, dcm2niix {_short(ref.sidecar[key])}")
    return Parity(
        reference=reference or f"dcm2niix {version()}",
        voxels_identical=same_voxels,
        scaling_identical=same_scaling,
        max_affine_mm=affine_mm,
        keys_compared=len(keys),
        differences=tuple(problems),
        keys_differing=tuple(differing),
    )


def dcm2niix_agreement(
    files: Sequence[str], ours: ConverterOutput, leave_out: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Run dcm2niix on the series and compare (see :func:`compare`); never raises.
    ``leave_out``: sidecar keys neither compared nor quoted in the report."""
    try:
        with run_on_series(files) as outputs:
            ref = best_match(outputs, ours.sidecar, _shape(ours.nifti))
            sidecar = {k: v for k, v in ref.sidecar.items() if k not in leave_out}
            ref = ConverterOutput(ref.nifti, sidecar, ref.bval, ref.bvec)
            return compare(ours, ref).as_dict()
    except (ReferenceUnavailable, OSError) as exc:
        return {"Reference": "dcm2niix", "Agrees": None, "Error": str(exc)}
