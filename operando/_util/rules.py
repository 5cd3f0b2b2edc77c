"""The rules of settings: what each field of an options dataclass or a configuration
section accepts, stated in the field (``setting(default, rule)``) and checked on
construction with one message format, ``name = value: must be <accepted>`` (a
configuration prefixes its ``[section]``).  The vocabulary: :func:`number`,
:func:`choice`, :func:`boolean`, :func:`text`, :func:`pair`, :func:`auto_or`; a rule
returns the value as kept (``2.0`` -> 2 for an integer, ``"Hanning"`` -> "hanning") or
raises :class:`Rejected` saying what is accepted.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import field, fields
from typing import Any, Callable

from ..errors import ConfigError
from .validate import suggest

__all__ = ["Rejected", "setting", "check_fields", "is_number", "number", "choice", "boolean",
           "text", "pair", "auto_or"]


class Rejected(ValueError):
    """A value a rule refuses; ``str()`` says what the rule accepts."""


def setting(default: Any, rule: Callable[[Any], Any]):
    """A dataclass field with ``default`` whose values ``rule`` checks."""
    return field(default=default, metadata={"rule": rule})


def check_fields(obj) -> None:
    """Check every field of the dataclass ``obj`` that has a rule, keeping what the rule
    returns; :class:`ConfigError` ``name = value: must be ...`` on the first refused."""
    for f in fields(obj):
        rule = f.metadata.get("rule")
        if rule is not None:
            value = getattr(obj, f.name)
            try:
                object.__setattr__(obj, f.name, rule(value))
            except Rejected as exc:
                raise ConfigError(f"{f.name} = {value!r}: must be {exc}") from None


def is_number(v) -> bool:
    """A finite real number (numpy's too), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def number(low=None, high=None, *, low_open=False, high_open=False, integer=False, none=False,
           accepted=None):
    """A rule: a finite number (an integer with ``integer``) from ``low`` to ``high`` (ends
    excluded with ``low_open``/``high_open``); None too with ``none``."""
    if accepted is None and integer:
        accepted = "an integer" + (f" from {low} to {high}" if None not in (low, high)
                                   else f" >= {low}" if low is not None else "")
    elif accepted is None:
        accepted = "a number" + (f" {'>' if low_open else '>='} {low:g}" if low is not None
                                 else "")
        if high is not None:
            accepted += f"{' and' if low is not None else ''} {'<' if high_open else '<='} {high:g}"

    def rule(v):
        if v is None and none:
            return None
        if integer and isinstance(v, float) and v.is_integer():
            v = int(v)
        if (not is_number(v) or (integer and not isinstance(v, numbers.Integral))
                or (low is not None and (v < low or (low_open and v == low)))
                or (high is not None and (v > high or (high_open and v == high)))):
            raise Rejected(accepted)
        return int(v) if integer else float(v)
    return rule


def choice(*options: str):
    """A rule: one of the words ``options`` (read lower-cased; a near miss is suggested)."""
    def rule(v):
        if isinstance(v, str) and v.lower() in options:
            return v.lower()
        hint = suggest(v.lower(), options) if isinstance(v, str) else ""
        raise Rejected(f"one of {', '.join(repr(o) for o in options)}{hint}")
    return rule


def boolean(v):
    """A rule: true or false."""
    if not isinstance(v, bool):
        raise Rejected("true or false")
    return v


def text(v):
    """A rule: a non-empty text (stripped), or None."""
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise Rejected("a non-empty text string")
    return v.strip()


def pair(accepted: str, *, none: bool = False):
    """A rule: ``(low, high)``, two numbers with |x| < 1e4 (eV near an edge), low < high;
    None too with ``none``."""
    def rule(v):
        if v is None and none:
            return None
        if (not isinstance(v, (list, tuple)) or len(v) != 2 or not all(
                is_number(x) and abs(x) < 1e4 for x in v) or not v[0] < v[1]):
            raise Rejected(accepted)
        return float(v[0]), float(v[1])
    return rule


def auto_or(rule: Callable[[Any], Any], accepted: str):
    """A rule: ``"auto"`` (any case, kept as "auto") or what ``rule`` accepts (another word
    is refused with ``accepted``, a value of another type as ``rule`` refuses it)."""
    def auto(v):
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        try:
            return rule(v)
        except Rejected:
            if isinstance(v, str):
                raise Rejected(accepted) from None
            raise
    return auto
