"""Headers of text column files: XDI (held to its grammar) and plain ``#``-labelled columns.

The numbers and header of one file travel as a :class:`TextTable`; the
functions here fill its labels, header fields, element, edge, edge energy and
mono d-spacing.  XDI files follow the XDI project's grammar of
``Family.key: value`` header lines (see ``tests/io/test_bad_xdi.py``); plain
files (NSLS-II QAS/ISS and the like) are read leniently.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ._messages import warn as _warn
from ._rows import is_number as _is_number

log = logging.getLogger(__name__)

_SPLIT = re.compile(r"[\s,;]+")
_XDI_FIELD = re.compile(r"^([^:]*?)\s*:\s*(.*)$")
_XDI_FAMILY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_XDI_KEY = re.compile(r"^[A-Za-z0-9_]+$")
_NUMBER_UNIT = re.compile(r"^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")

#: Lattice spacings (Angstrom) of common monochromator crystals, used only when an
#: XDI file gives an angle column and a ``Mono.name`` but no ``Mono.d_spacing``.
MONO_D_SPACING = {"si111": 3.13551, "si220": 1.92010, "si311": 1.63747, "si400": 1.35775,
                  "ge111": 3.26636, "ge220": 2.00018, "ge311": 1.70583}


@dataclass
class TextTable:
    """Numbers and header of one text file (before any channel is chosen)."""

    path: Path
    labels: list[str]
    data: np.ndarray  # (n_rows, n_cols)
    lines: np.ndarray  # 1-based line number of every row
    kind: str  # "xdi" | "columns"
    header: dict = field(default_factory=dict)
    element: str | None = None
    edge: str | None = None
    edge_energy: float | None = None
    d_spacing: float | None = None



def strip_comment(line: str) -> str:
    return line.lstrip()[1:].strip()


def _label_line(header_lines, ncols) -> list[str] | None:
    """The last comment line with exactly ``ncols`` tokens, as labels."""
    for _, line in reversed(header_lines[-3:]):
        tokens = [t for t in _SPLIT.split(strip_comment(line)) if t]
        if len(tokens) == ncols and not all(_is_number(t) for t in tokens):
            return [t.lower() if t.lower() in ("energy", "i0") else t for t in tokens]
    return None


def unique_labels(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        key = label.lower()
        if key in seen:
            seen[key] += 1
            label = f"{label}_{seen[key]}"
        else:
            seen[key] = 1
        out.append(label)
    return out


def parse_plain_header(table: TextTable, header_lines, ncols: int) -> None:
    header = {}
    for _, line in header_lines:
        match = _XDI_FIELD.match(strip_comment(line))
        if match and match.group(1) and len(match.group(1)) < 60:
            header[match.group(1).strip()] = match.group(2).strip()
    table.header = header
    labels = _label_line(header_lines, ncols)
    table.labels = unique_labels(labels or [f"col{i + 1}" for i in range(ncols)])
    if labels is None:
        log.info("%s: no label line with %d labels; columns named col1..col%d",
                 table.path.name, ncols, ncols)
    # NSLS-II QAS/ISS and similar: "Element: Ruthenium ( 44)", "Edge: K", "E0: 22117".
    lower = {k.lower(): v for k, v in header.items()}
    element = lower.get("element") or lower.get("element.symbol")
    if element:
        table.element = element_symbol(element)
    edge = lower.get("edge") or lower.get("element.edge")
    if edge and valid_edge(edge.strip()):
        table.edge = valid_edge(edge.strip())
    for key in ("e0", "edge energy", "scan.edge_energy"):
        if key in lower:
            number = _NUMBER_UNIT.match(lower[key])
            if number:
                table.edge_energy = float(number.group(1))
                break


def element_symbol(text: str) -> str | None:
    """'Cu', 'Ruthenium ( 44)', '29' -> element symbol, or None."""
    text = text.strip()
    number = re.search(r"\(\s*(\d+)\s*\)", text) or re.fullmatch(r"(\d+)", text)
    candidates = []
    if number:
        candidates.append(int(number.group(1)))
    candidates.append(text.split()[0] if text.split() else text)
    from .._util.elements import element_symbol

    for candidate in candidates:
        symbol = element_symbol(candidate)
        if symbol:
            return symbol
    import xraydb  # names are not in the table

    for candidate in candidates:
        try:
            if isinstance(candidate, int):
                return xraydb.atomic_symbol(candidate)
            symbol = xraydb.atomic_symbol(xraydb.atomic_number(candidate))
            return symbol
        except Exception:  # xraydb raises bare ValueError/KeyError/... for unknown names
            continue
    return None


_EDGES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5", "N1", "N2", "N3", "N4", "N5")


def valid_edge(text: str) -> str | None:
    text = text.strip().upper()
    return text if text in _EDGES else None


def _check_value(table: TextTable, name: str, value: str, line: int) -> None:
    """Warn (never raise) about malformed values of well-known optional XDI fields."""
    key = name.lower()
    units = {"sample.temperature": ("k", "c", "f", ""), "facility.energy": ("gev", "mev"),
             "facility.current": ("ma", "a"), "scan.edge_energy": ("ev", "kev", ""),
             "mono.d_spacing": ("", "a", "angstrom")}
    if key in ("scan.start_time", "scan.end_time"):
        from ._logbase import parse_datetime

        if parse_datetime(value) is None:
            _warn(table.path, f"line {line}: {name} {value!r} is not an ISO 8601 date-time "
                              "(nor MM/DD/YYYY HH:MM:SS); ignored")
        return
    if key in units:
        match = _NUMBER_UNIT.match(value)
        if not match or match.group(4).lower() not in units[key]:
            _warn(table.path, f"line {line}: {name} {value!r} is not a number with units "
                              f"{'/'.join(u for u in units[key] if u) or '(none)'}; ignored")
            return
        number = float(match.group(1))
        if key == "mono.d_spacing":
            table.d_spacing = number
        elif key == "scan.edge_energy":
            table.edge_energy = number * (1000.0 if match.group(4).lower() == "kev" else 1.0)


def parse_xdi_header(table: TextTable, header_lines, ncols: int) -> None:
    path = table.path
    fields: dict[str, str] = {}
    columns: dict[int, str] = {}
    state = "fields"
    saw_dashes = False
    after_dashes: list[tuple[int, str]] = []
    user_comments: list[str] = []
    for number, line in header_lines[1:]:
        if line[0] != "#":
            _warn(path, f"line {number}: comment character {line[0]!r} is not '#'; "
                        "line ignored")
            continue
        body = strip_comment(line)
        if body.startswith("---"):
            state, saw_dashes = "labels", True
            continue
        if state == "labels":
            after_dashes.append((number, line))
            continue
        if body.startswith("///"):
            state = "comments"
            continue
        if state == "comments":
            if body:
                user_comments.append(body)
            after_dashes.append((number, line))
            continue
        if not body:
            continue
        match = _XDI_FIELD.match(body)
        if not match:
            raise ReadError(path, f"line {number}: XDI header line {body!r} is not "
                                  "'Family.key: value' (no ':')",
                            "XDI header lines '# Family.key: value'")
        name, value = match.group(1), match.group(2).strip()
        parts = name.split(".")
        if len(parts) != 2 or not _XDI_FAMILY.match(parts[0]) or not _XDI_KEY.match(parts[1]):
            raise ReadError(path, f"line {number}: XDI header field name {name!r} is not "
                                  "'Family.key' (one '.', Family starting with a letter)",
                            "XDI header lines '# Family.key: value'")
        if not value:
            raise ReadError(path, f"line {number}: XDI header field {name!r} has no value",
                            "XDI header lines '# Family.key: value'")
        fields[name] = value
        if parts[0].lower() == "column":
            try:
                index = int(parts[1])
            except ValueError:
                continue
            columns[index] = value.split()[0]
        else:
            _check_value(table, name, value, number)
    if not saw_dashes:
        _warn(path, "no '#----' line ends the XDI header; took the last comment line as labels")
    table.header = dict(fields)
    if user_comments:
        table.header["user_comments"] = "\n".join(user_comments)

    # Column labels: Column.N fields first, then the label line, then colN.
    label_line = _label_line(after_dashes, ncols)
    labels = []
    missing = []
    for i in range(1, ncols + 1):
        if i in columns:
            labels.append(columns[i])
        else:
            missing.append(i)
            labels.append(label_line[i - 1] if label_line else f"col{i}")
    extra = sorted(i for i in columns if i > ncols)
    if not columns:
        _warn(path, "no 'Column.N' header fields; labels "
                    + ("taken from the line before the data" if label_line else "set to colN"))
    elif missing:
        _warn(path, f"no 'Column.N' field for column(s) {missing}; named "
                    + ", ".join(labels[i - 1] for i in missing))
    if extra:
        _warn(path, f"'Column.N' field(s) {extra} beyond the {ncols} data columns; ignored")
    table.labels = unique_labels(labels)

    lower = {k.lower(): v for k, v in fields.items()}
    symbol, edge = lower.get("element.symbol"), lower.get("element.edge")
    if symbol is None:
        _warn(path, "no Element.symbol in the XDI header")
    else:
        table.element = element_symbol(symbol) if len(symbol.strip()) <= 3 else None
        if table.element is None or table.element.lower() != symbol.strip().lower():
            table.element = None
            _warn(path, f"Element.symbol {symbol!r} is not an element symbol; ignored")
    if edge is None:
        _warn(path, "no Element.edge in the XDI header")
    else:
        table.edge = valid_edge(edge)
        if table.edge is None:
            _warn(path, f"Element.edge {edge!r} is not an X-ray edge ({', '.join(_EDGES)}); "
                        "ignored")
    if table.d_spacing is None and "mono.name" in lower:
        key = re.sub(r"[^a-z0-9]", "", lower["mono.name"].lower())
        if key in MONO_D_SPACING:
            table.header["_d_spacing_from_mono_name"] = MONO_D_SPACING[key]
