"""Brain-extraction parameters and the ``quality`` presets that fill them.

A preset is a complete, concrete parameter set; any field can be overridden one by one in the
config.  Spacings are in mm; iteration lists run coarse to fine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal


@dataclass(frozen=True)
class BrainExtractionParams:
    # N4: estimated over the head on a grid of ``n4_spacing_mm`` voxels (the shrink factor in
    # mm), field applied at full resolution, as antsBrainExtraction.sh does once; an optional
    # second pass is weighted by the warped template brain (~18 s more at 4 mm for a 1 mm
    # head, no better mask on the evaluation heads)
    n4_spacing_mm: float = 6.0
    n4_iterations: tuple[int, ...] = (50, 50, 50)
    n4_spline_mm: float = 200.0
    n4_second_pass: bool = False
    # registration: all stages on an image resampled to ``registration_spacing_mm``
    registration_spacing_mm: float = 3.0
    init_search_degrees: float = 15.0  # antsAI-like rotation search step (0 = centre of mass)
    init_search_arc: float = 0.12  # fraction of pi searched either side of each axis
    rigid_iterations: tuple[int, ...] = (500, 250)
    affine_iterations: tuple[int, ...] = (500, 250, 100)
    syn_iterations: tuple[int, ...] = (50, 30, 5)
    syn_shrink_factors: tuple[int, ...] = (4, 2, 1)
    syn_cc_radius: int = 2
    syn_gradient_step: float = 0.1
    syn_registration_mask: bool = True  # SyN only within the template's dilated brain
    winsorize: tuple[float, ...] = (0.005, 0.995)  # intensity quantiles kept for registration
    # the warped template mask and its refinement
    prior_threshold: float = 0.5
    atropos: bool = True
    atropos_margin_mm: float = 3.0  # segmentation region: prior dilated by this much
    atropos_init: str = "otsu"  # Atropos' start: otsu (3 s) or kmeans (ANTs' script, 9 s)
    atropos_iterations: int = 3
    atropos_mrf: float = 0.1
    csf_margin_mm: float = 3.0  # CSF within this distance of the tissue mask is kept
    prior_union: bool = True  # the confident warped template brain joins the mask ...
    prior_union_min: float = 0.5  # ... where the prior is at least this
    close_mm: float = 5.0  # final closing radius (antsBrainExtraction.sh's MD 5 / ME 5)
    # grids: no voxel finer than this for the work (finer inputs are resampled, outputs come
    # back on the input's grid)
    working_spacing_mm: float = 1.0
    # runtime
    random_seed: int = 42
    num_threads: int = 1
    volume_range_ml: tuple[float, float] = (700.0, 2600.0)

    def with_overrides(self, overrides: dict[str, Any]) -> BrainExtractionParams:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown brain-extraction parameter(s): {', '.join(unknown)}")
        clean = {name: _checked(name, getattr(self, name), v) for name, v in overrides.items()}
        return _consistent(replace(self, **clean))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _consistent(p: BrainExtractionParams) -> BrainExtractionParams:
    """``p``, if its parameters agree with each other; ValueError naming them otherwise."""
    if len(p.syn_iterations) != len(p.syn_shrink_factors):
        raise ValueError(
            f"syn_iterations {list(p.syn_iterations)} and syn_shrink_factors "
            f"{list(p.syn_shrink_factors)} need one value per level each"
        )
    if len(p.winsorize) != 2 or p.winsorize[0] >= p.winsorize[1]:
        raise ValueError(f"winsorize must be [low, high] with low < high, got {list(p.winsorize)}")
    return p


_CHOICES = {"atropos_init": ("kmeans", "otsu")}
#: numbers that must be above 0 (spacings, iteration counts, shrink factors, radii); every
#: other number must be at least 0
_POSITIVE = frozenset(
    {
        "n4_spacing_mm",
        "n4_iterations",
        "n4_spline_mm",
        "registration_spacing_mm",
        "rigid_iterations",
        "affine_iterations",
        "syn_iterations",
        "syn_shrink_factors",
        "syn_cc_radius",
        "syn_gradient_step",
        "atropos_iterations",
        "working_spacing_mm",
        "num_threads",
    }
)
#: numbers between 0 and 1 (quantiles, probabilities, a fraction of pi)
_FRACTIONS = frozenset({"init_search_arc", "winsorize", "prior_threshold", "prior_union_min"})
#: the largest integer each integer parameter takes (iterations, factors, radii: 100000)
_MAX_INT = {"random_seed": 2**31 - 1, "num_threads": 256}


def _checked(name: str, default: Any, value: Any) -> Any:
    """``value`` in the type of ``default`` and in the parameter's range; ValueError naming the
    parameter otherwise (NaN and infinities are never allowed)."""
    converted = _converted(name, default, value)
    if converted is None:
        shown = list(default) if isinstance(default, tuple) else default
        raise ValueError(f"{name} must be like {shown!r}, got {value!r}")
    numbers = converted if isinstance(converted, tuple) else (converted,)
    for number in numbers:
        problem = _out_of_range(name, number)
        if problem:
            raise ValueError(f"{name} must be {problem}, got {value!r}")
    return converted


def _converted(name: str, default: Any, value: Any) -> Any:
    """``value`` as the type of ``default``, or None if it is not one."""
    if isinstance(default, str):
        ok = isinstance(value, str) and value in _CHOICES.get(name, (value,))
        return value if ok else None
    if isinstance(default, bool):
        return value if isinstance(value, bool) else None
    if isinstance(default, int | float):
        return _number(type(default), value)
    if isinstance(default, tuple) and isinstance(value, list | tuple) and value:
        items = tuple(_number(type(default[0]), v) for v in value)
        return None if None in items else items
    return None


def _number(kind: type, value: Any) -> int | float | None:
    """``value`` as an int (an integral number) or a float; None if it is neither."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if kind is int:
        integral = isinstance(value, int) or (math.isfinite(value) and value.is_integer())
        return int(value) if integral else None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        return None


def _out_of_range(name: str, number: Any) -> str:
    """What ``number`` must be instead, or "" if it is fine for parameter ``name``."""
    if isinstance(number, bool) or not isinstance(number, int | float):
        return ""
    if not math.isfinite(number):
        return "a finite number"
    if name in _FRACTIONS and not 0 <= number <= 1:
        return "between 0 and 1"
    if name in _POSITIVE and number <= 0:
        return "above 0"
    if number < 0:
        return "at least 0"
    highest = _MAX_INT.get(name, 100_000)
    if isinstance(number, int) and number > highest:
        return f"at most {highest}"
    return ""


#: the names of the ``quality`` presets: the keys of :data:`PRESETS` (a test keeps them equal;
#: the config validates against this Literal)
Quality = Literal["fast", "default", "precise"]

PRESETS: dict[str, BrainExtractionParams] = {
    "fast": BrainExtractionParams(
        n4_spacing_mm=6.0,
        n4_iterations=(50, 50),
        registration_spacing_mm=4.0,
        rigid_iterations=(300, 100),
        affine_iterations=(300, 100),
        syn_iterations=(40, 20),
        syn_shrink_factors=(2, 1),
        atropos_iterations=2,
    ),
    "default": BrainExtractionParams(),
    "precise": BrainExtractionParams(
        n4_spacing_mm=3.0,
        n4_iterations=(50, 50, 50, 50),
        registration_spacing_mm=2.0,
        init_search_degrees=10.0,
        rigid_iterations=(1000, 500, 250),
        affine_iterations=(1000, 500, 250, 100),
        syn_iterations=(100, 70, 40, 10),
        syn_shrink_factors=(6, 4, 2, 1),
        n4_second_pass=True,
        atropos_init="kmeans",
        atropos_iterations=5,
    ),
}


def preset(name: str, overrides: dict[str, Any] | None = None) -> BrainExtractionParams:
    if name not in PRESETS:
        raise ValueError(f"unknown quality preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[name].with_overrides(overrides or {})
