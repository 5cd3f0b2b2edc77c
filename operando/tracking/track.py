"""The tracking of a processed series: segments, states, events, reversibility."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .._util.result import Result
from ..errors import DataError
from ..feffpaths import DEFAULT_DISTANCES
from . import channels as channels_mod
from .cluster import cluster_size_from_cn, segment_two_phase
from .conditions import blocks, check_columns, default_condition_columns
from .events import EVENT_COLUMNS, REVERSIBILITY_COLUMNS, find_events, reversibility
from .segments import outliers, segment_bounds, split, stats
from ..options import TrackSettings
from .states import baseline_segment, segment_states

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Tracking(Result):
    """Segments, states, events and reversibility of one series.

    Attributes
    ----------
    steps : DataFrame
        The input table plus ``segment``, ``state``, ``xanes_state`` (the segment's),
        ``outlier`` and ``outlier_reason``.
    segments : DataFrame
        One row per segment: ``segment, block, origin, first_step, last_step,
        n_steps, n_ok, condition``, the condition columns, for every evidence
        channel ``<channel>, <channel>_err`` (estimate and uncertainty, see
        :mod:`.segments`), ``state, xanes_state, metal_evidence``, and for
        cluster/particle segments with a CN ``n_atoms, n_atoms_lo, n_atoms_hi,
        diameter_nm, size_note``.
    events : DataFrame
        Columns :data:`EVENT_COLUMNS`.
    reversibility : DataFrame
        Columns :data:`REVERSIBILITY_COLUMNS`.
    metal_shell, ligand_shell : str or None
    channels : list of str
        The evidence channels used (columns of the steps table).
    condition_columns : list of str
    baseline_segment : int
        The segment the states are judged against.
    settings : TrackSettings
    """

    steps: pd.DataFrame
    segments: pd.DataFrame
    events: pd.DataFrame
    reversibility: pd.DataFrame
    metal_shell: str | None
    ligand_shell: str | None
    channels: list = field(default_factory=list)
    condition_columns: list = field(default_factory=list)
    baseline_segment: int = 0
    settings: TrackSettings = field(default_factory=TrackSettings)

    def to_dataframe(self) -> pd.DataFrame:
        """The steps table with ``segment, state, xanes_state, outlier, outlier_reason``
        (a copy); ``segments``, ``events`` and ``reversibility`` are tables too."""
        return self.steps.copy()

    def report(self) -> str:
        """Plain-text account: segments with their evidence, events, reversibility."""
        lines = [f"Tracking of {len(self.steps)} steps in {len(self.segments)} segments "
                 f"(evidence: {', '.join(self.channels) or 'none'}; conditions: "
                 f"{', '.join(self.condition_columns) or 'none'}; baseline: segment "
                 f"{self.baseline_segment})", "", "Segments:"]
        for r in self.segments.to_dict("records"):
            size = f", {r['size_note']}" if r.get("size_note") else ""
            lines.append(f"  {r['segment']:>3}  steps {r['first_step']}-{r['last_step']} "
                         f"({r['n_ok']}/{r['n_steps']} ok)  {r['condition']:<20} -> {r['state']}"
                         f" [{r['xanes_state']}]{size}  {r['metal_evidence']}")
        lines += ["", "Events:" if len(self.events) else "Events: none"]
        for ev in self.events.to_dict("records"):
            lines.append(f"  step {ev['step']} (segment {ev['segment']}): {ev['event']} "
                         f"[{ev['confidence']}, z = {ev['z']:.1f}] {ev['condition_before']} -> "
                         f"{ev['condition_after']}; {ev['evidence']}")
        if "cluster_cn" in self.channels:      # two-phase: fraction and size apart
            kinds = self.events["event"].tolist()
            counts = {k: kinds.count(k) for k in ("aggregation", "growth", "partial_redispersion",
                                                  "redispersion")}
            told = [f"{name} {n}" for name, n in zip(
                ("aggregation (more atoms into clusters)", "growth/sintering (larger clusters)",
                 "partial redispersion", "redispersion"), counts.values()) if n]
            lines += ["", "Clusters (fraction and size apart): "
                      + (", ".join(told) if told else "no change")]
        if len(self.reversibility):
            lines += ["", "Reversibility:"]
            for rv in self.reversibility.to_dict("records"):
                lines.append(f"  segment {rv['segment']} ({rv['condition']}) vs segment "
                             f"{rv['baseline_segment']} ({rv['baseline_condition']}): "
                             f"{rv['verdict']}")
        n_out = int(self.steps["outlier"].sum())
        if n_out:
            lines += ["", f"Outliers (kept): {n_out} steps, see the outlier_reason column"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Tracking {len(self.steps)} steps, {len(self.segments)} segments, "
                f"{len(self.events)} events>")

    def _repr_html_(self) -> str:
        from .._util.reprs import tracking_html

        return tracking_html(self)


def check_baseline(conditions: pd.DataFrame, *, condition_columns: Sequence[str] | None = None,
                   settings: TrackSettings | Mapping[str, Any] | None = None) -> None:
    """Refuse, before any analysis, a ``baseline`` that names no condition of the
    conditions table (or condition columns it lacks): :func:`track` would find out
    only at the end.  The labels are :func:`track`'s own (same columns, same rounding).

    Raises
    ------
    ConfigError
        ``baseline`` matches no condition label.
    DataError
        A ``condition_columns`` entry is not a column of ``conditions``.
    """
    s = settings if isinstance(settings, TrackSettings) else TrackSettings.from_config(settings)
    columns = (default_condition_columns(conditions) if condition_columns is None
               else check_columns(conditions, condition_columns))
    if s.baseline == "first":
        return
    _, labels, _ = blocks(conditions, columns, s.potential_decimals)
    baseline_segment(labels, s)


def track(steps: pd.DataFrame, *, metal_shell: str | None = None, ligand_shell: str | None = None,
          condition_columns: Sequence[str] | None = None,
          settings: TrackSettings | Mapping[str, Any] | None = None,
          edge: str | None = None) -> Tracking:
    """Segments, states, events and reversibility of a processed series.

    Parameters
    ----------
    steps : DataFrame
        Per-step table with the ``steps.csv`` columns: ``step``, condition columns,
        ``ok``, ``wl_height``, ``edge_position`` (eV); with EXAFS per shell ``cn_S,
        cn_S_err`` (``cn_S_limit``) and ``fit_ok``; with component analysis
        ``frac_<name>, frac_<name>_err`` (``lcf_ok``).  Whatever is there is used.
    metal_shell, ligand_shell : str, optional
        Shell names as in the column names (``"Pt-Pt"``, ``"Cu-N"``); detected from
        the ``cn_*`` columns when omitted; none for a XANES-only table.
    condition_columns : list of str, optional
        Columns whose values define a condition.  Default: every user column
        (:func:`.conditions.default_condition_columns`).  An empty list makes the
        whole series one block, searched for change points and trends.
    settings : TrackSettings or dict, optional
    edge : str, optional
        The absorption edge (``"K"``, ``"L3"``): at L edges the edge position is evidence
        of change without a direction (see :mod:`.channels`).

    Returns
    -------
    Tracking
    """
    s = settings if isinstance(settings, TrackSettings) else TrackSettings.from_config(settings)
    if not isinstance(steps, pd.DataFrame):
        raise DataError(f"track() needs the per-step DataFrame, got {type(steps).__name__}")
    df = steps.reset_index(drop=True).copy()
    if "step" not in df.columns:
        df.insert(0, "step", np.arange(len(df)))
    if len(df) == 0:
        raise DataError("track() got an empty steps table")

    metal = metal_shell or channels_mod.detect_shells(list(df.columns))[0]
    ligand = ligand_shell if ligand_shell is not None else (
        channels_mod.detect_shells(list(df.columns), metal)[1] if metal else None)
    for shell in [x for x in (metal, ligand) if x]:
        for col in (f"cn_{shell}", f"cn_{shell}_err"):
            if col not in df.columns:
                raise DataError(f"shell '{shell}' needs column '{col}' in the steps table; "
                                f"columns are {list(df.columns)}")
    columns = (default_condition_columns(df) if condition_columns is None
               else check_columns(df, condition_columns))
    chans = channels_mod.build(df, metal, ligand, s, edge)

    keys, labels, block = blocks(df, columns, s.potential_decimals)
    signal = _change_signal(chans)
    segment, origin = split(block, signal, s)
    n_seg = int(segment.max()) + 1
    all_stats = {c.name: stats(c, segment, n_seg) for c in chans}
    bounds = segment_bounds(segment, n_seg)
    usable = np.logical_or.reduce([c.usable for c in chans])   # steps with any evidence
    seg = _segment_table(df, bounds, block, origin, labels, columns, chans, all_stats, usable)
    if metal and f"r_{metal}" in df.columns:  # the fitted bond length of good fits (sizes)
        cn = next(c for c in chans if c.name == f"cn_{metal}") if f"cn_{metal}" in all_stats else None
        r = channels_mod.numeric(df, f"r_{metal}")
        use = cn.usable if cn is not None else np.zeros(len(df), bool)
        parts = [r[a:b][use[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]
        seg[f"r_{metal}"] = [float(np.mean(x)) if x.size else math.nan for x in parts]
    ref = baseline_segment(seg["condition"].tolist(), s)
    state, xanes_state, evidence = segment_states(chans, all_stats, n_seg, ref, s)
    seg["state"], seg["xanes_state"], seg["metal_evidence"] = state, xanes_state, evidence
    _add_sizes(seg, metal, df, segment, all_stats, s)

    # trends are taken against the order of the steps (a rank in time): a monotonic change
    # is found however unevenly the scans are spaced, and one late scan has no extra leverage
    order = np.arange(len(df), dtype=float)

    def segment_steps(g):
        return np.arange(bounds[g], bounds[g + 1])

    step_of_row = df["step"].to_numpy()

    def first_ok_step(g):
        idx = bounds[g] + np.flatnonzero(usable[bounds[g]:bounds[g + 1]])
        return step_of_row[(idx if idx.size else segment_steps(g))[0]]

    events = pd.DataFrame(find_events(seg, chans, all_stats, first_ok_step, segment_steps, order, s),
                          columns=EVENT_COLUMNS)
    rev = pd.DataFrame(reversibility(seg, keys, block, chans, all_stats, ref, s),
                       columns=REVERSIBILITY_COLUMNS)
    out = df.copy()
    out["segment"] = segment
    out["state"] = state[segment]
    out["xanes_state"] = xanes_state[segment]
    out["outlier"], out["outlier_reason"] = outliers(chans, all_stats, segment, s)
    log.info("tracked %d steps: %d segments, %d events", len(df), len(seg), len(events))
    return Tracking(steps=out, segments=seg, events=events, reversibility=rev, metal_shell=metal,
                    ligand_shell=ligand, channels=[c.name for c in chans],
                    condition_columns=list(columns), baseline_segment=ref, settings=s)


def _change_signal(chans) -> np.ndarray:
    """The sequence searched for change points within a condition: the first metal channel,
    else the first channel there is."""
    preferred = [c for c in chans if c.role == "metal"] or chans
    if not preferred:
        raise DataError("the steps table holds no usable evidence: no CN, fraction, white line "
                        "or edge position")
    return preferred[0].value


def _segment_table(df, bounds, block, origin, labels, columns, chans, all_stats,
                   usable) -> pd.DataFrame:
    rows = []
    step = df["step"].to_numpy()
    condition_values = {c: df[c].to_numpy() for c in columns}
    for g in range(len(bounds) - 1):
        first, stop = int(bounds[g]), int(bounds[g + 1])
        row = {"segment": g, "block": int(block[first]), "origin": origin[g],
               "first_step": step[first], "last_step": step[stop - 1],
               "n_steps": stop - first, "n_ok": int(usable[first:stop].sum()),
               "condition": labels[first]}
        for c in columns:
            row[c] = condition_values[c][first]
        for c in chans:
            st = all_stats[c.name]
            row[c.name], row[f"{c.name}_err"] = st.mean[g], st.err[g]
        rows.append(row)
    return pd.DataFrame(rows)


def _add_sizes(seg: pd.DataFrame, metal, df, segment, all_stats, s: TrackSettings) -> None:
    """Cluster sizes where a CN means one: a CN within two errors (S0^2's included) of the
    bulk value is bulk-like, reported as a lower bound on the size."""
    cols = {k: np.full(len(seg), math.nan) for k in ("n_atoms", "n_atoms_lo", "n_atoms_hi",
                                                      "diameter_nm")}
    notes = [""] * len(seg)
    name = f"cn_{metal}" if metal else None
    element = channels_mod.split_shell(metal)[0] if metal else None
    frac = channels_mod.metal_fraction_column(df, element, s)
    if element is not None and (element.capitalize(), element.capitalize()) not in DEFAULT_DISTANCES:
        element = None                # no default bond length: sizes in atoms only
    if "cluster_cn" in all_stats:     # the clusters' own CN: the size, apart from x
        _two_phase_sizes(seg, element, df, segment, all_stats, all_stats.get(frac), s)
        return
    if name in all_stats:
        st = all_stats[name]
        s02, s02_err = channels_mod.numeric(df, "s02"), channels_mod.numeric(df, "s02_err")
        rel = s02_err / s02
        s02_rel = float(rel[np.isfinite(rel)][0]) if np.isfinite(rel).any() else 0.0
        for g in range(len(seg)):
            if seg["state"].iloc[g] not in ("cluster", "particle"):
                continue
            # an absolute size carries the S0^2 uncertainty (differences between steps do
            # not: S0^2 is common to all of them and cancels)
            cn, err = st.mean[g], math.hypot(st.err[g], st.mean[g] * s02_rel)
            if not np.isfinite(cn):
                continue
            if frac in all_stats and all_stats[frac].mean[g] + 2 * all_stats[frac].err[g] < 1:
                # CN(M-M) of a mixture is x N_c: a size read from it is x times too small
                notes[g] = "metal fraction below 1: size needs [exafs] two_phase"
                continue
            bond = seg[f"r_{metal}"].iloc[g] if f"r_{metal}" in seg else math.nan
            bond = float(bond) if np.isfinite(bond) else None
            kw = dict(bulk_cn=s.bulk_cn, bond_length=bond,
                      element=element if bond is None else None, model=s.cluster_model)
            if cn + 2 * err >= s.bulk_cn:
                low = cluster_size_from_cn(max(cn - 2 * err, 0.0), 0.0, **kw)
                cols["n_atoms"][g] = math.inf
                cols["n_atoms_lo"][g] = low.n_atoms
                cols["n_atoms_hi"][g] = math.inf
                notes[g] = (f"bulk-like (> {low.diameter_nm:.1f} nm)" if np.isfinite(low.diameter_nm)
                            else f"bulk-like (> {low.n_atoms:.0f} atoms)")
                continue
            cs = cluster_size_from_cn(cn, err, **kw)
            cols["n_atoms"][g], cols["n_atoms_lo"][g] = cs.n_atoms, cs.n_atoms_lo
            cols["n_atoms_hi"][g], cols["diameter_nm"][g] = cs.n_atoms_hi, cs.diameter_nm
            notes[g] = f"~{cs.n_atoms:.0f} atoms" + (f", {cs.diameter_nm:.1f} nm"
                                                     if np.isfinite(cs.diameter_nm) else "")
    for k, v in cols.items():
        seg[k] = v
    seg["size_note"] = notes


def _two_phase_sizes(seg, element, df, segment, all_stats, fraction_stats,
                     s: TrackSettings) -> None:
    """Sizes from the two-phase ``cluster_cn`` (never from the mixture CN); ``element``
    gives the bond length where the fit has none (None: no default distance)."""
    metal_state = seg["state"].isin(("cluster", "particle")).to_numpy()
    cols = segment_two_phase(df, segment, len(seg), all_stats["cluster_cn"], fraction_stats,
                             metal_state, element=element, bulk_cn=s.bulk_cn,
                             model=s.cluster_model, fraction_floor=s.frac_floor)
    for c in cols.columns:
        seg[c] = cols[c].to_numpy()
    notes = []
    for r in cols.to_dict("records"):
        if not np.isfinite(r["cluster_cn"]):
            notes.append("")
        elif not r["size_determinable"]:
            bulk = r["cluster_cn"] + r["cluster_cn_err"] >= s.bulk_cn
            notes.append(f"x = {r['cluster_fraction']:.2f}, N_c = {r['cluster_cn']:.1f}: "
                         + ("bulk-like (size a lower bound)" if bulk else
                            "cluster size not determinable"))
        else:
            notes.append(f"x = {r['cluster_fraction']:.2f}, N_c = {r['cluster_cn']:.1f}: "
                         f"~{r['n_atoms']:.0f} atoms ({r['n_atoms_lo']:.0f}-{r['n_atoms_hi']:.0f})"
                         + (f", {r['diameter_nm']:.1f} nm" if np.isfinite(r["diameter_nm"]) else ""))
        if not r["fraction_consistent"]:
            notes[-1] = "; ".join(n for n in (notes[-1], (
                f"XANES and EXAFS fractions disagree (z = {r['fraction_z']:.1f}): check the "
                "isolated reference, self-absorption or disorder")) if n)
    seg["size_note"] = notes
