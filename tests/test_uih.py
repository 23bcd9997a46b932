"""UIH grid ("SaveBySlc") series: private slice geometry, tiles, b-table, timing; and files
rejected for their geometry still failing their series by name."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from walk_dcm2niix import run_dcm2niix, run_ours

from anatprep.interfaces.dicomio import diffusion, uih
from anatprep.interfaces.dicomio.dicom_file import UnusableFile
from anatprep.interfaces.dicomio.headers import read_header, read_slice_header
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.reference import compare
from anatprep.interfaces.dicomio.scan import (
    UIH_B_VALUE,
    UIH_GRADIENT,
    UIH_PHASE_POSITIVE,
    ScannedHeader,
)
from anatprep.interfaces.dicomio.series_to_nifti import SeriesConversionError, convert_entry
from anatprep.interfaces.dicomio.uih_series import UihSeries
from anatprep.pipelines.cli import main
from anatprep.pipelines.convert_command import convert_tree
from anatprep.pipelines.exitcodes import EXIT_PARTIAL

TILE_ROWS, TILE_COLS = 3, 4
N_TILES = 5  # a 2 x 3 grid (last cell empty): image of 6 rows x 12 columns
SPACING = (2.0, 1.5)  # between rows, between columns
STEP = 3.0
ROW_COS = np.array([1.0, 0.0, 0.0])
COL_COS = np.array([0.0, math.cos(0.3), math.sin(0.3)])
NORMAL = np.cross(ROW_COS, COL_COS)
ORIGIN = np.array([-10.0, 20.0, 5.0])


def tile(volume: int, k: int) -> np.ndarray:
    """The pixels of tile (slice) ``k`` of a volume: every value distinct."""
    r, c = np.mgrid[:TILE_ROWS, :TILE_COLS]
    return (1000 * volume + 100 * k + 10 * r + c).astype(np.uint16)


def write_grid(
    path: Path,
    volume: int,
    *,
    descending: bool = False,
    private: bool = True,
    b: float | None = None,
    gradient: tuple[float, float, float] | None = None,
    series: str = "1.2.3.4.5",
) -> Path:
    """One UIH grid file: the volume's tiles in storage order, private group as UIH has it."""
    order = list(range(N_TILES))[::-1] if descending else list(range(N_TILES))
    n_cols = math.ceil(math.sqrt(N_TILES))
    image = np.zeros((2 * TILE_ROWS, n_cols * TILE_COLS), np.uint16)
    for slot, k in enumerate(order):
        gr, gc = divmod(slot, n_cols)
        image[gr * TILE_ROWS : (gr + 1) * TILE_ROWS, gc * TILE_COLS : (gc + 1) * TILE_COLS] = tile(
            volume, k
        )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "VFRAME"]
    ds.Modality = "MR"
    ds.Manufacturer = "UIH"
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = 7
    ds.InstanceNumber = volume + 1
    ds.SeriesDescription = "dwi_SaveBySlc"
    ds.MRAcquisitionType = "2D"
    ds.RepetitionTime = "4000"
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.ImageOrientationPatient = [*ROW_COS, *COL_COS]
    ds.PixelSpacing = list(SPACING)
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if private:
        ds.add_new((0x0065, 0x0010), "LO", "Image Private Header")
        ds.add_new((0x0065, 0x1050), "DS", str(N_TILES))
        if b is not None:
            ds.add_new((0x0065, 0x1009), "FD", b)
        if gradient is not None:
            ds.add_new((0x0065, 0x1037), "FD", list(gradient))
        items = []
        for k in order:
            item = Dataset()
            item.AcquisitionTime = f"1200{10 + volume * 5 + k // 2:02d}.{250 * (k % 2):03d}000"
            item.add_new((0x0018, 0x9073), "FD", 21.0)
            item.ImagePositionPatient = [*(ORIGIN + NORMAL * STEP * k)]
            items.append(item)
        ds.add_new((0x0065, 0x1051), "SQ", Sequence(items))
    ds.PixelData = image.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _series(tmp_path: Path, n_volumes: int = 3, **kwargs) -> list[Path]:
    return [write_grid(tmp_path / f"{v:04d}.dcm", v, **kwargs) for v in range(n_volumes)]


# --- the private-tag geometry ------------------------------------------------------------


def test_header_completed_from_the_private_group(tmp_path):
    path = write_grid(tmp_path / "a.dcm", 0)
    header = read_header(path)
    assert "ImagePositionPatient" in header  # dcm2niix's: the first tile's
    np.testing.assert_allclose(header["ImagePositionPatient"], ORIGIN)
    assert header["AcquisitionTime"] == "120012.000000"  # the last one met
    assert header.uih_grid.n_images == N_TILES
    assert (header.uih_grid.rows, header.uih_grid.columns) == (2, 3)
    sh = read_slice_header(path)
    assert sh.flavour == "uih"
    np.testing.assert_allclose(sh.position, ORIGIN)


@pytest.mark.parametrize("descending", [False, True])
def test_tiles_become_slices_in_space(tmp_path, descending):
    paths = _series(tmp_path, descending=descending)
    series = UihSeries([str(p) for p in paths])
    volume = series.to_volume()
    assert volume.shape == (TILE_COLS, TILE_ROWS, N_TILES, 3)
    for v in range(3):
        for k in range(N_TILES):  # slices ascend along row x column whatever the storage
            np.testing.assert_array_equal(volume.data[:, :, k, v], tile(v, k)[::-1].T)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    for i, j, k in [(0, 0, 0), (3, 2, 4), (1, 0, 2)]:
        r = TILE_ROWS - 1 - j  # rows are stored flipped
        lps = ORIGIN + NORMAL * STEP * k + ROW_COS * SPACING[1] * i + COL_COS * SPACING[0] * r
        np.testing.assert_allclose(volume.affine[:3] @ [i, j, k, 1], lps_to_ras @ lps, atol=1e-5)
    times = series.slice_times()
    assert times == [0, 0.25, 1, 1.25, 2]


def test_grid_must_fit_and_positions_be_in_order(tmp_path):
    paths = _series(tmp_path, n_volumes=1)
    ds = pydicom.dcmread(paths[0])
    items = ds[0x0065, 0x1051].value
    items[1].ImagePositionPatient, items[2].ImagePositionPatient = (
        items[2].ImagePositionPatient,
        items[1].ImagePositionPatient,
    )
    ds.save_as(paths[0])
    with pytest.raises(Exception, match="not stored in spatial order"):
        UihSeries([str(paths[0])]).to_volume()


def test_dcm2niix_slice_time_precision():
    # HHMMSS held as a 32-bit float, seconds rounded to five decimals (dcm2niix's values)
    assert uih.slice_times(("135303.242000", "135257.683000")) == pytest.approx(
        [5.54688, 0.0], rel=1e-7
    )
    assert uih.slice_times(("235959.500", "000000.250")) == [0.0, 0.75]  # across midnight
    assert uih.slice_times(("120000", "120000")) is None  # no timing information
    assert uih.slice_times(("120000",)) is None


def test_gradients_in_image_axes(tmp_path):
    grads = [(0.0, 0.0, 0.0), (0.6, -0.8, 0.0), (0.0, 0.6, -0.8)]
    paths = [
        write_grid(tmp_path / f"{v}.dcm", v, b=[1.25, 1000.0, 1000.0][v], gradient=grads[v])
        for v in range(3)
    ]
    headers = [read_header(p) for p in paths]
    bval, bvec = uih.gradient_texts(headers)
    assert bval == "1.25 1000 1000\n"  # dcm2niix keeps the scanner's small b of the b0
    assert bvec == "0 0.6 0\n0 0.8 -0.6\n0 0 -0.8\n"  # FSL: the column axis is flipped
    series = UihSeries([str(p) for p in paths])
    volume = series.to_volume()
    assert series.gradient_files(volume) == (bval, bvec)
    # the generic path (patient LPS, then FSL's voxel axes) agrees
    generic = diffusion.gradient_files(headers, volume.affine)
    assert generic is not None
    np.testing.assert_allclose(np.loadtxt(generic[1].splitlines()), np.loadtxt(bvec.splitlines()))
    _, lps = uih.volume_gradient(headers[2])
    np.testing.assert_allclose(lps, 0.6 * COL_COS - 0.8 * NORMAL, atol=1e-6)
    # dcm2niix needs three volumes, and a table that varies
    assert uih.gradient_texts(headers[:2]) is None
    same = [write_grid(tmp_path / f"s{v}.dcm", v, b=0.0, gradient=(0, 0, 0)) for v in range(3)]
    assert uih.gradient_texts([read_header(p) for p in same]) is None


def test_private_values_decode_from_raw_bytes():
    header = ScannedHeader({"Manufacturer": "UIH", "ImageOrientationPatient": (1, 0, 0, 0, 1, 0)})
    header[UIH_B_VALUE] = struct.pack("<d", 500.0)
    header[UIH_GRADIENT] = struct.pack("<3d", 0.0, 1.0, 0.0)
    b, lps = uih.volume_gradient(header)
    assert b == 500.0
    np.testing.assert_allclose(lps, [0, 1, 0])
    header[UIH_PHASE_POSITIVE] = 1  # UIH: 1 = flipped
    assert uih.phase_positive(header) == 0
    header[UIH_PHASE_POSITIVE] = 0
    assert uih.phase_positive(header) == 1
    assert uih.phase_positive({"Manufacturer": "SIEMENS", UIH_PHASE_POSITIVE: 0}) is None


# --- a UIH file without any geometry fails loudly, by name -------------------------------


def test_missing_private_geometry_names_the_file(tmp_path):
    path = write_grid(tmp_path / "bad.dcm", 0, private=False)
    with pytest.raises(UnusableFile) as info:
        read_slice_header(path)
    assert str(path) in str(info.value)
    assert "ImagePositionPatient" in info.value.reason
    assert info.value.header is not None  # the series is still known


def test_series_of_rejected_files_is_a_failed_series(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    paths = _series(src, private=False)
    table = index_tree(src)
    assert len(table.series) == 1
    entry = table.series[0]
    assert entry.series_number == 7 and entry.series_description == "dwi_SaveBySlc"
    assert len(entry.problems) == len(paths)
    assert all(item.series == entry.id for item in table.unusable)
    with pytest.raises(SeriesConversionError, match=r"0000\.dcm"):
        convert_entry(entry, tmp_path / "out" / "x")
    assert convert_tree(src, tmp_path / "out", 1) == EXIT_PARTIAL


def test_partly_rejected_uih_series_fails_whole(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _series(src)
    ds = pydicom.dcmread(src / "0001.dcm")
    del ds[0x0065, 0x1051]
    ds.save_as(src / "0001.dcm")
    table = index_tree(src)
    assert len(table.series) == 1
    entry = table.series[0]
    assert entry.flavour == "uih" and any("0001.dcm" in p for p in entry.problems)


def test_classic_series_without_positions_is_reported(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for v in range(2):
        path = write_grid(src / f"{v}.dcm", v, private=False)
        ds = pydicom.dcmread(path)
        ds.Manufacturer = "ACME"
        ds.save_as(path)
    table = index_tree(src)  # images with no plane at all: listed, and a failure of convert
    assert not table.series
    assert [u.reason for u in table.unusable] == [
        "ImagePositionPatient is missing: cannot place the slice in space"
    ] * 2
    assert main(["convert", str(src), str(tmp_path / "out")]) == 4


# --- the shared UIH series against dcm2niix ----------------------------------------------

UIH_SERIES = {
    "dcm_qa_uih": "dcm_qa_uih/In",
    "dcm_qa_stc": "dcm_qa_stc/In/UIH",
}


@pytest.mark.parametrize("name", sorted(UIH_SERIES))
def test_real_uih_grid_equals_dcm2niix(data_dir, tmp_path, name):
    src = data_dir / "dicom" / UIH_SERIES[name]
    ours, failed = run_ours(src, tmp_path / "ours")
    assert not failed, failed
    refs = run_dcm2niix(src, tmp_path / "ref")
    assert len(ours) == len(refs) == 1
    parity = compare(ours[0], refs[0], "dcm2niix")
    assert parity.agrees, parity.differences
    assert parity.keys_compared >= 25  # SliceTiming, TotalReadoutTime, ImageType, ...
    for ext in ("bval", "bvec"):  # written byte for byte as dcm2niix writes them
        assert getattr(ours[0], ext).read_text() == getattr(refs[0], ext).read_text()
    assert "ImagingFrequency" not in ours[0].sidecar  # UIH writes Hz; dcm2niix leaves it out


def test_real_private_fields_same_for_scanner_and_pydicom(data_dir):
    paths = sorted((data_dir / "dicom").glob("dcm_qa_uih/In/**/*.dcm"))
    assert paths
    for path in paths:
        scanned = read_header(path)
        ds = uih.with_private_geometry(pydicom.dcmread(path, stop_before_pixels=True), path)
        assert uih.volume_gradient(scanned)[0] == uih.volume_gradient(ds)[0]
        np.testing.assert_array_equal(uih.volume_gradient(scanned)[1], uih.volume_gradient(ds)[1])
        assert uih.grid_size(scanned) == uih.grid_size(ds) == 20
        assert scanned.uih_grid == ds.uih_grid
        np.testing.assert_allclose(scanned["ImagePositionPatient"], ds.ImagePositionPatient)


def test_real_uih_grid_stored_descending_equals_dcm2niix(data_dir, tmp_path):
    """The shared rotated series with its tiles and private positions stored top-down:
    dcm2niix and we both give the same ascending volume, SliceTiming and table."""
    src = tmp_path / "in"
    src.mkdir()
    for path in sorted((data_dir / "dicom" / UIH_SERIES["dcm_qa_stc"]).rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        grid = uih.read_grid(ds, path)
        img = ds.pixel_array
        rows, cols = img.shape[0] // grid.rows, img.shape[1] // grid.columns
        tiles = img.reshape(grid.rows, rows, grid.columns, cols).transpose(0, 2, 1, 3)
        tiles = tiles.reshape(-1, rows, cols)
        tiles[: grid.n_images] = tiles[: grid.n_images][::-1].copy()
        img = tiles.reshape(grid.rows, grid.columns, rows, cols).transpose(0, 2, 1, 3)
        ds.PixelData = np.ascontiguousarray(img.reshape(ds.Rows, ds.Columns)).tobytes()
        ds[uih.FRAME_SEQUENCE].value = Sequence(list(ds[uih.FRAME_SEQUENCE].value)[::-1])
        ds.save_as(src / path.name)
    ours, failed = run_ours(src, tmp_path / "ours")
    assert not failed, failed
    refs = run_dcm2niix(src, tmp_path / "ref")
    parity = compare(ours[0], refs[0], "dcm2niix")
    assert parity.agrees, parity.differences
    assert ours[0].bvec.read_text() == refs[0].bvec.read_text()


@pytest.mark.parametrize(("flag", "direction"), [("0", "j-"), ("1", "j")])
def test_real_uih_phase_polarity_equals_dcm2niix(data_dir, tmp_path, flag, direction):
    """(0065,1058) added to the shared series: PhaseEncodingDirection as dcm2niix writes it."""
    src = tmp_path / "in"
    src.mkdir()
    for path in sorted((data_dir / "dicom" / UIH_SERIES["dcm_qa_uih"]).rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.add_new((0x0065, 0x1058), "IS", flag)
        ds.save_as(src / path.name)
    ours, failed = run_ours(src, tmp_path / "ours")
    refs = run_dcm2niix(src, tmp_path / "ref")
    assert not failed and compare(ours[0], refs[0], "dcm2niix").agrees
    assert ours[0].sidecar["PhaseEncodingDirection"] == direction
    assert refs[0].sidecar["PhaseEncodingDirection"] == direction


def test_truncated_grid_file_fails_its_series(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    paths = _series(src)
    paths[1].write_bytes(paths[1].read_bytes()[:-20])
    table = index_tree(src)
    assert len(table.series) == 1
    entry = table.series[0]
    assert entry.flavour == "uih"
    assert any("0001.dcm" in p and "truncated" in p for p in entry.problems)
