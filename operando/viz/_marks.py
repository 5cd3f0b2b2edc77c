"""Steps, segment estimates and events of a tracked series on its condition axis, drawn
the same way by the trend figures (CN, fit parameters) and the fraction figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..tracking.channels import flags
from ._conditions import MARKED_EVENTS
from ._layout import EVENT_MARKERS, OUTLIER_STYLE, POOR_STYLE, add_rects, error_bars, vlines


def numbers(table: pd.DataFrame, column: str) -> np.ndarray:
    """A column of a steps or segments table as floats (text and a missing column: NaN)."""
    if column not in table.columns:
        return np.full(len(table), np.nan)
    return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)


def draw_steps(ax, x, y, quality, outlier, marker, color, *, show_failed: bool = True) -> set:
    """Step points by fit quality, outliers ringed; returns the kinds drawn (for a legend)."""
    drawn = set()
    good = quality == "good"
    finite = np.isfinite(y)
    ax.plot(x[good & finite], y[good & finite], marker, ms=3, color=color, alpha=0.35, ls="none",
            zorder=2)
    other = ~good & finite
    if other.any():
        ax.plot(x[other], y[other], marker, ms=4.5, ls="none", zorder=2, **POOR_STYLE)
        drawn.add("poor")
    missing = ~good & ~finite
    if show_failed and missing.any():
        # No value to place: a cross on the bottom edge says "a step was here, its fit failed".
        ax.plot(x[missing], np.full(missing.sum(), 0.02), "x", ms=5, color="0.45", ls="none",
                transform=ax.get_xaxis_transform(), clip_on=False, zorder=2)
        drawn.add("failed")
    ring = outlier & finite
    if ring.any():
        ax.plot(x[ring], y[ring], "o", ls="none", zorder=6, **OUTLIER_STYLE)
        drawn.add("outlier")
    return drawn


def quality_legend(ax, drawn: set, poor_label: str = "poor/failed fit") -> None:
    """Legend entries for the kinds of step :func:`draw_steps` returned as drawn."""
    if "poor" in drawn:
        ax.plot([], [], "o", ms=4.5, ls="none", label=poor_label, **POOR_STYLE)
    if "failed" in drawn:
        ax.plot([], [], "x", ms=5, color="0.45", ls="none", label="no fit (failed)")
    if "outlier" in drawn:
        ax.plot([], [], "o", ls="none", label="outlier (kept)", **OUTLIER_STYLE)


def outlier_flags(steps: pd.DataFrame) -> np.ndarray:
    """Whether each step is an outlier (the ``outlier`` column; none without it)."""
    return flags(steps, "outlier", default=False)


def draw_segment_means(ax, cx, seg, mean, err, color) -> None:
    """Segment estimates: error bars on a potential axis, bands across the steps otherwise."""
    if cx.mode == "potential":
        ax.plot(cx.seg_x, cx.path(mean), "-", color=color, lw=0.8, alpha=0.5, zorder=3)
        # error bars with caps, as errorbar(capsize=3) draws them, in two artists
        ok = np.isfinite(mean) & np.isfinite(err)
        error_bars(ax, cx.seg_x[ok], mean[ok], err[ok], color=color, zorder=4)
        ax.plot(np.r_[cx.seg_x[ok], cx.seg_x[ok]], np.r_[(mean - err)[ok], (mean + err)[ok]], "_",
                ms=6, color=color, ls="none", zorder=4)
        return
    x0 = seg["first_step"].to_numpy(dtype=float) - 0.4
    x1 = seg["last_step"].to_numpy(dtype=float) + 0.4
    ax.hlines(mean, x0, x1, color=color, lw=1.5, zorder=4)
    ok_err = np.isfinite(mean) & np.isfinite(err)
    add_rects(ax, list(zip(x0[ok_err], x1[ok_err], (mean - err)[ok_err], (mean + err)[ok_err])),
              color, alpha=0.15, zorder=3)


def draw_events(ax, tracking, cx, y_of_segment: dict) -> list:
    """Event lines and markers (at ``y_of_segment[segment]`` where finite); returns the
    names, ``(x, text)``, for :func:`._conditions.label_events` once the axes are placed."""
    labels: list = []
    if not len(tracking.events):
        return labels
    ev = tracking.events
    # columns as plain lists, once: iterating a table's (Arrow) string columns row by row
    # costs more than the drawing for thousands of events
    segment, kind = ev["segment"].tolist(), ev["event"].tolist()
    if cx.mode == "steps":
        step = ev["step"].to_numpy(dtype=float)
        trend = (ev["origin"].astype(object) == "trend").to_numpy(dtype=bool) if "origin" in ev else False
        xs = np.where(trend, step, step - 0.5).tolist()  # a trend starts at its first step
    else:
        pos = dict(zip(tracking.segments["segment"].tolist(), cx.seg_x.tolist()))
        xs = [pos[s] for s in segment]
    markers: dict = {}
    for x, s, name in zip(xs, segment, kind):
        y = y_of_segment.get(s, np.nan)
        if np.isfinite(y):
            markers.setdefault(EVENT_MARKERS.get(name, "*"), []).append((x, y))
        labels.append((x, name.replace("_", " ")))
    if len(labels) > MARKED_EVENTS:
        return labels  # too many to mark one by one: they are counted by kind
    # One artist per kind (event lines, each marker shape), not one per event.
    if cx.mode == "steps":
        vlines(ax, xs, color="0.3", ls="--", lw=0.8, zorder=1)
    else:
        # Ties the name at the top to its marker on the data.
        vlines(ax, xs, color="#9467bd", ls=":", lw=0.7, alpha=0.6, zorder=1)
    for marker, xy in markers.items():
        ax.plot(*np.array(xy, dtype=float).T, marker, ms=11, mfc="none", mec="#9467bd", mew=1.5,
                zorder=6, ls="none")
    return labels
