"""An independent port of ANTs' ``antsBrainExtraction.sh`` (3-D, T1, defaults) on antspyx.

A second opinion for the project's own extractor: nothing here comes from
``anatprep.interfaces.brainmask``; only the template paths
(``anatprep.interfaces.templates``) are shared.

Source read: ``Scripts/antsBrainExtraction.sh`` of ANTsX/ANTs at commit
``026e2ec642c7668abac6a11c1df680e773563f77`` (the version in which the initial search is
``antsAI`` and the segmentation is a single ``Atropos`` call; that version of the script
does not call ``antsAtroposN4.sh``), plus ``Examples/ResampleImageBySpacing.cxx`` for the
smoothing of the 4 mm copies.  The script's default parameters for ``-d 3`` with one
anatomical image, no ``-f`` registration mask and ``-c 3,1,2,3``:

1. ``ImageMath TruncateImageIntensity 0.01 0.999 256`` on the head, then
   ``N4BiasFieldCorrection -s 4 -c [50x50x50x50,1e-7] -b [200]`` (no mask: whole image, no
   weight image, no intensity rescaling).
2. Initial search: both the template head and the N4 image resampled to 4 mm
   (``ResampleImageBySpacing ... 4 4 4 1``: per-axis Gaussian of sigma
   ``4 / spacing - 1`` mm, then linear resampling on a grid with the input's origin and
   direction), then ``antsAI -m Mattes[template4mm, subject4mm, 32, Regular, 0.25]
   -t Affine[0.1] -s [15, 0.1] -p 0 -c 10``.  Note the direction: the template is the
   *fixed* image throughout, the subject the moving one.
3. Laplacians (``ImageMath Laplacian 1.5 1``) of the N4 image and of the template head.
4. ``antsRegistration -u 1 -w [0.025,0.975] -z 1 --float 0 -r <initial>`` with
   rigid: ``MI[template, N4, 1, 32, Regular, 0.25]``, ``Rigid[0.1]``,
   ``[1000x500x250x100, 1e-8, 10]``, shrink ``8x4x2x1``, sigmas ``4x2x1x0`` (voxels);
   affine: the same with ``Affine[0.1]``;
   SyN: ``CC[template, N4, 0.5, 4]`` + ``CC[template Laplacian, N4 Laplacian, 0.5, 4]``,
   ``SyN[0.1,3,0]``, ``[50x10x0, 1e-9, 15]``, shrink ``4x2x1``, sigmas ``2x1x0``; no mask.
   All at the images' own resolution (the template's grid is the registration domain).
5. ``antsApplyTransforms -n Gaussian -t [affine, 1] -t InverseWarp`` of the template brain
   probability onto the *original* head's grid; ``ThresholdImage 0.5 1 1 0``.
6. Segmentation region: the binary prior, ``MD 2``, ``GetLargestComponent``;
   ``Atropos -i kmeans[3] -c [3,0.0] -m [0.1,1x1x1] -k Gaussian`` on the N4 image inside it.
7. Clean-up, on images padded by 10 voxels: WM (3) and GM (2) kept as their largest
   components; GM times its ``FillHoles 2``; CSF (1) eroded by 10 voxels and added to GM
   where GM is zero (``addtozero``); segmentation = WM, else GM.
8. Mask: WM or GM, ``ME 2``, ``GetLargestComponent``, ``MD 4``, ``FillHoles 2``, union
   (``addtozero``) with the binary warped prior, ``MD 5``, ``ME 5``; un-padded.
   Radii are in voxels, as in ImageMath.

antsRegistration and Atropos run as ANTs' own mains on the script's argument lists
(``ants.registration(argv, None)``, the library's ``Atropos`` entry point); N4, Laplacian,
truncation, thresholds and morphology are the antspyx wrappers of the same ITK/ANTs code.

Differences from the real script (antspyx 0.6.3 exposes no ``antsAI`` main):

* The initial search uses ``antsAffineInitializer`` (``ants.affine_initializer``) with the
  arguments of the call the script used before ``antsAI`` (still there, commented out):
  ``15 0.1 0 10`` on the same 4 mm images.  That program searches rotations of 15 degree
  steps over +-0.1 pi about two axes (derived from the template's principal axes) around
  the centres of mass, each refined by 20 conjugate-gradient iterations (its last argument
  is read but not used) of Mattes MI (32 bins) on every 10th template voxel; ``antsAI``'s
  own start grid, ``Regular 0.25`` sampling and ``Affine[0.1]`` local search differ.
* The 4 mm smoothing is ``ants.smooth_image`` (discrete Gaussian, physical sigma) instead
  of ITK's recursive Gaussian, and resampled voxels outside the input take 0 instead of the
  value of voxel (1,1,1).
* Determinism: ``--random-seed 42`` on antsRegistration and ``Atropos -r 0`` (fixed seed);
  the script seeds Atropos from the clock (``-u 1``) and leaves antsRegistration's default.
  Run with ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1`` (the CLI sets it when unset).
* The mask is written with nibabel on the input's own affine and header (uint8), not by
  ITK; intermediates keep the script's names (``BrainExtraction*``) inside ``out_dir``.

    python benchmarks/ants_script.py T1W OUT_DIR [--template-head H --template-mask M]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MASK_NAME = "ants_script_mask.nii.gz"
TIMINGS_NAME = "ants_script_timings.json"

# the script's defaults (3-D, T1, -c 3,1,2,3)
TRUNCATE = (0.01, 0.999, 256)
N4_SHRINK = 4
N4_ITERATIONS = [50, 50, 50, 50]
N4_TOLERANCE = 1e-7
N4_BSPLINE_MM = 200
INIT_SPACING_MM = 4.0
INIT_SEARCH = (15.0, 0.1)  # degrees per step, arc fraction
INIT_LOCAL_ITERATIONS = 10
LAPLACIAN = (1.5, 1)
LINEAR_METRIC = "1,32,Regular,0.25"
LINEAR_CONVERGENCE = "[1000x500x250x100,1e-8,10]"
LINEAR_SHRINK, LINEAR_SIGMAS = "8x4x2x1", "4x2x1x0"
SYN = "SyN[0.1,3,0]"
SYN_CC = "0.5,4"
SYN_CONVERGENCE = "[50x10x0,1e-9,15]"
SYN_SHRINK, SYN_SIGMAS = "4x2x1", "2x1x0"
WINSORIZE = "[0.025,0.975]"
PRIOR_THRESHOLD = 0.5
ATROPOS_CLASSES = 3
CSF, GM, WM = 1, 2, 3
ATROPOS_CONVERGENCE = "[3,0.0]"
ATROPOS_MRF = "[0.1,1x1x1]"
PAD_VOXELS = 10
RANDOM_SEED = 42


@contextlib.contextmanager
def _native_output_to(log: Path) -> Iterator[None]:
    """Send the C++ mains' stdout/stderr (file descriptors 1 and 2) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(log, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _resample_by_spacing(ants: Any, img: Any, spacing: float) -> Any:
    """``ResampleImageBySpacing 3 in out s s s 1``: smooth, then linear onto an s-mm grid
    that keeps the input's origin and direction (size: floor(n * spacing_in / s))."""
    sigmas = [spacing / sp - 1.0 for sp in img.spacing]
    smoothed = img
    if any(s > 0 for s in sigmas):
        smoothed = ants.smooth_image(img, [max(s, 0.0) for s in sigmas], True)
    shape = tuple(int(n * sp / spacing) for n, sp in zip(img.shape, img.spacing, strict=True))
    ref = ants.make_image(
        shape, 0.0, spacing=(spacing,) * 3, origin=img.origin, direction=img.direction
    )
    return ants.resample_image_to_target(smoothed, ref, interp_type="linear")


def _threshold(ants: Any, img: Any, lo: float, hi: float) -> Any:
    return ants.threshold_image(img, lo, hi, 1, 0)


def _add_to_zero(a: Any, b: Any) -> Any:
    """ImageMath addtozero: ``a`` where it is non-zero, else ``b``."""
    return a + b * (a == 0)


def _run_main(ants: Any, name: str, argv: list[str], log: Path) -> None:
    """One ANTs main (antsRegistration, Atropos) on a raw argument list, output to ``log``."""
    with _native_output_to(log):
        if name == "antsRegistration":
            ants.registration(argv, None)  # raises on a non-zero exit
            return
        from ants.internal import get_lib_fn, process_arguments

        status = get_lib_fn(name)(process_arguments(argv))
    if status != 0:
        raise RuntimeError(f"{name} exited with status {status}; see {log}")


def extract(t1w: Path, out_dir: Path, template_head: Path, template_mask: Path) -> Path:
    """Run the ported script on ``t1w``; write ``ants_script_mask.nii.gz`` (on the input's
    grid) and the intermediates into ``out_dir``; return the mask's path."""
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    import ants
    import nibabel as nb
    import numpy as np

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "ants_script.log"
    log.write_text("")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    def path(name: str) -> str:
        return str(out_dir / f"BrainExtraction{name}.nii.gz")

    anatomical = ants.image_read(str(t1w), pixeltype="float")
    template = ants.image_read(str(template_head), pixeltype="float")
    prior = ants.image_read(str(template_mask), pixeltype="float")

    # 1. truncation + N4 (pre brain extraction)
    truncated = ants.iMath(anatomical, "TruncateIntensity", *TRUNCATE)
    ants.image_write(truncated, str(out_dir / "N4Truncated0.nii.gz"))
    with _native_output_to(log):
        n4 = ants.n4_bias_field_correction(
            truncated,
            mask=None,  # antspyx then uses the whole image, as N4 without -x
            rescale_intensities=False,
            shrink_factor=N4_SHRINK,
            convergence={"iters": N4_ITERATIONS, "tol": N4_TOLERANCE},
            spline_param=N4_BSPLINE_MM,
        )
    n4_path = str(out_dir / "N4Corrected0.nii.gz")
    ants.image_write(n4, n4_path)
    lap("n4")

    # 2. initial search on 4 mm copies (template fixed, subject moving)
    init_fixed = _resample_by_spacing(ants, template, INIT_SPACING_MM)
    init_moving = _resample_by_spacing(ants, n4, INIT_SPACING_MM)
    ants.image_write(init_fixed, path("InitialAffineFixed"))
    ants.image_write(init_moving, path("InitialAffineMoving"))

    # 3. Laplacians for the second SyN metric
    laplacian = ants.iMath(n4, "Laplacian", *LAPLACIAN)
    template_laplacian = ants.iMath(template, "Laplacian", *LAPLACIAN)
    ants.image_write(laplacian, path("Laplacian"))
    ants.image_write(template_laplacian, path("TemplateLaplacian"))

    initial = str(out_dir / "BrainExtractionInitialAffine.mat")
    with _native_output_to(log):
        ants.affine_initializer(
            init_fixed,
            init_moving,
            search_factor=INIT_SEARCH[0],
            radian_fraction=INIT_SEARCH[1],
            use_principal_axis=False,
            local_search_iterations=INIT_LOCAL_ITERATIONS,
            txfn=initial,
        )
    if not Path(initial).is_file():
        raise RuntimeError(f"antsAffineInitializer wrote no transform {initial}")
    lap("initial_search")

    # 4. rigid -> affine -> SyN, template (fixed) to subject (moving)
    prefix = str(out_dir / "BrainExtractionPrior")
    tpl_path = str(template_head)
    lap_path, tpl_lap_path = path("Laplacian"), path("TemplateLaplacian")
    mi = f"MI[{tpl_path},{n4_path},{LINEAR_METRIC}]"
    argv = [
        "-d", "3", "-u", "1", "-w", WINSORIZE, "-o", prefix, "-r", initial,
        "-z", "1", "--float", "0", "--random-seed", str(RANDOM_SEED), "--verbose", "1",
        "-m", mi, "-c", LINEAR_CONVERGENCE, "-t", "Rigid[0.1]",
        "-f", LINEAR_SHRINK, "-s", LINEAR_SIGMAS,
        "-m", mi, "-c", LINEAR_CONVERGENCE, "-t", "Affine[0.1]",
        "-f", LINEAR_SHRINK, "-s", LINEAR_SIGMAS,
        "-m", f"CC[{tpl_path},{n4_path},{SYN_CC}]",
        "-m", f"CC[{tpl_lap_path},{lap_path},{SYN_CC}]",
        "-c", SYN_CONVERGENCE, "-t", SYN, "-f", SYN_SHRINK, "-s", SYN_SIGMAS,
    ]  # fmt: skip
    _run_main(ants, "antsRegistration", argv, log)
    affine = f"{prefix}0GenericAffine.mat"
    inverse_warp = f"{prefix}1InverseWarp.nii.gz"
    for p in (affine, inverse_warp):
        if not Path(p).is_file():
            raise RuntimeError(f"antsRegistration wrote no transform {p}")
    lap("registration")

    # 5. template prior onto the original head's grid, binarized at 0.5
    warped = ants.apply_transforms(
        fixed=anatomical,
        moving=prior,
        transformlist=[affine, inverse_warp],
        whichtoinvert=[True, False],
        interpolator="gaussian",
    )
    prior_bin = _threshold(ants, warped, PRIOR_THRESHOLD, 1.0)
    ants.image_write(prior_bin, str(out_dir / "BrainExtractionPriorWarped.nii.gz"))

    # 6. segmentation region and Atropos
    region = ants.iMath(prior_bin, "MD", 2)
    region = ants.iMath(region, "GetLargestComponent")
    region_path = str(out_dir / "BrainExtractionAtroposRegion.nii.gz")
    ants.image_write(region, region_path)
    lap("prior")
    seg_path = path("Segmentation")
    argv = [
        "-d", "3", "-o", seg_path, "-a", n4_path, "-x", region_path,
        "-i", f"kmeans[{ATROPOS_CLASSES}]", "-c", ATROPOS_CONVERGENCE, "-m", ATROPOS_MRF,
        "-k", "Gaussian", "-r", "0", "--verbose", "1",
    ]  # fmt: skip
    _run_main(ants, "Atropos", argv, log)
    seg = ants.image_read(seg_path, pixeltype="float")
    lap("atropos")

    # 7. tissue clean-up on padded images
    seg = ants.iMath(seg, "Pad", PAD_VOXELS)
    prior_pad = ants.iMath(prior_bin, "Pad", PAD_VOXELS)
    wm = ants.iMath(_threshold(ants, seg, WM, WM), "GetLargestComponent")
    gm = ants.iMath(_threshold(ants, seg, GM, GM), "GetLargestComponent")
    csf = _threshold(ants, seg, CSF, CSF)
    gm = gm * ants.iMath(gm, "FillHoles", 2)
    wm = wm * WM
    gm = _add_to_zero(gm, ants.iMath(csf, "ME", 10)) * GM
    seg = _add_to_zero(wm, gm)

    # 8. the mask
    mask = _add_to_zero(_threshold(ants, seg, WM, WM), _threshold(ants, seg, GM, GM))
    mask = ants.iMath(mask, "ME", 2)
    mask = ants.iMath(mask, "GetLargestComponent")
    mask = ants.iMath(mask, "MD", 4)
    mask = ants.iMath(mask, "FillHoles", 2)
    mask = _add_to_zero(mask, prior_pad)
    mask = ants.iMath(mask, "MD", 5)
    mask = ants.iMath(mask, "ME", 5)
    mask = ants.iMath(mask, "Pad", -PAD_VOXELS)
    ants.image_write(mask, path("Mask"))
    lap("morphology")

    # the mask on the input's own grid, written by nibabel
    ref = nb.load(str(t1w))
    data = mask.numpy() > 0
    if data.shape != ref.shape[:3]:
        raise RuntimeError(f"mask shape {data.shape} != input {ref.shape[:3]}")
    header = ref.header.copy()
    header.set_data_dtype(np.uint8)
    out_img = nb.Nifti1Image(data.astype(np.uint8), ref.affine, header)
    out_img.header.set_slope_inter(1.0, 0.0)
    out_path = out_dir / MASK_NAME
    nb.save(out_img, str(out_path))
    lap("write")
    (out_dir / TIMINGS_NAME).write_text(json.dumps(timings, indent=1) + "\n")
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("t1w", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--template-head", type=Path)
    parser.add_argument("--template-mask", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    head, brain = args.template_head, args.template_mask
    if head is None or brain is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from anatprep.interfaces.templates import robex_template

        tpl = robex_template()
        head, brain = head or tpl.head, brain or tpl.mask

    import nibabel as nb
    import numpy as np
    from scipy import ndimage

    start = time.perf_counter()
    out = extract(args.t1w, args.out_dir, head, brain)
    wall = time.perf_counter() - start
    img = nb.load(str(out))
    mask = np.asanyarray(img.dataobj) > 0
    ml = float(mask.sum() * np.prod(img.header.get_zooms()[:3]) / 1000)
    timings = json.loads((args.out_dir / TIMINGS_NAME).read_text())
    print(f"mask {out}")
    print(f"volume {ml:.1f} mL, components {int(ndimage.label(mask)[1])}, wall {wall:.1f} s")
    print("stages " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
