"""Siemens mosaic slice timing: which volume's MosaicRefAcqTimes are written."""

from __future__ import annotations

import pytest

from anatprep.interfaces.dicomio.mosaic import checked_slice_times

TR = 2500.0


def test_first_volume_kept_when_consistent():
    # dcm_qa_nih EPI_PE=LR: the volumes differ in one slice but span the same range
    first = [0.0, 1447.5, 482.5, 1932.5, 965.0]
    second = [0.0, 1450.0, 482.5, 1932.5, 965.0]
    assert checked_slice_times(first, second, TR) == first


def test_second_volume_when_ranges_differ():
    # dcm_qa_nih EPI_PE=PA: the first volume's last slice is 2.5 ms early
    first = [0.0, 1447.5, 482.5, 1930.0, 965.0]
    second = [0.0, 1447.5, 482.5, 1932.5, 965.0]
    assert checked_slice_times(first, second, TR) == second


@pytest.mark.parametrize(
    "first",
    [[0.0, 0.0, 0.0], [0.0, 1000.0, 2600.0]],  # all equal; beyond TR
    ids=["all-equal", "beyond-TR"],
)
def test_second_volume_replaces_implausible_first(first):
    second = [10.0, 1010.0, 2010.0]
    assert checked_slice_times(first, second, TR) == [0.0, 1000.0, 2000.0]


def test_first_kept_when_second_implausible_too():
    first = [0.0, 0.0, 0.0]
    assert checked_slice_times(first, [0.0, 0.0, 0.0], TR) == first
    assert checked_slice_times(first, [0.0, 2600.0, 100.0], TR) == first
    assert checked_slice_times(first, [], TR) == first
    assert checked_slice_times(first, [0.0, 10.0, 20.0], 0.0) == first
