"""What every instrument log reader shares: the log as read, its clock, time text.

Time text: ISO 8601; US ``MM/DD/YYYY HH:MM:SS(.ffffff)`` (NSLS-II ISS, EC-Lab,
Gamry); C's ctime ``Thu Mar 13 10:02:00 2025`` (SPEC ``#D``, DESY .fio); CH Instruments'
``Mar. 12, 2026   15:48:13`` (also ``June 21, 2023 ...``); ``12-May-2012 17:22:40``,
``2012/05/12 17:22:40`` and ``12.05.2012 17:22:40`` (day first).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ConfigError

#: Nernst slope at 25 C, V per pH unit.
NERNST_V = 0.0591
ACCEPTED_LOGS = ("a CSV/TSV with a time column, an EC-Lab .mpt, a Gamry .DTA or a CH "
                 "Instruments text file")


@dataclass
class Log:
    """A log as read: naive times (UTC when ``aware``) and one column per channel."""

    spec: object  # the LogSpec it was read with
    format: str
    times: np.ndarray  # datetime64[ns]
    lines: np.ndarray  # 1-based line of every row
    channels: pd.DataFrame
    aware: bool
    labels: dict = field(default_factory=dict)  # channel -> "setpoints" | "signal"


def zone(name: str, file) -> _dt.tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"log {file}: timezone {name!r} is not an IANA zone name such as "
                          "'Europe/Berlin' or 'UTC'") from None


# ------------------------------------------------------------------ time text
_CHI = re.compile(r"^([A-Za-z]{3,9})\.? (\d{1,2}), (\d{4}) (\d{1,2}):(\d{2}):(\d{2})$")
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                        "sep", "oct", "nov", "dec"), start=1)}
#: strptime formats: C's ctime (SPEC #D: "Thu Mar 13 10:02:00 2025") and the other headers'.
_FORMATS = ("%a %b %d %H:%M:%S %Y", "%d-%b-%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%d.%m.%Y %H:%M:%S")
_ISS = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?$")


def parse_datetime(text: str) -> _dt.datetime | None:
    """A naive or aware datetime from the time texts in the module docstring, or None."""
    text = re.sub(r"\s+", " ", str(text).strip())
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return _dt.datetime.strptime(text, fmt)
        except ValueError:
            pass
    chi = _CHI.match(text)
    if chi:
        month = _MONTHS.get(chi.group(1)[:3].lower())
        try:
            return _dt.datetime(int(chi.group(3)), month, int(chi.group(2)), int(chi.group(4)),
                                int(chi.group(5)), int(chi.group(6))) if month else None
        except ValueError:
            return None
    match = _ISS.match(text)
    if match:
        mo, d, y, h, mi, s, frac = match.groups()
        micro = int((frac or "0")[:6].ljust(6, "0"))
        try:
            return _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro)
        except ValueError:
            return None
    return None


def to_utc_naive(value: _dt.datetime, tz: _dt.tzinfo | None) -> tuple[_dt.datetime, bool]:
    """(naive time, aware?): aware inputs and naive ones with a zone become naive UTC."""
    if value.tzinfo is None and tz is not None:
        value = value.replace(tzinfo=tz)
    if value.tzinfo is None:
        return value, False
    return value.astimezone(_dt.timezone.utc).replace(tzinfo=None), True


