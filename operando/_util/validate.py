"""The validation vocabulary: one message format for choices, keys and numbers.

Every stage validates its arguments at its boundary with these, so a wrong
value reads the same wherever it is caught: the name, the value, what is
accepted, and for a near-miss the closest valid spelling.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import field, fields
from typing import Any, Callable, Iterable, Sequence

from ..errors import ConfigError

__all__ = ["suggest", "check_choice", "check_keys", "positive", "short_list", "Rejected", "setting",
           "check_fields", "is_number", "number", "choice", "boolean", "text", "pair", "auto_or"]

#: How close a misspelling must be to a valid name to be suggested (difflib ratio).
SUGGEST_CUTOFF = 0.6


def suggest(name: Any, options: Iterable[Any]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options``, or ``""``."""
    match = difflib.get_close_matches(str(name), [str(o) for o in options], n=1,
                                      cutoff=SUGGEST_CUTOFF)
    return f"; did you mean '{match[0]}'?" if match else ""


def check_choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    """``value`` if it is one of ``options``, else :class:`ConfigError` naming them."""
    if value not in options:
        hint = suggest(value, options) if isinstance(value, str) else ""
        raise ConfigError(f"{name}={value!r} is not one of {list(options)}{hint}")
    return value


def check_keys(what: str, keys: Iterable[Any], valid: Sequence[str]) -> None:
    """Refuse keys that are not in ``valid`` (e.g. a misspelt option of a shell)."""
    for key in keys:
        if key not in valid:
            raise ConfigError(f"unknown {what} key '{key}'{suggest(key, valid)} "
                              f"(valid keys: {', '.join(valid)})")


def positive(name: str, value: Any) -> float:
    """``value`` as a positive finite float, else :class:`ConfigError`."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be positive and finite, got {value}")
    return value


def short_list(items: Iterable[Any], limit: int = 5) -> str:
    """``"a, b, c and 12 more"``: a list in a message stays one readable line."""
    items = [str(i) for i in items]
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"


# ------------------------------------------------------------------ rules of settings
# A setting's rule lives in its dataclass field (``setting(default, rule)``); the class checks
# every field on construction (:func:`check_fields`), the configuration prefixes its section.
# A rule returns the value as kept (``2.0`` -> 2 for an integer, ``"Hanning"`` -> "hanning")
# or raises :class:`Rejected` saying what is accepted: ``name = value: must be <accepted>``.
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
