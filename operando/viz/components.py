"""Figures of the XANES component analysis: fractions versus condition, the LCF fit of a
step, the PCA scree and components, MCR-ALS spectra and concentration profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import DataError
from ..tracking.channels import flags
from ._conditions import ConditionAxis, label_events
from ._layout import GAP, MARGIN, TITLE_MARGIN, error_bars, fit_single, new_axes, place_grid
from ._marks import (draw_events, draw_segment_means, draw_steps, numbers, outlier_flags,
                     quality_legend)

#: Colours of the components (references, MCR components), in order.
COMPONENT_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                    "#17becf"]


def fraction_columns(table: pd.DataFrame) -> list[str]:
    """The ``frac_<name>`` columns of a steps table (not their ``_err``)."""
    return [c for c in table.columns if c.startswith("frac_") and not c.endswith("_err")]


def plot_fractions(tracking, *, columns=None, ax=None, show_events: bool = True) -> Figure:
    """Component fractions (LCF weights or MCR concentrations) versus condition.

    Steps are points with their error bars (hollow grey where the LCF of the step
    is not ``lcf_ok``, outliers ringed), segment estimates are lines with error
    bands (steps axis) or error bars (potential axis), events are marked and named.

    Parameters
    ----------
    tracking : Tracking
        Its steps table holds ``frac_<name>`` and ``frac_<name>_err`` columns.
    columns : list of str, optional
        Fraction columns to draw (default all).
    ax : Axes, optional
    show_events : bool

    Returns
    -------
    Figure
    """
    st, seg = tracking.steps, tracking.segments
    columns = list(columns or fraction_columns(st))
    if not columns:
        raise DataError("no fractions to plot: the steps table has no frac_<name> columns "
                        "(add a [components] section, or run operando.components.lcf)")
    own = ax is None
    fig, ax = new_axes(ax)
    cx = ConditionAxis(tracking)
    ok = np.array(flags(st, "lcf_ok")) & np.array(flags(st, "ok"))
    quality = np.where(ok, "good", "poor")
    drawn: set = set()
    # Event markers sit on the metallic fraction (a foil/metal reference) if there is one.
    marked = next((c for c in columns if any(w in c.lower() for w in ("foil", "metal"))), columns[0])
    marked_y: dict = {}
    for j, column in enumerate(columns):
        if column not in st.columns:
            raise DataError(f"no column {column!r} in the steps table; fractions are "
                            f"{fraction_columns(st)}")
        color = COMPONENT_COLORS[j % len(COMPONENT_COLORS)]
        y, err = numbers(st, column), numbers(st, f"{column}_err")
        keep = ok & np.isfinite(y) & np.isfinite(err)
        error_bars(ax, cx.step_x[keep], y[keep], err[keep], color=color, alpha=0.3, lw=0.7)
        drawn |= draw_steps(ax, cx.step_x, y, quality, outlier_flags(st), "o", color)
        mean, serr = numbers(seg, column), numbers(seg, f"{column}_err")
        draw_segment_means(ax, cx, seg, mean, serr, color)
        ax.scatter(cx.seg_x, mean, s=36, color=color, edgecolors="k", linewidths=0.5, zorder=5,
                   label=column[5:])
        if column == marked:
            marked_y = dict(zip(seg["segment"], mean))
    labels = draw_events(ax, tracking, cx, marked_y) if show_events else []
    quality_legend(ax, drawn, poor_label="LCF not ok")
    cx.decorate(ax)
    ax.set_ylabel("Fraction")
    ax.axhline(0, color="0.6", lw=0.6, zorder=1)
    ax.axhline(1, color="0.6", lw=0.6, ls=":", zorder=1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              framealpha=0.8)
    if own:
        fit_single(fig, ax)
    label_events(ax, labels)
    return fig


def plot_lcf_fit(result, step, *, title: str | None = None) -> Figure:
    """The linear-combination fit of one step: data, fit, weighted components, residual.

    Parameters
    ----------
    result : operando.components.LCFResult
    step : int
        The ``step`` label of the step to draw.
    title : str, optional
        Default: the step, its fractions with errors and the R-factor.

    Returns
    -------
    Figure
        Two axes sharing the energy axis: the fit (top) and the residual (bottom).
    """
    fit = result.fit(step)
    i = result._row(step)
    x = fit["x"].to_numpy()
    fig = Figure(figsize=(6.4, 4.8))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    # the fit over the residual, three to one, the title above (x tick labels only below)
    place_grid(fig, [[top], [bottom]], top=TITLE_MARGIN, hspace=GAP, height_ratios=[3, 1])
    top.plot(x, fit["data"], "k-", lw=1.4, label="data")
    top.plot(x, fit["fit"], "--", color="#d62728", lw=1.4, label="fit")
    for j, name in enumerate(result.names):
        w, e = result.weights[i, j], result.errors[i, j]
        top.plot(x, fit[name], "-", lw=0.9, color=COMPONENT_COLORS[(j + 2) % len(COMPONENT_COLORS)],
                 alpha=0.85, label=f"{w:.3f} ± {e:.3f} × {name}")
    top.legend(fontsize=7, framealpha=0.8)
    space = result.settings["space"]
    top.set_ylabel({"norm": "Normalised μ", "flat": "Flattened μ",
                    "deriv": "dμ/dE (1/eV)"}.get(space, space))
    bottom.plot(x, fit["residual"], "-", color="0.3", lw=0.9)
    bottom.axhline(0, color="0.6", lw=0.6)
    bottom.set_ylabel("Residual")
    relative = result.settings.get("relative", True)
    bottom.set_xlabel("Energy (eV)" if relative or space != "chi" else "x")
    if title is None:
        title = (f"LCF of step {step}: R-factor {result.rfactor[i]:.2g}, "
                 f"reduced χ² {result.redchi[i]:.2g}")
    top.set_title(title, fontsize=9, y=1.0)  # y: see TITLE_MARGIN
    return fig


def plot_pca(pca) -> Figure:
    """PCA of a series: scree (eigenvalues, Malinowski's IND, the chosen number) and the
    first abstract components.

    Parameters
    ----------
    pca : operando.components.PCAResult

    Returns
    -------
    Figure
        Two axes (scree with IND on a twin axis, components) plus the twin.
    """
    ev = np.asarray(pca.eigenvalues, dtype=float)
    n = int(pca.n_components)
    m = min(ev.size, max(10, n + 3))
    idx = np.arange(1, m + 1)
    fig = Figure(figsize=(10.0, 3.8))
    scree, comps = fig.subplots(1, 2)
    # titles above both; between the panels the IND axis (right of the scree) and the
    # components' y axis
    place_grid(fig, [[scree, comps]], top=TITLE_MARGIN, wspace=2 * MARGIN["left"] + GAP)
    scree.semilogy(idx, ev[:m], "o-", color="k", ms=4, label="eigenvalue")
    scree.semilogy([n], [ev[n - 1]], "o", ms=11, mfc="none", mec="#d62728", mew=1.5,
                   label=f"chosen: {n}")
    scree.set_xlabel("Component")
    scree.set_ylabel("Eigenvalue")
    scree.set_xticks(idx)
    ind = np.asarray(pca.ind, dtype=float)
    if ind.size and np.isfinite(ind).any():
        twin = scree.twinx()
        k = min(ind.size, m)
        twin.semilogy(idx[:k], ind[:k], "s--", color="#1f77b4", ms=3.5, lw=0.9, label="IND")
        j = int(pca.n_ind)
        if 1 <= j <= k:
            twin.semilogy([j], [ind[j - 1]], "s", ms=9, mfc="none", mec="#1f77b4", mew=1.2)
        twin.set_ylabel("Malinowski IND", color="#1f77b4")
        twin.tick_params(axis="y", colors="#1f77b4")
        handles = scree.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        scree.legend(handles[0] + more[0], handles[1] + [f"IND (minimum at {j})"], fontsize=7,
                     loc="upper right")
    else:
        scree.legend(fontsize=7, loc="upper right")
    criterion = str(pca.settings.get("criterion", "")).split(" (")[0]
    scree.set_title(f"PCA of {pca.data.shape[0]} spectra: {n} components"
                    + (f" ({criterion})" if criterion else ""), fontsize=9, y=1.0)
    shown = min(n + 1, pca.components.shape[0])
    for j in range(shown):
        comps.plot(pca.x, pca.components[j], lw=1.0 if j < n else 0.8,
                   ls="-" if j < n else ":", color=COMPONENT_COLORS[j % len(COMPONENT_COLORS)],
                   label=f"component {j + 1}" + ("" if j < n else " (noise)"))
    comps.set_xlabel("Energy (eV)")
    comps.set_ylabel("Abstract component")
    comps.legend(fontsize=7)
    return fig


def plot_mcr(mcr, *, steps_x=None, xlabel: str = "Step") -> Figure:
    """MCR-ALS: resolved spectra and concentration profiles (feasible bands when computed).

    Parameters
    ----------
    mcr : operando.components.MCRResult
    steps_x : (n,) array, optional
        x of each step in the profile panel (e.g. time); default the step labels.
    xlabel : str

    Returns
    -------
    Figure
        Two axes: spectra, concentrations.
    """
    fig = Figure(figsize=(10.0, 3.8))
    spec, conc = fig.subplots(1, 2)
    place_grid(fig, [[spec, conc]], top=TITLE_MARGIN)
    x = np.asarray(mcr.steps if steps_x is None else steps_x, dtype=float)
    used = np.asarray(mcr.used, bool)
    for j, name in enumerate(mcr.names):
        color = COMPONENT_COLORS[j % len(COMPONENT_COLORS)]
        tag = " (fixed)" if name in (mcr.fixed or []) else ""
        spec.plot(mcr.x, mcr.spectra[j], color=color, lw=1.2, label=f"{name}{tag}")
        c = mcr.concentrations[:, j]
        conc.plot(x[used], c[used], "o-", color=color, ms=3.5, lw=1.0, label=name)
        lo, hi = mcr.conc_min[:, j], mcr.conc_max[:, j]
        band = used & np.isfinite(lo) & np.isfinite(hi)
        if band.any():
            conc.fill_between(x[band], lo[band], hi[band], color=color, alpha=0.2, lw=0)
    spec.set_xlabel("Energy (eV)")
    spec.set_ylabel("Normalised μ")
    spec.legend(fontsize=7)
    spec.set_title(f"MCR-ALS spectra: lack of fit {mcr.lack_of_fit:.2f} % "
                   f"(PCA floor {mcr.lack_of_fit_pca:.2f} %)", fontsize=9, y=1.0)
    conc.set_xlabel(xlabel)
    conc.set_ylabel("Concentration")
    conc.axhline(0, color="0.6", lw=0.6)
    bands = np.isfinite(mcr.conc_min).any()
    conc.set_title("Concentrations" + (" (shaded: feasible band, rotational ambiguity)" if bands
                                       else " (feasible bands not computed)"), fontsize=9, y=1.0)
    conc.legend(fontsize=7)
    return fig
