"""Synthetic stress heads with a known true brain mask, made from MNI152 and its curated mask.

Every case but ``highres_colin27`` is the FSL MNI152 T1 head changed by a known operation
applied to its curated brain mask (cerebellum and brainstem included, ventricles and midline
CSF inside) as well, so each has a true mask.  ``ventricles`` (the lateral and third ventricles
found from intensity, :func:`ventricle_mask`) moves with the image too, for the check that an
extracted mask keeps the ventricles.

``mni152``           the template as stored
``ventricles2x/3x``  ventricles 2x / 3x in volume: a smooth outward flow from the ventricles
                     (:class:`VentricleFlow`), image, mask and ventricles warped alike
``atrophy``          grey matter within 1-2 mm of (partial-volume) CSF or of the mask's
                     outside set to CSF intensity: sulci widened; true mask unchanged
``lowcontrast``      intensities remapped so that the WM-GM mode difference halves
``bias``             multiplied by a smooth field spanning a factor 3 over the head
``neck_vertex256``   in a 256^3 1 mm grid, vertex 2 voxels below the top edge, the neck
                     continued to the bottom edge (tapered); the timing case
``aniso1p2``         resampled to 1.2 x 1.0 x 1.0 mm (1.2 mm between sagittal slices)
``highres_mni152``   trilinear 0.5 mm resampling (57.8 M voxels), mask resampled too
``highres_colin27``  trilinear 0.5 mm resampling of Colin27 (56.9 M voxels), no true mask

Images are int16 (Colin27: uint8, as stored), masks uint8.  Same inputs give byte-identical
outputs (fixed seeds, gzip without time stamp).  Cost on one core: 0.1-5 s per case (loading
MNI152 and finding its ventricles, ~3 s, falls on the first case; each ventricle case solves
for its flow in ~3-4 s); the 0.5 mm cases ~1-3 s each plus ~1 s to write 87 / 24 MB; peak
memory ~1 GB (the 0.5 mm MNI152), all ten ~20 s.

    python tests/stress_heads.py --data ../shared/data --out /tmp/stress [--only bias,...]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.affines import apply_affine, voxel_sizes
from nibabel.processing import resample_from_to
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]

NAMES = (
    "mni152",
    "ventricles2x",
    "ventricles3x",
    "atrophy",
    "lowcontrast",
    "bias",
    "neck_vertex256",
    "aniso1p2",
    "highres_mni152",
    "highres_colin27",
)

#: Gaussian width (sigma, mm) of the ventricle flow's potential: falls to ~1% of its peak
#: speed ~25 mm from the ventricle surface, so the brain outline barely moves
FLOW_SIGMA_MM = 8.0
#: atrophy: grey matter this close (mm) to CSF / the outside is fully CSF, ramped to none 1 mm on
ATROPHY_MM = 1.0
#: bias field: max / min over the head
BIAS_RATIO = 3.0
#: neck case: grid size and the empty slices left above the vertex
CONFORMED = 256
VERTEX_GAP = 2
#: anisotropic case: voxel size (mm) per axis
ANISO_ZOOMS = (1.2, 1.0, 1.0)
SEED = 20240613


@dataclass(frozen=True, eq=False)
class StressHead:
    """One synthetic head: image, true brain mask and ventricles (bool, on the image grid)."""

    name: str
    image: nib.Nifti1Image
    mask: np.ndarray | None
    ventricles: np.ndarray | None
    note: str


@dataclass(frozen=True)
class Tissue:
    """Modes of a brain's intensity histogram (image units)."""

    csf: float
    gm: float
    wm: float


def tissue_modes(t1: np.ndarray, brain_mask: np.ndarray) -> Tissue:
    """CSF, GM and WM modes of the intensities inside ``brain_mask``.

    Rule: histogram of 200 bins up to the 99.9th percentile, smoothed (Gaussian, 2 bins); its
    local maxima at least 10% as high as the highest.  WM is the brightest of them, GM the
    brightest at least 5% below WM, CSF the darkest (below half of GM).  MNI152: 1500, 5857
    and 7460 (a fourth peak at ~2500 is CSF/GM partial volume).
    """
    values = t1[brain_mask].astype(np.float64)
    hist, edges = np.histogram(values, bins=200, range=(0.0, np.percentile(values, 99.9)))
    smooth = ndimage.gaussian_filter1d(hist.astype(np.float64), 2.0)
    centres = (edges[:-1] + edges[1:]) / 2
    inner = smooth[1:-1]
    is_peak = (inner > smooth[:-2]) & (inner >= smooth[2:]) & (inner >= 0.1 * smooth.max())
    peaks = centres[1:-1][is_peak]
    wm = float(peaks.max())
    below = peaks[peaks <= 0.95 * wm]
    if below.size == 0:
        raise ValueError("no grey-matter peak below the white-matter peak")
    gm = float(below.max())
    dark = peaks[peaks < 0.5 * gm]
    if dark.size == 0:
        raise ValueError("no CSF peak below half the grey-matter peak")
    return Tissue(csf=float(dark.min()), gm=gm, wm=wm)


def ventricle_mask(
    t1: np.ndarray,
    brain_mask: np.ndarray,
    zooms: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    depth_mm: float = 8.0,
    radius_mm: float = 22.0,
    min_ml: float = 0.5,
    grow: int = 2,
) -> np.ndarray:
    """The lateral and third ventricles of a T1 head, from intensity alone (bool).

    Rule: the core is the voxels darker than CSF + (GM - CSF) / 3 (the brain's histogram
    modes, :func:`tissue_modes`: well below GM, so nearly pure CSF), at least ``depth_mm``
    inside the brain mask (leaves out sulcal and cisternal CSF), in face-connected components
    of at least ``min_ml`` whose centre of mass lies within ``radius_mm`` of the brain mask's.
    The core then grows ``grow`` voxels into voxels darker than the CSF/GM midpoint (the
    partial-volume rim up to the half-way intensity, where a blurred wall lies), at least
    ``depth_mm / 2`` deep.  Tuned on MNI152 (modes 1500 / 5857: core threshold 2952): core
    components at 16.5 mm (left and right lateral ventricles, 4.8 and 4.0 mL) and 2 mm (the
    third, 0.8 mL) from the centre kept; the next ones at 30 mm (ambient cistern), 32 mm
    and 47 mm (fourth ventricle) left out.  Grown: left 7.0, right 5.9, third 1.6, in all
    14.6 mL, centre of mass (-0.6, -16.2, 13.6) mm (MNI); growth nearly stops there (3 voxels:
    15.0 mL, 6: 15.4 mL).
    """
    brain_mask = np.asarray(brain_mask, bool)
    tissue = tissue_modes(t1, brain_mask)
    threshold = tissue.csf + (tissue.gm - tissue.csf) / 3
    depth = ndimage.distance_transform_edt(brain_mask, sampling=zooms)
    dark = (t1 < threshold) & (depth >= depth_mm)
    labels, n = ndimage.label(dark)
    if n == 0:
        return np.zeros_like(brain_mask)
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(dark, labels, index)
    centres = np.array(ndimage.center_of_mass(dark, labels, index))
    brain_centre = np.array(ndimage.center_of_mass(brain_mask))
    offset_mm = np.linalg.norm((centres - brain_centre) * np.asarray(zooms), axis=1)
    voxel_ml = float(np.prod(zooms)) / 1000
    keep = index[(sizes * voxel_ml >= min_ml) & (offset_mm <= radius_mm)]
    core = np.isin(labels, keep)
    if grow <= 0:
        return core
    rim = (t1 < (tissue.csf + tissue.gm) / 2) & (depth >= depth_mm / 2)
    return ndimage.binary_dilation(core, iterations=grow, mask=rim)


# --- the ventricle flow ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Warp:
    """A backward map on a box of a grid: output voxel ``y`` in the box samples the input at
    ``y + disp[:, y]`` (voxel units); outside the box the map is the identity."""

    start: tuple[int, int, int]
    disp: np.ndarray

    @property
    def box(self) -> tuple[slice, slice, slice]:
        return tuple(slice(s, s + n) for s, n in zip(self.start, self.disp.shape[1:], strict=True))

    def apply(self, vol: np.ndarray) -> np.ndarray:
        """Warp ``vol``: linear for numbers (float32 out), linear >= 0.5 for bool arrays."""
        src = vol.astype(np.float32)
        axes = [np.arange(b.start, b.stop, dtype=np.float32) for b in self.box]
        coords = np.stack(np.meshgrid(*axes, indexing="ij")) + self.disp
        out = src.copy()
        out[self.box] = ndimage.map_coordinates(src, coords, order=1, mode="nearest")
        return out >= 0.5 if vol.dtype == bool else out


class VentricleFlow:
    """A smooth flow pushing tissue out of the ventricles, as a family of backward maps.

    The velocity is the gradient of the ventricle mask blurred by a Gaussian (sigma
    ``sigma_mm``), scaled to a peak speed of 1 mm per unit time: it points away from the
    ventricles, is strongest at their walls and dies out within ~3 sigma of them.  Its
    divergence (minus the blurred mask's Laplacian) is positive in and next to the ventricles
    (they grow) and negative in a shell around them (periventricular tissue is compressed),
    and integrates to zero, so the brain outside that shell keeps its shape.  The map for
    ``strength`` (mm: the longest path) is its flow over that time, integrated by scaling and
    squaring (a diffeomorphism) on a 2 mm grid and interpolated to the voxels.  Assumes
    isotropic 1 mm voxels.
    """

    def __init__(self, ventricles: np.ndarray, sigma_mm: float = FLOW_SIGMA_MM) -> None:
        self.ventricles = np.asarray(ventricles, bool)
        self.shape = self.ventricles.shape
        v = np.pad(self.ventricles.astype(np.float32), [(0, n % 2) for n in self.shape])
        coarse = v.reshape(v.shape[0] // 2, 2, v.shape[1] // 2, 2, v.shape[2] // 2, 2).mean(
            axis=(1, 3, 5)
        )  # coarse voxel k: centre at full voxel 2k + 0.5
        phi = ndimage.gaussian_filter(coarse, sigma_mm / 2)
        grad = np.stack(np.gradient(phi, 2.0)).astype(np.float32)  # per mm, toward the ventricles
        speed = np.sqrt((grad**2).sum(axis=0))
        grad /= speed.max()
        # the box where the speed is above 1e-4 of its peak (a 10 mm flow moves < 0.001 mm
        # outside it), one coarse voxel wider
        lo, hi = _bounds(speed > 1e-4 * speed.max())
        self.coarse_start = np.maximum(lo - 1, 0)
        stop = np.minimum(hi + 2, speed.shape)
        self.velocity = grad[(slice(None), *_slices(self.coarse_start, stop))]

    def warp(self, strength: float, steps: int = 6) -> Warp:
        """The backward map (a pull toward the ventricles) of the outward flow over ``strength``."""
        disp = self.velocity * np.float32(strength / 2**steps)  # mm = full voxels
        idx = np.indices(disp.shape[1:], dtype=np.float32)
        for _ in range(steps):  # disp <- disp + disp o (id + disp)
            pos = idx + disp / 2
            disp = disp + np.stack(
                [ndimage.map_coordinates(d, pos, order=1, mode="nearest") for d in disp]
            )
        # full voxel y <-> coarse (y - 0.5) / 2; the box's edge voxels keep their ~0 shift
        start = 2 * self.coarse_start
        stop = np.minimum(2 * (self.coarse_start + disp.shape[1:]), self.shape)
        axes = [(np.arange(a, b, dtype=np.float32) - 0.5) / 2 - c for a, b, c in
                zip(start, stop, self.coarse_start, strict=True)]  # fmt: skip
        pos = np.stack(np.meshgrid(*axes, indexing="ij"))
        fine = np.stack([ndimage.map_coordinates(d, pos, order=1, mode="nearest") for d in disp])
        return Warp(tuple(int(a) for a in start), fine)

    def factor(self, warp: Warp) -> float:
        """Ventricle volume after ``warp`` over before."""
        return float(warp.apply(self.ventricles).sum() / self.ventricles.sum())

    def solve(self, factor: float, rtol: float = 0.005) -> tuple[Warp, float, float]:
        """The map that multiplies the ventricle volume by ``factor``: (map, strength, factor).

        Regula falsi (Illinois) on the strength; the volume grows monotonically with it.
        """
        lo, f_lo = 0.0, 1.0
        hi = 4.0
        warp = self.warp(hi)
        f_hi = self.factor(warp)
        while f_hi < factor:
            lo, f_lo, hi = hi, f_hi, 2 * hi
            warp = self.warp(hi)
            f_hi = self.factor(warp)
        s, f, side = hi, f_hi, 0
        for _ in range(30):
            if abs(f - factor) <= rtol * factor:
                break
            s = hi - (f_hi - factor) * (hi - lo) / (f_hi - f_lo)
            warp = self.warp(s)
            f = self.factor(warp)
            if f > factor:
                hi, f_hi = s, f
                if side == 1:
                    f_lo = factor + (f_lo - factor) / 2
                side = 1
            else:
                lo, f_lo = s, f
                if side == -1:
                    f_hi = factor + (f_hi - factor) / 2
                side = -1
        return warp, s, f


def _bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index along each axis where ``mask`` has a voxel."""
    lo, hi = [], []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        lo.append(hits[0])
        hi.append(hits[-1])
    return np.array(lo), np.array(hi)


def _slices(start: Sequence[int], stop: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))


# --- intensity changes ----------------------------------------------------------------------


def atrophy(
    t1: np.ndarray, brain_mask: np.ndarray, tissue: Tissue, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Grey matter next to CSF or to the mask's outside replaced by CSF: (image, weight).

    Classes by intensity inside the mask: "CSF" below CSF + 3/4 (GM - CSF) (the sulci of an
    average template are CSF/GM partial volume, brighter than pure CSF: with the CSF/GM
    midpoint only the large fissures count and the sulci stay shut), GM from there to the
    GM/WM midpoint.  A GM voxel at distance ``d`` (mm) from the nearest CSF or outside voxel
    becomes CSF (the CSF mode plus Gaussian noise of 3% of GM, fixed seed) with weight
    ``clip(ATROPHY_MM + 1 - d, 0, 1)``: fully at 1 mm, none from 2 mm.  Sulci and the space
    between brain and dura widen by ~2 mm, the cerebellar folia open, the deep grey rim of
    the ventricles thins.  The true mask stays the curated one: the new CSF is intracranial,
    inside a brain mask that keeps sulcal and ventricular CSF, as the curated one does.
    """
    seeds = ~brain_mask | (t1 < tissue.csf + 0.75 * (tissue.gm - tissue.csf))
    gm_class = ~seeds & (t1 < (tissue.gm + tissue.wm) / 2)
    dist = ndimage.distance_transform_edt(~seeds)
    weight = np.where(gm_class, np.clip(ATROPHY_MM + 1 - dist, 0, 1), 0).astype(np.float32)
    rng = np.random.default_rng(seed)
    csf = tissue.csf + 0.03 * tissue.gm * rng.standard_normal(t1.shape, dtype=np.float32)
    return (t1 + weight * (csf - t1)).astype(np.float32), weight


def contrast_map(tissue: Tissue, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the low-contrast remap: identity up to GM, slope 1/2 from GM to WM (WM - GM
    halves), slope 1 above (everything brighter shifted down by the same amount)."""
    half = (tissue.wm - tissue.gm) / 2
    x = np.array([0.0, tissue.gm, tissue.wm, max(top, tissue.wm + 1)])
    y = np.array([0.0, tissue.gm, tissue.gm + half, max(top, tissue.wm + 1) - half])
    return x, y


def bias_field(
    shape: Sequence[int], affine: np.ndarray, head: np.ndarray, ratio: float = BIAS_RATIO
) -> np.ndarray:
    """A smooth multiplicative field with max / min = ``ratio`` over ``head`` (float32).

    ``log field = k * (u . r - 0.5 |r|^2)``, ``r`` the world position from the head's centre
    over the head's largest half-extent, ``u`` the unit vector along (1, -0.5, 1) (bright
    towards the right, back and top; an anterior-posterior-superior coil-like gradient with a
    darker rim), ``k`` set so the ratio over the head is exact; scaled to geometric mean 1
    over the head.
    """
    axes = [np.arange(n, dtype=np.float32) for n in shape]
    xyz = [  # world coordinates, one axis at a time (no coordinate list in memory)
        sum(np.float32(affine[c, a]) * np.expand_dims(axes[a], [b for b in range(3) if b != a])
            for a in range(3)) + np.float32(affine[c, 3])
        for c in range(3)
    ]  # fmt: skip
    centre = [float(x[head].mean()) for x in xyz]
    radius = max(float(np.abs(x[head] - c0).max()) for x, c0 in zip(xyz, centre, strict=True))
    u = np.array([1.0, -0.5, 1.0]) / 1.5
    g = np.zeros(tuple(shape), np.float32)
    for x, c0, uc in zip(xyz, centre, u, strict=True):
        r = (x - c0) / radius
        g += np.float32(uc) * r - np.float32(0.5) * r * r
    inside = g[head]
    k = math.log(ratio) / float(inside.max() - inside.min())
    return np.exp(np.float32(k) * (g - np.float32(inside.mean()))).astype(np.float32)


def head_mask(t1: np.ndarray, tissue: Tissue) -> np.ndarray:
    """The head: the largest component brighter than the CSF mode, holes filled (MNI152: the
    background noise reaches ~900 above the head, the CSF mode is 1500)."""
    labels, n = ndimage.label(t1 > tissue.csf)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, np.arange(1, n + 1))
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


# --- grids ----------------------------------------------------------------------------------


def world_bounds(shape: Sequence[int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box (min and max corner, mm) of a grid's voxel edges."""
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in shape], indexing="ij"))
    xyz = apply_affine(affine, corners.reshape(3, -1).T)
    return xyz.min(axis=0), xyz.max(axis=0)


def regrid(
    shape: Sequence[int], affine: np.ndarray, zooms: Sequence[float]
) -> tuple[tuple[int, ...], np.ndarray]:
    """A grid of ``zooms`` voxels over the same world box, centred on the old one:
    (shape, affine).  Each axis gets ceil(extent / zoom) voxels, so it covers the old extent
    and overhangs by less than one new voxel (half on each side)."""
    old = voxel_sizes(affine)
    new_shape = tuple(
        math.ceil(n * o / z - 1e-6) for n, o, z in zip(shape, old, zooms, strict=True)
    )
    scale = np.asarray(zooms) / old
    centre_old = (np.asarray(shape) - 1) / 2
    centre_new = (np.asarray(new_shape) - 1) / 2
    vox = np.eye(4)
    vox[:3, :3] = np.diag(scale)
    vox[:3, 3] = centre_old - scale * centre_new  # new voxel -> old voxel
    return new_shape, affine @ vox


def upsample2(vol: np.ndarray) -> np.ndarray:
    """Trilinear resampling to half the voxel size over the same box (float32).

    Old voxel ``i`` splits into new voxels ``2i`` and ``2i + 1`` at old positions ``i - 1/4``
    and ``i + 1/4``: per axis ``3/4 a[i] + 1/4 a[i -/+ 1]`` (edges repeated), exactly what
    map_coordinates(order=1, mode="nearest") gives there, one axis at a time so no coordinate
    arrays are needed.
    """
    out = vol.astype(np.float32)  # a copy: scaled in place below
    for axis in range(3):
        a = np.moveaxis(out, axis, 0)
        up = np.empty((2 * a.shape[0], *a.shape[1:]), np.float32)
        even, odd = up[0::2], up[1::2]
        np.multiply(a, 0.25, out=even)
        even[1:] = even[:-1]  # 1/4 a[i - 1] (edges repeated)
        np.multiply(a, 0.25, out=odd)
        odd[:-1] = odd[1:]  # 1/4 a[i + 1]
        a *= 0.75
        even += a
        odd += a
        out = np.moveaxis(up, 0, axis)  # a view; the next axis reads it as is
        del a, up, even, odd
    return out


def upsample2_affine(affine: np.ndarray) -> np.ndarray:
    vox = np.diag([0.5, 0.5, 0.5, 1.0])
    vox[:3, 3] = -0.25
    return affine @ vox


# --- cases ----------------------------------------------------------------------------------


def _as_int(vol: np.ndarray, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    tmp = np.rint(vol)
    np.clip(tmp, max(info.min, 0), info.max, out=tmp)
    return tmp.astype(dtype)


def _image(data: np.ndarray, affine: np.ndarray, code: int) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code)
    img.set_qform(affine, code)
    return img


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


class Sources:
    """The inputs, loaded on first use: MNI152 with its mask, ventricles and modes; Colin27."""

    def __init__(self, data_root: Path) -> None:
        self.root = Path(data_root)

    @cached_property
    def mni(self) -> nib.Nifti1Image:
        return nib.load(self.root / "anat" / "mni152" / "MNI152_T1.nii.gz")

    @cached_property
    def t1(self) -> np.ndarray:
        return np.asanyarray(self.mni.dataobj).astype(np.float32)

    @cached_property
    def mask(self) -> np.ndarray:
        path = self.root / "anat" / "mni152" / "MNI152_mask.nii.gz"
        return np.asanyarray(nib.load(path).dataobj) > 0

    @cached_property
    def tissue(self) -> Tissue:
        return tissue_modes(self.t1, self.mask)

    @cached_property
    def ventricles(self) -> np.ndarray:
        return ventricle_mask(self.t1, self.mask, voxel_sizes(self.mni.affine))

    @cached_property
    def head(self) -> np.ndarray:
        return head_mask(self.t1, self.tissue)

    @cached_property
    def flow(self) -> VentricleFlow:
        return VentricleFlow(self.ventricles)

    @property
    def code(self) -> int:
        return int(self.mni.header["sform_code"])

    def head_from(self, name: str, t1: np.ndarray, note: str) -> StressHead:
        """A case on MNI152's own grid with its mask and ventricles."""
        img = _image(_as_int(t1, np.dtype(np.int16)), self.mni.affine, self.code)
        return StressHead(name, img, self.mask, self.ventricles, note)


def _mni152(src: Sources) -> StressHead:
    t = src.tissue
    note = f"as stored; modes CSF {t.csf:.0f} GM {t.gm:.0f} WM {t.wm:.0f}"
    return src.head_from("mni152", src.t1, note)


def _ventricles(factor: float) -> Callable[[Sources], StressHead]:
    def build(src: Sources) -> StressHead:
        warp, strength, achieved = src.flow.solve(factor)
        mask = warp.apply(src.mask)
        t1 = _as_int(warp.apply(src.t1), np.dtype(np.int16))
        img = _image(t1, src.mni.affine, src.code)
        note = (
            f"ventricles x{achieved:.3f} (flow {strength:.2f} mm, sigma {FLOW_SIGMA_MM:g} mm); "
            f"mask Dice vs original {_dice(mask, src.mask):.4f}"
        )
        return StressHead(f"ventricles{factor:g}x", img, mask, warp.apply(src.ventricles), note)

    return build


def _atrophy(src: Sources) -> StressHead:
    t1, weight = atrophy(src.t1, src.mask, src.tissue)
    note = (
        f"GM within {ATROPHY_MM:g}-{ATROPHY_MM + 1:g} mm of CSF/outside -> CSF: "
        f"{(weight >= 0.5).sum() / 1000:.0f} mL"
    )
    return src.head_from("atrophy", t1, note)


def _lowcontrast(src: Sources) -> StressHead:
    t = src.tissue
    x, y = contrast_map(t, float(src.t1.max()))
    t1 = np.interp(src.t1, x, y).astype(np.float32)
    wm = src.mask & (src.t1 >= (t.gm + t.wm) / 2)
    gm = src.mask & (src.t1 >= (t.csf + t.gm) / 2) & ~wm
    before = src.t1[wm].mean() - src.t1[gm].mean()
    after = t1[wm].mean() - t1[gm].mean()
    note = (
        f"WM-GM modes {t.wm - t.gm:.0f} -> {y[2] - y[1]:.0f}, "
        f"class means {before:.0f} -> {after:.0f} (x{after / before:.2f})"
    )
    return src.head_from("lowcontrast", t1, note)


def _bias(src: Sources) -> StressHead:
    field = bias_field(src.t1.shape, src.mni.affine, src.head)
    ratio_brain = float(field[src.mask].max() / field[src.mask].min())
    note = f"field max/min {BIAS_RATIO:g} over the head, {ratio_brain:.2f} over the brain"
    return src.head_from("bias", src.t1 * field, note)


def _neck_vertex(src: Sources) -> StressHead:
    if nib.aff2axcodes(src.mni.affine)[2] != "S":
        raise ValueError("the neck case expects the third axis to point up (S)")
    n = CONFORMED
    top = int(np.flatnonzero(src.head.any(axis=(0, 1)))[-1])
    shift = [(n - s) // 2 for s in src.t1.shape[:2]] + [n - 1 - VERTEX_GAP - top]
    if min(shift) < 0:
        raise ValueError("the head does not fit the 256^3 grid")
    # slices above the vertex beyond the grid are background: cropped
    keep = min(src.t1.shape[2], n - shift[2])
    t1 = np.zeros((n, n, n), np.float32)  # as conforming pads (MNI152's own edges are 0 too)
    mask = np.zeros((n, n, n), bool)
    vent = np.zeros((n, n, n), bool)
    box = _slices(shift, [shift[0] + src.t1.shape[0], shift[1] + src.t1.shape[1], n])
    t1[box] = src.t1[..., :keep]
    mask[box] = src.mask[..., :keep]
    vent[box] = src.ventricles[..., :keep]
    # the neck: the lowest slice repeated downwards, its contrast tapering (cosine) to 40%
    below = shift[2]
    depth = np.arange(below, 0, -1, dtype=np.float32)  # slice k lies below - k under the image
    taper = 1 - 0.6 * (1 - np.cos(np.pi * depth / below)) / 2
    low = src.t1[..., 0]
    t1[box[0], box[1], :below] = low[..., None] * taper
    vox = np.eye(4)
    vox[:3, 3] = -np.asarray(shift, float)
    affine = src.mni.affine @ vox
    img = _image(_as_int(t1, np.dtype(np.int16)), affine, src.code)
    note = (
        f"vertex slice {top + shift[2]} of {n} ({VERTEX_GAP} empty above), "
        f"{below} neck slices below (lowest slice repeated, tapered to 40%)"
    )
    return StressHead("neck_vertex256", img, mask, vent, note)


def _aniso(src: Sources) -> StressHead:
    shape, affine = regrid(src.t1.shape, src.mni.affine, ANISO_ZOOMS)

    def resample(vol: np.ndarray) -> np.ndarray:
        img = nib.Nifti1Image(vol.astype(np.float32), src.mni.affine)
        return np.asanyarray(resample_from_to(img, (shape, affine), order=1).dataobj)

    t1 = resample(src.t1)
    img = _image(_as_int(t1, np.dtype(np.int16)), affine, src.code)
    lo0, hi0 = world_bounds(src.t1.shape, src.mni.affine)
    lo1, hi1 = world_bounds(shape, affine)
    overhang = float(max(np.abs(lo1 - lo0).max(), np.abs(hi1 - hi0).max()))
    zooms = "x".join(f"{z:g}" for z in ANISO_ZOOMS)
    note = f"{zooms} mm, linear; world box overhang {overhang:.2f} mm per side"
    return StressHead(
        "aniso1p2", img, resample(src.mask) >= 0.5, resample(src.ventricles) >= 0.5, note
    )


def _highres_mni(src: Sources) -> StressHead:
    affine = upsample2_affine(src.mni.affine)
    img = _image(_as_int(upsample2(src.t1), np.dtype(np.int16)), affine, src.code)
    mask = upsample2(src.mask) >= 0.5
    vent = upsample2(src.ventricles) >= 0.5
    note = f"trilinear 0.5 mm, {np.prod(img.shape) / 1e6:.1f} M voxels"
    return StressHead("highres_mni152", img, mask, vent, note)


def _highres_colin(src: Sources) -> StressHead:
    colin = nib.load(src.root / "anat" / "colin27" / "ch2.nii.gz")
    dtype = colin.get_data_dtype()
    up = upsample2(np.asanyarray(colin.dataobj))
    data = _as_int(up, dtype) if dtype.kind in "iu" else up
    del up
    affine = upsample2_affine(colin.affine)
    img = _image(data, affine, int(colin.header["sform_code"]) or 1)
    note = f"trilinear 0.5 mm, {np.prod(img.shape) / 1e6:.1f} M voxels, {dtype}; no true mask"
    return StressHead("highres_colin27", img, None, None, note)


BUILDERS: dict[str, Callable[[Sources], StressHead]] = {
    "mni152": _mni152,
    "ventricles2x": _ventricles(2.0),
    "ventricles3x": _ventricles(3.0),
    "atrophy": _atrophy,
    "lowcontrast": _lowcontrast,
    "bias": _bias,
    "neck_vertex256": _neck_vertex,
    "aniso1p2": _aniso,
    "highres_mni152": _highres_mni,
    "highres_colin27": _highres_colin,
}


def make_all(data_root: Path, names: list[str] | None = None) -> Iterator[StressHead]:
    """The stress heads named (all by default), in :data:`NAMES` order, built one at a time."""
    wanted = list(NAMES) if names is None else names
    unknown = sorted(set(wanted) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown stress heads {unknown}; choose from {', '.join(NAMES)}")
    src = Sources(data_root)
    for name in NAMES:
        if name in wanted:
            yield BUILDERS[name](src)


# --- command line ---------------------------------------------------------------------------


def _ml(vol: np.ndarray | None, img: nib.Nifti1Image) -> str:
    if vol is None:
        return "-"
    return f"{vol.sum() * float(np.prod(voxel_sizes(img.affine))) / 1000:.1f}"


def main(argv: list[str] | None = None) -> int:
    default_data = os.environ.get("ANATPREP_TEST_DATA", str(REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", help="comma-separated names: " + ",".join(NAMES))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from anatprep.interfaces.atomic import write_nifti

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else None
    start = time.perf_counter()
    for head in make_all(Path(args.data), names):
        built = time.perf_counter() - start
        img = head.image
        write_nifti(img, out / f"{head.name}_T1w.nii.gz")
        for kind, vol in (("mask", head.mask), ("ventricles", head.ventricles)):
            if vol is not None:
                write_nifti(_image(vol.astype(np.uint8), img.affine, int(img.header["sform_code"])),
                            out / f"{head.name}_{kind}.nii.gz")  # fmt: skip
        mb = (out / f"{head.name}_T1w.nii.gz").stat().st_size / 1e6
        zooms = "x".join(f"{z:g}" for z in voxel_sizes(img.affine))
        shape = "x".join(str(s) for s in img.shape)
        print(f"{head.name:16} {shape:12} {zooms:11} mask {_ml(head.mask, img):>6} mL  "
              f"ventricles {_ml(head.ventricles, img):>5} mL  {built:5.1f} s build  "
              f"{time.perf_counter() - start - built:4.1f} s write  {mb:5.1f} MB  "
              f"{head.note}", flush=True)  # fmt: skip
        start = time.perf_counter()
    return 0


if __name__ == "__main__":
    sys.exit(main())
