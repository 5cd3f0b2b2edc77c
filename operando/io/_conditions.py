"""The conditions table: loading, tidying and matching it to the spectra read."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, OperandoWarning, ReadError

log = logging.getLogger(__name__)


def load_conditions(conditions) -> pd.DataFrame | None:
    """A conditions CSV path or DataFrame -> tidied DataFrame (or None)."""
    if conditions is None:
        return None
    if isinstance(conditions, pd.DataFrame):
        table = conditions.copy()
    elif isinstance(conditions, (str, Path)):
        path = Path(conditions)
        if not path.is_file():
            raise ReadError(path, "conditions file not found", "a CSV file with a header row")
        try:
            table = pd.read_csv(path, skipinitialspace=True, comment=None)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                ValueError) as exc:
            raise ReadError(path, f"could not read the conditions CSV: {exc}",
                            "a CSV file with a header row") from None
    else:
        raise ConfigError("conditions must be a CSV path or a pandas DataFrame, got "
                          f"{type(conditions).__name__}")
    table.columns = [str(c).strip() for c in table.columns]
    return tidy_mixed(table)


def tidy_mixed(table: pd.DataFrame) -> pd.DataFrame:
    """Object columns: numbers become floats; all-number columns become float columns.

    A column mixing numbers and labels (``potential_V`` with ``"OCP"``) stays an
    object column holding floats and strings.
    """
    table = table.copy()
    for column in table.columns:
        dtype = table[column].dtype
        if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            continue
        values = []
        numeric = 0
        texts = 0
        for value in table[column]:
            if isinstance(value, str):
                text = value.strip()
                try:
                    values.append(float(text))
                    numeric += 1
                except ValueError:
                    values.append(text)
                    texts += 1
            else:
                values.append(value)
        if numeric and not texts:
            table[column] = pd.Series(values, dtype=float, index=table.index)
        elif numeric:
            table[column] = pd.Series(values, dtype=object, index=table.index)
    return table


def _keys(table: pd.DataFrame, key: str) -> list[str]:
    if key == "step":
        try:
            return [str(int(v)) for v in table["step"]]
        except (TypeError, ValueError):
            raise ConfigError(f"conditions 'step' column must hold integers; got "
                              f"{list(table['step'])[:5]}") from None
    return [str(v).strip() for v in table[key]]


def match_rows(candidates: list[list[str]], table: pd.DataFrame, key: str,
               names: list[str], allow_missing: bool = False) -> list[int | None]:
    """Row index of ``table`` for each item (candidates are the item's acceptable keys).

    Raises ConfigError for duplicated keys and (unless ``allow_missing``, which
    gives ``None`` for them) for items without a row; warns about rows
    matching no item.
    """
    keys = _keys(table, key)
    seen, dups = set(), []
    for k in keys:
        if k in seen and k not in dups:
            dups.append(k)
        seen.add(k)
    if dups:
        raise ConfigError(f"conditions table: duplicated {key} value(s) {dups}; each {key} "
                          "needs exactly one row")
    position = {k: i for i, k in enumerate(keys)}
    rows, missing = [], []
    for cands, name in zip(candidates, names):
        hit = next((position[c] for c in cands if c in position), None)
        if hit is None:
            missing.append(name)
        rows.append(hit)
    if missing and not allow_missing:
        raise ConfigError(f"conditions table has no row for {len(missing)} {key}(s): "
                          f"{missing[:20]}{' ...' if len(missing) > 20 else ''}; add a row "
                          f"keyed by '{key}' for each")
    extra = sorted(set(range(len(keys))) - set(rows))
    if extra:
        warnings.warn(f"conditions table rows for {key}(s) not read are ignored: "
                      f"{[keys[i] for i in extra][:20]}", OperandoWarning, stacklevel=3)
    return rows


def condition_key(table: pd.DataFrame, prefer: str) -> str:
    if prefer in table.columns:
        return prefer
    other = "step" if prefer == "file" else "file"
    if other in table.columns:
        return other
    raise ConfigError(f"conditions table needs a '{prefer}' column to match spectra; columns "
                      f"are {list(table.columns)}")


def attach(base: pd.DataFrame, table: pd.DataFrame | None, prefer: str,
           labels: list[str] | None = None) -> pd.DataFrame:
    """Add the user's condition columns to ``base`` (``step``, ``file``[, ``label``])."""
    if table is None:
        return base
    key = condition_key(table, prefer)
    if key == "step":
        candidates = [[str(int(s))] for s in base["step"]]
        names = [str(int(s)) for s in base["step"]]
    else:
        candidates = []
        for i, f in enumerate(base["file"]):
            f = str(f)
            cands = [f, Path(f.split("#")[0]).name, Path(f).stem]
            if "#" in f:
                cands.append(f.split("#", 1)[1])
            if labels:
                cands.append(str(labels[i]))
            candidates.append(cands)
        names = [str(f) for f in base["file"]]
    rows = match_rows(candidates, table, key, names)
    picked = table.iloc[rows].reset_index(drop=True)
    out = base.reset_index(drop=True).copy()
    for column in picked.columns:
        if column in ("step", "file"):
            continue
        out[column] = picked[column].to_numpy()
    return out


def natural_key(name: str):
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def order_files(files: list[Path], table: pd.DataFrame | None) -> tuple[list[Path], list[Path]]:
    """Files in conditions-table order when given (keyed by basename), else natural order.

    With a conditions table the table defines the series: files in the folder
    that it does not list (a foil scan, an aborted scan) are returned second,
    to be skipped with a warning, so they are named but never silently mixed in.
    """
    files = sorted(files, key=lambda p: natural_key(p.name))
    if table is None:
        return files, []
    if "file" not in table.columns:
        raise ConfigError("the conditions table for a folder or list of files needs a 'file' "
                          f"column (file basenames); columns are {list(table.columns)}")
    candidates = [[p.name, p.stem] for p in files]
    rows = match_rows(candidates, table, "file", [p.name for p in files], allow_missing=True)
    listed = [(row, i) for i, row in enumerate(rows) if row is not None]
    unlisted = [files[i] for i, row in enumerate(rows) if row is None]
    if not listed:
        raise ConfigError(f"the conditions table lists none of the {len(files)} files found "
                          f"(e.g. {[p.name for p in files[:3]]}); its 'file' column must hold "
                          "their basenames")
    return [files[i] for _, i in sorted(listed, key=lambda pair: pair[0])], unlisted
