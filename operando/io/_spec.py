"""SPEC files: every ``#S`` scan is one spectrum (read with silx.io.specfile).

Each scan's header gives ``date`` (its ``#D`` line: when the scan started, as
SPEC writes it, ``Thu Mar 13 10:02:00 2025``, the beamline's local clock) and,
when the scan has an ``Epoch`` column (s, per point), ``end_time``: the start
plus the last point's epoch minus the first's (without it a scan ends when the
next one starts); the motor positions (``#O``/``#P`` lines, by motor name) and ``#U<name> <value>``
user lines (by name): the scan times that :func:`operando.conditions_from_logs`
aligns by, and the fields ``[conditions] headers`` takes.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ._messages import short_list
from ._scan import Scan, scan_from_columns

log = logging.getLogger(__name__)


def looks_like_spec(text_head: bytes) -> bool:
    lines = text_head.splitlines()
    return any(ln.startswith(b"#S ") for ln in lines) and any(ln.startswith(b"#L ")
                                                             for ln in lines)


def read_spec_scans(path: Path, reading: dict, *, on_error, skipped,
                    display=None) -> list[Scan]:
    """Each ``#S`` scan of a SPEC file is one spectrum (silx.io.specfile).

    ``reading`` holds the keyword arguments of :func:`~._scan.scan_from_columns` (mu,
    reference, energy_column, channels, dead_time).  ``display`` is the name used in
    messages and scan names when ``path`` is a decompressed temporary copy.
    """
    from silx.io.specfile import SpecFile

    shown = Path(display) if display is not None else Path(path)

    try:
        spec = SpecFile(str(path))
        n = len(spec)
    except Exception as exc:  # silx raises SfError* types not exported uniformly
        raise ReadError(shown, f"not a readable SPEC file ({exc})",
                        "a SPEC file with #S and #L lines") from None
    scans = []
    for index in range(n):
        try:
            number = spec.number(index)
            labels = list(spec.labels(index))
            data = np.atleast_2d(np.asarray(spec.data(index), dtype=float))
            if data.shape[1] != len(labels) and data.shape[0] == len(labels):
                data = data.T  # silx gives (points, columns); be safe about old versions
        except Exception as exc:  # silx: malformed scan block
            problem = f"scan #{index + 1} unreadable ({exc})"
            if on_error == "raise":
                raise ReadError(shown, problem, "SPEC scans with #L labels and data") from None
            skipped.append({"file": f"{shown.name}#S{index + 1}", "reason": problem})
            continue
        file = f"{shown.name}#S{number}"
        try:
            if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] != len(labels):
                raise ReadError(file, f"scan {number} has {data.shape} values for labels "
                                      f"{short_list(labels, 8, quote=True)}", "SPEC scans with one label per column")
            lines = np.arange(1, data.shape[0] + 1)
            scan = scan_from_columns(file, file, labels, data, lines, **reading)
        except ReadError as exc:
            if on_error == "raise":
                raise
            skipped.append({"file": file, "reason": exc.problem})
            continue
        scan.label = f"S{number}"
        scan.header = {**scan.header, **_scan_fields(spec, index)}
        end = _end_time(scan.header.get("date"), labels, data)
        if end is not None:
            scan.header["end_time"] = end
        scans.append(scan)
    if not scans:
        raise ReadError(shown, "no readable scan in the SPEC file",
                        "a SPEC file with #S scans holding energy and counter columns")
    return scans



def _scan_fields(spec, index: int) -> dict:
    """``date`` (#D), motor positions (#O/#P) and ``#U<name> <value>`` lines of one scan,
    parsed from its header lines (silx's own date() crashes on a scan without #D)."""
    fields: dict = {}
    scan = list(spec.scan_header(index))
    try:
        head = list(spec.file_header(index))
    except Exception as exc:  # silx: no file header (SfError* types)
        log.debug("scan %d: no file header (%s)", index, exc)
        head = []
    names = _numbered(head, "#O", lambda text: re.split(r"\s{2,}", text.strip()))
    values = _numbered(scan, "#P", str.split)
    fields.update((n, _number(v)) for n, v in zip(names, values))
    for line in scan:
        if line.startswith("#U") and len(line) > 2 and not line[2].isspace():
            name, _, value = line[2:].partition(" ")
            if value.strip():
                fields[name] = value.strip()
        elif line.startswith("#D ") and line[3:].strip():
            fields["date"] = line[3:].strip()
    return fields


def _numbered(lines, prefix: str, split) -> list:
    """The items of ``#O0 #O1 ...`` (or ``#P0 ...``) lines in order."""
    rows = sorted((int(m.group(1)), m.group(2)) for m in
                  (re.match(rf"{prefix}(\d+)\s+(.*)$", ln) for ln in lines) if m)
    return [item for _, text in rows for item in split(text)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _end_time(date, labels, data) -> str | None:
    """The scan's end: its #D start plus the span of its ``Epoch`` column."""
    from ._logbase import parse_datetime

    lower = [str(c).strip().lower() for c in labels]
    start = parse_datetime(date) if date else None
    if start is None or "epoch" not in lower:
        return None
    epoch = data[:, lower.index("epoch")]
    epoch = epoch[np.isfinite(epoch)]
    if epoch.size < 2:
        return None
    import datetime as _dt

    return (start + _dt.timedelta(seconds=float(epoch[-1] - epoch[0]))).isoformat()
