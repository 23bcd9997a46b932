"""DICOM reading and conversion helpers used by the DICOM interfaces.

``scan``: fast header scanner; ``dicom_file``: one file opened with pydicom and why a file
is unusable; ``headers``: one file's header (scanner or pydicom) and its ``slice_header``;
``frames``: an enhanced file's frames as headers of their own; ``series``: grouping and slice
order; ``index``: the series table of a tree (``table``: that table as typed data;
``index_cache``: the header cache of reruns); ``classic`` / ``mosaic`` / ``enhanced`` /
``uih_series``: one reader per DICOM flavour; ``vendors``: which maker a header comes from;
``ge`` / ``philips`` / ``siemens`` / ``uih``: each maker's private values and rules (``uih``
also completes UIH headers from their private geometry, ``siemens`` says which XA classic
files form one series); ``csa``: Siemens CSA headers; ``pixels``: voxel reading and decoding;
``volume`` / ``nifti1``: NIfTI layout and header; ``sidecar`` / ``diffusion`` / ``formats``:
BIDS sidecar values, gradient tables and dcm2niix's number format; ``geometry``: outcomes for
irregular series; ``reference``: dcm2niix for ``verify`` and the optional backend;
``series_to_nifti``: one series to NIfTI + JSON.
"""
