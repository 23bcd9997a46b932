"""The grouping, ordering and geometry keys of one slice: what indexing keeps of a header."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class SliceHeader:
    """The grouping, ordering and geometry keys of one single-frame DICOM file."""

    path: str
    series_uid: str
    series_number: int | None
    instance_number: int | None
    echo_number: int | None
    image_type: tuple[str, ...]
    orientation: tuple[float, ...]  # ImageOrientationPatient, 6 direction cosines
    position: tuple[float, float, float]  # ImagePositionPatient
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]
    temporal_position: int | None
    acquisition_time: str | None
    series_description: str
    protocol_name: str
    sequence_name: str
    mr_acquisition_type: str
    n_frames: int
    #: classic, mosaic (Siemens CSA) or enhanced (one header per frame of a multi-frame file)
    flavour: str
    #: frame index in an enhanced file; None for single-frame files
    frame: int | None = None
    echo_time: float | None = None
    #: Siemens XA classic export: the number shared by a run's volumes, each written as its
    #: own series (16001, 16002, ... -> 16); None otherwise (see :mod:`.siemens`)
    series_stack: int | None = None

    @property
    def normal(self) -> np.ndarray:
        row = np.asarray(self.orientation[:3])
        col = np.asarray(self.orientation[3:])
        return np.cross(row, col)
