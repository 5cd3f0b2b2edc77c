"""A step explorer for notebooks: a slider over the steps showing mu(E), chi(k) and
|chi(R)| of the step chosen, with the shell fit where there is one.

Needs ipywidgets (``pip install "operando[notebook]"``), imported on first use;
:func:`explorer_figure` draws the same panels without widgets.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..errors import DataError
from ..exafs.batch import batch_xftf
from ..options import FTOptions
from .spectra import EDGE_WINDOW


def _ft(fits, chi) -> dict:
    """The transform of the panels: the fit's k window when there is a fit."""
    if fits is not None:
        m = fits.settings["model"]
        return {key: m[key] for key in FTOptions().keys()}
    ft = FTOptions()
    kmax = ft.kmax if chi is None else min(ft.kmax, float(chi.k[-1]))
    return dict(ft.replace(kmax=kmax))


def explorer_figure(normalized, chi=None, fits=None, index: int = 0, *, window=EDGE_WINDOW,
                    rmax: float = 6.0) -> Figure:
    """The explorer's panels for the step at row ``index``.

    Parameters
    ----------
    normalized : NormalizedSeries
    chi : ChiSeries, optional
    fits : ShellFitResult, optional
        Its model chi(k) is drawn over the data (k and R).
    index : int
        Row (position, not ``step`` label).
    window : (float, float)
        Energy range around E0 of the mu(E) panel, eV.
    rmax : float

    Returns
    -------
    Figure
        One axes (mu) or three (mu, chi(k), |chi(R)|).
    """
    n = len(normalized)
    if not 0 <= index < n:
        raise DataError(f"row {index} is outside the series (0..{n - 1})")
    series = normalized.series
    step = series.steps[index]
    panels = 1 if chi is None else 3
    fig = Figure(figsize=(3.6 * panels, 3.1), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    e = series.energy
    e0 = normalized.e0[index]
    keep = (e >= e0 + window[0]) & (e <= e0 + window[1]) if np.isfinite(e0) else np.ones(e.size, bool)
    axes[0].plot(e[keep], normalized.norm[0][keep], color="0.7", lw=0.9, label=f"step {series.steps[0]}")
    axes[0].plot(e[keep], normalized.norm[index][keep], "k-", lw=1.2, label=f"step {step}")
    axes[0].set_xlabel("Energy (eV)")
    axes[0].set_ylabel("Normalised μ")
    axes[0].legend(fontsize=7)
    cond = series.conditions.iloc[index]
    label = ", ".join(f"{c} {cond[c]}" for c in series.conditions.columns if c not in ("step", "file"))
    axes[0].set_title(f"step {step}" + (f": {label}" if label else ""), fontsize=8)
    if chi is None:
        return fig
    ft = _ft(fits, chi)
    kw = ft["kweight"]
    k = chi.k
    rows = [("data", chi.chi[index], "k-")]
    if fits is not None:
        hits = np.flatnonzero(fits.table["step"].to_numpy() == step)
        if hits.size and np.isfinite(fits.model_chi[hits[0]]).all():
            n_k = min(fits.k.size, k.size)
            rows.append(("fit", np.interp(k, fits.k, fits.model_chi[hits[0]]) if n_k else None, "r--"))
            q = fits.table.get("fit_quality")
            tag = str(q.iloc[hits[0]]) if q is not None else ("good" if fits.table["fit_ok"].iloc[hits[0]]
                                                               else "failed")
            axes[1].set_title(f"fit {tag}, R-factor {fits.table['r_factor'].iloc[hits[0]]:.3g}",
                              fontsize=8)
    for name, y, style in rows:
        if y is None or not np.isfinite(y).all():
            continue
        axes[1].plot(k, y * k ** kw, style, lw=1.0, label=name)
        r, chir = batch_xftf(k, y[None, :], **ft)
        sel = r <= rmax
        axes[2].plot(r[sel], np.abs(chir[0])[sel], style, lw=1.0, label=name)
    axes[1].axvspan(ft["kmin"], ft["kmax"], color="0.93", zorder=0)
    axes[1].set_xlabel("k (Å⁻¹)")
    axes[1].set_ylabel(f"k^{kw:g} χ(k)")
    axes[2].set_xlabel("R (Å, not phase corrected)")
    axes[2].set_ylabel("|χ(R)|")
    for ax in axes[1:]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return fig


def step_explorer(normalized, chi=None, fits=None, *, window=EDGE_WINDOW):
    """An ipywidgets slider over the steps with :func:`explorer_figure` below it.

    Parameters
    ----------
    normalized : NormalizedSeries
    chi : ChiSeries, optional
    fits : ShellFitResult, optional
    window : (float, float)

    Returns
    -------
    ipywidgets.VBox
        ``children[0]`` the slider (row index), ``children[1]`` the output area.
    """
    try:
        import ipywidgets as widgets
    except ImportError as exc:  # an optional extra
        raise ImportError("step_explorer needs ipywidgets: pip install \"operando[notebook]\"") from exc
    from IPython.display import display

    slider = widgets.IntSlider(value=0, min=0, max=len(normalized) - 1, description="row",
                               continuous_update=False)
    out = widgets.Output()

    def show(change=None):
        out.clear_output(wait=True)
        with out:
            display(explorer_figure(normalized, chi, fits, slider.value, window=window))

    slider.observe(show, names="value")
    show()
    return widgets.VBox([slider, out])
