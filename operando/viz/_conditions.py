"""The condition axis of tracked-series figures (potential or step bands) and event names."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ._layout import _BAND_COLORS, _add_rects, _InViewLocator, _renderer


def _varying_conditions(tracking) -> list[str]:
    seg = tracking.segments
    out = []
    for c in tracking.condition_columns:
        if c in seg.columns and seg[c].astype(str).nunique() > 1:
            out.append(c)
    return out


class _ConditionAxis:
    """Where each step and segment sits on the x axis, and how to label it."""

    def __init__(self, tracking):
        self.seg = tracking.segments
        self.steps = tracking.steps
        varying = _varying_conditions(tracking)
        self.mode = "potential" if varying == ["potential_V"] else "steps"
        if self.mode == "potential":
            numeric = pd.to_numeric(self.seg["potential_V"], errors="coerce").to_numpy(dtype=float)
            finite = numeric[np.isfinite(numeric)]
            if finite.size == 0:
                self.mode = "steps"
            else:
                span = max(float(np.ptp(finite)), 0.2)
                extra = {}
                x = numeric.copy()
                for i, value in enumerate(numeric):
                    if not np.isfinite(value):
                        label = str(self.seg["potential_V"].iloc[i]).strip()
                        if label not in extra:
                            extra[label] = finite.max() + 0.15 * span * (len(extra) + 1)
                        x[i] = extra[label]
                self.seg_x = x
                self.extra_ticks = extra
                seg_of_step = self.steps["segment"].to_numpy()
                self.step_x = x[seg_of_step]
                self.xlabel = "Potential (V vs RHE)"
        if self.mode == "steps":
            self.seg_x = ((self.seg["first_step"] + self.seg["last_step"]) / 2).to_numpy(dtype=float)
            self.step_x = self.steps["step"].to_numpy(dtype=float)
            self.extra_ticks = {}
            self.xlabel = "Step"

    def path(self, y):
        """``y`` with NaN at labelled potentials (OCP), so the line joining the
        segments in measurement order is not drawn across the axis to them."""
        y = np.asarray(y, dtype=float).copy()
        y[np.isin(self.seg_x, list(self.extra_ticks.values()))] = np.nan
        return y

    def decorate(self, ax, label_bands: bool = True):
        """Shaded condition bands (steps mode) or extra potential ticks.

        Band labels go in a strip just above the axes (not inside, where they
        would sit on the data and on the event labels); they are rotated when
        the bands are too narrow for them side by side.
        """
        if self.mode == "potential":
            if self.extra_ticks:
                numeric = self.seg_x[~np.isin(self.seg_x, list(self.extra_ticks.values()))]
                lo, hi = float(np.min(numeric)), float(np.max(numeric))
                ticks = [t for t in MaxNLocator(nbins=6).tick_values(lo, hi) if lo - 1e-9 <= t <= hi + 1e-9]
                ax.set_xticks(ticks + list(self.extra_ticks.values()),
                              [f"{t:g}" for t in ticks] + list(self.extra_ticks))
                pad = 0.06 * (max(self.extra_ticks.values()) - lo)
                ax.set_xlim(lo - pad, max(self.extra_ticks.values()) + pad)
            ax.set_xlabel(self.xlabel)
            return
        ax.xaxis.set_major_locator(_InViewLocator(integer=True))  # steps are whole numbers
        colors = {}
        extent = self.seg.groupby("block", sort=False).agg(first=("first_step", "min"),
                                                           last=("last_step", "max"))
        bands, faces = [], []
        for row in self.seg.drop_duplicates("block").itertuples(index=False):
            first, last = extent.loc[row.block, "first"], extent.loc[row.block, "last"]
            faces.append(colors.setdefault(row.condition, _BAND_COLORS[len(colors) % len(_BAND_COLORS)]))
            bands.append((first, last, str(row.condition)))
        # One collection for all bands (full height, like axvspan), not one patch each.
        _add_rects(ax, [(first - 0.5, last + 0.5, 0.0, 1.0) for first, last, _ in bands], faces,
                   alpha=0.8, transform=ax.get_xaxis_transform(), zorder=0, autolim=False)
        if label_bands and bands:
            # Rough fit test (label ~0.6 em per character at 8 pt against the band width on
            # a ~5 inch axis): rotate all labels when any would spill into its neighbour.
            n_steps = max(float(self.seg["last_step"].max() - self.seg["first_step"].min() + 1), 1.0)
            tight = any(len(text) * 8 * 0.6 > (last - first + 1) / n_steps * 5 * 72
                        for first, last, text in bands)
            for first, last, text in bands:
                label = ax.annotate(
                    text, ((first + last) / 2, 1.0), xycoords=ax.get_xaxis_transform(),
                    xytext=(0, 3), textcoords="offset points", fontsize=8, annotation_clip=False,
                    ha="left" if tight else "center", va="bottom", rotation=35 if tight else 0,
                    rotation_mode="anchor")
                label.set_gid("condition-label")
        ax.set_xlabel(self.xlabel)


def _label_events(ax, events, *, fontsize: float = 7, color: str = "#9467bd") -> None:
    """Event names in rows just inside the top of the axes, with headroom for them.

    ``events``: (x in data units, name).  Names are placed left-aligned at their x
    on the first row where they do not overlap an earlier name (measured with the
    renderer), and the y limit is raised so no data point reaches the rows.
    """
    if not events:
        return
    fig = ax.figure
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()  # a caller's layout engine sets the axes size on draw
    renderer = _renderer(fig)
    ax.get_xlim()  # settle autoscaling so the names' x positions are final
    frame = ax.get_window_extent(renderer)
    rows: list[list[tuple[float, float]]] = []
    line = fontsize * 1.35
    texts = []
    for x, name in sorted(events, key=lambda e: e[0]):
        # Only the names are measured (no draw of the figure).
        text = ax.annotate(name, (x, 1.0), xycoords=ax.get_xaxis_transform(), xytext=(2, -2),
                           textcoords="offset points", ha="left", va="top", fontsize=fontsize,
                           color=color, annotation_clip=False, zorder=7,
                           bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.7))
        box = text.get_window_extent(renderer)
        if box.x1 > frame.x1:
            # Near the right edge: hang the name to the left of its line instead.
            text.set_horizontalalignment("right")
            text.xyann = (-2, -2)
            box = text.get_window_extent(renderer)
        span = (box.x0 - 4, box.x1 + 4)
        for level, taken in enumerate(rows):
            if all(span[1] <= a or span[0] >= b for a, b in taken):
                taken.append(span)
                break
        else:
            level = len(rows)
            rows.append([span])
        text.xyann = (text.xyann[0], -2 - level * line)
        texts.append(text)
    # Headroom: the label rows take this fraction of the axes height (plus a margin for
    # marker size); stretch the y range so the data stay below them.
    height_pt = frame.height * 72 / fig.dpi
    frac = min((len(rows) * line + 6) / max(height_pt, 1.0), 0.5)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, lo + (hi - lo) / (1 - frac))
