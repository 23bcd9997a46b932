"""Our nipype plugins override and call private methods of nipype's; nipype may change those
in any release.  :data:`WRITTEN_FOR` records, in one place, the signature of each such method
our code was written against; a nipype whose methods differ fails here, not in a run.  The
nipype requirement of ``setup.cfg`` allows only the minor version they were checked on, and
the lock files pin a version inside it."""

from __future__ import annotations

import configparser
import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from anatprep.pipelines.multiproc import SettlingMultiProcPlugin
from anatprep.pipelines.slurm.plugins import SlurmGraphSubmitPlugin, SlurmNodesPlugin

REPO = Path(__file__).resolve().parents[1]
OURS = (SettlingMultiProcPlugin, SlurmNodesPlugin, SlurmGraphSubmitPlugin)

#: the nipype minor version the signatures below are those of
NIPYPE_MINOR = (1, 11)
#: (our plugin, nipype method it overrides or calls) -> the signature it was written for
WRITTEN_FOR = {
    (SettlingMultiProcPlugin, "__init__"): "(self, plugin_args=None)",
    (SettlingMultiProcPlugin, "_report_crash"): "(self, node, result=None)",
    (SettlingMultiProcPlugin, "_submit_job"): "(self, node, updatehash=False)",
    (SettlingMultiProcPlugin, "_async_callback"): "(self, args)",
    (SettlingMultiProcPlugin, "_send_procs_to_workers"): "(self, updatehash=False, graph=None)",
    (SettlingMultiProcPlugin, "_local_hash_check"): "(self, jobid, graph)",
    (SettlingMultiProcPlugin, "_clean_queue"): "(self, jobid, graph, result=None)",
    (SettlingMultiProcPlugin, "_task_finished_cb"): "(self, jobid, cached=False)",
    (SettlingMultiProcPlugin, "_remove_node_dirs"): "(self)",
    (SlurmNodesPlugin, "__init__"): "(self, **kwargs)",
    (SlurmNodesPlugin, "_is_pending"): "(self, taskid)",
    (SlurmNodesPlugin, "_submit_job"): "(self, node, updatehash=False)",
    (SlurmNodesPlugin, "_submit_batchtask"): "(self, scriptfile, node)",
    (SlurmNodesPlugin, "_get_result"): "(self, taskid)",
    (SlurmNodesPlugin, "run"): "(self, graph, config, updatehash=False)",
    (SlurmGraphSubmitPlugin, "__init__"): "(self, **kwargs)",
    (SlurmGraphSubmitPlugin, "_submit_graph"): "(self, pyfiles, dependencies, nodes)",
    (SlurmGraphSubmitPlugin, "_get_args"): "(self, node, keywords)",
}


def _nipype_method(ours: type, name: str):
    """The method ``name`` of the first nipype class in ``ours``' MRO that defines it."""
    for base in ours.__mro__:
        if base.__module__.startswith("nipype.") and name in vars(base):
            return vars(base)[name]
    raise AttributeError(f"no nipype base of {ours.__name__} defines {name}")


def _id(value) -> str:
    return getattr(value, "__name__", str(value))


@pytest.mark.parametrize(("ours", "name"), list(WRITTEN_FOR), ids=_id)
def test_nipype_method_has_the_signature_we_wrote_for(ours, name):
    assert str(inspect.signature(_nipype_method(ours, name))) == WRITTEN_FOR[ours, name]


def test_every_override_of_a_nipype_method_is_recorded():
    overridden = {
        (ours, name)
        for ours in OURS
        for own in ours.__mro__
        if own.__module__.startswith("anatprep.")
        for name, value in vars(own).items()
        if callable(value)
        and any(b.__module__.startswith("nipype.") and name in vars(b) for b in ours.__mro__)
    }
    assert overridden - set(WRITTEN_FOR) == set()


def _requirement() -> Requirement:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options"]["install_requires"].split()
    return next(r for r in map(Requirement, lines) if r.name == "nipype")


def test_setup_cfg_allows_only_the_minor_version_written_for():
    spec = _requirement().specifier
    major, minor = NIPYPE_MINOR
    assert spec.contains(f"{major}.{minor}.0")
    assert not spec.contains(f"{major}.{minor + 1}.0")
    assert not spec.contains(f"{major}.{minor - 1}.99")


@pytest.mark.parametrize("lock", ["runtime.txt", "test.txt"])
def test_the_locked_nipype_is_in_the_allowed_range(lock):
    pinned = re.search(r"^nipype==(\S+)", (REPO / "requirements" / lock).read_text(), re.M)
    assert pinned is not None
    assert _requirement().specifier.contains(pinned.group(1))


def test_the_installed_nipype_is_in_the_allowed_range():
    assert _requirement().specifier.contains(importlib.metadata.version("nipype"))
