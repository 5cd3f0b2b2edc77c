"""The numeric table of a text file: fast C readers where they are exact, else token by token.

Every reader here gives exactly the numbers of :func:`rows_line_by_line` (the
careful reader that names bad lines) or hands over by returning None.  Memory
is bounded by the file's size: a table whose first row is much wider than the
rest (a ragged table) never reaches a reader that would pad every row to the
first row's width.
"""

from __future__ import annotations

import re
import sys

import numpy as np

from ..errors import ReadError
from ._messages import warn

_SPLIT = re.compile(r"[\s,;]+")
#: Fast reader (see :func:`rows_fast`): separators become spaces and Fortran exponents
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

def to_float(token: str) -> float:
    # Fortran-style exponents (1.0D+03) appear in some beamline files.
    return float(token.replace("D", "E").replace("d", "e"))


def is_number(token: str) -> bool:
    try:
        to_float(token)
    except ValueError:
        return False
    return True


#: Text of the data rows converted at once by the C readers: a large table is read in
#: blocks of rows of about this many characters into one array, so the readers'
#: own copies (joined text, bytes, parsed columns) are of one block, not of the file.
_BLOCK_CHARS = 1 << 25


def rows_fast(row_text: list[str]) -> np.ndarray | None:
    """The data table via a C reader (:func:`block_fast`), block by block of rows for a
    large table (:data:`_BLOCK_CHARS`), or None when only the careful reader can tell.

    Blocks give the numbers of the whole table read at once (each value is converted
    on its own); a table whose blocks differ in width is ragged, so None.
    """
    sizes = np.fromiter(map(len, row_text), dtype=np.int64, count=len(row_text))
    ends = np.searchsorted(np.cumsum(sizes), np.arange(1, 1 + sizes.sum() // _BLOCK_CHARS)
                           * _BLOCK_CHARS) + 1
    bounds = sorted({0, len(row_text), *[int(e) for e in ends if 0 < e < len(row_text)]})
    if len(bounds) == 2:
        return block_fast(row_text)
    data = None
    for a, b in zip(bounds[:-1], bounds[1:]):
        part = block_fast(row_text[a:b])
        if part is None or (data is not None and part.shape[1] != data.shape[1]):
            return None
        if data is None:
            data = np.empty((len(row_text), part.shape[1]))
        data[a:b] = part
    return data


def block_fast(row_text: list[str]) -> np.ndarray | None:
    """The data table via a C reader, or None when only the careful reader can tell.

    Gives exactly the numbers of :func:`rows_line_by_line` or None.  numpy's
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
    try:
        raw = " ".join(row_text).encode("ascii")  # the joined text is freed at once
    except UnicodeEncodeError:
        return None
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
    give None.  pandas pads every row to the first row's width, so a first row
    wider than the file can hold on every row (each value takes at least two
    bytes with its separator) is refused before pandas allocates rows x width.
    """
    end = raw.find(b"\n")
    width = len(raw[:end if end >= 0 else len(raw)].split())
    if n_rows * width > (len(raw) + 1) // 2:
        return None
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


def read_rows(path, row_text: list[str], row_lines: list[int], *, expect: int | None = None,
              named_by: str = "", accepted: str = ""):
    """(data, row line numbers): the C reader when it can tell, else the careful one.

    With ``expect``, a ReadError unless the table has that many columns (the
    header's count: ``named_by`` says which header, e.g. "the label line")."""
    data = rows_fast(row_text)
    if data is None:
        data, row_lines = rows_line_by_line(path, row_text, row_lines)
    if expect is not None and data.shape[1] != expect:
        raise ReadError(path, f"data rows hold {data.shape[1]} values but {named_by} names "
                              f"{expect} columns", accepted)
    return data, row_lines


def rows_line_by_line(path, row_text: list[str], row_lines: list[int]):
    """(data, row line numbers): the data table read token by token, naming bad lines.

    Drops a short last row with a warning (a truncated file); raises ReadError
    for any other row whose length differs from the most common one and for
    the first token that is not a number.  The row lengths are counted first
    and the values go straight into the final array, so memory stays that of
    the table plus one row's tokens whatever the file's shape.
    """
    row_lines = list(row_lines)
    counts = np.fromiter((_count_tokens(text) for text in row_text), dtype=np.int64,
                         count=len(row_text))
    values, freq = np.unique(counts, return_counts=True)
    ncols = int(values[np.argmax(freq)])
    n_rows = len(row_text)
    if counts[-1] < ncols and n_rows > 1 and np.all(counts[:-1] == ncols):
        warn(path, f"last row (line {row_lines[-1]}) has {counts[-1]} of {ncols} values "
                   "(file truncated?); dropped it")
        n_rows -= 1
        row_lines.pop()
        counts = counts[:-1]
    bad = np.flatnonzero(counts != ncols)
    if bad.size:
        i = int(bad[0])
        raise ReadError(path, f"line {row_lines[i]} has {counts[i]} values but the data table "
                              f"has {ncols} columns",
                        "the same number of values on every data row")
    data = np.empty((n_rows, ncols), dtype=float)
    for i in range(n_rows):
        tokens = [t for t in _SPLIT.split(row_text[i]) if t]
        try:
            data[i] = [to_float(t) for t in tokens]
        except ValueError:
            token = next(t for t in tokens if not is_number(t))
            raise ReadError(path, f"line {row_lines[i]}: {token!r} is not a number",
                            "numbers only in the data table") from None
    return data, row_lines


def _count_tokens(text: str) -> int:
    return sum(1 for t in _SPLIT.split(text) if t)
