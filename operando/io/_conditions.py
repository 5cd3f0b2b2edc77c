"""The conditions table: loading, tidying and matching it to the spectra read."""

from __future__ import annotations

import csv
import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, OperandoWarning, ReadError
from ._messages import short_list

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
            table = pd.read_csv(path, skipinitialspace=True, comment=None,
                                sep=_separator(path))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                ValueError) as exc:
            raise ReadError(path, f"could not read the conditions CSV: {exc}",
                            "a CSV file with a header row") from None
    else:
        raise ConfigError("conditions must be a CSV path or a pandas DataFrame, got "
                          f"{type(conditions).__name__}")
    table.columns = [str(c).strip() for c in table.columns]
    return check_known_columns(tidy_mixed(table), conditions if isinstance(conditions, (str, Path))
                               else "conditions table")


def read_growing_conditions(raw: bytes) -> tuple[pd.DataFrame, list[str]]:
    """The rows of a conditions CSV still being written, and the problems of those left out.

    Only complete lines count (up to the last newline).  A complete row that the batch
    loader (:func:`load_conditions`) would refuse, or that would stop the matching, is
    left out and named instead of failing the whole table: more fields than the header,
    an unclosed quote, bytes that are not UTF-8, text in ``time_s``/``temperature_K``, a
    file (or step) already listed on an earlier line.  The scan it names is then not listed, so a
    live reader waits for it until the row is fixed.  A header that is not complete yet
    lists nothing.

    Parameters
    ----------
    raw : bytes
        The file's content as read now.

    Returns
    -------
    (DataFrame, list of str)
        The good rows parsed as :func:`load_conditions` parses the file (not yet
        tidied: pass it to ``load_conditions``), and one ``"line N: problem"`` per row
        left out.
    """
    lines = raw[:raw.rfind(b"\n") + 1].splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    empty = pd.DataFrame({"file": pd.Series([], dtype=object)})
    if start is None:
        return empty, []
    try:
        header = lines[start].decode("utf-8")
    except UnicodeDecodeError:
        return empty, [f"line {start + 1}: the header is not UTF-8 text"]
    sep = ";" if ";" in header and "," not in header else ","
    names = [n.strip() for n in next(csv.reader([header], delimiter=sep, skipinitialspace=True))]
    key = next((k for k in ("file", "step") if k in names), None)
    numeric = [names.index(c) for c in NUMERIC_CONDITIONS if c in names]
    good, problems, seen = [lines[start]], [], {}
    for n, line in enumerate(lines[start + 1:], start=start + 2):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"line {n}: not UTF-8 text")
            continue
        row = [v.strip() for v in next(csv.reader([text], delimiter=sep,
                                                  skipinitialspace=True), [])]
        problem = "an unclosed quote" if text.count('"') % 2 else _row_problem(row, names, numeric)
        if problem is None and key is not None:
            value = row[names.index(key)] if names.index(key) < len(row) else ""
            if value in seen:
                problem = f"{key} {value!r} is already on line {seen[value]}"
            seen.setdefault(value, n)
        if problem is not None:
            problems.append(f"line {n}: {problem}")
            continue
        good.append(line)
    table = pd.read_csv(io.BytesIO(b"".join(good)), skipinitialspace=True, comment=None, sep=sep)
    return table, problems


def _row_problem(row: list[str], names: list[str], numeric: list[int]) -> str | None:
    if len(row) > len(names):
        return f"{len(row)} fields, the header has {len(names)}"
    for j in numeric:
        value = row[j] if j < len(row) else ""
        try:
            if value:
                float(value.replace(",", ".") if _DECIMAL_COMMA.match(value) else value)
        except ValueError:
            return f"{names[j]} must be a number, not {value!r}"
    return None


def _separator(path: Path) -> str:
    """``;`` for a spreadsheet export that separates with semicolons (decimal-comma locales),
    else ``,``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except OSError:
        return ","
    return ";" if ";" in first and "," not in first else ","


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
        keys = []
        for row, value in enumerate(table["step"], start=1):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if not (np.isfinite(number) and number == int(number)):
                raise ConfigError(f"conditions 'step' column must hold whole numbers (0-based "
                                  f"step of each row); row {row} holds {value!r}")
            keys.append(str(int(number)))
        return keys
    return [str(v).strip() for v in table[key]]


#: Condition columns that must hold numbers.
NUMERIC_CONDITIONS = ("temperature_K", "time_s")
#: Condition columns holding numbers or labels (an open-circuit step has no set potential).
LABELLED_CONDITIONS = ("potential_V",)
#: Labels expected in a potential column (others are kept too, with a warning).
POTENTIAL_LABELS = {"ocp", "ocv", "open circuit", "opencircuit", "rest", "none", "off", "dry",
                    "n/a", "na", ""}
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d*,\d+\s*$")


def check_known_columns(table: pd.DataFrame, source="conditions table") -> pd.DataFrame:
    """Numbers where the known condition columns need them.

    A decimal comma (``"0,5"``, a European spreadsheet's habit) in
    ``potential_V``, ``temperature_K`` or ``time_s`` is read as a decimal
    point with a warning naming the rows.  Other text is refused in
    ``temperature_K`` and ``time_s`` (ConfigError naming the row) and kept as a
    label in ``potential_V`` (``"OCP"``), with a warning when it is not a
    usual label such as OCP/OCV (a typo like ``"abc"`` or ``"0.5V"``).
    """
    name = Path(str(source)).name if isinstance(source, (str, Path)) else str(source)
    table = table.copy()
    for column in NUMERIC_CONDITIONS + LABELLED_CONDITIONS:
        if column not in table.columns:
            continue
        values = list(table[column])
        commas = [i for i, v in enumerate(values)
                  if isinstance(v, str) and _DECIMAL_COMMA.match(v)]
        for i in commas:
            values[i] = float(values[i].strip().replace(",", "."))
        if commas:
            warnings.warn(f"{name}: {column} written with a decimal comma in "
                          f"{short_list([_row_name(table, i) for i in commas])} (e.g. "
                          f"{table[column].iloc[commas[0]]!r}); read as "
                          f"{values[commas[0]]:g}", OperandoWarning, stacklevel=3)
        text = [i for i, v in enumerate(values) if isinstance(v, str)]
        if text and column in NUMERIC_CONDITIONS:
            i = text[0]
            raise ConfigError(f"{name}: {column} must hold numbers; {_row_name(table, i)} holds "
                              f"{values[i]!r}")
        odd = [i for i in text if values[i].strip().lower() not in POTENTIAL_LABELS]
        if odd:
            warnings.warn(f"{name}: {column} holds text that is not a number nor a usual label "
                          f"such as 'OCP' in {short_list([_row_name(table, i) for i in odd])} (e.g. "
                          f"{values[odd[0]]!r}); kept as a label (check for a typo or a unit "
                          "written into the value)", OperandoWarning, stacklevel=3)
        if commas:
            kind = float if not text else object
            table[column] = pd.Series(values, dtype=kind, index=table.index)
    return table


def _row_name(table: pd.DataFrame, i: int) -> str:
    for key in ("step", "file"):
        if key in table.columns:
            return f"row {i + 1} ({key} {table[key].iloc[i]})"
    return f"row {i + 1}"


def match_rows(candidates: list[list[str]], table: pd.DataFrame, key: str,
               names: list[str], allow_missing: bool = False,
               warn_extra: bool = True) -> list[int | None]:
    """Row index of ``table`` for each item (candidates are the item's acceptable keys).

    Raises ConfigError for duplicated keys and (unless ``allow_missing``, which
    gives ``None`` for them) for items without a row; warns about rows
    matching no item.
    """
    keys = _keys(table, key)
    dups = list(dict.fromkeys(k for k, again in zip(keys, pd.Series(keys).duplicated()) if again))
    if dups:
        raise ConfigError(f"conditions table: duplicated {key} value(s) {short_list(dups)}; "
                          f"each {key} needs exactly one row")
    position = {k: i for i, k in enumerate(keys)}
    rows, missing = [], []
    for cands, name in zip(candidates, names):
        hit = next((position[c] for c in cands if c in position), None)
        if hit is None:
            missing.append(name)
        rows.append(hit)
    if missing and not allow_missing:
        raise ConfigError(f"conditions table has no row for {len(missing)} {key}(s): "
                          f"{short_list(missing)}; add a row keyed by '{key}' for each")
    extra = sorted(set(range(len(keys))) - set(rows))
    if extra and warn_extra:
        warnings.warn(f"conditions table rows for {len(extra)} {key}(s) not read are "
                      f"ignored: {short_list([keys[i] for i in extra])}", OperandoWarning,
                      stacklevel=3)
    return rows


def condition_key(table: pd.DataFrame, prefer: str) -> str:
    if prefer in table.columns:
        return prefer
    other = "step" if prefer == "file" else "file"
    if other in table.columns:
        return other
    raise ConfigError(f"conditions table needs a '{prefer}' column to match spectra; columns "
                      f"are {short_list(table.columns, 8, quote=True)}")


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
            cands = [f, Path(f.split("#")[0]).name, Path(f).stem, _inner_stem(Path(f))]
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


def order_files(files: list[Path], table: pd.DataFrame | None,
                keep_order: bool = False) -> tuple[list[Path], list[Path]]:
    """The files to read, in order, and those the conditions table does not list.

    Order: the given one when ``keep_order`` (an explicit list of files), else
    the conditions table's row order when given (keyed by basename), else
    natural name order.  With a conditions table the table defines the
    series: files it does not list (a foil scan, an aborted scan) are returned
    second, to be skipped with a warning, so they are named but never silently
    mixed in.
    """
    if not keep_order:
        files = sorted(files, key=lambda p: natural_key(p.name))
    if table is None:
        return list(files), []
    if "file" not in table.columns:
        raise ConfigError("the conditions table for a folder or list of files needs a 'file' "
                          f"column (file basenames); columns are {short_list(table.columns, 8, quote=True)}")
    candidates = [[p.name, p.stem, _inner_stem(p)] for p in files]
    # rows naming no file found are reported once, when the table is attached
    rows = match_rows(candidates, table, "file", [p.name for p in files], allow_missing=True,
                      warn_extra=False)
    listed = [(row, i) for i, row in enumerate(rows) if row is not None]
    unlisted = [files[i] for i, row in enumerate(rows) if row is None]
    if not listed:
        raise ConfigError(f"the conditions table lists none of the {len(files)} files found "
                          f"(e.g. {short_list([p.name for p in files], 3)}); its 'file' column "
                          "must hold their basenames")
    if keep_order:
        return [files[i] for _, i in listed], unlisted
    return [files[i] for _, i in sorted(listed, key=lambda pair: pair[0])], unlisted


def _inner_stem(path: Path) -> str:
    """``scan_3.dat.gz`` -> ``scan_3`` (a compressed file keyed by its plain name's stem)."""
    from ._compress import inner_name

    return Path(inner_name(path)).stem
