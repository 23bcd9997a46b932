"""Siemens CSA image header (private (0029,1010)).

Parsing is nibabel's ``nicom.csareader`` (the field's maintained reader, imported only when a
Siemens file needs it).  This module turns the parsed tags into the values the converter
uses, with one rule: a value the header does not carry is ``None``; nothing is guessed.
A field that is not laid out as a CSA header at all (nicom's ``CSAReadError``: no plausible
tag count) is treated as absent; a CSA header that is recognised but broken (cut short, a
value that is not the number its type says) raises :class:`CsaError` naming the file and the
CSA tag, so the series fails by name instead of with a bare ``ValueError``.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .scan import CSA_IMAGE, private_field

# only the image header is read: the series header (the whole protocol, ~100 kB a file)
# would cost memory and time on every file for nothing the converter uses


#: what nicom raises on a CSA header it recognised but cannot finish reading
_BROKEN = (
    ValueError,
    TypeError,
    IndexError,
    OverflowError,
    AssertionError,  # nicom asserts that items past a tag's multiplicity are empty
    struct.error,
    UnicodeDecodeError,
)


class CsaError(ValueError):
    """A broken Siemens CSA image header; the message names the file and the CSA tag."""


@dataclass
class CsaImage:
    """Values of one file's CSA image header (``where``: the file, for messages)."""

    tags: dict[str, Any]
    where: str = ""

    @classmethod
    def from_header(cls, header, where: str = "") -> CsaImage | None:
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
        except _BROKEN as exc:  # the class is the record's (-v); the message, if any, the words
            why = f"{type(exc).__name__}: {exc}" if str(exc) else "an item is inconsistent"
            raise CsaError(
                f"{where or 'a file'}: Siemens CSA image header (0029,1010) cannot be read "
                f"({why})"
            ) from None
        return cls(parsed["tags"], where)

    def _items(self, name: str) -> list:
        tag = self.tags.get(name)
        return list(tag["items"]) if tag and tag.get("n_items") else []

    def number(self, name: str, value: Any, kind: type[int] | type[float] = float) -> Any:
        """``value`` of tag ``name`` as ``kind``; :class:`CsaError` when it is none."""
        try:
            return kind(value)
        except _BROKEN:
            raise CsaError(
                f"{self.where or 'a file'}: Siemens CSA image header (0029,1010) {name} "
                f"holds {value!r}, not a number"
            ) from None

    def scalar(self, name: str) -> float | int | str | None:
        items = self._items(name)
        return items[0] if items else None

    def vector(self, name: str) -> list[float]:
        return [self.number(name, v, float) for v in self._items(name)]

    @cached_property
    def n_images_in_mosaic(self) -> int | None:
        value = self.scalar("NumberOfImagesInMosaic")
        count = self.number("NumberOfImagesInMosaic", value, int) if value else None
        if count is not None and count < 1:
            raise CsaError(
                f"{self.where or 'a file'}: Siemens CSA image header (0029,1010) "
                f"NumberOfImagesInMosaic={count}: a mosaic holds at least one image"
            )
        return count

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
        if value is None:
            return None
        return self.number("PhaseEncodingDirectionPositive", value, int)

    @cached_property
    def bandwidth_per_pixel_phase(self) -> float | None:
        value = self.scalar("BandwidthPerPixelPhaseEncode")
        return self.number("BandwidthPerPixelPhaseEncode", value, float) if value else None
