"""Axis codes (``RAS``, ``LPS``, ...): three letters naming each axis once, in plain Python so
the config can check one without importing an imaging library."""

from __future__ import annotations

import re

_AXES = {"L": "LR", "R": "LR", "A": "AP", "P": "AP", "S": "SI", "I": "SI"}


def check_orientation_code(code: str) -> str:
    """Return the upper-cased code; raise ValueError unless it names each axis once."""
    code = str(code).upper()
    if not re.fullmatch(r"[LRAPSI]{3}", code) or len({_AXES[c] for c in code}) != 3:
        raise ValueError(
            f"orientation {code!r} must be 3 letters naming each axis once "
            "(one of L/R, one of A/P, one of S/I), e.g. RAS, LPS, LAS"
        )
    return code
