"""Colours, fixed margins, tick locators and one-artist helpers shared by the figures.

Figures are laid out with fixed margins in inches instead of a layout engine;
only the parts that vary (legend, condition strip, colour bar) are measured,
where they are made.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import AutoLocator, MaxNLocator

#: Face colour of each tracking state (steps, segments, waterfall traces).
STATE_COLORS = {"isolated": "#1f77b4", "cluster": "#ff7f0e", "particle": "#d62728",
                "oxidised": "#17becf", "mixed": "#bcbd22", "reduced": "#8c564b",
                "as_start": "#aec7e8", "unknown": "#7f7f7f"}
#: Marker of each event kind (up: more metal / reduced, down: less metal / oxidised).
EVENT_MARKERS = {"aggregation": "^", "growth": "^", "reduction": "^", "redispersion": "v",
                 "partial_redispersion": "v", "oxidation": "v"}
#: How steps whose shell fit is not good are drawn (never hidden): hollow grey.
POOR_STYLE = dict(mfc="none", mec="0.45", mew=0.9)
#: Outliers (a step unlike its repeats, kept) get a red ring.
OUTLIER_STYLE = dict(mfc="none", mec="#d62728", mew=1.2, ms=9)
#: Fill colours of the condition bands (a condition that returns keeps its colour).
BAND_COLORS = ["#dbe9f6", "#fde2c8", "#d9f0d3", "#eadcf2", "#f8d7da", "#fff3bf", "#d7f2f0", "#e9e9e9",
                "#f3e1c1", "#e3f2c4", "#f6d5ec", "#cfd8f2"]


# --------------------------------------------------------------------------- margins
# Fixed margins, in inches, instead of constrained layout, which measures every tick label
# of every axes on each draw.  The margins hold tick labels plus axis label at 10 pt (left:
# up to 6 characters such as "8984.5"); the parts that vary (legend, condition strip,
# colour bar) are measured or added where they are made.
#: Fixed margins (inches) of one panel: tick labels plus axis label, before strip and legend.
MARGIN = {"left": 0.85, "right": 0.2, "bottom": 0.55, "top": 0.15}
#: Inches between the axes and a legend or condition strip beside it.
GAP = 0.08
#: Top margin (inches) of panels with a title at 9 pt above them.  Titles are set at an
#: explicit ``y=1.0``: without it matplotlib measures every tick label of the axes on each
#: draw to keep the title clear of top tick labels, which these figures do not have.
TITLE_MARGIN = 0.35
#: Inches a colour bar beside its map takes (:func:`colorbar_beside`): gap, bar, tick
#: labels and label.
COLORBAR = 1.0


class InViewLocator(MaxNLocator):
    """:class:`MaxNLocator` without the ticks outside the view limits.

    Matplotlib makes a tick object (three lines, two texts) for every location
    the locator returns, also the one or two beyond each end that are never
    drawn.  The ticks drawn and their labels are the same: the formatter works
    from the ticks in view.
    """

    def __call__(self):
        locs = np.asarray(super().__call__())
        lo, hi = sorted(self.axis.get_view_interval())
        tol = 1e-9 * (hi - lo)
        inside = locs[(locs >= lo - tol) & (locs <= hi + tol)]
        return inside if inside.size >= 2 else locs


def _auto_locator(**kwargs) -> InViewLocator:
    """The locator of matplotlib's default (AutoLocator), in-view ticks only."""
    return InViewLocator(**({"nbins": "auto", "steps": [1, 2, 2.5, 5, 10]} | kwargs))


def add_axes(fig, rect=None):
    """A new axes (``rect`` in figure fractions, or one subplot filling the figure)
    with in-view tick locators."""
    ax = fig.add_subplot(1, 1, 1) if rect is None else fig.add_axes(rect)
    ax.xaxis.set_major_locator(_auto_locator())
    ax.yaxis.set_major_locator(_auto_locator())
    return ax


def in_view_locators(ax) -> None:
    """Matplotlib's default locator (AutoLocator) of each axis of ``ax`` replaced by the
    same one without the ticks outside the view (:class:`InViewLocator`); other locators
    (log axes, fixed ticks) are kept."""
    for axis in (ax.xaxis, ax.yaxis):
        if type(axis.get_major_locator()) is AutoLocator:
            axis.set_major_locator(_auto_locator())


def new_axes(ax, figsize=(6.4, 4.2)):
    """``ax`` and its figure, or a new one-panel figure (``figsize`` inches) and its axes."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize)
    return fig, add_axes(fig)


def agg_renderer(fig):
    """The Agg renderer text is measured with (made once per figure and size)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def place_axes(fig, ax, left, bottom, right, top) -> None:
    """Put ``ax`` at fixed margins (inches) from the figure edges."""
    w, h = fig.get_size_inches()
    ax.set_position([left / w, bottom / h, max(w - left - right, 0.5) / w, max(h - bottom - top, 0.5) / h])


def extra_margins(ax, renderer) -> tuple[float, float]:
    """Room (inches) the condition strip and a legend outside the axes need above and to
    the right of ``ax`` at its current position: only these artists are measured."""
    fig = ax.figure
    frame = ax.get_window_extent(renderer)
    top = right = 0.0
    boxes = [t.get_window_extent(renderer) for t in [*ax.texts, *ax.artists]
             if t.get_gid() == "condition-label"]
    legend = ax.get_legend()
    if legend is not None:
        boxes.append(legend.get_window_extent(renderer))
    for box in boxes:
        top = max(top, box.y1 - frame.y1)
        right = max(right, box.x1 - frame.x1)
    return top / fig.dpi, right / fig.dpi


def fit_single(fig, ax) -> None:
    """Margins of a one-panel figure: the fixed ones plus what the condition strip and a
    legend on the right take.  Measured twice: a label of the last band hangs
    further past the frame once the axes are narrower."""
    m = MARGIN
    right, top = m["right"], m["top"]
    renderer = agg_renderer(fig)
    for _ in range(2):
        place_axes(fig, ax, m["left"], m["bottom"], right, top)
        strip, extra = extra_margins(ax, renderer)
        right, top = max(right, extra + GAP), max(top, strip + GAP)
    place_axes(fig, ax, m["left"], m["bottom"], right, top)


def place_grid(fig, axes, *, left=MARGIN["left"], right=MARGIN["right"], bottom=MARGIN["bottom"],
               top=MARGIN["top"], wspace=MARGIN["left"] + GAP, hspace=MARGIN["bottom"] + GAP,
               height_ratios=None) -> None:
    """Put a grid of axes (2-D array, rows from the top) at fixed margins and gaps
    (inches), with in-view tick locators: the fixed layout of a multi-panel figure,
    without a layout engine.
    ``wspace`` holds the tick labels and axis label of the panel to the right,
    ``hspace`` the x tick labels and axis label (or title) of the panel above."""
    axes = np.asarray(axes, dtype=object)
    nrows, ncols = axes.shape
    w, h = fig.get_size_inches()
    aw = max((w - left - right - wspace * (ncols - 1)) / ncols, 0.3)
    ratios = np.ones(nrows) if height_ratios is None else np.asarray(height_ratios, dtype=float)
    heights = np.maximum((h - bottom - top - hspace * (nrows - 1)) * ratios / ratios.sum(), 0.3)
    y1 = h - top
    for i in range(nrows):
        for j in range(ncols):
            x0 = left + j * (aw + wspace)
            axes[i, j].set_position([x0 / w, (y1 - heights[i]) / h, aw / w, heights[i] / h])
            in_view_locators(axes[i, j])
        y1 -= heights[i] + hspace


def fit_grid(fig, axes, **margins) -> None:
    """:func:`place_grid`, with the top and right margins widened by what the condition
    strips and the legends outside the axes of the top row and of the last column need
    (measured twice, as :func:`fit_single`)."""
    axes = np.asarray(axes, dtype=object)
    margins = {"top": MARGIN["top"], "right": MARGIN["right"]} | margins
    top, right = margins["top"], margins["right"]
    renderer = agg_renderer(fig)
    for _ in range(2):
        place_grid(fig, axes, **(margins | {"top": top, "right": right}))
        strip = max(extra_margins(ax, renderer)[0] for ax in axes[0])
        extra = max(extra_margins(ax, renderer)[1] for ax in axes[:, -1])
        top, right = max(top, strip + GAP), max(right, extra + GAP)
    place_grid(fig, axes, **(margins | {"top": top, "right": right}))


def colorbar_beside(fig, mappable, axes, *, label: str, shrink: float = 1.0):
    """A colour bar 0.15 inch wide, 0.1 inch right of ``axes`` (at their current
    positions), ``shrink`` times their height: placed, not taken from the axes."""
    boxes = [ax.get_position() for ax in axes]
    x1 = max(b.x1 for b in boxes)
    y0, y1 = min(b.y0 for b in boxes), max(b.y1 for b in boxes)
    w, _ = fig.get_size_inches()
    height = (y1 - y0) * shrink
    cax = fig.add_axes([x1 + 0.1 / w, y0 + (y1 - y0 - height) / 2, 0.15 / w, height])
    return fig.colorbar(mappable, cax=cax, label=label)


# --------------------------------------------------------------------------- one artist for many
def add_rects(ax, rects, colors, *, transform=None, autolim=True, **kwargs):
    """Rectangles ``(x0, x1, y0, y1)`` as one PolyCollection (one artist, however many)."""
    x0, x1, y0, y1 = np.asarray(rects, dtype=float).reshape(-1, 4).T
    verts = np.stack([np.column_stack(c) for c in ((x0, y0), (x0, y1), (x1, y1), (x1, y0))], axis=1)
    coll = PolyCollection(verts, facecolors=colors, linewidths=0, **kwargs)
    if transform is not None:
        coll.set_transform(transform)
    ax.add_collection(coll, autolim=autolim)
    if autolim:
        ax.autoscale_view()
    return coll


def error_bars(ax, x, y, err, *, color, alpha=1.0, lw=None, zorder=1):
    """Vertical error bars ``y +/- err`` at ``x`` as one Line2D (NaN-separated pieces):
    what ``errorbar(fmt="none")`` draws without caps, for one artist whatever their number."""
    x, y, err = (np.asarray(v, dtype=float) for v in (x, y, err))
    xs = np.repeat(x, 3)
    ys = np.column_stack([y - err, y + err, np.full(y.size, np.nan)]).ravel()
    xs[2::3] = np.nan
    line = Line2D(xs, ys, color=color, alpha=alpha, zorder=zorder, gid="error-bars",
                  **({} if lw is None else {"lw": lw}))
    ax.add_line(line)
    ax.update_datalim(np.column_stack([x, y - err])[np.isfinite(y - err)])
    ax.update_datalim(np.column_stack([x, y + err])[np.isfinite(y + err)])
    ax.autoscale_view()
    return line


def hlines(ax, ys, **kwargs):
    """Full-width horizontal lines at data ``ys`` as one Line2D (NaN-separated pieces):
    what one ``axhline`` each draws, for one artist."""
    _axlines(ax, ys, ax.get_yaxis_transform(), horizontal=True, **kwargs)


def vlines(ax, xs, **kwargs):
    """Full-height vertical lines at data ``xs`` as one Line2D, as :func:`hlines`."""
    _axlines(ax, xs, ax.get_xaxis_transform(), horizontal=False, **kwargs)


def _axlines(ax, values, transform, *, horizontal, **kwargs):
    values = np.asarray(values, dtype=float)
    if not values.size:
        return None
    at = np.repeat(values, 3)
    at[2::3] = np.nan
    span = np.tile([0.0, 1.0, np.nan], values.size)
    xy = (span, at) if horizontal else (at, span)
    line = Line2D(*xy, transform=transform, **kwargs)
    ax.add_line(line)
    return line
