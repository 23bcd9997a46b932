"""Classic single-frame DICOM series (one file per slice, 3D or 4D) as a NIfTI image.

Headers are read first (fast scan), the slices ordered along the normal and in acquisition
order, and only then are pixels read, straight into their place in the output array: the
volume exists once in memory.  Layout and data type rules are in :mod:`.volume`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from . import ge, philips, siemens, uih
from .csa import CsaImage
from .dicom_file import UnusableFile
from .diffusion import (
    DERIVED_VOLUME_VENDORS,
    diffusion_plan,
    gradient_files,
    table_files,
)
from .formats import g_number
from .geometry import is_tilted, lateral_drift, tilt_degrees
from .headers import read_headers, slice_header_from_dataset
from .limits import check_volume
from .pixels import read_frames
from .scan import GE_USER_DATA, ScannedHeader, number_or, private_field
from .series import SeriesGeometryError, check_uniform_spacing, order_slices
from .sidecar import asl_fields, phase_encoding_fields, slice_timing_fields
from .vendors import vendor_of
from .volume import RGB24, NiftiVolume, frames_to_volume, lps_affine, output_dtype

if TYPE_CHECKING:
    from .headers import Header


class ClassicSeries:
    """A set of single-frame DICOM files that together form one 3D or 4D volume.

    ``paths`` (and ``frames``) come from the series table in the slice order indexing found;
    construction reads every header and asserts that order (a series whose files changed
    since indexing fails, it is never re-ordered here).  Geometry problems raise
    :class:`SeriesGeometryError`, unreadable files :class:`UnusableFile`.  Pixels are read by
    :meth:`to_nifti`.
    """

    #: the flavour every file must have
    FLAVOUR = "classic"

    def __init__(
        self,
        paths: Sequence[str],
        frames: Sequence[int | None] | None = None,
        resample_tilt: bool = False,
    ):
        #: gantry tilt: shift slices onto an orthogonal grid instead of refusing the series
        self.resample_tilt = resample_tilt
        if not paths:
            raise SeriesGeometryError("series has no files")
        frames = list(frames) if frames is not None else [None] * len(paths)
        wanted = set(zip(map(str, paths), frames, strict=True))
        by_key: dict[tuple[str, int | None], Header] = {}
        slices = []
        for path in dict.fromkeys(map(str, paths)):  # each file once, in order
            for header in read_headers(path):
                key = (path, getattr(header, "frame", None))
                if key not in wanted:
                    continue
                sh = slice_header_from_dataset(header, path)
                if sh.flavour != self.FLAVOUR:
                    raise UnusableFile(
                        path, f"{sh.flavour} DICOM where {self.FLAVOUR} was expected"
                    )
                by_key[key] = header
                slices.append(sh)
        if len(slices) != len(wanted):
            raise SeriesGeometryError(f"{len(wanted) - len(slices)} listed frame(s) not found")
        self._order = order_slices(slices)
        listed = list(zip(map(str, paths), frames, strict=True))
        if list(zip(self._order.files, self._order.frames, strict=True)) != listed:
            raise SeriesGeometryError(
                "the files no longer give the slice order the index found (changed since "
                "indexing?): run again to re-index"
            )
        self.files = self._order.files
        self.headers: list[Header] = [
            by_key[key] for key in zip(self.files, self._order.frames, strict=True)
        ]
        self._check_consistent()
        #: derived diffusion volumes (Philips trace/ADC) left out of the image, 0-based
        self.removed_volumes: tuple[int, ...] = ()
        self._remove_derived_volumes()

    def _volume_headers(self) -> list[Header]:
        """The first header of each volume (acquisition order)."""
        step = len(self.headers) // self._order.n_volumes  # headers per volume
        return [self.headers[v * step] for v in range(self._order.n_volumes)]

    def _remove_derived_volumes(self) -> None:
        """Leave out the volumes a scanner derived from a DWI run (see :mod:`.diffusion`)."""
        if self._order.n_volumes < 2 or vendor_of(self.headers[0]) not in DERIVED_VOLUME_VENDORS:
            return
        removed = diffusion_plan(self._volume_headers()).removed
        if not removed:
            return
        step = len(self.headers) // self._order.n_volumes
        keep = [i for i in range(len(self.headers)) if i // step not in removed]
        self.headers = [self.headers[i] for i in keep]
        self.files = tuple(self._order.files[i] for i in keep)
        self._order = dataclasses.replace(
            self._order,
            files=self.files,
            frames=tuple(self._order.frames[i] for i in keep),
            n_volumes=self._order.n_volumes - len(removed),
        )
        self.removed_volumes = removed  # logged by the caller, which names the series

    @property
    def first(self) -> Header:
        """The header of the first file in acquisition order (the sidecar's source)."""
        return self.headers[0]

    @property
    def n_slices(self) -> int:
        return self._order.n_slices

    @property
    def n_volumes(self) -> int:
        return self._order.n_volumes

    def _check_consistent(self) -> None:
        ref = self.headers[0]
        keys = ("Rows", "Columns", "BitsAllocated", "PixelRepresentation", "SamplesPerPixel")
        for h, path in zip(self.headers, self.files, strict=True):
            for key in keys:
                if h.get(key) != ref.get(key):
                    raise SeriesGeometryError(
                        f"{path}: {key}={h.get(key)} differs from the series' {ref.get(key)}"
                    )
            spacing = np.asarray(h.PixelSpacing, dtype=float)
            if not np.allclose(spacing, np.asarray(ref.PixelSpacing, dtype=float), atol=1e-4):
                raise SeriesGeometryError(
                    f"{path}: PixelSpacing={tuple(h.PixelSpacing)} differs from the series' "
                    f"{tuple(ref.PixelSpacing)}"
                )
            samples = int(h.get("SamplesPerPixel") or 1)
            rgb = str(h.get("PhotometricInterpretation") or "").strip() == "RGB"
            if samples != 1 and not (samples == 3 and rgb and int(h.BitsAllocated) == 8):
                raise SeriesGeometryError(
                    f"{path}: {samples}-sample {h.get('PhotometricInterpretation')} images "
                    "are not converted (only greyscale and 8-bit RGB)"
                )

    @cached_property
    def slice_spacing(self) -> float:
        """Distance between slice centres from positions (not SliceThickness)."""
        if self.n_slices == 1:  # no second position: the thickness, else 1 mm
            thickness = number_or(self.headers[0].get("SliceThickness"), 1.0)
            return thickness if np.isfinite(thickness) and thickness > 0 else 1.0
        return check_uniform_spacing(self._order.distances, where=self._order.slice_names())

    @cached_property
    def affine_lps(self) -> np.ndarray:
        """Voxel (column, row, slice) -> LPS mm, before any flip."""
        h = self.headers[0]
        self._check_in_plane()
        return lps_affine(
            h.ImageOrientationPatient,
            h.PixelSpacing,
            self.slice_spacing,
            h.ImagePositionPatient,
        )

    @cached_property
    def _positions(self) -> np.ndarray:
        return np.array(
            [np.asarray(h.ImagePositionPatient, float) for h in self.headers[: self.n_slices]]
        )

    @property
    def _normal(self) -> np.ndarray:
        iop = np.asarray(self.headers[0].ImageOrientationPatient, dtype=float)
        return np.cross(iop[:3], iop[3:])

    def _check_in_plane(self) -> None:
        """Every slice must sit on the line through the first along the normal (no tilt),
        unless tilt resampling was asked for."""
        if self.n_slices < 2 or self.resample_tilt:
            return
        if is_tilted(self._positions, self._normal):
            raise SeriesGeometryError(
                f"gantry tilt of {tilt_degrees(self._positions, self._normal):.2f} degrees: "
                "slice positions drift off the slice normal; refusing to write a wrong affine"
            )

    def _tilt_shifts(self) -> tuple[float, float] | None:
        """Per-slice in-plane shift (rows, columns) that undoes a gantry tilt, or None."""
        if not (self.resample_tilt and self.n_slices > 1):
            return None
        drift = lateral_drift(self._positions, self._normal)
        if not np.any(np.abs(drift) > 1e-6):
            return None
        h = self.headers[0]
        iop = np.asarray(h.ImageOrientationPatient, dtype=float)
        dr, dc = (float(v) for v in h.PixelSpacing)
        return float(np.dot(drift, iop[3:]) / dr), float(np.dot(drift, iop[:3]) / dc)

    @cached_property
    def philips_precise(self) -> bool:
        """Philips: the image holds the precise floating-point values (see :mod:`.philips`)."""
        return philips.uses_precise(self.headers, enhanced=self.FLAVOUR == "enhanced")

    def _rescale(self, h: Header) -> tuple[float, float]:
        """(slope, intercept) the image is written with (Philips: see :mod:`.philips`); absent
        values are 1 and 0, unreadable ones NaN (a zero slope stays zero: :attr:`rescale`
        refuses both rather than guess)."""
        return philips.rescale(h, precise=self.philips_precise)

    @cached_property
    def rescale(self) -> tuple[float, float, bool]:
        """(slope, intercept, uniform) of the DICOM rescale; a slope or intercept that is not
        a finite number, or a zero slope, fails the series naming the file."""
        pairs = set()
        ref = self.headers[0]
        for h, path in zip(self.headers, self.files, strict=True):
            for key in ("RescaleSlope", "RescaleIntercept"):
                if (h.get(key) in (None, "")) != (ref.get(key) in (None, "")):
                    raise SeriesGeometryError(  # identity here, a rescale there: a guess
                        f"{_where(h, path)}: {key} is "
                        f"{'absent' if h.get(key) in (None, '') else 'given'} but not so in "
                        f"{_where(ref, self.files[0])}: the values cannot be known"
                    )
            slope, inter = self._rescale(h)
            # the largest stored magnitude, rescaled, must be a float32 (NIfTI's scl_* type)
            peak = float(2 ** int(h.get("BitsAllocated") or 16)) * abs(slope) + abs(inter)
            if not (np.isfinite(peak) and peak <= _FLOAT32_MAX) or slope == 0:
                raise SeriesGeometryError(
                    f"{_where(h, path)}: unusable rescale (RescaleSlope={h.get('RescaleSlope')!r}, "
                    f"RescaleIntercept={h.get('RescaleIntercept')!r} give slope {slope}, "
                    f"intercept {inter}): the values cannot be known"
                )
            pairs.add((slope, inter))
        if len(pairs) == 1:
            slope, inter = pairs.pop()
            return slope, inter, True
        return 1.0, 0.0, False

    def read_stack(self) -> tuple[np.ndarray, float, float]:
        """(volumes, slices, rows flipped, columns) array with its slope and intercept."""
        h0 = self.headers[0]
        slope, inter, uniform = self.rescale
        dtype: np.dtype
        if int(h0.get("SamplesPerPixel") or 1) == 3:
            dtype = RGB24  # colour maps (e.g. DTI colour FA): NIfTI RGB24, like dcm2niix
        elif uniform:
            dtype = output_dtype(
                int(h0.BitsAllocated),
                int(h0.get("PixelRepresentation") or 0),
                h0.get("BitsStored"),
            )
        else:  # per-slice rescale: write real values, as dcm2niix does
            dtype = np.dtype(np.float32)
        rows, cols = self.frame_shape
        per_file = self.n_volumes * self.n_slices // len(self.files)
        shape = (self.n_volumes * self.n_slices, rows, cols)
        stack = np.empty(0, dtype=dtype)
        cached: tuple[str, np.ndarray] | None = None
        for n, (h, path) in enumerate(zip(self.headers, self.files, strict=True)):
            if cached is None or cached[0] != path:  # frames of one file are read once
                cached = (path, self.frames_of(read_frames(path, h)))
            if not n:  # once the first file's size has passed its checks (read_frames)
                nbytes = int(np.prod(shape, dtype=np.uint64)) * dtype.itemsize
                check_volume(self.n_slices, self.n_volumes, nbytes)
                stack = np.empty(shape, dtype=dtype)
            frame = getattr(h, "frame", None)
            frames = cached[1] if frame is None else cached[1][frame : frame + 1]
            if frames.ndim == 4:  # (frames, rows, columns, RGB) -> one RGB24 value per pixel
                frames = np.ascontiguousarray(frames, dtype=np.uint8).view(RGB24)[..., 0]
            frames = frames[:, ::-1, :]
            target = stack[n * per_file : (n + 1) * per_file]
            if uniform:
                target[...] = frames
            else:
                m, b = self._rescale(h)
                target[...] = frames * m + b
        stack = stack.reshape(self.n_volumes, self.n_slices, rows, cols)
        shifts = self._tilt_shifts()
        if shifts is not None:
            _resample_tilt(stack, shifts)
        return (stack, slope, inter) if uniform else (stack, 1.0, 0.0)

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, columns) of one slice."""
        return int(self.headers[0].Rows), int(self.headers[0].Columns)

    def frames_of(self, pixels: np.ndarray) -> np.ndarray:
        """The slices held by one file's ``(frames, rows, columns)`` pixel array."""
        return pixels

    def to_volume(self) -> NiftiVolume:
        """The series as NIfTI voxels + affine, laid out like dcm2niix's."""
        stack, slope, inter = self.read_stack()
        h0 = self.headers[0]
        is_3d = str(h0.get("MRAcquisitionType") or "").strip().upper() == "3D"
        tr = h0.get("RepetitionTime")
        if self._ge_timing is not None and self._ge_timing.repetition_time_ms:
            tr = self._ge_timing.repetition_time_ms  # GE: group delays included, as dcm2niix
        return frames_to_volume(stack, self.affine_lps, tr, slope, inter, acquisition_3d=is_3d)

    @cached_property
    def _ge_timing(self) -> ge.Timing | None:
        h0 = self.headers[0]
        return ge.timing(h0, self.n_slices, self.n_volumes) if ge.is_ge(h0) else None

    def gradient_files(self, volume: NiftiVolume) -> tuple[str, str] | None:
        """``.bval`` and ``.bvec`` text for a diffusion series, else None."""
        if self.n_volumes < 2:
            return None
        firsts = self._volume_headers()
        if ge.is_ge(firsts[0]):
            return self._ge_gradient_files(firsts, volume)
        plan = diffusion_plan(firsts)
        return None if plan.table is None else table_files(plan.table, volume.affine)

    def _ge_gradient_files(self, firsts: list, volume: NiftiVolume) -> tuple[str, str] | None:
        """GE: directions in GE's logical frame, resolved with the prescription direction."""
        if self.n_slices < 2:
            return None
        first = self.headers[0].get("InstanceNumber")
        last = self.headers[self.n_slices - 1].get("InstanceNumber")
        if first is None or last is None or first == last:
            return None
        table = ge.gradient_table(firsts, 1 if int(last) > int(first) else -1)
        if table is None:
            return None
        patient = [  # the standard diffusion fields, in patient LPS
            ScannedHeader({"DiffusionBValue": b, "DiffusionGradientOrientation": tuple(d)})
            for b, d in table
        ]
        return gradient_files(patient, volume.affine)

    def sidecar_extra(self, volume: NiftiVolume) -> dict:
        """Series-level sidecar values beyond the first header's fields."""
        extra: dict = philips.sidecar_fields(self.headers[0], self.philips_precise)
        if self.removed_volumes:
            extra["DiffusionDerivedVolumesRemoved"] = {
                "Count": len(self.removed_volumes),
                "Volumes": list(self.removed_volumes),
                "Reason": "b > 0 without a gradient direction: an isotropic (trace/ADC) image "
                "the scanner derived; left out of the image and the gradient table",
            }
        if self.n_slices > 1:
            extra["SliceSpacingFromPositions"] = round(self.slice_spacing, 6)
        if self._tilt_shifts() is not None:
            extra["GantryTiltCorrection"] = {
                "TiltDegrees": round(tilt_degrees(self._positions, self._normal), 4),
                "Method": "each slice shifted in-plane onto an orthogonal grid "
                "(linear interpolation, rounded to the stored type)",
            }
        if not volume.reoriented:  # written in acquisition layout only, as dcm2niix does
            rows, cols = self.frame_shape
            positive, bandwidth, spacing = self.phase_info()
            direction = self.headers[0].get("InPlanePhaseEncodingDirection")
            extra.update(phase_encoding_fields(direction, positive, bandwidth, rows, cols, spacing))
            if ge.is_ge(self.headers[0]):
                polarity = ge.polarity_name(positive)
                if polarity:
                    extra["PhaseEncodingPolarityGE"] = polarity
            extra.update(slice_timing_fields(self.slice_times()))
        extra.update(siemens.field_map_echo_times(self.first, self.files[0]))
        extra.update(asl_fields(self.first, self.files[0]))
        if ge.is_ge(self.headers[0]):
            extra.update(self._ge_sidecar())
        return extra

    def _ge_sidecar(self) -> dict:
        """GE values dcm2niix writes: SequenceName from the pulse sequence name, RepetitionTime
        with group delays, the HyperBand factor, a B0 field map's two echo times."""
        h0 = self.headers[0]
        out: dict = {"SequenceName": ge.sequence_name(h0)}
        timing = self._ge_timing
        if timing is not None and timing.repetition_time_ms:
            out["RepetitionTime"] = g_number(timing.repetition_time_ms / 1000.0)
        mb = timing.multiband if timing is not None else 1
        out["MultibandAccelerationFactor"] = mb if mb > 1 else None
        echoes = ge.fieldmap_echo_times(h0)
        if echoes is not None:
            out.update(EchoTime=None, EchoTime1=g_number(echoes[0]), EchoTime2=g_number(echoes[1]))
        return out

    def phase_info(self) -> tuple[int | None, float | None, float | None]:
        """(phase direction positive flag, BandwidthPerPixelPhaseEncode, effective echo
        spacing in s) of the series; what the headers do not carry is None.

        Siemens: CSA header; XA classic export: its private "SIEMENS MR SDI 02" block.
        GE: (0043,102C) echo spacing with the ASSET factor and the acquired PE lines;
        polarity from (0018,9034) or the UserDefineData block (:mod:`.ge`).
        UIH: polarity from (0065,1058) (see :mod:`.uih`).
        """
        h = self.headers[0]
        csa = CsaImage.from_header(h, self.files[0])
        if csa is not None:
            return csa.phase_positive, csa.bandwidth_per_pixel_phase, None
        positive, bandwidth = siemens.xa_phase_info(h)  # XA classic: no CSA, private block
        if positive is not None or bandwidth is not None:
            return positive, bandwidth, None
        if ge.is_ge(h):
            positive = ge.phase_positive(h, private_field(h, GE_USER_DATA))
            return positive, None, ge.effective_echo_spacing(h)
        return uih.phase_positive(h), None, None

    def slice_times(self) -> list[float] | None:
        """Acquisition time of each slice of a volume (s, NIfTI slice order), if known.

        GE: :func:`.ge.timing` gives the times in prescription order, which is the
        InstanceNumber order of the first volume's slices.  Siemens 2D: see :mod:`.siemens`.
        """
        h0 = self.headers[0]
        if siemens.is_siemens(h0):
            if str(h0.get("MRAcquisitionType") or "").strip().upper() == "3D":
                return None
            if siemens.has_xa_slice_times(h0):  # XA classic: per-file slice times
                return siemens.xa_slice_times(self.headers, self.n_slices, self.n_volumes)
            first = self.headers[: self.n_slices]
            return siemens.acquisition_time_slice_times(first, h0.get("RepetitionTime"))
        timing = self._ge_timing
        if timing is None or timing.slice_times is None:
            return None
        found = [h.get("InstanceNumber") for h in self.headers[: self.n_slices]]
        instances = [i for i in found if i is not None]
        if len(instances) < len(found) or len(set(instances)) != len(instances):
            return None
        rank = {n: r for r, n in enumerate(sorted(instances))}
        return [timing.slice_times[rank[n]] for n in instances]


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _where(h: Header, path: str) -> str:
    """The file, and the frame for a multi-frame file."""
    frame = getattr(h, "frame", None)
    return path if frame is None else f"{path} (frame {frame + 1})"


def _resample_tilt(stack: np.ndarray, shifts: tuple[float, float]) -> None:
    """Shift slice ``k`` by ``k`` x (rows, columns) in place (rows are stored flipped)."""
    from scipy.ndimage import shift as nd_shift

    d_rows, d_cols = shifts
    for k in range(1, stack.shape[1]):
        for v in range(stack.shape[0]):
            moved = nd_shift(
                stack[v, k].astype(np.float64), (-k * d_rows, k * d_cols), order=1, cval=0.0
            )
            if stack.dtype.kind in "iu":
                info = np.iinfo(stack.dtype)
                moved = np.clip(np.rint(moved), info.min, info.max)
            stack[v, k] = moved
