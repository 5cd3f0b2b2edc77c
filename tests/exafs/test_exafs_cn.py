"""Coordination numbers on real spectra (issue #13): Cu foil + CuO mixtures built from the
measured references in ../shared/data (operando.mixtures), fitted through the package.

Truth: CN(Cu-Cu) of the metal = 12 x the metal fraction (the Cu...Cu of CuO at 2.9-3.2 A
is not metallic).  Noise 0.003 (0.3 % of the edge step, the issues' level), energy
jitter 0, fractions 0 .. 1.  Tolerances are from the acceptance of the issue and from
the numbers measured over 5 seeds (README, "Physics defaults, and why"); each test
says which.
"""

from __future__ import annotations

import numpy as np
import pytest

from operando import exafs, mixtures, xanes

FRACTIONS = (0.0, 0.1, 0.25, 0.4, 0.6, 0.8, 1.0)
TRUTH = 12 * np.array(FRACTIONS)
#: The issue's plain configuration.
WINDOW = dict(kmin=3.0, kmax=12.0, rmin=1.0, rmax=3.0, kweight=2, dk=1.0, window="hanning")
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def refs(shared_data):
    return mixtures.load_references(["cu_foil", "cuo"], data_dir=shared_data)


@pytest.fixture(scope="module")
def mixes(refs):
    """chi(k) of the 7 fractions for each seed (one E0 for the series, as the default)."""
    out = []
    for seed in SEEDS:
        series, _ = mixtures.mix_series(refs, [[x, 1 - x] for x in FRACTIONS], noise=0.003,
                                        seed=seed, energy_jitter=0.0)
        out.append(exafs.remove_background(xanes.normalize(series, e0="first"), rbkg=1.0))
    return out


@pytest.fixture(scope="module")
def foil(refs):
    """The Cu foil, measured apart (its own noise), calibrated in the sample's window."""
    series, _ = mixtures.mix_series(refs, [[1.0, 0.0]], noise="qexafs", seed=99,
                                    energy_jitter=0.0)
    chi = exafs.remove_background(xanes.normalize(series, e0="each"), rbkg=1.0)
    return exafs.calibrate_s02(chi, shell="Cu-Cu", cn=12, **WINDOW)


@pytest.fixture(scope="module")
def oxide_shells(refs, foil):
    """CuO's outer shells from a FEFF run on the tenorite cell, their disorder from a fit
    of a separately measured CuO spectrum (the reference phase)."""
    from operando.exafs import phases

    series, _ = mixtures.mix_series(refs, [[0.0, 1.0]], noise="qexafs", seed=98,
                                    energy_jitter=0.0)
    chi = exafs.remove_background(xanes.normalize(series, e0="first"), rbkg=1.0)
    paths = phases.phase_paths(phases.cluster(phases.CUO_CELL, phases.CUO_SITES, absorber="Cu"))
    outer = phases.tied_shells(paths, ligand="Cu-O", ligand_cn=4, tag="ox")
    outer, ref = phases.fit_phase_reference(chi, "Cu-O", outer, s02=foil.s02, ligand_cn=4,
                                            **WINDOW)
    return outer, ref


def fit_all(mixes, model, foil, engine="fast"):
    return [exafs.fit_shells(chi, model, foil=foil, engine=engine).to_dataframe()
            for chi in mixes]


@pytest.fixture(scope="module")
def default_fits(mixes, foil):
    return fit_all(mixes, exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW), foil)


def cn_of(fits, col="cn_Cu-Cu"):
    return np.array([f[col].to_numpy() for f in fits])


# ------------------------------------------------------------------ the foil
def test_foil_calibration_in_the_sample_window(foil):
    # Cu foil at room temperature: S0^2 0.85-0.95 and sigma2 0.0085-0.0088 A^2 are what
    # the published fit (xraylarch doc_feffit1: 0.93 +/- 0.04, 0.00867 +/- 0.0003) and
    # the research fit in k 3-12, R 1-3 (0.879, 0.0085) give; the mixture's foil is the
    # same measurement on the mixture grid.
    assert 0.85 <= foil.s02 <= 0.95 and foil.s02_err < 0.06
    assert foil.sigma2 == pytest.approx(0.00865, abs=0.0003)
    assert abs(foil.deltar) < 0.03
    assert foil.window["rmin"] == 1.0 and foil.window["rmax"] == 3.0
    # the energy origin of the metal path: Cu K edge (8979 eV) + a few eV
    assert 8979.0 < foil.edge_energy < 8990.0


# ------------------------------------------------------- acceptance (defaults)
def test_default_two_shell_fit_meets_the_acceptance(default_fits):
    """The issue's plain config with a [foil] foil: sigma2 and dE0 of Cu-Cu from the
    foil (the defaults of apply_foil)."""
    cn = cn_of(default_fits)
    err = cn_of(default_fits, "cn_Cu-Cu_err")
    limit = cn_of(default_fits, "cn_Cu-Cu_limit")
    bias = cn - TRUTH
    # the acceptance: within 1.0 of the truth at the highest fraction, within 1.5
    # everywhere -- per seed (measured over 5 seeds: |bias| <= 0.59, x = 1 <= 0.54)
    assert np.all(np.abs(bias[:, -1]) <= 1.0), bias[:, -1]
    assert np.all(np.abs(bias) <= 1.5), bias
    # zero metal: consistent with 0 (within 2 sigma) and below its detection limit
    assert np.all(np.abs(cn[:, 0]) <= 2 * err[:, 0])
    assert np.all(cn[:, 0] < limit[:, 0])
    # metal-rich steps stand out of their noise: CN above the detection limit
    assert np.all(cn[:, 3:] > limit[:, 3:])
    # the mean over seeds: measured max |bias| 0.40 over 5 seeds
    assert np.abs(bias.mean(axis=0)).max() <= 0.7


def test_default_zero_metal_is_not_significant_and_metal_is(default_fits):
    sig = np.array([f["sig_Cu-Cu"].to_numpy() for f in default_fits])
    p = cn_of(default_fits, "p_Cu-Cu")
    assert not sig[:, 0].any()                # never significant at x = 0 (research: 0/5)
    assert sig[:, 3:].all() and np.all(p[:, 4:] < 1e-3)   # CN >= 4.8: clearly there
    # the column is exactly the rule: p < 0.05 on the F-test and a positive free CN
    assert np.all(sig <= (p < 0.05))


def test_s02_error_is_added_to_the_cn_error(default_fits, foil):
    f = default_fits[0]
    rel = foil.s02_err / foil.s02
    expected = np.hypot(f["cn_Cu-Cu_err"], f["cn_Cu-Cu"] * rel)
    np.testing.assert_allclose(f["cn_Cu-Cu_err_s02"], expected, rtol=1e-12)
    assert (f["s02_err"] == foil.s02_err).all()
    assert f["cn_Cu-Cu_err_s02"].iloc[-1] > 1.5 * f["cn_Cu-Cu_err"].iloc[-1]  # 12 x 5 % > stat


def test_sigma2_free_model_is_biased_and_the_foil_fixes_it(mixes, foil, default_fits):
    """Why sigma2 comes from the foil: free, CN and sigma2 trade off (issue: ~25 % low in
    the middle of the trend); the research measured -2.0 at x = 0.4."""
    free = exafs.fit_shells(mixes[0], exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW),
                            s02=foil.s02).to_dataframe()
    bias_free = free["cn_Cu-Cu"].to_numpy() - TRUTH
    bias_ref = cn_of(default_fits)[0] - TRUTH
    assert bias_free[3] < -1.5                 # x = 0.4 reads about 2.7 instead of 4.8
    assert np.abs(bias_ref).max() < np.abs(bias_free).max() - 1.0


def test_absent_shell_rule_does_not_create_significance(mixes, foil):
    """sigma2 free (no foil): at x = 0.1 the absent-shell refit (dR, sigma2 pinned) reads
    CN(Cu-Cu) about 2.0 +/- 0.7, i.e. "> 2 sigma"; the F-test on the free fit says the
    shell does not improve the fit significantly, so it is not reported present."""
    fit = exafs.fit_shells(mixes[0], exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW),
                           s02=foil.s02).to_dataframe()
    row = fit.iloc[1]
    assert "Cu-Cu CN consistent with 0" in row["fit_message"]
    assert row["cn_Cu-Cu"] > 2 * row["cn_Cu-Cu_err"]        # the pinned refit alone
    assert row["p_Cu-Cu"] > 0.05 and not row["sig_Cu-Cu"]


# ----------------------------------------------------- the reference phase
def test_reference_phase_fit_of_cuo(oxide_shells):
    outer, ref = oxide_shells
    row = ref.table.iloc[0]
    assert row["fit_quality"] == "good" and row["r_factor"] < 0.03
    labels = [s["label"] for s in outer]
    assert labels == ["Cu-O_ox1", "Cu-Cu_ox1", "Cu-Cu_ox2", "Cu-Cu_ox3"]
    # crystal CNs per 4 short Cu-O: 2 long O, 4 + 4 + 2 Cu
    assert [s["cn"] for s in outer] == ["0.5 * Cu-O", "1 * Cu-O", "1 * Cu-O", "0.5 * Cu-O"]
    by = {s["label"]: s for s in outer}
    # CuO at 13 K: little disorder, distances within 0.1 A of the crystal's
    assert 0.001 < by["Cu-Cu_ox1"]["sigma2"] < 0.006
    assert all(abs(s["deltar"]) < 0.1 for s in outer)
    # 3.08 and 3.17 A were fitted with one sigma2 and dR (tied_shells' share_within)
    assert by["Cu-Cu_ox3"]["sigma2"] == by["Cu-Cu_ox2"]["sigma2"]
    assert by["Cu-Cu_ox3"]["deltar"] == by["Cu-Cu_ox2"]["deltar"]
    assert all("edge" in s["de0"] for s in outer)      # dE0 held at the oxide's origin


def test_oxide_outer_shells_get_closer(mixes, foil, oxide_shells, default_fits):
    outer, _ = oxide_shells
    fits = fit_all(mixes, exafs.ShellModel(shells=["Cu-O", "Cu-Cu", *outer], **WINDOW), foil)
    cn = cn_of(fits)
    bias = cn - TRUTH
    # measured over 5 seeds: mean max |bias| 0.23 (default 0.40), per seed <= 0.6
    assert np.abs(bias.mean(axis=0)).max() <= 0.4
    assert np.all(np.abs(bias) <= 1.0)
    # the oxide's own Cu...Cu no longer hides a metal CN of ~1.3 +/- 1.3 at x = 0:
    # error bars shrink ~3x and the detection limit from ~2.5 to below 1.2
    err0 = cn_of(fits, "cn_Cu-Cu_err")[:, 0]
    assert np.all(err0 < 0.6 * cn_of(default_fits, "cn_Cu-Cu_err")[:, 0])
    assert np.all(cn_of(fits, "cn_Cu-Cu_limit")[:, 0] < 1.2)
    # and the R-factor of the oxide-rich steps is acceptable again (< 0.05)
    assert np.all(cn_of(fits, "r_factor")[:, 0] < 0.05)
    assert np.all(cn_of(default_fits, "r_factor")[:, 0] > 0.1)


# --------------------------------------------------------- both engines agree
def test_larch_engine_gives_the_same_cn_limit_and_p(mixes, foil):
    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW)
    chi = mixes[0]
    sub = exafs.ChiSeries(k=chi.k, chi=chi.chi[[1, 3, 6]], e0=chi.e0[[1, 3, 6]],
                          edge_step=chi.edge_step[[1, 3, 6]], ok=chi.ok[[1, 3, 6]],
                          reason=[chi.reason[i] for i in (1, 3, 6)], settings=chi.settings)
    fast = exafs.fit_shells(sub, model, foil=foil, engine="fast").to_dataframe()
    slow = exafs.fit_shells(sub, model, foil=foil, engine="larch").to_dataframe()
    for col in ("cn_Cu-Cu", "cn_Cu-O", "cn_Cu-Cu_limit"):
        # same model, both minimisers stop at ftol 1e-6: far inside the error bars
        np.testing.assert_allclose(fast[col], slow[col], atol=0.02 * slow["cn_Cu-Cu_err"].max())
    np.testing.assert_allclose(fast["cn_Cu-Cu_err"], slow["cn_Cu-Cu_err"], rtol=0.02)
    # p-values: the same F statistic from both engines' refits (p < 0.5 here)
    np.testing.assert_allclose(fast["p_Cu-Cu"], slow["p_Cu-Cu"], rtol=0.05, atol=1e-6)
    assert (fast["sig_Cu-Cu"] == slow["sig_Cu-Cu"]).all()


# ----------------------------------------------------------- through a run
def test_run_with_the_plain_config_meets_the_acceptance(shared_data, tmp_path):
    """``operando run`` with the issue's config on the Cu potential program (CuO only,
    metal growing to 0.8, back to CuO at OCP), 0.3 % noise, real foil file written by
    the mixtures module, [normalize] calibrate on."""
    import pandas as pd

    import operando

    series, truth = mixtures.cu_potential_series(repeats=1, noise=0.003, seed=5,
                                                 data_dir=shared_data)
    mixtures.write_folder(series, truth, tmp_path / "series")
    refs = mixtures.load_references(["cu_foil", "cuo"], data_dir=shared_data)
    fser, ftruth = mixtures.mix_series(refs, [[1.0, 0.0]], noise="qexafs", seed=99)
    mixtures.write_folder(fser, ftruth, tmp_path / "foil")
    config = {
        "series": {"source": str(tmp_path / "series"), "pattern": "*.xdi",
                   "conditions": str(tmp_path / "series" / "conditions.csv")},
        "normalize": {"calibrate": True},
        "foil": {"file": str(next((tmp_path / "foil").glob("*.xdi")))},
        "exafs": {"shells": ["Cu-O", "Cu-Cu"], "kmin": 3, "kmax": 12, "rmin": 1, "rmax": 3},
        "output": {"dir": str(tmp_path / "out"), "plots": [], "report": False},
        "run": {"workers": 1},
    }
    operando.run(config)
    steps = pd.read_csv(tmp_path / "out" / "steps.csv")
    true_cn = truth.set_index("step").loc[steps["step"], "cn_Cu-Cu_metal"].to_numpy()
    bias = steps["cn_Cu-Cu"].to_numpy() - true_cn
    assert np.abs(bias[np.argmax(true_cn)]) <= 1.0 and np.all(np.abs(bias) <= 1.5), bias
    zero = true_cn == 0
    assert np.all(np.abs(steps.loc[zero, "cn_Cu-Cu"]) <= 2 * steps.loc[zero, "cn_Cu-Cu_err"])
    assert np.all(steps.loc[zero, "cn_Cu-Cu"] < steps.loc[zero, "cn_Cu-Cu_limit"])
    assert not steps.loc[zero, "sig_Cu-Cu"].any()
    import json

    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    cu = settings["resolved"]["shells"][1]
    assert cu["label"] == "Cu-Cu" and isinstance(cu["sigma2"], float) and "edge" in cu["de0"]
    assert settings["resolved"]["foil_values"]["shell"] == "Cu-Cu"
