"""LCF of operando.components: exact solver, agreement with xraylarch on real data, mixtures
of real references with known fractions, combinatorial mode, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import lsq_linear, minimize
from scipy.stats import spearmanr

import operando as op
from operando.components import lcf, lcf_arrays, lcf_combinations
from operando.components import _solver

from _components_data import (AU_STANDARDS, AU_TIMES, CU, FE, au_group_series, au_normalized,
                              mixture_series, ref_paths, reference_norms)


# --------------------------------------------------------------------------- exact solver
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("sum_to_one", [True, False])
def test_solver_is_the_constrained_optimum(k, sum_to_one):
    """Active-set enumeration = the optimum of the bounded (sum-to-one) problem: equal to
    scipy's solvers (lsq_linear, SLSQP) to 1e-6 and KKT conditions hold to 1e-9."""
    rng = np.random.default_rng(k)
    m = 150
    A = np.abs(rng.standard_normal((m, k))).cumsum(axis=0) / m + 0.1 * rng.standard_normal((m, k))
    w_true = rng.dirichlet(np.ones(k), size=60) * rng.uniform(0.6, 1.4, size=(60, 1))
    Y = w_true @ A.T + 0.02 * rng.standard_normal((60, m))
    G, B = A.T @ A, Y @ A
    W = _solver.solve(G, B, sum_to_one=sum_to_one)
    assert np.any(W <= 1e-12) or np.any(W >= 1 - 1e-12)          # some bounds are active
    for i in range(60):
        assert _solver.kkt_violation(G, B[i], W[i], sum_to_one=sum_to_one) < 1e-9
        if sum_to_one:
            ref = minimize(lambda w: np.sum((A @ w - Y[i]) ** 2), np.full(k, 1 / k),
                           bounds=[(0, 1)] * k, method="SLSQP",
                           constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                           options={"ftol": 1e-15, "maxiter": 500}).x
        else:
            ref = lsq_linear(A, Y[i], bounds=(0, 1), tol=1e-14).x
        # the objective can only be lower than scipy's; weights equal to scipy's precision
        obj = lambda w: np.sum((A @ w - Y[i]) ** 2)  # noqa: E731
        assert obj(W[i]) <= obj(ref) + 1e-10
        np.testing.assert_allclose(W[i], ref, atol=1e-5)


def test_solver_iterative_fallback_matches_enumeration():
    """More than 6 references use SLSQP per spectrum; on 4 references it agrees to 1e-6."""
    rng = np.random.default_rng(7)
    A = rng.random((80, 4))
    Y = rng.dirichlet(np.ones(4), size=10) @ A.T + 0.01 * rng.standard_normal((10, 80))
    G, B = A.T @ A, Y @ A
    np.testing.assert_allclose(_solver._solve_iterative(G, B, 0.0, 1.0, True),
                               _solver.solve(G, B), atol=1e-6)


# --------------------------------------------------------------------------- real data vs larch
@pytest.fixture(scope="module")
def au_lcf(shared_data):
    refs = {n: au_group_series(n) for n in ("Au_foil", "Au3_Cl_aq", "Au_thiosulphate_aq")}
    return lcf(au_normalized(), refs)


def test_au_lcf_agrees_with_larch_lincombo_fit(au_lcf):
    """Same data, references and fit range given to larch.math.lincombo_fit (bounds [0, 1],
    sum to one): weights within 0.005 (they agree to ~1e-5: both find the same optimum);
    errors within 10 % where lmfit reports them and no weight is at a bound (at a bound lmfit's
    bounded-parameter transform makes its error meaningless); redchi and R-factor to 1e-6."""
    from larch import Group
    from larch.math import lincombo_fit

    r = au_lcf
    nz = au_normalized()
    compared_errors = 0
    for i in range(len(AU_TIMES)):
        comps = [Group(energy=nz.energy, norm=r._basis[j], filename=n) for j, n in
                 enumerate(r.names)]
        out = lincombo_fit(Group(energy=nz.energy, norm=nz.norm[i]), comps, minvals=[0] * 3,
                           maxvals=[1] * 3, xmin=r.xmin[i], xmax=r.xmax[i], sum_to_one=True)
        w = np.array([out.weights[n] for n in r.names])
        np.testing.assert_allclose(r.weights[i], w, atol=0.005)
        assert r.redchi[i] == pytest.approx(out.redchi, rel=1e-6)
        assert r.rfactor[i] == pytest.approx(out.rfactor, rel=1e-6)
        assert r.n_points[i] == out.xdata.size
        errs = np.array([out.params[n].stderr or np.nan for n in r.names], dtype=float)
        if np.all(np.isfinite(errs)) and np.all((w > 1e-3) & (w < 1 - 1e-3)):
            np.testing.assert_allclose(r.errors[i], errs, rtol=0.10)
            compared_errors += 1
    assert compared_errors >= 6


def test_au_metallic_fraction_rises_with_time(au_lcf):
    """Au(III) is reduced to metallic Au: the Au-foil fraction at 720 h is the largest and
    rises with time (rank correlation > 0.9; d_33 lies a little below d_20)."""
    df = au_lcf.to_dataframe()
    foil = df["frac_Au_foil"].to_numpy()
    times = au_normalized().series.conditions["time_h"].to_numpy()
    assert foil[-1] == foil.max() and foil[-1] > foil[0] + 0.4
    assert spearmanr(times, foil).statistic > 0.9
    assert np.all(df["lcf_ok"]) and np.allclose(df["lcf_sum"], 1.0)


def test_lcf_result_api(au_lcf):
    r = au_lcf
    df = r.to_dataframe()
    for n in r.names:
        assert {f"frac_{n}", f"frac_{n}_err"} <= set(df.columns)
    fit = r.fit(7)
    np.testing.assert_allclose(fit[r.names].sum(axis=1), fit["fit"])
    # chi-square of the stored fit curve is the reported one
    assert np.sum(fit["residual"] ** 2) == pytest.approx(r.chi_square[7], rel=1e-9)
    assert fit["x"].iloc[0] == r.xmin[7] and fit["x"].iloc[-1] == r.xmax[7]
    text = r.report()
    assert "Au_foil" in text and "sum to one: True" in text
    s = r.settings
    assert s["erange"] == [-20.0, 80.0] and s["sum_to_one"] and s["bounds"] == [0.0, 1.0]
    assert s["standards"][0]["normalization"]["nnorm"] == 1       # the series' settings


def test_au_combinations_rank_as_larch_lincombo_fitall(shared_data):
    """Combinations of 6 standards (up to 3) for d_720, ranked by reduced chi-square: every
    combination larch.math.lincombo_fitall returns has the same redchi (1e-6) and the same
    order in our ranking."""
    from larch import Group
    from larch.math import lincombo_fitall

    nz = au_normalized()
    names = AU_STANDARDS[:6]
    c = lcf_combinations(nz, {n: au_group_series(n) for n in names}, max_components=3,
                         steps=[7])
    tab = c.table(7).set_index("combination")
    comps = [Group(energy=nz.energy, norm=c._lcf_parts["basis"][j], filename=n)
             for j, n in enumerate(c.names)]
    outs = lincombo_fitall(Group(energy=nz.energy, norm=nz.norm[7]), comps, minvals=[0] * 6,
                           maxvals=[1] * 6, xmin=c._lcf_parts["xmin"][7],
                           xmax=c._lcf_parts["xmax"][7], max_ncomps=3, sum_to_one=True)
    ranks = []
    for o in outs:
        label = "+".join(n for n in c.names if n in o.weights)
        assert tab.loc[label, "redchi"] == pytest.approx(o.redchi, rel=1e-6)
        ranks.append(tab.loc[label, "rank"])
    assert ranks == sorted(ranks) and len(ranks) >= 8
    # the statistics: the best is equivalent to itself, the selection is justified step by step
    best = tab[tab["rank"] == 1].iloc[0]
    assert best["equivalent"]
    sel = tab[tab["selected"]]
    assert len(sel) == 1 and (sel["n_refs"].iloc[0] == 1 or sel["justified"].iloc[0])
    assert "Au_foil" in sel.index[0]


# --------------------------------------------------------------------------- mixtures
@pytest.fixture(scope="module")
def cu_mixtures(shared_data):
    t = np.linspace(0, 1, 11)
    fr = np.c_[t, 1 - t]
    return mixture_series(CU, fr, seed=1), fr


def test_cu_two_reference_fractions_recovered(cu_mixtures):
    """Cu foil + CuO mixed with known fractions, 0.3 % noise in raw mu, normalised, fitted
    against the reference files: every fraction within 0.02 (the acceptance bound)."""
    nz, fr = cu_mixtures
    r = lcf(nz, ref_paths(CU))
    assert r.names == ["cu_foil_rt", "cuo_tenorite_13K"]
    np.testing.assert_allclose(r.weights, fr, atol=0.02)


@pytest.mark.parametrize("k", [3, 4])
def test_fe_three_and_four_reference_fractions_recovered(shared_data, k):
    """Fe foil, FeO, Fe2O3 (, Fe3O4) with random known fractions, 0.3 % noise in raw mu:
    every fraction within 0.05 (the acceptance bound)."""
    fr = np.random.default_rng(10 + k).dirichlet(np.ones(k), size=12)
    nz = mixture_series(FE[:k], fr, seed=k)
    r = lcf(nz, ref_paths(FE[:k]))
    np.testing.assert_allclose(r.weights, fr, atol=0.05)


@pytest.mark.parametrize("space", ["flat", "dnormde"])
def test_other_spaces_recover_fractions(cu_mixtures, space):
    """Flattened mu and the derivative of normalised mu give the same fractions (0.03: the
    derivative amplifies the noise)."""
    nz, fr = cu_mixtures
    r = lcf(nz, ref_paths(CU), space=space)
    np.testing.assert_allclose(r.weights, fr, atol=0.03)


def test_energy_shift_of_a_reference_is_found(shared_data):
    """A CuO reference whose energy axis is off by +1.5 eV: with shifts the fit moves it back
    (shift -1.5 +- 0.15 eV) and recovers the fractions within 0.02; without shifts they are
    biased.  Shift errors are finite."""
    e, N = reference_norms(tuple(CU))
    t = np.linspace(0.2, 0.8, 4)
    fr = np.c_[t, 1 - t]
    nz = mixture_series(CU, fr, seed=3)
    refs = {"foil": (e, N[0]), "cuo": (e + 1.5, N[1])}
    fixed = lcf(nz, refs, erange=(-15, 60))
    shifted = lcf(nz, refs, erange=(-15, 60), shifts=True, max_shift=3.0)
    assert np.abs(fixed.weights - fr).max() > 0.02
    np.testing.assert_allclose(shifted.weights, fr, atol=0.02)
    np.testing.assert_allclose(shifted.shifts[:, 1], -1.5, atol=0.15)
    assert np.all(np.isfinite(shifted.shift_errors[:, 1]))
    assert shifted.settings["nvarys"] == 3


def test_lcf_arrays_equals_lcf_on_the_same_arrays(cu_mixtures):
    """lcf_arrays (any grid, e.g. chi(k)) gives the same weights as lcf on the same arrays."""
    nz, fr = cu_mixtures
    r = lcf(nz, ref_paths(CU))
    ra = lcf_arrays(nz.energy, nz.norm, r._basis, names=r.names, xrange=(r.xmin[0], r.xmax[0]))
    np.testing.assert_allclose(ra.weights, r.weights, atol=1e-10)
    np.testing.assert_allclose(ra.errors, r.errors, rtol=1e-8)


def test_steps_of_the_series_as_references(cu_mixtures):
    """"first" and "last" steps are the pure end members: fractions within 0.02."""
    nz, fr = cu_mixtures
    r = lcf(nz, ["last", "first"])
    assert r.names == ["last", "first"]
    np.testing.assert_allclose(r.weights, fr, atol=0.02)


# --------------------------------------------------------------------------- bad input
def test_reference_on_another_edge_is_named(cu_mixtures):
    nz, _ = cu_mixtures
    with pytest.raises(op.DataError, match="fe_foil_rt_2016foils.*(edge|Fe)"):
        lcf(nz, ref_paths([CU[0], FE[0]]))


def test_reference_not_covering_the_fit_range_is_named(cu_mixtures):
    nz, _ = cu_mixtures
    e, N = reference_norms(tuple(CU))
    short = e < nz.e0[0] + 30
    with pytest.raises(op.DataError, match="'short_cuo' .*covers.*fit needs"):
        lcf(nz, {"foil": ref_paths(CU)[0], "short_cuo": (e[short], N[1][short])})


def test_identical_references_are_a_singular_basis(cu_mixtures):
    nz, _ = cu_mixtures
    path = ref_paths(CU)[1]
    with pytest.raises(op.DataError, match="'cuo_a', 'cuo_b'.*linearly dependent"):
        lcf(nz, {"foil": ref_paths(CU)[0], "cuo_a": path, "cuo_b": path})


def test_bad_settings(cu_mixtures):
    nz, _ = cu_mixtures
    with pytest.raises(op.ConfigError, match="space"):
        lcf(nz, ref_paths(CU), space="chi")
    with pytest.raises(op.ConfigError, match="erange"):
        lcf(nz, ref_paths(CU), erange=(30, -20))
    with pytest.raises(op.ConfigError, match="unique"):
        lcf(nz, [ref_paths(CU)[0], ref_paths(CU)[0]])
    with pytest.raises(op.DataError, match="holds 8 spectra"):
        lcf(nz, {"x": au_normalized().series})
