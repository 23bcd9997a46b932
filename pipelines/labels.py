"""BIDS labels from free text (folder names, series descriptions)."""

from __future__ import annotations

import re

_LABEL_RE = re.compile(r"[^A-Za-z0-9]")


def sanitize_label(text: str, fallback: str = "unknown") -> str:
    """BIDS label: letters and digits only (at most 64); ``fallback`` if nothing is left."""
    label = _LABEL_RE.sub("", str(text))[:64]
    return label or fallback
