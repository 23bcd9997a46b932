"""Atropos three-class segmentation in the warped prior, and the mask refinement.

Atropos (Otsu start by default, Gaussian classes, a light MRF, fixed seed) runs in the prior
mask dilated by ``atropos_margin_mm``; classes are ordered by mean intensity (CSF < GM < WM
in a T1w).  The refinement follows antsBrainExtraction.sh's idea in our own steps, with
radii in millimetres (:mod:`.morphology`):

1. tissue = GM or WM, opened (erode 2 mm, largest component, dilate) to cut thin bridges
   to scalp or dura; cavities filled;
2. CSF within ``csf_margin_mm`` of the tissue added (sulcal and outer CSF belong to the
   brain mask);
3. the warped template brain where its probability is at least ``prior_union_min`` joined
   (as the script does): where the segmentation misses cortex (low contrast, atrophy,
   a dark vertex) or labels enlarged ventricles as outside, the template brain holds;
4. closed by ``close_mm``; then :func:`clean_mask`: the largest component, cavities filled,
   and every slice hole inside the template brain filled in all three planes, so the
   invariants the QC checks (:mod:`.quality`) hold by construction.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import morphology
from .params import BrainExtractionParams
from .quality import fill_plane_holes

#: the Atropos classes, by rising T1w intensity: the order of :func:`atropos`' labels 1..3 and
#: of its posteriors
TISSUES = ("CSF", "GM", "WM")


def atropos(ants, image, region, p: BrainExtractionParams):
    """(labels 1..3 ordered CSF, GM, WM; posteriors [CSF, GM, WM]) within ``region``."""
    with _private_tempdir():
        seg = _run_atropos(ants, image, region, p)
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


def _run_atropos(ants, image, region, p: BrainExtractionParams) -> dict:
    return ants.atropos(
        a=image,
        x=region,
        i=f"{p.atropos_init}[3]",
        m=f"[{p.atropos_mrf},1x1x1]",
        c=f"[{int(p.atropos_iterations)},0]",
        priorweight=0.0,
        r=0,  # Atropos: 0 = constant seed (deterministic)
    )


@contextmanager
def _private_tempdir() -> Iterator[None]:
    """antspyx's ``atropos`` writes its posteriors to files named by ``tempfile.mktemp`` and
    never removes them (three files, about 5 MB, per run: a cluster's /tmp fills up).  Point
    ``tempfile`` at a private directory for the call and remove it afterwards; the posteriors
    are in memory by then."""
    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="anatprep-atropos-") as private:
        tempfile.tempdir = private
        try:
            yield
        finally:
            tempfile.tempdir = saved


def refine_mask(
    labels: np.ndarray,
    region: np.ndarray,
    prior: np.ndarray,
    spacing,
    p: BrainExtractionParams,
) -> np.ndarray:
    """A single-component, hole-free brain mask from the ordered labels, the segmentation
    region and the warped template prior (see the module docstring)."""
    tissue = (labels == 2) | (labels == 3)
    tissue = morphology.largest_component(morphology.erode(tissue, 2.0, spacing))
    tissue = morphology.dilate(tissue, 2.0, spacing)
    tissue = morphology.fill_holes(tissue) & region
    near = morphology.dilate(tissue, p.csf_margin_mm, spacing)
    mask = tissue | ((labels == 1) & near & region)
    if p.prior_union:
        mask |= prior >= p.prior_union_min
    mask = morphology.close(mask, p.close_mm, spacing)
    return clean_mask(mask, prior)


def clean_mask(mask: np.ndarray, prior: np.ndarray | None) -> np.ndarray:
    """The mask's invariants made true: one piece, no cavity, no slice hole inside the
    template brain."""
    mask = morphology.fill_holes(morphology.largest_component(mask))
    return fill_plane_holes(mask, prior)
