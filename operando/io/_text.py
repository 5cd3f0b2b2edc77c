"""Parse one text column file (XDI, plain ``#``-labelled columns, NSLS-II QAS/ISS).

The parser is deliberately strict about the data table (every row must have the
same number of numbers; a partial *last* row is the only thing repaired) and
lenient about headers (unknown or malformed optional fields give a warning).
XDI files are held to the XDI grammar of ``Family.key: value`` header lines,
following the XDI project's own ``baddata`` set (see ``tests/test_bad_xdi.py``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import OperandoWarning, ReadError

log = logging.getLogger(__name__)

ACCEPTED_TEXT = (
    "a text file of whitespace- or comma-separated number columns with a '#' header line "
    "of labels (XDI, plain columns, NSLS-II QAS/ISS)"
)

_COMMENT_CHARS = "#!%;"
_SPLIT = re.compile(r"[\s,;]+")
_XDI_VERSION = re.compile(r"^#\s*XDI/\d+(\.\d+)*", re.IGNORECASE)
_XDI_FIELD = re.compile(r"^([^:]*?)\s*:\s*(.*)$")
_XDI_FAMILY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_XDI_KEY = re.compile(r"^[A-Za-z0-9_]+$")
_NUMBER_UNIT = re.compile(r"^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")

#: A byte that ``bytes.strip()`` keeps.
_NOT_BLANK = re.compile(rb"[^ \t\n\r\x0b\x0c]")
#: Bytes counted as binary by :func:`decode_text` (controls other than tab, LF, FF, CR).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
#: Fast reader (see :func:`_rows_fast`): separators become spaces and Fortran exponents
#: ``D``/``d`` become ``E``/``e``, exactly what the line-by-line reader does per token.
_FAST_TRANSLATION = bytes.maketrans(b",;dD", b"  eE")
#: After that translation a data block made only of these bytes goes to numpy's reader:
#: digits, signs, point, exponent, space/tab and the letters of nan/inf/infinity.
_FAST_BYTES = b"0123456789.+-eE \tnaiftyNAIFTY"
#: Data blocks of at least this many bytes made only of these (plain decimal numbers, no
#: nan/inf spellings) go to pyarrow's or pandas' C reader, 3-4x faster than numpy's on a
#: matrix file of a thousand spectra; below it their fixed cost (~1 ms) is not worth it.
_PANDAS_BYTES = b"0123456789.+-eE \t\n"
_PANDAS_MIN_BYTES = 1 << 18
#: The single-space layout :func:`_rows_pandas_flat` takes (no tabs: a tab next to a
#: space would be whitespace inside a token, which pandas skips and pyarrow refuses).
_FLAT_BYTES = b"0123456789.+-eE "

#: Lattice spacings (Angstrom) of common monochromator crystals, used only when an
#: XDI file gives an angle column and a ``Mono.name`` but no ``Mono.d_spacing``.
MONO_D_SPACING = {"si111": 3.13551, "si220": 1.92010, "si311": 1.63747, "si400": 1.35775,
                  "ge111": 3.26636, "ge220": 2.00018, "ge311": 1.70583}
#: hc in eV Angstrom (CODATA 2018).
HC_EV_ANGSTROM = 12398.419843


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
    energy_units: str | None = None


def _warn(path, message: str) -> None:
    warnings.warn(f"{Path(path).name}: {message}", OperandoWarning, stacklevel=4)


def decode_text(path, raw: bytes) -> str:
    """Bytes -> text, refusing empty and binary content."""
    if not _NOT_BLANK.search(raw):  # as `not raw.strip()`, without copying the file
        raise ReadError(path, "file is empty", ACCEPTED_TEXT)
    sample = raw[:65536]
    if b"\x00" in sample:
        raise ReadError(path, "file is binary (holds NUL bytes), not a text column file",
                        ACCEPTED_TEXT)
    control = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if control > 0.01 * len(sample):
        raise ReadError(path, "file is binary (holds control bytes), not a text column file",
                        ACCEPTED_TEXT)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Old beamline software writes latin-1 (degree signs, umlauts in comments).
        return raw.decode("latin-1")


def _float(token: str) -> float:
    # Fortran-style exponents (1.0D+03) appear in some beamline files.
    return float(token.replace("D", "E").replace("d", "e"))


def _is_number(token: str) -> bool:
    try:
        _float(token)
    except ValueError:
        return False
    return True


def _strip_comment(line: str) -> str:
    return line.lstrip()[1:].strip()


def parse_text(path, raw: bytes) -> TextTable:
    """Parse a text column file.

    Parameters
    ----------
    path : path-like
        Used in messages only.
    raw : bytes
        File content.

    Returns
    -------
    TextTable

    Raises
    ------
    ReadError
        Empty, binary, no numeric rows, a malformed row (wrong column count
        anywhere but the last row, a token that is not a number), or an XDI
        file breaking the XDI header grammar.
    """
    path = Path(path)
    text = decode_text(path, raw)
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    is_xdi = bool(_XDI_VERSION.match(first.strip()))
    if not is_xdi and path.suffix.lower() == ".xdi":
        raise ReadError(path, "first line is not an XDI version line such as '# XDI/1.0'",
                        "an XDI file starting with '# XDI/1.0', or a plain column file "
                        "with another extension")

    header_lines: list[tuple[int, str]] = []  # (line number, raw line)
    row_text: list[str] = []
    row_lines: list[int] = []
    in_data = False
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped[0] in _COMMENT_CHARS:
            if not in_data:
                header_lines.append((number, stripped))
            continue
        if not in_data:
            tokens = [t for t in _SPLIT.split(stripped) if t]
            if not _is_number(tokens[0]):
                # A label line without a comment character, or text before the table.
                header_lines.append((number, "#" + stripped))
                continue
        in_data = True
        row_text.append(stripped)
        row_lines.append(number)
    if not row_text:
        raise ReadError(path, "no rows of numbers found", ACCEPTED_TEXT)

    data = _rows_fast(row_text)
    if data is None:
        data, row_lines = _rows_line_by_line(path, row_text, row_lines)
    ncols = data.shape[1]
    if ncols < 2:
        raise ReadError(path, "the data table has a single column; need energy and at least "
                              "one signal column", ACCEPTED_TEXT)

    table = TextTable(path=path, labels=[], data=data, lines=np.array(row_lines),
                      kind="xdi" if is_xdi else "columns")
    if is_xdi:
        _parse_xdi_header(table, header_lines, ncols)
    else:
        _parse_plain_header(table, header_lines, ncols)
    return table


def _rows_fast(row_text: list[str]) -> np.ndarray | None:
    """The data table via a C reader, or None when only the careful reader can tell.

    Gives exactly the numbers of :func:`_rows_line_by_line` or None.  numpy's
    reader converts every token with ``PyOS_string_to_double``, as ``float()``
    does, so an ASCII token without ``_`` is read to the same bits by both and
    refused by both; the byte whitelist keeps out everything else ``float()``
    reads differently (``1_000``, non-ASCII digits and spaces).  Any token
    either refuses, a ragged table (including a truncated last row) or a row of
    separators only returns None, so the line-by-line reader gives the
    line-numbered error or warning.  Large tables of plain decimal numbers go
    to pyarrow's or pandas' reader first (:func:`_rows_pandas_flat`,
    :func:`_rows_pandas_table`, also exact).
    """
    big = sum(map(len, row_text)) >= _PANDAS_MIN_BYTES
    if big:
        data = _rows_pandas_flat(row_text)
        if data is not None:
            return data
    block = "\n".join(row_text)
    if not block.isascii():
        return None
    raw = block.encode("ascii")
    if b"," in raw or b";" in raw or b"d" in raw or b"D" in raw:   # (each `in` ~0.1 ms)
        raw = raw.translate(_FAST_TRANSLATION)
    plain = not raw.translate(None, _PANDAS_BYTES)
    if not plain and raw.translate(None, _FAST_BYTES + b"\n"):
        return None
    if plain and big:
        data = _rows_pandas_table(raw, len(row_text))
        if data is not None:
            return data
    try:
        data = np.loadtxt(raw.decode("ascii").split("\n"), dtype=float, comments=None,
                          delimiter=None, quotechar=None, ndmin=2)
    except ValueError:
        return None
    if data.shape[0] != len(row_text):  # numpy skipped a row holding separators only
        return None
    return data


# pandas' C reader on large tables of plain decimal numbers (no nan/inf spellings).  Exact:
# pandas >= 3.1 converts with fast_float and older pandas with float_precision="round_trip"
# (PyOS_string_to_double), both correctly rounded, so every token gets the bits float()
# gives; a token float() refuses (1e, 1.2.3, --1, +) raises in pandas too and the caller
# falls back.
def _read_csv_floats(raw: bytes, **options) -> np.ndarray | None:
    import io

    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(raw), header=None, dtype=np.float64, engine="c",
                            na_filter=False, skip_blank_lines=False, low_memory=False,
                            **_exact_float_option(pd.__version__), **options)
    except (ValueError, TypeError, OverflowError):  # ParserError, EmptyDataError too
        return None
    data = frame.to_numpy(dtype=np.float64)
    return None if np.isnan(data).any() else data   # plain numbers cannot give NaN


def _rows_pandas_flat(row_text: list[str]) -> np.ndarray | None:
    """Rows of numbers separated by single spaces (what ``np.savetxt`` writes), read as
    one long column (a third faster than a table of a thousand columns), or None.

    Every row must hold the same number of spaces and nothing but digits, signs,
    points, exponents and spaces; an empty token (double space) makes the
    readers raise (or give NaN, refused), so the row length is exact.
    """
    n_sep = row_text[0].count(" ")
    flat = " ".join(row_text)
    if not flat.isascii():
        return None
    raw = flat.encode("ascii")
    if raw.translate(None, _FLAT_BYTES) or not all(r.count(" ") == n_sep for r in row_text):
        return None
    data = _read_arrow_column(raw) if "pyarrow" in sys.modules else None
    if data is None:
        # the only separator left is " " (the line terminator here), so "," never splits
        data = _read_csv_floats(raw, sep=",", lineterminator=" ")
    if data is None or data.shape != (len(row_text) * (n_sep + 1), 1):
        return None
    return data.reshape(len(row_text), n_sep + 1)


def _read_arrow_column(raw: bytes) -> np.ndarray | None:
    """Space-separated plain numbers via pyarrow's CSV reader (~25 % faster than
    pandas'), as an (n, 1) array, or None.  Used only when pyarrow is already loaded
    (pandas >= 3 loads it): importing it for this would cost more than it saves.
    Exact as pandas' reader (fast_float, correctly rounded); an empty or bad
    token raises or gives a null, which comes back NaN and is refused."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        table = pa_csv.read_csv(
            io.BytesIO(raw.replace(b" ", b"\n")),
            read_options=pa_csv.ReadOptions(column_names=["x"], block_size=1 << 22),
            parse_options=pa_csv.ParseOptions(delimiter=",", quote_char=False,
                                              escape_char=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={"x": pa.float64()},
                                                  null_values=[], strings_can_be_null=False))
        data = table.column(0).to_numpy()
    except (pa.ArrowException, ValueError, TypeError):
        return None
    if data.dtype != np.float64 or np.isnan(data).any():
        return None
    return data.reshape(-1, 1)


def _rows_pandas_table(raw: bytes, n_rows: int) -> np.ndarray | None:
    """``raw`` (rows of plain numbers separated by runs of spaces/tabs) as a table, or None.

    A short row comes back NaN-padded and a long row raises, so ragged tables
    give None.
    """
    data = _read_csv_floats(raw, sep=r"\s+", index_col=False)
    if data is None or data.ndim != 2 or data.shape[0] != n_rows:
        return None
    return data


def _exact_float_option(version: str) -> dict:
    """read_csv's option for correctly rounded floats (pandas < 3.1: "round_trip"; from
    3.1 every mode is correctly rounded and the option is deprecated)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match and (int(match[1]), int(match[2])) >= (3, 1):
        return {}
    return {"float_precision": "round_trip"}


def _rows_line_by_line(path, row_text: list[str], row_lines: list[int]):
    """(data, row line numbers): the data table read token by token, naming bad lines.

    Drops a short last row with a warning (a truncated file); raises ReadError
    for any other row whose length differs from the most common one and for
    the first token that is not a number.
    """
    row_tokens = [[t for t in _SPLIT.split(text) if t] for text in row_text]
    row_lines = list(row_lines)
    counts = np.array([len(t) for t in row_tokens])
    values, freq = np.unique(counts, return_counts=True)
    ncols = int(values[np.argmax(freq)])
    if counts[-1] < ncols and len(row_tokens) > 1 and np.all(counts[:-1] == ncols):
        _warn(path, f"last row (line {row_lines[-1]}) has {counts[-1]} of {ncols} values "
                    "(file truncated?); dropped it")
        row_tokens.pop()
        row_lines.pop()
        counts = counts[:-1]
    bad = np.flatnonzero(counts != ncols)
    if bad.size:
        i = int(bad[0])
        raise ReadError(path, f"line {row_lines[i]} has {counts[i]} values but the data table "
                              f"has {ncols} columns",
                        "the same number of values on every data row")
    rows = []
    for tokens, number in zip(row_tokens, row_lines):
        try:
            rows.append([_float(t) for t in tokens])
        except ValueError:
            token = next(t for t in tokens if not _is_number(t))
            raise ReadError(path, f"line {number}: {token!r} is not a number",
                            "numbers only in the data table") from None
    return np.array(rows, dtype=float).reshape(len(rows), ncols), row_lines


def _label_line(header_lines, ncols) -> list[str] | None:
    """The last comment line with exactly ``ncols`` tokens, as labels."""
    for _, line in reversed(header_lines[-3:]):
        tokens = [t for t in _SPLIT.split(_strip_comment(line)) if t]
        if len(tokens) == ncols and not all(_is_number(t) for t in tokens):
            return [t.lower() if t.lower() in ("energy", "i0") else t for t in tokens]
    return None


def _unique(labels: list[str]) -> list[str]:
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


def _parse_plain_header(table: TextTable, header_lines, ncols: int) -> None:
    header = {}
    for _, line in header_lines:
        match = _XDI_FIELD.match(_strip_comment(line))
        if match and match.group(1) and len(match.group(1)) < 60:
            header[match.group(1).strip()] = match.group(2).strip()
    table.header = header
    labels = _label_line(header_lines, ncols)
    table.labels = _unique(labels or [f"col{i + 1}" for i in range(ncols)])
    if labels is None:
        log.info("%s: no label line with %d labels; columns named col1..col%d",
                 table.path.name, ncols, ncols)
    # NSLS-II QAS/ISS and similar: "Element: Ruthenium ( 44)", "Edge: K", "E0: 22117".
    lower = {k.lower(): v for k, v in header.items()}
    element = lower.get("element") or lower.get("element.symbol")
    if element:
        table.element = _element_symbol(element)
    edge = lower.get("edge") or lower.get("element.edge")
    if edge and _valid_edge(edge.strip()):
        table.edge = _valid_edge(edge.strip())
    for key in ("e0", "edge energy", "scan.edge_energy"):
        if key in lower:
            number = _NUMBER_UNIT.match(lower[key])
            if number:
                table.edge_energy = float(number.group(1))
                break


def _element_symbol(text: str) -> str | None:
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


def _valid_edge(text: str) -> str | None:
    text = text.strip().upper()
    return text if text in _EDGES else None


def _check_value(table: TextTable, name: str, value: str, line: int) -> None:
    """Warn (never raise) about malformed values of well-known optional XDI fields."""
    key = name.lower()
    units = {"sample.temperature": ("k", "c", "f", ""), "facility.energy": ("gev", "mev"),
             "facility.current": ("ma", "a"), "scan.edge_energy": ("ev", "kev", ""),
             "mono.d_spacing": ("", "a", "angstrom")}
    if key in ("scan.start_time", "scan.end_time"):
        try:
            _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            _warn(table.path, f"line {line}: {name} {value!r} is not an ISO 8601 date-time; "
                              "ignored")
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


def _parse_xdi_header(table: TextTable, header_lines, ncols: int) -> None:
    path = table.path
    fields: dict[str, str] = {}
    columns: dict[int, str] = {}
    column_units: dict[int, str] = {}
    state = "fields"
    saw_dashes = False
    after_dashes: list[tuple[int, str]] = []
    user_comments: list[str] = []
    for number, line in header_lines[1:]:
        if line[0] != "#":
            _warn(path, f"line {number}: comment character {line[0]!r} is not '#'; "
                        "line ignored")
            continue
        body = _strip_comment(line)
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
            words = value.split()
            columns[index] = words[0]
            if len(words) > 1:
                column_units[index] = words[1]
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
    table.labels = _unique(labels)
    table.energy_units = column_units.get(1)

    lower = {k.lower(): v for k, v in fields.items()}
    symbol, edge = lower.get("element.symbol"), lower.get("element.edge")
    if symbol is None:
        _warn(path, "no Element.symbol in the XDI header")
    else:
        table.element = _element_symbol(symbol) if len(symbol.strip()) <= 3 else None
        if table.element is None or table.element.lower() != symbol.strip().lower():
            table.element = None
            _warn(path, f"Element.symbol {symbol!r} is not an element symbol; ignored")
    if edge is None:
        _warn(path, "no Element.edge in the XDI header")
    else:
        table.edge = _valid_edge(edge)
        if table.edge is None:
            _warn(path, f"Element.edge {edge!r} is not an X-ray edge ({', '.join(_EDGES)}); "
                        "ignored")
    if table.d_spacing is None and "mono.name" in lower:
        key = re.sub(r"[^a-z0-9]", "", lower["mono.name"].lower())
        if key in MONO_D_SPACING:
            table.header["_d_spacing_from_mono_name"] = MONO_D_SPACING[key]
