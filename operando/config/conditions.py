"""``[conditions]``: conditions from time (instrument logs) and from the scans' headers.

``[series] conditions`` stays the hand-made table keyed by file; ``[conditions]``
holds what is aligned by time or read from every scan's header, joined to that
table when both are given (see :func:`operando.io.conditions_from_logs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .._util.validate import check_keys
from ..errors import ConfigError
from .sections import ConditionsConfig
from .values import resolve_path

#: Keys of one ``[conditions] logs`` entry (see :class:`operando.io.LogSpec`).
LOG_KEYS = ("file", "time", "start", "columns", "timezone", "offset_s", "delay_s", "kind",
            "format", "ph", "reference_V")
_NUMBERS = ("offset_s", "delay_s", "ph", "reference_V")


def build_conditions(value: Mapping, base: Path) -> ConditionsConfig:
    check_keys("[conditions]", value, ("logs", "headers", "timezone"))
    logs = value.get("logs", [])
    if not isinstance(logs, list):
        raise ConfigError(f"[conditions] logs = {logs!r}: give a list of tables, e.g. "
                          '[{ file = "gas.csv", time = "time" }]')
    entries = []
    for i, entry in enumerate(logs, start=1):
        if isinstance(entry, str):
            entry = {"file": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("file"), str):
            raise ConfigError(f"[conditions] logs entry {i} needs file = \"...\" (got {entry!r})")
        check_keys(f"[conditions] logs entry {i}", entry, LOG_KEYS)
        entry = dict(entry, file=resolve_path(base, entry["file"]))
        for key in _NUMBERS:
            if key in entry and (isinstance(entry[key], bool)
                                 or not isinstance(entry[key], (int, float))):
                raise ConfigError(f"[conditions] logs entry {i}: {key} = {entry[key]!r} must "
                                  "be a number")
        columns = entry.get("columns")
        if columns is not None and not (isinstance(columns, (list, Mapping)) and all(
                isinstance(c, str) for c in columns)):
            raise ConfigError(f"[conditions] logs entry {i}: columns must be a list of channel "
                              "names or a table of renames")
        entries.append(tuple(sorted((k, tuple(v) if isinstance(v, list) else
                                     (tuple(sorted(v.items())) if isinstance(v, Mapping) else v))
                                    for k, v in entry.items())))
    headers = value.get("headers", {})
    if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError("[conditions] headers must be a table of column = \"Header.field\"")
    timezone = value.get("timezone")
    if timezone is not None and not isinstance(timezone, str):
        raise ConfigError(f"[conditions] timezone = {timezone!r}: an IANA zone name such as "
                          "'Europe/Berlin'")
    return ConditionsConfig(logs=tuple(entries), headers=tuple(headers.items()),
                            timezone=timezone)
