"""The example configs shipped with the package, and the file a ``--config`` value names.

The repository's ``configs/*.yaml`` are installed as the package data of ``anatprep.configs``
(``setup.cfg``), so an installed anatprep has them too.  ``--config`` takes a file, or a
shipped config by its name (``fast-conversion-only``, ``.yaml`` optional): a file that
exists wins, and a value with a folder in it is always a file.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .config import ConfigError

PACKAGE = "anatprep.configs"


def shipped_configs() -> dict[str, Path]:
    """Each shipped config's name (its file name without ``.yaml``) and its file."""
    # installed as files (a wheel unpacked by pip, or the checkout), never inside a zip
    entries = resources.files(PACKAGE).iterdir()
    files = sorted(Path(str(e)) for e in entries if e.name.endswith(".yaml"))
    return {path.stem: path for path in files}


def config_file(value: str) -> Path:
    """The config file ``--config value`` names (ConfigError when it names neither a file
    nor a shipped config)."""
    path = Path(value)
    if path.exists() or os.sep in value:
        return path
    shipped = shipped_configs()
    name = value.removesuffix(".yaml")
    if name in shipped:
        return shipped[name]
    raise ConfigError(
        f"config {value}: no such file, and no shipped config of that name (shipped: "
        f"{', '.join(shipped)}; `anatprep config --list` shows them)"
    )


def summary(path: Path) -> str:
    """The first sentence of a config file's opening comment ('' without one)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip()
            return text.split(". ")[0].rstrip(".") + "."
        if line.strip():
            break
    return ""
