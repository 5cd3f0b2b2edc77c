"""Instrument logs -> a table of condition channels over absolute time.

One :class:`LogSpec` per log file (the ``[conditions] logs`` entries).  Formats
(``format = "auto"`` tells them apart by the first line and the suffix):

``"table"``
    CSV or TSV (``,``, ``;`` or tab; ``#`` comment lines skipped) with a time
    column (``time = "..."``, default the first of ``time``, ``timestamp``,
    ``datetime``, ``date``): ISO 8601 text, epoch seconds (numbers above 1e8),
    or elapsed seconds counted from ``start`` (an ISO 8601 time).
``"eclab"``
    BioLogic EC-Lab ``.mpt`` text export: ``Nb header lines : N`` (line N
    holds the tab-separated labels), ``Acquisition started on : MM/DD/YYYY
    HH:MM:SS(.fff)`` plus ``time/s`` (which counts from that start, often
    hours before the first scan), decimal commas, latin-1.  ``mode`` 3 (rest)
    or the Open Circuit Voltage technique marks open circuit.  The binary
    ``.mpr`` is refused: its one maintained reader (galvani) is GPL-3.0, which
    does not suit this MIT package; export the ``.mpt`` text in EC-Lab.
``"gamry"``
    Gamry ``.DTA`` text: ``DATE``/``TIME`` ``LABEL`` lines give the start,
    every ``<NAME>CURVE<n> TABLE`` block gives rows (``Pt T Vf Im ...``, T in
    s, Vf in V vs the reference, Im in A).  ``OCVCURVE`` (the open-circuit
    delay before the experiment, ``Pt T Vf Vm ...``, no current) and every
    curve of an Open Circuit Potential experiment (``TAG CORPOT``) are open
    circuit.  T counts from the start; a curve whose T starts again below the
    open-circuit delay's last T counts from the end of that delay.

``"chi"``
    CH Instruments text export (``.txt``/``.csv``): line 1 the run's date-time
    (``Mar. 12, 2026   15:48:13``, taken as the zero of ``Time/sec``; if your
    instrument stamps the end instead, give ``offset_s``), line 2 the technique,
    ``Instrument Model:`` and ``name = value`` parameters, then the column line
    and comma-separated rows.  Read: ``Amperometric i-t Curve`` (``Time/sec,
    Current/A``, potentiostatic at ``Init E (V)``) and ``Open Circuit Potential -
    Time`` (``Time/sec, Potential/V``, open circuit); other techniques are
    refused.  Ivium files are not read (their format is not established here).

Potentiostat logs (eclab, gamry, chi) give ``control`` ("OCP" while at open
circuit, else "potentiostatic" or "galvanostatic"), ``potential_V`` under
potentiostatic control (EC-Lab: the set ``control/V``, a setpoint, with the
measured Ewe in ``ewe_V``; Gamry: the measured Vf, a signal, rounded to 1 mV
when aligned), ``ocv_V`` (the measured potential at open circuit) and
``current_mA``; all potentials vs RHE when the log gives ``reference_V`` (E0 of
the reference electrode vs SHE, V) and ``ph``: E_RHE = E_ref + E0_ref + 0.0591
pH (25 C), else vs the reference electrode.
"""

from __future__ import annotations

import datetime as _dt
import io as _io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, ReadError
from ._logbase import ACCEPTED_LOGS, Log, parse_datetime, to_utc_naive, zone
from ._potentiostats import read_chi, read_eclab, read_gamry

KINDS = ("auto", "setpoints", "signal")
FORMATS = ("auto", "table", "eclab", "gamry", "chi")
#: Time columns looked for in a table log when ``time`` is not given.
TIME_NAMES = ("time", "timestamp", "datetime", "date", "date_time", "time_s")


@dataclass(frozen=True)
class LogSpec:
    """One instrument log and how to read it (a ``[conditions] logs`` entry).

    Parameters
    ----------
    file : str
        The log file.
    time : str, optional
        Table logs: the time column (default: ``time``, ``timestamp`` ...).
    start : str, optional
        Table logs whose time column holds elapsed seconds: the ISO 8601 time
        they count from.
    columns : dict or list, optional
        Channels to take (default all); a dict renames (``{"T_oven" =
        "temperature_K"}``).
    timezone : str, optional
        IANA zone of the log's naive times (``"Europe/Berlin"``); a log whose
        times carry another UTC offset is refused.
    offset_s : float
        Added to the log's clock (log time + offset = scan clock), s.
    delay_s : float
        Transport delay: a value logged at t acts on the sample at t + delay, s.
    kind : "auto", "setpoints" or "signal"
        Setpoints hold until the next row; a signal is sampled (a scan takes its
        median and ``<name>_spread``).  ``"auto"``: signal for potentiostat logs,
        setpoints for tables.
    format : "auto", "table", "eclab", "gamry" or "chi"
    ph, reference_V : float, optional
        Potentiostat logs: pH and E0 of the reference electrode vs SHE (V) to
        give ``potential_V`` vs RHE.
    """

    file: str
    time: str | None = None
    start: str | None = None
    columns: object = None
    timezone: str | None = None
    offset_s: float = 0.0
    delay_s: float = 0.0
    kind: str = "auto"
    format: str = "auto"
    ph: float | None = None
    reference_V: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"log {self.file}: kind={self.kind!r} is not one of {KINDS}")
        if self.format not in FORMATS:
            raise ConfigError(f"log {self.file}: format={self.format!r} is not one of {FORMATS}")
        if (self.ph is None) != (self.reference_V is None):
            raise ConfigError(f"log {self.file}: the RHE scale needs both ph and reference_V "
                              "(E0 of the reference electrode vs SHE, V)")
        if self.timezone is not None:
            zone(self.timezone, self.file)


def as_spec(entry) -> LogSpec:
    if isinstance(entry, LogSpec):
        return entry
    if isinstance(entry, (str, Path)):
        return LogSpec(file=str(entry))
    if isinstance(entry, dict):
        from .._util.validate import check_keys

        check_keys("[conditions] logs entry", entry, list(LogSpec.__dataclass_fields__))
        if "file" not in entry:
            raise ConfigError("a [conditions] logs entry needs file = \"...\"")
        return LogSpec(**entry)
    raise ConfigError(f"a log is a file name or a table with file = ..., got {entry!r}")


def read_log(spec: LogSpec) -> Log:
    """Read one log (ReadError naming the file and line on bad input)."""
    path = Path(spec.file)
    if not path.is_file():
        raise ReadError(path, "log file not found", ACCEPTED_LOGS)
    if path.suffix.lower() == ".mpr":
        raise ReadError(path, "EC-Lab binary .mpr is not read (its maintained reader is "
                              "GPL-3.0); export it as .mpt text in EC-Lab", ACCEPTED_LOGS)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # EC-Lab and Gamry write latin-1 (the micro sign)
    fmt = spec.format if spec.format != "auto" else _detect(path, text)
    reader = {"table": _read_table, "eclab": read_eclab, "gamry": read_gamry,
              "chi": read_chi}[fmt]
    try:
        log = reader(path, spec, text)
    except ReadError:
        # a log still being written (operando watch) may end in half a line: read it
        # without that line (the next read has it whole); a complete file is refused
        if text.endswith(("\n", "\r")) or not text[:text.rfind("\n") + 1].strip():
            raise
        cut = text[:text.rfind("\n") + 1]
        log = reader(path, spec, cut)
        logging.getLogger(__name__).info("%s: last line incomplete (being written); read "
                                         "without it", path.name)
    _check_monotonic(path, log)
    return _select(path, log)


def _select(path, log: Log) -> Log:
    """The channels ``columns`` asks for, renamed."""
    wanted = log.spec.columns
    if wanted is None:
        return log
    mapping = dict(wanted) if isinstance(wanted, dict) else {c: c for c in wanted}
    missing = [c for c in mapping if c not in log.channels.columns]
    if missing:
        raise ConfigError(f"log {path.name}: columns {missing} not in the log; it gives "
                          f"{list(log.channels.columns)}")
    channels = log.channels[list(mapping)].rename(columns=mapping)
    labels = {mapping[c]: log.labels[c] for c in mapping}
    return Log(log.spec, log.format, log.times, log.lines, channels, log.aware, labels)


def _detect(path: Path, text: str) -> str:
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    if first.startswith(("EC-Lab ASCII FILE", "BT-Lab ASCII FILE")) or path.suffix.lower() == ".mpt":
        return "eclab"
    if first == "EXPLAIN" or path.suffix.lower() == ".dta":
        return "gamry"
    if parse_datetime(first) is not None and "\nInstrument Model:" in text[:2000]:
        return "chi"
    return "table"


def _stated_zone(path, line: int, value: _dt.datetime, spec: LogSpec) -> None:
    """A log whose times carry an offset other than its stated zone's is refused."""
    if spec.timezone is None or value.tzinfo is None:
        return
    expected = value.replace(tzinfo=None).replace(tzinfo=zone(spec.timezone, spec.file)).utcoffset()
    if value.utcoffset() != expected:
        raise ReadError(path, f"line {line}: time {value.isoformat()} is at UTC offset "
                              f"{value.utcoffset()} but the log's timezone {spec.timezone!r} is "
                              f"at {expected}; fix timezone or the clock", ACCEPTED_LOGS)


# ---------------------------------------------------------------- table logs
def _read_table(path: Path, spec: LogSpec, text: str) -> Log:
    lines = text.splitlines()
    body = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        raise ReadError(path, "no header line and no rows", ACCEPTED_LOGS)
    head_line, head = body[0]
    sep = "\t" if "\t" in head else (";" if ";" in head and "," not in head else ",")
    try:
        table = pd.read_csv(_io.StringIO("\n".join(ln for _, ln in body)), sep=sep,
                            skipinitialspace=True, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise ReadError(path, f"could not read the table: {exc}", ACCEPTED_LOGS) from None
    table.columns = [str(c).strip() for c in table.columns]
    row_lines = np.array([n for n, _ in body[1:]], dtype=int)
    name = spec.time or next((c for c in table.columns if c.lower() in TIME_NAMES), None)
    if name is None or name not in table.columns:
        raise ReadError(path, f"line {head_line}: no time column "
                              f"{'(' + repr(spec.time) + ') ' if spec.time else ''}among "
                              f"{list(table.columns)[:8]}; set time = \"<column>\" for this log",
                        ACCEPTED_LOGS)
    tz = zone(spec.timezone, spec.file) if spec.timezone else None
    times, aware = _table_times(path, spec, table[name].tolist(), row_lines, tz)
    channels = table.drop(columns=[name])
    channels = channels.apply(_numbers_or_text)
    kind = "setpoints" if spec.kind == "auto" else spec.kind
    return Log(spec, "table", times, row_lines, channels, aware,
               {c: kind for c in channels.columns})


def _table_times(path, spec, values, row_lines, tz):
    numbers = pd.to_numeric(pd.Series(values).str.replace(",", ".", regex=False), errors="coerce")
    if numbers.notna().all():
        seconds = numbers.to_numpy(float)
        if spec.start is not None:
            start = parse_datetime(spec.start)
            if start is None:
                raise ConfigError(f"log {spec.file}: start {spec.start!r} is not an ISO 8601 time")
            _stated_zone(path, 0, start, spec)
            start, aware = to_utc_naive(start, tz)
            origin = np.datetime64(start, "ns")
        elif seconds.min() > 1e8:  # epoch seconds: after 1973
            origin, aware = np.datetime64("1970-01-01T00:00:00", "ns"), True
        else:
            raise ReadError(path, f"line {row_lines[0]}: the time column holds elapsed seconds "
                                  f"({values[0]!r}) and the log gives no start time; set start = "
                                  "\"YYYY-MM-DDTHH:MM:SS\" for this log", ACCEPTED_LOGS)
        return origin + np.round(seconds * 1e9).astype("timedelta64[ns]"), aware
    out, flags = [], set()
    for line, value in zip(row_lines, values):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ReadError(path, f"line {line}: time {value!r} is not ISO 8601 "
                                  "(2025-03-13T10:00:10), MM/DD/YYYY HH:MM:SS, epoch or elapsed "
                                  "seconds", ACCEPTED_LOGS)
        _stated_zone(path, line, parsed, spec)
        naive, aware = to_utc_naive(parsed, tz)
        flags.add(aware)
        out.append(naive)
    if len(flags) > 1:
        raise ReadError(path, "the time column mixes times with and without a UTC offset", ACCEPTED_LOGS)
    return np.array(out, dtype="datetime64[ns]"), flags.pop()


def _numbers_or_text(column: pd.Series) -> pd.Series:
    text = column.astype(str).str.strip()
    numbers = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
    if numbers.notna().all():
        return numbers.astype(float)
    return text


def _check_monotonic(path, log: Log) -> None:
    if len(log.times) == 0:
        raise ReadError(path, "no data rows", ACCEPTED_LOGS)
    back = np.flatnonzero(np.diff(log.times) < np.timedelta64(0, "ns"))
    if back.size:
        i = int(back[0]) + 1
        raise ReadError(path, f"line {log.lines[i]}: the clock goes back "
                              f"({pd.Timestamp(log.times[i - 1])} -> {pd.Timestamp(log.times[i])}); "
                              "a log's times must not decrease", ACCEPTED_LOGS)
