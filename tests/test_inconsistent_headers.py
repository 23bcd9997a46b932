"""Fuzzed and inconsistent headers: each ends as consistent outputs or a named failure.

Every case is a synthetic series (``anatprep.pipelines.synthetic``) with one header field broken the
way a fuzzer (or a broken PACS) breaks it.  The rule under test: a series is split where its
files cannot share one voxel grid, or it fails with a :class:`SeriesConversionError` naming
the file and the field; never a wrong image, never a NaN in a sidecar, never a traceback of
another type.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from anatprep.interfaces.atomic import write_json
from anatprep.interfaces.dicomio.classic import ClassicSeries
from anatprep.interfaces.dicomio.dicom_file import UnusableFile
from anatprep.interfaces.dicomio.headers import read_headers
from anatprep.interfaces.dicomio.index import index_tree
from anatprep.interfaces.dicomio.series import SeriesGeometryError
from anatprep.interfaces.dicomio.series_to_nifti import SeriesConversionError, convert_entry
from anatprep.interfaces.dicomio.table import SeriesEntry
from anatprep.pipelines.convert_command import output_stems
from anatprep.pipelines.synthetic import write_enhanced, write_series

AXIAL = np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float).T


def _affine(zooms=(0.9, 1.1, 1.7), origin=(-40.0, 25.0, -12.0)) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = AXIAL * np.asarray(zooms)
    aff[:3, 3] = origin
    return aff


def _volume(shape=(16, 12, 6), seed=0) -> np.ndarray:
    vol = np.random.default_rng(seed).integers(0, 3000, size=shape).astype(np.float64)
    vol[0, 0, :] = 4000  # an asymmetric marker
    return vol


def _mutate(path: Path, **fields) -> None:
    ds = pydicom.dcmread(path)
    for key, value in fields.items():
        setattr(ds, key, value)
    ds.save_as(path)


def _convert_all(root: Path, out: Path) -> tuple[list[Path], list[str]]:
    """Convert every series of ``root``: (written images, failure messages).  Any exception
    other than SeriesConversionError fails the test by propagating."""
    written, failed = [], []
    for entry in index_tree(root).series:
        try:
            nii, js = convert_entry(entry, out / entry.id)
        except SeriesConversionError as exc:
            failed.append(str(exc))
            continue
        json.loads(js.read_text(), parse_constant=_no_constant)  # strict JSON: no NaN
        written.append(nii)
    return written, failed


def _no_constant(name: str):
    raise AssertionError(f"sidecar holds {name}")


def _assert_truth(img: nb.Nifti1Image, vol: np.ndarray, aff: np.ndarray) -> None:
    """Every voxel holds the value written at its world position."""
    data = np.asanyarray(img.dataobj)
    ijk = np.array(list(itertools.product(*(range(n) for n in img.shape[:3]))))
    world = nb.affines.apply_affine(img.affine, ijk)
    src = np.rint(nb.affines.apply_affine(np.linalg.inv(aff), world)).astype(int)
    np.testing.assert_allclose(nb.affines.apply_affine(aff, src), world, atol=1e-3)
    np.testing.assert_array_equal(data[tuple(ijk.T)], vol[tuple(src.T)].astype(data.dtype))


# --- the fuzz cases of the issue ------------------------------------------------------------


def test_nan_rescale_slope_fails_naming_field_and_file(tmp_path):
    paths = write_series(_volume(), _affine(), tmp_path / "dcm", rescale=(0.5, -100.0))
    for p in paths:
        _mutate(p, RescaleSlope="NaN")
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert len(failed) == 1 and "RescaleSlope=nan" in failed[0] and paths[0].name in failed[0]


def test_nan_intercept_of_one_slice_fails_naming_that_file(tmp_path):
    paths = write_series(_volume(), _affine(), tmp_path / "dcm", rescale=(0.5, -100.0))
    _mutate(paths[3], RescaleIntercept="NaN")
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert "RescaleIntercept=nan" in failed[0] and paths[3].name in failed[0]


def test_infinite_intercept_fails_instead_of_an_unloadable_header(tmp_path):
    paths = write_series(_volume(), _affine(), tmp_path / "dcm", rescale=(0.5, -100.0))
    for p in paths:
        _mutate(p, RescaleIntercept="inf")
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert "RescaleIntercept=inf" in failed[0] and paths[0].name in failed[0]


def test_rescale_slope_zero_fails(tmp_path):
    paths = write_series(_volume(), _affine(), tmp_path / "dcm", rescale=(0.5, -100.0))
    for p in paths:
        _mutate(p, RescaleSlope="0")
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written and "RescaleSlope=0" in failed[0]


def _two_spacings(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two stacks in one SeriesInstanceUID (same number, orientation, matrix) that differ
    only in PixelSpacing; the second continues the first along the normal."""
    vol_a, vol_b = _volume(seed=1), _volume(seed=2)
    aff_a = _affine()
    aff_b = _affine(zooms=(0.5, 0.6, 1.7), origin=(-40.0, 25.0, -12.0 + 1.7 * 6))
    write_series(vol_a, aff_a, root / "a")
    second = write_series(vol_b, aff_b, root / "b", prefix="IB")
    uid = pydicom.dcmread(next((root / "a").iterdir())).SeriesInstanceUID
    for k, p in enumerate(second):
        _mutate(p, SeriesInstanceUID=uid, InstanceNumber=7 + k)
    return vol_a, aff_a, vol_b, aff_b


def test_one_uid_with_two_pixel_spacings_is_split_into_correct_volumes(tmp_path):
    vol_a, aff_a, vol_b, aff_b = _two_spacings(tmp_path / "dcm")
    table = index_tree(tmp_path / "dcm")
    assert len(table.series) == 2
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not failed and len(written) == 2
    by_zoom = {round(float(nb.load(p).header.get_zooms()[0]), 3): nb.load(p) for p in written}
    assert set(by_zoom) == {0.9, 0.5}
    _assert_truth(by_zoom[0.9], vol_a, aff_a)
    _assert_truth(by_zoom[0.5], vol_b, aff_b)
    stems = output_stems(table.series)
    assert len(set(stems.values())) == 2


def test_reader_refuses_files_with_different_pixel_spacing(tmp_path):
    _two_spacings(tmp_path / "dcm")
    files = sorted(str(p) for p in (tmp_path / "dcm").rglob("*.dcm"))
    with pytest.raises(SeriesGeometryError, match=r"IB001_0001\.dcm: PixelSpacing="):
        ClassicSeries(files)


def test_slices_at_one_position_with_different_in_plane_offsets_fail(tmp_path):
    write_series(_volume(), _affine(), tmp_path / "dcm" / "a")
    shifted = write_series(
        _volume(seed=3), _affine(origin=(-30.0, 25.0, -12.0)), tmp_path / "dcm" / "b", prefix="IB"
    )
    uid = pydicom.dcmread(next((tmp_path / "dcm" / "a").iterdir())).SeriesInstanceUID
    for k, p in enumerate(shifted):
        _mutate(p, SeriesInstanceUID=uid, InstanceNumber=100 + k)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert "ImagePositionPatient" in failed[0] and "shifted in-plane" in failed[0]
    assert "IB001_0001.dcm" in failed[0]


def test_enhanced_file_converts_when_its_frame_groups_are_complete(tmp_path):
    write_enhanced(_volume((8, 6, 4)), tmp_path / "dcm" / "enh.dcm")
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not failed and nb.load(written[0]).shape == (8, 6, 4)


@pytest.mark.parametrize("items", [3, 5])
def test_enhanced_file_with_a_wrong_number_of_frame_groups_fails(tmp_path, items):
    path = write_enhanced(_volume((8, 6, 4)), tmp_path / "dcm" / "enh.dcm", per_frame_items=items)
    with pytest.raises(UnusableFile, match=rf"NumberOfFrames=4 but .* holds {items} item"):
        read_headers(path)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert len(failed) == 1 and "enh.dcm" in failed[0] and "NumberOfFrames" in failed[0]


# --- the neighbours a fuzzer hits next ------------------------------------------------------

BROKEN_IN_ALL_FILES = {
    "PixelSpacing": (["0", "0"], "PixelSpacing must be positive"),
    "ImageOrientationPatient": (["0"] * 6, "ImageOrientationPatient is not two orthogonal"),
    "non-orthogonal": (
        ["1", "0", "0", "0.6", "0.8", "0"],
        "ImageOrientationPatient is not two orthogonal",
    ),
    "BitsAllocated": (12, "BitsAllocated=12 is not supported"),
    "Rows": (0, "Rows=0"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_IN_ALL_FILES))
def test_broken_value_in_every_file_fails_the_series_naming_it(tmp_path, case):
    value, message = BROKEN_IN_ALL_FILES[case]
    field = "ImageOrientationPatient" if case == "non-orthogonal" else case
    paths = write_series(_volume(), _affine(), tmp_path / "dcm")
    for p in paths:
        _mutate(p, **{field: value})
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert len(failed) == 1 and message in failed[0] and paths[0].name in failed[0]


@pytest.mark.parametrize("k", [0, 3])
def test_non_finite_pixel_spacing_in_one_file_fails_its_series(tmp_path, k):
    """An edge slice (k=0) would otherwise be dropped without a gap to notice."""
    paths = write_series(_volume(), _affine(), tmp_path / "dcm")
    _mutate(paths[k], PixelSpacing=["NaN", "1.1"])
    table = index_tree(tmp_path / "dcm")
    assert [u.series for u in table.unusable] == [table.series[0].id]
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert "PixelSpacing must hold 2 finite numbers" in failed[0] and paths[k].name in failed[0]


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [("EchoTime", "NaN", "EchoTime=nan"), ("RepetitionTime", "inf", "RepetitionTime=inf")],
)
def test_non_finite_echo_or_repetition_time_fails_the_series_naming_it(
    tmp_path, key, text, message
):
    """Read as absent, a NaN time would split its file off the series (or leave the sidecar
    without it unnoticed): the file is rejected instead, naming the field."""
    paths = write_series(_volume(), _affine(), tmp_path / "dcm")
    for p in paths:
        _mutate(p, **{key: text})
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written and len(failed) == 1
    assert f"{message} is not a finite number" in failed[0] and paths[0].name in failed[0]


def test_write_json_leaves_out_non_finite_numbers(tmp_path):
    out = write_json(
        {"a": 1.0, "b": float("nan"), "c": [1.0, float("inf")], "d": {"e": -float("inf")}},
        tmp_path / "x.json",
    )
    assert json.loads(out.read_text()) == {"a": 1.0, "d": {}}


# --- output naming --------------------------------------------------------------------------


def test_echo_suffixes_only_within_one_acquisition():
    series = [
        # one multi-echo acquisition: two entries split from one DICOM series
        SeriesEntry(id="m1", protocol_name="gre", series_number=4, echo_time=4.9,
         acquisition="aaaa"),
        SeriesEntry(id="m2", protocol_name="gre", series_number=4, echo_time=7.4,
         acquisition="aaaa"),
        # two unrelated series that happen to share number 7 (another study, another TE)
        SeriesEntry(id="u1", protocol_name="t1", series_number=7, echo_time=2.9,
         acquisition="bbbb"),
        SeriesEntry(id="u2", protocol_name="t1", series_number=7, echo_time=3.1,
         acquisition="cccc"),
        # same number, same acquisition hash absent, different protocols
        SeriesEntry(id="p1", protocol_name="flair", series_number=9, echo_time=90.0),
        SeriesEntry(id="p2", protocol_name="dwi", series_number=9, echo_time=70.0),
    ]  # fmt: skip
    stems = output_stems(series)
    assert stems["m1"] == "gre_4_e1" and stems["m2"] == "gre_4_e2"
    assert stems["u1"] == "t1_7_u1" and stems["u2"] == "t1_7_u2"
    assert stems["p1"] == "flair_9" and stems["p2"] == "dwi_9"
    assert output_stems(list(reversed(series))) == stems  # stable, order-independent


def test_unrelated_series_sharing_a_number_get_distinct_names_without_echo(tmp_path):
    for key, te in (("s1", 2.9), ("s2", 3.4)):
        write_series(
            _volume(), _affine(), tmp_path / "dcm" / key, study_key=key, meta={"EchoTime": te}
        )
    table = index_tree(tmp_path / "dcm")
    stems = output_stems(table.series)
    assert len(stems) == 2 and len(set(stems.values())) == 2
    assert not any("_e" in stem for stem in stems.values()), stems


def test_single_slice_with_nan_thickness_keeps_a_finite_affine(tmp_path):
    vol, aff = _volume((16, 12, 1)), _affine()
    (path,) = write_series(vol, aff, tmp_path / "dcm")
    _mutate(path, SliceThickness="NaN")
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not failed
    img = nb.load(written[0])
    assert np.all(np.isfinite(img.affine)) and img.header.get_zooms()[2] == 1.0
    _assert_truth(img, vol, aff)


@pytest.mark.parametrize("column", [np.nan, 0.0])
def test_a_degenerate_voxel_matrix_is_never_written(column):
    from anatprep.interfaces.dicomio.volume import frames_to_volume

    affine = np.eye(4)
    affine[:3, 2] = column
    with pytest.raises(SeriesGeometryError, match="no usable voxel-to-world matrix"):
        frames_to_volume(np.zeros((1, 2, 3, 4), np.int16), affine, None)


@pytest.mark.parametrize("k", [0, 3])
def test_classic_slice_claiming_two_frames_fails_its_series(tmp_path, k):
    """The file is no longer a slice (nor a valid multi-frame file): its series fails, even
    when it is an edge slice whose loss no gap would reveal."""
    paths = write_series(_volume(), _affine(), tmp_path / "dcm")
    _mutate(paths[k], NumberOfFrames=2)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert len(failed) == 1 and paths[k].name in failed[0]


def _without(path: Path, key: str) -> None:
    ds = pydicom.dcmread(path)
    delattr(ds, key)
    ds.save_as(path)


@pytest.mark.parametrize("key", ["ImageOrientationPatient", "ImagePositionPatient"])
def test_edge_slice_without_geometry_fails_its_series(tmp_path, key):
    paths = write_series(_volume(), _affine(), tmp_path / "dcm")
    _without(paths[-1], key)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert len(failed) == 1 and f"{key} is missing" in failed[0] and paths[-1].name in failed[0]


def test_images_without_any_plane_are_listed_not_failed(tmp_path):
    """Screenshots and other non-spatial images (no series of theirs has a plane) are
    listed as unusable, as before; the spatial series beside them converts."""
    shots = write_series(_volume(), _affine(), tmp_path / "dcm" / "shots", series_number=99)
    for p in shots:
        _without(p, "ImageOrientationPatient")
    write_series(_volume(), _affine(), tmp_path / "dcm" / "t1", study_key="t1")
    table = index_tree(tmp_path / "dcm")
    assert len(table.series) == 1
    assert [u.series for u in table.unusable] == [None] * len(shots)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert len(written) == 1 and not failed


def _raw(path: Path, key: str, text: str) -> None:
    """Store ``text`` as the value of ``key`` byte for byte (pydicom would refuse it)."""
    ds = pydicom.dcmread(path)
    tag = pydicom.tag.Tag(pydicom.datadict.tag_for_keyword(key))
    raw = text.encode() + b" " * (len(text) % 2)
    vr = pydicom.datadict.dictionary_VR(tag)
    ds[tag] = pydicom.dataelem.RawDataElement(tag, vr, len(raw), raw, 0, False, True)
    ds.save_as(path)


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("RescaleSlope", "abc", "RescaleSlope is not a number"),
        ("RescaleIntercept", "abc", "RescaleIntercept is not a number"),
        ("PixelSpacing", "abc", "PixelSpacing is not a number"),
        ("ImageOrientationPatient", "x\\y", "ImageOrientationPatient is not a number"),
        ("RescaleSlope", "1e300", "RescaleSlope=1e+300"),
        ("RescaleIntercept", "1\\2", "RescaleIntercept=(1.0, 2.0)"),
        ("RescaleSlope", "", "RescaleSlope is"),  # absent in one file only
        ("NumberOfFrames", "abc", "NumberOfFrames is not a number"),
    ],
)
def test_unreadable_or_oversized_numbers_in_an_edge_slice_fail_the_series(
    tmp_path, key, text, message
):
    paths = write_series(_volume(), _affine(), tmp_path / "dcm", rescale=(0.5, -100.0))
    _raw(paths[0], key, text)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert len(failed) == 1 and message in failed[0] and paths[0].name in failed[0]


def test_oversized_repetition_time_is_left_out_of_the_header(tmp_path):
    vol, aff = _volume(), _affine()
    paths = write_series(vol, aff, tmp_path / "dcm")
    for p in paths:
        _raw(p, "RepetitionTime", "1e300")
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not failed
    img = nb.load(written[0])
    assert np.all(np.isfinite(img.header["pixdim"]))
    _assert_truth(img, vol, aff)


@pytest.mark.parametrize("frames", ["-1", "0"])
def test_fuzzed_number_of_frames_never_escapes_as_another_error(tmp_path, frames):
    paths = write_series(_volume(), _affine(), tmp_path / "dcm")
    _raw(paths[0], "NumberOfFrames", frames)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    for nii in written:  # a NumberOfFrames <= 1 reads as one frame: the series is intact
        assert nb.load(nii).shape == (16, 12, 6)
    assert len(written) + len(failed) == 1


def test_a_slice_shifted_sideways_on_its_own_fails(tmp_path):
    """Only the end slices count for a gantry tilt: a middle slice off the line would be
    stacked into a wrong place."""
    paths = write_series(_volume(), _affine(), tmp_path / "dcm")
    ds = pydicom.dcmread(paths[2])
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    _mutate(paths[2], ImagePositionPatient=[f"{x + 4:g}", f"{y:g}", f"{z:g}"])
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert "off the line" in failed[0] and paths[2].name in failed[0]


def _enhanced_mutated(tmp_path: Path, change) -> tuple[list[Path], list[str]]:
    path = write_enhanced(_volume((8, 6, 4)), tmp_path / "dcm" / "enh.dcm")
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return _convert_all(tmp_path / "dcm", tmp_path / "out")


def _frame(ds: Dataset, k: int) -> Dataset:
    return ds.PerFrameFunctionalGroupsSequence[k]


def test_enhanced_frame_without_position_fails_its_file(tmp_path):
    written, failed = _enhanced_mutated(
        tmp_path, lambda ds: delattr(_frame(ds, 0), "PlanePositionSequence")
    )
    assert not written and "ImagePositionPatient is missing" in failed[0]


def test_enhanced_frame_off_the_line_fails(tmp_path):
    def shift(ds):
        _frame(ds, 2).PlanePositionSequence[0].ImagePositionPatient = ["5", "0", "4"]

    written, failed = _enhanced_mutated(tmp_path, shift)
    assert not written and "(frame 3)" in failed[0] and "off the line" in failed[0]


def test_enhanced_frame_with_its_own_nan_rescale_fails_naming_the_frame(tmp_path):
    def rescale(ds):
        for k in range(4):
            item = Dataset()
            item.RescaleSlope, item.RescaleIntercept = ("NaN" if k == 1 else "2"), "0"
            _frame(ds, k).PixelValueTransformationSequence = Sequence([item])

    written, failed = _enhanced_mutated(tmp_path, rescale)
    assert not written and "enh.dcm (frame 2): unusable rescale" in failed[0]


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("SpacingBetweenSlices", "NaN", "slice step must be a positive number"),
        ("SpacingBetweenSlices", "1e300", "no usable voxel-to-world matrix"),
        ("PixelSpacing", "0", "PixelSpacing must hold 2 finite numbers"),
        ("RescaleSlope", "abc", "RescaleSlope is not a number"),
    ],
)
def test_fuzzed_mosaic_volume_fails_by_name(tmp_path, data_dir, key, text, message):
    """A mutated copy of three real Siemens mosaic volumes (the slice step is a header value
    here, not a distance between positions)."""
    src = sorted((data_dir / "dicom" / "dcm_qa_mosaic" / "In" / "ep2d_Asc_2").glob("*.dcm"))
    copies = []
    for path in src[:3]:
        copies.append(tmp_path / "dcm" / path.name)
        copies[-1].parent.mkdir(exist_ok=True)
        copies[-1].write_bytes(path.read_bytes())
    _raw(copies[0], key, text)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert len(failed) == 1 and message in failed[0]


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("NumberOfFrames", "abc", "NumberOfFrames='abc' is not a number"),
        ("RescaleSlope", "abc", "RescaleSlope='abc'"),
        ("ImageOrientationPatient", "abc", "ImageOrientationPatient is not numeric"),
        ("PixelSpacing", "NaN\\1", "PixelSpacing must hold 2 finite numbers"),
    ],
)
def test_fuzzed_values_read_by_pydicom_fail_by_name_too(tmp_path, key, text, message):
    """Deflated files are read by pydicom, which hands unparseable numbers over as text."""
    paths = write_series(_volume(), _affine(), tmp_path / "dcm", rescale=(0.5, -100.0))
    _raw(paths[0], key, text)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        ds.save_as(path)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written
    assert len(failed) == 1 and message in failed[0] and paths[0].name in failed[0]


def _deflate(paths: list[Path]) -> None:
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        ds.save_as(path)


@pytest.mark.parametrize(
    ("key", "text"), [("InstanceNumber", "inf"), ("SeriesNumber", "1e300"), ("EchoNumbers", "-inf")]
)
def test_integers_pydicom_cannot_convert_are_left_out_like_the_scanner_does(tmp_path, key, text):
    vol, aff = _volume(), _affine()
    paths = write_series(vol, aff, tmp_path / "dcm")
    for path in paths:
        _raw(path, key, text)
    _deflate(paths)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not failed and len(written) == 1
    _assert_truth(nb.load(written[0]), vol, aff)


def test_unconvertible_value_in_a_frame_group_fails_naming_it(tmp_path):
    path = write_enhanced(_volume((8, 6, 4)), tmp_path / "dcm" / "enh.dcm")
    ds = pydicom.dcmread(path)
    content = Dataset()
    content.InstanceNumber = "987654"  # replaced below: pydicom refuses to write 'inf'
    _frame(ds, 1).FrameContentSequence = Sequence([content])
    ds.save_as(path)
    data = path.read_bytes()
    assert data.count(b"987654") == 1
    path.write_bytes(data.replace(b"987654", b"inf   "))
    field = r"PerFrameFunctionalGroupsSequence\[1\]\.FrameContentSequence\[0\]\.InstanceNumber"
    with pytest.raises(UnusableFile, match=field + " is not a number"):
        read_headers(path)
    written, failed = _convert_all(tmp_path / "dcm", tmp_path / "out")
    assert not written and len(failed) == 1
    assert "FrameContentSequence[0].InstanceNumber" in failed[0]
