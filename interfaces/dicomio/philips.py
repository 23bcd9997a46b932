"""Philips private values: the floating-point intensity scale and diffusion tags.

Philips stores three scaling numbers with every image: the DICOM rescale (RS = RescaleSlope,
RI = RescaleIntercept), which gives the *display* value D = stored x RS + RI, and its private
scale slope SS (2005,xx0E, FL), which gives the *precise* floating-point value the scanner
computed, P = D / (RS x SS).  Like dcm2niix (its default ``-p y``), we write P: the NIfTI
``scl_slope`` is 1 / SS and ``scl_inter`` RI / (RS x SS).  Philips chooses SS for B0 maps so
that P equals D (Hz), so they need no exception.  The display scaling is kept when SS is
absent or zero, and for an enhanced file whose frames do not share one (RS, RI, SS) (dcm2niix's
rule: a per-frame precise scale would mix scales within one output).

RS and RI are the public (0028,1053)/(0028,1052), 1 and 0 when absent: like dcm2niix, the
private copies (2005,xx0A)/(2005,xx09) are not read (checked against dcm2niix on files
without the public pair).

Whenever SS is known, the sidecar names all three numbers and which scaling the image holds
(``PhilipsRescaleSlope``, ``PhilipsRescaleIntercept``, ``PhilipsScaleSlope``,
``UsePhilipsFloatNotDisplayScaling``: 1 precise, 0 display), so either value can be recovered.

Diffusion: the private b-factor (2001,xx03) and direction (2005,xxB0/B1/B2: RL, AP, FH, i.e.
the patient LPS axes) are read first; newer classic files also carry the standard
(0018,9087)/(0018,9089) tags with the same values, which dcm2niix reads before the private
ones (tag order), so the private values stand there too.  A volume with b > 0 and no
gradient direction is one the scanner derived (isotropic trace or ADC, (2001,xx04) 'I'): see
:func:`.diffusion.diffusion_plan`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .formats import g_number
from .scan import (
    PHILIPS_B_FACTOR,
    PHILIPS_DIRECTION_AP,
    PHILIPS_DIRECTION_FH,
    PHILIPS_DIRECTION_RL,
    PHILIPS_SCALE_SLOPE,
    PHILIPS_TECHNIQUE,
    number_or,
    private_field,
)
from .vendors import PHILIPS, vendor_of


def is_philips(header) -> bool:
    return vendor_of(header) == PHILIPS


def display_rescale(header) -> tuple[float, float]:
    """(RS, RI): the DICOM rescale; 1 and 0 when absent, NaN when unreadable, a zero slope
    kept (the reader refuses non-finite and zero slopes rather than guess)."""
    slope, intercept = header.get("RescaleSlope"), header.get("RescaleIntercept")
    return number_or(slope, 1.0), number_or(intercept, 0.0)


def scale_slope(header) -> float | None:
    """SS of a Philips image (classic file or enhanced frame), None when absent or zero."""
    if not is_philips(header):
        return None
    value = header.get(PHILIPS_SCALE_SLOPE)  # enhanced frames: read from the frame's block
    if value is None:
        value = private_field(header, PHILIPS_SCALE_SLOPE)
    try:
        value = float(value[0] if isinstance(value, tuple | list) else value)
    except (TypeError, ValueError):
        return None
    return value if value != 0 and value == value else None


def precise_rescale(rs: float, ri: float, ss: float) -> tuple[float, float]:
    """(slope, intercept) that turn stored values into P = (stored x RS + RI) / (RS x SS)."""
    return 1.0 / ss, ri / (rs * ss)


def rescale(header, precise: bool = True) -> tuple[float, float]:
    """The (slope, intercept) an image is written with: precise when ``precise`` and the
    header carries SS, else the display rescale."""
    rs, ri = display_rescale(header)
    ss = scale_slope(header) if precise else None
    if ss is None or rs == 0:
        return rs, ri
    return precise_rescale(rs, ri, ss)


def uses_precise(headers: Sequence[Any], enhanced: bool) -> bool:
    """Whether a series' image holds precise values: SS known, and for enhanced frames one
    (RS, RI, SS) for all of them."""
    first = headers[0]
    if scale_slope(first) is None:
        return False
    if not enhanced:
        return True
    triples = {(*display_rescale(h), scale_slope(h)) for h in headers}
    return len(triples) == 1


def sidecar_fields(header, precise: bool) -> dict[str, Any]:
    """The four scaling keys of a Philips image (dcm2niix's names); {} without SS."""
    ss = scale_slope(header)
    if ss is None:
        return {}
    rs, ri = display_rescale(header)
    return {
        "PhilipsRescaleSlope": g_number(rs),
        "PhilipsRescaleIntercept": g_number(ri),
        "PhilipsScaleSlope": g_number(ss),
        "UsePhilipsFloatNotDisplayScaling": 1 if precise else 0,
    }


def sequence_name(header) -> str | None:
    """The sequence name classic Philips files keep in (2001,xx20) (e.g. FEEPI, DwiSE)."""
    if not is_philips(header):
        return None
    value = private_field(header, PHILIPS_TECHNIQUE)
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value or "")
    return text.strip(" \x00") or None


def diffusion(header) -> tuple[float, tuple[float, float, float] | None] | None:
    """(b-value, LPS direction or None) from Philips' private diffusion tags, else None."""
    if not is_philips(header):
        return None
    b = private_field(header, PHILIPS_B_FACTOR)
    if b is None:
        return None
    parts = [
        private_field(header, name)
        for name in (PHILIPS_DIRECTION_RL, PHILIPS_DIRECTION_AP, PHILIPS_DIRECTION_FH)
    ]
    if any(p is None for p in parts):
        return float(b), None
    return float(b), (float(parts[0]), float(parts[1]), float(parts[2]))
