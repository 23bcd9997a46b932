"""Command line: exit codes and messages for bad input, before any work is done."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from anatprep.pipelines.cli import main
from anatprep.pipelines.config import Config, load_config
from anatprep.pipelines.synthetic import write_series


def _run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.mark.slow
def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "anatprep 0." in capsys.readouterr().out
    res = _run("--help")
    assert res.returncode == 0 and "Exit codes" in res.stdout
    assert _run("run", "--help").returncode == 0


@pytest.mark.slow
def test_config_prints_effective_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reorient:\n  orientation: LAS\n")
    res = _run("config", "--config", cfg)
    assert res.returncode == 0
    shown = yaml.safe_load(res.stdout)
    expected = Config().model_dump(mode="json")
    expected["reorient"]["orientation"] = "LAS"
    assert shown == expected


@pytest.mark.slow
def test_config_typo_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reorient:\n  orientaton: LAS\n")
    (tmp_path / "in").mkdir()
    res = _run("run", tmp_path / "in", tmp_path / "out", "--config", cfg)
    assert res.returncode == 2
    assert "reorient.orientaton: unknown key" in res.stderr
    assert not (tmp_path / "out").exists()


def test_empty_input_exit_3(tmp_path):
    (tmp_path / "in").mkdir()
    assert main(["run", str(tmp_path / "in"), str(tmp_path / "out")]) == 3


def test_no_dicom_exit_3(tmp_path, capsys):
    (tmp_path / "in" / "s1").mkdir(parents=True)
    (tmp_path / "in" / "s1" / "notes.txt").write_text("hello")
    (tmp_path / "in" / "s1" / "fake.dcm").write_bytes(b"\0" * 300)
    assert main(["run", str(tmp_path / "in"), str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "no usable DICOM among 2 files" in err and "fake.dcm: not a DICOM file" in err


def test_missing_input_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_unwritable_output_exit_2_before_any_work(tmp_path, capsys):
    write_series(np.ones((8, 8, 4)), np.eye(4), tmp_path / "in" / "s1")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert (
        main(
            [
                "run",
                str(tmp_path / "in"),
                str(blocker / "out"),
                "--work-dir",
                str(tmp_path / "work"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"OUTPUT {blocker / 'out'} is not writable" in err
    assert not (tmp_path / "work" / "index").exists()


def test_output_inside_input_refused(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    assert main(["run", str(tmp_path / "in"), str(tmp_path / "in" / "out")]) == 2
    assert "must not be inside INPUT" in capsys.readouterr().err


def test_unknown_participant_label_exit_3(tmp_path, capsys):
    write_series(np.ones((8, 8, 4)), np.eye(4), tmp_path / "in" / "s1")
    assert (
        main(["run", str(tmp_path / "in"), str(tmp_path / "out"), "--participant-label", "sub-zz"])
        == 3
    )
    assert "participant labels" in capsys.readouterr().err


def test_nothing_to_convert_exit_3(tmp_path, capsys):
    write_series(
        np.ones((8, 8, 4)),
        np.eye(4),
        tmp_path / "in" / "s1",
        meta={"SeriesDescription": "localizer"},
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text("series:\n  convert_other: false\n")
    assert main(["run", str(tmp_path / "in"), str(tmp_path / "out"), "--config", str(cfg)]) == 3
    assert "no series matched a rule" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "demo"])
def test_quality_flag_sets_the_preset(command, capsys):
    from anatprep.interfaces.brainmask.params import PRESETS
    from anatprep.pipelines.cli import _overrides, _parser

    where = ["in", "out"] if command == "run" else ["out"]
    for name in PRESETS:
        args = _parser().parse_args([command, *where, "--quality", name])
        assert load_config(None, _overrides(args)).brain_extraction.quality == name
    with pytest.raises(SystemExit):
        _parser().parse_args([command, *where, "--quality", "best"])
    assert "--quality: invalid choice: 'best' (choose from" in capsys.readouterr().err


# issue 22, item 4: a bad value is exit 2 naming the thing, never an internal error


def _refused_before_any_work(tmp_path, capsys, *flags: str, config: str = "") -> str:
    """``anatprep run`` with ``flags``: exit 2, no traceback, no OUTPUT or work dir made."""
    write_series(np.ones((8, 8, 4)), np.eye(4), tmp_path / "in" / "s1")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config or "brain_extraction: {enabled: false}\n")
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "in"), str(out), "--config", str(cfg), *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert not out.exists() and not (tmp_path / "out.work").exists()
    return err


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("/etc/passwd", "--series-table /etc/passwd is not a series table (not JSON: "),
        ("{tmp}/missing.json", "--series-table {tmp}/missing.json: cannot be read: No such file"),
        ("{tmp}/list.json", "--series-table {tmp}/list.json is not a series table: table: ex"),
        ("{tmp}/text.json", "--series-table {tmp}/text.json is not a series table (not JSON"),
        ("/dev/zero", "--series-table /dev/zero is a character device, not a regular file"),
    ],
    ids=["passwd", "missing", "not-a-table", "not-json", "dev-zero"],
)
def test_bad_series_table_exit_2(tmp_path, capsys, table, expected):
    (tmp_path / "list.json").write_text("[1, 2]\n")
    (tmp_path / "text.json").write_text("series: none\n")
    table, expected = table.format(tmp=tmp_path), expected.format(tmp=tmp_path)
    assert expected in _refused_before_any_work(tmp_path, capsys, "--series-table", table)


def test_custom_template_file_missing_exit_2(tmp_path, capsys):
    config = (
        "brain_extraction: {template: custom, template_head: /nonexistent/head.nii.gz, "
        "template_mask: /nonexistent/mask.nii.gz}\n"
    )
    err = _refused_before_any_work(tmp_path, capsys, config=config)
    assert "brain_extraction.template: template file not found: /nonexistent/head.nii.gz" in err


_OFFLINE = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from anatprep.pipelines.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("template", ["OASIS30ANTs", "NoSuchTemplate"])
def test_templateflow_template_offline_exit_2_without_network(tmp_path, template):
    """An empty TEMPLATEFLOW_HOME: exit 2 before OUTPUT is written, naming the missing
    files and how to get them (or the unknown name), and no connection is tried."""
    import os

    write_series(np.ones((8, 8, 4)), np.eye(4), tmp_path / "in" / "s1")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"brain_extraction: {{template: {template}}}\n")
    home = tmp_path / "templateflow"
    home.mkdir()
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(home)}
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-c", _OFFLINE, "run", str(tmp_path / "in"), str(out), "--config",
         str(cfg)], capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and "network attempted" not in res.stderr
    assert not out.exists() and not (tmp_path / "out.work").exists()
    if template == "NoSuchTemplate":
        assert "brain_extraction.template: unknown template 'NoSuchTemplate'" in res.stderr
        return
    tpl = home / "tpl-OASIS30ANTs"
    assert (
        f"brain_extraction.template: TemplateFlow files {tpl}/tpl-OASIS30ANTs_res-01_T1w.nii.gz"
        f", {tpl}/tpl-OASIS30ANTs_res-01_label-brain_probseg.nii.gz are not in "
        "TEMPLATEFLOW_HOME" in res.stderr
    )
    assert "api.get('OASIS30ANTs', resolution=1" in res.stderr
