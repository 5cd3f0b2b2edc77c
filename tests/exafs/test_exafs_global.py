"""Series-global fits (fit_shells_global, batch_fit_global) against xraylarch's feffit
with several datasets, written out by hand, on real Cu foil + CuO mixtures."""

from __future__ import annotations

import numpy as np
import pytest

from operando import exafs, mixtures, xanes
from operando.feffpaths import path_for_shell

larch = pytest.importorskip("larch")
from larch import Group  # noqa: E402
from larch.fitting import param, param_group  # noqa: E402
from larch.xafs import feffit, feffit_dataset, feffit_transform, feffpath  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using UFloat objects with std_dev==0")
FRACTIONS = (0.25, 0.4, 0.6, 0.8, 1.0)
WINDOW = dict(kmin=3.0, kmax=12.0, rmin=1.0, rmax=3.0, kweight=2, dk=1.0, window="hanning")
S02 = 0.90


@pytest.fixture(scope="module")
def chi(shared_data):
    refs = mixtures.load_references(["cu_foil", "cuo"], data_dir=shared_data)
    series, _ = mixtures.mix_series(refs, [[x, 1 - x] for x in FRACTIONS], noise=0.003, seed=2,
                                    energy_jitter=0.0)
    return exafs.remove_background(xanes.normalize(series, e0="first"), rbkg=1.0)


@pytest.fixture(scope="module")
def multi_dataset_feffit(chi):
    """feffit with one dataset per step: per-step CN(Cu-O), CN(Cu-Cu) (bounds -2..16, as
    the package's joint fits), shared sigma2 and dR per shell and one dE0."""
    pars = {"s02": param(S02), "ss_o": param(0.005, vary=True, min=0.001, max=0.03),
            "ss_cu": param(0.007, vary=True, min=0.001, max=0.03),
            "dr_o": param(0.0, vary=True, min=-0.25, max=0.25),
            "dr_cu": param(0.0, vary=True, min=-0.25, max=0.25),
            "de0": param(0.0, vary=True, min=-10, max=10)}
    datasets = []
    tr = feffit_transform(fitspace="r", **WINDOW)
    for j in range(len(FRACTIONS)):
        pars[f"cn_o_{j}"] = param(4.0, vary=True, min=-2, max=16)
        pars[f"cn_cu_{j}"] = param(8.0, vary=True, min=-2, max=16)
        paths = [feffpath(str(path_for_shell("Cu-O").file), label=f"o{j}", degen=1.0,
                          s02=f"s02*cn_o_{j}", e0="de0", deltar="dr_o", sigma2="ss_o"),
                 feffpath(str(path_for_shell("Cu-Cu").file), label=f"cu{j}", degen=1.0,
                          s02=f"s02*cn_cu_{j}", e0="de0", deltar="dr_cu", sigma2="ss_cu")]
        datasets.append(feffit_dataset(data=Group(k=chi.k, chi=chi.chi[j]), paths=paths,
                                       transform=tr))
    return feffit(param_group(**pars), datasets)


@pytest.mark.parametrize("engine", ["fast", "larch"])
def test_global_fit_is_feffit_with_several_datasets(chi, multi_dataset_feffit, engine):
    ref = multi_dataset_feffit
    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], share_e0=True, **WINDOW)
    df = exafs.fit_shells_global(chi, model, s02=S02, engine=engine).to_dataframe()
    p = ref.params
    for j in range(len(FRACTIONS)):
        for ours, theirs in (("cn_Cu-Cu", f"cn_cu_{j}"), ("cn_Cu-O", f"cn_o_{j}")):
            # the same optimum: both stop at ftol 1e-6 (measured < 1e-3 of the error bar);
            # error bars from the joint covariance: Larch's finite-difference Jacobian
            # against the analytic one (2 %)
            assert abs(df.loc[j, ours] - p[theirs].value) <= 0.01 * p[theirs].stderr, ours
            assert df.loc[j, f"{ours}_err"] == pytest.approx(p[theirs].stderr, rel=0.02)
    for ours, theirs in (("sigma2_Cu-Cu", "ss_cu"), ("sigma2_Cu-O", "ss_o"), ("de0_Cu-Cu", "de0")):
        assert (df[ours] == df.loc[0, ours]).all()                 # shared: one value
        assert abs(df.loc[0, ours] - p[theirs].value) <= 0.01 * p[theirs].stderr
        assert df.loc[0, f"{ours}_err"] == pytest.approx(p[theirs].stderr, rel=0.02)
    assert df.loc[0, "r_Cu-Cu"] - path_for_shell("Cu-Cu").reff == pytest.approx(
        p["dr_cu"].value, abs=0.01 * p["dr_cu"].stderr)
    # feffit's statistics of a multi-dataset fit: n_idp summed, every parameter counted
    assert df.loc[0, "n_idp"] == pytest.approx(ref.n_independent, rel=1e-12)
    assert df.loc[0, "n_varys"] == ref.nvarys == 2 * len(FRACTIONS) + 5
    assert df.loc[0, "chi_square"] == pytest.approx(ref.chi_square, rel=1e-4)
    assert df.loc[0, "redchi"] == pytest.approx(ref.chi2_reduced, rel=1e-4)
    assert df.loc[0, "r_factor"] == pytest.approx(ref.rfactor, rel=1e-4)


def test_global_fit_agrees_with_per_step_fits_where_they_are_well_determined(shared_data, chi):
    refs = mixtures.load_references(["cu_foil", "cuo"], data_dir=shared_data)
    fser, _ = mixtures.mix_series(refs, [[1.0, 0.0]], noise="qexafs", seed=99, energy_jitter=0.0)
    cal = exafs.calibrate_s02(exafs.remove_background(xanes.normalize(fser, e0="each")),
                              shell="Cu-Cu", cn=12, **WINDOW)
    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW)
    step = exafs.fit_shells(chi, model, foil=cal).to_dataframe()
    glob = exafs.fit_shells_global(chi, model, foil=cal).to_dataframe()
    # with sigma2 and dE0 of Cu-Cu from the foil the per-step CN(Cu-Cu) is well
    # determined (CN/err > 4) from x = 0.4 on; the global fit shares dR and the Cu-O
    # disorder and must agree within the per-step error bar
    well = (step["cn_Cu-Cu"] > 4 * step["cn_Cu-Cu_err"]).to_numpy()
    assert well.sum() >= 4
    diff = np.abs(glob["cn_Cu-Cu"] - step["cn_Cu-Cu"])[well]
    assert (diff <= step["cn_Cu-Cu_err"][well]).all(), diff
    # (the joint error bars are not smaller there: the joint reduced chi-square that
    # scales them includes the oxide-rich steps, which this two-shell model misfits)
    assert glob["fit_message"].str.contains("global fit of 5 steps").all()


def test_global_fit_refuses_what_it_cannot_do(chi):
    from operando.errors import ConfigError

    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW)
    with pytest.raises(ConfigError, match="shared"):
        exafs.fit_shells_global(chi, model, s02=S02, shared=("sigma", "r"))
    with pytest.raises(ConfigError, match="s02"):
        exafs.fit_shells_global(chi, model)
