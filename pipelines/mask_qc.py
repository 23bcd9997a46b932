"""The end-of-run list of brain masks whose QC signals are out of range.

Read back from the written mask sidecars (``derivatives/anatprep/sub-*/[ses-*/]anat/
*_desc-brain_mask.json``, key ``QualityFlags``; see
:mod:`anatprep.interfaces.brainmask.quality`),
so the list is what the outputs say.  A flagged subject has completed: this is a warning to
look at its QC figure, not a failure (the exit code does not change).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .report import printable

MASK_SUFFIX = "_desc-brain_mask.json"


def flagged_lines(output: Path, subject_keys: Iterable[str]) -> list[str]:
    """``QC FLAGGED <subject>: <flag>; <flag>`` per flagged mask of the given subjects (keys
    like ``sub-01`` or ``sub-01_ses-2``), in path order; a sidecar that cannot be read gets a
    line saying so."""
    deriv = output / "derivatives" / "anatprep"
    lines = []
    for key in subject_keys:
        anat = deriv / key.replace("_ses-", "/ses-", 1) / "anat"
        for sidecar in sorted(anat.glob(f"*{MASK_SUFFIX}")):
            try:
                flags = json.loads(sidecar.read_text()).get("QualityFlags") or []
            except (OSError, ValueError, AttributeError) as exc:
                lines.append(printable(f"QC UNREADABLE {key}: {sidecar}: {exc}"))
                continue
            if not flags:
                continue
            base = sidecar.name.removesuffix(MASK_SUFFIX)
            who = key if base == key else f"{key} ({base})"
            lines.append(printable(f"QC FLAGGED {who}: " + "; ".join(str(f) for f in flags)))
    return lines
