"""A diffusion series through the whole pipeline keeps its gradient tables (real XA30 data)."""

from __future__ import annotations

import numpy as np
import pytest

from anatprep.pipelines.cli import main

REPO_CONFIG = "configs/fast-conversion-only.yaml"


@pytest.mark.pipeline
def test_dwi_bval_bvec_reach_the_bids_tree(data_dir, tmp_path):
    series = data_dir / "dicom" / "dcm_qa_xa30" / "In" / "10_DWI_dir80_PA"
    subject = tmp_path / "in" / "dwi01"
    subject.parent.mkdir()
    subject.symlink_to(series, target_is_directory=True)
    out = tmp_path / "out"
    config = __import__("pathlib").Path(__file__).resolve().parents[1] / REPO_CONFIG
    assert main(["run", "--config", str(config), str(tmp_path / "in"), str(out)]) == 0
    (bval,) = (out / "sub-dwi01" / "extra").glob("*.bval")
    ref = data_dir / "dicom" / "dcm_qa_xa30" / "Ref" / "10_DWI_dir80_PA"
    np.testing.assert_allclose(np.loadtxt(bval), np.loadtxt(f"{ref}.bval"))
    bvec = bval.with_suffix(".bvec")
    np.testing.assert_allclose(np.loadtxt(bvec), np.loadtxt(f"{ref}.bvec"), atol=1e-4)
