"""Brain-extraction settings: presets, overrides, TemplateFlow templates, stripped input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from anatprep.interfaces.brainmask.params import PRESETS, preset
from anatprep.interfaces.brainmask.stripped import stripped_mask
from anatprep.pipelines.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def test_presets_are_ordered_by_cost():
    fast, default, precise = PRESETS["fast"], PRESETS["default"], PRESETS["precise"]
    assert fast.registration_spacing_mm > default.registration_spacing_mm
    assert default.registration_spacing_mm > precise.registration_spacing_mm
    assert sum(fast.syn_iterations) < sum(default.syn_iterations) < sum(precise.syn_iterations)


def test_overrides_are_typed_and_named():
    p = preset("fast", {"syn_iterations": [10, 5], "prior_threshold": 1})
    assert p.syn_iterations == (10, 5) and p.prior_threshold == 1.0
    assert p.registration_spacing_mm == PRESETS["fast"].registration_spacing_mm
    with pytest.raises(ValueError, match=r"unknown brain-extraction parameter.*nope"):
        preset("default", {"nope": 1})
    with pytest.raises(ValueError, match="syn_iterations must be like"):
        preset("default", {"syn_iterations": "many"})
    with pytest.raises(ValueError, match="unknown quality preset"):
        preset("best")


def _write_config(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_config_rejects_bad_parameters(tmp_path):
    bad = _write_config(
        tmp_path, "brain_extraction:\n  quality: fast\n  parameters:\n    syn_iterationz: [1]\n"
    )
    with pytest.raises(ConfigError, match=r"brain_extraction.*syn_iterationz"):
        load_config(bad)
    reserved = _write_config(tmp_path, "brain_extraction:\n  parameters:\n    num_threads: 2\n")
    with pytest.raises(ConfigError, match="num_threads at brain_extraction level"):
        load_config(reserved)
    good = _write_config(
        tmp_path, "brain_extraction:\n  quality: precise\n  parameters:\n    atropos: false\n"
    )
    cfg = load_config(good)
    assert cfg.brain_extraction.quality == "precise"


def _nifti(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    nb.save(nb.Nifti1Image(data.astype(np.float32), np.eye(4)), path)


def _resolve_in(home, name: str) -> subprocess.CompletedProcess:
    """Resolve ``name`` in a fresh process: the client reads TEMPLATEFLOW_HOME at import."""
    code = (
        "import sys\n"
        "from anatprep.interfaces.templates import TemplateError, resolve_template\n"
        "try:\n"
        f"    t = resolve_template({name!r})\n"
        "except TemplateError as exc:\n"
        "    sys.exit(f'TemplateError: {exc}')\n"
        "print(t.head); print(t.mask)\n"
    )
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO
    )


@pytest.mark.slow
def test_templateflow_template_from_a_local_home(tmp_path):
    """A fake TEMPLATEFLOW_HOME holding one template: found by name, no network needed."""
    tpl = tmp_path / "tf" / "tpl-OASIS30ANTs"
    head = np.zeros((12, 12, 12))
    head[2:10, 2:10, 2:10] = 100
    _write_template_home(tpl, head)
    res = _resolve_in(tmp_path / "tf", "OASIS30ANTs")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [
        str(tpl / "tpl-OASIS30ANTs_res-01_T1w.nii.gz"),
        str(tpl / "tpl-OASIS30ANTs_res-01_label-brain_probseg.nii.gz"),
    ]


@pytest.mark.slow
def test_templateflow_missing_file_is_named(tmp_path):
    tpl = tmp_path / "tf" / "tpl-OASIS30ANTs"
    _write_template_home(tpl, np.ones((4, 4, 4)))
    (tpl / "tpl-OASIS30ANTs_res-01_T1w.nii.gz").write_bytes(b"")  # an undownloaded stub
    res = _resolve_in(tmp_path / "tf", "OASIS30ANTs")
    assert res.returncode == 1
    assert "TemplateError: TemplateFlow file" in res.stderr
    assert "tpl-OASIS30ANTs_res-01_T1w.nii.gz is not in TEMPLATEFLOW_HOME" in res.stderr


def test_unknown_template_name(tmp_path):
    _write_template_home(tmp_path / "tf" / "tpl-OASIS30ANTs", np.ones((4, 4, 4)))
    res = _resolve_in(tmp_path / "tf", "NoSuchTemplate")
    assert "unknown template 'NoSuchTemplate'" in res.stderr


def _write_template_home(tpl, head):
    _nifti(tpl / "tpl-OASIS30ANTs_res-01_T1w.nii.gz", head)
    _nifti(tpl / "tpl-OASIS30ANTs_res-01_label-brain_probseg.nii.gz", (head > 0) * 1.0)
    (tpl / "template_description.json").write_text('{"Identifier": "OASIS30ANTs"}')
    (tpl.parent / "dataset_description.json").write_text(
        '{"Name": "fake TemplateFlow", "BIDSVersion": "1.4.0"}'
    )


def _ball(shape, radius, centre=None):
    grid = np.indices(shape).astype(float)
    centre = np.array(centre or [s / 2 for s in shape])[:, None, None, None]
    return ((grid - centre) ** 2).sum(0) <= radius**2


def test_skull_stripped_input_detected():
    brain = _ball((96, 96, 96), 38) * 200.0  # ~230 mL at 1 mm: too small; use 2 mm voxels
    mask = stripped_mask(brain, voxel_ml=0.008)  # 2 mm voxels: ~1840 mL
    assert mask is not None and mask.sum() == (brain > 0).sum()


def test_whole_head_not_taken_for_stripped():
    head = _ball((96, 96, 96), 46) * 100.0 + _ball((96, 96, 96), 38) * 100.0
    assert stripped_mask(head, voxel_ml=0.008) is None  # head body ~3300 mL
    noisy = _ball((96, 96, 96), 38) * 200.0 + 1.0  # non-zero background: not stripped
    assert stripped_mask(noisy, voxel_ml=0.008) is None
