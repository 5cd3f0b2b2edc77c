"""The figures of issues #11, #12 and #16: every step on the CN figure (poor and failed fits
marked, outliers ringed), fractions, the LCF overlay, PCA scree, MCR, the edge-zoomed and
difference XANES, fit-parameter trends and wavelet maps.  Real data where it matters (the
Au L3 series and its standards), the tracked synthetic tables of test_tracking elsewhere."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

import operando as op
from operando.components import lcf, mcr, pca
from operando.errors import DataError
from operando.tracking import track
from operando.viz import (plot_cn, plot_fit_parameters, plot_fractions, plot_lcf_fit, plot_mcr,
                          plot_pca, plot_wavelet, plot_xanes_difference, plot_xanes_map)

from _components_data import au_group_series, au_normalized
from _tracking_data import pt_steps


def _lines(ax, marker=None, mfc=None):
    out = []
    for line in ax.get_lines():
        if marker is not None and line.get_marker() != marker:
            continue
        if mfc is not None and line.get_markerfacecolor() != mfc:
            continue
        if len(line.get_xdata()):
            out.append(line)
    return out


# --------------------------------------------------------------------------- CN: every step
@pytest.fixture(scope="module")
def pt_marked():
    """Pt gas series with fit grades: steps 3 and 14 poor (CN kept), step 8 failed (no CN),
    step 20 an outlier (flag set as the tracker would)."""
    st = pt_steps(0)
    st["fit_quality"] = np.where(st["fit_ok"], "good", "failed")
    st.loc[[3, 14], "fit_quality"] = "poor"
    st.loc[[3, 14], "fit_ok"] = False
    tr = track(st)
    steps = tr.steps.copy()
    steps.loc[20, ["outlier", "outlier_reason"]] = [True, "CN far from its repeats"]
    return replace(tr, steps=steps)


def test_cn_figure_draws_poor_failed_and_outlier_steps(pt_marked):
    ax = plot_cn(pt_marked).axes[0]
    hollow = [ln for ln in _lines(ax, mfc="none") if to_rgba(ln.get_markeredgecolor()) == to_rgba("0.45")]
    # poor fits: hollow grey at their CN, for both shells (steps 3 and 14 each)
    xs = sorted(float(x) for ln in hollow for x in ln.get_xdata())
    assert xs == [3.0, 3.0, 14.0, 14.0]
    y_metal = [ln for ln in hollow if ln.get_marker() == "o"][0]
    assert list(y_metal.get_ydata()) == pytest.approx(list(pt_marked.steps.loc[[3, 14], "cn_Pt-Pt"]))
    # the failed step (no CN) is a grey cross on the bottom edge, not missing
    (cross,) = [ln for ln in _lines(ax, marker="x") if to_rgba(ln.get_color()) == to_rgba("0.45")]
    assert list(cross.get_xdata()) == [8.0]
    # the outlier is ringed in red at its CN (on both shells)
    rings = [ln for ln in _lines(ax, mfc="none") if to_rgba(ln.get_markeredgecolor()) == to_rgba("#d62728")]
    assert [list(r.get_xdata()) for r in rings] == [[20.0], [20.0]]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"poor/failed fit", "no fit (failed)", "outlier (kept)"} <= set(labels)
    # good steps are drawn filled: every step is on the figure, 23 good + 2 poor + 1 failed
    filled = sum(len(ln.get_xdata()) for ln in _lines(ax, marker="o")
                 if ln.get_markerfacecolor() != "none" and ln.get_linestyle() == "None")
    assert filled == 24 - 3  # metal shell: 21 good steps


def test_cn_figure_needs_a_metal_shell():
    steps = pd.DataFrame({"step": range(6), "gas": ["A"] * 3 + ["B"] * 3, "ok": True,
                          "wl_height": [1.3, 1.31, 1.29, 1.1, 1.11, 1.09],
                          "edge_position": 11920.0})
    tr = track(steps)
    assert tr.metal_shell is None
    with pytest.raises(DataError, match="no metal shell"):
        plot_cn(tr)
    with pytest.raises(DataError, match="no r_<shell> columns"):
        plot_fit_parameters(tr)


def test_fit_parameter_trends(pt_marked):
    fig = plot_fit_parameters(pt_marked)
    axes = fig.axes
    assert [a.get_ylabel() for a in axes] == ["σ² (Å²)", "R (Å)", "ΔE0 (eV)", "R-factor"]
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend[:2] == ["Pt-Pt", "Pt-O"] and "poor/failed fit" in legend


# --------------------------------------------------------------------------- components (real Au)
@pytest.fixture(scope="module")
def au(shared_data):
    refs = {n: au_group_series(n) for n in ("Au_foil", "Au3_Cl_aq", "Au_thiosulphate_aq")}
    nz = au_normalized()
    result = lcf(nz, refs)
    steps = (nz.series.conditions.merge(nz.to_dataframe(), on="step").merge(op.white_line(nz), on="step")
             .merge(result.to_dataframe(), on="step"))
    return nz, result, steps


def test_fractions_figure_on_the_real_au_series(au):
    nz, result, steps = au
    tr = track(steps, condition_columns=["time_h"])  # each time its own condition
    ax = plot_fractions(tr).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:3] == ["Au_foil", "Au3_Cl_aq", "Au_thiosulphate_aq"]
    # steps as points at their fractions, with error bars
    pts = [ln for ln in _lines(ax, marker="o") if ln.get_linestyle() == "None"
           and ln.get_markerfacecolor() != "none"]
    foil = [ln for ln in pts if np.allclose(ln.get_ydata(), result.weights[:, 0])]
    assert len(foil) == 1
    # one artist of error bars per component, whatever the number of steps
    bars = [ln for ln in ax.lines if ln.get_gid() == "error-bars"]
    assert len(bars) == 3
    low, high = bars[0].get_ydata()[0::3], bars[0].get_ydata()[1::3]
    np.testing.assert_allclose((low + high) / 2, result.weights[:, 0])
    assert ax.get_ylabel() == "Fraction"


def test_lcf_overlay_of_a_real_step(au):
    _, result, _ = au
    fig = plot_lcf_fit(result, 7)
    top, bottom = fig.axes
    fit = result.fit(7)
    labels = [ln.get_label() for ln in top.get_lines()]
    assert labels[:2] == ["data", "fit"] and len(labels) == 5
    assert labels[2].startswith(f"{result.weights[7, 0]:.3f} ± ")
    np.testing.assert_allclose(top.get_lines()[1].get_ydata(), fit["fit"])
    np.testing.assert_allclose(bottom.get_lines()[0].get_ydata(), fit["residual"])
    assert "step 7" in top.get_title()


def test_pca_scree_and_mcr_figures(au):
    nz = au[0]
    p = pca(nz)
    fig = plot_pca(p)
    scree = fig.axes[0]
    (chosen,) = [ln for ln in scree.get_lines() if ln.get_label().startswith("chosen")]
    assert list(chosen.get_xdata()) == [p.n_components]
    assert list(chosen.get_ydata()) == [pytest.approx(p.eigenvalues[p.n_components - 1])]
    assert any(a.get_ylabel() == "Malinowski IND" for a in fig.axes)
    m = mcr(nz, 2, bands=True)
    fig = plot_mcr(m)
    spec, conc = fig.axes[:2]
    assert len(spec.get_lines()) == 2 and len(conc.collections) == 2  # a feasible band each
    assert "feasible band" in conc.get_title()


# --------------------------------------------------------------------------- XANES maps
def _model_norm(n=6, e0=11564.0):
    e = np.linspace(e0 - 100, e0 + 400, 600)
    wl = np.linspace(1.6, 1.2, n)
    norm = (0.5 + np.arctan((e - e0) / 2) / np.pi)[None, :] + (wl[:, None] - 1) * np.exp(-((e - e0 - 4) / 4) ** 2)
    return e, norm


def test_xanes_map_spans_the_edge_by_default():
    e, norm = _model_norm()
    ax = plot_xanes_map(e, norm, e0=11564.0).axes[0]
    lo, hi = ax.get_xlim()
    assert 11564 - 31 < lo < 11564 - 29 and 11564 + 69 < hi < 11564 + 71
    ax = plot_xanes_map(e, norm, e0=11564.0, window=(-10, 20)).axes[0]
    assert ax.get_xlim()[1] < 11564 + 21
    ax = plot_xanes_map(e, norm).axes[0]  # no E0: every energy
    assert ax.get_xlim()[0] < e[0] + 1 and ax.get_xlim()[1] > e[-1] - 1


def test_difference_xanes_against_the_reference_state():
    e, norm = _model_norm(n=9)
    steps = pd.DataFrame({"step": range(9), "gas": ["O2"] * 3 + ["H2"] * 3 + ["O2"] * 3, "ok": True,
                          "wl_height": norm.max(axis=1), "edge_position": 11564.0})
    tr = track(steps)
    fig = plot_xanes_difference(e, norm, tracking=tr, e0=11564.0)
    left, right = fig.axes[:2]
    image = left.images[0] if left.images else left.collections[0]
    data = np.asarray(image.get_array()).reshape(9, -1)
    keep = (e >= 11564 - 30) & (e <= 11564 + 70)
    expected = norm[:, keep] - norm[:3, keep].mean(axis=0)  # the first gas segment's mean
    np.testing.assert_allclose(data, expected, atol=1e-12)
    assert "segment 0" in left.get_title()
    assert len(right.get_lines()) >= 3  # one mean difference per segment (and the zero line)
    with pytest.raises(DataError, match="baseline step 42"):
        plot_xanes_difference(e, norm, baseline=42)


# --------------------------------------------------------------------------- wavelet map
def test_wavelet_figure_marks_only_real_lobes():
    k = 0.05 * np.arange(320)
    chi = np.array([np.sin(2 * 2.5 * k) * np.exp(-0.01 * k ** 2), np.sin(2 * 1.6 * k) * 0.5])
    wt = op.exafs.wavelet_transform(k, chi, kmin=3, kmax=13, steps=["metal", "oxide"])
    lobes = wt.lobes({"M-O": (1.2, 1.9), "M-M": (1.9, 2.8)})
    assert list(lobes["lobe"]) == [False, True, True, False]
    fig = plot_wavelet(wt, lobes=lobes)
    maps = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in maps] == ["step metal", "step oxide"]
    for ax, shell in zip(maps, ("M-M", "M-O")):
        names = [t.get_text().split(":")[0] for t in ax.texts]
        assert names == [shell]


# --------------------------------------------------------------------------- fixed layouts
def _assert_laid_out(fig):
    """Every panel's labels, titles, legends and keys inside the figure, and no two panels
    (colour bars included, a twin with its parent excepted) over each other."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    page = fig.bbox
    boxes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        box = ax.get_tightbbox(renderer)
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, ax
        assert page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, ax
        boxes.append((ax, box))
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            if a.get_position().bounds == b.get_position().bounds:
                continue  # a twin axes (the PCA's IND) shares its parent's frame
            overlap = box_a.intersection(box_a, box_b)
            assert overlap is None or overlap.width < 2 or overlap.height < 2, (a, b)


def test_fixed_layout_figures_keep_their_labels_inside_and_apart(pt_marked, au):
    """The multi-panel figures laid out at fixed margins (no layout engine): nothing is cut
    at the figure's edge and no panel's labels run into another panel."""
    nz, result, _ = au
    e, norm = _model_norm(n=9)
    steps = pd.DataFrame({"step": range(9), "gas": ["O2"] * 3 + ["H2"] * 3 + ["O2"] * 3, "ok": True,
                          "wl_height": norm.max(axis=1), "edge_position": 11564.0})
    k = 0.05 * np.arange(320)
    chi = np.array([np.sin(2 * 2.5 * k) * np.exp(-0.01 * k ** 2) * (1 + 0.1 * i) for i in range(5)])
    wt = op.exafs.wavelet_transform(k, chi, kmin=3, kmax=13, steps=list("abcde"))
    # two maps, a lobe in the right part of each (its name must not run into the colour bar)
    two = op.exafs.wavelet_transform(k, np.array([np.sin(2 * 2.5 * k) * np.exp(-0.01 * k ** 2),
                                                  np.sin(2 * 1.6 * k) * 0.5]), kmin=3, kmax=13)
    figures = [plot_fit_parameters(pt_marked), plot_lcf_fit(result, 7), plot_pca(pca(nz)),
               plot_mcr(mcr(nz, 2)), plot_xanes_difference(e, norm, tracking=track(steps), e0=11564.0),
               plot_wavelet(wt, lobes=wt.lobes({"M-M": (1.9, 2.8)})),  # 5 maps: a row not full
               plot_wavelet(two, lobes=two.lobes({"M-O": (1.2, 1.9), "M-M": (1.9, 2.8)}))]
    for fig in figures:
        assert fig.get_layout_engine() is None
        _assert_laid_out(fig)
