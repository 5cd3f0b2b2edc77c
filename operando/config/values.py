"""Validators of configuration values: each names the section, the key, the value and
what is accepted (:class:`~operando.errors.ConfigError`)."""

from __future__ import annotations

import glob as _glob
import stat
from pathlib import Path
from typing import Any, Mapping

from .._util.rules import Rejected
from ..errors import ConfigError


# ------------------------------------------------------------ value validators
def reject(section: str, key: str, value: Any, accepted: str):
    """Raise the configuration's one message: ``[section] key = value: must be accepted``."""
    raise ConfigError(f"[{section}] {key} = {value!r}: must be {accepted}")


def get(section: str, key: str, value: Mapping, rule):
    """``value[key]`` (``value`` is the section's table) as ``rule`` reads it (a rule of
    :mod:`operando._util.rules`); None when the key is absent."""
    if key not in value:
        return None
    try:
        return rule(value[key])
    except Rejected as exc:
        reject(section, key, value[key], str(exc))


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
