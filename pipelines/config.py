"""The YAML configuration as a typed, validated model.

Defaults live here; ``configs/default.yaml`` is their YAML rendering (a test keeps the two
equal).  Unknown keys, wrong types and impossible values are rejected before anything runs,
with the key path and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from anatprep.interfaces.atomic import DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL
from anatprep.interfaces.axis_codes import check_orientation_code
from anatprep.interfaces.brainmask.params import BrainExtractionParams, Quality, preset
from anatprep.interfaces.dicomio.geometry import (
    GeometryPolicy,
    IrregularOutcome,
    LocalizerOutcome,
    TiltOutcome,
)
from anatprep.interfaces.dicomio.reference import Converter
from anatprep.interfaces.dicomio.sidecar import Deidentify

from .config_yaml import ConfigYAMLError, parse, read_text
from .patterns import check_pattern

#: the library's own defaults, so each setting has one source
_BEX = BrainExtractionParams()
_GEOMETRY = GeometryPolicy()


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem with its key path."""


def _mentions(annotation: Any, kinds: tuple[Any, ...]) -> bool:
    """Whether a field's type is, or holds (in a union, tuple, list, Annotated), one of
    ``kinds``."""
    if any(annotation is kind for kind in kinds):
        return True
    return any(_mentions(arg, kinds) for arg in get_args(annotation))


def _numeric(text: str) -> bool:
    """Whether pydantic would read ``text`` as a number (other text it refuses itself)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Strict(BaseModel):
    """Unknown keys refused; every float finite (``.nan`` / ``.inf`` are config errors); a
    field that means a number (or numbers) takes numbers only: ``true`` is not 1, ``'2'``
    is not 2."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name or ""].annotation
        if not _mentions(annotation, (int, float)) or _mentions(annotation, (bool, str, Any)):
            return value
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, bool) or (isinstance(item, str) and _numeric(item)):
                raise ValueError("must be a number (true, false and quoted text are not)")
        return value


#: upper bounds of counts and sizes: far beyond any real run, short of absurd
MAX_PROCS = 4096
MAX_NODE_GB = 4096.0
MAX_BUDGET_GB = 65536.0
MAX_SEED = 2**31 - 1
#: a template's name (``robex``, ``custom``, a TemplateFlow name such as ``OASIS30ANTs``)
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9]+")
#: a brain-volume bound, in mL
_Volume = Annotated[float, Field(ge=0, le=100_000)]


def _check_regexes(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        check_pattern(pattern)
    return patterns


class SeriesRule(_Strict):
    """Regexes (Python syntax, searched anywhere, under a time bound: :mod:`.patterns`)
    deciding which series a rule matches."""

    description: list[str] = Field(
        default_factory=list,
        description="searched in SeriesDescription, ProtocolName and SequenceName",
    )
    exclude_description: list[str] = Field(default_factory=list)
    exclude_image_type: list[str] = Field(
        default_factory=list,
        description="series whose ImageType holds one of these are not matched",
    )
    require_3d: bool = Field(False, description="only series with at least min_slices slices")
    magnitude_only: bool = Field(
        True, description="phase/real/imaginary parts never match (they go to extra/)"
    )
    min_slices: int = Field(1, ge=1, le=100_000)

    _validate = field_validator("description", "exclude_description", "exclude_image_type")(
        classmethod(lambda cls, v: _check_regexes(v))
    )


def _default_rules() -> dict[Literal["T1w", "T2w", "FLAIR"], SeriesRule]:
    not_derived = ["DERIVED", "LOCALIZER", "SCREEN SAVE", "PROJECTION IMAGE", "MPR", "MIP"]
    scouts = [r"(?i)local", r"(?i)scout", r"(?i)survey", r"(?i)aahead", r"(?i)calibration"]
    return {
        "T1w": SeriesRule(
            description=[
                r"(?i)mp-?rage",
                r"(?i)spgr",
                r"(?i)bravo",
                r"(?i)tfl3d",
                r"(?i)t1[-_ ]?w",
                r"(?i)\bt1[-_ ]",
                r"(?i)^t1",
                r"(?i)mp2rage",
                r"(?i)fspgr",
                r"(?i)tfe3d|t1tfe",
            ],
            exclude_description=[*scouts, r"(?i)_nd$", r"(?i)\bpost\b"],
            exclude_image_type=not_derived,
            require_3d=True,
            min_slices=40,
        ),
        "T2w": SeriesRule(
            description=[
                r"(?i)t2[-_ ]?w",
                r"(?i)\bt2[-_ ]",
                r"(?i)^t2(?!\*)",
                r"(?i)spc",
                r"(?i)cube",
            ],
            exclude_description=[*scouts, r"(?i)flair", r"(?i)star"],
            exclude_image_type=not_derived,
            require_3d=False,
            min_slices=10,
        ),
        "FLAIR": SeriesRule(
            description=[r"(?i)flair"],
            exclude_description=scouts,
            exclude_image_type=not_derived,
            require_3d=False,
            min_slices=10,
        ),
    }


class SeriesConfig(_Strict):
    rules: dict[Literal["T1w", "T2w", "FLAIR"], SeriesRule] = Field(default_factory=_default_rules)
    convert_other: bool = Field(
        True, description="also convert series no rule matches (under extra/ with acq-<desc>)"
    )


class LabelsConfig(_Strict):
    subject_level: int = Field(
        1, ge=1, le=5, description="folder level under INPUT naming the subject"
    )
    session_level: int | None = Field(
        None, ge=1, le=5, description="folder level naming the session"
    )
    subject_map: dict[str, str] = Field(
        default_factory=dict,
        description="folder name -> subject label (else sanitized folder name)",
    )

    @model_validator(mode="after")
    def _levels_differ(self):
        if self.session_level is not None and self.session_level == self.subject_level:
            raise ValueError("session_level must differ from subject_level")
        return self


class GeometryConfig(_Strict):
    """Outcomes for series that cannot be one regular volume (interfaces/dicomio/geometry)."""

    irregular_spacing: IrregularOutcome = Field(
        _GEOMETRY.irregular_spacing,
        description="missing slices / uneven gaps: fail the series, skip it, or split",
    )
    gantry_tilt: TiltOutcome = Field(
        _GEOMETRY.gantry_tilt,
        description="tilted stacks: fail, skip, or resample onto an orthogonal grid",
    )
    localizers: LocalizerOutcome = Field(
        _GEOMETRY.localizers,
        description="localizer / scout series: convert (to extra/) or skip",
    )

    def policy(self) -> GeometryPolicy:
        return GeometryPolicy(self.irregular_spacing, self.gantry_tilt, self.localizers)


class ConversionConfig(_Strict):
    converter: Converter = Field(
        "anatprep", description="our converter, or dcm2niix (pip install 'anatprep[dcm2niix]')"
    )
    verify: bool = Field(
        False, description="run dcm2niix beside our converter; record agreement in the sidecar"
    )
    compression_level: int = Field(
        DEFAULT_LEVEL, ge=MIN_LEVEL, le=MAX_LEVEL,
        description="zlib deflate level of .nii.gz outputs: 0 stored, 1 fastest, 9 smallest",
    )  # fmt: skip
    max_image_gb: float | None = Field(
        None, gt=0,
        description="the most memory one image may take, in GiB (unset: half the memory of "
        "the machine converting); a larger image fails, named, before it is read",
    )  # fmt: skip
    geometry: GeometryConfig = Field(default_factory=GeometryConfig)


class ReorientConfig(_Strict):
    orientation: str = Field("RAS", description="target 3-letter axis code")

    @field_validator("orientation")
    @classmethod
    def _code(cls, v: str) -> str:
        return check_orientation_code(v)


class BrainExtractionConfig(_Strict):
    """ANTs brain extraction: a ``quality`` preset, optional per-parameter overrides
    (``parameters``: any field of
    ``anatprep.interfaces.brainmask.params.BrainExtractionParams``),
    the template, and the run's seed, threads and plausibility range."""

    enabled: bool = True
    quality: Quality = Field(
        "default",
        description="brain-extraction preset (N4, registration and Atropos schedules): fast, "
        "default or precise",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the preset's parameters"
    )
    template: str = Field(
        "robex", description="robex (offline default), custom, or a TemplateFlow name"
    )
    template_head: str | None = None
    template_mask: str | None = None
    template_resolution: int = Field(1, ge=1, le=9, description="TemplateFlow res- label")
    random_seed: int = Field(_BEX.random_seed, ge=0, le=MAX_SEED)
    num_threads: int = Field(
        _BEX.num_threads, ge=1, le=256, description="ITK threads per subject (1 = deterministic)"
    )
    volume_range_ml: tuple[_Volume, _Volume] = _BEX.volume_range_ml
    memory_gb: float = Field(
        1.0,
        gt=0,
        le=MAX_NODE_GB,
        description="least memory the node declares; a larger image declares what it needs",
    )

    @field_validator("template")
    @classmethod
    def _template_name(cls, v: str) -> str:
        """A name, never a path: TemplateFlow names are letters and digits."""
        if not TEMPLATE_NAME.fullmatch(v):
            raise ValueError(
                "must be robex, custom or a TemplateFlow template's name (letters and digits, "
                "e.g. OASIS30ANTs), not a path: name a template file with custom and "
                "template_head / template_mask"
            )
        return v

    @model_validator(mode="after")
    def _template_files(self):
        if self.template == "custom" and not (self.template_head and self.template_mask):
            raise ValueError("template 'custom' needs template_head and template_mask")
        if self.volume_range_ml[0] >= self.volume_range_ml[1]:
            raise ValueError("volume_range_ml must be [low, high] with low < high")
        reserved = {"random_seed", "num_threads", "volume_range_ml"} & set(self.parameters)
        if reserved:
            raise ValueError(
                f"parameters: set {', '.join(sorted(reserved))} at brain_extraction level"
            )
        try:
            preset(self.quality, self.parameters)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"parameters: {exc}") from None
        return self


class SlurmConfig(_Strict):
    """Per-subject job arrays (``execution.plugin: SLURMArray``): one ``sbatch --array`` for
    the batch; each task runs one subject's graph with MultiProc on ``cpus_per_task``."""

    cpus_per_task: int = Field(2, ge=1, le=256)
    mem_gb: float = Field(6.0, gt=0, le=MAX_NODE_GB)
    time: str = Field("04:00:00", description="sbatch --time of each task")
    partition: str | None = None
    account: str | None = None
    throttle: int | None = Field(
        None, ge=1, le=1_000_000, description="at most this many tasks at once (%)"
    )
    extra_args: list[str] = Field(default_factory=list, description="more sbatch arguments")
    poll_seconds: float = Field(5.0, gt=0, le=600)
    outage_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="how long a silent controller is waited for, with retries",
    )


#: the container engines a run can use
Engine = Literal["apptainer", "podman", "docker"]


class ContainerConfig(_Strict):
    """Run the work inside a container image (``execution.container``): each MultiProc or
    Linear subject as its own ``anatprep run`` in the image, each SLURM / SLURMGraph node job
    and each SLURMArray task in the image; INPUT mounted read-only, OUTPUT and the work dir
    read-write, at the same paths as on the host."""

    engine: Engine
    image: str = Field(
        min_length=1,
        description="apptainer: the SIF file; podman / docker: the image reference "
        "(e.g. anatprep:0.1.0)",
    )
    executable: str | None = Field(
        None, description="the engine's program (default: the engine's name on PATH)"
    )
    binds: list[str] = Field(
        default_factory=list,
        description="more host folders mounted read-only at the same path (e.g. a shared "
        "template folder)",
    )

    @field_validator("binds")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        for path in v:
            if not Path(path).expanduser().is_absolute() or ":" in path:
                raise ValueError(f"{path!r}: an absolute folder path without ':' is needed")
        return v


class ExecutionConfig(_Strict):
    plugin: Literal["MultiProc", "Linear", "SLURM", "SLURMGraph", "SLURMArray"] = "MultiProc"
    plugin_args: dict[str, Any] = Field(
        default_factory=dict,
        description="passed to the nipype plugin (e.g. sbatch_args for SLURM / SLURMGraph)",
    )
    n_procs: int | None = Field(
        None, ge=1, le=MAX_PROCS, description="parallel processes (default: all cores)"
    )
    memory_gb: float | None = Field(
        None, gt=0, le=MAX_BUDGET_GB, description="memory budget (default: 90% of RAM)"
    )
    work_dir: str | None = Field(None, description="default: <OUTPUT>.work beside OUTPUT")
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)
    container: ContainerConfig | None = Field(
        None, description="run the work inside this container image (null: on the host)"
    )

    @field_validator("plugin_args")
    @classmethod
    def _finite_args(cls, v: dict[str, Any]) -> dict[str, Any]:
        _check_finite(v, "plugin_args")
        return v


def _check_finite(value: Any, path: str) -> None:
    """ValueError naming the first NaN or infinity in nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: must be a finite number, got {value!r}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_finite(item, f"{path}.{index}")


class Config(_Strict):
    deidentify: Deidentify = Field(
        "standard",
        description="strict: no SeriesDescription / ProtocolName (free text where names get "
        "typed) in file names, sidecars, logs or crash files; rule label and series number "
        "instead",
    )
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    series: SeriesConfig = Field(default_factory=SeriesConfig)
    conversion: ConversionConfig = Field(default_factory=ConversionConfig)
    reorient: ReorientConfig = Field(default_factory=ReorientConfig)
    brain_extraction: BrainExtractionConfig = Field(default_factory=BrainExtractionConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _suggestion(err["loc"])
        elif err["type"] == "literal_error":
            msg = f"must be one of {err.get('ctx', {}).get('expected', '')}"
        got = err.get("input")
        got_text = (
            "" if err["type"] in ("missing",) or isinstance(got, dict) else f" (got {_short(got)})"
        )
        lines.append(f"  {path}: {msg}{got_text}")
    return "\n".join(lines)


def _suggestion(loc: tuple[int | str, ...]) -> str:
    """``; did you mean `quality`?`` when one allowed key is close to the unknown one (the
    last part of ``loc``); else nothing."""
    close = difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1, cutoff=0.7)
    return f"; did you mean `{close[0]}`?" if close else ""


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the config allows at ``loc`` (a path of keys from the top), or none when
    ``loc`` leads to no section of the model."""
    node: Any = Config
    for part in loc:
        model = _model(node)
        if model is not None:
            if part not in model.model_fields:
                return []
            node = model.model_fields[str(part)].annotation
        elif get_origin(node) is dict:  # a mapping's value (series.rules.T1w)
            node = get_args(node)[1]
        else:
            return []
    model = _model(node)
    return list(model.model_fields) if model is not None else []


def _model(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (also an optional one: ``ContainerConfig | None``)."""
    union = get_origin(annotation) in (Union, UnionType)
    options = get_args(annotation) if union else (annotation,)
    return next((a for a in options if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _short(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message stays readable."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]} ...{text[-1]}"


def validate_config(data: dict[str, Any] | None, source: str = "config") -> Config:
    try:
        return Config.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the YAML file, then ``overrides`` (dotted keys), validated together."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path))
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    if overrides:  # the command line's settings: say which keys did not come from the file
        source = f"{source} (with overrides of {', '.join(overrides)})"
    return validate_config(data, source)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; ConfigError naming the file (and key path) otherwise."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except ConfigYAMLError as exc:
        raise ConfigError(f"config {path} is {exc}") from None
    try:
        loaded = parse(text)
    except ConfigYAMLError as exc:
        raise ConfigError(f"invalid configuration in {path}:\n  {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return loaded or {}


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts.  A section that is not a mapping is left as it is, so
    validation reports it (``execution: 5`` with ``--n-procs 2``), not a TypeError here."""
    node = data
    *sections, last = dotted.split(".")
    for key in sections:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return
    node[last] = value


def dump_config(cfg: Config) -> str:
    """The config as YAML that :func:`load_config` reads back (no anchors, which it refuses)."""
    return yaml.dump(cfg.model_dump(mode="json"), Dumper=_NoAliasDumper, sort_keys=False, width=100)


class _NoAliasDumper(yaml.SafeDumper):
    """SafeDumper writing a value seen twice out twice, never as an anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
