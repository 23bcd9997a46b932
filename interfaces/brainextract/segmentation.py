"""Atropos three-class segmentation in the warped prior, and the mask refinement.

Atropos (k-means start, Gaussian classes, a light MRF, fixed seed) runs in the prior mask
dilated by ``atropos_margin_mm``; classes are ordered by mean intensity (CSF < GM < WM in a
T1w).  The refinement follows the ANTs script's idea in our own steps:

1. tissue = GM or WM, opened (erode, largest component, dilate) to cut thin bridges to
   scalp or dura;
2. holes filled;
3. CSF within ``csf_margin_mm`` of the tissue added (sulcal and outer CSF belong to the
   brain mask);
4. closed (dilate, erode), largest component, holes filled: one solid component.
"""

from __future__ import annotations

import numpy as np

from .params import BrainExtractionParams


def _vox(img, mm: float) -> int:
    return max(1, round(mm / float(min(img.spacing))))


def atropos(ants, image, region, p: BrainExtractionParams):
    """(labels 1..3 ordered CSF, GM, WM; posteriors [CSF, GM, WM]) within ``region``."""
    seg = ants.atropos(
        a=image,
        x=region,
        i="kmeans[3]",
        m=f"[{p.atropos_mrf},1x1x1]",
        c=f"[{int(p.atropos_iterations)},0]",
        priorweight=0.0,
        r=0,  # Atropos: 0 = constant seed (deterministic)
    )
    labels = seg["segmentation"].numpy().astype(np.int16)
    data = image.numpy()
    means = [float(data[labels == k].mean()) if (labels == k).any() else -np.inf for k in (1, 2, 3)]
    order = np.argsort(means)  # class indices by rising intensity
    remap = np.zeros(4, np.int16)
    for new, old in enumerate(order, start=1):
        remap[old + 1] = new
    ordered = remap[labels]
    posteriors = [seg["probabilityimages"][int(k)] for k in order]
    return image.new_image_like(ordered.astype(np.float32)), posteriors


def refine_mask(ants, labels, region, p: BrainExtractionParams):
    """A single-component brain mask from the ordered labels (see the module docstring)."""
    lab = labels.numpy()
    tissue = labels.new_image_like(((lab == 2) | (lab == 3)).astype(np.float32))
    r_open = _vox(labels, 2.0)
    tissue = ants.iMath(tissue, "ME", r_open)
    tissue = ants.iMath(tissue, "GetLargestComponent")
    tissue = ants.iMath(tissue, "MD", r_open)
    tissue = ants.iMath(tissue, "FillHoles")
    tissue = tissue * region

    near = ants.iMath(tissue, "MD", _vox(labels, p.csf_margin_mm))
    csf = labels.new_image_like((lab == 1).astype(np.float32))
    mask = ants.iMath(tissue + csf * near * region, "Normalize")
    mask = ants.threshold_image(mask, 0.5, 2.0, 1, 0)
    r_close = _vox(labels, 2.0)
    mask = ants.iMath(mask, "MD", r_close)
    mask = ants.iMath(mask, "ME", r_close)
    mask = ants.iMath(mask, "GetLargestComponent")
    mask = ants.iMath(mask, "FillHoles")
    return mask
