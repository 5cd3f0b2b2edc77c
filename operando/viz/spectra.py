"""Spectra of a series: the XANES map, the chi(R) waterfall and the fit of one step."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .._util.reprs import EDGE_WINDOW, edge_range, evenly_spaced
from ..errors import DataError
from ..options import FTOptions
from ._conditions import KEY_ENTRIES, condition_blocks, condition_colors, condition_key
from ._layout import (COLORBAR, GAP, MARGIN, TITLE_MARGIN, add_rects, agg_renderer, colorbar_beside,
                      extra_margins, fit_single, hlines, new_axes, place_axes, place_grid)


def _step_rows(energy, norm, steps):
    """Energy, the rows of ``norm`` (one per step, sizes checked) and their step labels
    (default 0..n-1) as arrays."""
    energy = np.asarray(energy, dtype=float)
    norm = np.atleast_2d(np.asarray(norm, dtype=float))
    if norm.shape[1] != energy.size:
        raise DataError(f"norm has {norm.shape[1]} points per row but energy has {energy.size}")
    return energy, norm, np.arange(norm.shape[0]) if steps is None else np.asarray(steps)


def plot_xanes_map(energy, norm, *, steps=None, tracking=None, ax=None, erange=None, e0=None,
                   window=EDGE_WINDOW, cmap: str = "viridis", colorbar: bool = True) -> Figure:
    """Normalised XANES of every step as an image (energy x step).

    By default the map spans the edge region (``window`` around ``e0``) when ``e0``
    is given, where a change of state shows; ``erange`` sets the range in absolute
    energy, ``window=None`` with no ``erange`` shows every energy.

    Parameters
    ----------
    energy : (n_e,) array
        Energy in eV.
    norm : (n, n_e) array
        Normalised mu, one row per step (NaN rows, failed steps, show blank).
    steps : (n,) array, optional
        Step numbers of the rows (default 0..n-1).
    tracking : Tracking, optional
        Draws segment boundaries and condition labels on the right.
    ax : Axes, optional
    erange : (float, float), optional
        Energy window in eV (absolute).
    e0 : float or (n,) array, optional
        Edge energy, eV (per-step values: their median is used).
    window : (float, float) or None
        Range relative to ``e0``, eV (default :data:`EDGE_WINDOW`, -30..+70).
    cmap : str
    colorbar : bool

    Returns
    -------
    Figure
    """
    energy, norm, steps = _step_rows(energy, norm, steps)
    erange = edge_range(energy, e0, window, erange)
    if erange is not None:
        keep = (energy >= erange[0]) & (energy <= erange[1])
        energy, norm = energy[keep], norm[:, keep]
    own = ax is None
    fig, ax = new_axes(ax)
    if own:
        # Right margin: tick labels and label of the colour bar.
        place_axes(fig, ax, MARGIN["left"], MARGIN["bottom"], 0.75 if colorbar else MARGIN["right"],
                   MARGIN["top"])
    finite_all = bool(np.isfinite(norm).all())
    finite = norm if finite_all else norm[np.isfinite(norm)]
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    # An image on the (non-uniform) energy grid, cells centred on the points as
    # pcolormesh(shading="nearest") draws them: one image, not a mesh of
    # n_steps x n_energy quads.
    mesh = ax.pcolorfast(_cell_edges(energy), np.arange(norm.shape[0] + 1) - 0.5,
                         norm if finite_all else np.ma.masked_invalid(norm), cmap=cmap, vmin=0.0,
                         vmax=vmax)
    ax.set_xlabel("Energy (eV)")
    ax.set_ylabel("Step")
    if norm.shape[0] <= 12:
        ax.set_yticks(np.arange(norm.shape[0]), [str(s) for s in steps])
    if tracking is not None:
        _mark_conditions(ax, tracking, steps)
        if own:
            top, _ = extra_margins(ax, agg_renderer(fig))
            if top > 0:
                place_axes(fig, ax, MARGIN["left"], MARGIN["bottom"],
                           0.75 if colorbar else MARGIN["right"], MARGIN["top"] + top + GAP)
    if colorbar:
        # use_gridspec=False: take the bar's room from the axes where they are now (a
        # gridspec bar would move them back to the default subplot margins).  A plain-text
        # mu: the label needs no mathtext.
        fig.colorbar(mesh, ax=ax, label="Normalised μ", pad=0.02, use_gridspec=False)
    return fig


def _cell_edges(x):
    """Edges of cells centred on the points ``x`` (midpoints; half a step beyond the ends)."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return np.array([x[0] - 0.5, x[0] + 0.5]) if x.size else np.array([0.0, 1.0])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def _mark_conditions(ax, tracking, steps, color: str = "w") -> None:
    """Block (solid) and change-point (dashed) boundaries across a step-by-energy image,
    and each block's condition written at its left -- when every name has the height of
    its rows.  Otherwise (many or thin blocks) a strip at the left edge gives each row
    its condition's colour, with a key of the conditions above the axes."""
    seg = tracking.segments
    pos = {s: i for i, s in enumerate(steps)}
    blocks = condition_blocks(seg)
    shown = [(pos[f], pos[l], str(c)) for f, l, c in blocks.itertuples(index=False)
             if f in pos and l in pos]
    row_pt = ax.get_position().height * ax.figure.get_figheight() * 72 / max(len(steps), 1)
    if len(blocks) > 2 * KEY_ENTRIES or any((b - a + 1) * row_pt < 9 for a, b, _ in shown):
        _condition_strip(ax, seg, steps)
        return
    changes = [pos[s] - 0.5 for s in seg.loc[seg["origin"] == "change point", "first_step"]
               if s in pos]
    starts = [pos[f] - 0.5 for f in blocks["first"] if f in pos and pos[f] > 0]
    for a, b, text in shown:
        ax.text(0.01, (a + b) / 2, text, color=color, transform=ax.get_yaxis_transform(),
                fontsize=7, va="center", ha="left", gid="condition-label")
    # Segment (dashed) and block boundaries across the map: one line each kind.
    hlines(ax, changes, color=color, lw=0.8, ls="--")
    hlines(ax, starts, color=color, lw=0.8)


def _condition_strip(ax, seg, steps) -> None:
    """Each row's condition as a colour at the left edge of the map, and the key."""
    first = seg["first_step"].to_numpy()
    conditions = seg["condition"].astype(str).to_numpy()
    colors = condition_colors(conditions)
    # the condition of each row: that of the last segment starting at or before its step
    at = np.clip(np.searchsorted(first, np.asarray(steps), side="right") - 1, 0, len(seg) - 1)
    row_condition = conditions[at]
    change = np.flatnonzero(np.r_[True, row_condition[1:] != row_condition[:-1]])
    ends = np.r_[change[1:], len(steps)]
    add_rects(ax, [(0.0, 0.03, a - 0.5, b - 0.5) for a, b in zip(change, ends)],
              [colors[row_condition[a]] for a in change], transform=ax.get_yaxis_transform(),
              autolim=False, zorder=3)
    condition_key(ax, colors)


def _baseline_row(norm, steps, baseline, tracking):
    """The spectrum every step is compared with, and how it was chosen."""
    finite = np.isfinite(norm).all(axis=1)
    if isinstance(baseline, str) and baseline == "first":
        if tracking is not None:
            g = int(getattr(tracking, "baseline_segment", 0))
            seg_of = dict(zip(tracking.steps["step"], tracking.steps["segment"]))
            rows = [i for i, s in enumerate(steps) if seg_of.get(s) == g and finite[i]]
            # The mean of the baseline state's repeats; not when that "state" is most of the
            # series (one long segment, a trend): its mean would hide the change.
            if rows and len(rows) <= finite.sum() / 2:
                return norm[rows].mean(axis=0), f"mean of segment {g} (baseline state)"
        rows = np.flatnonzero(finite)
        if not rows.size:
            raise DataError("no finite spectrum to take differences from")
        return norm[rows[0]], f"step {steps[rows[0]]}"
    if np.ndim(baseline) == 0:
        hits = np.flatnonzero(np.asarray(steps) == baseline)
        if not hits.size or not finite[hits[0]]:
            raise DataError(f"baseline step {baseline!r} is not among the finite rows drawn")
        return norm[hits[0]], f"step {baseline}"
    ref = np.asarray(baseline, dtype=float)
    if ref.shape != norm.shape[1:]:
        raise DataError(f"baseline spectrum has {ref.size} points, the rows {norm.shape[1]}")
    return ref, "given spectrum"


def plot_xanes_difference(energy, norm, *, steps=None, tracking=None, baseline="first",
                          e0=None, window=EDGE_WINDOW, erange=None, max_traces: int = 12) -> Figure:
    """Difference XANES: every step minus the baseline (starting) state.

    Left, the differences as an image (step x energy, diverging colours, condition
    boundaries marked); right, the mean difference of each segment (with a tracking)
    or of up to ``max_traces`` evenly spaced steps, coloured in time order.

    Parameters
    ----------
    energy : (n_e,) array
        eV.
    norm : (n, n_e) array
        Normalised mu per step (NaN rows are left blank).
    steps : (n,) array, optional
    tracking : Tracking, optional
        Condition boundaries, segment means, and the baseline segment.
    baseline : "first", a step label, or (n_e,) array
        ``"first"``: the mean of the tracking's baseline segment, else the first
        finite step.
    e0, window, erange
        The energy range, as :func:`plot_xanes_map` (default -30..+70 eV around E0).
    max_traces : int

    Returns
    -------
    Figure
        Two axes (map, curves) and the map's colour bar.
    """
    energy, norm, steps = _step_rows(energy, norm, steps)
    ref, how = _baseline_row(norm, steps, baseline, tracking)
    diff = norm - ref[None, :]
    rng = edge_range(energy, e0, window, erange)
    if rng is not None:
        keep = (energy >= rng[0]) & (energy <= rng[1])
        energy, diff = energy[keep], diff[:, keep]
    fig = Figure(figsize=(11.0, 4.2))
    left, right = fig.subplots(1, 2)
    # between the panels: the colour bar's ticks and label, then the curves' y axis
    gaps = {"top": TITLE_MARGIN, "wspace": COLORBAR + MARGIN["left"]}
    place_grid(fig, [[left, right]], **gaps)
    finite = diff[np.isfinite(diff)]
    vmax = float(np.percentile(np.abs(finite), 99.5)) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    mesh = left.pcolorfast(_cell_edges(energy), np.arange(diff.shape[0] + 1) - 0.5,
                           np.ma.masked_invalid(diff), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    left.set_xlabel("Energy (eV)")
    left.set_ylabel("Step")
    if diff.shape[0] <= 12:
        left.set_yticks(np.arange(diff.shape[0]), [str(s) for s in steps])
    else:
        left.yaxis.set_major_locator(MaxNLocator(integer=True))
    strip = 0.0
    if tracking is not None:
        _mark_conditions(left, tracking, steps, color="k")
        strip, _ = extra_margins(left, agg_renderer(fig))
        if strip > 0:  # the key of the conditions above the map, its title above the key
            place_grid(fig, [[left, right]], **(gaps | {"top": TITLE_MARGIN + strip + GAP}))
    left.set_title(f"Difference to {how}", fontsize=9, pad=6 + 72 * strip, y=1.0)  # see TITLE_MARGIN
    colorbar_beside(fig, mesh, [left], label="Δ normalised μ")
    cmap = colormaps["viridis"]
    if tracking is not None and len(tracking.segments) >= 3:
        seg_of = dict(zip(tracking.steps["step"], tracking.steps["segment"]))
        groups = np.array([seg_of.get(s, -1) for s in steps])
        finite = np.isfinite(diff).all(axis=1)
        # the segments with a finite row, evenly picked; only those are averaged
        have = set(groups[finite].tolist())
        segs = tracking.segments[tracking.segments["segment"].isin(have)]
        segs = segs.iloc[evenly_spaced(len(segs), max_traces)]
        curves = [(diff[(groups == segment) & finite].mean(axis=0), f"{segment}: {condition}")
                  for segment, condition in zip(segs["segment"].tolist(), segs["condition"].tolist())]
    else:
        rows = [i for i in range(diff.shape[0]) if np.isfinite(diff[i]).all()]
        curves = [(diff[rows[j]], f"step {steps[rows[j]]}")
                  for j in evenly_spaced(len(rows), max_traces)]
    for j, (y, label) in enumerate(curves):
        right.plot(energy, y, color=cmap(j / max(len(curves) - 1, 1)), lw=1.0, label=label)
    right.axhline(0, color="0.6", lw=0.6)
    right.set_xlabel("Energy (eV)")
    right.set_ylabel("Δ normalised μ")
    right.set_title("Segment means" if tracking is not None and len(tracking.segments) >= 3
                    else "Steps", fontsize=9, y=1.0)
    if curves:
        right.legend(fontsize=6, ncols=2 if len(curves) > 6 else 1, framealpha=0.8)
    return fig


def plot_chir_waterfall(r, chir_mag, *, labels=None, colors=None, offset: float | None = None,
                        ax=None, rmax: float = 6.0, max_traces: int = 30) -> Figure:
    """|chi(R)| of many steps stacked with a vertical offset.

    Parameters
    ----------
    r : (n_r,) array
        Radial distance in Angstrom (not phase corrected).
    chir_mag : (n, n_r) array
        |chi(R)| per step, in Angstrom^-(kweight+1).
    labels : sequence of str, optional
        One label per row, written at the right end of each trace.
    colors : sequence of colours, optional
        One per row (e.g. by state); default a viridis ramp in step order.
    offset : float, optional
        Vertical spacing; default 0.6 x the largest |chi(R)|.
    ax : Axes, optional
    rmax : float
        Upper R limit in Angstrom.
    max_traces : int
        At most this many rows are drawn (evenly subsampled).

    Returns
    -------
    Figure
        The traces are one LineCollection of the axes, the labels its texts.
    """
    r = np.asarray(r, dtype=float)
    mag = np.atleast_2d(np.asarray(chir_mag, dtype=float))
    if mag.shape[1] != r.size:
        raise DataError(f"chir_mag has {mag.shape[1]} points per row but r has {r.size}")
    rows = evenly_spaced(mag.shape[0], max_traces)
    own = ax is None
    fig, ax = new_axes(ax)
    keep = r <= rmax
    peak = np.nanmax(mag[:, keep]) if np.isfinite(mag[:, keep]).any() else 1.0
    offset = 0.6 * peak if offset is None else offset
    cmap = colormaps["viridis"]
    trace_colors = [colors[i] if colors is not None else cmap(j / max(len(rows) - 1, 1))
                    for j, i in enumerate(rows)]
    # One collection for all traces, not one Line2D each (drawn in order, so with the
    # same overlaps; caps and joins of plotted lines).
    traces = LineCollection([np.column_stack([r[keep], mag[i, keep] + j * offset])
                             for j, i in enumerate(rows)],
                            colors=trace_colors, linewidths=1.0, capstyle="projecting",
                            joinstyle="round")
    ax.add_collection(traces)
    if labels is not None:
        for j, (i, color) in enumerate(zip(rows, trace_colors)):
            ax.text(r[keep][-1], j * offset + 0.1 * offset, str(labels[i]), fontsize=6, ha="right",
                    va="bottom", color=color)
    ax.set_xlim(0, rmax)
    ax.set_xlabel("R (Å, not phase corrected)")
    ax.set_ylabel("|χ(R)| + offset")
    if own:
        fit_single(fig, ax)
    return fig


def plot_fit(k, chi_data, chi_fit, r, chir_data, chir_fit, *, kweight: int = FTOptions.kweight,
             title: str | None = None, rmax: float = 6.0) -> Figure:
    """Data and fit of one step in k and R space (two panels).

    Parameters
    ----------
    k : (n_k,) array
        Photoelectron wavenumber in 1/Angstrom.
    chi_data, chi_fit : (n_k,) arrays
        chi(k) of data and model (not k-weighted; weighted here by ``kweight``).
    r : (n_r,) array
        R in Angstrom.
    chir_data, chir_fit : (n_r,) arrays
        |chi(R)| of data and model (complex input is converted to magnitude).
    kweight : int
    title : str, optional
    rmax : float

    Returns
    -------
    Figure
        Two axes: k space, R space.
    """
    k = np.asarray(k, dtype=float)
    r = np.asarray(r, dtype=float)
    fig = Figure(figsize=(9.0, 3.6))
    axk, axr = fig.subplots(1, 2)
    place_grid(fig, [[axk, axr]], top=TITLE_MARGIN if title else MARGIN["top"])
    axk.plot(k, k**kweight * np.asarray(chi_data, dtype=float), "k-", lw=1.0, label="data")
    axk.plot(k, k**kweight * np.asarray(chi_fit, dtype=float), "r--", lw=1.2, label="fit")
    axk.set_xlabel("k (Å$^{-1}$)")
    axk.set_ylabel(f"k$^{kweight}$χ(k) (Å$^{{-{kweight}}}$)")
    axk.legend(fontsize=8)
    keep = r <= rmax
    axr.plot(r[keep], np.abs(np.asarray(chir_data))[keep], "k-", lw=1.0, label="data")
    axr.plot(r[keep], np.abs(np.asarray(chir_fit))[keep], "r--", lw=1.2, label="fit")
    axr.set_xlabel("R (Å, not phase corrected)")
    axr.set_ylabel(f"|χ(R)| (Å$^{{-{kweight + 1}}}$)")
    axr.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
