"""The run's figures: which are drawn, from what, and how they are saved.

Always ``xanes_map`` (the edge region, -30..+70 eV around E0), ``xanes_difference``
(every step minus the baseline state) and ``white_line``.  With tracking:
``cn`` and ``fit_parameters`` when there is a metal shell (EXAFS), ``two_phase`` with
``[exafs] two_phase`` (fraction, cluster CN and size per segment), ``fractions``
when the steps have ``frac_*`` columns (``[components]``), ``summary`` with EXAFS.
With ``[components]``: ``lcf_fit`` (one step's fit, :func:`.analyses.lcf_overlay`),
``pca`` (scree and components), ``mcr`` (with ``method = "mcr"``).  With EXAFS:
``wavelet`` (per-segment wavelet maps and their lobes, :func:`.analyses.wavelet_analysis`).
The figures draw what the analyses (:mod:`.analyses`) computed; they compute nothing
a table holds.

``norm`` and ``chi`` hold only the sampled rows (all steps up to
:data:`~.chunks.PLOT_ROWS`, else that many evenly spaced): the XANES map, the
differences and the chi(R) panel show those, and the trend figures those steps' points
plus every outlier (their segment means, bands and events use every step).  A figure
that fails is noted in the summary; the run goes on.
"""

from __future__ import annotations

import io
import logging
from concurrent.futures import BrokenExecutor
from dataclasses import replace
from functools import partial
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import OperandoError
from ..exafs.batch import batch_xftf
from .analyses import WAVELET_MAPS
from .chunks import submit
from .store import RunStore

log = logging.getLogger(__name__)

#: Raster resolution of the run figures, dots per inch (the 11 x 8 inch summary is
#: already 1320 x 960 pixels at 120 dpi).
PLOT_DPI = {"summary": 120, "wavelet": 110}
DEFAULT_DPI = 150

def figure_list(ft: dict, energy, steps, norm, chi, tracking, plot_rows, *,
                analysis: dict | None = None) -> list:
    """The run's figures as ``(name, make)`` pairs, ``make()`` returning a Figure.

    ``analysis`` holds what the run computed besides the steps: ``pca``, ``mcr``
    (results of :mod:`operando.components`), ``overlay`` (``(LCFResult, step, why)``)
    and ``wavelet`` (``(WaveletTransform, lobes)``), each optional.
    """
    from .. import viz

    analysis = analysis or {}
    row_steps = steps["step"].to_numpy()[plot_rows]
    e0 = pd.to_numeric(steps["e0"], errors="coerce").to_numpy(dtype=float) if "e0" in steps else None
    sampled = trends = tracking
    if tracking is not None and len(plot_rows) < len(tracking.steps):
        # plot_summary takes its rows in the order of tracking.steps: give it the plot rows.
        sampled = replace(tracking, steps=tracking.steps.iloc[plot_rows].reset_index(drop=True))
        # the trend figures' step points: the plot rows and every outlier (their segment
        # means, bands and events are drawn from all segments and events); more points
        # than the axes have pixels only add drawing time
        outlier = tracking.steps.get("outlier", pd.Series(False, index=tracking.steps.index))
        rows = np.union1d(plot_rows, np.flatnonzero(outlier.fillna(False).to_numpy(dtype=bool)))
        trends = replace(tracking, steps=tracking.steps.iloc[rows].reset_index(drop=True))
    figures: list[tuple[str, Callable[[], Any]]] = [
        ("xanes_map", partial(viz.plot_xanes_map, energy, norm, steps=row_steps, tracking=tracking,
                              e0=e0)),
    ]
    if np.isfinite(norm).all(axis=1).sum() >= 2:
        figures.append(("xanes_difference", partial(viz.plot_xanes_difference, energy, norm,
                                                    steps=row_steps, tracking=tracking, e0=e0)))
    if tracking is None:
        figures.append(("white_line", partial(_plot_white_line_plain, steps)))
    else:
        figures.append(("white_line", partial(viz.plot_white_line, trends)))
        if tracking.metal_shell:
            figures.append(("cn", partial(viz.plot_cn, trends)))
            if "cluster_cn" in tracking.segments.columns:   # [exafs] two_phase
                figures.append(("two_phase", partial(viz.plot_two_phase, trends)))
            if any(c.startswith("r_") and c != "r_factor" for c in tracking.steps.columns):
                figures.append(("fit_parameters", partial(viz.plot_fit_parameters, trends)))
        if any(c.startswith("frac_") for c in tracking.steps.columns):
            figures.append(("fractions", partial(viz.plot_fractions, trends)))
    if analysis.get("overlay") is not None:
        result, step, _ = analysis["overlay"]
        figures.append(("lcf_fit", partial(viz.plot_lcf_fit, result, step)))
    if analysis.get("pca") is not None:
        figures.append(("pca", partial(viz.plot_pca, analysis["pca"])))
    if analysis.get("mcr") is not None:
        figures.append(("mcr", partial(viz.plot_mcr, analysis["mcr"])))
    if analysis.get("wavelet") is not None:
        wt, lobes = analysis["wavelet"]
        figures.append(("wavelet", partial(viz.plot_wavelet, wt, lobes=lobes,
                                           max_maps=WAVELET_MAPS)))
    if analysis.get("logs") is not None and "time_start" in steps:
        figures.append(("condition_logs", partial(viz.plot_condition_logs, steps,
                                                  analysis["logs"])))
    if chi is not None and tracking is not None and tracking.metal_shell:
        figures.append(("summary", partial(_plot_summary, sampled, energy, norm, ft, chi, e0)))
    return figures


def figure_captions(analysis: dict | None) -> dict:
    """Captions that depend on the run (which step the LCF figure shows, and why)."""
    out = {}
    overlay = (analysis or {}).get("overlay")
    if overlay is not None:
        _, step, why = overlay
        out["lcf_fit"] = (f"Linear-combination fit of step {step}: data, fit, weighted "
                          f"components and residual; {why}.")
    return out


def submit_figures(figures, formats, executor=None) -> list:
    """Start drawing ``figures`` (``(name, make)`` pairs, ``make`` picklable) in every
    format: on ``executor`` when given (the run's worker processes, so the figures are
    drawn while the run goes on), else when :func:`save_figures` asks.  Returns what
    :func:`save_figures` takes."""
    return [(name, submit(executor, render, make, tuple(formats), PLOT_DPI.get(name, DEFAULT_DPI)))
            for name, make in figures]


def save_figures(store: RunStore, pending, notes: list[str]) -> dict:
    """Wait for the figures :func:`submit_figures` started and write each file atomically
    (in the run's process, as every output); a figure that fails is noted, not raised."""
    out = {}
    for name, job in pending:
        try:
            files = job.result()
        except (OperandoError, ValueError, KeyError, IndexError, BrokenExecutor) as exc:
            # A figure is a by-product: record why it is missing, keep the run.
            notes.append(f"plot {name} not made: {type(exc).__name__}: {exc}")
            log.warning("plot %s not made: %s", name, exc)
            continue
        for fmt, data in files.items():
            out[f"{name}.{fmt}"] = store.write_with(f"{name}.{fmt}",
                                                    lambda tmp, data=data: tmp.write_bytes(data))
    return out


def render(make, formats, dpi: int) -> dict[str, bytes]:
    """``make()``'s figure saved in each format: ``{format: bytes}``."""
    fig = make()
    out = {}
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=dpi)
        out[fmt] = buffer.getvalue()
    return out


def _plot_summary(tracking, energy, norm, ft: dict, chi, e0):
    from .. import viz

    return viz.plot_summary(tracking, energy, norm, *chir_magnitude(ft, *chi), e0=e0)


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
