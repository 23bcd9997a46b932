"""N4 bias-field correction: the field is estimated on a coarse grid (N4's shrink factor,
expressed in mm so that it means the same at any resolution) and applied on any grid that
shares the physical space (the working grid, the input's own grid).
"""

from __future__ import annotations

import numpy as np


def resample_to(ants, img, spacing_mm: float, interp: int = 0):
    """``img`` on a grid no finer than ``spacing_mm`` (linear by default; 1 = nearest)."""
    target = tuple(max(spacing_mm, float(s)) for s in img.spacing)
    if np.allclose(target, img.spacing):
        return img
    return ants.resample_image(img, target, use_voxels=False, interp_type=interp)


def n4_field(ants, img, spacing_mm: float, iterations, spline_mm: float, weight=None):
    """N4's multiplicative bias field of ``img``, on a coarse grid (an ANTs image).

    The field is fitted where ``weight`` (a 0..1 image on ``img``'s grid, e.g. the brain) is
    positive, else in the head (``ants.get_mask``: above the mean, cleaned): fitting the
    empty background costs time and informs nothing."""
    positive = img - float(img.min()) + 1.0
    coarse = resample_to(ants, positive, spacing_mm)
    if weight is not None:
        region = ants.resample_image_to_target(weight, coarse, interp_type="linear")
        kwargs = {"weight_mask": region, "mask": ants.threshold_image(region, 1e-3, 1e9, 1, 0)}
    else:
        kwargs = {"mask": ants.get_mask(coarse, cleanup=2)}
    return ants.n4_bias_field_correction(
        coarse,
        shrink_factor=1,
        spline_param=float(spline_mm),
        return_bias_field=True,
        convergence={"iters": list(iterations), "tol": 1e-7},
        **kwargs,
    )


def field_on(ants, field, target) -> np.ndarray:
    """The coarse ``field`` on ``target``'s grid (float32).  Beyond the field's own grid the
    nearest fitted value holds (the field is smooth): the coarse grid is extended by
    nearest-value padding before the linear interpolation, so no voxel of ``target`` falls
    outside it."""
    from scipy import ndimage

    values = field.numpy().astype(np.float32)
    valid = values > 1e-6
    if not valid.any():
        raise ValueError("N4 returned an empty bias field")
    if not valid.all():
        nearest = ndimage.distance_transform_edt(
            ~valid, return_distances=False, return_indices=True
        )
        values = values[tuple(nearest)]
    # pad so the coarse grid covers the target's whole field of view
    from .grids import index_to_point, point_to_index

    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    corners = corners * (np.array(target.shape, float) - 1)
    span = point_to_index(field, index_to_point(target, corners))
    lower = np.maximum(0, np.ceil(-span.min(0)).astype(int) + 1)
    upper = np.maximum(0, np.ceil(span.max(0) - (np.array(values.shape) - 1)).astype(int) + 1)
    padded = np.pad(values, list(zip(lower, upper, strict=True)), mode="edge")
    origin = index_to_point(field, -lower[None, :].astype(float))[0]
    grid = ants.from_numpy(
        padded, origin=tuple(float(o) for o in origin), spacing=field.spacing,
        direction=field.direction,
    )  # fmt: skip
    return ants.resample_image_to_target(grid, target, interp_type="linear").numpy()


def corrected(ants, img, field):
    """``img`` divided by ``field`` (float32 ANTs image on ``img``'s grid)."""
    return img.new_image_like((img.numpy() / field_on(ants, field, img)).astype(np.float32))
