"""Template-to-subject registration, with ANTs' own ``antsRegistration`` main.

Start: a search over rotations around the centres of mass (antsAI, via
``ants.affine_initializer``) on 4 mm copies of both images.  Then two ``antsRegistration``
runs, each multi-resolution, on images resampled to ``registration_spacing_mm``:

1. rigid -> affine, Mattes mutual information, over the subject's head box;
2. SyN, neighbourhood cross-correlation, restricted to the template's dilated brain mask
   (the moving mask) and run on the subject's image cut to the affinely placed template
   brain plus :data:`SYN_MARGIN_MM`: the metric's cost follows the fixed image's extent,
   and nothing beyond the brain's neighbourhood bears on the brain mask.

The transform is written as an affine (``.mat``: the start and both linear stages folded
in) and a displacement field (``.nii.gz``, defined over the SyN box; identity beyond it),
not as one HDF5 composite: HDF5 stamps times into the file, which would break byte-identical
reruns.  Both are applied to the template's brain probability mask on the working grid.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .bias import resample_to
from .grids import bounding_box
from .params import BrainExtractionParams
from .runtime import native_output_to

#: the SyN stage sees the subject's image this far around the affinely placed template brain:
#: beyond the affine's residual misplacement and the metric's own reach (CC radius 2 at
#: 3 mm); its cost is ~2.6 s per iteration of the finest level for a 3 mm box of 363 k
#: voxels, so every millimetre of margin counts
SYN_MARGIN_MM = 10.0


class Transforms(NamedTuple):
    """The template-to-subject transform files, by name; iterating gives them in the order
    ANTs applies them (``transformlist``): the warp field, then the affine."""

    warp: Path  # displacement field (.nii.gz)
    affine: Path  # affine (.mat)


def _levels(iterations, shrinks) -> tuple[str, str, str]:
    iters = "x".join(str(int(i)) for i in iterations)
    shrink = "x".join(str(int(s)) for s in shrinks)
    sigmas = "x".join(str(int(s) // 2) for s in shrinks)
    return iters, shrink, sigmas + "vox"


def _shrinks(n: int) -> tuple[int, ...]:
    return tuple(2 ** (n - 1 - k) for k in range(n))


def register_template(
    ants,
    subject,
    head,
    brain_prior,
    work: Path,
    p: BrainExtractionParams,
) -> Transforms:
    """Register ``head`` (template) to ``subject``; return the warp field and affine paths."""
    fixed = resample_to(ants, subject, p.registration_spacing_mm)
    moving = resample_to(ants, head, p.registration_spacing_mm)
    fixed_path, moving_path = work / "reg_fixed.nii.gz", work / "reg_moving.nii.gz"
    ants.image_write(fixed, str(fixed_path))
    ants.image_write(moving, str(moving_path))

    # registration mask: the template brain, generously dilated (~10 mm)
    reg_mask = ants.threshold_image(brain_prior, 0.01, 1e9, 1, 0)
    reg_mask = resample_to(ants, reg_mask, p.registration_spacing_mm, interp=1)
    radius = max(1, round(10.0 / p.registration_spacing_mm))
    reg_mask = ants.iMath(reg_mask, "MD", radius)
    mask_path = work / "reg_moving_mask.nii.gz"
    ants.image_write(reg_mask, str(mask_path))

    init_path = work / "init.mat"
    init_fixed = resample_to(ants, fixed, 4.0)
    init_moving = resample_to(ants, moving, 4.0)
    ants_log = work / "ants_registration.log"
    if p.init_search_degrees > 0:
        with native_output_to(ants_log):
            ants.affine_initializer(
                init_fixed,
                init_moving,
                search_factor=float(p.init_search_degrees),
                radian_fraction=float(p.init_search_arc),
                use_principal_axis=False,
                local_search_iterations=10,
                txfn=str(init_path),
            )
        initial = str(init_path)
    else:
        initial = f"[{fixed_path},{moving_path},1]"  # centres of mass

    common = [
        "-d", "3", "--float", "1", "--random-seed", str(int(p.random_seed)),
        "--write-composite-transform", "0", "--collapse-output-transforms", "1",
        "--interpolation", "Linear",
        "--winsorize-image-intensities", f"[{p.winsorize[0]},{p.winsorize[1]}]",
        "--use-histogram-matching", "0",
    ]  # fmt: skip

    # 1. rigid -> affine, Mattes MI over the head
    mi = f"MI[{fixed_path},{moving_path},1,32,Regular,0.25]"
    rigid = _levels(p.rigid_iterations, _shrinks(len(p.rigid_iterations)))
    affine = _levels(p.affine_iterations, _shrinks(len(p.affine_iterations)))
    linear_prefix = work / "tpl2sub_linear_"
    argv = [
        *common, "--output", str(linear_prefix), "--initial-moving-transform", initial,
        "--transform", "Rigid[0.1]", "--metric", mi,
        "--convergence", f"[{rigid[0]},1e-6,10]", "--shrink-factors", rigid[1],
        "--smoothing-sigmas", rigid[2],
        "--transform", "Affine[0.1]", "--metric", mi,
        "--convergence", f"[{affine[0]},1e-6,10]", "--shrink-factors", affine[1],
        "--smoothing-sigmas", affine[2],
    ]  # fmt: skip
    with native_output_to(ants_log):
        ants.registration(argv, None)
    affine_path = Path(f"{linear_prefix}0GenericAffine.mat")
    if not affine_path.is_file():
        raise RuntimeError(f"antsRegistration wrote no transform {affine_path}")

    # 2. SyN, neighbourhood cross-correlation, on the subject's image around the affinely
    #    placed template brain only (the metric's cost follows the fixed image's extent)
    placed = (
        ants.apply_transforms(
            fixed=fixed, moving=brain_prior, transformlist=[str(affine_path)], interpolator="linear"
        ).numpy()
        >= 0.01
    )
    syn_fixed = fixed
    if placed.any():
        syn_fixed = bounding_box(placed, fixed.spacing, SYN_MARGIN_MM).cut(ants, fixed)
    syn_fixed_path = work / "reg_fixed_brain.nii.gz"
    ants.image_write(syn_fixed, str(syn_fixed_path))
    cc = f"CC[{syn_fixed_path},{moving_path},1,{int(p.syn_cc_radius)}]"
    syn = _levels(p.syn_iterations, p.syn_shrink_factors)
    prefix = work / "tpl2sub_"
    argv = [
        *common, "--output", str(prefix), "--initial-moving-transform", str(affine_path),
        "--transform", f"SyN[{p.syn_gradient_step},3,0]", "--metric", cc,
        "--convergence", f"[{syn[0]},1e-6,10]", "--shrink-factors", syn[1],
        "--smoothing-sigmas", syn[2],
    ]  # fmt: skip
    if p.syn_registration_mask:
        argv += ["--masks", f"[NULL,{mask_path}]"]
    with native_output_to(ants_log):
        ants.registration(argv, None)
    warp = Path(f"{prefix}1Warp.nii.gz")
    collapsed = Path(f"{prefix}0GenericAffine.mat")
    for path in (warp, collapsed):
        if not path.is_file():
            raise RuntimeError(f"antsRegistration wrote no transform {path}")
    return Transforms(warp=warp, affine=collapsed)


def warp_prior(ants, subject, brain_prior, transforms: Transforms):
    """The template brain probability on the subject's full-resolution grid."""
    return ants.apply_transforms(
        fixed=subject,
        moving=brain_prior,
        transformlist=[str(t) for t in transforms],
        interpolator="linear",
    )
