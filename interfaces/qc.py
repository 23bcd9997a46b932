"""QC figure: brain-mask contour over the T1w in three planes (nilearn), as SVG.

The SVG is made reproducible: no creation date, fixed element ids.
"""

from __future__ import annotations

import io
from pathlib import Path

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .atomic import atomic_write_bytes
from .nifti import load_nifti


def cuts_through_mask(mask: str, n: int = 7) -> dict[str, list[float]]:
    """``n`` world coordinates per axis spread over the mask's extent (10th-90th percentile)."""
    img = load_nifti(mask)
    ijk = np.argwhere(np.asanyarray(img.dataobj) > 0)
    if ijk.size == 0:
        raise ValueError(f"{mask}: empty mask, nothing to show")
    world = nb.affines.apply_affine(img.affine, ijk[:: max(1, len(ijk) // 20000)])
    lo, hi = np.percentile(world, 10, axis=0), np.percentile(world, 90, axis=0)
    return {
        axis: [round(float(v), 1) for v in np.linspace(lo[k], hi[k], n)]
        for k, axis in enumerate("xyz")
    }


def mask_contour_svg(t1w: str, mask: str, title: str = "") -> bytes:
    """Render the mask outline (red) over the T1w at 7 cuts per view; return SVG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nilearn import plotting

    with matplotlib.rc_context({"svg.hashsalt": "anatprep", "svg.fonttype": "none"}):
        fig = plt.figure(figsize=(14, 7), facecolor="black")
        rows = (("x", 0.66), ("y", 0.33), ("z", 0.0))
        cuts = cuts_through_mask(mask)
        for mode, bottom in rows:
            display = plotting.plot_anat(
                t1w,
                display_mode=mode,
                cut_coords=cuts[mode],
                figure=fig,
                axes=(0, bottom, 1, 0.33),
                title=title if mode == "x" else None,
                annotate=True,
                draw_cross=False,
                black_bg=True,
                dim=-0.3,
            )
            display.add_contours(mask, levels=[0.5], colors=["r"], linewidths=1.2)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", facecolor="black", metadata={"Date": None})
        plt.close(fig)
    return buf.getvalue()


class _MaskReportInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="T1w (bias corrected)")
    mask_file = File(exists=True, mandatory=True, desc="binary brain mask")
    title = traits.Str("", usedefault=True, desc="figure title (no identifiers)")


class _MaskReportOutputSpec(TraitedSpec):
    out_report = File(exists=True, desc="SVG figure")


class MaskReport(SimpleInterface):
    """Brain-mask contour over the T1w as an SVG QC figure.

    Inputs: ``in_file``, ``mask_file``, ``title``.  Outputs: ``out_report``.
    """

    input_spec = _MaskReportInputSpec
    output_spec = _MaskReportOutputSpec

    def _run_interface(self, runtime):
        svg = mask_contour_svg(self.inputs.in_file, self.inputs.mask_file, self.inputs.title)
        out = Path(runtime.cwd) / "mask_report.svg"
        atomic_write_bytes(out, svg)
        self._results["out_report"] = str(out)
        return runtime
