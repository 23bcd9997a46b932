"""The example configs ship with the package: ``anatprep config --list`` names them and
``--config NAME`` takes one as well as a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from anatprep.pipelines.cli import main
from anatprep.pipelines.config import ConfigError, dump_config, load_config
from anatprep.pipelines.shipped_configs import config_file, shipped_configs

REPO = Path(__file__).resolve().parents[1]


def test_every_file_of_configs_is_shipped():
    shipped = shipped_configs()
    assert {p.name for p in shipped.values()} == {p.name for p in (REPO / "configs").glob("*.yaml")}
    for name, path in shipped.items():
        assert path.read_bytes() == (REPO / "configs" / f"{name}.yaml").read_bytes()


def test_config_list_names_them(capsys):
    assert main(["config", "--list"]) == 0
    out = capsys.readouterr().out
    assert "fast-conversion-only     Convert DICOM to BIDS and stop: no brain extraction." in out
    assert str(shipped_configs()["default"]) in out


def test_config_takes_a_shipped_name_or_a_file(tmp_path, capsys):
    expected = dump_config(load_config(REPO / "configs" / "fast-conversion-only.yaml"))
    for value in ("fast-conversion-only", "fast-conversion-only.yaml"):
        assert main(["config", "--config", value]) == 0
        assert capsys.readouterr().out == expected
    local = tmp_path / "fast-conversion-only"  # a file by that name wins
    local.write_text("reorient: {orientation: LPS}\n")
    assert config_file(str(local)) == local
    assert main(["config", "--config", str(local)]) == 0
    assert "orientation: LPS" in capsys.readouterr().out


def test_an_unknown_name_lists_the_shipped_ones(capsys):
    with pytest.raises(ConfigError, match="shipped: default, fast-conversion-only"):
        config_file("fast-conversion")
    assert main(["config", "--config", "fast-conversion"]) == 2
    assert "no shipped config of that name" in capsys.readouterr().err


@pytest.mark.slow
def test_run_takes_a_shipped_name(tmp_path):
    """Resolved before any work: an empty INPUT gets its own error (3), not a config one."""
    (tmp_path / "in").mkdir()
    args = ["run", str(tmp_path / "in"), str(tmp_path / "out"), "--config"]
    res = subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", *args, "fast-conversion-only"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
