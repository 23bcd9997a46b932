"""A work dir made by an earlier anatprep stays usable: its finished nodes are reused.

Two things decide it, and each is pinned here:

- nipype finds a finished node by the hash of its interface's set inputs (unset inputs are
  left out), so the conversion node's input names and what a canonical input set hashes to
  must not change (a new input is added without a default, left unset where it does not
  apply, as ``deidentify`` and ``max_image_gb`` were);
- a finished node's result file (``result_<node>.pklz``) pickles its interface class and
  output spec by module path: a renamed or moved interface module makes old results
  unreadable, and nipype then hands the next node empty outputs instead of rerunning.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from nipype.interfaces.base import BaseInterface

import anatprep.interfaces
from anatprep.interfaces.convert import DicomToNifti

#: the conversion node's inputs, as work dirs hash them
DICOM_TO_NIFTI_INPUTS = ["compression", "converter", "deidentify", "max_image_gb", "out_stem",
                         "series_entry", "verify"]  # fmt: skip
#: a series' entry as the node is given it (its JSON is the node's input, verbatim)
CANONICAL_ENTRY = '{"id": "sn005-1a2b3c4d", "files": ["/dicom/IM0001.dcm"]}'

#: every nipype interface of the package, by the module its results are pickled under
INTERFACE_MODULES = {
    "AntsBrainExtraction": "anatprep.interfaces.brain_extraction",
    "BidsSink": "anatprep.interfaces.bids_sink",
    "DerivativesDataSink": "anatprep.interfaces.bids_sink",
    "DicomToNifti": "anatprep.interfaces.convert",
    "MaskReport": "anatprep.interfaces.qc",
    "Reorient": "anatprep.interfaces.reorient",
}


def test_the_conversion_node_keeps_its_input_names():
    assert sorted(DicomToNifti().inputs.copyable_trait_names()) == DICOM_TO_NIFTI_INPUTS


def test_the_conversion_node_hashes_a_canonical_input_set_as_before():
    inputs = DicomToNifti(series_entry=CANONICAL_ENTRY, out_stem="sub-01_T1w").inputs
    hashed, digest = inputs.get_hashval(hash_method="timestamp")
    assert [name for name, _ in hashed] == [
        "compression", "converter", "out_stem", "series_entry", "verify"
    ]  # fmt: skip
    assert digest == "dd13189d3d0bc2a4599969b433fa961e"
    inputs.deidentify = "strict"
    assert inputs.get_hashval(hash_method="timestamp")[1] == "711b26155f3bd52b47ddc896bd4ecff5"


def _interfaces() -> dict[str, str]:
    found = {}
    for info in pkgutil.iter_modules(anatprep.interfaces.__path__):
        module = importlib.import_module(f"anatprep.interfaces.{info.name}")
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseInterface)
                and obj.__module__ == module.__name__
            ):
                found[name] = module.__name__
    return found


def test_interface_modules_keep_their_paths():
    assert _interfaces() == INTERFACE_MODULES
