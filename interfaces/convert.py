"""Nipype interface: convert one series of the series table to NIfTI + BIDS JSON sidecar.

The node's input is that series' own entry (its files with their fingerprints, the geometry
decided at indexing), so nipype's hash of the node changes exactly when one of its files or
the decision about it changes: an edited file reruns its series; a new subject, or another
series changing, reruns nothing here.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from .atomic import DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL
from .dicomio.limits import ceiling_of
from .dicomio.reference import Converter
from .dicomio.series_to_nifti import convert_entry
from .dicomio.sidecar import Deidentify
from .dicomio.table import SeriesEntry


class _DicomToNiftiInputSpec(BaseInterfaceInputSpec):
    series_entry = traits.Str(
        mandatory=True,
        desc="the series' entry of the series table as canonical JSON (files, their "
        "fingerprints, geometry): SeriesEntry.to_json()",
    )
    out_stem = traits.Str("series", usedefault=True, desc="output file name without extension")
    compression = traits.Range(
        MIN_LEVEL, MAX_LEVEL, DEFAULT_LEVEL, usedefault=True, desc="zlib deflate level"
    )

    verify = traits.Bool(False, usedefault=True, desc="compare with dcm2niix, record in sidecar")
    converter = traits.Enum(*get_args(Converter), usedefault=True, desc="conversion backend")
    # no default: left unset in standard mode, so the node's hash (and the cache of a work
    # dir made before this input existed) stays as it was
    deidentify = traits.Enum(
        *get_args(Deidentify), desc="strict: no free-text description in the sidecar or messages"
    )
    # unset: half the memory of the machine the node runs on (and the node's hash as before)
    max_image_gb = traits.Float(desc="the most memory one image may take (GiB)")


class _DicomToNiftiOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="NIfTI-1 image (.nii.gz)")
    out_json = File(exists=True, desc="BIDS JSON sidecar")


class DicomToNifti(SimpleInterface):
    """Convert one series to NIfTI with a BIDS sidecar.

    Inputs: ``series_entry`` (``SeriesEntry.to_json()``), ``out_stem``, ``compression``,
    ``verify``, ``converter``, ``deidentify`` (unset: standard).
    Outputs: ``out_file`` (``.nii.gz``, laid out like dcm2niix's), ``out_json``.
    Fails with a message naming the series when its files cannot form one volume.

    Rule: a work dir made by an earlier anatprep keeps its conversion nodes cached.  nipype
    finds a finished node by the hash of its set inputs, so these input names, and what each
    value means, stay as they are; a new input gets no default and is left unset where it
    does not apply (as ``deidentify`` is in standard mode).  This module keeps its path too:
    a node's result file pickles the class by it.  ``tests/test_work_dir_compatibility.py``
    pins the names, the hash of a canonical input set and the path.
    """

    input_spec = _DicomToNiftiInputSpec
    output_spec = _DicomToNiftiOutputSpec

    def _run_interface(self, runtime):
        entry = SeriesEntry.from_json(self.inputs.series_entry)
        ceiling = self.inputs.max_image_gb if isdefined(self.inputs.max_image_gb) else None
        with ceiling_of(ceiling):
            nii, js = self._convert(entry, runtime)
        self._results["out_file"] = str(nii)
        self._results["out_json"] = str(js)
        return runtime

    def _convert(self, entry: SeriesEntry, runtime) -> tuple[Path, Path]:
        return convert_entry(
            entry,
            Path(runtime.cwd) / self.inputs.out_stem,
            self.inputs.compression,
            verify=self.inputs.verify,
            converter=self.inputs.converter,
            deidentify=self.inputs.deidentify if isdefined(self.inputs.deidentify) else "standard",
        )

