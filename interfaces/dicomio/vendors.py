"""The scanner maker of a header: one rule for every module.

dcm2niix's rule (``dcmStrManufacturer``): the first two letters of Manufacturer (0008,0070),
case-insensitive: SI Siemens (and CP, a Siemens venture), GE, PH Philips, CA Canon, TO
Toshiba, HI Hitachi, UI UIH, BR Bruker, MR MR Solutions, HY Hyperfine.  Ours adds "UNITED
IMAGING" for UIH (the maker's full name in some exports).  The names are what the BIDS
sidecar's ``Manufacturer`` holds; an unknown maker gives ``''``.
"""

from __future__ import annotations

SIEMENS = "Siemens"
GE = "GE"
PHILIPS = "Philips"
CANON = "Canon"
TOSHIBA = "Toshiba"
HITACHI = "Hitachi"
UIH = "UIH"
BRUKER = "Bruker"

_BY_PREFIX = {
    "SI": SIEMENS,
    "CP": SIEMENS,
    "GE": GE,
    "PH": PHILIPS,
    "CA": CANON,
    "TO": TOSHIBA,
    "HI": HITACHI,
    "UI": UIH,
    "BR": BRUKER,
    "MR": "MRSolutions",
    "HY": "Hyperfine",
}


def vendor_name(manufacturer: object) -> str:
    """The maker's name for a Manufacturer value, or ``''`` when it is unknown."""
    text = str(manufacturer or "").strip().upper()
    if text.startswith("UNITED IMAGING"):
        return UIH
    return _BY_PREFIX.get(text[:2], "")


def vendor_of(header) -> str:
    """The maker of a header (pydicom Dataset or scanned header), ``''`` when unknown."""
    return vendor_name(header.get("Manufacturer"))
