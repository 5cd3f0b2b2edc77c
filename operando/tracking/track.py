"""The tracking of a processed series: segments, states, events, reversibility."""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..feffpaths import DEFAULT_DISTANCES
from .changepoints import find_change_points
from .cluster import cluster_size_from_cn
from .events import EVENT_COLUMNS, REVERSIBILITY_COLUMNS, _event, _reversibility
from .settings import TrackSettings
from .states import _split_shell, classify, detect_shells

log = logging.getLogger(__name__)

#: The default condition columns, in the order they label a segment.
DEFAULT_CONDITION_COLUMNS = ("potential_V", "gas", "temperature_K")

#: Units appended to condition values in labels.
_UNITS = {"potential_V": "V", "temperature_K": "K"}


# --------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class Tracking:
    """Segments, states, events and reversibility of one series.

    Attributes
    ----------
    steps : DataFrame
        The input table plus ``segment`` (int, -1 never happens: every step is
        in a segment) and ``state``.
    segments : DataFrame
        One row per segment: ``segment, block, origin, first_step, last_step,
        n_steps, n_ok, condition`` (label), the condition columns,
        ``cn_<metal>, cn_<metal>_err, cn_<ligand>, cn_<ligand>_err`` (error-
        weighted means), ``r_<metal>``, ``wl_height, wl_height_err,
        edge_position, edge_position_err`` (eV), ``state``, ``n_atoms,
        n_atoms_lo, n_atoms_hi, diameter_nm`` (for cluster/particle).
        ``block`` numbers the constant-condition blocks; a block split at a
        change point has several segments (``origin`` = "change point").
    events : DataFrame
        Columns :data:`EVENT_COLUMNS`.
    reversibility : DataFrame
        Columns :data:`REVERSIBILITY_COLUMNS`.
    metal_shell, ligand_shell : str or None
    condition_columns : list of str
    settings : TrackSettings
    """

    steps: pd.DataFrame
    segments: pd.DataFrame
    events: pd.DataFrame
    reversibility: pd.DataFrame
    metal_shell: str
    ligand_shell: str | None
    condition_columns: list = field(default_factory=list)
    settings: TrackSettings = field(default_factory=TrackSettings)

    def summary(self) -> str:
        """Plain-text account: segments, events with evidence, reversibility."""
        s = self.segments.rename(columns={f"cn_{self.metal_shell}": "cn_metal",
                                          f"cn_{self.metal_shell}_err": "cn_metal_err"})
        m = self.metal_shell
        lines = [f"Tracking of {len(self.steps)} steps in {len(s)} segments "
                 f"(metal shell {m}, ligand shell {self.ligand_shell or 'none'}; "
                 f"conditions: {', '.join(self.condition_columns) or 'none'})", "", "Segments:"]
        for row in s.itertuples(index=False):
            r = row._asdict()
            size = ""
            if r["state"] in ("cluster", "particle") and np.isfinite(r["n_atoms"]):
                size = f", ~{r['n_atoms']:.0f} atoms"
            lines.append(
                f"  {r['segment']:>3}  steps {r['first_step']}-{r['last_step']} ({r['n_ok']}/{r['n_steps']} ok)  "
                f"{r['condition']:<20} CN({m}) = {_fmt(r['cn_metal'])} +/- {_fmt(r['cn_metal_err'])}  "
                f"-> {r['state']}{size}")
        lines += ["", "Events:" if len(self.events) else "Events: none"]
        for ev in self.events.itertuples(index=False):
            lines.append(f"  step {ev.step} (segment {ev.segment}): {ev.event} [{ev.confidence}] "
                         f"{ev.condition_before} -> {ev.condition_after}; {ev.evidence}")
        if len(self.reversibility):
            lines += ["", "Reversibility:"]
            for rv in self.reversibility.itertuples(index=False):
                lines.append(f"  segment {rv.segment} ({rv.condition}) vs segment {rv.reference_segment} "
                             f"({rv.reference_condition}): {rv.verdict}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Tracking {len(self.steps)} steps, {len(self.segments)} segments, "
                f"{len(self.events)} events>")


def _fmt(x: float, digits: int = 2) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


# --------------------------------------------------------------------------- table helpers
def _condition_value(column: str, value: Any, decimals: int) -> tuple[Any, str]:
    """(comparison key, display label) of one condition value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ("", ""), "?"
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return ("s", text.casefold()), text
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool):
        v = float(value)
        if math.isnan(v):
            return ("", ""), "?"
        v = round(v, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
        unit = _UNITS.get(column, "")
        label = f"{v:g}" if column != "potential_V" else f"{v:.2f}"
        return ("n", v), f"{label} {unit}".strip()
    text = str(value).strip()
    return ("s", text.casefold()), text


def _weighted_mean(values: np.ndarray, errors: np.ndarray, floor: float) -> tuple[float, float, int]:
    """Error-weighted mean, its error max(weighted error, std / sqrt(n)), and n."""
    ok = np.isfinite(values) & np.isfinite(errors)
    x, e = values[ok], np.maximum(errors[ok], floor)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    w = 1.0 / e**2
    mean = float(np.sum(w * x) / np.sum(w))
    err = float(1.0 / math.sqrt(np.sum(w)))
    if n >= 2:
        err = max(err, float(np.std(x, ddof=1) / math.sqrt(n)))
    return mean, err, n


def _plain_mean(values: np.ndarray, floor: float) -> tuple[float, float]:
    """Mean and max(std / sqrt(n), floor) of the finite values."""
    x = values[np.isfinite(values)]
    if x.size == 0:
        return math.nan, math.nan
    err = float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size >= 2 else 0.0
    return float(np.mean(x)), max(err, floor)


def _numeric_column(df: pd.DataFrame, name: str | None) -> np.ndarray:
    if name is None or name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)


def _bool_column(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.ones(len(df), dtype=bool)
    col = df[name]
    if col.dtype == bool:
        return col.to_numpy()
    text = col.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0", "yes"]).to_numpy()


# --------------------------------------------------------------------------- track
def track(steps: pd.DataFrame, *, metal_shell: str | None = None, ligand_shell: str | None = None,
          condition_columns: Sequence[str] | None = None,
          settings: TrackSettings | Mapping[str, Any] | None = None) -> Tracking:
    """Segments, states, events and reversibility of a processed series.

    Parameters
    ----------
    steps : DataFrame
        Per-step table with the ``steps.csv`` columns: ``step``, condition
        columns, ``ok``, ``wl_height``, ``edge_position`` (eV), and per shell
        ``cn_S, cn_S_err`` (``fit_ok``).  NaN where a step failed.
    metal_shell, ligand_shell : str, optional
        Shell names as in the column names (``"Pt-Pt"``, ``"Cu-N"``);
        auto-detected from the ``cn_*`` columns when omitted.  The ligand shell
        is optional (``None`` if absent from the table).
    condition_columns : list of str, optional
        Columns whose value defines a condition.  Default: those present among
        ``potential_V``, ``gas``, ``temperature_K`` (time is never a
        condition).  An empty list makes the whole series one block, searched
        for change points.
    settings : TrackSettings or dict, optional

    Returns
    -------
    Tracking
    """
    if isinstance(settings, Mapping):
        settings = TrackSettings.from_config(settings)
    s = settings or TrackSettings()
    if not isinstance(steps, pd.DataFrame):
        raise DataError(f"track() needs the per-step DataFrame, got {type(steps).__name__}")
    df = steps.reset_index(drop=True).copy()
    if "step" not in df.columns:
        df.insert(0, "step", np.arange(len(df)))
    if len(df) == 0:
        raise DataError("track() got an empty steps table")

    auto_metal, _ = detect_shells(list(df.columns))
    metal = metal_shell or auto_metal
    if metal is None:
        raise DataError("no metal-metal shell column (cn_M-M, e.g. 'cn_Pt-Pt') in the steps table; "
                        f"columns are {list(df.columns)}; pass metal_shell=")
    ligand = ligand_shell if ligand_shell is not None else detect_shells(list(df.columns), metal)[1]
    for shell in [metal] + ([ligand] if ligand else []):
        for col in (f"cn_{shell}", f"cn_{shell}_err"):
            if col not in df.columns:
                raise DataError(f"shell '{shell}' needs column '{col}' in the steps table; "
                                f"columns are {list(df.columns)}")

    if condition_columns is None:
        condition_columns = [c for c in DEFAULT_CONDITION_COLUMNS if c in df.columns]
    else:
        condition_columns = list(condition_columns)
        for c in condition_columns:
            if c not in df.columns:
                raise DataError(f"condition column '{c}' is not in the steps table; "
                                f"columns are {list(df.columns)}")

    # --- per-step quantities and state
    ok = _bool_column(df, "ok") & _bool_column(df, "fit_ok")
    cn_m = _numeric_column(df, f"cn_{metal}")
    cn_m_err = _numeric_column(df, f"cn_{metal}_err")
    cn_l = _numeric_column(df, f"cn_{ligand}") if ligand else None
    cn_l_err = _numeric_column(df, f"cn_{ligand}_err") if ligand else None
    ok &= np.isfinite(cn_m) & np.isfinite(cn_m_err)
    cn_m = np.where(ok, cn_m, np.nan)
    cn_m_err = np.where(ok, cn_m_err, np.nan)
    if cn_l is not None:
        cn_l = np.where(ok, cn_l, np.nan)
        cn_l_err = np.where(ok, cn_l_err, np.nan)
    wl = _numeric_column(df, "wl_height")
    edge = _numeric_column(df, "edge_position")
    r_m = _numeric_column(df, f"r_{metal}")
    step_state = classify(cn_m, cn_m_err, cn_l, cn_l_err, s)

    # --- constant-condition blocks
    keys, parts_all = [], []
    for row in df[condition_columns].itertuples(index=False) if condition_columns else [()] * len(df):
        parts = [_condition_value(c, v, s.potential_decimals) for c, v in zip(condition_columns, row)]
        keys.append(tuple(p[0] for p in parts))
        parts_all.append([p[1] for p in parts])
    # Labels name only the columns that vary: "CO+O2" rather than "CO+O2, 423 K" throughout.
    varying = [j for j in range(len(condition_columns)) if len({k[j] for k in keys}) > 1]
    shown = varying or list(range(len(condition_columns)))
    labels = [", ".join(p[j] for j in shown) if shown else "all" for p in parts_all]
    block = np.zeros(len(df), dtype=int)
    for i in range(1, len(df)):
        block[i] = block[i - 1] + (keys[i] != keys[i - 1])

    # --- split long blocks at change points (CN(M-M); the white line when no CN at all)
    signal = cn_m if np.isfinite(cn_m).any() else np.where(_bool_column(df, "ok"), wl, np.nan)
    segment = np.zeros(len(df), dtype=int)
    origin: list[str] = []
    seg_id = -1
    for b in range(block[-1] + 1):
        idx = np.flatnonzero(block == b)
        cuts: list[int] = []
        if np.isfinite(signal[idx]).sum() >= max(s.changepoint_min_steps, 2 * s.changepoint_min_size):
            cuts = find_change_points(signal[idx], min_size=s.changepoint_min_size, threshold=s.changepoint_z)
        bounds = [0] + cuts + [idx.size]
        for j in range(len(bounds) - 1):
            seg_id += 1
            segment[idx[bounds[j]:bounds[j + 1]]] = seg_id
            origin.append("condition" if j == 0 else "change point")

    # --- segment table
    rows = []
    for g in range(seg_id + 1):
        idx = np.flatnonzero(segment == g)
        first = idx[0]
        cm, cme, n_ok = _weighted_mean(cn_m[idx], cn_m_err[idx], s.min_cn_err)
        if cn_l is not None:
            cl, cle, _ = _weighted_mean(cn_l[idx], cn_l_err[idx], s.min_cn_err)
        else:
            cl = cle = math.nan
        wl_mean, wl_err = _plain_mean(wl[idx], s.wl_err)
        ed_mean, ed_err = _plain_mean(edge[idx], s.edge_err)
        r_mean = float(np.nanmean(r_m[idx])) if np.isfinite(r_m[idx]).any() else math.nan
        row = {"segment": g, "block": int(block[first]), "origin": origin[g],
               "first_step": df["step"].iloc[idx[0]], "last_step": df["step"].iloc[idx[-1]],
               "n_steps": int(idx.size), "n_ok": n_ok, "condition": labels[first]}
        for c in condition_columns:
            row[c] = df[c].iloc[first]
        row.update({"cn_metal": cm, "cn_metal_err": cme, "cn_ligand": cl, "cn_ligand_err": cle,
                    "r_metal": r_mean, "wl_height": wl_mean, "wl_height_err": wl_err,
                    "edge_position": ed_mean, "edge_position_err": ed_err})
        rows.append(row)
    seg = pd.DataFrame(rows)
    seg["state"] = classify(seg["cn_metal"], seg["cn_metal_err"],
                            seg["cn_ligand"] if ligand else None,
                            seg["cn_ligand_err"] if ligand else None, s)
    element = _split_shell(metal)[0]
    element_known = (element.capitalize(), element.capitalize()) in DEFAULT_DISTANCES
    bond = np.where(np.isfinite(seg["r_metal"]), seg["r_metal"], np.nan)
    sizes = {k: [] for k in ("n_atoms", "n_atoms_lo", "n_atoms_hi", "diameter_nm")}
    for row, d in zip(seg.itertuples(index=False), bond):
        if row.state in ("cluster", "particle"):
            cs = cluster_size_from_cn(row.cn_metal, row.cn_metal_err, bulk_cn=s.bulk_cn,
                                      bond_length=float(d) if np.isfinite(d) else None,
                                      element=element if element_known and not np.isfinite(d) else None,
                                      model=s.cluster_model)
            vals = (cs.n_atoms, cs.n_atoms_lo, cs.n_atoms_hi, cs.diameter_nm)
        elif row.state == "isolated":
            vals = (1.0, 1.0, 1.0, math.nan)
        else:
            vals = (math.nan,) * 4
        for k, v in zip(sizes, vals):
            sizes[k].append(v)
    for k, v in sizes.items():
        seg[k] = v
    seg_state = seg["state"].to_numpy()

    # --- events between consecutive segments with a known state
    events = []
    prev = None
    for g in range(len(seg)):
        if seg_state[g] == "unknown":
            continue
        if prev is not None:
            ev = _event(seg.iloc[prev], seg.iloc[g], df, segment, ok, s)
            if ev is not None:
                events.append(ev)
        prev = g
    events_df = pd.DataFrame(events, columns=EVENT_COLUMNS)

    # --- reversibility
    rev_df = pd.DataFrame(_reversibility(seg, keys, block, segment, s), columns=REVERSIBILITY_COLUMNS)

    out_steps = df.copy()
    out_steps["segment"] = segment
    out_steps["state"] = step_state
    # Present the shell-specific names alongside the generic ones the plots use.
    seg = seg.rename(columns={"cn_metal": f"cn_{metal}", "cn_metal_err": f"cn_{metal}_err",
                              "cn_ligand": f"cn_{ligand or 'ligand'}",
                              "cn_ligand_err": f"cn_{ligand or 'ligand'}_err",
                              "r_metal": f"r_{metal}"})
    log.info("tracked %d steps: %d segments, %d events", len(df), len(seg), len(events_df))
    return Tracking(steps=out_steps, segments=seg, events=events_df, reversibility=rev_df,
                     metal_shell=metal, ligand_shell=ligand, condition_columns=list(condition_columns),
                     settings=s)
