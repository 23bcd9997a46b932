"""ANTs brain extraction of a T1w image on the ANTs library (``antspyx``).

Steps: N4 bias-field correction (estimated on a coarse grid, applied at full resolution);
registration of a whole-head template to the subject (centre-of-mass start, affine, then SyN)
at a coarse registration resolution; the template's brain probability mask warped onto the
subject grid; threshold, largest connected component and hole filling.

Determinism: ITK reads its thread count once per process at its first call, so the thread
count is put in the environment before ``ants`` is first imported, and the registration gets a
fixed random seed.  With one thread per subject, results are bit-identical run to run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .atomic import write_json, write_nifti


class BrainExtractionError(RuntimeError):
    """Brain extraction could not produce a trustworthy mask; the message says why."""


def _import_ants(num_threads: int):
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(num_threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(num_threads))
    import ants

    return ants


def check_t1w_input(path: str) -> nb.Nifti1Image:
    """A 3D image with some contrast; raise :class:`BrainExtractionError` otherwise."""
    img = nb.load(path)
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


def _probability_mask(ants, mask_path: Path, sigma_mm: float):
    mask = ants.image_read(str(mask_path))
    arr = mask.numpy()
    if arr.max() <= 0:
        raise BrainExtractionError(f"template mask {mask_path} is empty")
    if np.unique(arr).size <= 2:  # binary: smooth into a probability
        mask = ants.smooth_image(
            mask / float(arr.max()), sigma_mm, sigma_in_physical_coordinates=True
        )
    return mask


def _coarse(ants, img, spacing_mm: float):
    target = tuple(max(spacing_mm, float(s)) for s in img.spacing)
    if np.allclose(target, img.spacing):
        return img
    return ants.resample_image(img, target, use_voxels=False, interp_type=0)


def _field_to_full(ants, field, img) -> np.ndarray:
    """Bring a coarse multiplicative bias field to the full grid.

    Voxels of the full grid beyond the outermost coarse voxel centres get no value from
    interpolation; they take the nearest valid one (the field is smooth).
    """
    from scipy import ndimage

    full = ants.resample_image_to_target(field, img, interp_type="linear").numpy()
    valid = full > 1e-6
    if not valid.all():
        nearest = ndimage.distance_transform_edt(
            ~valid, return_distances=False, return_indices=True
        )
        full = full[tuple(nearest)]
    return full


def extract_brain(
    t1w: str,
    template_head: str,
    template_mask: str,
    out_dir: Path,
    *,
    n4_spacing_mm: float = 6.0,
    n4_iterations: tuple[int, ...] = (50, 50, 50),
    registration_spacing_mm: float = 3.0,
    syn_iterations: tuple[int, ...] = (60, 40, 20),
    mask_sigma_mm: float = 1.0,
    threshold: float = 0.5,
    random_seed: int = 42,
    num_threads: int = 1,
    volume_range_ml: tuple[float, float] = (700.0, 2600.0),
) -> dict[str, Any]:
    """Run the extraction; write ``bias_corrected``, ``mask`` and ``brain`` NIfTI files."""
    check_t1w_input(t1w)
    ants = _import_ants(num_threads)
    ants.config._random_seed = int(random_seed)  # read by ants.registration at call time
    img = ants.image_read(t1w)
    if img.dimension == 4:
        img = ants.slice_image(img, axis=3, idx=0)
    img = img.clone("float")
    head = ants.image_read(template_head)
    if head.dimension == 4:
        head = ants.slice_image(head, axis=3, idx=0)
    prob = _probability_mask(ants, Path(template_mask), mask_sigma_mm)

    # N4 on a coarse grid; the smooth field is brought back to full resolution
    positive = img - float(img.min()) + 1.0
    coarse = _coarse(ants, positive, n4_spacing_mm)
    field = ants.n4_bias_field_correction(
        coarse,
        shrink_factor=1,
        spline_param=200,
        return_bias_field=True,
        convergence={"iters": list(n4_iterations), "tol": 1e-7},
    )
    field_arr = _field_to_full(ants, field, img)
    corrected = img.new_image_like((img.numpy() / field_arr).astype(np.float32))

    fixed = _coarse(ants, corrected, registration_spacing_mm)
    moving = _coarse(ants, head, registration_spacing_mm)
    reg = ants.registration(
        fixed,
        moving,
        type_of_transform="SyN",
        aff_metric="mattes",
        syn_metric="mattes",
        syn_sampling=32,
        reg_iterations=tuple(syn_iterations),
        outprefix=str(out_dir / "tpl2sub_"),
    )
    warped = ants.apply_transforms(corrected, prob, reg["fwdtransforms"], interpolator="linear")
    mask = ants.threshold_image(warped, threshold, 1e9, 1, 0)
    if mask.numpy().sum() == 0:
        raise BrainExtractionError(f"{t1w}: warped template mask is empty (registration failed)")
    mask = ants.iMath(mask, "GetLargestComponent")
    mask = ants.iMath(mask, "FillHoles")

    mask_arr = (mask.numpy() > 0).astype(np.uint8)
    voxel_ml = float(np.prod(img.spacing)) / 1000.0
    volume_ml = float(mask_arr.sum()) * voxel_ml
    stats = {
        "mask_volume_ml": round(volume_ml, 3),
        "random_seed": int(random_seed),
        "num_threads": int(num_threads),
    }
    low, high = volume_range_ml
    if not low <= volume_ml <= high:
        raise BrainExtractionError(
            f"{t1w}: brain mask volume {volume_ml:.0f} mL is outside the plausible range "
            f"{low:.0f}-{high:.0f} mL (registration diverged or the image is not a head T1w)"
        )
    return _write_outputs(t1w, out_dir, corrected.numpy(), mask_arr, stats)


def _write_outputs(
    t1w: str, out_dir: Path, corrected: np.ndarray, mask: np.ndarray, stats: dict[str, Any]
) -> dict[str, Any]:
    """Save on the input's own header (ANTs' LPS reading is undone by using numpy arrays)."""
    ref = nb.load(t1w)
    affine = ref.affine

    def save(arr: np.ndarray, name: str, dtype) -> str:
        img = nb.Nifti1Image(arr.astype(dtype), affine, ref.header)
        img.header.set_data_dtype(dtype)
        img.header.set_slope_inter(1.0, 0.0)
        img.header["descrip"] = b"anatprep"
        path = out_dir / name
        write_nifti(img, path)
        return str(path)

    bc = corrected.astype(np.float32)
    out = {
        "bias_corrected": save(bc, "bias_corrected.nii.gz", np.float32),
        "mask": save(mask, "brain_mask.nii.gz", np.uint8),
        "brain": save(bc * mask, "brain.nii.gz", np.float32),
    }
    stats_file = out_dir / "brain_extraction.json"
    write_json(stats, stats_file)
    out["stats"] = str(stats_file)
    out["mask_volume_ml"] = stats["mask_volume_ml"]
    return out


class _AntsBrainExtractionInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="T1w image (3D)")
    template_head = File(exists=True, mandatory=True, desc="whole-head template T1w")
    template_mask = File(exists=True, mandatory=True, desc="template brain (probability) mask")
    n4_spacing_mm = traits.Float(6.0, usedefault=True)
    n4_iterations = traits.List(traits.Int, [50, 50, 50], usedefault=True)
    registration_spacing_mm = traits.Float(3.0, usedefault=True)
    syn_iterations = traits.List(traits.Int, [60, 40, 20], usedefault=True)
    mask_sigma_mm = traits.Float(1.0, usedefault=True)
    threshold = traits.Range(0.0, 1.0, 0.5, usedefault=True)
    random_seed = traits.Int(42, usedefault=True)
    num_threads = traits.Int(1, usedefault=True)
    volume_range_ml = traits.Tuple((700.0, 2600.0), traits.Float, traits.Float, usedefault=True)


class _AntsBrainExtractionOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc="binary brain mask (uint8)")
    out_brain = File(exists=True, desc="skull-stripped, bias-corrected T1w")
    bias_corrected = File(exists=True, desc="bias-corrected T1w")
    out_stats = File(exists=True, desc="JSON with mask volume and run settings")
    mask_volume_ml = traits.Float(desc="mask volume in mL")


class AntsBrainExtraction(SimpleInterface):
    """Template-based brain extraction with ANTs (N4, affine + SyN, warped prior).

    Inputs: ``in_file`` (3D T1w), ``template_head``, ``template_mask`` and the schedule
    parameters.  Outputs: ``out_mask``, ``out_brain``, ``bias_corrected``, ``out_stats``,
    ``mask_volume_ml``.  Raises :class:`BrainExtractionError` on non-3D or constant input, an
    empty warped mask, or a mask volume outside ``volume_range_ml``.
    """

    input_spec = _AntsBrainExtractionInputSpec
    output_spec = _AntsBrainExtractionOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        out = extract_brain(
            i.in_file,
            i.template_head,
            i.template_mask,
            Path(runtime.cwd),
            n4_spacing_mm=i.n4_spacing_mm,
            n4_iterations=tuple(i.n4_iterations),
            registration_spacing_mm=i.registration_spacing_mm,
            syn_iterations=tuple(i.syn_iterations),
            mask_sigma_mm=i.mask_sigma_mm,
            threshold=i.threshold,
            random_seed=i.random_seed,
            num_threads=i.num_threads,
            volume_range_ml=tuple(i.volume_range_ml),
        )
        self._results.update(
            out_mask=out["mask"],
            out_brain=out["brain"],
            bias_corrected=out["bias_corrected"],
            out_stats=out["stats"],
            mask_volume_ml=out["mask_volume_ml"],
        )
        return runtime
