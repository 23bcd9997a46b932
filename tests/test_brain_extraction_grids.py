"""The grids and mask operations of the brain extraction, on synthetic images (fast).

Head box: physical placement kept, the neck below the top 180 mm left out; working grid:
finer inputs resampled, others untouched; bias field: defined on every voxel of any grid;
morphology in millimetres; the mask clean-up that makes the invariants true (one
component, no cavity, no slice hole inside the template brain) and leaves holes outside it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from anatprep.interfaces.brainmask import bias, grids, morphology
from anatprep.interfaces.brainmask.quality import measure_mask
from anatprep.interfaces.brainmask.resources import memory_gb
from anatprep.interfaces.brainmask.runtime import import_ants
from anatprep.interfaces.brainmask.segmentation import clean_mask

#: fixtures of this module whose users run ANTs (tests/conftest.py marks them)
MARKED_FIXTURES = {"ants": "ants"}


@pytest.fixture(scope="module")
def ants():
    return import_ants(1)


def _ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    g = np.indices(shape).astype(float)
    d2 = sum(((g[k] - centre[k]) * spacing[k]) ** 2 for k in range(3))
    return d2 < radius**2


def _head_with_neck(ants, n: int = 120, spacing: float = 2.0):
    """A 2 mm image: a head ball (radius 90 mm) at the top and a long neck column below."""
    shape = (n, n, n)
    head = _ball(shape, (n / 2, n / 2, n - 50), 45)
    g = np.indices(shape)
    neck = ((g[0] - n / 2) ** 2 + (g[1] - n / 2) ** 2 < 15**2) & (g[2] < n - 60)
    arr = np.where(head | neck, 1000.0, 0.0).astype(np.float32)
    arr += np.random.default_rng(0).normal(0, 10, shape).astype(np.float32)
    return ants.from_numpy(arr, origin=(-120.0, -120.0, -150.0), spacing=(spacing,) * 3)


@pytest.mark.slow
def test_box_cut_and_paste_keep_physical_placement(ants):
    img = _head_with_neck(ants)
    box = grids.Box((10, 20, 30), (100, 90, 110), tuple(img.shape))
    cut = box.cut(ants, img)
    np.testing.assert_array_equal(box.paste(cut.numpy()), np.where(_in(box), img.numpy(), 0))
    # the same voxel sits at the same physical point in both
    point = ants.transform_index_to_physical_point(cut, (0, 0, 0))
    assert np.allclose(point, ants.transform_index_to_physical_point(img, (10, 20, 30)))
    back = ants.resample_image_to_target(cut, img, interp_type="nearestNeighbor").numpy()
    np.testing.assert_array_equal(back[box.slices], img.numpy()[box.slices])


def _in(box: grids.Box) -> np.ndarray:
    inside = np.zeros(box.shape, bool)
    inside[box.slices] = True
    return inside


def test_head_box_keeps_the_top_of_the_head_not_the_neck(ants):
    img = _head_with_neck(ants)
    box = grids.head_box(ants, img)
    top_mm = (120 - 50 + 45) * 2.0  # top of the ball, in mm above the first slice
    kept_mm = (box.upper[2] - box.lower[2]) * 2.0
    assert box.upper[2] == 120  # the vertex (plus margin) reaches the edge: kept
    assert grids.HEAD_HEIGHT_MM <= kept_mm <= grids.HEAD_HEIGHT_MM + 2 * 15.0 + 8.0
    assert box.lower[2] * 2.0 >= top_mm - grids.HEAD_HEIGHT_MM - 15.0 - 8.0 > 0  # neck cut
    # across: the head's width plus the margin, not the whole field of view
    assert box.lower[0] > 0 and box.upper[0] < 120


def test_head_box_follows_the_superior_axis_of_the_affine(ants):
    img = _head_with_neck(ants)
    flipped = ants.from_numpy(
        img.numpy()[:, :, ::-1].copy(), origin=(-120.0, -120.0, 88.0), spacing=(2.0,) * 3,
        direction=np.diag([1.0, 1.0, -1.0]),
    )  # fmt: skip  (the same head stored top slice first)
    box = grids.head_box(ants, flipped)
    assert box.lower[2] == 0 and box.upper[2] < 120


def test_working_grid_resamples_only_finer_inputs(ants):
    coarse = ants.from_numpy(np.ones((20, 20, 20), np.float32), spacing=(1.0, 1.0, 1.2))
    assert grids.working_image(ants, coarse, 1.0) is coarse
    near = ants.from_numpy(np.ones((20, 20, 20), np.float32), spacing=(0.94, 0.94, 1.0))
    assert grids.working_image(ants, near, 1.0) is near  # 0.94 mm counts as 1 mm
    fine = ants.from_numpy(np.ones((40, 40, 20), np.float32), spacing=(0.5, 0.5, 1.0))
    work = grids.working_image(ants, fine, 1.0)
    assert tuple(work.spacing) == (1.0, 1.0, 1.0) and tuple(work.shape) == (20, 20, 20)


def test_bias_field_covers_every_voxel_of_a_larger_grid(ants):
    img = _head_with_neck(ants)
    box = grids.head_box(ants, img)
    field = ants.from_numpy(
        np.linspace(0.5, 2.0, 8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10),
        origin=tuple(ants.transform_index_to_physical_point(img, box.lower)),
        spacing=(12.0, 12.0, 12.0),
    )
    on_full = bias.field_on(ants, field, img)
    assert on_full.shape == tuple(img.shape)
    assert on_full.min() >= 0.5 - 1e-5 and on_full.max() <= 2.0 + 1e-5  # nearest beyond


def test_morphology_radii_are_millimetres():
    dot = np.zeros((41, 41, 41), bool)
    dot[20, 20, 20] = True
    grown = morphology.dilate(dot, 5.0, (1.0, 1.0, 1.0))
    assert grown.sum() == _ball(dot.shape, (20, 20, 20), 5.0 + 1e-9).sum()
    aniso = morphology.dilate(dot, 5.0, (1.0, 1.0, 2.5))
    assert np.flatnonzero(aniso[20, 20]).tolist() == [18, 19, 20, 21, 22]
    ball = _ball(dot.shape, (20, 20, 20), 10.0)
    eroded = morphology.erode(ball, 3.0, (1.0,) * 3)
    assert (eroded <= _ball(dot.shape, (20, 20, 20), 7.5)).all()
    assert (_ball(dot.shape, (20, 20, 20), 6.5) <= eroded).all()
    # closing bridges a 2 mm gap, opening cuts a 2 mm bridge
    two = _ball(dot.shape, (20, 10, 20), 8.0) | _ball(dot.shape, (20, 30, 20), 8.0)
    bridged = two | (np.abs(np.indices(dot.shape)[1] - 20) < 12) & _ball(
        dot.shape, (20, 20, 20), 1.5
    )
    assert ndimage.label(morphology.open_(bridged, 2.5, (1.0,) * 3))[1] == 2


def _brain_with_ventricle_and_cistern():
    """A 1 mm ball 'brain' with a cavity that opens downwards through a channel (a left-out
    ventricle: holes in axial and coronal slices, no 3D cavity), and a notch below the ball
    whose prior is low (a basal cistern, outside the brain)."""
    shape = (100, 100, 100)
    brain = _ball(shape, (50, 50, 50), 40)
    vent = _ball(shape, (50, 50, 55), 8)
    g = np.indices(shape)
    channel = (np.abs(g[0] - 50) <= 1) & (np.abs(g[1] - 50) <= 1) & (g[2] < 55)
    prior = ndimage.gaussian_filter(brain.astype(np.float32), 1.0)
    return brain, vent, channel, prior


def test_clean_mask_fills_a_left_out_ventricle_and_keeps_one_piece():
    brain, vent, channel, prior = _brain_with_ventricle_and_cistern()
    holed = brain & ~vent & ~channel
    speck = _ball(brain.shape, (5, 5, 5), 2)
    before = measure_mask(holed | speck, (1.0,) * 3, prior, np.eye(4))
    assert before.slices_with_holes > 0 and before.components == 2
    cleaned = clean_mask(holed | speck, prior)
    after = measure_mask(cleaned, (1.0,) * 3, prior, np.eye(4))
    assert after.slices_with_holes == 0 and after.components == 1
    assert cleaned[vent].all() and not cleaned[speck].any()


def test_clean_mask_leaves_holes_outside_the_template_brain():
    brain, _vent, _channel, _prior = _brain_with_ventricle_and_cistern()
    cistern = _ball(brain.shape, (50, 50, 10), 6) & brain
    prior = ndimage.gaussian_filter((brain & ~_ball(brain.shape, (50, 50, 10), 9)).astype(
        np.float32), 1.0)  # fmt: skip
    g = np.indices(brain.shape)
    opening = (np.abs(g[0] - 50) <= 1) & (np.abs(g[1] - 50) <= 1) & (g[2] < 10)
    mask = brain & ~cistern & ~opening
    cleaned = clean_mask(mask, prior)
    assert not cleaned[cistern].any()  # the low-prior hole stays out


def test_declared_memory_follows_the_image_size():
    sizes = [182 * 218 * 182, 256**3, 364 * 436 * 364]
    declared = [memory_gb(n) for n in sizes]
    assert declared == sorted(declared) and declared[0] < declared[-1]
    assert memory_gb(0) == memory_gb(256**3)  # unknown size: a whole 256^3 head


def test_atropos_leaves_no_file_in_the_temporary_directory(ants, tmp_path, monkeypatch):
    """antspyx's atropos writes its posteriors under tempfile's directory and keeps them;
    ours must leave the user's temporary directory as it found it."""
    import tempfile

    from anatprep.interfaces.brainmask.params import BrainExtractionParams
    from anatprep.interfaces.brainmask.segmentation import atropos

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shape = (24, 24, 24)
    ball = _ball(shape, (12, 12, 12), 9)
    core = _ball(shape, (12, 12, 12), 5)
    arr = np.where(core, 900.0, np.where(ball, 600.0, 100.0)).astype(np.float32)
    arr += np.random.default_rng(1).normal(0, 20, shape).astype(np.float32)
    image = ants.from_numpy(arr)
    region = ants.from_numpy(_ball(shape, (12, 12, 12), 11).astype(np.float32))
    labels, posteriors = atropos(ants, image, region, BrainExtractionParams())
    assert len(posteriors) == 3 and labels.numpy().max() == 3
    assert posteriors[2].numpy()[12, 12, 12] > 0.5  # the bright core is the third class
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert tempfile.tempdir == str(tmp_path)
