"""anatprep: DICOM to BIDS, reorientation and ANTs brain extraction as nipype workflows.

One import namespace over the repository's two code folders: ``anatprep.interfaces`` is the
top-level ``interfaces/`` folder (nipype interfaces and the libraries they wrap) and
``anatprep.pipelines`` is ``pipelines/`` (workflow factories, config, execution, command
line).  Installs (editable or not) map them through ``package_dir`` in ``setup.cfg``.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"
#: where the code lives (dataset_description.json GeneratedBy CodeURL, the methods text)
CODE_URL = "https://github.com/anatprep/anatprep"

# Run from a source checkout without an install (``python -m anatprep.pipelines.cli`` in the
# repository), this folder has no ``interfaces``/``pipelines`` beside its ``__init__``: they
# are its parent's top-level folders, so the checkout's parent joins the package path.
_here = Path(__file__).resolve().parent
if not (_here / "interfaces").is_dir() and (_here.parent / "interfaces" / "__init__.py").is_file():
    __path__.append(str(_here.parent))
