"""The paper-style 2 x 2 summary figure of a tracked series."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ._conditions import label_events
from ._layout import GAP, MARGIN, STATE_COLORS, add_axes, agg_renderer, extra_margins
from .spectra import plot_chir_waterfall, plot_xanes_map
from .trends import draw_cn, draw_white_line


def plot_summary(tracking, energy, norm, r, chir_mag, *, title: str | None = None,
                 erange=None, e0=None, rmax: float = 6.0, max_traces: int = 30) -> Figure:
    """A 2 x 2 paper-style figure: (a) XANES map, (b) white line, (c) CN of both
    shells with events, (d) chi(R) waterfall coloured by state.

    Parameters
    ----------
    tracking : Tracking
    energy, norm : arrays
        As :func:`plot_xanes_map` (rows in the order of ``tracking.steps``).
    r, chir_mag : arrays
        As :func:`plot_chir_waterfall`.
    title : str, optional
    erange : (float, float), optional
    e0 : float or array, optional
        With no ``erange``, the map spans -30..+70 eV around E0 (the edge region).
    rmax : float
    max_traces : int

    Returns
    -------
    Figure
        Four panels plus the colour bar of the map (5 axes).
    """
    width, height = 11.0, 8.0
    fig = Figure(figsize=(width, height))
    head = 0.4 if title else 0.0  # inches for the suptitle
    cell_w, cell_h = width / 2, (height - head) / 2
    # Fixed geometry in inches (no layout engine): each panel sits in its quarter with
    # the single-panel margins, plus room measured for condition strips and the legend.
    axes = np.array([[add_axes(fig, [0.5 * c, 0.5 - 0.5 * r, 0.4, 0.4]) for c in range(2)]
                     for r in range(2)])  # created in reading order: (a), (b), (c), (d)

    def place(ax, row, col, top, right, left=MARGIN["left"], bottom=MARGIN["bottom"]):
        x0 = col * cell_w + left
        y0 = height - head - (row + 1) * cell_h + bottom
        ax.set_position([x0 / width, y0 / height, (cell_w - left - right) / width,
                         (cell_h - bottom - top) / height])

    steps = tracking.steps["step"].to_numpy()
    draw_white_line(axes[0, 1], tracking)
    events = draw_cn(axes[1, 0], tracking)
    states = tracking.steps["state"].to_numpy()
    plot_chir_waterfall(r, chir_mag, ax=axes[1, 1], rmax=rmax, max_traces=max_traces,
                        colors=[STATE_COLORS.get(s, "#7f7f7f") for s in states],
                        labels=[f"{s}" for s in steps])
    letter = 16.0 / 72  # the bold 10 pt panel letter and its 6 pt pad, inches
    renderer = agg_renderer(fig)
    right = {(0, 0): 0.75, (0, 1): MARGIN["right"], (1, 0): MARGIN["right"], (1, 1): MARGIN["right"]}
    strip = dict.fromkeys(right, 0.0)

    def above(row, col):
        # Panels of a row align (same top, letters level) over a one-line strip; a taller
        # (multi-row key) strip takes room from its own panel only.
        tallest = max(v for (r_, _), v in strip.items() if r_ == row)
        return tallest if tallest <= 0.35 else strip[row, col]

    for _ in range(2):  # measured twice, as in fit_single
        for (row, col), r_in in right.items():
            place(axes[row, col], row, col, letter + above(row, col) + 0.05, r_in)
        for row, col in ((0, 1), (1, 0)):
            top, extra = extra_margins(axes[row, col], renderer)
            strip[row, col] = max(strip[row, col], top + (GAP if top > 0 else 0.0))
            right[row, col] = max(right[row, col], extra + GAP)
    for (row, col), r_in in right.items():
        place(axes[row, col], row, col, letter + above(row, col) + 0.05, r_in)
    # The map's colour bar takes its room from (a) where it now sits.
    plot_xanes_map(energy, norm, steps=steps, tracking=tracking, ax=axes[0, 0], erange=erange, e0=e0)
    top, _ = extra_margins(axes[0, 0], renderer)
    if top > 0:  # the map's condition key: its room comes from the top of (a) and its bar
        before = above(0, 0)
        strip[0, 0] = top + GAP
        lower = max(above(0, 0) - before, 0.0) / height
        for ax in (axes[0, 0], fig.axes[-1]):
            x0, y0, w, h = ax.get_position().bounds
            ax.set_position([x0, y0, w, h - lower])
    label_events(axes[1, 0], events)
    for (row, col), letter_text in zip(((0, 0), (0, 1), (1, 0), (1, 1)), "abcd"):
        # Above the strip of condition labels, if its row has one; letters of a row align.
        # An explicit y: matplotlib would otherwise measure every tick label on each draw
        # to keep titles clear of top tick labels, which these axes do not have.
        axes[row, col].set_title(f"({letter_text})", loc="left", fontweight="bold", fontsize=10,
                                 pad=6.0 + above(row, col) * 72, y=1.0)
    axes[1, 1].set_title("colour: state", loc="right", fontsize=8, y=1.0)
    if title:
        fig.suptitle(title, y=1 - 0.12 / height, va="top")
    return fig
