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

Potentiostat logs (eclab, gamry) give ``control`` ("OCP" while at open
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
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, ReadError

KINDS = ("auto", "setpoints", "signal")
FORMATS = ("auto", "table", "eclab", "gamry")
#: Time columns looked for in a table log when ``time`` is not given.
TIME_NAMES = ("time", "timestamp", "datetime", "date", "date_time", "time_s")
#: Nernst slope at 25 C, V per pH unit.
NERNST_V = 0.0591
_TABLE = "a CSV/TSV with a time column, an EC-Lab .mpt or a Gamry .DTA text file"


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
    format : "auto", "table", "eclab" or "gamry"
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


@dataclass
class Log:
    """A log as read: naive times (UTC when ``aware``) and one column per channel."""

    spec: LogSpec
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


def read_log(spec: LogSpec, base: Path | None = None) -> Log:
    """Read one log (ReadError naming the file and line on bad input)."""
    path = Path(spec.file)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise ReadError(path, "log file not found", _TABLE)
    if path.suffix.lower() == ".mpr":
        raise ReadError(path, "EC-Lab binary .mpr is not read (its maintained reader is "
                              "GPL-3.0); export it as .mpt text in EC-Lab", _TABLE)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # EC-Lab and Gamry write latin-1 (the micro sign)
    fmt = spec.format if spec.format != "auto" else _detect(path, text)
    reader = {"table": _read_table, "eclab": _read_eclab, "gamry": _read_gamry}[fmt]
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
    return "table"


# ------------------------------------------------------------------ time text
_ISS = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?$")


def parse_datetime(text: str) -> _dt.datetime | None:
    """ISO 8601, US ``MM/DD/YYYY HH:MM:SS(.ffffff)`` (NSLS-II ISS, EC-Lab, Gamry) or C's
    ctime ``Thu Mar 13 10:02:00 2025`` (SPEC ``#D``)."""
    text = re.sub(r"\s+", " ", str(text).strip())
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:  # C's ctime, as SPEC writes #D: "Thu Mar 13 10:02:00 2025"
        return _dt.datetime.strptime(text, "%a %b %d %H:%M:%S %Y")
    except ValueError:
        pass
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


def _stated_zone(path, line: int, value: _dt.datetime, spec: LogSpec) -> None:
    """A log whose times carry an offset other than its stated zone's is refused."""
    if spec.timezone is None or value.tzinfo is None:
        return
    expected = value.replace(tzinfo=None).replace(tzinfo=zone(spec.timezone, spec.file)).utcoffset()
    if value.utcoffset() != expected:
        raise ReadError(path, f"line {line}: time {value.isoformat()} is at UTC offset "
                              f"{value.utcoffset()} but the log's timezone {spec.timezone!r} is "
                              f"at {expected}; fix timezone or the clock", _TABLE)


# ---------------------------------------------------------------- table logs
def _read_table(path: Path, spec: LogSpec, text: str) -> Log:
    lines = text.splitlines()
    body = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        raise ReadError(path, "no header line and no rows", _TABLE)
    head_line, head = body[0]
    sep = "\t" if "\t" in head else (";" if ";" in head and "," not in head else ",")
    try:
        table = pd.read_csv(_io.StringIO("\n".join(ln for _, ln in body)), sep=sep,
                            skipinitialspace=True, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise ReadError(path, f"could not read the table: {exc}", _TABLE) from None
    table.columns = [str(c).strip() for c in table.columns]
    row_lines = np.array([n for n, _ in body[1:]], dtype=int)
    name = spec.time or next((c for c in table.columns if c.lower() in TIME_NAMES), None)
    if name is None or name not in table.columns:
        raise ReadError(path, f"line {head_line}: no time column "
                              f"{'(' + repr(spec.time) + ') ' if spec.time else ''}among "
                              f"{list(table.columns)[:8]}; set time = \"<column>\" for this log",
                        _TABLE)
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
                                  "\"YYYY-MM-DDTHH:MM:SS\" for this log", _TABLE)
        return origin + np.round(seconds * 1e9).astype("timedelta64[ns]"), aware
    out, flags = [], set()
    for line, value in zip(row_lines, values):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ReadError(path, f"line {line}: time {value!r} is not ISO 8601 "
                                  "(2025-03-13T10:00:10), MM/DD/YYYY HH:MM:SS, epoch or elapsed "
                                  "seconds", _TABLE)
        _stated_zone(path, line, parsed, spec)
        naive, aware = to_utc_naive(parsed, tz)
        flags.add(aware)
        out.append(naive)
    if len(flags) > 1:
        raise ReadError(path, "the time column mixes times with and without a UTC offset", _TABLE)
    return np.array(out, dtype="datetime64[ns]"), flags.pop()


def _numbers_or_text(column: pd.Series) -> pd.Series:
    text = column.astype(str).str.strip()
    numbers = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
    if numbers.notna().all():
        return numbers.astype(float)
    return text


# -------------------------------------------------------------------- EC-Lab
def _read_eclab(path: Path, spec: LogSpec, text: str) -> Log:
    lines = text.splitlines()
    if not lines or not lines[0].strip().startswith(("EC-Lab ASCII FILE", "BT-Lab ASCII FILE")):
        raise ReadError(path, "line 1: not an EC-Lab ASCII FILE (.mpt text export)", _TABLE)
    match = re.match(r"Nb header lines\s*:\s*(\d+)", lines[1].strip()) if len(lines) > 1 else None
    if not match:
        raise ReadError(path, "line 2: no 'Nb header lines : N'", _TABLE)
    n_head = int(match.group(1))
    if n_head < 3 or n_head > len(lines):
        raise ReadError(path, f"line 2: Nb header lines {n_head} does not fit the file's "
                              f"{len(lines)} lines", _TABLE)
    start = None
    for number, line in enumerate(lines[:n_head], start=1):
        found = re.match(r"\s*Acquisition started on\s*:\s*(.+)$", line)
        if found:
            start = parse_datetime(found.group(1).replace(".", "/", 2)
                                   if re.match(r"\d+\.\d+\.\d{4}", found.group(1).strip())
                                   else found.group(1))
            if start is None:
                raise ReadError(path, f"line {number}: unknown time format "
                                      f"{found.group(1).strip()!r} (expected MM/DD/YYYY "
                                      "HH:MM:SS.fff)", _TABLE)
    if start is None:
        raise ReadError(path, "no 'Acquisition started on : MM/DD/YYYY HH:MM:SS' in the header",
                        _TABLE)
    technique = lines[3].strip() if n_head > 3 else ""
    labels = [c.strip() for c in lines[n_head - 1].rstrip("\t\r\n ").split("\t")]
    rows = [(n_head + 1 + i, ln) for i, ln in enumerate(lines[n_head:]) if ln.strip()]
    values = _decimal_table(path, rows, labels)
    if "time/s" not in values.columns:
        raise ReadError(path, f"line {n_head}: no time/s column among {labels[:8]}", _TABLE)
    open_circuit = (values["mode"].to_numpy() == 3 if "mode" in values.columns
                    else np.full(len(values), technique.lower().startswith("open circuit")))
    galvano = values["mode"].to_numpy() == 1 if "mode" in values.columns else np.zeros(len(values), bool)
    current = next((c for c in ("<I>/mA", "I/mA") if c in values.columns), None)
    ewe = next((c for c in ("Ewe/V", "<Ewe>/V", "<Ewe/V>") if c in values.columns), None)
    if ewe is None:
        raise ReadError(path, f"line {n_head}: no Ewe/V column among {labels[:8]}", _TABLE)
    return _potentiostat(path, spec, "eclab", start, values["time/s"].to_numpy(float),
                         np.array([n for n, _ in rows]), values[ewe].to_numpy(float),
                         values[current].to_numpy(float) if current else None,
                         open_circuit, galvano,
                         values["control/V"].to_numpy(float) if "control/V" in values else None)


def _decimal_table(path, rows, labels, text_ok=()) -> pd.DataFrame:
    """Numbers (decimal comma or point); columns in ``text_ok`` may hold text (NaN)."""
    data = []
    lenient = [label in text_ok for label in labels]
    for number, line in rows:
        cells = line.rstrip("\t\r\n ").split("\t")
        try:
            data.append([_float(c, lax) for c, lax in zip(cells[:len(labels)], lenient)])
        except ValueError:
            raise ReadError(path, f"line {number}: not numbers ({line.strip()[:60]!r})", _TABLE) \
                from None
        if len(data[-1]) != len(labels):
            raise ReadError(path, f"line {number}: {len(data[-1])} values for "
                                  f"{len(labels)} columns", _TABLE)
    return pd.DataFrame(np.array(data, dtype=float).reshape(-1, len(labels)), columns=labels)


def _float(cell: str, lax: bool) -> float:
    try:
        return float(cell.replace(",", "."))
    except ValueError:
        if lax:
            return float("nan")
        raise


# --------------------------------------------------------------------- Gamry
def _read_gamry(path: Path, spec: LogSpec, text: str) -> Log:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "EXPLAIN":
        raise ReadError(path, "line 1: not a Gamry .DTA file (no EXPLAIN)", _TABLE)
    fields, blocks, i = {}, [], 0
    tag = next((ln.split("\t")[1].strip() for ln in lines[:5]
                if ln.startswith("TAG\t") and len(ln.split("\t")) > 1), "")
    while i < len(lines):
        cells = lines[i].split("\t")
        if len(cells) >= 3 and cells[1] == "LABEL":
            fields[cells[0]] = (i + 1, cells[2])
        if len(cells) >= 2 and cells[1] == "TABLE" and "CURVE" in cells[0]:
            labels = [c.strip() for c in lines[i + 1].split("\t") if c.strip()] \
                if i + 1 < len(lines) else []
            j = i + 3  # labels, then units
            rows = []
            while j < len(lines) and lines[j].startswith("\t") and lines[j].strip():
                rows.append((j + 1, "\t".join(lines[j].strip().split("\t"))))
                j += 1
            # Gamry's Over column holds flags as dots and letters ("...........")
            block = _decimal_table(path, rows, labels, ("Over",)).assign(
                _line=[n for n, _ in rows], _ocp=cells[0] == "OCVCURVE" or tag == "CORPOT")
            needed = ("T", "Vf") if cells[0] == "OCVCURVE" else ("T", "Vf", "Im")
            missing = [c for c in needed if c not in block.columns]
            if missing:
                raise ReadError(path, f"line {i + 2}: the {cells[0]} table has no "
                                      f"{' or '.join(missing)} column", _TABLE)
            if "Im" not in block.columns:  # the open-circuit delay records no current
                block["Im"] = np.nan
            blocks.append((cells[0], block))
            i = j
            continue
        i += 1
    if "DATE" not in fields or "TIME" not in fields:
        raise ReadError(path, "no DATE and TIME LABEL lines in the header", _TABLE)
    stamp = f"{fields['DATE'][1].strip()} {fields['TIME'][1].strip()}"
    start = parse_datetime(stamp)
    if start is None:
        raise ReadError(path, f"line {fields['DATE'][0]}: unknown time format {stamp!r} "
                              "(expected M/D/YYYY HH:MM:SS)", _TABLE)
    if not blocks:
        raise ReadError(path, "no CURVE TABLE block", _TABLE)
    delay = [b for name, b in blocks if name == "OCVCURVE" and len(b)]
    delay_end = float(delay[-1]["T"].iloc[-1]) if delay else None
    for name, block in blocks:
        if name != "OCVCURVE" and delay_end is not None and len(block) \
                and float(block["T"].iloc[0]) < delay_end:
            block["T"] = block["T"] + delay_end  # its clock restarted after the delay
    table = pd.concat([b for _, b in blocks], ignore_index=True)
    open_circuit = table["_ocp"].to_numpy(bool)
    return _potentiostat(path, spec, "gamry", start, table["T"].to_numpy(float),
                         table["_line"].to_numpy(int), table["Vf"].to_numpy(float),
                         1000.0 * table["Im"].to_numpy(float), open_circuit,
                         np.zeros(len(table), bool))


def _potentiostat(path, spec, fmt, start, seconds, row_lines, ewe, current_mA, open_circuit,
                  galvano, control_V=None) -> Log:
    """The channels every potentiostat log gives (see the module docstring)."""
    tz = zone(spec.timezone, spec.file) if spec.timezone else None
    start, aware = to_utc_naive(start, tz)
    times = np.datetime64(start, "ns") + np.round(seconds * 1e9).astype("timedelta64[ns]")
    scale = spec.reference_V + NERNST_V * spec.ph if spec.ph is not None else 0.0
    measured = ewe + scale
    control = np.where(open_circuit, "OCP", np.where(galvano, "galvanostatic", "potentiostatic"))
    held = control == "potentiostatic"
    kind = "signal" if spec.kind == "auto" else spec.kind
    labels = {"control": "setpoints", "ocv_V": kind, "current_mA": kind}
    if control_V is not None:  # the set potential: the program itself
        potential = np.where(held, np.round(control_V + scale, 6), np.nan)
        labels.update(potential_V="setpoints", ewe_V=kind)
    else:  # only the measured potential
        potential = np.where(held, measured, np.nan)
        labels["potential_V"] = kind
    channels = pd.DataFrame({"potential_V": potential, "control": control,
                             "ocv_V": np.where(open_circuit, measured, np.nan)})
    if control_V is not None:
        channels["ewe_V"] = measured
    if current_mA is not None:
        channels["current_mA"] = current_mA
    return Log(spec, fmt, times, row_lines, channels, aware,
               {c: labels[c] for c in channels.columns})


def _check_monotonic(path, log: Log) -> None:
    if len(log.times) == 0:
        raise ReadError(path, "no data rows", _TABLE)
    back = np.flatnonzero(np.diff(log.times) < np.timedelta64(0, "ns"))
    if back.size:
        i = int(back[0]) + 1
        raise ReadError(path, f"line {log.lines[i]}: the clock goes back "
                              f"({pd.Timestamp(log.times[i - 1])} -> {pd.Timestamp(log.times[i])}); "
                              "a log's times must not decrease", _TABLE)
