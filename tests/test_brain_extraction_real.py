"""Brain extraction on real heads and on inputs it must refuse.

The MNI152 test is the accuracy reference (Dice against the curated mask, which includes
the cerebellum and brainstem); it runs the default preset with one thread, as the pipeline
does.  Bad inputs must fail with a message naming the file and the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from scipy import ndimage

from anatprep.interfaces.brainmask.extract import BrainExtractionError, extract_brain, load_prior
from anatprep.interfaces.brainmask.params import preset
from anatprep.interfaces.brainmask.runtime import import_ants
from anatprep.interfaces.templates import robex_template

pytestmark = pytest.mark.ants


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_mni152_dice_and_outputs(data_dir, tmp_path):
    tpl = robex_template()
    src = data_dir / "anat" / "mni152" / "MNI152_T1.nii.gz"
    out = extract_brain(str(src), tpl.head, tpl.mask, tmp_path, preset("default"), "robex")
    mask_img = nb.load(out.mask)
    mask = np.asanyarray(mask_img.dataobj) > 0
    truth = np.asanyarray(nb.load(src.with_name("MNI152_mask.nii.gz")).dataobj) > 0
    dice = _dice(mask, truth)
    print(f"\nMNI152 Dice {dice:.4f}, {out.mask_volume_ml:.0f} mL")
    assert dice >= 0.970  # issue 12; measured 0.9723 (benchmarks/README.md)
    # the curated mask is 2075 mL: within 5% of it (measured +1.7%, 2110 mL)
    truth_ml = truth.sum() * float(np.prod(mask_img.header.get_zooms()[:3])) / 1000
    assert abs(out.mask_volume_ml - truth_ml) <= 0.05 * truth_ml
    assert ndimage.label(mask)[1] == 1
    np.testing.assert_array_equal(mask_img.affine, nb.load(src).affine)
    # tissue probabilities: inside the mask, summing to ~1 where Atropos ran
    assert list(out.probsegs) == ["CSF", "GM", "WM"]
    probs = np.stack([np.asanyarray(nb.load(p).dataobj) for p in out.probsegs.values()])
    assert probs.shape[0] == 3 and probs.min() >= 0 and probs.max() <= 1
    assert not probs[:, ~mask].any()
    assert np.median(probs.sum(0)[mask]) == pytest.approx(1.0, abs=1e-3)
    # tissue ordering: WM brighter than GM brighter than CSF
    t1 = np.asanyarray(nb.load(out.bias_corrected).dataobj)
    means = [float(t1[p > 0.9].mean()) for p in probs]
    assert means[0] < means[1] < means[2]
    warp, affine = Path(out.warp), Path(out.affine)
    assert affine.suffix == ".mat" and nb.load(warp).shape[3:] == (1, 3)  # ITK vector field
    stats = json.loads(Path(out.stats).read_text())
    assert stats["skull_stripped_input"] is False and stats["parameters"]["random_seed"] == 42
    # QC signals with the warped prior (the values are reported, the flags are not asserted)
    quality = stats["MaskQuality"]
    print(f"MNI152 QC {quality}, flags {stats['QualityFlags']}")
    assert quality["Components"] == 1 and 0 < quality["PriorOutsideFraction"] < 1
    assert quality == out.mask_quality and isinstance(stats["QualityFlags"], list)


def _image(path: Path, data: np.ndarray, zoom: float = 1.0) -> str:
    nb.save(nb.Nifti1Image(data.astype(np.float32), np.diag([zoom, zoom, zoom, 1])), path)
    return str(path)


def test_implausible_head_is_refused(tmp_path):
    """A 40 mm ball is no head: the warped template mask cannot have a brain's volume."""
    grid = np.indices((64, 64, 64)) - 32
    ball = (np.sqrt((grid**2).sum(0)) < 20) * 300.0 + 20.0
    src = _image(tmp_path / "ball.nii.gz", ball + np.random.default_rng(0).normal(0, 5, ball.shape))
    tpl = robex_template()
    with pytest.raises(BrainExtractionError, match=r"ball\.nii\.gz: .*volume .* outside"):
        extract_brain(src, tpl.head, tpl.mask, tmp_path, preset("fast"), "robex")


def test_template_mask_must_overlap_its_head(tmp_path):
    head = np.zeros((32, 32, 32))
    head[8:24, 8:24, 8:24] = 100.0
    mask = np.zeros_like(head)
    mask[0:6, 0:6, 0:6] = 1.0  # in the empty corner
    head_path = Path(_image(tmp_path / "head.nii.gz", head))
    mask_path = Path(_image(tmp_path / "mask.nii.gz", mask))
    ants = import_ants(1)
    with pytest.raises(BrainExtractionError, match=r"mask\.nii\.gz does not overlap"):
        load_prior(ants, head_path, mask_path)
    empty = Path(_image(tmp_path / "empty.nii.gz", np.zeros_like(head)))
    with pytest.raises(BrainExtractionError, match=r"empty\.nii\.gz is empty"):
        load_prior(ants, head_path, empty)


def test_skull_stripped_input_keeps_its_mask(data_dir, tmp_path):
    """MNI152 x its curated mask (at 2 mm to keep it quick): detected as stripped, no
    registration, the given brain is the mask, tissue maps still made."""
    src = data_dir / "anat" / "mni152" / "MNI152_T1.nii.gz"
    img = nb.load(src)
    truth = np.asanyarray(nb.load(src.with_name("MNI152_mask.nii.gz")).dataobj) > 0
    brain = (np.asanyarray(img.dataobj) * truth)[::2, ::2, ::2]
    affine = img.affine @ np.diag([2, 2, 2, 1])
    path = tmp_path / "stripped.nii.gz"
    nb.save(nb.Nifti1Image(brain.astype(np.float32), affine), path)
    tpl = robex_template()
    out = extract_brain(str(path), tpl.head, tpl.mask, tmp_path, preset("default"), "robex")
    assert out.skull_stripped_input is True and out.affine is out.warp is None
    mask = np.asanyarray(nb.load(out.mask).dataobj) > 0
    np.testing.assert_array_equal(mask, ndimage.binary_fill_holes(brain != 0))
    assert list(out.probsegs) == ["CSF", "GM", "WM"]
    # QC without a prior: no prior-outside fraction (not a made-up 0), every slice hole counts
    quality = out.mask_quality
    assert "PriorOutsideFraction" not in quality and "SlicesWithHolesOutsidePrior" not in quality
    assert quality["Components"] == 1 and quality["VolumeMl"] == out.mask_volume_ml
