"""The wavelet-transform EXAFS map: modulus over k and R, one panel per step or segment."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._util.reprs import evenly_spaced
from ..errors import DataError
from ._layout import COLORBAR, MARGIN, colorbar_beside, hlines, place_grid

#: Marker and colour of each shell's lobe (in the order the windows are given).
_LOBE_STYLES = [("o", "#ffffff"), ("s", "#ff7f0e"), ("D", "#2ca02c"), ("^", "#d62728")]


def plot_wavelet(wt, *, rows=None, titles=None, lobes: pd.DataFrame | None = None,
                 krange=None, rmax: float | None = None, max_maps: int = 6,
                 common_scale: bool = True, cmap: str = "magma") -> Figure:
    """k-R maps of the wavelet modulus, with the lobe of each shell marked.

    Parameters
    ----------
    wt : operando.exafs.WaveletTransform
    rows : list of int, optional
        Rows (maps) to draw; default up to ``max_maps`` evenly spaced.
    titles : list of str, optional
        One per drawn map (default its label, with the number of steps averaged).
    lobes : DataFrame, optional
        :func:`operando.exafs.lobe_positions` of ``wt`` (rows matched to the maps by
        ``label``, or ``segment``): each shell's maximum is marked and named, its R
        window drawn as dotted lines.
    krange : (float, float), optional
        k range shown (default the transform's k window, else all).
    rmax : float, optional
        Largest R shown, Angstrom.
    max_maps : int
    common_scale : bool
        One colour scale for all panels (lobes compare across segments) or one each.
    cmap : str

    Returns
    -------
    Figure
        One axes per map and one colour bar.
    """
    n = len(wt)
    if n == 0:
        raise DataError("no wavelet map to draw")
    if rows is None:
        rows = evenly_spaced(n, max_maps)
    rows = [int(r) for r in rows]
    kmin = wt.settings.get("kmin")
    kmax = wt.settings.get("kmax")
    klo, khi = krange if krange is not None else (kmin if kmin is not None else wt.k[0],
                                                   kmax if kmax is not None else wt.k[-1])
    kmask = (wt.k >= klo) & (wt.k <= khi)
    rmask = wt.r <= (rmax if rmax is not None else wt.r[-1])
    mod = wt.modulus[np.ix_(rows, np.flatnonzero(rmask), np.flatnonzero(kmask))]
    finite = mod[np.isfinite(mod)]
    vmax_all = float(finite.max()) if finite.size else 1.0
    cols = min(len(rows), 3)
    nrows = math.ceil(len(rows) / cols)
    fig = Figure(figsize=(3.6 * cols + 0.9, 3.0 * nrows + 0.3))
    grid = fig.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False)
    # Fixed margins: the suptitle and a panel title above, the colour bar's ticks and label
    # on the right; between rows a panel title (and the k axis of a panel with no panel
    # below it, when the last row is not full); shared R axis, no tick labels between columns.
    below = 0.0 if len(rows) % cols == 0 else MARGIN["bottom"]
    place_grid(fig, grid, top=0.55, right=COLORBAR, wspace=0.15, hspace=0.3 + below)
    axes = grid.ravel()
    k, r = wt.k[kmask], wt.r[rmask]
    mesh = None
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    for j, (ax, row) in enumerate(zip(axes, rows)):
        m = mod[j]
        vmax = vmax_all if common_scale else (float(np.nanmax(m)) if np.isfinite(m).any() else 1.0)
        mesh = ax.pcolormesh(k, r, np.ma.masked_invalid(m), shading="nearest", cmap=cmap, vmin=0,
                             vmax=vmax, rasterized=True)
        label = wt.labels[row]
        if titles is not None:
            title = titles[j]
        elif wt.settings.get("averaged"):
            title = f"segment {label} ({int(wt.n_steps[row])} steps)"
        else:
            title = f"step {label}"
        ax.set_title(title, fontsize=8, y=1.0)  # y: see TITLE_MARGIN
        if lobes is not None and len(lobes):
            key = "label" if "label" in lobes.columns else "segment"
            _mark_lobes(ax, lobes[lobes[key] == label], list(dict.fromkeys(lobes["shell"])))
    for j, ax in enumerate(axes[:len(rows)]):
        if j + cols >= len(rows):  # nothing drawn below it: it carries the k axis
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("k (Å⁻¹)")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("R (Å, not phase corrected)")
    w = wt.settings
    colorbar_beside(fig, mesh, axes[:len(rows)], label=f"|WT| (k^{w['kweight']:g})", shrink=0.9)
    fig.suptitle(f"{w.get('method', '').capitalize()} wavelet transform", fontsize=9)
    return fig


def _mark_lobes(ax, lobes: pd.DataFrame, shells: list) -> None:
    k0, k1 = ax.get_xlim()
    for lobe in lobes.itertuples(index=False):
        i = shells.index(lobe.shell) % len(_LOBE_STYLES)
        marker, color = _LOBE_STYLES[i]
        hlines(ax, [lobe.r_low, lobe.r_high], color=color, lw=0.6, ls=":", alpha=0.7)
        if not np.isfinite(lobe.k) or not getattr(lobe, "lobe", True):
            continue  # no lobe of its own in this window (the maximum is on its edge)
        ax.plot([lobe.k], [lobe.r], marker, ms=6, mfc="none", mec=color, mew=1.3)
        # the name to the right of its marker, or to the left in the right part of the map,
        # where it would run past the panel (into the next one or the colour bar)
        left = lobe.k > k0 + 0.6 * (k1 - k0)
        ax.annotate(f"{lobe.shell}: {lobe.k:.1f} Å⁻¹, {lobe.r:.2f} Å", (lobe.k, lobe.r),
                    xytext=(-7 if left else 7, 5), textcoords="offset points", fontsize=6.5,
                    color="w", ha="right" if left else "left",
                    bbox=dict(boxstyle="round,pad=0.2", fc="k", ec=color, lw=0.8, alpha=0.6))
