"""The validation vocabulary: one message format for choices, keys and numbers.

Every stage validates its arguments at its boundary with these, so a wrong
value reads the same wherever it is caught: the name, the value, what is
accepted, and for a near-miss the closest valid spelling.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Iterable, Sequence

from ..errors import ConfigError

__all__ = ["suggest", "check_choice", "check_keys", "positive"]

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
