"""The stress-head generator's own properties (tests/stress_heads.py), on the real
MNI152: ventricle factors, brain outline kept, grids and affines, bias ratio, determinism.
The 0.5 mm cases are only checked by their shape math and the resampler on a small array."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nibabel.affines import apply_affine, voxel_sizes
from scipy import ndimage
from stress_heads import (
    ANISO_ZOOMS,
    BIAS_RATIO,
    NAMES,
    StressHead,
    bias_field,
    contrast_map,
    make_all,
    tissue_modes,
    upsample2,
    upsample2_affine,
    world_bounds,
)

pytestmark = [pytest.mark.data, pytest.mark.slow]

FAST = [n for n in NAMES if not n.startswith("highres")]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def heads(data_dir) -> dict[str, StressHead]:
    return {h.name: h for h in make_all(data_dir, FAST)}


@pytest.mark.slow
def test_ventricle_mask_volume_and_place(heads):
    base = heads["mni152"]
    vent = base.ventricles
    ml = vent.sum() / 1000
    centre = apply_affine(base.image.affine, ndimage.center_of_mass(vent))
    print(f"\nMNI152 ventricles {ml:.1f} mL, centroid {np.round(centre, 1)} mm")
    assert 10 <= ml <= 30
    assert np.all(np.abs(centre - [0, -16, 14]) < 5)  # lateral + third, between the hemispheres
    _, n = ndimage.label(vent)
    assert 2 <= n <= 3  # left, right lateral (+ third)
    assert not (vent & ~base.mask).any()


@pytest.mark.parametrize("factor", [2, 3])
def test_ventricle_factor_and_outline(heads, factor):
    base, head = heads["mni152"], heads[f"ventricles{factor}x"]
    achieved = head.ventricles.sum() / base.ventricles.sum()
    assert achieved == pytest.approx(factor, rel=0.1)
    assert _dice(head.mask, base.mask) > 0.95
    assert head.mask.sum() == pytest.approx(base.mask.sum(), rel=0.01)
    assert (head.ventricles & ~head.mask).sum() <= 0.01 * head.ventricles.sum()
    # the warped ventricles are dark in the warped image
    t1 = np.asanyarray(head.image.dataobj)
    assert np.median(t1[head.ventricles]) < np.median(t1[head.mask]) / 2


def test_masks_bool_on_the_image_grid(heads):
    for head in heads.values():
        for vol in (head.mask, head.ventricles):
            assert vol.dtype == bool and vol.shape == head.image.shape, head.name
        ml = head.mask.sum() * np.prod(voxel_sizes(head.image.affine)) / 1000
        assert ml == pytest.approx(2075, rel=0.01), head.name
        inside = (head.ventricles & head.mask).sum() / head.ventricles.sum()
        assert inside >= 0.99, head.name
        assert head.image.get_data_dtype() == np.int16


def test_aniso_affine_and_extent(heads):
    base, head = heads["mni152"], heads["aniso1p2"]
    assert tuple(voxel_sizes(head.image.affine)) == pytest.approx(ANISO_ZOOMS)
    lo0, hi0 = world_bounds(base.image.shape, base.image.affine)
    lo1, hi1 = world_bounds(head.image.shape, head.image.affine)
    assert np.abs(lo1 - lo0).max() < max(ANISO_ZOOMS)
    assert np.abs(hi1 - hi0).max() < max(ANISO_ZOOMS)
    # the brain stays where it was in world space
    c0 = apply_affine(base.image.affine, ndimage.center_of_mass(base.mask))
    c1 = apply_affine(head.image.affine, ndimage.center_of_mass(head.mask))
    assert np.abs(c1 - c0).max() < 0.5


def test_neck_vertex_grid(heads):
    base, head = heads["mni152"], heads["neck_vertex256"]
    assert head.image.shape == (256, 256, 256)
    assert tuple(voxel_sizes(head.image.affine)) == pytest.approx((1, 1, 1))
    t1 = np.asanyarray(head.image.dataobj)
    tissue = tissue_modes(t1, head.mask)
    top = np.flatnonzero((t1 > tissue.csf).any(axis=(0, 1)))[-1]  # above the noise (< 900)
    assert 255 - top <= 3
    assert (t1[..., 0] > 0).any()  # the neck reaches the bottom edge
    assert head.mask.sum() == base.mask.sum()
    c0 = apply_affine(base.image.affine, ndimage.center_of_mass(base.mask))
    c1 = apply_affine(head.image.affine, ndimage.center_of_mass(head.mask))
    np.testing.assert_allclose(c1, c0, atol=1e-6)


def test_bias_ratio(heads):
    base, head = heads["mni152"], heads["bias"]
    head_mask = np.asanyarray(base.image.dataobj) > 1000
    field = bias_field(base.image.shape, base.image.affine, head_mask)
    assert field[head_mask].max() / field[head_mask].min() == pytest.approx(BIAS_RATIO, rel=1e-4)
    ratio = np.asanyarray(head.image.dataobj)[base.mask] / np.asanyarray(base.image.dataobj)[
        base.mask
    ].clip(1)
    assert np.percentile(ratio, 99) / np.percentile(ratio, 1) > 1.8


def test_low_contrast_and_atrophy(heads):
    base = np.asanyarray(heads["mni152"].image.dataobj).astype(float)
    mask = heads["mni152"].mask
    tissue = tissue_modes(base, mask)
    _, y = contrast_map(tissue, base.max())
    assert (y[2] - y[1]) == pytest.approx((tissue.wm - tissue.gm) / 2)
    assert np.all(np.diff(y) > 0)  # monotonic
    low = np.asanyarray(heads["lowcontrast"].image.dataobj).astype(float)
    wm = mask & (base > (tissue.gm + tissue.wm) / 2)
    gm = mask & (base > (tissue.csf + tissue.gm) / 2) & ~wm
    assert low[wm].mean() - low[gm].mean() < 0.75 * (base[wm].mean() - base[gm].mean())
    atrophied = np.asanyarray(heads["atrophy"].image.dataobj).astype(float)
    changed = np.abs(atrophied - base) > 0.25 * (tissue.gm - tissue.csf)
    assert not changed[~mask].any()  # the outside is untouched
    assert 50_000 < changed.sum() < 400_000  # 50-400 mL of grey matter turned CSF


@pytest.mark.slow
def test_deterministic(data_dir, heads):
    for again in make_all(data_dir, ["atrophy", "neck_vertex256"]):
        first = heads[again.name]
        np.testing.assert_array_equal(
            np.asanyarray(again.image.dataobj), np.asanyarray(first.image.dataobj)
        )
        np.testing.assert_array_equal(again.image.affine, first.image.affine)
        np.testing.assert_array_equal(again.mask, first.mask)
        np.testing.assert_array_equal(again.ventricles, first.ventricles)


def test_highres_shape_math(data_dir):
    """Half-voxel trilinear resampling = map_coordinates there; same world box; >= 35 M voxels."""
    a = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    pos = np.meshgrid(*[(np.arange(2 * n) - 0.5) / 2 for n in a.shape], indexing="ij")
    ref = ndimage.map_coordinates(a, pos, order=1, mode="nearest")
    np.testing.assert_allclose(upsample2(a), ref, atol=1e-6)
    for path in ("mni152/MNI152_T1.nii.gz", "colin27/ch2.nii.gz"):
        img = nib.load(data_dir / "anat" / path)
        shape = tuple(2 * n for n in img.shape)
        affine = upsample2_affine(img.affine)
        assert np.prod(shape) >= 35e6
        assert tuple(voxel_sizes(affine)) == pytest.approx((0.5, 0.5, 0.5))
        for old, new in zip(
            world_bounds(img.shape, img.affine), world_bounds(shape, affine), strict=True
        ):
            np.testing.assert_allclose(new, old, atol=1e-6)


def test_unknown_name(data_dir):
    with pytest.raises(ValueError, match="unknown stress heads"):
        next(make_all(data_dir, ["nope"]))
