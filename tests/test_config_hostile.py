"""Hostile configs (issue 14, item 9): each is refused fast, with the key path and the file,
and the command line exits 2 with a message, never a traceback, before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anatprep.pipelines.cli import main
from anatprep.pipelines.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def _levels() -> list[tuple[str, str]]:
    """The billion laughs: nine anchored lists, each of nine aliases of the one before."""
    levels = [("a", "&a [" + ", ".join(["lol"] * 9) + "]")]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append((name, f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]"))
    return levels


def _bomb(where: str) -> str:
    """A document expanding to 9**9 strings, in unknown keys, in n_procs or in plugin_args."""
    if where == "unknown key":
        return "".join(f"{name}: {value}\n" for name, value in _levels())
    if where == "validated key":
        return "execution:\n  n_procs: [" + ", ".join(v for _, v in _levels()) + "]\n"
    body = "".join(f"    {name}: {value}\n" for name, value in _levels())
    return "execution:\n  plugin_args:\n" + body


_MEASURE = textwrap.dedent(
    """
    import json, resource, sys, time
    from anatprep.pipelines.config import ConfigError, load_config
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        load_config(sys.argv[1])
        outcome = "accepted"
    except ConfigError as exc:
        outcome = str(exc)
    elapsed = time.perf_counter() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"outcome": outcome, "seconds": elapsed, "grown_mb": grown_mb}))
    """
)


def _limited_child() -> None:
    """Keep a runaway child (the old loader) from taking the machine: 1 GB of address space."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("where", ["unknown key", "validated key", "plugin_args"])
def test_alias_bomb_fails_fast_and_small(tmp_path, where):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(where))
    try:
        res = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(path)],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=REPO,
            preexec_fn=_limited_child,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("loading an alias bomb ran for 20 s")
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert "aliases (&name, *name) are not allowed in anatprep configs" in report["outcome"]
    assert str(path) in report["outcome"]
    assert report["seconds"] < 1.0
    assert report["grown_mb"] < 100


def _refused(tmp_path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_alias_refused_with_key_path(tmp_path):
    message = _refused(tmp_path, "execution:\n  n_procs: &two 2\n  slurm:\n    throttle: *two\n")
    assert "execution.n_procs: anchor &two: anchors and aliases (&name, *name)" in message
    assert "line 2" in message


def test_duplicate_top_level_key(tmp_path):
    message = _refused(tmp_path, "execution: {n_procs: 2}\nreorient: {}\nexecution: {}\n")
    assert "execution: duplicate key (line 3, column 1; first at line 1, column 1)" in message


def test_duplicate_nested_key(tmp_path):
    text = "execution:\n  slurm:\n    mem_gb: 2\n    throttle: 3\n    mem_gb: 4\n"
    message = _refused(tmp_path, text)
    assert "execution.slurm.mem_gb: duplicate key (line 5" in message


@pytest.mark.parametrize("value", ["[.nan, 2600]", "[700, .inf]", "[-.inf, .nan]"])
def test_volume_range_must_be_finite(tmp_path, value):
    message = _refused(tmp_path, f"brain_extraction:\n  volume_range_ml: {value}\n")
    assert "brain_extraction.volume_range_ml." in message and "finite number" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("execution:\n  memory_gb: .inf\n", "execution.memory_gb: Input should be a finite"),
        ("execution:\n  slurm: {mem_gb: .nan}\n", "execution.slurm.mem_gb: Input should be a f"),
        ("execution:\n  slurm: {mem_gb: .inf}\n", "execution.slurm.mem_gb: Input should be a f"),
        ("execution:\n  slurm: {outage_seconds: .inf}\n", "execution.slurm.outage_seconds: In"),
        ("brain_extraction:\n  memory_gb: .inf\n", "brain_extraction.memory_gb: Input should"),
        ("execution:\n  plugin_args: {a: [1, .nan]}\n", "plugin_args.a.1: must be a finite"),
        (
            "brain_extraction:\n  parameters: {n4_spacing_mm: .nan}\n",
            "n4_spacing_mm must be a finite number",
        ),
        (
            "brain_extraction:\n  parameters: {prior_threshold: .inf}\n",
            "prior_threshold must be a finite number",
        ),
        (
            "brain_extraction:\n  parameters: {winsorize: [0.01, .nan]}\n",
            "winsorize must be a finite number",
        ),
    ],
)
def test_other_floats_must_be_finite(tmp_path, text, key):
    assert key in _refused(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("registration_spacing_mm: 0", "registration_spacing_mm must be above 0"),
        ("working_spacing_mm: -1", "working_spacing_mm must be above 0"),
        ("syn_iterations: [50, -1, 5]", "syn_iterations must be above 0"),
        ("syn_shrink_factors: [4, 0, 1]", "syn_shrink_factors must be above 0"),
        ("atropos_iterations: 100000000000000000000000", "atropos_iterations must be at most"),
        ("prior_threshold: 2", "prior_threshold must be between 0 and 1"),
        ("close_mm: -3", "close_mm must be at least 0"),
        ("syn_iterations: [50, 30.5, 5]", "syn_iterations must be like [50, 30, 5]"),
        ("syn_iterations: [50, 30]", "syn_iterations [50, 30] and syn_shrink_factors [4, 2, 1]"),
    ],
)
def test_brain_extraction_parameters_in_range(tmp_path, text, key):
    assert key in _refused(tmp_path, f"brain_extraction:\n  parameters: {{{text}}}\n")


@pytest.mark.parametrize("value", ["100000000000000000000000", "1.0e+18", "5000"])
def test_n_procs_absurd(tmp_path, value):
    message = _refused(tmp_path, f"execution:\n  n_procs: {value}\n")
    assert "execution.n_procs: Input should be less than or equal to 4096" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("execution:\n  slurm: {throttle: 1.0e+18}\n", "execution.slurm.throttle: Input should"),
        ("execution:\n  memory_gb: 1.0e+300\n", "execution.memory_gb: Input should be less"),
        ("brain_extraction:\n  random_seed: 99999999999\n", "brain_extraction.random_seed: In"),
        ("series:\n  rules:\n    T1w: {min_slices: 1.0e+12}\n", "T1w.min_slices: Input should"),
    ],
)
def test_other_counts_bounded(tmp_path, text, key):
    assert key in _refused(tmp_path, text)


def test_not_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"reorient:\n  orientation: R\xffS\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"config {path} is not UTF-8 text: byte 0xff at byte offset 26 (line 2)" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("execution:\n  n_procs: " + "1" * 5000 + "\n", "execution.n_procs: Exceeds the limit"),
        ("labels:\n  subject_map: {a: 2020-02-30}\n", "labels.subject_map.a: day is out of"),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper than 32 levels"),
        ("? " * 3000 + "a\n", "nested deeper than 32 levels"),
    ],
)
def test_yaml_python_refuses_is_a_config_error(tmp_path, text, key):
    assert key in _refused(tmp_path, text)


@pytest.mark.slow
def test_error_message_stays_short(tmp_path):
    message = _refused(tmp_path, "x: [" + "lol, " * 50_000 + "]\n")
    assert "x: unknown key" in message and len(message) < 500


def test_file_size_bounded(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=r"is larger than 1 MiB"):
        load_config(path)


def _cli_exit(tmp_path, capsys, text: str | bytes, *flags: str) -> str:
    """Run ``anatprep run`` on the config; assert exit 2, no traceback, nothing written."""
    path = tmp_path / "c.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    (tmp_path / "in").mkdir(exist_ok=True)
    out = tmp_path / "out"
    argv = ["run", str(tmp_path / "in"), str(out), "--config", str(path), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert str(path) in err
    assert not out.exists() and not (tmp_path / "out.work").exists()
    return err


def test_cli_wrong_typed_section_with_flag_exit_2(tmp_path, capsys):
    err = _cli_exit(tmp_path, capsys, "execution: 5\n", "--n-procs", "2")
    assert "execution: Input should be a valid dictionary" in err
    assert "(with overrides of execution.n_procs)" in err


@pytest.mark.slow
def test_cli_wrong_typed_section_subprocess_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("execution: 5\n")
    (tmp_path / "in").mkdir()
    res = subprocess.run(
        [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(tmp_path / "in"),
         str(tmp_path / "out"), "--config", str(cfg), "--n-procs", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "execution: Input should be a valid" in res.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"reorient:\n  orientation: R\xffS\n", "not UTF-8 text"),
        ("execution: {n_procs: 2}\nexecution: {}\n", "execution: duplicate key"),
        ("a: &x 1\nb: *x\n", "a: anchor &x: anchors and aliases"),
        ("brain_extraction:\n  volume_range_ml: [.nan, .inf]\n", "volume_range_ml.0: Input"),
        ("execution:\n  n_procs: 100000000000000000000000\n", "execution.n_procs: Input"),
        ("labels:\n  subject_map: {a: 2020-02-30}\n", "labels.subject_map.a: day is out"),
        ("brain_extraction:\n  parameters: {syn_iterations: [1, .inf, 1]}\n", "syn_iterations"),
    ],
)
def test_cli_hostile_config_exit_2(tmp_path, capsys, text, expected):
    assert expected in _cli_exit(tmp_path, capsys, text)


# issue 22: no hangs (a FIFO, a device, a backtracking rule), numbers that are numbers,
# template names that are names


def _config_cli(path: Path) -> subprocess.CompletedProcess:
    """``anatprep config --config path`` in a child: a hang fails the test, not the suite."""
    cmd = [sys.executable, "-m", "anatprep.pipelines.cli", "config", "--config", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_config_fifo_refused_at_once(tmp_path):
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    res = _config_cli(fifo)
    assert res.returncode == 2, res.stderr
    assert f"config {fifo} is a FIFO, not a regular file" in res.stderr
    assert "Traceback" not in res.stderr


def test_config_device_refused(tmp_path):
    with pytest.raises(ConfigError, match="config /dev/zero is a character device, not a regu"):
        load_config("/dev/zero")


def test_backtracking_rule_refused_at_load_naming_the_rule(tmp_path):
    message = _refused(tmp_path, "series:\n  rules:\n    T2w:\n      description: ['(a|aa)*$']\n")
    assert "series.rules.T2w.description: Value error, regular expression '(a|aa)*$' " in message
    assert "backtracks catastrophically" in message


@pytest.mark.slow
def test_issue_rule_does_not_stall_classification(tmp_path):
    """The issue's rule against its text: Python's re backtracks for hours; the rule engine
    either decides at once or refuses it (here it decides: no match)."""
    code = textwrap.dedent(
        """
        from anatprep.interfaces.dicomio.table import SeriesEntry
        from anatprep.pipelines.config import validate_config
        from anatprep.pipelines.rules import classify
        cfg = validate_config({"series": {"rules": {"T1w": {"description": ["^(a+)+$"]}}}})
        print(repr(classify(SeriesEntry(id="s", series_description="a" * 34 + "!"), cfg)))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "''"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("execution:\n  n_procs: true\n", "execution.n_procs"),
        ("execution:\n  n_procs: '2'\n", "execution.n_procs"),
        ("execution:\n  memory_gb: true\n", "execution.memory_gb"),
        ("execution:\n  slurm: {throttle: true}\n", "execution.slurm.throttle"),
        ("conversion:\n  compression_level: false\n", "conversion.compression_level"),
        ("brain_extraction:\n  volume_range_ml: [true, 2000]\n", "volume_range_ml"),
        ("labels:\n  subject_level: true\n", "labels.subject_level"),
        ("series:\n  rules:\n    T1w: {min_slices: true}\n", "T1w.min_slices"),
    ],
)
def test_booleans_and_text_are_not_numbers(tmp_path, text, key):
    assert f"{key}: Value error, must be a number (true, false and quoted text" in _refused(
        tmp_path, text
    )


@pytest.mark.parametrize("name", ["../../../../etc", "/etc", "OASIS30ANTs/../x", "a b"])
def test_template_is_a_name_not_a_path(tmp_path, name):
    message = _refused(tmp_path, f"brain_extraction:\n  template: '{name}'\n")
    assert "brain_extraction.template: Value error, must be robex, custom or a TemplateFlow" in (
        message
    )


def test_cli_n_procs_true_exit_2(tmp_path, capsys):
    assert "execution.n_procs: Value error, must be a number" in _cli_exit(
        tmp_path, capsys, "execution: {n_procs: true}\n"
    )
