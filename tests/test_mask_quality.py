"""Brain-mask invariants and QC signals on synthetic masks (no registration, fast).

Each defect the QC must catch is built on a 1 mm ball brain (about 1440 mL): a cavity inside
some slices (left-out ventricles), a second component, a template prior reaching beyond the
mask (a cortex cut).  Each test asserts the signal and its flag with the defect, and no flag
on the same mask without it.  Then the sidecar notes and the end-of-run summary line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from anatprep.interfaces.brain_extraction import _sidecar_notes
from anatprep.interfaces.brainmask.extract import BrainExtractionResult
from anatprep.interfaces.brainmask.quality import (
    MAX_PRIOR_OUTSIDE,
    MaskQuality,
    measure_mask,
    quality_flags,
)
from anatprep.pipelines.cli import _report
from anatprep.pipelines.execution import Failure, RunSummary
from anatprep.pipelines.mask_qc import flagged_lines

RANGE = (700.0, 2600.0)
VOX = (1.0, 1.0, 1.0)
RAS = np.eye(4)


def _grid(n: int = 160) -> np.ndarray:
    return np.indices((n, n, n)) - n // 2


def _ball(radius: float = 70.0, n: int = 160, centre=(0, 0, 0)) -> np.ndarray:
    g = _grid(n)
    return ((g[0] - centre[0]) ** 2 + (g[1] - centre[1]) ** 2 + (g[2] - centre[2]) ** 2) < (
        radius**2
    )


def _prior(mask: np.ndarray) -> np.ndarray:
    """A template brain prior as the extraction makes it: the binary mask smoothed by 1 mm."""
    return ndimage.gaussian_filter(mask.astype(np.float32), 1.0)


def test_ball_is_in_range():
    ball = _ball()
    q = measure_mask(ball, VOX, _prior(ball), RAS)
    assert q.volume_ml == pytest.approx(4 / 3 * np.pi * 70**3 / 1000, rel=0.01)
    assert q.components == 1
    assert q.slices_with_holes == 0 and q.slice_hole_ml == 0.0
    assert q.prior_outside_fraction is not None and q.prior_outside_fraction < MAX_PRIOR_OUTSIDE
    assert quality_flags(q, RANGE) == []


def test_cavity_in_some_slices_is_flagged():
    """Ventricles left out: a slab-shaped cavity open to the outside at the bottom (so a 3D
    fill would not close it) is still an enclosed hole in each axial slice above its
    opening."""
    ball = _ball()
    g = _grid()
    cavity = (np.abs(g[0]) < 4) & (np.abs(g[1]) < 15) & (g[2] > -80) & (g[2] < 20)
    holed = ball & ~cavity
    # the cavity reaches the outside at the bottom: one 3D component, no 3D cavity
    assert ndimage.label(~holed)[1] == 1
    q = measure_mask(holed, VOX, _prior(ball), RAS)
    assert q.components == 1
    # seen in the axial slices only (z -79..19 less the bottom cap where it opens); the
    # sagittal and coronal slices through it open at the bottom
    assert 80 < q.slices_with_holes_by_plane["axial"] < 99
    assert q.slices_with_holes_by_plane["sagittal"] == q.slices_with_holes_by_plane["coronal"] == 0
    assert q.slice_hole_ml > 5.0
    flags = quality_flags(q, RANGE)
    assert len(flags) == 1 and flags[0].startswith(f"enclosed holes in {q.slices_with_holes}")
    # the same mask with the cavity filled: no hole, no flag
    assert quality_flags(measure_mask(ball, VOX, _prior(ball), RAS), RANGE) == []


def test_enclosed_cavity_counts_in_every_plane():
    ball = _ball()
    g = _grid()
    cavity = (np.abs(g[0]) < 5) & (np.abs(g[1]) < 10) & (np.abs(g[2]) < 8)
    q = measure_mask(ball & ~cavity, VOX, None, RAS)
    assert q.slices_with_holes_by_plane == {"sagittal": 9, "coronal": 19, "axial": 15}
    assert q.slice_hole_ml == pytest.approx(3 * cavity.sum() / 1000)
    assert q.prior_outside_fraction is None
    assert "enclosed holes in 43 slices" in quality_flags(q, RANGE)[0]


def test_hole_outside_the_template_brain_is_not_flagged():
    """The basal cisterns: CSF enclosed in axial slices of any right mask, and outside the
    template brain too (prior ~0 there): reported, not flagged.  The same hole where the
    template has brain (a left-out ventricle) is flagged."""
    ball = _ball()
    g = _grid()
    cistern = (np.abs(g[0]) < 6) & (np.abs(g[1]) < 6) & (g[2] > -80) & (g[2] < -40)
    q = measure_mask(ball & ~cistern, VOX, _prior(ball & ~cistern), RAS)
    assert q.slices_with_holes == 0 and q.slices_with_holes_outside_prior is not None
    assert q.slices_with_holes_outside_prior > 10
    assert quality_flags(q, RANGE) == []
    q = measure_mask(ball & ~cistern, VOX, _prior(ball), RAS)
    assert q.slices_with_holes == q.slices_with_holes_by_plane["axial"] > 10
    assert q.slices_with_holes_outside_prior == 0
    assert quality_flags(q, RANGE)[0].startswith("enclosed holes in")


def test_notch_open_to_the_border_is_no_hole():
    """A sulcus-like notch reaching the outside of every slice it crosses is not a hole."""
    ball = _ball()
    g = _grid()
    notch = (np.abs(g[0]) < 2) & (g[2] > 40)
    q = measure_mask(ball & ~notch, VOX, None, RAS)
    assert q.slices_with_holes == 0 and q.components == 1


def test_two_balls_are_flagged():
    one = _ball(58, centre=(0, -20, 0))
    two = one | _ball(15, centre=(0, 60, 0))
    q = measure_mask(two, VOX, _prior(two), RAS)
    assert q.components == 2
    assert quality_flags(q, RANGE) == ["2 connected components (!= 1)"]
    assert quality_flags(measure_mask(one, VOX, _prior(one), RAS), RANGE) == []


def test_corner_touch_is_one_component():
    """Components are 26-connected: cubes sharing only a corner voxel are one piece."""
    cubes = np.zeros((30, 30, 30), bool)
    cubes[5:15, 5:15, 5:15] = True
    cubes[15:20, 15:20, 15:20] = True
    assert ndimage.label(cubes)[1] == 2  # 6-connected: two
    assert measure_mask(cubes, VOX, None, RAS).components == 1


def test_prior_beyond_the_mask_is_flagged():
    """A cortex cut: the final mask lost its top ~9% of brain (the elderly head of issue 12
    lost ~15% against antsBrainExtraction.sh's mask); the template prior did not."""
    ball = _ball()
    g = _grid()
    cut = ball & (g[2] < 44)  # the cap above 44 mm holds ~9% of the ball
    assert 0.07 < 1 - cut.sum() / ball.sum() < 0.11
    prior = _prior(ball)
    q = measure_mask(cut, VOX, prior, RAS)
    assert q.components == 1 and q.slices_with_holes == 0
    assert q.prior_outside_fraction is not None and q.prior_outside_fraction > MAX_PRIOR_OUTSIDE
    assert quality_flags(q, RANGE) == [
        f"prior outside mask {q.prior_outside_fraction:.3f} (> {MAX_PRIOR_OUTSIDE:g})"
    ]
    uncut = measure_mask(ball, VOX, prior, RAS)
    assert uncut.prior_outside_fraction is not None
    assert uncut.prior_outside_fraction < MAX_PRIOR_OUTSIDE
    assert quality_flags(uncut, RANGE) == []


def test_volume_out_of_range_and_empty_mask():
    small = _ball(30)
    assert quality_flags(measure_mask(small, VOX, None, RAS), RANGE) == [
        "mask volume 113 mL (outside 700-2600 mL)"
    ]
    empty = measure_mask(np.zeros((8, 8, 8), bool), VOX, None, RAS)
    assert empty.components == 0 and empty.volume_ml == 0.0
    assert len(quality_flags(empty, RANGE)) == 2


def test_voxel_size_and_plane_names_follow_the_header():
    ball = _ball(35, n=80)
    affine = np.array([[0, -2, 0, 0], [0, 0, -2, 0], [2, 0, 0, 0], [0, 0, 0, 1]], float)
    q = measure_mask(ball, (2.0, 2.0, 2.0), None, affine)  # voxel axes S, L, P
    assert q.volume_ml == pytest.approx(ball.sum() * 8 / 1000)
    assert list(q.slices_with_holes_by_plane) == ["axial", "sagittal", "coronal"]
    with pytest.raises(ValueError, match="prior shape"):
        measure_mask(ball, VOX, np.zeros((4, 4, 4)), None)


@pytest.mark.slow
def test_fast_on_a_256_cube():
    big = _ball(75, n=256)
    prior = _prior(big)
    measure_mask(big[:8], VOX, prior[:8], RAS)  # first-call costs (imports) aside
    start = time.process_time()  # CPU time: the test machine may be busy
    measure_mask(big, VOX, prior, RAS)
    assert time.process_time() - start < 1.0


def _result(flags: list[str]) -> BrainExtractionResult:
    q = MaskQuality(1234.5, 1, {"axial": 0, "coronal": 0, "sagittal": 0}, 0.0, 0.0125, 2)
    return BrainExtractionResult(
        bias_corrected="bc.nii.gz", mask="m.nii.gz", brain="b.nii.gz", probsegs={},
        affine=None, warp=None, stats="s.json", mask_volume_ml=1234.5,
        skull_stripped_input=False, mask_quality=q.as_sidecar(), quality_flags=tuple(flags),
    )  # fmt: skip


def test_sidecar_notes_carry_quality_on_the_mask_only():
    out = _result(["prior outside mask 0.120 (> 0.06)"])
    notes = _sidecar_notes(out, "robex", "default", 42)
    assert set(notes) == {"preproc", "mask", "brain"}
    assert notes["mask"]["MaskQuality"] == {
        "VolumeMl": 1234.5,
        "Components": 1,
        "SlicesWithHoles": 0,
        "SlicesWithHolesByPlane": {"axial": 0, "coronal": 0, "sagittal": 0},
        "SliceHoleMl": 0.0,
        "PriorOutsideFraction": 0.0125,
        "SlicesWithHolesOutsidePrior": 2,
    }
    assert notes["mask"]["QualityFlags"] == ["prior outside mask 0.120 (> 0.06)"]
    assert all("MaskQuality" not in n for k, n in notes.items() if k != "mask")
    method = notes["brain"]["BrainExtraction"]["Method"]
    assert "Atropos" in method
    no_atropos = _sidecar_notes(out, "robex", "default", 42, atropos=False)
    assert "Atropos" not in no_atropos["brain"]["BrainExtraction"]["Method"]
    no_prior = MaskQuality(1.0, 1, {"axis0": 0, "axis1": 0, "axis2": 0}, 0.0, None)
    assert "PriorOutsideFraction" not in no_prior.as_sidecar()


def _sidecar(root: Path, rel: str, flags: list[str] | None) -> None:
    path = root / "derivatives" / "anatprep" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: dict = {"Type": "Brain"}
    if flags is not None:
        meta["QualityFlags"] = flags
    path.write_text(json.dumps(meta))


def test_summary_lists_flagged_subjects_after_everything(tmp_path, capsys):
    prior_flag = "prior outside mask 0.120 (> 0.06)"
    two_flags = ["2 connected components (!= 1)", "enclosed holes in 3 slices (3 axial; 0.10 mL)"]
    _sidecar(tmp_path, "sub-01/anat/sub-01_desc-brain_mask.json", [prior_flag])
    _sidecar(tmp_path, "sub-02/anat/sub-02_desc-brain_mask.json", [])
    _sidecar(tmp_path, "sub-03/ses-a/anat/sub-03_ses-a_run-2_desc-brain_mask.json", two_flags)
    _sidecar(tmp_path, "sub-04/anat/sub-04_desc-brain_mask.json", ["stale: sub-04 failed"])
    _sidecar(tmp_path, "sub-05/anat/sub-05_desc-brain_mask.json", None)  # older run
    summary = RunSummary(subjects=["sub-01", "sub-02", "sub-03_ses-a", "sub-04", "sub-05"])
    summary.failures = [Failure("sub-04", "wf.sub_04_wf.anat", "boom", "crash.txt")]
    exit_code = summary.exit_code
    _report(summary, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [
        "QC FLAGGED sub-01: prior outside mask 0.120 (> 0.06)",
        "QC FLAGGED sub-03_ses-a (sub-03_ses-a_run-2): 2 connected components (!= 1); "
        "enclosed holes in 3 slices (3 axial; 0.10 mL)",
    ]
    assert lines[-3].startswith("  crash file:")  # after the failures
    assert not any("sub-04" in ln and "QC" in ln for ln in lines)
    assert summary.exit_code == exit_code  # flags never change the exit code
    # the same run with nothing flagged prints no QC line
    _sidecar(tmp_path, "sub-01/anat/sub-01_desc-brain_mask.json", [])
    assert flagged_lines(tmp_path, ["sub-01", "sub-02"]) == []


def test_unreadable_sidecar_is_reported(tmp_path):
    bad = tmp_path / "derivatives/anatprep/sub-01/anat/sub-01_desc-brain_mask.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    (line,) = flagged_lines(tmp_path, ["sub-01"])
    assert line.startswith("QC UNREADABLE sub-01: ")
