"""Place finished files under their final BIDS names, atomically, with their sidecars.

:class:`BidsSink` places a list of files under given paths (the converted raw series);
:class:`DerivativesDataSink` (niworkflows' idea) places one derivative under the name built
from its BIDS entities by :func:`bids_name`, with its sidecar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from .atomic import copy_file, write_json


class _BidsSinkInputSpec(BaseInterfaceInputSpec):
    in_files = traits.List(
        traits.Str, mandatory=True, desc="files to place; '' = not produced this time, skipped"
    )
    out_files = traits.List(traits.Str, mandatory=True, desc="absolute final paths, same order")
    base_dir = traits.Str(mandatory=True, desc="every output must lie inside this folder")
    companions = traits.List(
        traits.Str,
        [".bval", ".bvec"],
        usedefault=True,
        desc="files beside an input image with the same stem and these extensions go along",
    )


class _BidsSinkOutputSpec(TraitedSpec):
    out_files = traits.List(File(exists=True))


class BidsSink(SimpleInterface):
    """Copy each input to its final path (write to a temporary name, then rename).

    Inputs: ``in_files`` (``''`` entries are skipped), ``out_files``, ``base_dir``.
    Outputs: ``out_files``.  Refuses any destination outside ``base_dir``.  The files of
    one run are placed all or none (:func:`place_group`): a converted series' image and
    sidecar go to one sink.
    """

    input_spec = _BidsSinkInputSpec
    output_spec = _BidsSinkOutputSpec

    def _run_interface(self, runtime):
        ins, outs = self.inputs.in_files, self.inputs.out_files
        if len(ins) != len(outs):
            raise ValueError(f"{len(ins)} inputs but {len(outs)} destinations")
        base = Path(self.inputs.base_dir).resolve()
        written: list[str] = []
        copies: list[tuple[Path, Path]] = []
        for src, dst in zip(ins, outs, strict=True):
            if not src:  # an optional output this run did not produce
                continue
            if not Path(src).is_file():
                raise FileNotFoundError(f"BidsSink: input file {src} does not exist")
            dst_path = Path(dst).resolve()
            if base not in dst_path.parents:
                raise ValueError(f"refusing to write {dst_path} outside {base}")
            src_stem, dst_stem = _stem(Path(src)), _stem(dst_path)
            copies.append((Path(src), dst_path))
            for ext in self.inputs.companions:  # e.g. a DWI's gradient tables
                companion = src_stem.with_name(src_stem.name + ext)
                pair = (companion, dst_stem.with_name(dst_stem.name + ext))
                if companion.is_file() and pair not in copies:
                    copies.append(pair)
            written.append(str(dst_path))
        place_group(copies, [])
        self._results["out_files"] = written
        return runtime


def place_group(copies: list[tuple[Path, Path]], sidecars: list[tuple[Mapping, Path]]) -> None:
    """Copy each ``(source, destination)``, then write each ``(metadata, path)`` sidecar.

    All or nothing: the files of one call belong together (an image, its JSON sidecar, its
    gradient tables).  When any of them cannot be placed (a full disk), those already placed
    are removed before the error goes on, so no image is left without its sidecar (an earlier
    run's files of these names go too; the next run places them again)."""
    try:
        for src, dst in copies:
            copy_file(src, dst)
        for meta, path in sidecars:
            write_json(dict(meta), path)
    except BaseException:
        for placed in [dst for _, dst in copies] + [path for _, path in sidecars]:
            placed.unlink(missing_ok=True)
        raise


#: the derivative entities :func:`bids_name` writes, in their order in a file name (after
#: the source file's own: ``sub``, ``ses``, ``acq``, ``run``...)
ENTITY_ORDER = ("from", "to", "mode", "label", "desc")
_ALNUM = re.compile(r"[A-Za-z0-9]+")


def bids_name(source: str, entities: Mapping[str, str], suffix: str, extension: str) -> str:
    """A derivative's file name: the source file's entities (its name without suffix and
    extension), then ``entities`` in :data:`ENTITY_ORDER`, ``_<suffix>``, ``extension``.

    ``bids_name("sub-01_ses-a_T1w.nii.gz", {"desc": "brain"}, "mask", ".nii.gz")`` gives
    ``sub-01_ses-a_desc-brain_mask.nii.gz``.  Raises :class:`ValueError` on an entity not in
    :data:`ENTITY_ORDER` or already in the source's name, on a value or suffix that is not
    letters and digits, or on an extension not starting with a dot.
    """
    parts = Path(source).name.split(".")[0].split("_")
    if "-" not in parts[-1]:  # the source's suffix (T1w)
        parts = parts[:-1]
    if not parts or not parts[0].startswith("sub-"):
        raise ValueError(f"{source}: not a BIDS file name (sub-<label>_...)")
    unknown = sorted(set(entities) - set(ENTITY_ORDER))
    if unknown:
        raise ValueError(f"unknown BIDS entities {unknown} (known: {', '.join(ENTITY_ORDER)})")
    present = {part.split("-", 1)[0] for part in parts} & set(entities)
    if present:
        raise ValueError(f"{source} already has the entities {sorted(present)}")
    for key in ENTITY_ORDER:
        if key in entities:
            if not _ALNUM.fullmatch(entities[key]):
                raise ValueError(f"BIDS entity {key}-{entities[key]!r}: letters and digits only")
            parts.append(f"{key}-{entities[key]}")
    if not _ALNUM.fullmatch(suffix):
        raise ValueError(f"BIDS suffix {suffix!r}: letters and digits only")
    if not re.fullmatch(r"(\.[A-Za-z0-9]+)+", extension):
        raise ValueError(f"extension {extension!r} must be like .nii.gz")
    return "_".join([*parts, suffix]) + extension


class _DerivativesDataSinkInputSpec(BaseInterfaceInputSpec):
    in_file = traits.Str(mandatory=True, desc="file to place; '' = not produced this time")
    base_dir = traits.Str(mandatory=True, desc="the derivatives dataset's root folder")
    source_file = traits.Str(
        mandatory=True,
        desc="the raw file it derives from, relative to the raw dataset's root "
        "(sub-<label>[/ses-<label>]/<datatype>/<name>): its folders and name's entities",
    )
    datatype = traits.Str("anat", usedefault=True, desc="folder under the subject: anat, figures")
    entities = traits.Dict(traits.Str, traits.Str, desc="derivative entities (desc, label...)")
    suffix = traits.Str(mandatory=True, desc="BIDS suffix (T1w, mask, probseg, xfm)")
    extension = traits.Str(mandatory=True, desc="with the dot: .nii.gz, .mat, .svg")
    metadata = traits.Dict(traits.Str, traits.Any, desc="the sidecar (none when empty)")
    meta_dict = traits.Dict(
        traits.Str, traits.Any, desc="sidecar values known at run time, merged over ``metadata``"
    )
    allow_absent = traits.Bool(
        False, usedefault=True, desc="an optional output: '' writes nothing and is no error"
    )


class _DerivativesDataSinkOutputSpec(TraitedSpec):
    out_file = traits.Str(desc="the placed file; '' when absent")
    out_meta = traits.Str(desc="its JSON sidecar; '' when none")


class DerivativesDataSink(SimpleInterface):
    """Copy one derivative to ``base_dir/<subject folders>/<datatype>/<bids_name>`` (written
    to a temporary name, then renamed) with its sidecar, ``metadata`` updated by
    ``meta_dict`` (keys in that order), beside it when not empty.

    Inputs: ``in_file``, ``base_dir``, ``source_file``, ``datatype``, ``entities``,
    ``suffix``, ``extension``, ``metadata``, ``meta_dict``, ``allow_absent``.
    Outputs: ``out_file``, ``out_meta`` (``''`` when nothing was written).  An absent
    ``in_file`` (``''``) writes no file and no sidecar, and is an error unless
    ``allow_absent``.  Refuses any destination outside ``base_dir``.
    """

    input_spec = _DerivativesDataSinkInputSpec
    output_spec = _DerivativesDataSinkOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        name = bids_name(i.source_file, i.entities or {}, i.suffix, i.extension)
        self._results.update(out_file="", out_meta="")
        if not i.in_file:
            if not i.allow_absent:
                raise ValueError(f"DerivativesDataSink: no input file for {name}")
            return runtime
        if not Path(i.in_file).is_file():
            raise FileNotFoundError(f"DerivativesDataSink: input file {i.in_file} does not exist")
        source = Path(i.source_file)
        if source.is_absolute() or len(source.parts) < 3:
            raise ValueError(f"{i.source_file}: give the path relative to the raw dataset")
        base = Path(i.base_dir).resolve()
        dst = (base / source.parent.parent / i.datatype / name).resolve()
        if base not in dst.parents:
            raise ValueError(f"refusing to write {dst} outside {base}")
        meta = {**(i.metadata or {}), **(i.meta_dict or {})}
        sidecar = dst.with_name(dst.name.split(".")[0] + ".json")
        place_group([(Path(i.in_file), dst)], [(meta, sidecar)] if meta else [])
        self._results.update(out_file=str(dst), out_meta=str(sidecar) if meta else "")
        return runtime


def _stem(path: Path) -> Path:
    """``a/b.nii.gz`` -> ``a/b``."""
    return path.with_name(path.name.split(".")[0])
