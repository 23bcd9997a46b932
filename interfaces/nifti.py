"""Reading a NIfTI file as the image type it is.

nibabel's ``load`` is annotated as returning any ``FileBasedImage``; for a ``.nii`` or
``.nii.gz`` path it returns a :class:`nibabel.Nifti1Image` (``Nifti2Image`` is a subclass),
with the ``dataobj``, ``shape`` and ``affine`` the callers read; the ``dataobj`` of an image
loaded from a file is an :class:`nibabel.arrayproxy.ArrayProxy` (typed as any array).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # nibabel is slow to import; it is imported where an image is read
    import nibabel as nb
    from nibabel.arrayproxy import ArrayProxy


def load_nifti(path: str | os.PathLike) -> nb.Nifti1Image:
    """``nibabel.load(path)``, typed as the NIfTI image it returns for a NIfTI file."""
    import nibabel as nb

    return cast("nb.Nifti1Image", nb.load(path))


def array_proxy(img: nb.Nifti1Image) -> ArrayProxy:
    """The voxel proxy (unscaled data, ``slope``, ``inter``) of an image loaded from a file."""
    return cast("ArrayProxy", img.dataobj)


__all__ = ["array_proxy", "load_nifti"]
