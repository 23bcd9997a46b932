"""Classic single-frame DICOM series (one file per slice, 3D or 4D) as a NIfTI image.

The voxel layout follows dcm2niix, the field's reference converter, so our files can be
compared with it voxel for voxel:

* in-plane, NIfTI ``i`` runs along the DICOM columns and ``j`` along the rows, rows flipped
  (the first DICOM row is the last NIfTI row);
* slices run along the slice normal (row x column cosines) in ascending position;
* a 3D volume with more than one slice is then permuted/flipped to the closest RAS layout,
  a 4D series is not;
* stored integers are kept, with the DICOM rescale in ``scl_slope`` / ``scl_inter``; unsigned
  16-bit data with fewer than 16 bits stored is written as signed 16-bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import nibabel as nb
import numpy as np
import pydicom
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from .headers import UnusableFile, open_dicom, slice_header_from_dataset
from .series import SeriesGeometryError, check_uniform_spacing, order_slices

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class ClassicSeries:
    """A set of single-frame DICOM files that together form one 3D or 4D volume.

    Construction reads every file (pixels included) and orders the slices; geometry problems
    raise :class:`SeriesGeometryError`, unreadable files :class:`UnusableFile`.
    """

    def __init__(self, paths: Sequence[str]):
        if not paths:
            raise SeriesGeometryError("series has no files")
        datasets = {}
        headers = []
        for path in paths:
            ds, _ = open_dicom(path, stop_before_pixels=False)
            if "PixelData" not in ds:
                raise UnusableFile(path, "no pixel data")
            header = slice_header_from_dataset(ds, str(path))
            if header.flavour != "classic":
                raise UnusableFile(
                    path, f"{header.flavour} DICOM is not supported by the classic converter yet"
                )
            datasets[str(path)] = ds
            headers.append(header)
        self._order = order_slices(headers)
        self.datasets: list[pydicom.Dataset] = [datasets[p] for p in self._order.files]
        self.files = self._order.files
        self._check_consistent()

    # --- header-derived values -------------------------------------------------------------
    @property
    def first(self) -> pydicom.Dataset:
        return self.datasets[0]

    @property
    def n_slices(self) -> int:
        return self._order.n_slices

    @property
    def n_volumes(self) -> int:
        return self._order.n_volumes

    def _check_consistent(self) -> None:
        ref = self.first
        keys = ("Rows", "Columns", "BitsAllocated", "PixelRepresentation", "SamplesPerPixel")
        for ds, path in zip(self.datasets, self.files, strict=True):
            for key in keys:
                if ds.get(key) != ref.get(key):
                    raise SeriesGeometryError(
                        f"{path}: {key}={ds.get(key)} differs from the series' {ref.get(key)}"
                    )
            if int(ds.get("SamplesPerPixel", 1)) != 1:
                raise SeriesGeometryError(f"{path}: colour images are not converted")

    @cached_property
    def slice_spacing(self) -> float:
        """Distance between slice centres from positions (not SliceThickness)."""
        if self.n_slices == 1:
            return float(self.first.get("SliceThickness", 1.0) or 1.0)
        return check_uniform_spacing(self._order.distances)

    @cached_property
    def affine_lps(self) -> np.ndarray:
        """Voxel (column, row, slice) -> LPS mm, before any flip."""
        ds = self.first
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        row_cos, col_cos = iop[:3], iop[3:]
        normal = np.cross(row_cos, col_cos)
        dr, dc = (float(v) for v in ds.PixelSpacing)  # between rows, between columns
        aff = np.eye(4)
        aff[:3, 0] = row_cos * dc
        aff[:3, 1] = col_cos * dr
        aff[:3, 2] = normal * self.slice_spacing
        aff[:3, 3] = np.asarray(ds.ImagePositionPatient, dtype=float)
        self._check_in_plane()
        return aff

    def _check_in_plane(self) -> None:
        """Every slice must sit on the line through the first along the normal (no tilt)."""
        if self.n_slices < 2:
            return
        ds0 = self.first
        iop = np.asarray(ds0.ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        p0 = np.asarray(ds0.ImagePositionPatient, dtype=float)
        last = self.datasets[self.n_slices - 1]
        offset = np.asarray(last.ImagePositionPatient, dtype=float) - p0
        along = np.dot(offset, normal)
        lateral = np.linalg.norm(offset - along * normal)
        if lateral > max(0.05, 0.01 * abs(along)):
            raise SeriesGeometryError(
                f"slice positions drift {lateral:.3g} mm off the slice normal over the stack "
                "(gantry tilt or mixed stacks): refusing to write a wrong affine"
            )

    @cached_property
    def rescale(self) -> tuple[float, float, bool]:
        """(slope, intercept, uniform) of the DICOM rescale."""
        pairs = {
            (float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0))
            for ds in self.datasets
        }
        if len(pairs) == 1:
            slope, inter = pairs.pop()
            return slope, inter, True
        return 1.0, 0.0, False

    # --- voxels -------------------------------------------------------------------------------
    def stored_array(self) -> np.ndarray:
        """Stored values as (columns, rows, slices[, volumes]) in acquisition geometry."""
        rows, cols = int(self.first.Rows), int(self.first.Columns)
        dtype = self.first.pixel_array.dtype
        out = np.empty((self.n_volumes * self.n_slices, rows, cols), dtype=dtype)
        for n, (ds, path) in enumerate(zip(self.datasets, self.files, strict=True)):
            try:
                out[n] = ds.pixel_array
            except Exception as exc:  # pixel decoding errors come in many types
                raise UnusableFile(path, f"pixel data cannot be decoded: {exc}") from None
        out = out.reshape(self.n_volumes, self.n_slices, rows, cols)
        # -> (cols, rows, slices, volumes)
        arr = out.transpose(3, 2, 1, 0)
        return arr[..., 0] if self.n_volumes == 1 else arr

    def _output_array(self) -> tuple[np.ndarray, float, float]:
        arr = self.stored_array()
        slope, inter, uniform = self.rescale
        if not uniform:
            scaled = np.empty(arr.shape, dtype=np.float32)
            flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
            sflat = scaled.reshape(flat.shape)
            k = 0
            for v in range(self.n_volumes):
                for s in range(self.n_slices):
                    ds = self.datasets[v * self.n_slices + s]
                    m = float(ds.get("RescaleSlope", 1) or 1)
                    b = float(ds.get("RescaleIntercept", 0) or 0)
                    sflat[..., k] = flat[..., k] * m + b
                    k += 1
            return scaled, 1.0, 0.0
        if arr.dtype == np.uint16 and int(self.first.get("BitsStored", 16) or 16) < 16:
            arr = arr.astype(np.int16)  # what dcm2niix does: the stored range fits int16
        return arr, slope, inter

    # --- NIfTI --------------------------------------------------------------------------------
    def to_nifti(self) -> nb.Nifti1Image:
        """The series as a NIfTI-1 image laid out like dcm2niix's."""
        arr, slope, inter = self._output_array()
        ras = LPS_TO_RAS @ self.affine_lps
        # flip rows (NIfTI j)
        n_rows = arr.shape[1]
        arr = arr[:, ::-1, ...]
        ras = ras @ inv_ornt_aff(np.array([[0, 1], [1, -1], [2, 1]]), (1, n_rows, 1))
        if self.n_volumes == 1 and self.n_slices > 1:
            ornt = ornt_transform(io_orientation(ras), axcodes2ornt("RAS"))
            if not np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
                arr = nb.orientations.apply_orientation(arr, ornt)
                ras = ras @ inv_ornt_aff(ornt, self.stored_shape)
        img = nb.Nifti1Image(np.ascontiguousarray(arr), ras)
        hdr = img.header
        hdr.set_qform(ras, code=1)
        hdr.set_sform(ras, code=1)
        hdr.set_xyzt_units("mm", "sec")
        tr = self.first.get("RepetitionTime")
        zooms = list(hdr.get_zooms()[:3])
        if arr.ndim == 4:
            zooms.append(float(tr) / 1000.0 if tr else 1.0)
            hdr.set_zooms(zooms)
        elif tr:
            hdr["pixdim"][4] = float(tr) / 1000.0
        if (slope, inter) != (1.0, 0.0):
            hdr.set_slope_inter(slope, inter)
        hdr["descrip"] = b"anatprep"
        return img

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        return (int(self.first.Columns), int(self.first.Rows), self.n_slices)
