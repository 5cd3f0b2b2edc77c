"""Potentiostat logs: EC-Lab ``.mpt``, Gamry ``.DTA`` and CH Instruments text exports
(formats described in :mod:`operando.io._logs`).  Each gives the channels of
:func:`_potentiostat`: ``control``, ``potential_V``, ``ocv_V``, ``current_mA`` (and
``ewe_V`` where the set potential is logged beside the measured one)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ReadError
from ._logbase import ACCEPTED_LOGS, NERNST_V, Log, parse_datetime, to_utc_naive, zone


# -------------------------------------------------------------------- EC-Lab
def read_eclab(path: Path, spec: LogSpec, text: str) -> Log:
    lines = text.splitlines()
    if not lines or not lines[0].strip().startswith(("EC-Lab ASCII FILE", "BT-Lab ASCII FILE")):
        raise ReadError(path, "line 1: not an EC-Lab ASCII FILE (.mpt text export)", ACCEPTED_LOGS)
    match = re.match(r"Nb header lines\s*:\s*(\d+)", lines[1].strip()) if len(lines) > 1 else None
    if not match:
        raise ReadError(path, "line 2: no 'Nb header lines : N'", ACCEPTED_LOGS)
    n_head = int(match.group(1))
    if n_head < 3 or n_head > len(lines):
        raise ReadError(path, f"line 2: Nb header lines {n_head} does not fit the file's "
                              f"{len(lines)} lines", ACCEPTED_LOGS)
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
                                      "HH:MM:SS.fff)", ACCEPTED_LOGS)
    if start is None:
        raise ReadError(path, "no 'Acquisition started on : MM/DD/YYYY HH:MM:SS' in the header",
                        ACCEPTED_LOGS)
    technique = lines[3].strip() if n_head > 3 else ""
    labels = [c.strip() for c in lines[n_head - 1].rstrip("\t\r\n ").split("\t")]
    rows = [(n_head + 1 + i, ln) for i, ln in enumerate(lines[n_head:]) if ln.strip()]
    values = _decimal_table(path, rows, labels)
    if "time/s" not in values.columns:
        raise ReadError(path, f"line {n_head}: no time/s column among {labels[:8]}", ACCEPTED_LOGS)
    open_circuit = (values["mode"].to_numpy() == 3 if "mode" in values.columns
                    else np.full(len(values), technique.lower().startswith("open circuit")))
    galvano = values["mode"].to_numpy() == 1 if "mode" in values.columns else np.zeros(len(values), bool)
    current = next((c for c in ("<I>/mA", "I/mA") if c in values.columns), None)
    ewe = next((c for c in ("Ewe/V", "<Ewe>/V", "<Ewe/V>") if c in values.columns), None)
    if ewe is None:
        raise ReadError(path, f"line {n_head}: no Ewe/V column among {labels[:8]}", ACCEPTED_LOGS)
    return _potentiostat(spec, "eclab", start, values["time/s"].to_numpy(float),
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
            raise ReadError(path, f"line {number}: not numbers ({line.strip()[:60]!r})", ACCEPTED_LOGS) \
                from None
        if len(data[-1]) != len(labels):
            raise ReadError(path, f"line {number}: {len(data[-1])} values for "
                                  f"{len(labels)} columns", ACCEPTED_LOGS)
    return pd.DataFrame(np.array(data, dtype=float).reshape(-1, len(labels)), columns=labels)


def _float(cell: str, lax: bool) -> float:
    try:
        return float(cell.replace(",", "."))
    except ValueError:
        if lax:
            return float("nan")
        raise


# --------------------------------------------------------------------- Gamry
def read_gamry(path: Path, spec: LogSpec, text: str) -> Log:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "EXPLAIN":
        raise ReadError(path, "line 1: not a Gamry .DTA file (no EXPLAIN)", ACCEPTED_LOGS)
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
                                      f"{' or '.join(missing)} column", ACCEPTED_LOGS)
            if "Im" not in block.columns:  # the open-circuit delay records no current
                block["Im"] = np.nan
            blocks.append((cells[0], block))
            i = j
            continue
        i += 1
    if "DATE" not in fields or "TIME" not in fields:
        raise ReadError(path, "no DATE and TIME LABEL lines in the header", ACCEPTED_LOGS)
    stamp = f"{fields['DATE'][1].strip()} {fields['TIME'][1].strip()}"
    start = parse_datetime(stamp)
    if start is None:
        raise ReadError(path, f"line {fields['DATE'][0]}: unknown time format {stamp!r} "
                              "(expected M/D/YYYY HH:MM:SS)", ACCEPTED_LOGS)
    if not blocks:
        raise ReadError(path, "no CURVE TABLE block", ACCEPTED_LOGS)
    delay = [b for name, b in blocks if name == "OCVCURVE" and len(b)]
    delay_end = float(delay[-1]["T"].iloc[-1]) if delay else None
    for name, block in blocks:
        if name != "OCVCURVE" and delay_end is not None and len(block) \
                and float(block["T"].iloc[0]) < delay_end:
            block["T"] = block["T"] + delay_end  # its clock restarted after the delay
    table = pd.concat([b for _, b in blocks], ignore_index=True)
    open_circuit = table["_ocp"].to_numpy(bool)
    return _potentiostat(spec, "gamry", start, table["T"].to_numpy(float),
                         table["_line"].to_numpy(int), table["Vf"].to_numpy(float),
                         1000.0 * table["Im"].to_numpy(float), open_circuit,
                         np.zeros(len(table), bool))


def _potentiostat(spec, fmt, start, seconds, row_lines, ewe, current_mA, open_circuit,
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




# -------------------------------------------------------------- CH Instruments
#: CH Instruments techniques read as a log, and the control each one means.
CHI_TECHNIQUES = {"amperometric i-t curve": "potentiostatic",
                  "open circuit potential - time": "OCP"}


def read_chi(path: Path, spec, text: str) -> Log:
    """CH Instruments text export: the run's date-time on line 1 (``Mar. 12, 2026
    15:48:13``), the technique on line 2, ``name = value`` parameters, then the column
    line (``Time/sec, Current/A`` or ``Time/sec, Potential/V``), comma-separated rows."""
    lines = text.lstrip("\ufeff").splitlines()
    start = parse_datetime(lines[0]) if lines else None
    if start is None:
        raise ReadError(path, f"line 1: unknown time format {(lines or [''])[0].strip()!r} "
                              "(CH Instruments writes 'Mar. 12, 2026   15:48:13')", ACCEPTED_LOGS)
    technique = lines[1].strip() if len(lines) > 1 else ""
    control = CHI_TECHNIQUES.get(technique.lower())
    if control is None:
        raise ReadError(path, f"line 2: technique {technique!r} is not read as a log (CH "
                              "Instruments: Amperometric i-t Curve, Open Circuit Potential - "
                              "Time)", ACCEPTED_LOGS)
    params, head = {}, None
    for number, line in enumerate(lines, start=1):
        if line.strip().lower().startswith("time/sec"):
            head = number
            break
        name, sep, value = line.partition("=")
        if sep:
            params[name.strip()] = value.strip()
    if head is None:
        raise ReadError(path, "no 'Time/sec, ...' column line", ACCEPTED_LOGS)
    labels = [c.strip() for c in lines[head - 1].split(",")]
    rows = [(n, "\t".join(re.split(r"\s*[,\t]\s*", ln.strip())))
            for n, ln in enumerate(lines[head:], start=head + 1) if ln.strip()]
    values = _decimal_table(path, rows, labels)
    seconds, line_numbers = values["Time/sec"].to_numpy(float), np.array([n for n, _ in rows])
    n = len(values)
    if control == "OCP":
        if "Potential/V" not in values.columns:
            raise ReadError(path, f"line {head}: no Potential/V column", ACCEPTED_LOGS)
        return _potentiostat(spec, "chi", start, seconds, line_numbers,
                             values["Potential/V"].to_numpy(float), None, np.ones(n, bool),
                             np.zeros(n, bool))
    if "Current/A" not in values.columns:
        raise ReadError(path, f"line {head}: no Current/A column", ACCEPTED_LOGS)
    try:  # i-t holds the potential at Init E and logs only the current
        held = float(params["Init E (V)"])
    except (KeyError, ValueError):
        raise ReadError(path, "no 'Init E (V) = ...' parameter: the potential the i-t curve "
                              "held", ACCEPTED_LOGS) from None
    return _potentiostat(spec, "chi", start, seconds, line_numbers, np.full(n, held),
                         1000.0 * values["Current/A"].to_numpy(float), np.zeros(n, bool),
                         np.zeros(n, bool))
