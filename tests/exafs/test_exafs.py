"""operando.exafs against published numbers, xraylarch on the same input and truth tables."""

from __future__ import annotations

import json
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from operando import exafs
from operando.errors import ConfigError
from operando.exafs.engines.larch import _fit_robust, _fit_step
from operando.exafs.model import resolve_paths
from operando.feffpaths import path_for_shell
from operando.series import Series, default_conditions

K = 0.05 * np.arange(321)  # 0 .. 16 1/A, Larch's grid
S02_TRUE = 0.9
#: Gaussian noise (chi units) on synthetic chi(k).  k^2-weighted at k = 12 it
#: is 0.7, about the amplitude of the signal there: a realistic, not flattering
#: operando signal-to-noise ratio.
NOISE = 0.005

# Truth table of the synthetic steps: (label, CN, R (A), sigma2 (A^2), dE0 (eV)).
TRUTH = {
    "pure_cu_n": [("Cu-N", 4.0, 1.95, 0.004, 0.0)],
    "mixed": [("Cu-N", 2.0, 1.95, 0.004, 0.0), ("Cu-Cu", 4.0, 2.54, 0.008, 0.0)],
    "metal": [("Cu-Cu", 8.0, 2.54, 0.008, 0.0)],
}
CU_MODEL = dict(shells=["Cu-N", "Cu-Cu"], kmin=3.0, kmax=12.0, rmin=1.0, rmax=3.0)


# ------------------------------------------------------------------ helpers
def synthetic_chi(shells, seed):
    """chi(k) from the shipped paths with larch's path2chi, plus seeded noise."""
    from larch.xafs import feffpath, path2chi

    chi = np.zeros_like(K)
    for label, cn, r, sigma2, de0 in shells:
        path = path_for_shell(label)
        fp = feffpath(str(path.file), degen=1.0, s02=S02_TRUE * cn, deltar=r - path.reff,
                      sigma2=sigma2, e0=de0)
        path2chi(fp, k=K)
        chi += fp.chi
    return chi + np.random.default_rng(seed).normal(0.0, NOISE, K.size)


def chi_series_of(rows, conditions=None):
    rows = np.array(rows, dtype=float)
    n = len(rows)
    normalized = None
    if conditions is not None:
        series = Series(energy=np.arange(2.0), mu=np.zeros((n, 2)), conditions=conditions)
        normalized = types.SimpleNamespace(series=series)
    return exafs.ChiSeries(k=K.copy(), chi=rows, e0=np.zeros(n), edge_step=np.ones(n),
                           ok=np.ones(n, bool), reason=[""] * n, settings={},
                           normalized=normalized)


def read_foil(path):
    from larch.io import read_ascii

    data = read_ascii(str(path))
    mu = np.log(data.i0 / data.itrans)  # transmission, as the data README says
    return Series(energy=data.energy, mu=mu[None, :],
                  conditions=default_conditions(1, [path.name]))


def normalized_of(series):
    """operando.xanes.normalize when it exists, else the same numbers from larch's pre_edge."""
    try:
        from operando.xanes import normalize
    except ImportError:
        from larch import Group
        from larch.xafs import pre_edge

        group = Group()
        pre_edge(series.energy, series.mu[0], group=group)
        return types.SimpleNamespace(series=series, norm=group.norm[None], flat=group.flat[None],
                                     e0=np.array([group.e0]), edge_step=np.array([group.edge_step]),
                                     ok=np.array([True]), reason=[""], settings={})
    return normalize(series, e0="each", engine="larch")


@pytest.fixture(scope="module")
def cu_chi(shared_data):
    return exafs.remove_background(normalized_of(read_foil(shared_data / "references/cu_foil_rt.xdi")),
                                   rbkg=1.0, kweight=2, engine="larch")


@pytest.fixture(scope="module")
def synthetic_fit():
    """One series: pure Cu-N, mixed, a dead (NaN) step, pure Cu-N again, metal."""
    rows = [synthetic_chi(TRUTH["pure_cu_n"], 1), synthetic_chi(TRUTH["mixed"], 2),
            np.full(K.size, np.nan), synthetic_chi(TRUTH["pure_cu_n"], 3),
            synthetic_chi(TRUTH["metal"], 4)]
    model = exafs.ShellModel(**CU_MODEL)
    return exafs.fit_shells(chi_series_of(rows), model, s02=S02_TRUE)


# ------------------------------------------------- background and transform
def test_remove_background_is_larch_autobk(cu_chi, shared_data):
    from larch import Group
    from larch.xafs import autobk

    series = read_foil(shared_data / "references/cu_foil_rt.xdi")
    group = Group()
    autobk(series.energy, series.mu[0], group=group, rbkg=1.0, kweight=2,
           e0=cu_chi.e0[0], edge_step=cu_chi.edge_step[0])
    n = cu_chi.k.size
    # Same function on the same input: equal to rounding.
    np.testing.assert_allclose(cu_chi.chi[0], group.chi[:n], rtol=0, atol=1e-12)
    np.testing.assert_allclose(cu_chi.k, 0.05 * np.arange(n))
    assert cu_chi.ok.all()


def test_fourier_transform_is_larch_xftf(cu_chi):
    from larch import Group
    from larch.xafs import xftf

    rs = exafs.fourier_transform(cu_chi, kmin=3, kmax=14, dk=1, window="kaiser", kweight=2)
    group = Group()
    xftf(cu_chi.k, cu_chi.chi[0], group=group, kmin=3, kmax=14, dk=1, window="kaiser", kweight=2)
    np.testing.assert_allclose(rs.chir[0], group.chir, rtol=0, atol=1e-12)
    # The Cu-Cu first shell peak sits ~0.3 A below 2.55 A (phase shift).
    assert 2.0 < rs.r[np.argmax(rs.chir_mag[0])] < 2.4


def test_bad_step_in_background_is_flagged(shared_data):
    series = read_foil(shared_data / "references/cu_foil_rt.xdi")
    mu = np.vstack([series.mu[0], series.mu[0]])
    mu[1, 200:] = np.nan
    two = Series(energy=series.energy, mu=mu, conditions=default_conditions(2))
    norm = normalized_of(series)
    norm2 = types.SimpleNamespace(series=two, e0=np.repeat(norm.e0, 2),
                                  edge_step=np.repeat(norm.edge_step, 2), ok=np.ones(2, bool),
                                  reason=["", ""])
    chi = exafs.remove_background(norm2)
    assert chi.ok.tolist() == [True, False]
    assert "non-finite" in chi.reason[1]
    assert np.isnan(chi.chi[1]).all()


# ------------------------------------------------------- published / foils
def test_cu_foil_reproduces_published_first_shell(cu_chi, shared_data):
    expected = json.loads((shared_data / "expected/cu_foil_first_shell.json").read_text())
    tr = expected["transform"]
    cal = exafs.calibrate_s02(cu_chi, shell="Cu-Cu", cn=12, file=shared_data / "feff/feffcu01.dat",
                              kmin=tr["kmin"], kmax=tr["kmax"], kweight=tr["kweight"], dk=tr["dk"],
                              window=tr["window"], rmin=tr["rmin"], rmax=tr["rmax"])
    row = cal.fit
    got = {"amp": cal.s02, "del_e0_eV": row["de0_Cu-Cu"], "sig2_A2": row["sigma2_Cu-Cu"],
           "del_r_A": row["r_Cu-Cu"] - 2.5478}
    for key, value in got.items():
        published, error = expected["expected"][key]
        # The acceptance criterion: within one published error bar.
        assert abs(value - published) <= error, (key, value, published, error)
    # Our error bars are Larch's: equal to the published ones within 5 %.
    assert cal.s02_err == pytest.approx(expected["expected"]["amp"][1], rel=0.05)
    assert row["r_factor"] == pytest.approx(expected["expected"]["r_factor"], rel=0.05)
    assert row["n_idp"] == pytest.approx(expected["expected"]["n_independent"], abs=0.01)
    assert bool(row["fit_ok"])


def test_cu_foil_with_shipped_path(cu_chi):
    # k 3-12 1/A, R 1.46-3.06 A (calibrate_s02 default: reff-1.1 .. reff+0.5):
    # the first-shell peak only, k range where the foil is noise-free.
    cal = exafs.calibrate_s02(cu_chi, shell="Cu-Cu", cn=12, kmin=3, kmax=12)
    assert 0.80 <= cal.s02 <= 1.00
    assert abs(cal.fit["r_Cu-Cu"] - 2.54) <= 0.01
    assert cal.settings["paths"]["Cu-Cu"]["reff"] == pytest.approx(2.556, abs=1e-3)


def test_pt_foil_with_shipped_path(shared_data):
    chi = exafs.remove_background(normalized_of(read_foil(shared_data / "references/pt_foil_rt.xdi")))
    # k 3-16 1/A: Pt L3 data reach k ~18 with good S/N to 16; R 1.68-3.28 A
    # isolates the first Pt-Pt shell.
    cal = exafs.calibrate_s02(chi, shell="Pt-Pt", cn=12, kmin=3, kmax=16)
    assert 0.75 <= cal.s02 <= 1.00
    assert abs(cal.fit["r_Pt-Pt"] - 2.76) <= 0.02
    assert np.isfinite(cal.s02_err) and cal.s02_err < 0.1


# ------------------------------------------------------------ absent shells
def test_absent_metal_shell_is_consistent_with_zero(synthetic_fit):
    df = synthetic_fit.to_dataframe()
    for i in (0, 3):  # the pure Cu-N steps
        row = df.iloc[i]
        assert row["fit_ok"], row["fit_message"]
        cn, err = row["cn_Cu-Cu"], row["cn_Cu-Cu_err"]
        assert abs(cn) < 2 * err  # consistent with 0 at 2 sigma
        # A real bound on an absent shell: small CN with a finite, small error
        # (0.5 would be 1/8 of a bulk-like first shell of 4).
        assert np.isfinite(err) and 0 < err < 0.5 and abs(cn) < 1.0
        assert "Cu-Cu CN consistent with 0" in row["fit_message"]
        assert row["r_Cu-Cu"] == pytest.approx(path_for_shell("Cu-Cu").reff)  # dR held at 0
        assert abs(row["cn_Cu-N"] - 4.0) <= 1.0
        assert abs(row["r_Cu-N"] - 1.95) <= 0.02


def test_mixed_step_recovered(synthetic_fit):
    row = synthetic_fit.to_dataframe().iloc[1]
    assert row["fit_ok"], row["fit_message"]
    assert abs(row["cn_Cu-N"] - 2.0) <= 1.0
    assert abs(row["cn_Cu-Cu"] - 4.0) <= 1.0
    assert abs(row["r_Cu-Cu"] - 2.54) <= 0.02
    assert abs(row["sigma2_Cu-Cu"] - 0.008) <= 0.002


def test_absent_ligand_shell_in_metal_step(synthetic_fit):
    row = synthetic_fit.to_dataframe().iloc[4]
    assert row["fit_ok"], row["fit_message"]
    assert abs(row["cn_Cu-N"]) < 2 * row["cn_Cu-N_err"]
    # CN 8 at this noise has an error bar near 1: recovered within 2 sigma.
    assert abs(row["cn_Cu-Cu"] - 8.0) <= 2 * row["cn_Cu-Cu_err"]


def test_dead_step_is_flagged_and_the_rest_complete(synthetic_fit):
    df = synthetic_fit.to_dataframe()
    assert df["step"].tolist() == [0, 1, 2, 3, 4]
    assert df["fit_ok"].tolist() == [True, True, False, True, True]
    assert "not finite" in df.loc[2, "fit_message"]
    assert list(df.columns[:9]) == ["step", "cn_Cu-N", "cn_Cu-N_err", "r_Cu-N", "r_Cu-N_err",
                                    "sigma2_Cu-N", "sigma2_Cu-N_err", "de0_Cu-N", "de0_Cu-N_err"]
    for col in ("s02", "r_factor", "redchi", "n_idp", "n_varys", "fit_ok", "fit_message"):
        assert col in df.columns


def test_same_numbers_as_a_hand_written_larch_fit(synthetic_fit):
    """The mixed step with a plain feffit script: our wrapper adds nothing but bounds."""
    from larch import Group
    from larch.fitting import param, param_group
    from larch.xafs import feffit, feffit_dataset, feffit_transform, feffpath

    pars = param_group(de0=param(0.0, vary=True), cn_n=param(4.0, vary=True),
                       cn_cu=param(8.0, vary=True), dr_n=param(0.0, vary=True),
                       dr_cu=param(0.0, vary=True), ss_n=param(0.005, vary=True),
                       ss_cu=param(0.007, vary=True))
    paths = [feffpath(str(path_for_shell("Cu-N").file), label="n", degen=1, s02="0.9*cn_n",
                      e0="de0", deltar="dr_n", sigma2="ss_n"),
             feffpath(str(path_for_shell("Cu-Cu").file), label="cu", degen=1, s02="0.9*cn_cu",
                      e0="de0", deltar="dr_cu", sigma2="ss_cu")]
    tr = feffit_transform(kmin=3, kmax=12, kw=2, dk=1, window="hanning", rmin=1.0, rmax=3.0)
    data = Group(k=K, chi=synthetic_chi(TRUTH["mixed"], 2))
    out = feffit(pars, feffit_dataset(data=data, paths=paths, transform=tr))
    row = synthetic_fit.to_dataframe().iloc[1]
    # Same minimum from different starts: agree within 1 % of each error bar.
    for ours, theirs in (("cn_Cu-N", "cn_n"), ("cn_Cu-Cu", "cn_cu"), ("sigma2_Cu-Cu", "ss_cu"),
                         ("de0_Cu-N", "de0")):
        p = out.params[theirs]
        assert abs(row[ours] - p.value) <= 0.01 * p.stderr, ours
        assert row[f"{ours}_err"] == pytest.approx(p.stderr, rel=0.01)
    assert row["r_factor"] == pytest.approx(out.rfactor, rel=1e-3)


# ------------------------------------------------------------- options / API
def test_retry_rescues_a_bad_start():
    chi = chi_series_of([synthetic_chi(TRUTH["mixed"], 2)])
    model = exafs.ShellModel(**CU_MODEL)
    paths = resolve_paths(model)
    # A start pinned against every bound lands on a bad local minimum.
    bad = {"Cu-N": {"cn": 15.0, "dr": 0.24, "sigma2": 0.029, "de0": 9.5},
           "Cu-Cu": {"cn": 0.3, "dr": -0.24, "sigma2": 0.0011, "de0": 9.5}}
    plain = _fit_step(K, chi.chi[0], model, paths, s02=S02_TRUE, start=bad)
    assert not plain["fit_ok"] and "at bound" in plain["fit_message"]  # the trap is real
    row = _fit_robust(K, chi.chi[0], model, paths, S02_TRUE, bad,
                      dict(retries=4, rfactor_max=0.05, redchi_max=float("inf")))
    assert row["fit_ok"], row["fit_message"]
    assert abs(row["cn_Cu-Cu"] - 4.0) <= 1.0


def test_executor_gives_the_serial_result():
    rows = [synthetic_chi(TRUTH["mixed"], s) for s in (5, 6, 7)]
    model = exafs.ShellModel(**CU_MODEL)
    serial = exafs.fit_shells(chi_series_of(rows), model, s02=S02_TRUE, warm_start=False)
    with ThreadPoolExecutor(2) as pool:
        parallel = exafs.fit_shells(chi_series_of(rows), model, s02=S02_TRUE, warm_start=False,
                                    executor=pool, chunk_size=1)
    pd.testing.assert_frame_equal(serial.to_dataframe(), parallel.to_dataframe())


def test_merge_repeats_averages_consecutive_equal_conditions():
    rows = [synthetic_chi(TRUTH["pure_cu_n"], s) for s in (11, 12)] + \
           [synthetic_chi(TRUTH["metal"], 13)]
    conditions = default_conditions(3)
    conditions["potential_V"] = [0.1, 0.1, -0.5]
    res = exafs.fit_shells(chi_series_of(rows, conditions), exafs.ShellModel(**CU_MODEL),
                           s02=S02_TRUE, merge_repeats="potential_V")
    df = res.to_dataframe()
    assert df["step"].tolist() == [0, 2]
    assert df["merged_steps"].tolist() == ["0,1", "2"]
    np.testing.assert_allclose(res.data_chi[0], np.mean(rows[:2], axis=0))
    assert abs(df.loc[0, "cn_Cu-N"] - 4.0) <= 1.0


def test_segment_fit_shares_distances():
    rows = [synthetic_chi(TRUTH["mixed"], 21), synthetic_chi(TRUTH["metal"], 22)]
    res = exafs.fit_shells_global(chi_series_of(rows), exafs.ShellModel(**CU_MODEL),
                                  s02=S02_TRUE, shared=("r", "sigma2", "de0"), engine="larch")
    df = res.to_dataframe()
    assert df["fit_ok"].all()
    assert df.loc[0, "r_Cu-Cu"] == df.loc[1, "r_Cu-Cu"]  # shared: one parameter
    assert abs(df.loc[0, "cn_Cu-Cu"] - 4.0) <= 1.0 and abs(df.loc[1, "cn_Cu-Cu"] - 8.0) <= 1.0
    assert abs(df.loc[0, "cn_Cu-N"] - 2.0) <= 1.0 and abs(df.loc[1, "cn_Cu-N"]) <= 1.0


def test_report_plot_settings(synthetic_fit):
    text = synthetic_fit.report(1)
    assert "step 1" in text and "cn_cu_cu" in text and "+/-" in text
    assert "fits ok: 4/5" in synthetic_fit.report()
    fig = synthetic_fit.plot(1)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    settings = synthetic_fit.settings
    assert settings["s02"] == S02_TRUE and settings["model"]["kmax"] == 12.0
    assert settings["paths"]["Cu-N"]["file"].endswith(".dat")
    assert settings["paths"]["Cu-N"]["reff"] == pytest.approx(1.95, abs=1e-3)


def test_config_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match="did you mean 'kmax'"):
        exafs.ShellModel.from_config({"shells": ["Pt-O"], "kmx": 12})
    with pytest.raises(ConfigError, match="did you mean 'distance'"):
        exafs.ShellModel.from_config({"shells": [{"label": "Pt-O", "distanse": 2.0}]})
    model = exafs.ShellModel.from_config({"shells": ["Pt-O", {"label": "Pt-Pt", "cn": 6}],
                                          "kmax": 11})
    assert model.labels == ["Pt-O", "Pt-Pt"] and model.kmax == 11
    with pytest.raises(ConfigError, match="fit_space"):
        exafs.ShellModel(fit_space="x")
    with pytest.raises(ConfigError, match="s02"):
        exafs.fit_shells(chi_series_of([synthetic_chi(TRUTH["metal"], 1)]),
                         exafs.ShellModel(**CU_MODEL), s02=-1)
