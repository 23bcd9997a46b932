"""How numbers are written into sidecars: dcm2niix's ``%g`` (a leaf module every vendor module
may use)."""

from __future__ import annotations


def g_number(value: float) -> float | int:
    """dcm2niix prints numbers with %g: six significant digits, integers without a point."""
    out = float(f"{float(value):g}")
    return int(out) if out.is_integer() and abs(out) < 1e15 else out
