"""Reorient an image to an axis code (e.g. RAS) by axis permutation and flips only.

Every voxel keeps its world coordinate: the data are never resampled, the stored values and
their scaling are kept, the qform and sform are each carried through the same permutation with
their codes.  An image already in the target orientation is copied byte for byte.
"""

from __future__ import annotations

import nibabel as nb
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from .axis_codes import check_orientation_code


def reorient_image(img: nb.Nifti1Image, code: str) -> nb.Nifti1Image | None:
    """The image in orientation ``code``, or ``None`` when it is already there."""
    code = check_orientation_code(code)
    target = axcodes2ornt(code)
    ornt = ornt_transform(io_orientation(img.affine), target)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return None
    shape = img.shape[:3]
    hdr = img.header.copy()
    slope, inter = hdr.get_slope_inter()
    raw = (
        np.asanyarray(img.dataobj.get_unscaled())
        if hasattr(img.dataobj, "get_unscaled")
        else np.asanyarray(img.dataobj)
    )
    data = apply_orientation(raw, ornt)
    to_new = inv_ornt_aff(ornt, shape)
    qform, qcode = img.get_qform(coded=True)
    sform, scode = img.get_sform(coded=True)
    new_affine = img.affine @ to_new
    out = nb.Nifti1Image(np.ascontiguousarray(data), new_affine, hdr)
    out.header.set_data_dtype(raw.dtype)
    if qform is not None:
        out.set_qform(qform @ to_new, code=int(qcode))
    else:
        out.set_qform(None, code=0)
    if sform is not None:
        out.set_sform(sform @ to_new, code=int(scode))
    else:
        out.set_sform(None, code=0)
    zooms = np.array(img.header.get_zooms())
    # input axis i becomes output axis ornt[i, 0]
    new_axis = {i: int(dst) for i, dst in enumerate(ornt[:, 0])}
    for i, dst in new_axis.items():
        zooms[dst] = img.header.get_zooms()[i]
    out.header.set_zooms(tuple(zooms))
    freq, phase, slc = img.header.get_dim_info()
    out.header.set_dim_info(*(None if d is None else new_axis[d] for d in (freq, phase, slc)))
    if slope is not None and (slope, inter) != (1.0, 0.0):
        out.header.set_slope_inter(slope, inter)
    return out
