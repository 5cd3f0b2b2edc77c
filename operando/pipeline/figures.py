"""The run's figures: which are drawn, from what, and how they are saved.

Always ``xanes_map`` (the edge region, -30..+70 eV around E0), ``xanes_difference``
(every step minus the baseline state) and ``white_line``.  With tracking:
``cn`` and ``fit_parameters`` when there is a metal shell (EXAFS), ``two_phase`` with
``[exafs] two_phase`` (fraction, cluster CN and size per segment), ``fractions``
when the steps have ``frac_*`` columns (``[components]``), ``summary`` with EXAFS.
With ``[components]``: ``lcf_fit`` (one step's fit, see :func:`overlay_fit`),
``pca`` (scree and components), ``mcr`` (with ``method = "mcr"``).  With EXAFS:
``wavelet`` (per-segment wavelet maps and their lobes, :func:`wavelet_analysis`).

``norm`` and ``chi`` hold only the sampled rows (all steps up to
:data:`~.chunks.PLOT_ROWS`, else that many evenly spaced): the XANES map, the
differences, the chi(R) panel and the wavelet maps show those; the trends show every
step.  A figure that fails is noted in the summary; the run goes on.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import OperandoError
from ..exafs.batch import batch_xftf
from ..tracking.channels import flags
from ..exafs.wavelet import lobe_positions, shell_windows, wavelet_transform
from .chunks import chunk_name
from .store import RunStore

log = logging.getLogger(__name__)

#: Raster resolution of the run figures, dots per inch (the 11 x 8 inch summary is
#: already 1320 x 960 pixels at 120 dpi).
PLOT_DPI = {"summary": 120, "wavelet": 110}
DEFAULT_DPI = 150
#: Wavelet maps drawn (segments, evenly spaced over the run).
WAVELET_MAPS = 6
#: Segments transformed at once (each map is ~1 MB).
_WAVELET_BLOCK = 16


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
    sampled = tracking
    if tracking is not None and len(plot_rows) < len(tracking.steps):
        # plot_summary takes its rows in the order of tracking.steps: give it the plot rows.
        sampled = replace(tracking, steps=tracking.steps.iloc[plot_rows].reset_index(drop=True))
    figures: list[tuple[str, Callable[[], Any]]] = [
        ("xanes_map", lambda: viz.plot_xanes_map(energy, norm, steps=row_steps, tracking=tracking,
                                                 e0=e0)),
    ]
    if np.isfinite(norm).all(axis=1).sum() >= 2:
        figures.append(("xanes_difference", lambda: viz.plot_xanes_difference(
            energy, norm, steps=row_steps, tracking=tracking, e0=e0)))
    if tracking is None:
        figures.append(("white_line", lambda: _plot_white_line_plain(steps)))
    else:
        figures.append(("white_line", lambda: viz.plot_white_line(tracking)))
        if tracking.metal_shell:
            figures.append(("cn", lambda: viz.plot_cn(tracking)))
            if "cluster_cn" in tracking.segments.columns:   # [exafs] two_phase
                figures.append(("two_phase", lambda: viz.plot_two_phase(tracking)))
            if any(c.startswith("r_") and c != "r_factor" for c in tracking.steps.columns):
                figures.append(("fit_parameters", lambda: viz.plot_fit_parameters(tracking)))
        if any(c.startswith("frac_") for c in tracking.steps.columns):
            figures.append(("fractions", lambda: viz.plot_fractions(tracking)))
    if analysis.get("overlay") is not None:
        result, step, _ = analysis["overlay"]
        figures.append(("lcf_fit", lambda: viz.plot_lcf_fit(result, step)))
    if analysis.get("pca") is not None:
        figures.append(("pca", lambda: viz.plot_pca(analysis["pca"])))
    if analysis.get("mcr") is not None:
        figures.append(("mcr", lambda: viz.plot_mcr(analysis["mcr"])))
    if analysis.get("wavelet") is not None:
        wt, lobes = analysis["wavelet"]
        figures.append(("wavelet", lambda: viz.plot_wavelet(wt, lobes=lobes, max_maps=WAVELET_MAPS)))
    if analysis.get("logs") is not None and "time_start" in steps:
        figures.append(("condition_logs", lambda: viz.plot_condition_logs(steps,
                                                                          analysis["logs"])))
    if chi is not None and tracking is not None and tracking.metal_shell:
        figures.append(("summary", lambda: viz.plot_summary(sampled, energy, norm,
                                                            *chir_magnitude(ft, *chi), e0=e0)))
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


def wavelet_analysis(ft: dict, chi, steps: pd.DataFrame, plot_rows, tracking, shells):
    """Cauchy wavelet maps of the mean chi(k) of each segment's sampled steps (k^w and
    k window of the figures' transform), and the (k, R) of each shell's lobe.

    Returns ``(WaveletTransform, lobes)``: the maps of up to :data:`WAVELET_MAPS`
    segments evenly spaced over the run (the figure), and ``lobes`` for every segment
    and shell (``segment, condition, state, shell, k, r, modulus, r_low, r_high``);
    None without chi(k), tracking or shells.  Segments are transformed a few at a time,
    so a run of many segments never holds all their maps.
    """
    if chi is None or tracking is None or not shells:
        return None
    k, rows = chi
    seg_of = dict(zip(tracking.steps["step"], tracking.steps["segment"]))
    groups = np.array([seg_of.get(s, -1) for s in steps["step"].to_numpy()[plot_rows]])
    labels = list(dict.fromkeys(groups.tolist()))
    shown = {labels[i] for i in np.unique(np.linspace(0, len(labels) - 1, min(len(labels),
                                                       WAVELET_MAPS)).round().astype(int))}
    # shells are labels or tables (resolved [exafs] shells); a tagged further shell of a
    # pair (an oxide's "Cu-Cu_ox1") has no window of its own
    tables = [{"label": sh} if isinstance(sh, str) else sh for sh in shells]
    main = [t for t in tables if "_" not in t["label"]]
    windows = shell_windows([t["label"] for t in main],
                            {t["label"]: t["distance"] for t in main if t.get("distance")})
    kwargs = dict(ft, rmax_out=6.0)
    # the lobes need only the R points of the shells' windows; whole maps only those shown
    rrange = ((min(w[0] for w in windows.values()), max(w[1] for w in windows.values()))
              if windows else None)
    lobes, maps = [], []
    for a in range(0, len(labels), _WAVELET_BLOCK):
        block = np.isin(groups, labels[a:a + _WAVELET_BLOCK])
        wt = wavelet_transform(k, rows[block], groups=groups[block], rrange=rrange, **kwargs)
        lobes.append(lobe_positions(wt, windows))
        drawn = block & np.isin(groups, [g for g in wt.labels if g in shown])
        if drawn.any():
            maps.append(wavelet_transform(k, rows[drawn], groups=groups[drawn], **kwargs))
    wt = replace(maps[0], wt=np.concatenate([m.wt for m in maps]),
                    labels=[g for m in maps for g in m.labels],
                    n_steps=np.concatenate([m.n_steps for m in maps]))
    lobes = pd.concat(lobes, ignore_index=True)
    seg = tracking.segments.set_index("segment")
    lobes.insert(0, "segment", lobes.pop("label"))
    lobes.insert(1, "condition", [seg["condition"].get(g, "") for g in lobes["segment"]])
    lobes.insert(2, "state", [seg["state"].get(g, "") for g in lobes["segment"]])
    return wt, lobes


def overlay_fit(store: RunStore, plan, energy, steps: pd.DataFrame, analysis: dict):
    """The LCF fit drawn in the run: ``(LCFResult, step, why)`` or None.

    The step is the one with the largest metallic fraction (a reference named foil or
    metal, or the ``[components] metal`` one): it shows how well the standards
    describe the state furthest from the oxidised start, where an error in the metal
    reference matters most.  Without a metallic component, the last fitted step (the
    end of the run).  Its spectrum is read back from its chunk's checkpoint, so any
    step can be drawn, not only the sampled rows.
    """
    from ..components import lcf, lcf_arrays

    c = plan.components
    ok = np.array(flags(steps, "lcf_ok", default=False)) & np.array(flags(steps, "ok"))
    if c is None or not ok.any():
        return None
    fracs = [col for col in steps.columns if col.startswith("frac_") and not col.endswith("_err")]
    wanted = f"frac_{c['metal']}" if c.get("metal") else None
    metal = wanted if wanted in fracs else next(
        (col for col in fracs if any(w in col.lower() for w in ("foil", "metal"))), None)
    if metal is not None:
        values = np.where(ok, pd.to_numeric(steps[metal], errors="coerce"), -np.inf)
        row = int(np.nanargmax(values))
        why = (f"the step with the largest {metal[5:]} fraction ({values[row]:.3f}), the state "
               "furthest from the start, where the metallic reference is tested hardest")
    else:
        row = int(np.flatnonzero(ok)[-1])
        why = "the last fitted step (no metallic component to choose by)"
    step = int(steps["step"].iloc[row])
    arrays, _ = store.load_checkpoint(chunk_name(row // plan.chunk_size))
    j = row - (row // plan.chunk_size) * plan.chunk_size
    norm, flat = arrays["norm"][j:j + 1], arrays.get("flat", arrays["norm"])[j:j + 1]
    if c["method"] == "mcr":
        mcr = analysis.get("mcr")
        if mcr is None or len(mcr.names) < 2:     # one component: no fit to draw
            return None
        x = np.asarray(mcr.x, float)
        result = lcf_arrays(x, np.interp(x, energy, norm[0])[None, :], np.asarray(mcr.spectra),
                            names=list(mcr.names), steps=[step])
        return result, step, why
    from .components import as_normalized, load as load_standards
    from .prepare import COMPONENTS

    standards, _ = load_standards(store, COMPONENTS)
    one = as_normalized(energy, steps.iloc[[row]].reset_index(drop=True), norm, np.ones(1, bool),
                        {}, flat=flat)
    return lcf(one, standards, **c["kwargs"]), step, why


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
