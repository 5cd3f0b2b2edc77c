"""Coordination numbers and white line of a tracked series versus condition."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import DataError
from ..tracking.channels import flags
from ._conditions import ConditionAxis, label_events
from ._layout import STATE_COLORS, error_bars, fit_grid, fit_single, new_axes, place_grid
from ._marks import (draw_events, draw_segment_means, draw_steps, numbers, outlier_flags,
                     quality_legend)


def plot_cn(tracking, *, ax=None, show_steps: bool = True, show_events: bool = True) -> Figure:
    """Coordination numbers of the metal (and ligand) shell versus condition, with events.

    Segment estimates (with their errors) are large symbols, the metal shell
    coloured by state; single steps are small points: good fits filled, poor and
    failed fits hollow grey (a failed fit without a CN as a grey cross at the
    bottom), outliers ringed in red, so every step is on the figure.  Events are
    marked with triangles (up: more metal, down: less) and named.

    Parameters
    ----------
    tracking : Tracking
        With a metal shell (``tracking.metal_shell``); a XANES-only tracking has
        no CN to draw (:func:`operando.viz.plot_fractions` draws its evidence).
    ax : matplotlib Axes, optional
    show_steps, show_events : bool

    Returns
    -------
    Figure

    Raises
    ------
    DataError
        When the tracking has no metal shell.
    """
    if not getattr(tracking, "metal_shell", None):
        raise DataError("no CN to plot: the tracking has no metal shell (a XANES-only series); "
                        "plot_fractions or plot_white_line show its evidence")
    own = ax is None
    fig, ax = new_axes(ax)
    labels = draw_cn(ax, tracking, show_steps=show_steps, show_events=show_events)
    if own:
        fit_single(fig, ax)
    label_events(ax, labels)
    return fig


def fit_quality(steps: pd.DataFrame) -> np.ndarray:
    """``good`` / ``poor`` / ``failed`` per step: the ``fit_quality`` column, else from
    ``ok`` and ``fit_ok`` (a table written before fits were graded)."""
    if "fit_quality" in steps.columns:
        q = steps["fit_quality"].astype(object).where(steps["fit_quality"].notna(), "failed")
        return q.astype(str).to_numpy()
    return np.where(flags(steps, "ok") & flags(steps, "fit_ok"), "good", "failed")


def draw_cn(ax, tracking, *, show_steps: bool = True, show_events: bool = True) -> list:
    """The CN panel without its event names; returns the names, (x, text), to place
    once the axes have their final size."""
    cx = ConditionAxis(tracking)
    seg, st = tracking.segments, tracking.steps
    shells = [(tracking.metal_shell, "o", "k")]
    if tracking.ligand_shell:
        shells.append((tracking.ligand_shell, "s", "#2ca02c"))
    quality, outlier = fit_quality(st), outlier_flags(st)
    drawn: set = set()
    for shell, marker, color in shells:
        y = numbers(st, f"cn_{shell}")
        if show_steps:
            drawn |= draw_steps(ax, cx.step_x, y, quality, outlier, marker, color,
                                show_failed=shell == tracking.metal_shell)
        mean, err = numbers(seg, f"cn_{shell}"), numbers(seg, f"cn_{shell}_err")
        draw_segment_means(ax, cx, seg, mean, err, color)
        faces = ([STATE_COLORS.get(s, "#7f7f7f") for s in seg["state"].tolist()] if shell == tracking.metal_shell
                 else color)
        ax.scatter(cx.seg_x, mean, marker=marker, s=45, c=faces, edgecolors=color, zorder=5,
                   label=f"CN({shell})")
    labels = []
    if show_events:
        metal = dict(zip(seg["segment"], numbers(seg, f"cn_{tracking.metal_shell}")))
        labels = draw_events(ax, tracking, cx, metal)
    quality_legend(ax, drawn)
    _state_legend(ax, seg)
    cx.decorate(ax)
    ax.set_ylabel("Coordination number")
    ax.axhline(0, color="0.6", lw=0.6, zorder=1)
    # Outside, to the right: inside it would cover data or the event names wherever it goes.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              framealpha=0.8)
    return labels


def _state_legend(ax, seg) -> None:
    present = set(seg["state"].tolist())  # once, not per state (a column of thousands)
    for state, color in STATE_COLORS.items():
        if state in present:
            ax.scatter([], [], s=30, c=color, label=state)


def segment_means(y, seg_of_step, segments) -> np.ndarray:
    """Mean of the finite ``y`` of each segment (NaN where none), in one pass."""
    seg_of_step, segments = np.asarray(seg_of_step, int), np.asarray(segments, int)
    finite = np.isfinite(y)
    size = int(max(np.max(seg_of_step, initial=-1), np.max(segments, initial=-1))) + 1
    total = np.bincount(seg_of_step[finite], weights=y[finite], minlength=size)
    count = np.bincount(seg_of_step[finite], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)[segments]


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
    fig, ax = new_axes(ax)
    draw_white_line(ax, tracking, column)
    if own:
        fit_single(fig, ax)
    return fig


def draw_white_line(ax, tracking, column: str = "wl_height") -> None:
    """The white-line panel of :func:`plot_white_line`, drawn into ``ax`` (also for the summary)."""
    st, seg = tracking.steps, tracking.segments
    if column not in st.columns:
        raise DataError(f"steps table has no '{column}' column to plot")
    cx = ConditionAxis(tracking)
    y = numbers(st, column)
    ax.plot(cx.step_x, y, "o", ms=3, color="#1f77b4", alpha=0.3, zorder=2)
    seg_of_step = st["segment"].to_numpy()
    means = segment_means(y, seg_of_step, seg["segment"])
    if cx.mode == "potential":
        ax.plot(cx.seg_x, cx.path(means), "-", color="#1f77b4", lw=0.8, alpha=0.6)
    else:
        ax.hlines(means, seg["first_step"].to_numpy(dtype=float) - 0.4,
                  seg["last_step"].to_numpy(dtype=float) + 0.4, color="#1f77b4", lw=1.5, zorder=4)
    ax.scatter(cx.seg_x, means, s=45, c=[STATE_COLORS.get(s, "#7f7f7f") for s in seg["state"].tolist()],
               edgecolors="#1f77b4", zorder=5)
    cx.decorate(ax)
    names = {"wl_height": "White-line height (norm.)", "wl_area": "White-line area (eV)",
             "edge_position": "Edge position (eV)"}
    ax.set_ylabel(names.get(column, column))


#: Fit parameters drawn by :func:`plot_fit_parameters`: (column prefix, axis label).
_PARAMETERS = (("sigma2_", "σ² (Å²)"), ("r_", "R (Å)"), ("de0_", "ΔE0 (eV)"),
               ("r_factor", "R-factor"))


def plot_fit_parameters(tracking, *, shells=None) -> Figure:
    """The other shell-fit parameters versus condition: sigma^2, R, dE0 per shell and the
    fit's R-factor (four panels), drawn like the CN figure (good fits filled, poor and
    failed hollow grey, outliers ringed; segment means of the good fits as lines).

    Parameters
    ----------
    tracking : Tracking
        Its steps table holds the fit columns (``sigma2_S``, ``r_S``, ``de0_S``, their
        ``_err``, ``r_factor``).
    shells : list of str, optional
        Default the metal and ligand shells of the tracking.

    Returns
    -------
    Figure
        Four axes: sigma^2, R, dE0, R-factor.
    """
    st, seg = tracking.steps, tracking.segments
    shells = list(shells or [s for s in (tracking.metal_shell, tracking.ligand_shell) if s])
    if not shells or not any(f"r_{s}" in st.columns for s in shells):
        raise DataError("no shell-fit parameters to plot: the steps table has no r_<shell> columns "
                        "(a XANES-only series)")
    cx = ConditionAxis(tracking)
    quality, outlier = fit_quality(st), outlier_flags(st)
    good = quality == "good"
    seg_of_step = st["segment"].to_numpy()
    fig = Figure(figsize=(9.0, 5.6))
    grid = fig.subplots(2, 2, sharex=True)
    # the bottom row's title (dE0) sits in the gap between the rows
    gaps = {"hspace": 0.35}
    place_grid(fig, grid, **gaps)  # the condition strip fits its names to the axes' width
    axes = grid.ravel()
    styles = list(zip(shells, ("o", "s", "D"), ("k", "#2ca02c", "#1f77b4")))
    for ax, (prefix, label) in zip(axes, _PARAMETERS):
        columns = ([(prefix, "R-factor", "o", "k")] if prefix == "r_factor" else
                   [(f"{prefix}{shell}", shell, m, c) for shell, m, c in styles])
        drawn: set = set()
        for column, name, marker, color in columns:
            y = numbers(st, column)
            if not np.isfinite(y).any():
                continue
            err = numbers(st, f"{column}_err")
            keep = good & np.isfinite(y) & np.isfinite(err)
            error_bars(ax, cx.step_x[keep], y[keep], err[keep], color=color, alpha=0.25, lw=0.6)
            drawn |= draw_steps(ax, cx.step_x, y, quality, outlier, marker, color, show_failed=False)
            mean = segment_means(np.where(good, y, np.nan), seg_of_step, seg["segment"])
            draw_segment_means(ax, cx, seg, mean, np.full(len(seg), np.nan), color)
            ax.plot([], [], marker, color=color, ms=4, ls="-", lw=1, label=name)
        quality_legend(ax, drawn)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, framealpha=0.8)
        cx.decorate(ax, label_bands=ax in axes[:2])
        ax.set_ylabel(label)
        if prefix == "de0_" and len(shells) > 1:
            ax.set_title("ΔE0 (shared by the shells unless share_e0 = false)", fontsize=8, y=1.0)
    for ax in axes[:2]:
        ax.set_xlabel("")
    fit_grid(fig, grid, **gaps)
    return fig
