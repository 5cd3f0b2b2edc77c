"""Parse one text column file (XDI, plain ``#``-labelled columns, NSLS-II QAS/ISS, DESY .fio).

The parser is deliberately strict about the data table (every row must have the
same number of numbers; a partial *last* row is the only thing repaired) and
lenient about headers (unknown or malformed optional fields give a warning).
XDI files are held to the XDI grammar of ``Family.key: value`` header lines,
following the XDI project's own ``baddata`` set (see ``tests/io/test_bad_xdi.py``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ._fio import looks_like_fio, parse_fio
from ._headers import TextTable, parse_plain_header, parse_xdi_header
from ._rows import is_number, read_rows
from ._x9809 import looks_like_9809, parse_9809

log = logging.getLogger(__name__)

ACCEPTED_TEXT = (
    "a text file of whitespace- or comma-separated number columns with a '#' header line "
    "of labels (XDI, plain columns, NSLS-II QAS/ISS)"
)

#: Most lines of one text file (a scan, or a matrix of scans with one row per energy).
#: A text table costs ~250 bytes a line while it is parsed, so this bounds a file's
#: memory to ~0.5 GB whatever its compression (a 13.9 MB .gz of short lines, within the
#: decompression limits, held ~100 million lines and reached 9 GB).  Real scans have
#: 10^2-10^4 points (the NSLS-II QAS QEXAFS scan: 645); 2 million leaves room for
#: unbinned continuous scans.
MAX_LINES = 2_000_000
_COMMENT_CHARS = "#!%;"
_SPLIT = re.compile(r"[\s,;]+")
_XDI_VERSION = re.compile(r"^#\s*XDI/\d+(\.\d+)*", re.IGNORECASE)

#: A byte that ``bytes.strip()`` keeps.
_NOT_BLANK = re.compile(rb"[^ \t\n\r\x0b\x0c]")
#: Bytes counted as binary by :func:`decode_text` (controls other than tab, LF, FF, CR).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


def decode_text(path, raw: bytes) -> str:
    """Bytes -> text, refusing empty and binary content and more lines than
    :data:`MAX_LINES` (counted before any line is made)."""
    if not _NOT_BLANK.search(raw):  # as `not raw.strip()`, without copying the file
        raise ReadError(path, "file is empty", ACCEPTED_TEXT)
    lines = raw.count(b"\n")
    if lines > MAX_LINES:
        raise ReadError(path, f"{lines:,} lines, more than the {MAX_LINES:,} points a scan "
                              "may have (a text table costs ~250 bytes a line to parse)",
                        "scans of at most that many points; write longer series as operando "
                        "HDF5 (streamed)")
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
        file breaking the XDI header grammar.  DESY ``.fio`` content (found by
        its ``%d`` section and ``Col 1`` line) goes to :func:`~._fio.parse_fio`, the
        9809 format of KEK-PF/SPring-8 to :func:`~._x9809.parse_9809`.
    """
    path = Path(path)
    text = decode_text(path, raw)
    if looks_like_fio(raw[:65536]):
        return parse_fio(path, text)
    if looks_like_9809(raw[:200]):
        return parse_9809(path, text)
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
            if not is_number(tokens[0]):
                # A label line without a comment character, or text before the table.
                header_lines.append((number, "#" + stripped))
                continue
        in_data = True
        row_text.append(stripped)
        row_lines.append(number)
    if not row_text:
        raise ReadError(path, "no rows of numbers found", ACCEPTED_TEXT)

    del text, lines  # the rows' text is all the readers need: one copy of the file less
    data, row_lines = read_rows(path, row_text, row_lines)
    del row_text
    ncols = data.shape[1]
    if ncols < 2:
        raise ReadError(path, "the data table has a single column; need energy and at least "
                              "one signal column", ACCEPTED_TEXT)

    table = TextTable(path=path, labels=[], data=data, lines=np.array(row_lines),
                      kind="xdi" if is_xdi else "columns")
    if is_xdi:
        parse_xdi_header(table, header_lines, ncols)
    else:
        parse_plain_header(table, header_lines, ncols)
    return table

