"""The condition axis of tracked-series figures (potential or step bands) and event names."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import numpy as np
import pandas as pd
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from matplotlib.textpath import TextToPath
from matplotlib.ticker import MaxNLocator

from ._layout import BAND_COLORS, InViewLocator, add_rects, agg_renderer

#: Conditions named in a condition key; more are summed up in its last entry.
KEY_ENTRIES = 12
#: Event names written at most in this many rows; more events are counted by kind instead.
EVENT_ROWS = 3
#: Event names measured and placed at most (each is a text artist).
EVENT_NAMES = 40
#: Events marked one by one (a line, a marker) at most; more are only counted.
MARKED_EVENTS = 200
#: Share of the axes' current width the labels are fitted into: the final layout (a
#: legend or colour bar beside the axes) takes up to a quarter of it.
_WIDTH_SHARE = 0.75


@lru_cache(maxsize=4096)
def text_width_pt(text: str, size: float) -> float:
    """Width of ``text`` at ``size`` points, in points (the font's metrics, no renderer)."""
    width, _, _ = TextToPath().get_text_width_height_descent(text, FontProperties(size=size),
                                                             ismath=False)
    return float(width)


def axes_width_pt(ax) -> float:
    """The axes' width in points at its current position, times :data:`_WIDTH_SHARE`."""
    return ax.get_position().width * ax.figure.get_figwidth() * 72 * _WIDTH_SHARE


def condition_colors(labels) -> dict:
    """Band colour of each condition, in order of first appearance (a condition that
    returns keeps its colour)."""
    colors: dict = {}
    for label in labels:
        colors.setdefault(str(label), BAND_COLORS[len(colors) % len(BAND_COLORS)])
    return colors


def condition_key(ax, colors: dict, *, fontsize: float = 7):
    """A key of the condition classes (colour -> condition) in a strip just above the axes:
    one entry per condition, however many blocks, so it never crowds.  Up to
    :data:`KEY_ENTRIES` conditions are named, the rest counted in a last entry."""
    names = list(colors)
    shown = names if len(names) <= KEY_ENTRIES else names[:KEY_ENTRIES - 1]
    handles = [Patch(facecolor=colors[n], edgecolor="0.6", lw=0.4, label=n) for n in shown]
    if len(shown) < len(names):
        handles.append(Patch(facecolor="none", edgecolor="none",
                             label=f"+ {len(names) - len(shown)} more conditions"))
    widest = max(text_width_pt(h.get_label(), fontsize) for h in handles) + 2.6 * fontsize
    ncol = int(max(1, min(len(handles), axes_width_pt(ax) // widest)))
    key = ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=ncol,
                    fontsize=fontsize, frameon=False, borderaxespad=0.15, handlelength=1.2,
                    handletextpad=0.4, columnspacing=1.0)
    key.set_gid("condition-label")
    ax.add_artist(key)  # a later ax.legend() (states, shells) must not replace it
    ax.legend_ = None
    return key


def _varying_conditions(tracking) -> list[str]:
    seg = tracking.segments
    return [c for c in tracking.condition_columns
            if c in seg.columns and seg[c].astype(str).nunique() > 1]


def condition_blocks(seg: pd.DataFrame) -> pd.DataFrame:
    """Per block (a run of segments under one condition): its first and last step and its
    condition, in order."""
    return seg.groupby("block", sort=False).agg(first=("first_step", "min"),
                                                last=("last_step", "max"),
                                                condition=("condition", "first"))


class ConditionAxis:
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
        would sit on the data and on the event labels), one per band when every
        name fits its band; otherwise the strip is a key with one entry per
        condition (:func:`condition_key`), so names never overlap at any length.
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
        ax.xaxis.set_major_locator(InViewLocator(integer=True))  # steps are whole numbers
        extent = condition_blocks(self.seg)
        firsts, lasts = extent["first"].to_numpy(), extent["last"].to_numpy()
        texts = extent["condition"].astype(str).tolist()
        colors = condition_colors(texts)
        faces = [colors[t] for t in texts]
        # One collection for all bands (full height, like axvspan), not one patch each.
        add_rects(ax, list(zip(firsts - 0.5, lasts + 0.5, np.zeros(len(texts)), np.ones(len(texts)))),
                  faces, alpha=0.8, transform=ax.get_xaxis_transform(), zorder=0, autolim=False)
        if label_bands and texts:
            # Each band's name above it when every name fits its band; else one key entry
            # per condition (thousands of blocks, or narrow ones): labels never overlap.
            n_steps = max(float(self.seg["last_step"].max() - self.seg["first_step"].min() + 1), 1.0)
            room = (lasts - firsts + 1) / n_steps * axes_width_pt(ax)
            fits = len(texts) <= 2 * KEY_ENTRIES and all(
                text_width_pt(t, 8) + 6 <= w for t, w in zip(texts, room))
            if not fits:
                condition_key(ax, colors)
            else:
                for first, last, text in zip(firsts, lasts, texts):
                    label = ax.annotate(
                        text, ((first + last) / 2, 1.0), xycoords=ax.get_xaxis_transform(),
                        xytext=(0, 3), textcoords="offset points", fontsize=8,
                        annotation_clip=False, ha="center", va="bottom")
                    label.set_gid("condition-label")
        ax.set_xlabel(self.xlabel)


def label_events(ax, events, *, fontsize: float = 7, color: str = "#9467bd") -> None:
    """Event names in rows just inside the top of the axes, with headroom for them.

    ``events``: (x in data units, name).  Names are placed left-aligned at their x
    on the first row where they do not overlap an earlier name (measured with the
    renderer), and the y limit is raised so no data point reaches the rows.
    """
    if not events:
        return
    if len(events) > EVENT_NAMES or not _place_event_names(ax, events, fontsize, color):
        _count_events(ax, events, fontsize, color)


def _count_events(ax, events, fontsize: float, color: str) -> None:
    """One line for many events: how many of each kind (the lines and markers show where)."""
    counts = Counter(name for _, name in events)
    parts = [f"{len(events)} events:"] + [f"{n} {name}," for name, n in counts.items()]
    parts[-1] = parts[-1].rstrip(",")
    lines, width = [""], axes_width_pt(ax)
    for part in parts:  # wrapped to the axes' width
        wide = f"{lines[-1]} {part}".strip()
        if lines[-1] and text_width_pt(wide, fontsize) > width:
            lines.append(part)
        else:
            lines[-1] = wide
    text = "\n".join(lines)
    ax.annotate(text, (0.0, 1.0), xycoords="axes fraction", xytext=(3, -3),
                textcoords="offset points", ha="left", va="top", fontsize=fontsize, color=color,
                zorder=7, bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))
    _headroom(ax, ax.get_window_extent(agg_renderer(ax.figure)), len(lines) * fontsize * 1.35)


def _place_event_names(ax, events, fontsize: float, color: str) -> bool:
    """Each event's name at its line, in rows; False (nothing drawn) when they would need
    more than :data:`EVENT_ROWS` rows."""
    fig = ax.figure
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()  # a caller's layout engine sets the axes size on draw
    renderer = agg_renderer(fig)
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
    if len(rows) > EVENT_ROWS:
        for text in texts:
            text.remove()
        return False
    _headroom(ax, frame, len(rows) * line)
    return True


def _headroom(ax, frame, text_pt: float) -> None:
    """Stretch the y range so the data stay below ``text_pt`` points of names at the top of
    the axes (``frame``: their window extent), plus a margin for the marker size."""
    height_pt = frame.height * 72 / ax.figure.dpi
    frac = min((text_pt + 6) / max(height_pt, 1.0), 0.5)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, lo + (hi - lo) / (1 - frac))
