"""One brain extraction: input checks, N4, registration, Atropos, refinement, outputs.

The work runs on the head box of the working grid (:mod:`.grids`: no finer than 1 mm, the
head's top 180 mm plus a margin); the mask, the tissue maps, the prior (for the QC) and the
bias field are brought back to the input's own grid at the end.  Every output is written
atomically on the input's own header (data go through numpy, so ANTs' LPS reading never
changes the geometry), and a JSON of the run's measurements, timings and settings sits
beside them.  Anything that would give an untrustworthy mask raises
:class:`BrainExtractionError` with the file and the reason.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nb
import numpy as np

from ..atomic import copy_file, write_json, write_nifti
from ..nifti import load_nifti
from . import bias, grids, morphology, registration, segmentation
from .params import BrainExtractionParams
from .quality import measure_mask, quality_flags
from .runtime import import_ants
from .stripped import stripped_mask


class BrainExtractionError(RuntimeError):
    """Brain extraction could not produce a trustworthy mask; the message says why."""


def check_t1w_input(path: str) -> nb.Nifti1Image:
    """A 3D image with some contrast; raise :class:`BrainExtractionError` otherwise."""
    img = load_nifti(path)
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3 or min(shape) < 8:
        raise BrainExtractionError(
            f"{path}: brain extraction needs a 3D volume, got shape {img.shape}"
        )
    data = np.asanyarray(img.dataobj)
    if not np.isfinite(data).all() or float(np.ptp(data)) == 0.0:
        raise BrainExtractionError(f"{path}: image is constant or holds non-finite values")
    return img


def load_prior(ants, head_path: Path, mask_path: Path, sigma_mm: float = 1.0):
    """Template brain probability (0..1) on the head's grid; binary masks are smoothed.

    Raises :class:`BrainExtractionError` when the mask is empty or misses the head."""
    head = ants.image_read(str(head_path))
    mask = ants.image_read(str(mask_path))
    arr = mask.numpy()
    if arr.max() <= 0:
        raise BrainExtractionError(f"template mask {mask_path} is empty")
    if mask.shape != head.shape or not np.allclose(mask.origin, head.origin, atol=1e-2):
        mask = ants.resample_image_to_target(mask, head, interp_type="linear")
        arr = mask.numpy()
    head_arr = head.numpy()
    inside = arr > 0.5 * arr.max()
    if inside.sum() == 0 or np.mean(head_arr[inside] > np.percentile(head_arr, 50)) < 0.5:
        raise BrainExtractionError(
            f"template mask {mask_path} does not overlap the bright part of its head "
            f"{head_path}: wrong pair of files?"
        )
    prob = mask / float(arr.max())
    if np.unique(arr).size <= 2:
        prob = ants.smooth_image(prob, sigma_mm, sigma_in_physical_coordinates=True)
    return head, prob


def _read_3d(ants, path: str):
    img = ants.image_read(path)
    if img.dimension == 4:
        img = ants.slice_image(img, axis=3, idx=0)
    return img.clone("float")


@dataclass(frozen=True)
class BrainExtractionResult:
    """What :func:`extract_brain` wrote (paths) and measured."""

    bias_corrected: str
    mask: str
    brain: str
    #: tissue name -> probability map (:data:`.segmentation.TISSUES`); empty without Atropos
    probsegs: dict[str, str]
    #: template to T1w; None for an input already skull-stripped (no registration)
    affine: str | None
    warp: str | None
    #: the JSON of volumes, QC signals, timings and parameters
    stats: str
    mask_volume_ml: float
    skull_stripped_input: bool
    mask_quality: dict[str, Any]
    quality_flags: tuple[str, ...]


def extract_brain(
    t1w: str,
    template_head: Path,
    template_mask: Path,
    out_dir: Path,
    params: BrainExtractionParams | None = None,
    template_name: str = "template",
) -> BrainExtractionResult:
    """Run the extraction of ``t1w`` into ``out_dir``; return the output paths and the
    measures (:class:`BrainExtractionResult`)."""
    p = params or BrainExtractionParams()
    ref = check_t1w_input(t1w)
    ants = import_ants(p.num_threads)
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = round(now - clock, 2)
        clock = now

    native = _read_3d(ants, t1w)
    work = grids.working_image(ants, native, p.working_spacing_mm)
    box = grids.head_box(ants, work)
    img = box.cut(ants, work)
    spacing = tuple(float(s) for s in img.spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    stats: dict[str, Any] = {"template": template_name, "parameters": p.as_dict()}
    stats["seconds"] = times
    if work is not native:
        stats["working_grid"] = {"shape": list(work.shape), "spacing_mm": list(work.spacing)}
    posteriors = None
    transforms: registration.Transforms | None = None
    prior = None  # the template brain prior on the working box, when registered
    lap("prepare")

    pre_stripped = stripped_mask(img.numpy(), voxel_ml)
    if pre_stripped is not None:
        stats["skull_stripped_input"] = True
        mask_img = img.new_image_like(pre_stripped.astype(np.float32))
        field = bias.n4_field(
            ants, img, p.n4_spacing_mm, p.n4_iterations, p.n4_spline_mm, weight=mask_img
        )
        mask = pre_stripped
        lap("n4")
        if p.atropos:  # tissue maps inside the given brain; the mask itself is kept
            corrected = bias.corrected(ants, img, field)
            _labels, posteriors = segmentation.atropos(ants, corrected, mask_img, p)
            lap("atropos")
    else:
        stats["skull_stripped_input"] = False
        head, template_prior = load_prior(ants, template_head, template_mask)
        field = bias.n4_field(ants, img, p.n4_spacing_mm, p.n4_iterations, p.n4_spline_mm)
        lap("n4")
        transforms = registration.register_template(
            ants, bias.corrected(ants, img, field), head, template_prior, out_dir, p
        )
        prior = registration.warp_prior(ants, img, template_prior, transforms).numpy()
        lap("registration")
        prior_mask = morphology.largest_component(prior >= p.prior_threshold)
        prior_ml = float(prior_mask.sum()) * voxel_ml
        stats["warped_prior_volume_ml"] = round(prior_ml, 3)
        _check_volume(t1w, prior_ml, p, "warped template brain mask")
        if p.n4_second_pass:
            weight = morphology.dilate(prior_mask, 2.0, spacing)
            field = bias.n4_field(
                ants, img, p.n4_spacing_mm, p.n4_iterations, p.n4_spline_mm,
                weight=img.new_image_like(weight.astype(np.float32)),
            )  # fmt: skip
            lap("n4_brain")
        if p.atropos:
            region = morphology.dilate(prior_mask, p.atropos_margin_mm, spacing)
            region_img = img.new_image_like(region.astype(np.float32))
            corrected = bias.corrected(ants, img, field)
            labels, posteriors = segmentation.atropos(ants, corrected, region_img, p)
            del corrected
            lap("atropos")
            mask = segmentation.refine_mask(labels.numpy(), region, prior, spacing, p)
        else:
            mask = segmentation.clean_mask(prior_mask, prior)
        lap("refine")

    # back on the input's own grid
    native_grid = _NativeGrid(ants, native, work, box)
    native_prior = native_grid.values(prior) if prior is not None else None
    mask = native_grid.mask(mask, native_prior)
    native_spacing = tuple(float(s) for s in native.spacing)
    quality = measure_mask(mask, native_spacing, native_prior, ref.affine)
    del native_prior
    volume_ml = quality.volume_ml
    stats["mask_volume_ml"] = round(volume_ml, 3)
    stats["mask_components"] = quality.components
    stats["MaskQuality"] = quality.as_sidecar()
    stats["QualityFlags"] = quality_flags(quality, p.volume_range_ml)
    _check_volume(t1w, volume_ml, p, "brain mask")
    lap("native_grid_and_qc")
    corrected_native = native.numpy() / bias.field_on(ants, field, native)
    probs = None
    if posteriors is not None:
        probs = (native_grid.values(post.numpy()) for post in posteriors)
    out = _write_outputs(ref, out_dir, corrected_native, mask, probs, transforms, stats, lap)
    return out


class _NativeGrid:
    """Arrays on the working box brought to the input's own grid (pasted into the working
    grid; resampled, linear, when the working grid is not the input's)."""

    def __init__(self, ants, native, work, box: grids.Box) -> None:
        self.ants, self.native, self.work, self.box = ants, native, work, box

    def values(self, arr: np.ndarray) -> np.ndarray:
        full = self.box.paste(arr.astype(np.float32, copy=False))
        if self.work is self.native:
            return full
        img = self.work.new_image_like(full)
        return self.ants.resample_image_to_target(img, self.native, interp_type="linear").numpy()

    def mask(self, mask: np.ndarray, native_prior: np.ndarray | None) -> np.ndarray:
        """``mask`` on the input's grid; a resampled mask is cleaned again there, with the
        prior already on that grid (``native_prior``)."""
        if self.work is self.native:
            return self.box.paste(mask.astype(np.uint8))
        resampled = self.values(mask.astype(np.float32)) >= 0.5
        return segmentation.clean_mask(resampled, native_prior).astype(np.uint8)


def _check_volume(t1w: str, volume_ml: float, p: BrainExtractionParams, what: str) -> None:
    low, high = p.volume_range_ml
    if not low <= volume_ml <= high:
        raise BrainExtractionError(
            f"{t1w}: {what} volume {volume_ml:.0f} mL is outside the plausible range "
            f"{low:.0f}-{high:.0f} mL (registration diverged, or not a head T1w)"
        )


def _write_outputs(
    ref: nb.Nifti1Image,
    out_dir: Path,
    corrected: np.ndarray,
    mask: np.ndarray,
    posteriors: Iterable[np.ndarray] | None,
    transforms: registration.Transforms | None,
    stats: dict[str, Any],
    lap: Callable[[str], None],
) -> BrainExtractionResult:
    def save(arr: np.ndarray, name: str, dtype) -> str:
        img = nb.Nifti1Image(arr.astype(dtype), ref.affine, ref.header)
        img.header.set_data_dtype(dtype)
        img.header.set_slope_inter(1.0, 0.0)
        img.header["descrip"] = b"anatprep"
        img.header["intent_name"] = b""
        path = out_dir / name
        write_nifti(img, path)
        return str(path)

    bc = corrected.astype(np.float32)
    bias_corrected = save(bc, "bias_corrected.nii.gz", np.float32)
    mask_file = save(mask, "brain_mask.nii.gz", np.uint8)
    brain = save(bc * mask, "brain.nii.gz", np.float32)
    del bc
    probsegs: dict[str, str] = {}
    if posteriors is not None:
        for name, post in zip(segmentation.TISSUES, posteriors, strict=True):
            prob = np.clip(post, 0.0, 1.0) * mask
            probsegs[name] = save(prob, f"probseg_{name}.nii.gz", np.float32)
            del prob
    affine = warp = None
    if transforms is not None:
        affine = _place(transforms.affine, out_dir / "template_to_t1w_affine.mat")
        warp = _place(transforms.warp, out_dir / "template_to_t1w_warp.nii.gz")
    lap("write")
    stats_file = out_dir / "brain_extraction.json"
    write_json(stats, stats_file)
    return BrainExtractionResult(
        bias_corrected=bias_corrected,
        mask=mask_file,
        brain=brain,
        probsegs=probsegs,
        affine=affine,
        warp=warp,
        stats=str(stats_file),
        mask_volume_ml=stats["mask_volume_ml"],
        skull_stripped_input=stats["skull_stripped_input"],
        mask_quality=stats["MaskQuality"],
        quality_flags=tuple(stats["QualityFlags"]),
    )


def _place(src: Path, final: Path) -> str:
    """Copy ``src`` to ``final`` atomically; return the final path."""
    return str(copy_file(src, final))
