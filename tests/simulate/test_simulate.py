"""Tests of operando.simulate: determinism, truth tables, physics of the model, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from operando import simulate as sim
from operando.errors import ConfigError
from operando.feffpaths import feff_path
from operando.series import Series

PT, CU = sim.PT_CO_OXIDATION, sim.CU_NC_POTENTIAL

SHELL_COLUMNS = {
    PT.name: ["cn_Pt-O", "r_Pt-O", "sigma2_Pt-O", "de0_Pt-O", "cn_Pt-Pt", "r_Pt-Pt", "sigma2_Pt-Pt", "de0_Pt-Pt"],
    CU.name: ["cn_Cu-N", "r_Cu-N", "sigma2_Cu-N", "de0_Cu-N", "cn_Cu-Cu", "r_Cu-Cu", "sigma2_Cu-Cu", "de0_Cu-Cu"],
}
COMMON_COLUMNS = ["step", "file", "time_s", "segment", "state", "s02", "e0_true", "chem_shift",
                  "edge_step", "energy_shift", "wl_amplitude", "wl_height_true", "wl_position_true",
                  "edge_position_true", "noise", "noise_sigma", "seed", "drift_seed"]


@pytest.fixture(scope="module")
def pt():
    return sim.simulate_series(PT, seed=3)


@pytest.fixture(scope="module")
def cu():
    return sim.simulate_series(CU, seed=3)


@pytest.fixture(scope="module")
def pt_clean():
    return sim.simulate_series(PT, seed=3, noise=False, drift=False)


# ------------------------------------------------------------- determinism
def test_same_seed_gives_identical_arrays(pt):
    series, truth = sim.simulate_series(PT, seed=3)
    np.testing.assert_array_equal(series.mu, pt[0].mu)
    np.testing.assert_array_equal(series.reference, pt[0].reference)
    np.testing.assert_array_equal(series.energy, pt[0].energy)
    pd.testing.assert_frame_equal(truth, pt[1])


def test_other_seed_changes_noise_not_truth(pt):
    series, truth = sim.simulate_series(PT, seed=4)
    diff = series.mu - pt[0].mu
    # only the noise differs: the difference of two noise draws has sd sqrt(2) * sigma
    sigma = PT.noise * PT.edge_step
    assert 1.2 * sigma < diff.std() < 1.6 * sigma
    assert not np.array_equal(series.reference, pt[0].reference)
    pd.testing.assert_frame_equal(truth.drop(columns="seed"), pt[1].drop(columns="seed"))


def test_result_does_not_depend_on_chunk_size(pt, monkeypatch):
    monkeypatch.setattr("operando.simulate.series._CHUNK", 5)
    series, _ = sim.simulate_series(PT, seed=3)
    np.testing.assert_array_equal(series.mu, pt[0].mu)
    np.testing.assert_array_equal(series.reference, pt[0].reference)


# ------------------------------------------------------------ truth tables
@pytest.mark.parametrize("spec, conditions", [(PT, ["gas", "temperature_K"]), (CU, ["potential_V"])])
def test_truth_columns_are_documented(spec, conditions):
    truth = sim.truth_table(spec, seed=0)
    expected = set(COMMON_COLUMNS) | set(conditions) | set(SHELL_COLUMNS[spec.name])
    assert expected <= set(truth.columns)
    assert truth["step"].tolist() == list(range(spec.n_steps))
    assert set(truth["state"]) <= set(sim.STATES)
    assert truth["file"].is_unique


def test_pt_truth_values_are_physical():
    t = sim.truth_table(PT)
    assert len(t) == 16 and (t.groupby("segment").size() == 4).all()
    assert t.groupby("segment")["gas"].first().tolist() == ["O2", "CO+O2", "H2", "CO+O2"]
    seg = t.groupby("segment").first()
    assert seg["cn_Pt-O"].tolist() == [4.0, 2.0, 0.5, 2.5]
    assert seg["cn_Pt-Pt"].tolist() == [0.0, 4.0, 6.5, 2.5]
    # CN 6.5 is a ~1 nm cluster; "particle" means near-bulk (CN >= 10, TrackSettings.particle_cn)
    assert seg["state"].tolist() == ["isolated", "cluster", "cluster", "cluster"]
    has_pt = t["cn_Pt-Pt"] > 0
    assert t.loc[has_pt, "r_Pt-Pt"].between(2.74, 2.76).all()
    assert t.loc[has_pt, "sigma2_Pt-Pt"].between(0.006, 0.007).all()
    assert t.loc[~has_pt, ["r_Pt-Pt", "sigma2_Pt-Pt", "de0_Pt-Pt"]].isna().all().all()
    assert t["r_Pt-O"].between(2.0, 2.02).all()
    assert t["sigma2_Pt-O"].between(0.003, 0.004).all()
    assert (t["s02"] == 0.85).all()
    # a few tenths of an eV of miscalibration, not zero and not more than ~1 eV
    assert 0.05 < t["energy_shift"].abs().max() < 1.0
    assert t["time_s"].is_monotonic_increasing


def test_cu_truth_values_are_physical():
    t = sim.truth_table(CU)
    assert len(t) == 27 and (t.groupby("segment").size() == 3).all()
    seg = t.groupby("segment").first()
    assert seg["potential_V"].tolist() == [0.82, 0.5, 0.1, -0.2, -0.4, -0.6, -0.8, -1.0, "OCP"]
    assert seg["cn_Cu-N"].iloc[:3].tolist() == [4.0, 3.0, 2.0]
    assert seg["cn_Cu-N"].iloc[-1] == 4.0 and seg["cn_Cu-Cu"].iloc[-1] == 0.0
    cucu = seg["cn_Cu-Cu"].iloc[2:8].to_numpy()
    assert np.all(np.diff(cucu) > 0), "Cu-Cu grows as the potential goes down"
    assert np.all(np.diff(seg["cn_Cu-N"].iloc[2:8].to_numpy()) < 0)
    has_cu = t["cn_Cu-Cu"] > 0
    assert t.loc[has_cu, "r_Cu-Cu"].between(2.53, 2.55).all()
    assert t["r_Cu-N"].between(1.94, 1.97).all()
    assert (t["s02"] == 0.90).all()


# ------------------------------------------------------------------ physics
def test_energy_grid_is_beamline_like():
    for spec in (PT, CU):
        e = sim.energy_grid(spec.e0_tabulated)
        e0 = spec.e0_tabulated
        rel = e - e0
        assert np.all(np.diff(e) > 0)
        assert rel[0] == pytest.approx(-200.0)
        pre = rel[rel < -30]
        np.testing.assert_allclose(np.diff(pre), 10.0)
        edge = rel[(rel >= -30) & (rel < 40)]
        np.testing.assert_allclose(np.diff(edge), 0.4, atol=1e-9)
        k = np.sqrt(rel[rel >= 40] * sim.ETOK)
        np.testing.assert_allclose(np.diff(k), 0.05, atol=1e-9)
        assert k.max() >= 14.0


def test_white_line_is_higher_for_oxidised_segments(pt, cu):
    for (series, truth), ligand in ((pt, "cn_Pt-O"), (cu, "cn_Cu-N")):
        seg = truth.groupby("segment").first()
        oxidised = seg[ligand].idxmax()
        reduced = seg[ligand].idxmin()
        assert seg.loc[oxidised, "wl_height_true"] > seg.loc[reduced, "wl_height_true"] + 0.15
        # the amplitude parameter rises strictly with the ligand number
        n_lig, amp = seg[ligand].to_numpy(), seg["wl_amplitude"].to_numpy()
        more = n_lig[:, None] > n_lig[None, :]
        assert np.all((amp[:, None] > amp[None, :])[more])
        # ... and it shows in the noisy spectra: pre-edge line fit, divide by the true step
        energy = series.energy
        heights = []
        for s in (oxidised, reduced):
            i = int(np.flatnonzero(truth["segment"] == s)[0])
            e0 = truth["e0_true"][i]
            pre_region = energy < e0 - 30
            pre = np.polyval(np.polyfit(energy[pre_region], series.mu[i, pre_region], 1), energy)
            window = (energy > e0 - 5) & (energy < e0 + 20)
            heights.append(((series.mu[i] - pre) / truth["edge_step"][i])[window].max())
        assert heights[0] > heights[1] + 0.15


def test_simulated_chi_matches_larch_ff2chi(pt_clean):
    """Noise- and drift-free: chi extracted from mu equals ff2chi of the truth shells."""
    from larch.xafs import feffpath, ff2chi

    series, truth = pt_clean
    for seg in range(len(PT.segments)):
        i = int(np.flatnonzero(truth["segment"] == seg)[0])
        row = truth.iloc[i]
        parts = sim.model_spectrum(PT, seg)
        # above k = 2 the taper is 1 and chi enters unmodified
        sel = series.energy > row["e0_true"] + 2.0 ** 2 / sim.ETOK
        k = np.sqrt((series.energy[sel] - row["e0_true"]) * sim.ETOK)
        chi = (series.mu[i, sel] - parts["pre_edge"][sel]) / (row["edge_step"] * parts["mu0"][sel]) - 1.0
        paths = []
        for label in PT.shell_labels:
            if row[f"cn_{label}"] > 0:
                fp = feff_path(*label.split("-"))
                paths.append(feffpath(str(fp.file), degen=row[f"cn_{label}"], s02=row["s02"],
                                      e0=row[f"de0_{label}"], deltar=row[f"r_{label}"] - fp.reff,
                                      sigma2=row[f"sigma2_{label}"]))
        # ff2chi overwrites its first point with an extrapolation: prepend a dummy k
        expected = ff2chi(paths, k=np.concatenate([[0.0], k])).chi[1:]
        assert k.max() > 14.5
        assert np.abs(expected).max() > 0.01
        # tolerance 1e-6: the simulator interpolates a 0.01 A^-1 chi table with a cubic spline
        np.testing.assert_allclose(chi, expected, rtol=0, atol=1e-6)


def test_reference_channel_carries_the_scan_miscalibration():
    series, truth = sim.simulate_series(CU, seed=0, noise=False)
    dense = np.arange(CU.e0_tabulated - 10, CU.e0_tabulated + 10, 0.002)
    for i in (0, 13, 26):
        shift = truth["energy_shift"][i]
        expected = sim.model_spectrum(CU, None, energy_shift=shift)["mu"]
        np.testing.assert_allclose(series.reference[i], expected, rtol=0, atol=1e-12)
        foil = sim.model_spectrum(CU, None, energy=dense, energy_shift=shift)["mu"]
        inflection = dense[np.argmax(np.gradient(foil, dense))]
        # the foil inflection sits at the tabulated edge + the miscalibration (dense grid step)
        assert inflection == pytest.approx(CU.e0_tabulated + shift, abs=0.005)


def test_noise_level_matches_truth(cu):
    series, truth = cu
    clean, _ = sim.simulate_series(CU, seed=3, noise=False)
    residual = series.mu - clean.mu
    sd = residual.std(axis=1)
    # 428 points per spectrum: the sample sd is within ~10 % of sigma at > 99.9 % probability
    np.testing.assert_allclose(sd, truth["noise_sigma"], rtol=0.12)
    ref_sd = (series.reference - clean.reference).std()
    assert ref_sd == pytest.approx(CU.reference_noise * CU.reference_edge_step, rel=0.05)


def test_series_contract(pt, cu):
    for (series, truth), spec in ((pt, PT), (cu, CU)):
        assert isinstance(series, Series)
        assert series.element == spec.element and series.edge == spec.edge
        assert series.reference.shape == series.mu.shape == (spec.n_steps, series.energy.size)
        assert list(series.conditions.columns) == ["step", "file", *spec.condition_columns, "time_s"]
        assert series.metadata["mu_from"] == "transmission"
        assert np.all(np.isfinite(series.mu))
    assert cu[0].conditions["potential_V"].dtype == object
    assert len(cu[0].where(potential_V="OCP")) == 3
    assert len(pt[0].where(gas="H2")) == 4


# --------------------------------------------------------- spec handling
def test_scaled_and_dict_specs():
    big = PT.scaled(1001)
    assert big.n_steps == 1001
    assert [s.repeats for s in big.segments] == [251, 250, 250, 250]
    series, truth = sim.simulate_series(big, seed=1, reference=False)
    assert series.mu.shape[0] == 1001 and series.reference is None
    assert truth.groupby("segment")["cn_Pt-Pt"].first().tolist() == [0.0, 4.0, 6.5, 2.5]

    small = PT.scaled(4)
    a, ta = sim.simulate_series(small, seed=2)
    b, tb = sim.simulate_series(sim.SeriesSpec.from_dict(small.to_dict()), seed=2)
    np.testing.assert_array_equal(a.mu, b.mu)
    pd.testing.assert_frame_equal(ta, tb)


def test_dict_spec_with_shell_mapping():
    data = PT.scaled(4).to_dict()
    data["segments"] = [{"conditions": {"gas": "He", "temperature_K": 300.0}, "repeats": 2,
                         "state": "particle",
                         "shells": {"Pt-Pt": {"cn": 9.0, "r": 2.77, "sigma2": 0.005, "de0": 0.0}}}]
    series, truth = sim.simulate_series(data, seed=0)
    assert len(series) == 2
    assert truth["cn_Pt-Pt"].tolist() == [9.0, 9.0] and truth["cn_Pt-O"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("bad", [
    {"label": "Pt-O", "cn": -1.0, "r": 2.0, "sigma2": 0.003},
    {"label": "Pt-O", "cn": 2.0, "r": 7.0, "sigma2": 0.003},
    {"label": "Pt-Qq", "cn": 2.0, "r": 2.0, "sigma2": 0.003},
])
def test_bad_shells_raise_config_error(bad):
    with pytest.raises(ConfigError):
        sim.Shell(**bad)


def test_unknown_spec_key_raises():
    data = PT.to_dict()
    data["nosie"] = 1e-3
    with pytest.raises(ConfigError, match="nosie"):
        sim.simulate_series(data)


# ------------------------------------------------------------------- files
def test_write_samples_files_parse(tmp_path):
    from larch.io import read_xdi

    written = sim.write_samples(tmp_path, seed=11)
    pt_series, pt_truth = sim.simulate_series(PT, seed=11)
    folder = tmp_path / "pt_co_oxidation"
    conditions = pd.read_csv(folder / "conditions.csv")
    assert list(conditions.columns) == ["file", "gas", "temperature_K", "time_s"]
    xdi_files = sorted(p.name for p in folder.glob("pt_co_oxidation_*.xdi"))
    assert xdi_files == sorted(conditions["file"]) and "pt_foil.xdi" not in set(conditions["file"])
    for i in (0, 9):
        group = read_xdi(str(folder / conditions["file"][i]))
        assert group.attrs["element"]["symbol"] == "Pt" and group.attrs["element"]["edge"] == "L3"
        np.testing.assert_allclose(group.energy, pt_series.energy, atol=1e-4)
        np.testing.assert_allclose(np.log(group.i0 / group.itrans), pt_series.mu[i], atol=1e-7)
        np.testing.assert_allclose(np.log(group.itrans / group.irefer), pt_series.reference[i], atol=1e-7)
    foil = read_xdi(str(folder / "pt_foil.xdi"))
    assert foil.array_labels == ["energy", "i0", "itrans"]
    truth = pd.read_csv(folder / "truth.csv")
    np.testing.assert_allclose(truth["energy_shift"], pt_truth["energy_shift"], atol=1e-9)
    foil_truth = pd.read_csv(folder / "foil_truth.csv")
    assert foil_truth["cn_Pt-Pt"][0] == 12 and foil_truth["s02"][0] == 0.85

    folder = tmp_path / "cu_nc_potential"
    cu_series, cu_truth = sim.simulate_series(CU, seed=11)
    for name, arr, prefix in (("cu_nc_potential.dat", cu_series.mu, "mu"),
                              ("cu_nc_reference.dat", cu_series.reference, "ref")):
        header = (folder / name).read_text().splitlines()[0]
        assert header.startswith("#") and header[1:].split()[:2] == ["energy", f"{prefix}_000"]
        matrix = np.loadtxt(folder / name)
        assert matrix.shape == (cu_series.energy.size, 1 + len(cu_series))
        np.testing.assert_allclose(matrix[:, 1:].T, arr, atol=1e-7)
    conditions = pd.read_csv(folder / "conditions.csv")
    assert list(conditions.columns) == ["step", "potential_V", "time_s"]
    assert conditions["potential_V"].iloc[-1] == "OCP"
    assert float(conditions["potential_V"].iloc[0]) == 0.82
    assert read_xdi(str(folder / "cu_foil.xdi")).attrs["element"]["symbol"] == "Cu"
    assert (tmp_path / "README.md").read_text().count("seed") >= 1
    assert all(p.exists() for paths in written.values() for p in paths)


def test_bundled_samples_are_current_and_small(samples: Path):
    """sample_spectra must be what the current code writes (regenerate with
    ``python -m operando.simulate sample_spectra``) and stay below 5 MB."""
    size = sum(p.stat().st_size for p in samples.rglob("*") if p.is_file())
    assert size < 5e6
    series, truth = sim.simulate_series(PT, seed=sim.SAMPLE_SEED)
    from larch.io import read_xdi

    group = read_xdi(str(samples / "pt_co_oxidation" / truth["file"][5]))
    np.testing.assert_allclose(np.log(group.i0 / group.itrans), series.mu[5], atol=1e-7)
    bundled = pd.read_csv(samples / "cu_nc_potential" / "truth.csv")
    current = sim.truth_table(CU, seed=sim.SAMPLE_SEED)
    np.testing.assert_allclose(bundled["energy_shift"], current["energy_shift"], atol=1e-9)
    np.testing.assert_allclose(bundled["wl_height_true"], current["wl_height_true"], atol=1e-9)
    cu_series, _ = sim.simulate_series(CU, seed=sim.SAMPLE_SEED)
    matrix = np.loadtxt(samples / "cu_nc_potential" / "cu_nc_potential.dat")
    np.testing.assert_allclose(matrix[:, 1:].T, cu_series.mu, atol=1e-7)
