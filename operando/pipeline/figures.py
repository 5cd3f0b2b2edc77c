"""The run's figures: which are drawn, from what, and how they are saved.

``xanes_map`` and ``white_line`` always; with tracking also ``cn`` (CN vs condition
with events) and ``summary``.  ``norm`` and ``chi`` hold only the sampled rows (all
steps up to :data:`~.chunks.PLOT_ROWS`, else that many evenly spaced): the XANES map
and the chi(R) panel show those; white line and CN show every step.  A figure that
fails is noted in the summary; the run goes on.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from ..errors import OperandoError
from ..exafs.batch import batch_xftf
from .store import RunStore

log = logging.getLogger(__name__)

#: Raster resolution of the run figures, dots per inch (the 11 x 8 inch summary is
#: already 1320 x 960 pixels at 120 dpi).
PLOT_DPI = {"summary": 120}
DEFAULT_DPI = 150


def figure_list(ft: dict, energy, steps, norm, chi, tracking, plot_rows) -> list:
    """The run's figures as ``(name, make)`` pairs, ``make()`` returning a Figure."""
    from .. import viz

    figures: list[tuple[str, Callable[[], Any]]] = [
        ("xanes_map", lambda: viz.plot_xanes_map(
            energy, norm, steps=steps["step"].to_numpy()[plot_rows], tracking=tracking)),
    ]
    if tracking is None:
        figures.append(("white_line", lambda: _plot_white_line_plain(steps)))
        return figures
    figures += [("white_line", lambda: viz.plot_white_line(tracking)),
                ("cn", lambda: viz.plot_cn(tracking))]
    if chi is not None:
        # plot_summary takes its rows in the order of tracking.steps: give it the plot rows.
        sampled = tracking if len(plot_rows) == len(tracking.steps) else replace(
            tracking, steps=tracking.steps.iloc[plot_rows].reset_index(drop=True))
        figures.append(("summary", lambda: viz.plot_summary(sampled, energy, norm,
                                                            *chir_magnitude(ft, *chi))))
    return figures


def draw_figures(store: RunStore, figures, formats, notes: list[str]) -> dict:
    """Make and save each figure in every format; a figure that fails is noted, not raised."""
    out = {}
    for name, make in figures:
        try:
            fig = make()
        except (OperandoError, ValueError, KeyError, IndexError) as exc:
            # A figure is a by-product: record why it is missing, keep the run.
            notes.append(f"plot {name} not made: {type(exc).__name__}: {exc}")
            log.warning("plot %s not made: %s", name, exc)
            continue
        dpi = PLOT_DPI.get(name, DEFAULT_DPI)
        for fmt in formats:
            out[f"{name}.{fmt}"] = store.write_with(
                f"{name}.{fmt}", lambda tmp, fig=fig, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=dpi))
    return out


def chir_magnitude(ft: dict, k, chi):
    """|chi(R)| of the sampled rows (NaN rows where chi(k) is not finite)."""
    r, chir = batch_xftf(k, np.nan_to_num(chi), **ft)
    mag = np.abs(chir)
    mag[~np.isfinite(chi).all(axis=1)] = np.nan
    return r, mag


def _plot_white_line_plain(steps):
    """White-line height per step, for runs without tracking (no segments)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ok = steps["ok"].astype(bool).to_numpy()
    ax.plot(steps["step"][ok], steps["wl_height"][ok], "o-", ms=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("Step")
    ax.set_ylabel("White-line height (norm.)")
    return fig
