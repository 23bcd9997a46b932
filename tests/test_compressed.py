"""Compressed and unusual encodings decode to the same voxels (pydicom's own test files).

Decoders: pylibjpeg with its libjpeg (JPEG lossless, JPEG-LS), openjpeg (JPEG 2000) and RLE
plugins, as installed with anatprep.  Each encoding of the same MR slice must convert to the
NIfTI voxels of the uncompressed file.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from anatprep.interfaces.dicomio.headers import read_header
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.pixels import read_frames
from anatprep.interfaces.dicomio.series_to_nifti import convert_entry

ENCODINGS = [
    "MR_small_RLE.dcm",  # RLE Lossless
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "MR_small_bigendian.dcm",  # explicit VR big endian (retired)
    "MR_small_implicit.dcm",  # implicit VR little endian
]


def _convert_one(src: str, folder) -> np.ndarray:
    folder.mkdir()
    shutil.copy(src, folder / "slice.dcm")
    (entry,) = index_tree(folder).series
    nii, _ = convert_entry(entry, folder / "out")
    return np.asanyarray(nb.load(nii).dataobj)


@pytest.mark.parametrize("name", ENCODINGS)
def test_encoding_converts_to_the_uncompressed_voxels(tmp_path, name):
    reference = _convert_one(get_testdata_file("MR_small.dcm"), tmp_path / "plain")
    np.testing.assert_array_equal(
        _convert_one(get_testdata_file(name), tmp_path / "enc"), reference
    )


def test_jpeg_lossless_decodes_like_rle():
    """JPEG lossless (process 14) and RLE of the same image give the same samples."""
    path = get_testdata_file("SC_rgb_jpeg_gdcm.dcm")
    assert read_header(path).transfer_syntax == "1.2.840.10008.1.2.4.70"
    jpeg = pydicom.dcmread(path)  # what read_frames does for encapsulated data
    rle = pydicom.dcmread(get_testdata_file("SC_rgb_rle.dcm"))
    np.testing.assert_array_equal(jpeg.pixel_array, rle.pixel_array)


def test_deflated_file_reads_through_pydicom():
    path = get_testdata_file("image_dfl.dcm")
    header = read_header(path)
    assert str(header.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1.99"
    frames = read_frames(path, header)
    np.testing.assert_array_equal(frames[0], pydicom.dcmread(path).pixel_array)


def test_gzipped_dicom_reads_transparently(tmp_path):
    plain = tmp_path / "plain"
    reference = _convert_one(get_testdata_file("MR_small.dcm"), plain)
    folder = tmp_path / "gz"
    folder.mkdir()
    source = Path(get_testdata_file("MR_small.dcm"))
    (folder / "slice.dcm.gz").write_bytes(gzip.compress(source.read_bytes()))
    (entry,) = index_tree(folder).series
    nii, _ = convert_entry(entry, folder / "out")
    np.testing.assert_array_equal(np.asanyarray(nb.load(nii).dataobj), reference)
