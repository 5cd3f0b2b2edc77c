"""Coordination numbers and white line of a tracked series versus condition."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import DataError
from ._conditions import _ConditionAxis, _label_events
from ._layout import EVENT_MARKERS, STATE_COLORS, _add_rects, _fit_single, _new_axes, _vlines


def plot_cn(tracking, *, ax=None, show_steps: bool = True, show_events: bool = True) -> Figure:
    """Coordination numbers of both shells versus condition, with events.

    Segment means (error-weighted, with their errors) are large symbols, the
    metal shell coloured by state; single steps are small translucent points.
    Events are marked with triangles (up: aggregation/growth, down:
    (partial) redispersion) and named.

    Parameters
    ----------
    tracking : Tracking
    ax : matplotlib Axes, optional
    show_steps, show_events : bool

    Returns
    -------
    Figure
    """
    own = ax is None
    fig, ax = _new_axes(ax)
    labels = _draw_cn(ax, tracking, show_steps=show_steps, show_events=show_events)
    if own:
        _fit_single(fig, ax)
    _label_events(ax, labels)
    return fig


def _draw_cn(ax, tracking, *, show_steps: bool = True, show_events: bool = True) -> list:
    """The CN panel without its event names; returns the names, (x, text), to place
    once the axes have their final size."""
    cx = _ConditionAxis(tracking)
    seg, st = tracking.segments, tracking.steps
    shells = [(tracking.metal_shell, "o", "k")]
    if tracking.ligand_shell:
        shells.append((tracking.ligand_shell, "s", "#2ca02c"))
    ok = st["state"].to_numpy() != "unknown"
    for shell, marker, color in shells:
        y = pd.to_numeric(st[f"cn_{shell}"], errors="coerce").to_numpy(dtype=float)
        if show_steps:
            ax.plot(cx.step_x[ok], y[ok], marker, ms=3, color=color, alpha=0.25, ls="none", zorder=2)
        mean = seg[f"cn_{shell}"].to_numpy(dtype=float)
        err = seg[f"cn_{shell}_err"].to_numpy(dtype=float)
        if cx.mode == "potential":
            ax.plot(cx.seg_x, cx.path(mean), "-", color=color, lw=0.8, alpha=0.5, zorder=3)
            ax.errorbar(cx.seg_x, mean, yerr=err, fmt="none", ecolor=color, capsize=3, zorder=4)
        else:
            x0 = seg["first_step"].to_numpy(dtype=float) - 0.4
            x1 = seg["last_step"].to_numpy(dtype=float) + 0.4
            ax.hlines(mean, x0, x1, color=color, lw=1.5, zorder=4)
            ok_err = np.isfinite(mean) & np.isfinite(err)
            _add_rects(ax, list(zip(x0[ok_err], x1[ok_err], (mean - err)[ok_err], (mean + err)[ok_err])),
                       color, alpha=0.15, zorder=3)
        faces = ([STATE_COLORS.get(s, "#7f7f7f") for s in seg["state"]] if shell == tracking.metal_shell
                 else color)
        ax.scatter(cx.seg_x, mean, marker=marker, s=45, c=faces, edgecolors=color, zorder=5,
                   label=f"CN({shell})")
    labels = []
    if show_events and len(tracking.events):
        metal = seg.set_index("segment")[f"cn_{tracking.metal_shell}"]
        pos = dict(zip(seg["segment"], cx.seg_x))
        xs, markers = [], {}
        for ev in tracking.events.itertuples(index=False):
            x = float(ev.step) - 0.5 if cx.mode == "steps" else pos[ev.segment]
            xs.append(x)
            markers.setdefault(EVENT_MARKERS.get(ev.event, "*"), []).append((x, metal[ev.segment]))
            labels.append((x, ev.event.replace("_", " ")))
        # One artist per kind (event lines, each marker shape), not one per event.
        if cx.mode == "steps":
            _vlines(ax, xs, color="0.3", ls="--", lw=0.8, zorder=1)
        else:
            # Ties the name at the top to its marker on the data.
            _vlines(ax, xs, color="#9467bd", ls=":", lw=0.7, alpha=0.6, zorder=1)
        for marker, xy in markers.items():
            ax.plot(*np.array(xy, dtype=float).T, marker, ms=11, mfc="none", mec="#9467bd", mew=1.5,
                    zorder=6, ls="none")
    for state, color in STATE_COLORS.items():
        if state in set(seg["state"]):
            ax.scatter([], [], s=30, c=color, label=state)
    cx.decorate(ax)
    ax.set_ylabel("Coordination number")
    ax.axhline(0, color="0.6", lw=0.6, zorder=1)
    # Outside, to the right: inside it would cover data or the event names wherever it goes.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              framealpha=0.8)
    return labels


def plot_white_line(tracking, *, ax=None, column: str = "wl_height") -> Figure:
    """White-line height (normalised) versus condition.

    Parameters
    ----------
    tracking : Tracking
    ax : Axes, optional
    column : str
        Step column to plot (``wl_height``, ``wl_area`` or ``edge_position``).

    Returns
    -------
    Figure
    """
    own = ax is None
    fig, ax = _new_axes(ax)
    _draw_white_line(ax, tracking, column)
    if own:
        _fit_single(fig, ax)
    return fig


def _draw_white_line(ax, tracking, column: str = "wl_height") -> None:
    st, seg = tracking.steps, tracking.segments
    if column not in st.columns:
        raise DataError(f"steps table has no '{column}' column to plot")
    cx = _ConditionAxis(tracking)
    y = pd.to_numeric(st[column], errors="coerce").to_numpy(dtype=float)
    ax.plot(cx.step_x, y, "o", ms=3, color="#1f77b4", alpha=0.3, zorder=2)
    seg_of_step = st["segment"].to_numpy()
    means = np.array([np.nanmean(y[seg_of_step == g]) if np.isfinite(y[seg_of_step == g]).any() else np.nan
                      for g in seg["segment"]])
    if cx.mode == "potential":
        ax.plot(cx.seg_x, cx.path(means), "-", color="#1f77b4", lw=0.8, alpha=0.6)
    else:
        ax.hlines(means, seg["first_step"].to_numpy(dtype=float) - 0.4,
                  seg["last_step"].to_numpy(dtype=float) + 0.4, color="#1f77b4", lw=1.5, zorder=4)
    ax.scatter(cx.seg_x, means, s=45, c=[STATE_COLORS.get(s, "#7f7f7f") for s in seg["state"]],
               edgecolors="#1f77b4", zorder=5)
    cx.decorate(ax)
    names = {"wl_height": "White-line height (norm.)", "wl_area": "White-line area (eV)",
             "edge_position": "Edge position (eV)"}
    ax.set_ylabel(names.get(column, column))
