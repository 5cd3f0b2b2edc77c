"""Instrument logs written as the instruments write them, for the log-alignment tests.

Each writer takes a program: ``(start, end, value)`` periods in absolute time
(naive datetimes: the beamline's clock) and writes the log an instrument running
it would leave: an EC-Lab .mpt text export (latin-1, decimal commas, ``time/s``
from an acquisition start hours before the first scan, mode 2 = potentiostatic,
mode 3 = rest), a Gamry .DTA (tab-separated, LABEL lines, a CURVE TABLE with its
units line and tab-indented rows), a gas system's setpoint table (one row per
change) and a furnace's sampled temperature (a ramp with noise).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

AG_AGCL_V = 0.197  # E0 of Ag/AgCl (sat. KCl) vs SHE, V
PH = 13.0
TO_RHE = AG_AGCL_V + 0.0591 * PH

def program(series, t0, lead_s, key):
    """(start, end, value) periods of condition ``key``: each value from ``lead_s`` before
    the first scan it holds for (the scans' ``time_s`` from ``t0``), the last until 300 s
    after the last scan."""
    c = series.conditions
    firsts = c.groupby(c[key].astype(str) + "|" + c.get("cycle", 0).astype(str),
                       sort=False)["time_s"].min().sort_values()
    values = [c.loc[c["time_s"] == t, key].iloc[0] for t in firsts]
    starts = [t0 + dt.timedelta(seconds=float(t) - lead_s) for t in firsts]
    ends = starts[1:] + [t0 + dt.timedelta(seconds=float(c["time_s"].max()) + 300)]
    return list(zip(starts, ends, values))


_ECLAB_LABELS = ["mode", "ox/red", "error", "control changes", "Ns changes", "counter inc.",
                 "Ns", "time/s", "control/V", "Ewe/V", "<I>/mA", "dQ/C", "(Q-Qo)/mA.h",
                 "I Range", "Q charge/discharge/mA.h", "half cycle", "Capacitance charge/µF",
                 "Capacitance discharge/µF", "cycle number", "P/W"]


def _comma(x: float, digits: int = 7) -> str:
    return f"{x:.{digits}E}".replace(".", ",") if abs(x) >= 1e4 or (x and abs(x) < 1e-3) \
        else f"{x:.{digits}f}".replace(".", ",")


def write_eclab(path, program, *, acquisition_start: dt.datetime, dt_s: float = 2.0,
                noise_V: float = 0.001, seed: int = 0) -> None:
    """EC-Lab chronoamperometry export; potentials of the program are vs RHE, the file's
    Ewe and control/V vs Ag/AgCl at pH 13; ``"OCP"`` periods are rest (mode 3)."""
    rng = np.random.default_rng(seed)
    header = [
        "EC-Lab ASCII FILE", "Nb header lines : {n}", "",
        "Chronoamperometry / Chronocoulometry", "",
        "Run on channel : 3 (SN 0412)", "User : beamline", "CE vs. WE compliance from -10 V to 10 V",
        "Electrode connection : standard", "Potential control : Ewe",
        "Ewe ctrl range : min = -10,00 V, max = 10,00 V", "Safety Limits :",
        "\tDo not start on E overload", "Electrode material : Cu-N-C on carbon paper",
        "Initial state : ", "Electrolyte : 0,1 M KOH", "Comments : operando XAS cell",
        "Electrode surface area : 0,196 cm²", "Characteristic mass : 0,001 mg",
        "Cycle Definition : Charge/Discharge alternance",
        "Do not turn to OCV between techniques", "",
        f"Acquisition started on : {acquisition_start:%m/%d/%Y %H:%M:%S}.000",
        "Saved on :", "File : operando_CA.mpr", "Directory : C:\\Data\\2025\\",
        "Host : 192.0.2.1", "Device : SP-300 (SN 0412)", "",
        "Ns                  0                   1", "Ei (V)              0,000               0,000",
        "vs.                 Ref                 Ref", "ti (h:m:s)          0:10:0,0000         0:10:0,0000",
        "Imax                pass                pass", "", "\t".join(_ECLAB_LABELS)]
    header[1] = header[1].format(n=len(header))
    rows = []
    first = min(p[0] for p in program)
    # the potentiostat ran long before the first scan: hold the first setpoint from the start
    periods = [(acquisition_start, first, program[0][2])] + list(program)
    for ns, (begin, end, value) in enumerate(periods):
        t = (begin - acquisition_start).total_seconds()
        t_end = (end - acquisition_start).total_seconds()
        rest = value == "OCP"
        target = 0.05 - TO_RHE if rest else float(value) - TO_RHE
        while t < t_end:
            ewe = target + rng.normal(0.0, noise_V)
            current = 0.0 if rest else -2.0 * np.exp(-(t - (begin - acquisition_start).total_seconds()) / 60) - 0.3
            cells = [3 if rest else 2, 0 if rest else 1, 0, 0, 0, 0, ns]
            text = [str(c) for c in cells] + [
                _comma(t, 7), _comma(0.0 if rest else target, 7), _comma(ewe, 7),
                _comma(current, 7), _comma(current * dt_s * 1e-3, 7), _comma(0.0, 7), "41",
                _comma(0.0, 7), "0", _comma(0.0, 3), _comma(0.0, 3), "0", _comma(ewe * current * 1e-3, 7)]
            rows.append("\t".join(text) + "\t")
            t += dt_s
    with open(path, "w", encoding="latin-1", newline="\r\n") as fh:
        fh.write("\n".join(header) + "\n" + "\n".join(rows) + "\n")


def write_gamry(path, program, *, start: dt.datetime, dt_s: float = 2.0, noise_V: float = 0.001,
                seed: int = 0, tag: str = "CHRONOA", ocv_delay=None) -> None:
    """Gamry .DTA whose Vf follows the program (potentials vs RHE in the program, vs
    Ag/AgCl in the file); T counts from the DATE/TIME start.  ``tag="CORPOT"``: an Open
    Circuit Potential experiment (one CURVE at open circuit, the program's values being
    the OCV vs RHE).  ``ocv_delay=(seconds, ocv_V_RHE)``: the experiment opens with an
    open-circuit delay (an OCVCURVE block, T from 0) and the CURVE's T starts again at 0
    after it, as Gamry writes it."""
    rng = np.random.default_rng(seed)
    title = "Open Circuit Potential" if tag == "CORPOT" else "Chronoamperometry Scan"
    lines = ["EXPLAIN", f"TAG\t{tag}", f"TITLE\tLABEL\t{title}\tTest &Identifier",
             f"DATE\tLABEL\t{start.month}/{start.day}/{start.year}\tDate",
             f"TIME\tLABEL\t{start:%H:%M:%S}\tTime",
             "PSTAT\tPSTAT\tREF600-12345\tPotentiostat", "AREA\tQUANT\t1,00000E+000\tSample &Area (cm^2)",
             "NOTES\tNOTES\t1\t&Notes...", "\toperando XAS"]
    curve_zero = 0.0
    if ocv_delay is not None:
        seconds, ocv = ocv_delay
        times = np.arange(dt_s, seconds + 1e-9, dt_s)
        lines += [f"OCVCURVE\tTABLE\t{len(times)}", "\tPt\tT\tVf\tVm\tAch\tOver\tTemp",
                  "\t#\ts\tV vs. Ref.\tV\tV\tbits\tdeg C"]
        for pt, t in enumerate(times):
            vf = ocv - TO_RHE + rng.normal(0.0, noise_V)
            lines.append(f"\t{pt}\t{t:g}\t{vf:.6g}\t{vf:.6g}\t0\t...........\t0")
        lines.append(f"EOC\tQUANT\t{ocv - TO_RHE:.6g}\tOpen Circuit (V)")
        curve_zero = float(times[-1])
    lines += ["CURVE\tTABLE", "\tPt\tT\tVf\tIm\tVu\tSig\tAch\tIERange\tOver\tTemp",
              "\t#\ts\tV vs. Ref.\tA\tV\tV\tV\t#\tbits\tdeg C"]
    pt = 0
    for begin, end, value in program:
        t, t_end = (begin - start).total_seconds(), (end - start).total_seconds()
        while t < t_end:
            vf = float(value) - TO_RHE + rng.normal(0.0, noise_V)
            current = 0.0 if tag == "CORPOT" else -1e-3
            lines.append(f"\t{pt}\t{t - curve_zero:g}\t{vf:.6g}\t{current:.6g}\t{vf:.6g}\t"
                         f"{vf:.6g}\t0\t8\t...........\t0")
            pt += 1
            t += dt_s
    with open(path, "w", encoding="latin-1", newline="\r\n") as fh:
        fh.write("\n".join(lines) + "\n")


def write_gas_setpoints(path, changes, *, sep: str = ",") -> None:
    """A gas system's log: one row per setpoint change (ISO 8601 time, gas, flows)."""
    lines = [sep.join(["time", "gas", "flow_H2_mlmin", "flow_He_mlmin", "temperature_set_K"])]
    for when, gas, h2, he, temp in changes:
        lines.append(sep.join([when.isoformat(timespec="seconds"), gas, f"{h2:g}", f"{he:g}",
                               f"{temp:g}"]))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def write_temperature_signal(path, times, kelvin, *, start: dt.datetime, noise_K: float = 0.3,
                             seed: int = 0) -> None:
    """A furnace's thermocouple, sampled: elapsed seconds from ``start`` (tab-separated)."""
    rng = np.random.default_rng(seed)
    lines = [f"# furnace log, started {start.isoformat()}", "elapsed_s\tT_K"]
    for t, k in zip(times, kelvin):
        lines.append(f"{t:.1f}\t{k + rng.normal(0.0, noise_K):.2f}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def write_chi(path, begin: dt.datetime, end: dt.datetime, value, *, dt_s: float = 1.0,
              noise_V: float = 0.001, seed: int = 0) -> None:
    """One CH Instruments text export for one period of the program, as CHI writes it:
    an Amperometric i-t Curve at ``Init E`` (the program's potential vs RHE, written vs
    Ag/AgCl to 1 mV), or for ``"OCP"`` an Open Circuit Potential - Time record (the OCV
    at 0.05 V vs RHE); date-time on line 1, ``Time/sec`` from it."""
    rng = np.random.default_rng(seed)
    month = begin.strftime("%b") + ("." if begin.month not in (5, 6, 7) else "")
    if begin.month in (6, 7):
        month = begin.strftime("%B")
    ocp = value == "OCP"
    lines = [f"{month} {begin.day}, {begin.year}   {begin:%H:%M:%S}",
             "Open Circuit Potential - Time" if ocp else "Amperometric i-t Curve",
             f"File: C:\\CHI\\{path.name}", "Data Source:  Experiment",
             "Instrument Model:  CHI760E", "Header:", "Note:", ""]
    run_s = (end - begin).total_seconds()
    if ocp:
        lines += [f"Sample Interval (s) = {dt_s:g}", f"Run Time (sec) = {run_s:g}",
                  "High E Limit (V) = 1", "Low E Limit (V) = -1", "", "Time/sec, Potential/V", ""]
    else:
        lines += [f"Init E (V) = {float(value) - TO_RHE:.3f}", f"Sample Interval (s) = {dt_s:g}",
                  f"Run Time (sec) = {run_s:g}", "Quiet Time (sec) = 0", "Scales during Run = 1",
                  "Sensitivity (A/V) = 1.e-3", "", "Time/sec, Current/A", ""]
    for t in np.arange(dt_s, run_s + 1e-9, dt_s):
        if ocp:
            lines.append(f"{t:.3f}, {0.05 - TO_RHE + rng.normal(0.0, noise_V):.3f}")
        else:
            lines.append(f"{t:.3f}, {-3e-4 - 1e-3 * np.exp(-t / 60.0):.3e}")
    with open(path, "w", encoding="utf-8", newline="\r\n") as fh:
        fh.write("\n".join(lines) + "\n")
