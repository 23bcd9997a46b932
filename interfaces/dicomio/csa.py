"""Siemens CSA image header (private (0029,1010)).

Parsing is nibabel's ``nicom.csareader`` (the field's maintained reader, imported only when a
Siemens file needs it).  This module turns the parsed tags into the values the converter
uses, with one rule: a value the header does not carry is ``None``; nothing is guessed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .scan import CSA_IMAGE, private_field

# only the image header is read: the series header (the whole protocol, ~100 kB a file)
# would cost memory and time on every file for nothing the converter uses


@dataclass
class CsaImage:
    """Values of one file's CSA image header."""

    tags: dict[str, Any]

    @classmethod
    def from_header(cls, header) -> CsaImage | None:
        raw = private_field(header, CSA_IMAGE)
        if not raw:
            return None
        with warnings.catch_warnings():  # nicom warns about its *other* readers on import
            warnings.simplefilter("ignore", UserWarning)
            from nibabel.nicom import csareader

        try:
            parsed = csareader.read(raw)
        except csareader.CSAReadError:
            return None
        return cls(parsed["tags"])

    def _items(self, name: str) -> list:
        tag = self.tags.get(name)
        return list(tag["items"]) if tag and tag.get("n_items") else []

    def scalar(self, name: str) -> float | int | str | None:
        items = self._items(name)
        return items[0] if items else None

    def vector(self, name: str) -> list[float]:
        return [float(v) for v in self._items(name)]

    @cached_property
    def n_images_in_mosaic(self) -> int | None:
        value = self.scalar("NumberOfImagesInMosaic")
        return int(value) if value else None

    @cached_property
    def slice_normal(self) -> list[float] | None:
        vec = self.vector("SliceNormalVector")
        return vec if len(vec) == 3 else None

    @cached_property
    def slice_times_ms(self) -> list[float]:
        """MosaicRefAcqTimes: start of each slice (tile order) after the volume start, ms."""
        return self.vector("MosaicRefAcqTimes")

    @cached_property
    def phase_positive(self) -> int | None:
        value = self.scalar("PhaseEncodingDirectionPositive")
        return int(value) if value is not None else None

    @cached_property
    def bandwidth_per_pixel_phase(self) -> float | None:
        value = self.scalar("BandwidthPerPixelPhaseEncode")
        return float(value) if value else None
