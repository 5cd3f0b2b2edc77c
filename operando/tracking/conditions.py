"""Which columns are conditions, and the blocks of consecutive steps under one condition.

Every user column of the conditions table defines the condition (a potential, a
gas, a temperature, a loading, a sample name), unless the caller says otherwise.
Not conditions: the step number, the file, time columns (they change every step),
what instrument logs measure beside the conditions (``MEASURED_COLUMNS``, ``*_spread``),
scan identifiers (``label``: an Athena group name; ``scan``, ``name``, ``id``), and the
analysis results of a ``steps.csv`` table.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..schema import is_result_column

#: Columns that hold time; a condition never changes with every step.
TIME_COLUMNS = ("time_s", "time", "timestamp", "elapsed_s", "datetime", "date", "start_time")
#: Columns that name a scan (an Athena group label, a scan name), not a condition.
IDENTIFIER_COLUMNS = ("label", "group", "scan", "scan_name", "name", "filename", "id")
#: What instrument logs measure or flag beside the conditions (``io.conditions_from_logs``):
#: the control mode (its open circuit is already ``potential_V = "OCP"``), measured
#: potentials and currents, the spread of a signal, a scan whose setpoint changed.
MEASURED_COLUMNS = ("control", "current_mA", "ewe_V", "ocv_V", "conditions_mixed")
#: Units appended to condition values in labels.
_UNITS = {"potential_V": "V", "temperature_K": "K"}


def default_condition_columns(table: pd.DataFrame) -> list[str]:
    """The columns of ``table`` that define a condition (see the module docstring)."""
    out = []
    for column in table.columns:
        name = str(column)
        if is_result_column(name) or is_time(name):
            continue
        if name.lower() in IDENTIFIER_COLUMNS:
            continue
        if name in MEASURED_COLUMNS or name.endswith("_spread"):
            continue
        out.append(name)
    return out


def is_time(name: str) -> bool:
    """A time column (``time_s``, ``time_h``, ``elapsed_s``, ``timestamp`` ...)."""
    low = str(name).lower()
    return low in TIME_COLUMNS or low.startswith(("time", "elapsed"))


def check_columns(table: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    columns = list(columns)
    for c in columns:
        if c not in table.columns:
            raise DataError(f"condition column '{c}' is not in the steps table; columns are "
                            f"{list(table.columns)}")
    return columns


def condition_value(column: str, value: Any, decimals: int) -> tuple[Any, str]:
    """(comparison key, display label) of one condition value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ("", ""), "?"
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return ("s", text.casefold()), text
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool):
        v = float(value)
        if math.isnan(v):
            return ("", ""), "?"
        v = round(v, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
        unit = _UNITS.get(column, "")
        label = f"{v:g}" if column != "potential_V" else f"{v:.2f}"
        return ("n", v), f"{label} {unit}".strip()
    text = str(value).strip()
    return ("s", text.casefold()), text


def blocks(table: pd.DataFrame, columns: list[str], decimals: int):
    """``(keys, labels, block)``: every step's condition key and label, and the number
    of its block of consecutive steps with one key.

    Labels name only the columns that vary ("CO+O2" rather than "CO+O2, 423 K").
    """
    keys, parts_all = [], []
    rows = table[columns].itertuples(index=False) if columns else [()] * len(table)
    for row in rows:
        parts = [condition_value(c, v, decimals) for c, v in zip(columns, row)]
        keys.append(tuple(p[0] for p in parts))
        parts_all.append([p[1] for p in parts])
    varying = [j for j in range(len(columns)) if len({k[j] for k in keys}) > 1]
    shown = varying or list(range(len(columns)))
    labels = [", ".join(p[j] for j in shown) if shown else "all" for p in parts_all]
    block = np.zeros(len(table), dtype=int)
    for i in range(1, len(table)):
        block[i] = block[i - 1] + (keys[i] != keys[i - 1])
    return keys, labels, block
