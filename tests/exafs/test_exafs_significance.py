"""The F-test and the detection limit (operando.exafs.significance) against plain
xraylarch feffit fits written out by hand on the same input: real Cu foil + CuO
mixtures (operando.mixtures), the model the package fits by default with a foil
(sigma2 and dE0 of Cu-Cu from the foil; Cu-O and dR(Cu-Cu) free)."""

from __future__ import annotations

import numpy as np
import pytest

from operando import exafs, mixtures, xanes
from operando.exafs.significance import f_test, upper_limit

larch = pytest.importorskip("larch")
pytestmark = pytest.mark.filterwarnings("ignore:Using UFloat objects with std_dev==0")
from larch import Group  # noqa: E402
from larch.fitting import param, param_group  # noqa: E402
from larch.xafs import feffit, feffit_dataset, feffit_transform, feffpath  # noqa: E402

FRACTIONS = (0.0, 0.1, 0.25)
WINDOW = dict(kmin=3.0, kmax=12.0, rmin=1.0, rmax=3.0, kweight=2, dk=1.0, window="hanning")


@pytest.fixture(scope="module")
def case(shared_data):
    refs = mixtures.load_references(["cu_foil", "cuo"], data_dir=shared_data)
    series, _ = mixtures.mix_series(refs, [[x, 1 - x] for x in FRACTIONS], noise=0.003, seed=1,
                                    energy_jitter=0.0)
    chi = exafs.remove_background(xanes.normalize(series, e0="first"), rbkg=1.0)
    fser, _ = mixtures.mix_series(refs, [[1.0, 0.0]], noise="qexafs", seed=99, energy_jitter=0.0)
    cal = exafs.calibrate_s02(exafs.remove_background(xanes.normalize(fser, e0="each")),
                              shell="Cu-Cu", cn=12, **WINDOW)
    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW)
    rows = exafs.fit_shells(chi, model, foil=cal, engine="fast").to_dataframe()
    return chi, cal, rows


def _feffit(k, chi, e0, cal, *, cn_cu=None, pinned=False, with_cu=True):
    """Cu-O (CN, dR, sigma2, dE0 free) + Cu-Cu (sigma2 and dE0 from the foil; CN free or
    held at ``cn_cu``; dR free, or 0 when ``pinned``): plain feffit."""
    from operando.feffpaths import path_for_shell

    pars = {"s02": param(cal.s02), "cn_o": param(3.0, vary=True, min=0, max=16),
            "dr_o": param(0.0, vary=True, min=-0.25, max=0.25),
            "ss_o": param(0.005, vary=True, min=0.001, max=0.03),
            "de0_o": param(0.0, vary=True, min=-10, max=10)}
    paths = [feffpath(str(path_for_shell("Cu-O").file), label="o", degen=1.0, s02="s02*cn_o",
                      e0="de0_o", deltar="dr_o", sigma2="ss_o")]
    if with_cu:
        pars["cn_cu"] = (param(float(cn_cu)) if cn_cu is not None else
                         param(2.0, vary=True, min=-2.0 if pinned else 0.0, max=16))
        pars["dr_cu"] = param(0.0) if pinned else param(0.0, vary=True, min=-0.25, max=0.25)
        pars["ss_cu"] = param(cal.sigma2)
        pars["de0_cu"] = param(cal.edge_energy - e0)
        paths.append(feffpath(str(path_for_shell("Cu-Cu").file), label="cu", degen=1.0,
                              s02="s02*cn_cu", e0="de0_cu", deltar="dr_cu", sigma2="ss_cu"))
    tr = feffit_transform(fitspace="r", **WINDOW)
    return feffit(param_group(**pars), feffit_dataset(data=Group(k=k, chi=chi), paths=paths,
                                                      transform=tr))


def test_f_test_matches_hand_written_feffit_and_scipy(case):
    from scipy import stats

    chi, cal, rows = case
    for i in (1, 2):        # x = 0.1 and 0.25: p between 0.01 and 0.5
        row = rows.iloc[i]
        h1 = _feffit(chi.k, chi.chi[i], chi.e0[i], cal)
        h0 = _feffit(chi.k, chi.chi[i], chi.e0[i], cal, with_cu=False)
        b = h1.nvarys - h0.nvarys            # CN and dR of Cu-Cu: 2
        nu = h1.n_independent - h1.nvarys
        F = (h0.chi_square - h1.chi_square) / b / (h1.chi_square / nu)
        p = stats.f.sf(F, b, nu)
        assert b == 2
        # same statistic from the package's refits; minimisers stop at ftol 1e-6, so the
        # chi-squares agree to ~1e-5 and p to well under 1 %
        assert row["p_Cu-Cu"] == pytest.approx(p, rel=0.01)
        assert f_test(h0.chi_square, h1.chi_square, b, h1.n_independent, h1.nvarys)[1] == \
            pytest.approx(p, rel=1e-9)
        assert bool(row["sig_Cu-Cu"]) == (p < 0.05)


def _grid_limit(k, chi, e0, cal, *, pinned):
    """The research's detection limit: CN(Cu-Cu) on a dense grid, everything else
    refitted, D(c) = (chi2(c) - chi2_min) / (chi2_min / nu), crossing of F(0.90; 1, nu)."""
    from scipy import stats
    from scipy.optimize import brentq

    best = _feffit(k, chi, e0, cal, pinned=pinned)
    nu = best.n_independent - best.nvarys
    c0 = best.params["cn_cu"].value
    grid = c0 + np.arange(0.0, 4.01, 0.2) * max(best.params["cn_cu"].stderr, 0.3)
    d = np.array([(_feffit(k, chi, e0, cal, cn_cu=c, pinned=pinned).chi_square - best.chi_square)
                  / (best.chi_square / nu) for c in grid])
    crit = stats.f.ppf(0.90, 1, nu)
    j = int(np.argmax(d > crit))
    return brentq(lambda c: np.interp(c, grid[j - 1:j + 1], d[j - 1:j + 1]) - crit,
                  grid[j - 1], grid[j])


def test_detection_limit_matches_a_dense_grid_of_feffit_refits(case):
    chi, cal, rows = case
    # x = 0: the shell is pinned as absent (dR = 0, sigma2 the foil's); x = 0.25: present
    for i, pinned in ((0, True), (2, False)):
        row = rows.iloc[i]
        assert ("Cu-Cu CN consistent with 0" in row["fit_message"]) == pinned
        ref = _grid_limit(chi.k, chi.chi[i], chi.e0[i], cal, pinned=pinned)
        # one refit with sqrt(D) linear against a 0.2-sigma grid read by linear
        # interpolation: 2 % of the upper limit (measured: 0.1 %); the column is the
        # detection limit, its distance from the CN
        upper = row["cn_Cu-Cu"] + row["cn_Cu-Cu_limit"]
        assert upper == pytest.approx(ref, rel=0.02), (i, ref)
        assert row["cn_Cu-Cu_limit"] > row["cn_Cu-Cu_err"]


def test_upper_limit_of_an_exact_quadratic_profile():
    # chi2(c) = chi2_min + (c - c0)^2 / s^2 * chi2_min / nu: the limit is c0 + t s exactly
    from scipy import stats

    c0, s, chi2, nu = np.array([0.3, 2.0]), np.array([0.5, 1.0]), np.array([10.0, 40.0]), \
        np.array([7.46, 5.0])
    profile = lambda c, idx: chi2[idx] + ((c - c0[idx]) / s[idx]) ** 2 * chi2[idx] / nu[idx]  # noqa: E731
    for refits in (1, 2):
        lim = upper_limit(c0, s, chi2, nu, profile, refits=refits)
        np.testing.assert_allclose(lim, c0 + np.sqrt(stats.f.ppf(0.90, 1, nu)) * s, rtol=1e-9)
    assert np.isnan(upper_limit([1.0], [np.nan], [1.0], [5.0], profile)[0])
