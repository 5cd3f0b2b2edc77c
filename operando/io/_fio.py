"""DESY ``.fio`` scan files (PETRA III Sardana/Tango "online" layout): one scan, named columns.

Layout (``!`` lines are comments)::

    !
    ! Comments
    !
    %c
    qexafs_scan energyfmb 11400 11800 ...
    user p65user Acquisition started at Thu Dec 12 18:00:00 2021
    !
    ! Parameter
    !
    %p
    energyfmb = 11400.0
    SAMPLE_TIME = 1
    !
    ! Data
    !
    %d
     Col 1 energyfmb DOUBLE
     Col 2 ion1 DOUBLE
     Col 3 unix time DOUBLE
          11400.0   1234.5   1576165741.2
          ...
    ! Acquisition ended at Thu Dec 12 18:05:00 2021

Every ``Col N NAME TYPE`` line names one column (the name may hold spaces;
TYPE is DOUBLE, FLOAT, INTEGER, BOOLEAN or STRING).  STRING columns are
dropped; the others form the numeric table, read with the same exact readers
and line-numbered errors as any column file.  The older "online" layout
prefixes every name with the scan name (``SCAN_00012_EXP_C01``): that common
prefix is removed.  ``%p`` parameters (``name = value``) and ``%c`` comments go
to the header (``parameters``, ``comments``), with ``title`` (the scan
command) and ``start_time`` when the comments hold them.

silx's ``FioFile`` reads the same files but keeps only the last word of a
name with spaces (``unix time`` -> ``time``) and needs every ``Col`` line to
start with a space, so this small reader is used instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ._headers import TextTable, unique_labels
from ._rows import read_rows

ACCEPTED = ("a DESY .fio file: '%c'/'%p'/'%d' sections, one ' Col N NAME TYPE' line per "
            "column, then rows of values")
_TYPES = {"DOUBLE", "FLOAT", "INTEGER", "BOOLEAN", "STRING"}
_COL = re.compile(r"^\s*Col\s+(\d+)\s+(.+?)\s*$")
_SECTION = re.compile(rb"^%[cpd]\s*$", re.MULTILINE)
_COL_LINE = re.compile(rb"^\s*Col\s+1\s+\S", re.MULTILINE)
_STARTED = re.compile(r"acquisition started at\s+(.+)$", re.IGNORECASE)
_BOOL = {"true": "1", "false": "0", "yes": "1", "no": "0", "t": "1", "f": "0", "on": "1",
         "off": "0"}


def looks_like_fio(head: bytes) -> bool:
    """True for the start of a .fio file: a ``%d`` section line followed by a ``Col 1`` line."""
    start = 0 if head.startswith(b"%d") else head.find(b"\n%d")   # C search: cheap on any file
    if start < 0:
        return False
    section = _SECTION.search(head, start)
    return section is not None and _COL_LINE.search(head, section.end()) is not None


def parse_fio(path, text: str) -> TextTable:
    """One .fio scan as a :class:`TextTable` (kind ``"fio"``).

    Raises
    ------
    ReadError
        No ``%d`` section, no ``Col`` lines, column numbers out of order, a
        data row with the wrong number of values or a non-number in a numeric
        column (naming the line).
    """
    path = Path(path)
    section = None
    comments: list[str] = []
    parameters: dict[str, str] = {}
    columns: list[tuple[str, str]] = []
    row_text: list[str] = []
    row_lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("!"):
            continue
        if stripped.startswith("%") and stripped[1:2] in ("c", "p", "d") and \
                not stripped[2:].strip():
            section = stripped[1]
            continue
        if section == "c":
            comments.append(stripped)
        elif section == "p":
            name, sep, value = stripped.partition("=")
            if sep:
                parameters[name.strip()] = value.strip()
        elif section == "d":
            match = _COL.match(line)
            if match and not row_text:
                _add_column(path, number, columns, int(match.group(1)), match.group(2))
            else:
                row_text.append(stripped)
                row_lines.append(number)
    if section is None or not columns:
        raise ReadError(path, "no '%d' section with 'Col N NAME TYPE' lines", ACCEPTED)
    if not row_text:
        raise ReadError(path, "the '%d' section holds no data rows", ACCEPTED)
    keep = [i for i, (_, kind) in enumerate(columns) if kind != "STRING"]
    if len(columns) != len(keep) or any(kind == "BOOLEAN" for _, kind in columns):
        row_text = _numeric_tokens(path, row_text, row_lines, columns, keep)
    data, row_lines = read_rows(path, row_text, row_lines, expect=len(keep),
                                named_by="the header", accepted=ACCEPTED)
    labels = _strip_prefix([columns[i][0] for i in keep], comments, path)
    table = TextTable(path=path, labels=unique_labels(labels), data=data,
                      lines=np.array(row_lines), kind="fio")
    table.header = _header(comments, parameters)
    return table


def _add_column(path, number, columns, index, rest) -> None:
    words = rest.split()
    kind = words[-1].upper() if len(words) > 1 and words[-1].upper() in _TYPES else "DOUBLE"
    name = " ".join(words[:-1]) if kind == words[-1].upper() and len(words) > 1 else rest
    if index != len(columns) + 1:
        raise ReadError(path, f"line {number}: 'Col {index}' follows column {len(columns)}",
                        "'Col' lines numbered 1, 2, 3, ... in order")
    columns.append((name.strip(), kind))


def _numeric_tokens(path, row_text, row_lines, columns, keep) -> list[str]:
    """Rows without their STRING columns, BOOLEAN values as 0/1."""
    out = []
    for text, number in zip(row_text, row_lines):
        tokens = text.split()
        if len(tokens) != len(columns):
            raise ReadError(path, f"line {number} has {len(tokens)} values but the header "
                                  f"names {len(columns)} columns",
                            "one value per 'Col' line on every data row")
        picked = []
        for i in keep:
            token = tokens[i]
            if columns[i][1] == "BOOLEAN":
                token = _BOOL.get(token.lower(), token)
            picked.append(token)
        out.append(" ".join(picked))
    return out


def _strip_prefix(labels, comments, path) -> list[str]:
    """Drop the scan-name prefix of the online layout (``SCAN_00012_EXP_C01``)."""
    candidates = [Path(path).stem]
    for line in comments:
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() in ("file_name", "filename"):
            candidates.append(value.strip())
    for prefix in candidates:
        prefix = prefix.lower() + "_"
        if prefix != "_" and all(label.lower().startswith(prefix) and len(label) > len(prefix)
                                 for label in labels):
            return [label[len(prefix):] for label in labels]
    return labels


def _header(comments, parameters) -> dict:
    header: dict = {"comments": "\n".join(comments), "parameters": dict(parameters)}
    if comments:
        header["title"] = comments[0]
    for line in comments:
        started = _STARTED.search(line)
        if started:
            header["start_time"] = started.group(1).strip()
            break
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() in ("start_time", "date"):
            header["start_time"] = value.strip()
            break
    return header
