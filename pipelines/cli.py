"""``anatprep`` command line: run, demo, convert, config, provenance.

Heavy modules (nipype, ANTs) are imported only by the commands that need them, so
``anatprep convert`` starts as fast as a plain converter.  Options that are also config
settings take their choices, defaults and help from the config's fields.

Exit codes: 0 success; 1 internal error; 2 bad config, arguments or paths, or OUTPUT or the
work dir in use by another run; 3 no usable data; 4 some subjects or series failed (the
others completed; failures listed with crash files); 130 interrupted (SIGINT), 143
terminated (SIGTERM): the workers are ended and a rerun resumes.  ``provenance OUTPUT INPUT``:
5 when an input series changed, is missing or is new since the run (3: no run record).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel

from anatprep import __version__
from anatprep.interfaces.brainmask.params import PRESETS

from .config import (
    BrainExtractionConfig,
    Config,
    ConfigError,
    ConversionConfig,
    GeometryConfig,
    dump_config,
    load_config,
)
from .exitcodes import (
    EXIT_INPUT_CHANGED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NO_DATA,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from .paths import UsageError
from .processes import Terminated, end_descendants, sigterm_as_interrupt
from .provenance import ProvenanceError
from .runlock import LockBusy
from .shipped_configs import config_file, shipped_configs, summary

if TYPE_CHECKING:
    from .execution import RunSummary


LOG = logging.getLogger("anatprep")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="anatprep",
        description="DICOM -> BIDS NIfTI -> reorientation -> ANTs brain extraction, on nipype.",
        epilog="Exit codes: 0 ok, 1 internal error, 2 bad config/arguments/paths or OUTPUT in "
        "use, 3 no usable data (provenance: no run record), 4 some subjects failed, "
        "5 (provenance) input changed since the run, 130 interrupted, 143 terminated.",
    )
    p.add_argument("--version", action="version", version=f"anatprep {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        _config_option(sp, "YAML config")
        sp.add_argument(
            "--work-dir",
            type=Path,
            help="nipype work dir and logs (default: OUTPUT.work beside OUTPUT)",
        )
        sp.add_argument("--n-procs", type=int, help="parallel processes (MultiProc)")
        sp.add_argument("--mem-gb", type=float, help="memory budget in GB (MultiProc)")
        sp.add_argument("-v", "--verbose", action="store_true", help="show nipype's node log")
        quality = BrainExtractionConfig.model_fields["quality"]
        sp.add_argument(
            "--quality",
            choices=list(PRESETS),
            help=f"{quality.description} (sets brain_extraction.quality; default: "
            f"{quality.default})",
        )
        deid = Config.model_fields["deidentify"]
        sp.add_argument(
            "--deidentify",
            choices=get_args(deid.annotation),
            help=f"{deid.description} (sets deidentify; default: {deid.default})",
        )

    run = sub.add_parser("run", help="convert and process a DICOM folder")
    run.add_argument(
        "--verify",
        action="store_true",
        help="run dcm2niix beside our converter (conversion.verify: true)",
    )
    run.add_argument(
        "input", type=Path,
        help="DICOM folder: one sub-folder per subject, named for it (README: Your own data)",
    )  # fmt: skip
    run.add_argument("output", type=Path, help="BIDS output folder")
    run.add_argument(
        "--participant-label",
        nargs="+",
        metavar="LABEL",
        help="only these subjects (with or without 'sub-')",
    )
    run.add_argument(
        "--series-table",
        type=Path,
        metavar="JSON",
        help="use this series table of INPUT instead of indexing it (what each SLURMArray "
        "task gets: its subject's part of the batch's table)",
    )
    common(run)

    demo = sub.add_parser("demo", help="build a small synthetic DICOM study and run on it")
    demo.add_argument("output", type=Path, help="folder for the demo DICOM and its outputs")
    common(demo)

    conv = sub.add_parser(
        "convert", help="only convert DICOM to NIfTI + JSON, one file per series (no workflow)"
    )
    conv.add_argument("input", type=Path, help="DICOM folder (searched recursively)")
    conv.add_argument("output", type=Path, help="folder for the .nii.gz + .json files")
    # choices, defaults and help come from the config's fields (one source per setting)
    _option(conv, "--compression", ConversionConfig, "compression_level", type=int)
    conv.add_argument(
        "--verify", action="store_true", help="run dcm2niix beside ours; record the agreement"
    )
    _option(conv, "--converter", ConversionConfig, "converter")
    conv.add_argument("--max-image-gb", type=_positive, metavar="GB",
                      help=ConversionConfig.model_fields["max_image_gb"].description)  # fmt: skip
    _option(conv, "--deidentify", Config, "deidentify")
    conv.add_argument("-v", "--verbose", action="store_true",
                      help="failure reasons with their Python exception classes")  # fmt: skip
    for name in ("irregular_spacing", "gantry_tilt", "localizers"):
        _option(conv, "--" + name.replace("_", "-"), GeometryConfig, name)

    cfg = sub.add_parser("config", help="print the effective configuration as YAML")
    _config_option(cfg, "YAML config to merge over the defaults")
    cfg.add_argument(
        "--list", action="store_true", help="list the shipped configs (names for --config)"
    )

    prov = sub.add_parser(
        "provenance",
        help="print OUTPUT's run record; with INPUT, say which input series changed since",
    )
    prov.add_argument("output", type=Path, help="an anatprep OUTPUT folder")
    prov.add_argument(
        "input", type=Path, nargs="?", help="the DICOM folder to check against the record"
    )
    prov.add_argument("--all", action="store_true", help="print every run's record")
    for command in sub.choices.values():  # a command's errors show its own usage
        command.set_defaults(command_parser=command)
    return p


def _config_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE|NAME",
        help=f"{what}: a file, or a shipped config by name (`anatprep config --list`; "
        "e.g. fast-conversion-only)",
    )


def _option(parser, flag: str, model: type[BaseModel], name: str, type=str) -> None:
    """A command-line option for one config field: its default, its description as help, and
    its choices (a ``Literal``'s values, or the range of a bounded integer)."""
    field = model.model_fields[name]
    choices: Any = get_args(field.annotation) or None
    if choices is None and type is int:
        bounds = {type_.__class__.__name__: type_ for type_ in field.metadata}
        low, high = getattr(bounds.get("Ge"), "ge", None), getattr(bounds.get("Le"), "le", None)
        if low is not None and high is not None:
            choices = range(low, high + 1)
    parser.add_argument(flag, type=type, default=field.default, choices=choices,
                        help=field.description)  # fmt: skip


def _positive(text: str) -> float:
    """A finite number above zero (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above zero")
    return value


def _overrides(args: argparse.Namespace) -> dict:
    out: dict[str, Any] = {}
    if getattr(args, "work_dir", None):
        out["execution.work_dir"] = str(args.work_dir)
    if getattr(args, "n_procs", None) is not None:
        out["execution.n_procs"] = args.n_procs
    if getattr(args, "mem_gb", None) is not None:
        out["execution.memory_gb"] = args.mem_gb
    if getattr(args, "verify", False):
        out["conversion.verify"] = True
    if getattr(args, "quality", None) is not None:
        out["brain_extraction.quality"] = args.quality
    if getattr(args, "deidentify", None) is not None:
        out["deidentify"] = args.deidentify
    return out


def _setup_logging(verbose: bool) -> None:
    from .report import PrintableFilter

    if not LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s anatprep %(levelname)s %(message)s", datefmt="%H:%M:%S")
        )
        handler.addFilter(PrintableFilter())  # also for anatprep.slurm's records
        LOG.addHandler(handler)
        LOG.propagate = False
    # -v: also the debug lines (e.g. the exception classes behind the reasons in words)
    LOG.setLevel(logging.DEBUG if verbose else logging.INFO)
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    nipype_config.set("execution", "check_version", "false")
    # without -v, anatprep's own account names each failure and its crash file; nipype's
    # node errors (full tracebacks) are in the crash files
    level = "INFO" if verbose else "CRITICAL"
    nipype_config.set("logging", "workflow_level", level)
    nipype_config.set("logging", "interface_level", level)
    nipype_logging.update_logging(nipype_config)


def _prepare_environment(cfg: Config) -> None:
    """ITK reads its thread count once per process: set it before any worker imports ANTs."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(cfg.brain_extraction.num_threads)
    os.environ.setdefault("MPLBACKEND", "Agg")


def _report(summary: RunSummary, output: Path, verbose: bool = False) -> None:
    from .mask_qc import flagged_lines
    from .report import format_completed, format_nodes_run, format_outcomes, in_words, printable

    ok = [s for s in summary.subjects if s not in summary.failed_subjects]
    print(f"anatprep: {format_completed(summary.subjects, ok)} -> {output}")
    figures = sorted((output / "derivatives" / "anatprep").glob("sub-*/**/figures/*.svg"))
    for fig in figures:
        print(f"  QC figure: {fig}")
    if summary.nodes_run is not None:
        print(f"  {format_nodes_run(len(summary.nodes_run), summary.nodes_total)}")
    if summary.unusable_files:
        print(f"  {summary.unusable_files} file(s) were not usable DICOM (see the log above)")
    if summary.series:
        print(format_outcomes(summary.series, verbose=verbose))
    for f in summary.failures:
        crash = f"\n  crash file: {f.crash_file}" if f.crash_file else ""
        print(f"FAILED {f.subject}: {f.node}\n  {printable(in_words(f.message, verbose))}{crash}")
        if f.unwritten:
            print(f"  therefore not written: {', '.join(f.unwritten)}")
    for line in flagged_lines(output, ok):  # completed, but a mask QC signal is out of range
        print(line)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # after the command: its own usage says what it takes (argparse: the top's)
        after = unknown[0] in argv[argv.index(args.command) + 1 :]
        (args.command_parser if after else parser).error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    args.command_line = ["anatprep", *argv]  # for the run record
    with sigterm_as_interrupt():
        return _dispatch(args)


def _list_configs() -> None:
    """Each shipped config: its name (what ``--config`` takes), what it is, its file."""
    for name, path in shipped_configs().items():
        print(f"{name:24} {summary(path)}\n{'':24} {path}")


def _provenance(args: argparse.Namespace) -> int:
    from .provenance import check_inputs, format_check, format_record, load_records

    records = load_records(args.output.absolute())
    for path, record in records if args.all else records[-1:]:
        print(format_record(record, path))
    if args.input is None:
        return EXIT_OK
    if not args.input.is_dir():
        raise UsageError(f"INPUT {args.input} is not a folder")
    record = records[-1][1]
    check = check_inputs(record, args.input.absolute())
    print(format_check(record, check))
    return EXIT_OK if check.clean else EXIT_INPUT_CHANGED


def _convert(args: argparse.Namespace) -> int:
    from .convert_command import convert_tree

    return convert_tree(
        args.input.absolute(),
        args.output.absolute(),
        args.compression,
        verify=args.verify,
        converter=args.converter,
        geometry=GeometryConfig(
            irregular_spacing=args.irregular_spacing,
            gantry_tilt=args.gantry_tilt,
            localizers=args.localizers,
        ).policy(),
        deidentify=args.deidentify,
        max_image_gb=args.max_image_gb,
        verbose=args.verbose,
    )


def _interrupted(exc: KeyboardInterrupt) -> int:
    """End every process this run started (no worker keeps writing), say so, exit code."""
    # the pool's callbacks would report the workers ended here as a broken pool
    logging.getLogger("concurrent.futures").disabled = True
    ended = end_descendants()
    workers = f"; ended {len(ended)} worker process(es)" if ended else ""
    if isinstance(exc, Terminated):
        print(f"anatprep: terminated by SIGTERM{workers}; run the same command again to "
              "resume", file=sys.stderr)  # fmt: skip
        return EXIT_TERMINATED
    print(f"anatprep: interrupted{workers}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "convert":
            return _convert(args)
        from .execution import NoDataError, run_study

        if args.command == "provenance":
            return _provenance(args)
        if args.command == "config" and args.list:
            _list_configs()
            return EXIT_OK
        config = config_file(args.config) if args.config else None
        if args.command == "config":
            print(dump_config(load_config(config)), end="")
            return EXIT_OK
        cfg = load_config(config, _overrides(args))
        _prepare_environment(cfg)
        _setup_logging(args.verbose)
        if args.command == "demo":
            from .demo import run_demo

            summary, output = run_demo(args.output.absolute(), cfg, args.command_line)
        else:
            output = args.output.absolute()
            summary = run_study(
                args.input.absolute(), output, cfg, args.participant_label, args.series_table,
                args.command_line,
            )  # fmt: skip
        _report(summary, output, args.verbose)
        return summary.exit_code
    except (ConfigError, UsageError, LockBusy) as exc:
        print(f"anatprep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NoDataError as exc:
        print(f"anatprep: no usable data: {exc}", file=sys.stderr)
        return EXIT_NO_DATA
    except ProvenanceError as exc:
        print(f"anatprep: {exc}", file=sys.stderr)
        return EXIT_NO_DATA
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        return _interrupted(exc)
    except Exception as exc:  # report, never a bare traceback for users
        LOG.exception("internal error")
        print(f"anatprep: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
