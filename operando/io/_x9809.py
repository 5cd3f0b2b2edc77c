"""The "9809" XAFS format of KEK-PF, SPring-8 and other Japanese beamlines.

Layout (no comment characters; the first line starts with ``9809``)::

      9809     KEK-PF   BL12C
     G:hgcys-11.001  07.05.12 23:28 - 07.05.12 23:55
     <sample description>
     Ring :   2.5 GeV   348.8 mA -  342.8 mA
     Mono :   SI(111)       D=  3.13551 A    Initial angle=  9.25969 deg
     BL12C     Transmission( 2)   Repetition=  6     Points=  818
     ...  block table ...
     Ortec(-1)     NDCH = 3
      Angle(c)  Angle(o)    time/s         2         3
          Mode         0         0         1         2
        Offset         0         0   826.150   652.975
       9.44433   9.44420      1.00    252916    592687
       ...

Columns: the drive and read mono angles (degrees), the count time (s), then one
column per detector channel.  The ``Mode`` row says what each channel is: 1 the
incident-beam ion chamber (``i0``), 2 the transmitted beam (``it``), 3 the
fluorescence (``if``), as in xraylarch's example files of BL12C (transmission,
modes 1 and 2) and BL9A (fluorescence, modes 1 and 3); other modes keep the
channel's number (``ch4``).  The energy is the read angle converted with the
``D=`` lattice spacing of the Mono line, E = hc / (2 d sin theta).  The
``Offset`` row (dark counts) is recorded in the header, not subtracted, as
xraylarch and the other readers of this format do.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ._headers import TextTable, unique_labels
from ._rows import read_rows

ACCEPTED = ("a 9809-format file: the '9809' first line, a Mono line with 'D= <d> A', the "
            "'Angle(c) Angle(o) time/s ...' labels, Mode and Offset rows, then numbers")
_D_SPACING = re.compile(r"D=\s*([0-9.]+)\s*A", re.IGNORECASE)
_DATES = re.compile(r"(\d{2}\.\d{2}\.\d{2}\s+\d{1,2}:\d{2})\s*-\s*(\d{2}\.\d{2}\.\d{2}\s+\d{1,2}:\d{2})")
MODES = {1: "i0", 2: "it", 3: "if"}


def looks_like_9809(head: bytes) -> bool:
    first = head.lstrip().split(b"\n", 1)[0].split()
    return bool(first) and first[0] == b"9809"


def parse_9809(path, text: str) -> TextTable:
    """One 9809 scan as a :class:`TextTable` (kind ``"9809"``), energy column first.

    Raises
    ------
    ReadError
        No ``D=`` spacing, no ``Angle(c)`` label line, no Mode row, or a bad data row.
    """
    path = Path(path)
    lines = text.splitlines()
    d_spacing = None
    header: dict = {"format": "9809", "title": lines[0].strip()}
    labels_at = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if d_spacing is None and stripped.lower().startswith("mono"):
            match = _D_SPACING.search(stripped)
            if match:
                d_spacing = float(match.group(1))
                header["mono"] = stripped
        if number == 2:
            header["sample"] = stripped
            dates = _DATES.search(stripped)
            if dates:
                header["start_time"] = _date(dates.group(1))
                header["end_time"] = _date(dates.group(2))
        if stripped.lower().startswith("angle(c)"):
            labels_at = number
            break
    if d_spacing is None or not d_spacing > 0:
        raise ReadError(path, "no 'D= <d-spacing> A' on the Mono line", ACCEPTED)
    if labels_at is None or labels_at + 2 > len(lines):
        raise ReadError(path, "no 'Angle(c) Angle(o) time/s ...' label line", ACCEPTED)
    names = lines[labels_at - 1].split()
    mode_row = lines[labels_at].split()
    offset_row = lines[labels_at + 1].split()
    if not mode_row or mode_row[0].lower() != "mode" or not offset_row or \
            offset_row[0].lower() != "offset":
        raise ReadError(path, f"line {labels_at + 1}: no 'Mode' row (then 'Offset') after the "
                              "labels", ACCEPTED)
    modes = [int(float(m)) for m in mode_row[1:]]
    row_text, row_lines = [], []
    for number in range(labels_at + 2, len(lines)):
        stripped = lines[number].strip()
        if stripped:
            row_text.append(stripped)
            row_lines.append(number + 1)
    if not row_text:
        raise ReadError(path, "no data rows after the Offset row", ACCEPTED)
    data, row_lines = read_rows(path, row_text, row_lines, expect=len(names),
                                named_by="the label line", accepted=ACCEPTED)
    labels = ["angle_c", "angle_o", "time"]   # a repeated mode numbered by unique_labels
    for k, name in enumerate(names[3:]):
        labels.append(MODES.get(modes[k + 2] if k + 2 < len(modes) else 0, f"ch{name}"))
    from ._scan import angle_to_energy

    energy = angle_to_energy(path, data[:, 1], d_spacing)
    table = TextTable(path=path, labels=unique_labels(["energy"] + labels),
                      data=np.column_stack([energy, data]), lines=np.array(row_lines),
                      kind="9809", d_spacing=d_spacing)
    header.update(d_spacing=d_spacing, modes=dict(zip(names[3:], modes[2:])),
                  offsets=dict(zip(names[3:], offset_row[3:])))
    table.header = header
    return table


def _date(text: str) -> str:
    """``"07.05.12 23:28"`` (YY.MM.DD) -> ISO 8601."""
    try:
        return _dt.datetime.strptime(" ".join(text.split()), "%y.%m.%d %H:%M").isoformat()
    except ValueError:
        return text
