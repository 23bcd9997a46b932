"""The reader of enhanced (multi-frame) series: frames grouped by the index into one 3D/4D
image, read like classic slices (:mod:`.frames` makes each frame a header of its own)."""

from __future__ import annotations

from .classic import ClassicSeries
from .frames import SIEMENS_BW_PHASE, SIEMENS_PE_POSITIVE, SIEMENS_SLICE_TIME


class EnhancedSeries(ClassicSeries):
    """Frames of enhanced files that form one 3D/4D image (grouped by the index)."""

    FLAVOUR = "enhanced"

    def phase_info(self) -> tuple[int | None, float | None, float | None]:
        h = self.headers[0]
        return h.get(SIEMENS_PE_POSITIVE), h.get(SIEMENS_BW_PHASE), None

    def slice_times(self) -> list[float] | None:
        """Siemens' per-frame slice time, else FrameAcquisitionDateTime (differences only).

        Taken from the second volume when there is one: Siemens XA reports single-band
        timing for the first volume of a multiband run (dcm2niix issue 875 does the same).
        """
        start = self.n_slices if self.n_volumes > 1 else 0
        first = self.headers[start : start + self.n_slices]
        found = [h.get(SIEMENS_SLICE_TIME) for h in first]
        if any(t is None for t in found):
            found = [_seconds_of_day(h.get("FrameAcquisitionDateTime")) for h in first]
        times = [t for t in found if t is not None]
        return times if len(times) == len(found) else None


def _seconds_of_day(value) -> float | None:
    """'YYYYMMDDHHMMSS.ffffff' -> seconds since midnight (the date part is dropped)."""
    text = str(value or "").strip()
    if len(text) < 14 or not text[:14].isdigit():
        return None
    hours, minutes = int(text[8:10]), int(text[10:12])
    seconds = float(text[12:].split("+")[0].split("-")[0] or 0)
    return hours * 3600 + minutes * 60 + seconds
