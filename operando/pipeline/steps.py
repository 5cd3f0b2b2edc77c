"""Analysing one chunk of steps: calibrate (streamed sources), normalise, white line,
and with EXAFS background removal and shell fits; the result is a checkpoint.

A step that cannot be analysed becomes a row with ``ok = False`` and a ``reason``;
it never stops the run.  If a chunk fails as a whole, its steps are redone one by
one so only the bad ones are flagged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._util.jsonsafe import to_json_ready
from ..errors import ConfigError
from ..exafs import fit_shells, remove_background
from ..exafs.systematics import systematics_columns
from ..io import RowSlice
from ..schema import WHITE_LINE_COLUMNS
from ..xanes import normalize, white_line
from .components import fit_columns
from .settings import StepSettings
from .source import calibrate_onto
from .store import arrays_to_table, table_to_arrays
from .two_phase import two_phase_columns

log = logging.getLogger(__name__)



@dataclass
class ChunkTask:
    """One chunk's work: its rows and settings, nothing else (picklable for any executor)."""

    index: int
    series: Any
    settings: StepSettings
    shifts: Any = None  # applied energy shifts (eV) of these steps
    shift_notes: Any = None  # why a step was not calibrated ("" when it was)
    onto: Any = None  # streamed calibration: {"energy": common grid, "kwargs"}; rows are raw


def process_chunk(task: ChunkTask) -> tuple[dict, dict]:
    """Analyse one chunk; returns the checkpoint ``(arrays, meta)``.

    Runs in a worker process or thread (or a dask worker).
    """
    series = task.series
    if isinstance(series, RowSlice):
        series = series.load()  # the worker reads its own rows of the HDF5 file
    if task.onto is not None:
        series = calibrate_onto(series, task.onto["energy"], task.onto["kwargs"])
    n = len(series)
    shifts = np.zeros(n) if task.shifts is None else np.asarray(task.shifts, dtype=float)
    notes = [""] * n if task.shift_notes is None else list(task.shift_notes)
    try:
        parts = [analyse(series, task.settings, shifts, notes)]
    except ConfigError:
        raise  # a setting, wrong for every step: stop the run with its message
    except Exception as exc:  # noqa: BLE001 - recorded per step below
        log.warning("chunk %d failed as a whole (%s: %s); retrying step by step",
                    task.index, type(exc).__name__, exc)
        parts = []
        for i in range(n):
            one = series[i]
            try:
                parts.append(analyse(one, task.settings, shifts[i:i + 1], notes[i:i + 1]))
            except ConfigError:
                raise
            except Exception as step_exc:  # noqa: BLE001 - recorded as the step's reason
                log.warning("step %s failed: %s", one.steps[0], step_exc)
                parts.append(_failed_part(one, f"{type(step_exc).__name__}: {step_exc}"))
    return _merge_parts(parts)


def analyse(series, settings: StepSettings, shifts, shift_notes) -> dict:
    """The steps of ``series``: a table (steps.csv columns), arrays and settings used."""
    n = len(series)
    norm = normalize(series, **settings.normalize)
    wl = white_line(norm, **settings.white_line)
    ok = np.array(norm.ok, dtype=bool).reshape(n)
    reason = [str(r or "") for r in norm.reason]
    for i, note in enumerate(shift_notes):
        if note:  # step kept, but its energy axis was not aligned
            reason[i] = "; ".join(x for x in (reason[i], f"calibration not applied: {note}") if x)
    table = pd.DataFrame({
        "step": series.steps.astype(np.int64),
        "ok": ok, "reason": reason, "energy_shift": shifts,
        "e0": np.asarray(norm.e0, dtype=float).reshape(n),
        "edge_step": np.asarray(norm.edge_step, dtype=float).reshape(n),
    })
    wl = wl.set_index("step").reindex(table["step"])
    for col in WHITE_LINE_COLUMNS:
        table[col] = wl[col].to_numpy(dtype=float) if col in wl else np.nan
    arrays = {"norm": np.asarray(norm.norm, dtype=float), "flat": np.asarray(norm.flat, dtype=float)}
    meta = {"normalize_settings": dict(norm.settings or {})}
    if settings.lcf is not None:
        fractions = fit_columns(norm, settings.lcf["standards"], settings.lcf["kwargs"])
        for col in fractions.columns:
            table[col] = fractions[col].to_numpy()
    if settings.background is not None:
        _add_fits(table, arrays, meta, norm, settings)
    return {"table": table, "arrays": arrays, "meta": meta, "n_e": series.energy.size}


def _add_fits(table, arrays, meta, norm, settings: StepSettings) -> None:
    chi = remove_background(norm, **settings.background)
    fit = fit_shells(chi, settings.model, **settings.fit)
    fits = fit.to_dataframe()
    merged_into = {}  # step -> the step whose merged fit represents it
    if "merged_steps" in fits:
        for first, members in zip(fits["step"], fits["merged_steps"]):
            for m in str(members).split(","):
                if m.strip() and int(m) != int(first):
                    merged_into[int(m)] = int(first)
        fits = fits.drop(columns=["merged_steps"])
    fits = fits.set_index("step").reindex(table["step"]).reset_index(drop=True)
    for col in fits.columns:
        table[col] = fits[col].to_numpy()
    # A step's ``ok`` is its XANES: a fit that is poor or failed is reported in
    # fit_quality / fit_message and never takes the step's XANES evidence with it.
    if merged_into:  # averaged with its repeats; fitted as that step
        for i, step in enumerate(table["step"].tolist()):
            if step in merged_into:
                table.at[i, "reason"] = f"fitted merged into step {merged_into[step]}"
    if settings.systematics:   # [exafs] systematics: the CN band over processing choices
        band = systematics_columns(norm, settings.systematics)
        band = band.set_index("step").reindex(table["step"])
        for col in band.columns:
            table[col] = band[col].to_numpy()
    if settings.two_phase is not None:   # [exafs] two_phase: x and N_c apart
        columns, used = two_phase_columns(table, norm, chi, settings)
        meta["two_phase_settings"] = to_json_ready(used)
        for col in columns.columns:
            table[col] = columns[col].to_numpy()
    arrays["k"] = np.asarray(chi.k, dtype=float)
    arrays["chi"] = np.asarray(chi.chi, dtype=float)
    meta["background_settings"] = dict(chi.settings or {})
    meta["fit_settings"] = to_json_ready(fit.settings or {})


def _failed_part(one, reason: str) -> dict:
    table = pd.DataFrame({"step": one.steps.astype(np.int64), "ok": [False], "reason": [reason],
                          "energy_shift": [np.nan], "e0": [np.nan], "edge_step": [np.nan]})
    for col in WHITE_LINE_COLUMNS:
        table[col] = np.nan
    nan = np.full((1, one.energy.size), np.nan)
    return {"table": table, "arrays": {"norm": nan, "flat": nan}, "meta": {}, "n_e": one.energy.size}


def _merge_parts(parts: list[dict]) -> tuple[dict, dict]:
    table = pd.concat([p["table"] for p in parts], ignore_index=True)
    table["ok"] = table["ok"].astype(bool)
    table["reason"] = table["reason"].fillna("").astype(str)
    arrays = {name: np.concatenate([p["arrays"][name] for p in parts]) for name in ("norm", "flat")}
    with_chi = [p for p in parts if "chi" in p["arrays"]]
    if with_chi:
        n_k = max(p["arrays"]["chi"].shape[1] for p in with_chi)
        k = next(p["arrays"]["k"] for p in with_chi if p["arrays"]["chi"].shape[1] == n_k)
        rows = []
        for p in parts:
            chi = p["arrays"].get("chi")
            block = np.full((len(p["table"]), n_k), np.nan)
            if chi is not None:
                block[:, :chi.shape[1]] = chi
            rows.append(block)
        arrays["k"] = k
        arrays["chi"] = np.concatenate(rows)
    meta = next((p["meta"] for p in parts if p["meta"]), {})
    arrays.update({f"t_{name}": value for name, value in table_to_arrays(table).items()})
    return arrays, meta


def unpack_chunk(arrays: dict) -> tuple[pd.DataFrame, dict]:
    """A chunk checkpoint's ``(table, other arrays)``."""
    table = arrays_to_table({k[2:]: v for k, v in arrays.items() if k.startswith("t_")})
    rest = {k: v for k, v in arrays.items() if not k.startswith("t_")}
    return table, rest
