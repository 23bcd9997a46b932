"""The series rules' regular expressions, under a time bound.

A config's pattern is user input and header text is scanner input: a pattern that
backtracks catastrophically (``^(a+)+$`` against 34 ``a`` and a ``!``) would stall
indexing for hours.  Patterns are compiled by the ``regex`` package, in its version 0
(Python's ``re`` syntax and semantics), whose searches take a timeout:

* at load (:func:`check_pattern`), each pattern is searched in probe texts made of runs of
  its own letters (and ``a``, ``0``, space) followed by a ``!``, the texts that make nested
  or overlapping repetitions backtrack; one that takes more than :data:`CHECK_SECONDS` on
  any is refused, naming the rule (its key path) and the pattern;
* every search (:func:`search`) stops after :data:`SEARCH_SECONDS` with
  :class:`PatternTimeout`: a pattern that passed the probes but stalls on some header
  ends the run as a config error naming the rule and the series, never a hang.
"""

from __future__ import annotations

import functools

import regex

#: the load-time probes: a sane pattern searches them in microseconds
CHECK_SECONDS = 0.05
#: one search of one header field (at most a few hundred characters)
SEARCH_SECONDS = 1.0
_PROBE_RUN = 40


class PatternTimeout(Exception):
    """A search took longer than :data:`SEARCH_SECONDS`."""


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> regex.Pattern:
    return regex.compile(pattern, flags=regex.VERSION0)


def _probes(pattern: str) -> list[str]:
    letters = sorted({c for c in pattern if c.isalnum()} | {"a", "0", " "})
    runs = {c * _PROBE_RUN for letter in letters for c in (letter.lower(), letter.upper())}
    return sorted(run + "!" for run in runs)


def check_pattern(pattern: str) -> str:
    """``pattern``, compiled and probed; ValueError saying what is wrong with it."""
    try:
        compiled = _compiled(pattern)
    except (regex.error, ValueError) as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    for probe in _probes(pattern):
        try:
            compiled.search(probe, timeout=CHECK_SECONDS)
        except TimeoutError:
            shown = f"{probe[:3]}... ({len(probe) - 1} x {probe[0]!r} and '!')"
            raise ValueError(
                f"regular expression {pattern!r} backtracks catastrophically: more than "
                f"{CHECK_SECONDS} s on {shown}; avoid nested or overlapping repetition "
                "such as (a+)+ or (a|aa)*"
            ) from None
    return pattern


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` is found in ``text``; :class:`PatternTimeout` past the bound."""
    try:
        return _compiled(pattern).search(text, timeout=SEARCH_SECONDS) is not None
    except TimeoutError:
        raise PatternTimeout(pattern) from None
