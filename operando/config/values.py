"""Validators of configuration values: each names the section, the key, the value and
what is accepted (:class:`~operando.errors.ConfigError`)."""

from __future__ import annotations

import glob as _glob
import math
import stat
from pathlib import Path
from typing import Any, Mapping

from .._util.validate import suggest as _suggest
from ..errors import ConfigError

_UNSET = object()


# ------------------------------------------------------------ value validators
def reject(section: str, key: str, value: Any, accepted: str):
    """Raise the configuration's one message: ``[section] key = value: must be accepted``."""
    raise ConfigError(f"[{section}] {key} = {value!r}: must be {accepted}")


def get_number(section, key, value, *, default=_UNSET, low=None, high=None, low_open=False,
               accepted=None, allow_none=True):
    """``value[key]`` (``value`` is the section's table) as a finite float within
    ``[low, high]`` (``(low, high]`` with ``low_open``); ``default`` when the key is absent."""
    if key not in value:
        return None if default is _UNSET else default
    v = value[key]
    desc = accepted or _range_text(low, high, low_open)
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        reject(section, key, v, desc)
    if low is not None and (v < low or (low_open and v == low)):
        reject(section, key, v, desc)
    if high is not None and v > high:
        reject(section, key, v, desc)
    return float(v)


def _range_text(low, high, low_open):
    text = "a number"
    if low is not None:
        text += f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        text += f"{' and' if low is not None else ''} <= {high:g}"
    return text


def get_integer(section, key, value, *, default=None, low=None, high=None, allow_none=False):
    """``value[key]`` as an integer within ``[low, high]`` (``2.0`` reads as 2);
    ``default`` when the key is absent."""
    if key not in value:
        return default
    v = value[key]
    if v is None and allow_none:
        return None
    desc = "an integer" + (f" from {low} to {high}" if low is not None and high is not None
                           else f" >= {low}" if low is not None else "")
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            reject(section, key, v, desc)
    if (low is not None and v < low) or (high is not None and v > high):
        reject(section, key, v, desc)
    return int(v)


def get_boolean(section, key, value, *, default=None):
    """``value[key]`` as true or false; ``default`` when the key is absent."""
    if key not in value:
        return default
    v = value[key]
    if not isinstance(v, bool):
        reject(section, key, v, "true or false")
    return v


def get_choice(section, key, value, options, *, default=None):
    """``value[key]`` lower-cased, one of ``options`` (a near miss is suggested);
    ``default`` when the key is absent."""
    if key not in value:
        return default
    v = value[key]
    if not isinstance(v, str) or v.lower() not in options:
        hint = _suggest(str(v).lower(), options) if isinstance(v, str) else ""
        raise ConfigError(
            f"[{section}] {key} = {v!r}: must be one of {', '.join(repr(o) for o in options)}{hint}"
        )
    return v.lower()


def get_pair(section, key, value, *, accepted):
    """``value[key]`` as ``(low, high)``: two finite numbers (|x| < 1e4: near an edge, in
    eV) with low < high; None when the key is absent."""
    if key not in value:
        return None
    v = value[key]
    if (not isinstance(v, list) or len(v) != 2 or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) < 1e4 for x in v)
            or not v[0] < v[1]):
        reject(section, key, v, accepted)
    return float(v[0]), float(v[1])


def read(section: str, value: Mapping, rules: Mapping) -> dict:
    """The keys of the section's table ``value`` that ``rules`` checks, each as its rule
    (``rule(section, key, value)``, one of the ``get_*`` above) reads it; an absent key
    is left out, so it takes its section's default."""
    return {key: rule(section, key, value) for key, rule in rules.items() if key in value}


def get_string(section, key, value, *, default=None):
    """``value[key]`` as a stripped non-empty string; ``default`` when the key is absent."""
    if key not in value:
        return default
    v = value[key]
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        reject(section, key, v, "a non-empty text string")
    return v.strip()


def resolve_path(base: Path, text: str) -> str:
    """``text`` as an absolute path, a relative one anchored on ``base`` (the configuration
    file's folder); refuses a FIFO, device or socket (:func:`check_not_special`)."""
    p = Path(text).expanduser()
    p = p if p.is_absolute() else (base / p).resolve()
    check_not_special(p)
    return str(p)


def check_not_special(path: Path) -> None:
    """Refuse a path that exists but is neither a regular file nor a folder: reading a FIFO
    blocks forever, ``/dev/zero`` never ends, ``/dev/urandom`` fills the memory."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return        # missing (yet) or unreadable: the reader says so when it gets there
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ConfigError(f"{path}: not a regular file nor a folder (a FIFO, device or "
                          "socket): give the data file itself")


def resolve_glob(base: Path, text: str) -> str:
    """Like :func:`resolve_path`, for a source that may be a wildcard pattern."""
    # Keep the wildcard part intact; only anchor it on the config folder.
    if _glob.has_magic(text):
        p = Path(text).expanduser()
        return str(p if p.is_absolute() else base.resolve() / p)
    return resolve_path(base, text)


def get_element(section, key, value, *, default=None):
    """``value[key]`` as an element symbol ('Pt', 'Cu'); ``default`` when the key is absent."""
    v = get_string(section, key, value, default=default)
    if v is None:
        return None
    if not (1 <= len(v) <= 2 and v[0].isupper() and v.isalpha() and (len(v) == 1 or v[1].islower())):
        reject(section, key, v, "an element symbol such as 'Pt' or 'Cu'")
    return v


def shell_label(section, key, v):
    """``v`` as a shell label 'Absorber-Scatterer' (``" Pt - O "`` reads as ``"Pt-O"``)."""
    if not isinstance(v, str):
        reject(section, key, v, "a shell label 'Absorber-Scatterer' such as 'Pt-O'")
    parts = [p.strip() for p in v.split("-")]
    ok = len(parts) == 2 and all(
        1 <= len(p) <= 2 and p.isalpha() and p[0].isupper() and (len(p) == 1 or p[1].islower())
        for p in parts
    )
    if not ok:
        reject(section, key, v, "a shell label 'Absorber-Scatterer' such as 'Pt-O'")
    return f"{parts[0]}-{parts[1]}"


def check_shells(shells, element: str | None, base: Path) -> tuple:
    """``[exafs] shells``: labels or tables (ShellSpec settings; ``file`` relative to the
    configuration file), validated by :class:`operando.exafs.ShellSpec`."""
    from ..exafs import ShellModel, ShellSpec

    s = "exafs"
    if isinstance(shells, (str, Mapping)):
        shells = [shells]
    if not isinstance(shells, list) or not shells:
        reject(s, "shells", shells, 'a non-empty list of shell labels such as ["Pt-O", "Pt-Pt"] '
                                    'or tables such as {label = "Cu-Cu_ox1", file = "feff0004.dat"}')
    out = []
    for v in shells:
        if isinstance(v, str):
            out.append(shell_label(s, "shells", v) if "_" not in v else ShellSpec.from_value(v).label)
        elif isinstance(v, Mapping):
            item = dict(v)
            if isinstance(item.get("file"), str):
                item["file"] = resolve_path(base, item["file"])
            ShellSpec.from_value(item)         # ConfigError names the shell and the key
            out.append(item)
        else:
            reject(s, "shells", v, "a shell label such as 'Pt-O' or a table with a label")
    labels = [v if isinstance(v, str) else v["label"] for v in out]
    if len(set(labels)) != len(labels):
        reject(s, "shells", labels, "a list without repeated shells")
    absorbers = {lab.split("-")[0] for lab in labels}
    if len(absorbers) > 1 or (element and absorbers != {element}):
        want = element or sorted(absorbers)[0]
        reject(s, "shells", labels, f"shells that all start with the absorber ('{want}-...')")
    ShellModel(shells=out)                     # ties point at shells of the list, ...
    return tuple(out)
