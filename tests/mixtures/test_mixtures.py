"""operando.mixtures: series mixed from the real references in ../shared/data, with truth."""

import numpy as np
import pandas as pd
import pytest

import operando
from operando import mixtures as mx
from operando.errors import ConfigError, DataError, ReadError

ETOK = 0.26246842396479836


@pytest.fixture(scope="module")
def cu(shared_data):
    return mx.load_references(["cu_foil", "cuo"], data_dir=shared_data)


@pytest.fixture(scope="module")
def fe(shared_data):
    return mx.load_references(["fe_foil", "feo", "fe2o3", "fe3o4"], data_dir=shared_data)


def _exafs(refs):
    return (refs.energy - refs.e0) * ETOK >= 9.0          # k >= 3 A^-1


# ---------------------------------------------------------------- references
def test_references_energy_scale_grid_and_policy(cu, fe):
    s = cu.summary.set_index("name")
    assert s.loc["cu_foil", "calibration"].startswith("self")
    assert s.loc["cuo", "calibration"].startswith("reference channel")
    assert (fe.summary.set_index("name").loc[["feo", "fe2o3", "fe3o4"], "energy_shift"] == 0).all()
    # CuO's irefer edge is 0.15 eV from 8979, the Cu foil file's own edge 1.5 eV below
    assert abs(s.loc["cuo", "energy_shift"]) < 0.5 and abs(s.loc["cu_foil", "energy_shift"]) < 3
    assert cu.e0 == 8979.0 and fe.e0 == 7112.0
    rel = cu.energy - cu.e0
    edge = (rel >= -30) & (rel < 50)
    np.testing.assert_allclose(np.diff(cu.energy[edge]), 0.5, atol=1e-3)
    k = np.sqrt(rel[rel > 50] * ETOK)
    np.testing.assert_allclose(np.diff(k), 0.05, atol=1e-4)   # energies rounded to 1 meV
    # the overlap ends with CuO's last point (9638.9 eV) less the 5 eV margin: k = 13.1
    assert cu.k_range[1] == pytest.approx(13.10, abs=0.02)
    assert cu.normalization == dict(e0=8979.0, pre1=-150.0, pre2=-30.0, norm1=150.0,
                                    norm2=650.0, nnorm=2)
    np.testing.assert_allclose(cu.norm_at(cu.energy), cu.norm, atol=1e-12)


@pytest.mark.parametrize("element", ["cu", "fe"])
def test_foil_edge_sits_on_the_tabulated_energy(cu, fe, element):
    # a generated reference channel with no shift must calibrate to nothing: the foil's
    # shift is refined on the common grid (calibrate's edge of the Fe foil moves by
    # 0.085 eV between the file's 0.1 eV grid and the 0.5 eV grid; of the Cu foil by 0.002)
    refs = cu if element == "cu" else fe
    series, _ = mx.mix_series(refs, np.eye(len(refs.names)), energy_jitter=0.0)
    _, shifts = operando.calibrate(series)
    assert np.abs(shifts).max() < 0.01


def test_mixture_is_linear_in_the_real_references_normalised_by_larch(cu, shared_data):
    # each file normalised by xraylarch's pre_edge on its own grid with the recorded policy,
    # interpolated linearly: differs from the grid normalisation by <= 0.006 at the edge
    # (linear vs makima interpolation of 0.5 eV data) and <= 0.003 elsewhere (pre-edge line
    # fitted to the file's points, not the grid's)
    from larch import Group
    from larch.xafs import pre_edge

    kw = cu.normalization
    larch_norm = []
    for _, row in cu.summary.iterrows():
        raw = operando.read_series(shared_data / mx.SHORTHANDS[row["name"]][0])
        group = Group(energy=raw.energy + row["energy_shift"], mu=raw.mu[0])
        pre_edge(group, **kw)
        larch_norm.append(np.interp(cu.energy, group.energy, group.norm))
    fractions = np.array([[0.5, 0.5], [0.2, 0.8]])
    series, _ = mx.mix_series(cu, fractions, noise=0.0)
    got = operando.normalize(series, **kw).norm
    np.testing.assert_allclose(got, fractions @ np.array(larch_norm), atol=0.01)


def test_raw_mu_is_the_documented_model_plus_noise(cu):
    fractions = np.array([[1.0, 0.0], [0.35, 0.65], [0.0, 1.0]])
    series, truth = mx.mix_series(cu, fractions, repeats=10, noise=0.003, noise_model="white",
                                  seed=4)
    expected = (truth["pre_offset"].to_numpy()[:, None]
                + truth["pre_slope"].to_numpy()[:, None] * (cu.energy - cu.e0)
                + truth["edge_step"].to_numpy()[:, None]
                * (truth[["frac_cu_foil", "frac_cuo"]].to_numpy() @ cu.norm))
    resid = (series.mu - expected) / truth["edge_step"].to_numpy()[:, None]
    n = resid.size
    # white noise of sd 0.003: the mean of n values is within 4 sd/sqrt(n) of 0, the rms
    # within 5 % (relative sd of an rms of n ~ 13,000 values is 0.6 %)
    assert abs(resid.mean()) < 4 * 0.003 / np.sqrt(n)
    assert np.sqrt(np.mean(resid ** 2)) == pytest.approx(0.003, rel=0.05)


def test_noise_free_mixture_normalises_back(cu):
    fractions = np.array([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]])
    series, truth = mx.mix_series(cu, fractions, repeats=2, noise=0.0, seed=2)
    expected = cu.mix(truth)
    # the recorded policy: exact (same E0, same ranges, linear pre-edge line)
    got = operando.normalize(series, **cu.normalization).norm
    np.testing.assert_allclose(got, expected, atol=1e-9)
    # E0 found on the first spectrum (Cu foil: 8979.0 exactly) with the recorded ranges
    ranges = {k: v for k, v in cu.normalization.items() if k != "e0"}
    first = operando.normalize(series, e0="first", **ranges)
    assert first.e0[0] == 8979.0
    np.testing.assert_allclose(first.norm, expected, atol=1e-9)
    # CuO first: find_e0 gives 8983.5 eV, so the edge step is taken 4.5 eV higher on a
    # sloped post-edge line: measured up to 0.019 (pure foil row); state tolerance 0.025
    oxide_first = operando.normalize(series.take([5, 4, 3, 2, 1, 0]), e0="first", **ranges)
    assert oxide_first.e0[0] == pytest.approx(8983.5, abs=1.0)
    np.testing.assert_allclose(oxide_first.norm, expected[::-1], atol=0.025)


def test_energy_jitter_is_recovered_by_calibrate(cu):
    series, truth = mx.mix_series(cu, [[0.6, 0.4], [0.1, 0.9]], repeats=15, noise="qexafs",
                                  energy_jitter=1.0, seed=7)
    assert truth["energy_shift"].std() > 0.5
    _, shifts = operando.calibrate(series)
    # measured: max error 0.055 eV (calibrate's resolution on the 0.5 eV grid)
    np.testing.assert_allclose(shifts, truth["energy_shift"], atol=0.1)


@pytest.mark.parametrize("model", ["counting", "white"])
def test_noise_level_is_the_requested_one(cu, model):
    fractions = np.array([[1.0, 0.0], [0.4, 0.6], [0.0, 1.0]])
    noisy, truth = mx.mix_series(cu, fractions, repeats=8, noise=0.003, noise_model=model, seed=9)
    clean, _ = mx.mix_series(cu, fractions, repeats=8, noise=0.0, noise_model=model, seed=9)
    region = _exafs(cu)
    # (1) the noise actually added, in edge-step units: rms over k >= 3 is the definition;
    # 24 scans x 190 points -> the rms is good to ~1 %, allow 5 %
    added = (noisy.mu - clean.mu)[:, region] / truth["edge_step"].to_numpy()[:, None]
    assert np.sqrt(np.mean(added ** 2)) == pytest.approx(0.003, rel=0.05)
    # (2) what a user measures on the normalised noisy series alone (estimator of the
    # module, 6th differences in k): the references' own noise (1-2.4e-4) adds < 0.5 %
    norm = operando.normalize(noisy, **cu.normalization)
    measured = mx.estimate_noise(norm.energy, norm.norm, cu.e0)
    assert np.mean(measured) == pytest.approx(0.003, rel=0.10)
    pre = (cu.energy - cu.e0) < -30
    pre_sd = np.sqrt(np.mean(((noisy.mu - clean.mu)[:, pre]) ** 2))
    post_sd = np.sqrt(np.mean(((noisy.mu - clean.mu)[:, region]) ** 2))
    if model == "counting":       # var = (1 + e^mu)/N0: mu ~0.5 below, ~1.5 above the edge
        assert pre_sd < 0.8 * post_sd
    else:
        assert pre_sd == pytest.approx(post_sd, rel=0.1)


def test_qexafs_preset_is_the_measured_real_scan(shared_data):
    raw = operando.read_series(shared_data / "series" / "ru_k_foil_qas_nsls2.dat")
    # the first and last bins are partial (i0 at half and a sixth of its level): dropped
    raw = raw.replace(energy=raw.energy[1:-1], mu=raw.mu[:, 1:-1], reference=None)
    norm = operando.normalize(raw, e0="each")
    measured = mx.estimate_noise(norm.energy, norm.norm[0], norm.e0[0])
    assert mx.NOISE_PRESETS["qexafs"] == pytest.approx(measured, rel=0.03)
    assert mx.MEASURED_NOISE["ru_k_foil_qas_nsls2 (QEXAFS, 30 s)"][0] == pytest.approx(measured, rel=0.03)


def test_estimator_on_pure_white_noise():
    rng = np.random.default_rng(0)
    energy = 8979.0 + (0.05 * np.arange(60, 300)) ** 2 / ETOK
    smooth = 0.3 * np.sin(2 * 2.5 * np.sqrt((energy - 8979.0) * ETOK))  # 2.5 A shell
    noisy = smooth + 0.002 * rng.standard_normal((20, energy.size))
    # 20 x 234 residuals: rms good to ~1.5 %; the shell leaks < 1e-5 at 6th order
    assert np.mean(mx.estimate_noise(energy, noisy, 8979.0)) == pytest.approx(0.002, rel=0.04)
    assert mx.estimate_noise(energy, smooth, 8979.0) < 1e-4


# ---------------------------------------------------------------- determinism
def test_same_seed_same_output_other_seed_other_noise(cu):
    args = dict(repeats=3, noise=0.002, energy_jitter=0.3)
    a, ta = mx.mix_series(cu, [[0.2, 0.8]], seed=11, **args)
    b, tb = mx.mix_series(cu, [[0.2, 0.8]], seed=11, **args)
    c, tc = mx.mix_series(cu, [[0.2, 0.8]], seed=12, **args)
    np.testing.assert_array_equal(a.mu, b.mu)
    np.testing.assert_array_equal(a.reference, b.reference)
    pd.testing.assert_frame_equal(ta, tb)
    assert not np.allclose(a.mu, c.mu) and not np.allclose(ta["energy_shift"], tc["energy_shift"])
    # the noise stream is separate: a noise-free twin has the same truth (but flux)
    _, td = mx.mix_series(cu, [[0.2, 0.8]], seed=11, **{**args, "noise": 0.0})
    same = [col for col in ta.columns if col not in ("noise", "i0_flux")]
    pd.testing.assert_frame_equal(ta[same], td[same])


# ---------------------------------------------------------------- truth table
def test_truth_columns_and_cn(cu):
    series, truth = mx.mix_series(cu, [[0.25, 0.75], [1.0, 0.0]], repeats=2,
                                  conditions=pd.DataFrame({"gas": ["He", "H2"]}))
    assert list(truth.columns[:5]) == ["step", "file", "gas", "time_s", "repeat"]
    assert truth["repeat"].tolist() == [0, 1, 0, 1]
    assert series.conditions["gas"].tolist() == ["He", "He", "H2", "H2"]
    np.testing.assert_allclose(truth["cn_Cu-Cu_metal"], 12 * truth["frac_cu_foil"])
    np.testing.assert_allclose(truth["cn_Cu-O"], 4 * truth["frac_cuo"])
    for column in ("energy_shift", "edge_step", "pre_offset", "pre_slope", "i0_flux", "noise"):
        assert column in truth
    # a truth table is a valid fractions table: same fractions and conditions, one row each
    again, truth2 = mx.mix_series(cu, truth, seed=3)
    assert list(again.conditions.columns) == ["step", "file", "gas", "time_s"]
    pd.testing.assert_frame_equal(truth2[["gas", "time_s", "frac_cuo"]],
                                  truth[["gas", "time_s", "frac_cuo"]])


# ---------------------------------------------------------------- bad input
def test_bad_fractions_are_config_errors(cu):
    with pytest.raises(ConfigError, match="row 1 sums to 0.9"):
        mx.mix_series(cu, [[0.5, 0.5], [0.5, 0.4]])
    with pytest.raises(ConfigError, match="cuo = -0.2 is negative"):
        mx.mix_series(cu, [[1.2, -0.2]])
    with pytest.raises(ConfigError, match=r"shape \(n_steps, 2\)"):
        mx.mix_series(cu, [[0.2, 0.3, 0.5]])
    with pytest.raises(ConfigError, match="frac_cu_foil"):
        mx.mix_series(cu, pd.DataFrame({"frac_cu": [1.0]}))
    with pytest.raises(ConfigError, match="2 rows"):
        mx.mix_series(cu, [[1, 0]], conditions=pd.DataFrame({"gas": ["He", "H2"]}))
    with pytest.raises(ConfigError, match="energy_jitter"):
        mx.mix_series(cu, [[1, 0]], energy_jitter=3.0)
    with pytest.raises(ConfigError, match="noise"):
        mx.mix_series(cu, [[1, 0]], noise="loud")
    with pytest.raises(ConfigError, match="noise"):
        mx.mix_series(cu, [[1, 0]], noise=-0.01)


def test_bad_references_are_clear_errors(shared_data, tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'cuo'"):
        mx.load_references(["cu_foil", "cu0"], data_dir=shared_data)
    with pytest.raises(DataError, match="Fe K spectrum, but the references are Cu K"):
        mx.load_references(["cu_foil", "fe2o3"], data_dir=shared_data)
    with pytest.raises(DataError, match="Pt L3"):
        mx.load_references(["cu_foil", "pt_foil"], data_dir=shared_data)
    with pytest.raises(ReadError, match="references"):
        mx.load_references(["cu_foil"], data_dir=tmp_path)


# ---------------------------------------------------------------- ready-made series
def test_cu_potential_series(shared_data):
    series, truth = mx.cu_potential_series(data_dir=shared_data)
    assert len(series) == 27 and series.conditions["potential_V"].tolist()[::3] == \
        [0.4, 0.2, 0.0, -0.2, -0.4, -0.6, -0.8, -1.0, "OCP"]
    assert truth["frac_cu_foil"].tolist()[::3] == [0, 0, 0, 0.1, 0.25, 0.4, 0.6, 0.8, 0]
    assert np.all(np.diff(series.conditions["time_s"]) > 0)
    assert series.reference is not None and truth["noise"].iloc[0] == mx.NOISE_PRESETS["qexafs"]
    two, truth2 = mx.cu_potential_series(cycles=2, data_dir=shared_data)
    assert len(two) == 54 and two.conditions["cycle"].tolist() == [0] * 27 + [1] * 27
    np.testing.assert_array_equal(truth2["frac_cu_foil"][:27], truth2["frac_cu_foil"][27:])
    assert not np.allclose(two.mu[:27], two.mu[27:])      # fresh noise in the second cycle
    np.testing.assert_array_equal(two.mu[:27], series.mu)  # same seed: the first cycle repeats


def test_fe_gas_and_fraction_series(shared_data):
    series, truth = mx.fe_gas_series(data_dir=shared_data)
    fracs = truth[[f"frac_{n}" for n in ("fe_foil", "feo", "fe2o3", "fe3o4")]].to_numpy()
    np.testing.assert_allclose(fracs.sum(axis=1), 1.0)
    assert (fracs > 0).sum(axis=1).max() == 3
    assert series.energy[-1] <= 7112.0 + 200.0 and len(series) == 27
    assert {"gas", "temperature_K", "time_s"} <= set(series.conditions.columns)
    _, lcf_truth = mx.cu_fraction_series(11, data_dir=shared_data)
    np.testing.assert_allclose(lcf_truth["frac_cu_foil"], np.linspace(0, 1, 11))


# ---------------------------------------------------------------- writers
def test_write_folder_reads_back_the_same(cu, tmp_path):
    conditions = pd.DataFrame({"potential_V": pd.Series([0.2, -0.4, "OCP"], dtype=object)})
    series, truth = mx.mix_series(cu, [[0, 1], [0.5, 0.5], [0, 1]], conditions=conditions,
                                  repeats=2, noise=0.002, energy_jitter=0.3, seed=5)
    folder = mx.write_folder(series, truth, tmp_path / "scans")
    back = operando.read_series(folder, conditions=folder / "conditions.csv")
    assert back.element == "Cu" and back.edge == "K"
    np.testing.assert_array_equal(back.energy, series.energy)
    # counts written with 10 significant digits: ln ratios good to ~1e-9
    np.testing.assert_allclose(back.mu, series.mu, atol=1e-8)
    np.testing.assert_allclose(back.reference, series.reference, atol=1e-8)
    assert back.conditions["potential_V"].tolist() == [0.2, 0.2, -0.4, -0.4, "OCP", "OCP"]
    pd.testing.assert_frame_equal(pd.read_csv(folder / "truth.csv")[["step", "frac_cuo"]],
                                  truth[["step", "frac_cuo"]])
    with pytest.raises(ConfigError, match="not empty"):
        mx.write_folder(series, truth, folder)


def test_write_hdf5_reads_back_the_same(cu, tmp_path):
    series, truth = mx.mix_series(cu, [[0.1, 0.9], [0.9, 0.1]], repeats=2, noise=0.001)
    h5, truth_csv = mx.write_hdf5_with_truth(series, truth, tmp_path / "mix.h5")
    back = operando.read_series(h5)
    np.testing.assert_array_equal(back.mu, series.mu)
    np.testing.assert_array_equal(back.reference, series.reference)
    assert pd.read_csv(truth_csv)["frac_cu_foil"].tolist() == truth["frac_cu_foil"].tolist()
