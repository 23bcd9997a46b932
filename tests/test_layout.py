"""The package layout: one ``anatprep`` namespace over the two code folders, and imports that
only point downwards (cli -> config / execution -> workflows -> interfaces -> libraries).

The layers, from the top:

- ``anatprep.pipelines.cli``: the command line; nothing imports it;
- the rest of ``anatprep.pipelines`` (config, execution, rules, the SLURM plugins, the demo);
- ``anatprep.pipelines.workflows``: graph factories; they import no execution-level module;
- the nipype interfaces (``anatprep.interfaces.<module>`` defining a ``SimpleInterface``);
- the libraries they wrap (``dicomio``, ``brainmask``, atomic/BIDS io, templates,
  orientation): plain Python, no nipype, nothing above them.
"""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"anatprep.interfaces": REPO / "interfaces", "anatprep.pipelines": REPO / "pipelines"}


def _modules() -> dict[str, Path]:
    """Every module of the two code folders by its dotted name in the namespace."""
    out: dict[str, Path] = {}
    for prefix, root in FOLDERS.items():
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((prefix, *parts))] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """The absolute names a module imports (relative imports resolved)."""
    return _imports_of(ast.parse(path.read_text(), str(path)), name, path)


def _imports_of(tree: ast.AST, name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _is_interface(path: Path) -> bool:
    return "SimpleInterface" in path.read_text() and path.parent == FOLDERS[
        "anatprep.interfaces"
    ]


MODULES = _modules()
INTERFACES = {n for n, p in MODULES.items() if _is_interface(p)}
LIBRARIES = {n for n in MODULES if n.startswith("anatprep.interfaces") and n not in INTERFACES}
WORKFLOWS = {n for n in MODULES if n.startswith("anatprep.pipelines.workflows")}
EXECUTION = {
    n for n in MODULES if n.startswith("anatprep.pipelines") and n not in WORKFLOWS
} - {"anatprep.pipelines"}


def _hits(modules: set[str], forbidden) -> list[str]:
    return sorted(
        f"{m} imports {imp}"
        for m in modules
        for imp in _imports(m, MODULES[m])
        if forbidden(imp)
    )


def test_the_layers_are_not_empty():
    assert {"anatprep.interfaces.convert", "anatprep.interfaces.brain_extraction"} <= INTERFACES
    assert {"anatprep.interfaces.dicomio.index", "anatprep.interfaces.atomic"} <= LIBRARIES
    assert "anatprep.pipelines.execution" in EXECUTION


def test_libraries_import_no_nipype_and_nothing_above_them():
    def above(imp: str) -> bool:
        return (
            imp.split(".")[0] == "nipype"
            or imp.startswith("anatprep.pipelines")
            or any(imp == i or imp.startswith(i + ".") for i in INTERFACES)
        )

    assert _hits(LIBRARIES, above) == []


def test_interfaces_import_nothing_from_pipelines():
    assert _hits(INTERFACES, lambda imp: imp.startswith("anatprep.pipelines")) == []


def test_workflows_import_no_execution_level_module():
    upper = EXECUTION - {"anatprep.pipelines.config", "anatprep.pipelines.rules"}
    assert _hits(WORKFLOWS, lambda imp: any(imp.startswith(u) for u in upper)) == []


def _module_imports(name: str, path: Path) -> set[str]:
    """The anatprep modules a module imports anywhere: at load time, inside function bodies
    (run later, but a circle all the same: the two modules are one job split in the wrong
    place) and under ``if TYPE_CHECKING`` (the types one module needs of the other)."""
    found = set()
    for imp in _imports(name, path):
        while imp and imp not in MODULES:
            imp = imp.rpartition(".")[0]
        if imp and imp != name:
            found.add(imp)
    return found


def test_no_import_cycles():
    """No module imports (directly or not, anywhere in it) one that imports it back.  A circle
    is broken by moving the piece both need down into a module of its own (the open DICOM
    file and UnusableFile are ``dicomio.dicom_file``, below ``headers`` and the vendor
    modules; the environment records are ``pipelines.run_environment``, below
    ``provenance`` and ``methods``)."""
    graph = nx.DiGraph()
    for name, path in MODULES.items():
        graph.add_node(name)
        graph.add_edges_from((name, dep) for dep in _module_imports(name, path))
    cycles = [c for c in nx.simple_cycles(graph) if len(c) > 1 or graph.has_edge(c[0], c[0])]
    assert cycles == []


def test_tests_import_no_benchmark():
    """Benchmarks measure and may change freely; what a test needs lives in ``tests/`` (e.g.
    ``stress_heads.py``) or in the package."""
    found = sorted(
        f"{path.name} imports {imp}"
        for path in (REPO / "tests").rglob("*.py")
        for imp in _imports("x", path)
        if imp.split(".")[0] == "benchmarks"
    )
    assert found == []


def test_nothing_imports_the_command_line():
    everyone = set(MODULES) - {"anatprep.pipelines.cli"}
    assert _hits(everyone, lambda imp: imp.startswith("anatprep.pipelines.cli")) == []


def test_code_imports_only_through_the_namespace():
    """No module, test or benchmark imports the folders by their bare names (installed, those
    would be top-level packages called ``interfaces`` and ``pipelines``)."""
    files = {**MODULES}
    for folder in ("tests", "benchmarks"):
        files.update({str(p): p for p in (REPO / folder).rglob("*.py")})
    bare = sorted(
        f"{name} imports {imp}"
        for name, path in files.items()
        for imp in _imports(name if name in MODULES else "x", path)
        if imp.split(".")[0] in ("interfaces", "pipelines")
    )
    assert bare == []


def test_loading_a_config_imports_no_workflow_or_imaging_library():
    """Checking a config (``anatprep convert`` and every command start with it) stays light:
    no nipype, and no nibabel or pydicom (an axis code is checked in plain Python)."""
    code = (
        "import sys, anatprep.pipelines.config as c; c.Config(); "
        "print(*sorted({'nipype', 'nibabel', 'pydicom'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


#: folders installed as package data only (no modules): the example configs
DATA_PACKAGES = {"anatprep.configs": "configs"}


def test_every_package_folder_is_installed():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    folders = {"anatprep", *DATA_PACKAGES} | {
        n for n, p in MODULES.items() if p.name == "__init__.py"
    }
    assert listed == folders
    mapping = dict(
        line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines()
    )
    assert mapping == {"anatprep": "anatprep", "anatprep.interfaces": "interfaces",
                       "anatprep.pipelines": "pipelines", **DATA_PACKAGES}  # fmt: skip
    assert cfg["options.package_data"]["anatprep.configs"] == "*.yaml"


def test_version_is_the_installed_distribution_version():
    import anatprep
    import anatprep.interfaces

    assert anatprep.__version__ == importlib.metadata.version("anatprep")
    assert Path(anatprep.interfaces.__file__).parent == REPO / "interfaces"


def test_one_vendor_rule():
    """Only :mod:`anatprep.interfaces.dicomio.vendors` reads the Manufacturer tag to decide
    the maker (a second reading would be a second, drifting rule)."""
    readers = sorted(
        name for name, path in MODULES.items()
        if 'get("Manufacturer")' in path.read_text()
        and name != "anatprep.interfaces.dicomio.vendors"
    )  # fmt: skip
    assert readers == []
