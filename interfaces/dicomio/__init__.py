"""DICOM reading and conversion helpers used by the DICOM interfaces.

``scan``: fast header scanner; ``headers``: one file's header (scanner or pydicom);
``series``: grouping and slice order; ``index``: the series table of a tree;
``classic`` / ``mosaic`` / ``enhanced`` / ``uih``: one reader per DICOM flavour (``uih`` also
completes UIH headers from their private geometry); ``frames``: an enhanced file's frames as
headers of their own; ``table``: the series table as typed data; ``index_cache``: the
header cache of reruns; ``pixels``: voxel reading and decoding;
``volume`` / ``nifti1``: NIfTI layout and header; ``sidecar``, ``csa``, ``ge``, ``siemens``,
``diffusion``: BIDS sidecar values (``siemens`` also: which XA classic files form one series);
``geometry``: outcomes for irregular series;
``reference``: dcm2niix for ``verify`` and the optional backend; ``conversion``: one series to
NIfTI + JSON.
"""
