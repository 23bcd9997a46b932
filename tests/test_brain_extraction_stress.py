"""Brain extraction on stress heads with a known true mask (``tests/stress_heads.py``).

The fast part of the evaluation in ``benchmarks/brain_extraction.py`` (which runs every case
and the real heads with a second opinion): the default preset, one thread, each run in a
fresh process so its peak memory is its own.

- ventricles 3x their volume: Dice >= 0.95 and >= 99% of the ventricle voxels in the mask;
- the neck continued down a 256^3 field of view, vertex 2 voxels from the edge;
- 0.5 mm (57.8 M voxels): the work at 1 mm, the outputs on the input's own grid, and the
  peak memory below what the node declares for that size.

Every mask must hold the invariants: one component, no slice hole inside the template brain.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from conftest import REPO
from stress_heads import make_all

from anatprep.interfaces.atomic import write_nifti
from anatprep.interfaces.brainmask.resources import memory_gb

pytestmark = pytest.mark.ants

CHILD = r"""
import json, resource, sys
from pathlib import Path
from anatprep.interfaces.brainmask.extract import extract_brain
from anatprep.interfaces.brainmask.params import preset
from anatprep.interfaces.templates import robex_template
tpl = robex_template()
out = extract_brain(sys.argv[1], tpl.head, tpl.mask, Path(sys.argv[2]), preset("default"), "robex")
stats = json.loads(Path(out.stats).read_text())
print(json.dumps({"mask": out.mask, "stats": stats, "outputs": [out.bias_corrected,
                  out.brain, *out.probsegs.values()],
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))
"""


def _extract(t1w: Path, out: Path) -> dict:
    out.mkdir()
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(t1w), str(out)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _case(data_dir: Path, name: str, tmp: Path):
    (case,) = make_all(data_dir, [name])
    t1w = tmp / f"{name}_T1w.nii.gz"
    write_nifti(case.image, t1w)
    return case, t1w


def _check(case, res: dict) -> tuple[float, float]:
    mask_img = nb.load(res["mask"])
    mask = np.asanyarray(mask_img.dataobj) > 0
    assert mask.shape == case.image.shape[:3]
    np.testing.assert_array_equal(mask_img.affine, case.image.affine)
    dice = float(2 * (mask & case.mask).sum() / (mask.sum() + case.mask.sum()))
    inside = float((mask & case.ventricles).sum() / case.ventricles.sum())
    quality = res["stats"]["MaskQuality"]
    print(f"\n{case.name}: Dice {dice:.4f}, ventricles inside {inside:.4f}, {quality}, "
          f"{res['stats']['seconds']}, peak {res['rss_gb']:.2f} GB")  # fmt: skip
    assert quality["Components"] == 1 and quality["SlicesWithHoles"] == 0
    assert res["stats"]["QualityFlags"] == []
    return dice, inside


@pytest.mark.parametrize("name", ["ventricles3x", "neck_vertex256"])
def test_stress_head_mask(data_dir, tmp_path, name):
    case, t1w = _case(data_dir, name, tmp_path)
    dice, inside = _check(case, _extract(t1w, tmp_path / "out"))
    assert dice >= 0.95 and inside >= 0.99


def test_high_resolution_head_on_its_own_grid_within_declared_memory(data_dir, tmp_path):
    case, t1w = _case(data_dir, "highres_mni152", tmp_path)
    n_voxels = int(np.prod(case.image.shape[:3]))
    assert n_voxels >= 35_000_000
    res = _extract(t1w, tmp_path / "out")
    dice, inside = _check(case, res)
    assert dice >= 0.95 and inside >= 0.99
    assert res["stats"]["working_grid"]["spacing_mm"] == [1.0, 1.0, 1.0]
    for path in res["outputs"]:  # every image output on the input's 0.5 mm grid
        img = nb.load(path)
        assert img.shape == case.image.shape[:3]
        np.testing.assert_array_equal(img.affine, case.image.affine)
    assert res["rss_gb"] <= memory_gb(n_voxels)
