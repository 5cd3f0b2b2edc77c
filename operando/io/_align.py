"""Conditions from time: scan times, conditions written in scan headers, logs aligned.

Scan times
    Every scan's ``[start, end]`` comes from its header (XDI
    ``Scan.start_time``/``Scan.end_time``, ISO 8601 or NSLS-II ISS's
    ``03/13/2025  10:00:10.264416``; ``Start time``/``Stop time``; .fio
    ``acquisition started at``; SPEC ``#D``; NeXus NXentry ``start_time``/
    ``end_time`` and per-frame ``data/time``; an operando HDF5 keeps the times
    it was written with), or from ``time_start`` (and ``time_end``) columns the
    conditions hold (a per-spectrum time list of a QEXAFS matrix, given as a
    conditions table keyed by step).  A scan
    without an end ends when the next one starts (the last one lasts the median
    duration of the others).  A file's modification time is the stated, warned
    fallback for a scan without a start (it is when the file was last written:
    the scan's end).  Each step gets ``time_start``, ``time_end`` (ISO 8601) and
    ``time_s`` (s from the first scan's start).
Alignment
    Log times are shifted by ``offset_s + delay_s``.  Setpoints: the value in
    force at the scan's start; a change before its end sets ``conditions_mixed``
    (such a step stays out of the tracker's segment statistics).  Signals: the
    median of the samples within ``[start, end]`` and ``<name>_spread`` (half
    their range); without a sample inside, the value interpolated at the middle.
    A scan that a log does not cover gets no value from it, with a warning
    naming the scans.  A potentiostat's ``potential_V`` during open circuit is
    the label ``"OCP"`` (its own condition for the tracker) and the measured
    potential goes to ``ocv_V``.
Clocks
    Naive times on both sides are taken as one clock (said once in the log);
    naive scan times against a log with a UTC offset (or the reverse) need
    ``timezone``.
Open circuit
    Where the potentiostat was at open circuit ``potential_V`` is ``"OCP"``
    (the tracker's own condition, never a controlled potential); galvanostatic
    periods are labelled ``"galvanostatic"``; the measured potential is in
    ``ocv_V`` / ``ewe_V``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ._logbase import parse_datetime, to_utc_naive, zone
from ._logs import LogSpec, as_spec, read_log
from ._messages import short_list, warn

log = logging.getLogger(__name__)

START_KEYS = ("scan.start_time", "start_time", "start time", "starttime", "date")
END_KEYS = ("scan.end_time", "end_time", "end time", "stop time", "stop_time", "endtime")
#: Step columns the alignment adds besides the log channels.
TIME_COLUMNS = ("time_start", "time_end", "time_s")


@dataclass(frozen=True)
class LogConditions:
    """The ``[conditions]`` settings: logs, header conditions, the scans' timezone.

    Parameters
    ----------
    logs : tuple of LogSpec (or dicts / file names)
    headers : dict
        Condition column -> scan header field (``{"flow_mfc16":
        "SampleGasHandlingSystem.MFC16.setpoint"}``).
    timezone : str, optional
        IANA zone of naive scan times (needed against a log with UTC offsets).
    base : str, optional
        Folder that relative log paths are read from (the config file's).
    """

    logs: tuple = ()
    headers: dict = field(default_factory=dict)
    timezone: str | None = None
    base: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "logs", tuple(as_spec(e) for e in self.logs))
        if self.timezone is not None:
            zone(self.timezone, "[conditions]")

    def files(self) -> list[Path]:
        base = Path(self.base) if self.base else None
        return [Path(s.file) if base is None or Path(s.file).is_absolute() else base / s.file
                for s in self.logs]


# ---------------------------------------------------------------- scan times
def header_times(header: dict, path: Path | None = None) -> list:
    """``[start, end, how]`` text of one scan (None where its header says nothing)."""
    lower = {str(k).lower(): v for k, v in (header or {}).items()}
    start = next((str(lower[k]) for k in START_KEYS if str(lower.get(k, "")).strip()), None)
    end = next((str(lower[k]) for k in END_KEYS if str(lower.get(k, "")).strip()), None)
    if start is None and path is not None and Path(path).is_file():
        stamp = _dt.datetime.fromtimestamp(os.stat(path).st_mtime, _dt.timezone.utc)
        return [None, stamp.isoformat(), "mtime"]
    return [start, end, "header"]


def header_columns(conditions: pd.DataFrame, headers: list[dict], wanted: dict,
                   source) -> pd.DataFrame:
    """Condition columns taken from fields of every scan's header."""
    out = conditions.copy()
    for column, key in wanted.items():
        lower = key.lower()
        values, missing = [], []
        for file, header in zip(out["file"], headers):
            found = next((v for k, v in header.items() if str(k).lower() == lower), None)
            if found is None:
                missing.append(file)
            values.append(found)
        if missing:
            warn(source, f"header field {key!r} ({column}) missing in {short_list(missing)}; "
                         "left empty there")
        series = pd.Series(values, dtype=object)
        numbers = pd.to_numeric(series.astype(str).str.split().str[0], errors="coerce")
        out[column] = numbers.to_numpy(float) if numbers[series.notna()].notna().all() \
            else series.to_numpy()
    return out


def scan_windows(series, tz: _dt.tzinfo | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(start, end) datetime64[ns] per step and whether they are UTC."""
    cond = series.conditions
    if "time_start" in cond.columns:  # a per-spectrum time column (QEXAFS frames)
        ends = cond["time_end"] if "time_end" in cond.columns else [None] * len(cond)
        raw = [[s, e, "conditions"] for s, e in zip(cond["time_start"], ends)]
    else:
        raw = series.metadata.get("scan_times")
        if not raw or len(raw) != len(series):
            raise DataError(f"{series.metadata.get('source', 'the series')}: no scan times; "
                            "logs are aligned by the scans' start/end times (XDI "
                            "Scan.start_time, time_start/time_end conditions)")
    files = [str(f) for f in cond["file"]]
    starts, ends, flags = [], [], set()
    mtime = [f for f, r in zip(files, raw) if r[2] == "mtime"]
    if mtime:
        warn(series.metadata.get("source", ""), f"no start time in the header of "
             f"{short_list(mtime)}; the file modification time is taken as the scan's end")
    for file, (start, end, _) in zip(files, raw):
        values = []
        for text in (start, end):
            if text is None or (isinstance(text, float) and np.isnan(text)):
                values.append(None)
                continue
            parsed = parse_datetime(str(text))
            if parsed is None:
                raise DataError(f"{file}: scan time {text!r} is not ISO 8601 nor "
                                "MM/DD/YYYY HH:MM:SS")
            naive, aware = to_utc_naive(parsed, tz)
            flags.add(aware)
            values.append(np.datetime64(naive, "ns"))
        starts.append(values[0])
        ends.append(values[1])
    if len(flags) > 1:
        raise DataError("the scan times mix times with and without a UTC offset; set "
                        "[conditions] timezone for the naive ones")
    return (*_fill(starts, ends, files), flags.pop() if flags else False)


def _fill(starts, ends, files):
    """Missing ends: the next scan's start (the last: the median duration); missing starts
    (mtime fallback): the end minus the median duration."""
    n = len(starts)
    known = [e - s for s, e in zip(starts, ends) if s is not None and e is not None]
    typical = np.median(np.array(known, dtype="timedelta64[ns]").astype(np.int64)) if known else 0
    typical = np.timedelta64(int(typical), "ns")
    for i in range(n):
        if ends[i] is None and starts[i] is not None:
            later = next((starts[j] for j in range(i + 1, n) if starts[j] is not None), None)
            ends[i] = later if later is not None and later > starts[i] else starts[i] + typical
        if starts[i] is None:
            starts[i] = ends[i] - typical
    bad = [files[i] for i in range(n) if ends[i] < starts[i]]
    if bad:
        raise DataError(f"scan(s) {short_list(bad)} end before they start")
    return np.array(starts, dtype="datetime64[ns]"), np.array(ends, dtype="datetime64[ns]")


# -------------------------------------------------------------------- align
def conditions_from_logs(series, logs, *, timezone: str | None = None,
                         base=None) -> pd.DataFrame:
    """The conditions table a run uses: the series' own plus the logs' channels per step.

    Parameters
    ----------
    series : Series
        With scan times (read from files whose headers give them, or with
        ``time_start``/``time_end`` conditions).
    logs : LogConditions, or list of LogSpec / dicts / file names
    timezone : str, optional
        Zone of naive scan times (when ``logs`` is a list).
    base : path-like, optional
        Folder for relative log paths (when ``logs`` is a list).

    Returns
    -------
    DataFrame
        ``series.conditions`` plus ``time_start``, ``time_end``, ``time_s``,
        every log channel (signals with ``<name>_spread``) and
        ``conditions_mixed`` (bool).
    """
    spec = logs if isinstance(logs, LogConditions) else LogConditions(
        logs=tuple(logs), timezone=timezone, base=None if base is None else str(base))
    tz = zone(spec.timezone, "[conditions]") if spec.timezone else None
    start, end, aware = scan_windows(series, tz)
    out = series.conditions.reset_index(drop=True).copy()
    t0 = start.min()
    out["time_start"] = [pd.Timestamp(t).isoformat() for t in start]
    out["time_end"] = [pd.Timestamp(t).isoformat() for t in end]
    out["time_s"] = (start - t0).astype("timedelta64[ns]").astype(np.int64) / 1e9
    mixed = np.zeros(len(out), dtype=bool)
    said_naive = False
    for entry, path in zip(spec.logs, spec.files()):
        one = read_log(LogSpec(**{**entry.__dict__, "file": str(path)}))
        if one.aware != aware:
            raise ConfigError(f"log {path.name}: its times are "
                              f"{'UTC-based' if one.aware else 'naive'} but the scan times are "
                              f"{'UTC-based' if aware else 'naive'}; set timezone for the naive "
                              "side ([conditions] timezone for the scans, timezone in the log "
                              "entry for the log)")
        if not aware and not said_naive:
            log.info("scan and log times carry no timezone: taken as one clock")
            said_naive = True
        shift = np.timedelta64(int(round((entry.offset_s + entry.delay_s) * 1e9)), "ns")
        times = one.times + shift
        # a setpoint holds until the next row (also after the last); a signal ends with it
        signals = any(v == "signal" for v in one.labels.values())
        uncovered = (start < times[0]) | ((end > times[-1]) if signals else False)
        got = {}
        for column in one.channels.columns:
            values = one.channels[column].to_numpy()
            if one.labels[column] == "signal" and pd.api.types.is_numeric_dtype(values.dtype):
                median, spread = _signal(times, values.astype(float), start, end)
                # a measured potential held by a potentiostat: one setpoint, one value
                got[column] = np.round(median, 3) if column == "potential_V" else median
                got[f"{column}_spread"] = spread
            else:
                held, changed = _setpoint(times, values, start, end)
                got[column] = held
                mixed |= changed & ~uncovered
        if "control" in got and "potential_V" in got:
            got = _mark_open_circuit(got)
        for column, values in got.items():  # a scan this log does not cover keeps what it had
            out[column] = _merge(out[column] if column in out.columns else None, values,
                                 uncovered)
        if uncovered.any():
            warn(path, f"does not cover {int(uncovered.sum())} scan(s) "
                       f"{short_list(out['file'][uncovered].astype(str))}; left without its "
                       "conditions there")
    out["conditions_mixed"] = mixed
    if mixed.any():
        warn(spec.logs[0].file if spec.logs else "", f"a setpoint changed during "
             f"{int(mixed.sum())} scan(s) ({short_list(out['file'][mixed].astype(str))}): "
             "flagged conditions_mixed and kept out of segment statistics")
    return out


def _setpoint(times, values, start, end):
    """The value in force at each start, and whether another one starts before the end
    (a change at the very end belongs to the scan that starts then: back-to-back frames)."""
    at_start = np.searchsorted(times, start, side="right") - 1
    at_end = np.maximum(np.searchsorted(times, end, side="left") - 1, at_start)
    held = np.array([values[i] if i >= 0 else None for i in at_start], dtype=object)
    changed = np.zeros(len(start), dtype=bool)
    for k, (a, b) in enumerate(zip(at_start, at_end)):
        if a >= 0 and b > a:
            window = values[a:b + 1]
            changed[k] = any(not _same(v, window[0]) for v in window[1:])
    if all(isinstance(v, (float, int, np.floating, np.integer)) for v in held if v is not None):
        held = np.array([np.nan if v is None else float(v) for v in held])
    return held, changed


def _same(a, b) -> bool:
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)):
        return a == b or (np.isnan(a) and np.isnan(b))
    return a == b


def _signal(times, values, start, end):
    """Median and half-range of the samples in each window; with no sample inside, the
    value interpolated at the middle between the two samples around it (when both hold one)."""
    medians, spreads = np.full(len(start), np.nan), np.full(len(start), np.nan)
    for k, (a, b) in enumerate(zip(start, end)):
        lo, hi = np.searchsorted(times, a, "left"), np.searchsorted(times, b, "right")
        inside = values[lo:hi]
        if inside.size:
            inside = inside[np.isfinite(inside)]
            if inside.size:
                medians[k] = float(np.median(inside))
                spreads[k] = 0.5 * float(inside.max() - inside.min())
        elif 0 < lo < len(times) and np.isfinite(values[lo - 1]) and np.isfinite(values[lo]):
            span = (times[lo] - times[lo - 1]).astype(np.int64)
            w = ((a - times[lo - 1]).astype(np.int64) + (b - times[lo - 1]).astype(np.int64)) \
                / 2 / span
            medians[k] = float(values[lo - 1] + w * (values[lo] - values[lo - 1]))
            spreads[k] = 0.0
    return medians, spreads


def _mark_open_circuit(got: dict) -> dict:
    """``potential_V`` = "OCP" (or "galvanostatic") where the potential was not controlled."""
    control = np.array([str(c) for c in got["control"]])
    free = np.isin(control, ("OCP", "galvanostatic"))
    if free.any():
        potential = np.asarray(got["potential_V"]).astype(object)
        potential[free] = control[free]
        got["potential_V"] = potential
        if "potential_V_spread" in got:
            got["potential_V_spread"] = np.where(free, np.nan, got["potential_V_spread"])
    return got


def _merge(before, values, uncovered) -> np.ndarray:
    """This log's values where it covers the scan; elsewhere the value held before (an
    earlier log's or the conditions table's), else empty."""
    values = np.asarray(values)
    if before is None:
        empty = np.nan if values.dtype.kind == "f" else None
        before = np.full(len(values), empty, dtype=values.dtype if values.dtype.kind == "f"
                         else object)
    before = np.asarray(before)
    if values.dtype.kind == "f" and before.dtype.kind in "fiu":
        return np.where(uncovered, before.astype(float), values)
    out = values.astype(object)
    out[uncovered] = before.astype(object)[uncovered]
    return out
