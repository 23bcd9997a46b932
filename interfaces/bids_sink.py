"""Place finished files under their final BIDS names, atomically, with optional sidecars."""

from __future__ import annotations

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
    sidecars = traits.List(traits.Dict, desc="JSON written beside each output ({} for none)")
    sidecar_notes = traits.List(
        traits.Dict, desc="values known at run time, merged over ``sidecars`` (same order)"
    )
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

    Inputs: ``in_files`` (``''`` entries are skipped), ``out_files``, ``sidecars`` and
    ``sidecar_notes`` (optional), ``base_dir``.
    Outputs: ``out_files``.  Refuses any destination outside ``base_dir``.
    """

    input_spec = _BidsSinkInputSpec
    output_spec = _BidsSinkOutputSpec

    def _run_interface(self, runtime):
        ins, outs = self.inputs.in_files, self.inputs.out_files
        if len(ins) != len(outs):
            raise ValueError(f"{len(ins)} inputs but {len(outs)} destinations")
        sidecars = list(self.inputs.sidecars) if self.inputs.sidecars else [{}] * len(outs)
        for k, notes in enumerate(self.inputs.sidecar_notes or []):
            if notes and k < len(sidecars) and sidecars[k]:
                sidecars[k] = {**sidecars[k], **notes}
        base = Path(self.inputs.base_dir).resolve()
        written = []
        for src, dst, meta in zip(ins, outs, sidecars, strict=True):
            if not src:  # an optional output this run did not produce
                continue
            if not Path(src).is_file():
                raise FileNotFoundError(f"BidsSink: input file {src} does not exist")
            dst_path = Path(dst).resolve()
            if base not in dst_path.parents:
                raise ValueError(f"refusing to write {dst_path} outside {base}")
            copy_file(src, dst_path)
            src_stem, dst_stem = _stem(Path(src)), _stem(dst_path)
            for ext in self.inputs.companions:  # e.g. a DWI's gradient tables
                companion = src_stem.with_name(src_stem.name + ext)
                if companion.is_file():
                    copy_file(companion, dst_stem.with_name(dst_stem.name + ext))
            if meta:
                name = dst_path.name.split(".")[0] + ".json"
                write_json(meta, dst_path.with_name(name))
            written.append(str(dst_path))
        self._results["out_files"] = written
        return runtime


def _stem(path: Path) -> Path:
    """``a/b.nii.gz`` -> ``a/b``."""
    return path.with_name(path.name.split(".")[0])
