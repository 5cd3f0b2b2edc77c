"""PCA and MCR-ALS of operando.components: Larch's pca_train/pca_fit on the real Au
standards, the number of components and target tests on mixtures of real references,
MCR concentration profiles within their stated ambiguity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import operando as op
from operando.components import mcr, pca, pca_matrix
from operando.components.pca import malinowski

from _components_data import (AU_NORM, CU, FE, athena, mixture_series, reaction_path, ref_paths)


# --------------------------------------------------------------------------- Larch's example
@pytest.fixture(scope="module")
def larch_au_model(shared_data):
    """xraylarch's examples/pca/pca_aucyano.py: six standards, norm, 11870-12030 eV."""
    from larch.math import pca_train
    from larch.xafs import pre_edge

    prj = athena()
    standards = [prj.Au_foil, prj.Au3_Cl_aq, prj.Au_hydroxide, prj.Au_thiocyanide,
                 prj.Au_sulphide, prj.Au_thiosulphate_aq]
    for g in standards + [prj.d_720]:
        pre_edge(g, **AU_NORM)
    return pca_train(standards, arrayname="norm", xmin=11870, xmax=12030)


def test_larch_mode_reproduces_pca_train(larch_au_model):
    """Same matrix in: eigenvalues, variances, components, IND and nsig equal pca_train's
    (1e-10: the same arithmetic)."""
    m = larch_au_model
    r = pca_matrix(m.x, m.ydat, preprocess="larch")
    np.testing.assert_allclose(r.eigenvalues, m.eigenvalues, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(r.explained_variance, m.variances, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.components, m.components, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(r.ind, m.ind, rtol=1e-10)
    assert r.n_components == m.nsig == 2


def test_project_reproduces_pca_fit_of_d720(larch_au_model):
    """pca_fit of d_720 with 4 components (rescale off): same fit and chi-square (1e-8)."""
    from larch.math import pca_fit

    m = larch_au_model
    g = athena().d_720
    pca_fit(g, m, ncomps=4, rescale=False)
    r = pca_matrix(m.x, m.ydat, preprocess="larch")
    mine = r.project(g.pca_result.ydat, 4)
    np.testing.assert_allclose(mine["fit"], g.pca_result.yfit, atol=1e-8)
    assert mine["chi_square"] == pytest.approx(g.pca_result.chi_square, rel=1e-8)
    np.testing.assert_allclose(mine["weights"], g.pca_result.weights, rtol=1e-6)


def test_malinowski_f_test_on_a_known_rank():
    """Rank-3 matrix + white noise: the F-test and the IND minimum both give 3."""
    rng = np.random.default_rng(0)
    D = rng.random((200, 3)) @ rng.random((3, 30)) + 1e-3 * rng.standard_normal((200, 30))
    s = np.linalg.svd(D, compute_uv=False)
    stats = malinowski(s ** 2, 200, 30)
    assert int(np.argmin(stats["ind"])) + 1 == 3
    assert np.all(stats["f_pvalue"][:3] < 1e-3) and np.all(stats["f_pvalue"][3:8] > 0.05)
    # real error = the noise sd
    assert stats["real_error"][2] == pytest.approx(1e-3, rel=0.1)


# --------------------------------------------------------------------------- mixtures
# The mixtures for PCA and MCR follow the recipe "mix normalised spectra, add 0.3 % noise in
# normalised units": noise in raw mu also enters each step's normalisation (pre-edge line,
# edge step), a smooth per-step variation that PCA rightly counts as one more component
# (measured: p = 0.01-0.03 for it); see the report.
CASES = {
    "Cu foil + CuO": (CU, np.c_[np.linspace(0, 1, 21), 1 - np.linspace(0, 1, 21)]),
    "Fe foil + FeO + Fe2O3": (FE[:3], reaction_path(3)),
    "Fe foil + FeO + Fe2O3 + Fe3O4": (FE, reaction_path(4)),
}


@pytest.fixture(scope="module", params=list(CASES))
def mixture(request, shared_data):
    files, fr = CASES[request.param]
    return files, fr, mixture_series(files, fr, seed=len(files), raw_noise=False)


def test_pca_finds_the_true_number_of_components(mixture):
    files, fr, nz = mixture
    r = pca(nz)
    assert r.n_components == len(files) == r.n_ind
    # the real error after the true number of components is the noise level (0.003)
    assert r.real_error[len(files) - 1] == pytest.approx(0.003, rel=0.15)


def test_target_transformation(mixture):
    """Every reference used is accepted (SPOIL < 3); for three Fe references, Fe3O4 (not in
    the mixtures) is rejected (SPOIL > 6)."""
    files, fr, nz = mixture
    extra = [FE[3]] if len(files) == 3 and files[0] == FE[0] else []
    r = pca(nz, targets=ref_paths(files + extra))
    t = r.targets.set_index("target")
    used = [f.rsplit(".", 1)[0] for f in files]
    assert (t.loc[used, "spoil"] < 3).all()
    if extra:
        assert t.loc["fe3o4_rt_01", "spoil"] > 6 and t.loc["fe3o4_rt_01", "verdict"] == "rejected"


def _match(C, true):
    cost = -np.array([[np.corrcoef(C[:, i], true[:, j])[0, 1] for j in range(true.shape[1])]
                      for i in range(C.shape[1])])
    rows, cols = linear_sum_assignment(cost)
    return rows, cols


def test_mcr_profiles_within_the_stated_ambiguity(mixture, capsys):
    """MCR-ALS with the PCA estimate: the true concentration profiles lie inside the reported
    band of feasible concentrations (+- 0.02 for noise); the lack of fit is within 10 % of the
    PCA floor; nothing is printed (pyMCR's stdout logging is re-routed)."""
    files, fr, nz = mixture
    r = mcr(nz)
    assert len(r.names) == len(files)
    rows, cols = _match(r.concentrations, fr)
    true = fr[:, cols]
    assert np.all(true >= r.conc_min[:, rows] - 0.02)
    assert np.all(true <= r.conc_max[:, rows] + 0.02)
    assert r.lack_of_fit <= 1.10 * r.lack_of_fit_pca
    np.testing.assert_allclose(np.nansum(r.concentrations, axis=1), 1.0, atol=1e-9)
    assert np.isfinite(r.band_width) and r.band_width > 0
    assert capsys.readouterr().out == ""


def test_mcr_with_pure_end_members_recovers_profiles(shared_data):
    """With pure Cu foil and CuO steps in the series the ALS solution itself is within 0.02
    of the truth (the purest-step start picks the end members)."""
    files, fr = CASES["Cu foil + CuO"]
    nz = mixture_series(files, fr, seed=2, raw_noise=False)
    r = mcr(nz, 2)
    rows, cols = _match(r.concentrations, fr)
    np.testing.assert_allclose(r.concentrations[:, rows], fr[:, cols], atol=0.02)
    assert sorted(r.settings["init"].split("[")[1].strip("]").split(", ")) == ["0", "20"]


def test_mcr_fixed_foil_spectrum(shared_data):
    """A known Cu foil spectrum kept fixed: it comes out unchanged, the truth lies within the
    band, and the band is narrower than without the fixed spectrum."""
    t = np.linspace(0.2, 0.8, 15)
    fr = np.c_[t, 1 - t]
    nz = mixture_series(CU, fr, seed=4, raw_noise=False)
    free = mcr(nz, 2)
    fixed = mcr(nz, 2, fixed=[ref_paths(CU)[0]])
    assert fixed.names == ["cu_foil_rt", "mcr1"] and fixed.fixed == ["cu_foil_rt"]
    from operando.components.lcf import lcf
    foil = lcf(nz, ref_paths(CU))._basis[0]
    i0 = np.searchsorted(nz.energy, fixed.x[0])
    np.testing.assert_allclose(fixed.spectra[0], foil[i0:i0 + fixed.x.size], atol=1e-12)
    assert np.all(fr[:, 0] >= fixed.conc_min[:, 0] - 0.02)
    assert np.all(fr[:, 0] <= fixed.conc_max[:, 0] + 0.02)
    assert fixed.band_width < free.band_width


def test_mcr_and_pca_bad_input(shared_data):
    files, fr = CASES["Cu foil + CuO"]
    nz = mixture_series(files, fr, seed=2, raw_noise=False)
    with pytest.raises(op.ConfigError, match="n_components"):
        mcr(nz, 40)
    with pytest.raises(op.ConfigError, match="init"):
        mcr(nz, 2, init="random")
    with pytest.raises(op.DataError, match="at least 3"):
        pca(nz, steps=[0, 1])
    with pytest.raises(op.ConfigError, match="preprocess"):
        pca(nz, preprocess="centre")
