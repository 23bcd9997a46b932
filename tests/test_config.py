"""Config: defaults equal configs/default.yaml; bad configs rejected with the key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anatprep.pipelines.config import Config, ConfigError, dump_config, load_config

REPO = Path(__file__).resolve().parents[1]


def test_default_yaml_equals_code_defaults():
    shipped = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    assert shipped == Config().model_dump(mode="json")
    assert load_config(REPO / "configs" / "default.yaml") == Config()


def test_every_shipped_config_is_valid():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)


def test_dump_round_trips(tmp_path):
    cfg = load_config(None, {"reorient.orientation": "lpi", "execution.n_procs": 3})
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert cfg.reorient.orientation == "LPI"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reorient:\n  orientaton: RAS\n", r"reorient\.orientaton: unknown key"),
        ("brain_extracton: {}\n", r"brain_extracton: unknown key"),
        ("execution:\n  n_procs: many\n", r"execution\.n_procs: .*integer.*'many'"),
        ("execution:\n  n_procs: 0\n", r"execution\.n_procs: .*greater than or equal to 1"),
        (
            "execution:\n  plugin: Condor\n",
            r"execution\.plugin: must be one of 'MultiProc', 'Linear', 'SLURM', 'SLURMGraph' "
            r"or 'SLURMArray'",
        ),
        ("reorient:\n  orientation: RRS\n", r"reorient\.orientation: .*each axis once"),
        ("brain_extraction:\n  quality: best\n", r"brain_extraction\.quality: .*'fast'"),
        (
            "brain_extraction:\n  parameters:\n    prior_threshold: high\n",
            r"brain_extraction: .*prior_threshold must be like 0\.5",
        ),
        ("brain_extraction:\n  template: custom\n", r"needs template_head and template_mask"),
        (
            "series:\n  rules:\n    T1w:\n      description: ['(unclosed']\n",
            r"series\.rules\.T1w\.description: .*invalid regular expression",
        ),
        ("labels:\n  subject_level: 1\n  session_level: 1\n", r"session_level must differ"),
        ("conversion:\n  max_image_gb: 0\n", r"conversion\.max_image_gb: .*greater than 0"),
        ("- a\n- b\n", r"mapping at the top level"),
        ("a: [\n", r"not valid YAML"),
    ],
)
def test_bad_config_rejected_with_key_path(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("brain_extraction: {qualty: fast}\n",
         "brain_extraction.qualty: unknown key; did you mean `quality`?"),
        ("brain_extractoin: {}\n",
         "brain_extractoin: unknown key; did you mean `brain_extraction`?"),
        ("series: {rules: {T1w: {descripton: [a]}}}\n",
         "series.rules.T1w.descripton: unknown key; did you mean `description`?"),
        ("execution: {container: {engine: podman, image: x, bindz: []}}\n",
         "execution.container.bindz: unknown key; did you mean `binds`?"),
    ],
)  # fmt: skip
def test_a_key_close_to_an_allowed_one_gets_a_suggestion(tmp_path, text, line):
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert line in str(info.value)


def test_only_a_close_key_is_suggested():
    with pytest.raises(ConfigError) as info:
        load_config(None, {"execution.xyz": 1, "execution.n_prcs": 2})
    assert "execution.xyz: unknown key (got 1)" in str(info.value)
    assert "execution.n_prcs: unknown key; did you mean `n_procs`? (got 2)" in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
