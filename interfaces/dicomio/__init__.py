"""DICOM reading and conversion helpers used by the DICOM interfaces.

``headers``: header-only reading of one file; ``series``: grouping and slice order;
``classic``: single-frame series to NIfTI; ``sidecar``: the BIDS JSON sidecar.
"""
