"""Tracking logic: segments, states, events, reversibility, change points, cluster sizes.

Every synthetic table here is built from a truth table (the CN of each shell, the
white line and edge position per condition) plus Gaussian noise with per-step errors
between 0.3 and 0.8 (typical of EXAFS CN fits on operando data), so each assertion
compares against what was put in.  These test the tracker's rules; that its verdicts
hold on real spectra is tested in tests/test_verdicts_real.py on series mixed from
measured spectra.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from operando.errors import ConfigError, DataError
from operando.tracking import (TrackSettings, cluster_size_from_cn, cuboctahedron_atoms,
                               cuboctahedron_cn, default_condition_columns, detect_shells,
                               find_change_points, track)

from _tracking_data import (CU_EVENTS, CU_STATES, PT_EVENTS, PT_GASES, PT_STATES, PT_TRUTH,
                            cu_steps, pt_steps, qexafs_series)

SEEDS = [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- synthetic series
def event_tuples(tr):
    return [(e.event, int(e.step), int(e.segment), e.condition_before, e.condition_after)
            for e in tr.events.itertuples()]


# --------------------------------------------------------------------------- Pt gas sequence
@pytest.mark.parametrize("seed", SEEDS)
def test_pt_gas_sequence_events_match_truth(seed):
    tr = track(pt_steps(seed))
    assert tr.metal_shell == "Pt-Pt" and tr.ligand_shell == "Pt-O"
    # every user column is a condition (the constant temperature too); time never is
    assert tr.condition_columns == ["gas", "temperature_K"]
    assert list(tr.segments["state"]) == PT_STATES
    assert list(tr.segments["n_steps"]) == [6, 6, 6, 6]
    assert list(tr.segments["n_ok"]) == [6, 5, 6, 6]
    assert event_tuples(tr) == PT_EVENTS  # labels omit the constant temperature
    cn = tr.segments["cn_Pt-Pt"].to_numpy()
    err = tr.segments["cn_Pt-Pt_err"].to_numpy()
    assert np.all(np.abs(cn - [t["cn_m"] for t in PT_TRUTH]) < 3 * err)


def test_steps_take_their_segment_state_and_a_failed_step_stays():
    tr = track(pt_steps(0))
    st = tr.steps
    assert list(st["segment"]) == [i // 6 for i in range(24)]
    assert (st["state"].to_numpy() == tr.segments["state"].to_numpy()[st["segment"]]).all()
    assert st.loc[st["step"] == 8, "state"].item() == "cluster"  # its XANES failed; it is kept


def test_pt_event_evidence_and_confidence():
    tr = track(pt_steps(0))
    ev = tr.events.set_index("event")
    for name in ("aggregation", "growth", "partial_redispersion"):
        # CN and white line both move by many sigma, in the same direction: high confidence;
        # the partial redispersion's CN change (1.7 +/- 0.66, 2.6 sigma) is not significant
        # on its own, so only the XANES carries it: medium
        assert ev.loc[name, "xanes"] == "agrees"
        strong_cn = abs(ev.loc[name, "z_cn"]) >= 3  # EXAFS significant on its own too
        assert ev.loc[name, "confidence"] == ("high" if strong_cn else "medium")
        assert ev.loc[name, "z"] >= 5
        assert "white line" in ev.loc[name, "evidence"] and "edge" in ev.loc[name, "evidence"]
        assert "CN(Pt-Pt)" in ev.loc[name, "evidence"]
    assert ev.loc["aggregation", "delta_wl"] < 0 and ev.loc["partial_redispersion", "delta_wl"] > 0
    assert ev.loc["aggregation", "delta_edge_eV"] == pytest.approx(-1.2, abs=0.15)
    assert ev.loc["aggregation", "delta_cn"] == pytest.approx(5.0, abs=1.0)


def test_pt_reversibility_return_to_co_o2():
    rv = track(pt_steps(0)).reversibility
    assert len(rv) == 1
    row = rv.iloc[0]
    assert (row["segment"], row["baseline_segment"]) == (3, 1)
    assert row["state_before"] == row["state_after"] == "cluster"
    # the truth returns to clusters, but to CN 6 and white line 1.48 instead of 5 and 1.55:
    # the state returned, the white line did not
    assert not bool(row["returned"]) and not bool(row["changed_between"])
    assert row["verdict"].startswith("state returned (cluster) but white line differs")


def test_xanes_contradiction_lowers_confidence():
    steps = pt_steps(0)
    # the white line *rises* on aggregation: XANES contradicts, confidence is low
    steps.loc[steps["gas"] == "O2", "wl_height"] -= 0.8
    ev = track(steps).events
    agg = ev[ev["event"] == "aggregation"].iloc[0]
    assert agg["confidence"] == "low" and "contradicted by white line" in agg["evidence"]
    # no XANES columns at all: one kind of evidence alone is never high confidence
    ev2 = track(pt_steps(0).drop(columns=["wl_height", "edge_position"])).events
    assert set(ev2["xanes"]) == {"n/a"} and "high" not in set(ev2["confidence"])


# --------------------------------------------------------------------------- Cu potential sequence
@pytest.mark.parametrize("seed", SEEDS)
def test_cu_potential_sequence_events_match_truth(seed):
    tr = track(cu_steps(seed))
    assert tr.metal_shell == "Cu-Cu" and tr.ligand_shell == "Cu-N"
    assert list(tr.segments["state"]) == CU_STATES
    expected = [(e, s, g, b, a) for e, s, g, b, a in CU_EVENTS]
    expected[0] = ("aggregation", 9, 3, "0.10 V", "-0.20 V")
    assert event_tuples(tr) == expected


def test_cu_from_csv_with_ocp_label_and_reversibility():
    buf = io.StringIO()
    cu_steps(0).to_csv(buf, index=False)
    buf.seek(0)
    steps = pd.read_csv(buf)
    assert not pd.api.types.is_numeric_dtype(steps["potential_V"])  # "OCP" makes the column text
    tr = track(steps)
    assert len(tr.segments) == 9
    assert list(tr.segments["condition"])[-1] == "OCP"
    rv = tr.reversibility
    assert len(rv) == 1
    row = rv.iloc[0]
    assert (row["segment"], row["baseline_segment"]) == (8, 0)
    assert row["state_before"] == row["state_after"] == "isolated"
    assert bool(row["returned"]) and bool(row["changed_between"])
    assert "OCP" in tr.report() and "redispersion" in tr.report()


def test_cluster_sizes_only_where_a_cn_means_one():
    seg = track(cu_steps(0)).segments
    cl = seg[seg["state"] == "cluster"]
    assert np.all(np.diff(cl["n_atoms"]) > 0)  # growing clusters
    assert np.all(cl["n_atoms_lo"] <= cl["n_atoms"]) and np.all(cl["n_atoms"] <= cl["n_atoms_hi"])
    assert np.all(np.isfinite(cl["diameter_nm"]))
    assert seg.loc[seg["state"] == "isolated", "n_atoms"].isna().all()
    # a CN within two errors of the bulk value is bulk-like: a lower bound, not 1e10 atoms
    steps = pd.DataFrame({"step": range(6), "gas": ["O2"] * 3 + ["H2"] * 3, "ok": True,
                          "fit_ok": True, "cn_Cu-Cu": [0.0] * 3 + [11.6, 11.9, 12.1],
                          "cn_Cu-Cu_err": [0.4] * 6, "r_Cu-Cu": 2.54})
    bulk = track(steps).segments.iloc[1]
    assert bulk["state"] == "particle" and np.isinf(bulk["n_atoms"])
    assert bulk["size_note"].startswith("bulk-like (> ") and bulk["size_note"].endswith(" nm)")


def test_segment_estimate_and_error_with_the_repeat_scatter_as_floor():
    steps = pd.DataFrame({"step": range(6), "gas": ["He"] * 3 + ["O2"] * 3, "ok": True,
                          "fit_ok": True, "cn_Pt-Pt": [4.0, 5.0, 6.0, 4.5, 5.0, 5.5],
                          "cn_Pt-Pt_err": [0.3] * 6})
    seg = track(steps).segments
    assert seg["cn_Pt-Pt"].tolist() == pytest.approx([5.0, 5.0])
    pooled = np.sqrt((2.0 + 0.5) / 4)  # sum of squares about each mean / (n - 1) summed
    stat = np.sqrt(3 * 0.3 ** 2) / 3  # 0.17 from the fit errors, below the scatter's 0.46
    assert seg["cn_Pt-Pt_err"].tolist() == pytest.approx([pooled / np.sqrt(3)] * 2)
    assert pooled / np.sqrt(3) > stat
    # without repeats the documented floor stands in for the scatter
    one = track(steps.iloc[[0, 3]]).segments
    assert one["cn_Pt-Pt_err"].tolist() == pytest.approx([np.hypot(0.3, 0.1)] * 2)


def test_no_event_for_an_insignificant_change():
    steps = pd.DataFrame({"step": range(6), "gas": ["A"] * 3 + ["B"] * 3, "ok": True,
                          "fit_ok": True, "cn_Pt-Pt": [5.0, 5.3, 4.7, 5.6, 5.9, 5.3],
                          "cn_Pt-Pt_err": [0.5] * 6})
    tr = track(steps)
    assert len(tr.segments) == 2 and tr.events.empty
    steps["cn_Pt-Pt"] = [5.0, 5.3, 4.7, 9.0, 9.3, 8.7]
    assert list(track(steps).events["event"]) == ["growth"]


def test_a_bias_shared_by_the_start_is_not_a_cluster():
    """An oxide's own M...M leaks into the metal path (CN 1.4 +/- 0.3 at every oxide step):
    judged against the start and the detection limit, it is not metal."""
    cn = [1.4, 1.3, 1.5] * 3 + [1.5, 1.3, 1.4]
    steps = pd.DataFrame({"step": range(12), "potential_V": np.repeat([0.4, 0.2, 0.0, -0.2], 3),
                          "ok": True, "fit_ok": True, "cn_Cu-Cu": cn, "cn_Cu-Cu_err": [0.3] * 12,
                          "cn_Cu-Cu_limit": [2.0] * 12})
    tr = track(steps)
    assert set(tr.segments["state"]) == {"isolated"} and tr.events.empty
    # real metal beyond the start and the limit is a cluster
    steps.loc[9:, "cn_Cu-Cu"] = [4.4, 4.6, 4.5]
    assert list(track(steps).segments["state"]) == ["isolated"] * 3 + ["cluster"]


def test_poor_fits_are_kept_but_are_not_evidence():
    steps = cu_steps(0)
    bad = steps["potential_V"].astype(str) == "-0.4"
    steps.loc[bad, "fit_ok"] = False
    steps.loc[bad, "cn_Cu-Cu"] = 0.0  # a poor fit's CN must not make a redispersion
    tr = track(steps)
    seg = tr.segments.set_index("condition")
    assert np.isnan(seg.loc["-0.40 V", "cn_Cu-Cu"]) and seg.loc["-0.40 V", "n_steps"] == 3
    assert "redispersion" not in set(tr.events["event"].iloc[:-1])
    assert seg.loc["-0.40 V", "state"] == "unknown"  # no metal channel left: nothing to judge
    assert len(tr.steps) == len(steps)


def test_xanes_only_series_from_fractions_and_white_line():
    rng = np.random.default_rng(4)
    frac = np.repeat([0.0, 0.0, 0.3, 0.7, 0.0], 3)
    steps = pd.DataFrame({"step": range(15), "gas": np.repeat(["O2", "He", "H2", "H2+", "O2b"], 3),
                          "ok": True, "frac_fe_foil": frac + rng.normal(0, 0.01, 15),
                          "frac_fe_foil_err": 0.004,
                          "frac_fe2o3": 1 - frac + rng.normal(0, 0.01, 15), "frac_fe2o3_err": 0.004,
                          "wl_height": 1.4 - 0.3 * frac + rng.normal(0, 0.003, 15),
                          "edge_position": 7125 - 12 * frac + rng.normal(0, 0.05, 15)})
    tr = track(steps)
    assert tr.metal_shell is None and "frac_fe_foil" in tr.channels
    assert list(tr.segments["state"]) == ["isolated", "isolated", "cluster", "cluster", "isolated"]
    assert list(tr.segments["xanes_state"]) == ["oxidised", "oxidised", "mixed", "mixed", "oxidised"]
    assert [(e.event, e.step) for e in tr.events.itertuples()] == [
        ("aggregation", 6), ("growth", 9), ("redispersion", 12)]
    # without a metallic component the states are the XANES direction from the start
    no_metal = track(steps.drop(columns=["frac_fe_foil", "frac_fe_foil_err", "frac_fe2o3",
                                         "frac_fe2o3_err"]))
    assert list(no_metal.segments["state"]) == ["as_start", "as_start", "reduced", "reduced",
                                                  "as_start"]
    assert [e.event for e in no_metal.events.itertuples()] == ["reduction", "reduction", "oxidation"]


def test_trend_within_a_series_without_repeats():
    """A time series with one scan per time (no conditions): a steady rise of the metallic
    fraction is one trend event, a flat one none."""
    t = np.array([0.1, 2.4, 4.7, 7.0, 9.3, 20, 33, 720])
    frac = np.array([0.0, 0.02, 0.12, 0.18, 0.23, 0.34, 0.26, 0.58])
    steps = pd.DataFrame({"step": range(8), "time_h": t, "ok": True, "frac_au_foil": frac,
                          "frac_au_foil_err": 0.05, "wl_height": 1.3 - 0.4 * frac})
    tr = track(steps)
    assert tr.condition_columns == [] and len(tr.segments) == 1
    assert list(tr.events["event"]) == ["reduction"] and tr.events["origin"].item() == "trend"
    steps["frac_au_foil"] = 0.2 + np.random.default_rng(1).normal(0, 0.02, 8)
    steps["wl_height"] = 1.2 + np.random.default_rng(2).normal(0, 0.005, 8)
    assert track(steps).events.empty


def test_outlier_is_flagged_and_kept():
    steps = cu_steps(0)
    steps.loc[4, "wl_height"] += 0.2
    tr = track(steps)
    st = tr.steps.set_index("step")
    assert bool(st.loc[4, "outlier"]) and "white line" in st.loc[4, "outlier_reason"]
    assert int(st["outlier"].sum()) == 1


# --------------------------------------------------------------------------- change points
@pytest.mark.parametrize("seed", SEEDS)
def test_change_point_inside_constant_gas(seed):
    tr = track(qexafs_series(seed, change_at=612))
    assert len(tr.segments) == 2
    assert list(tr.segments["origin"]) == ["condition", "change point"]
    assert list(tr.segments["block"]) == [0, 0]
    assert len(tr.events) == 1
    ev = tr.events.iloc[0]
    assert ev["event"] == "growth" and ev["origin"] == "change point"
    assert abs(int(ev["step"]) - 612) <= 3  # 2 CN units over noise 0.6: located within a few steps
    assert ev["condition_before"] == ev["condition_after"] == "CO"


@pytest.mark.parametrize("seed", SEEDS + [5, 6, 7, 8, 9])
def test_pure_noise_gives_no_change_point_and_no_event(seed):
    tr = track(qexafs_series(seed, change_at=None))
    assert len(tr.segments) == 1 and tr.events.empty
    assert tr.segments["state"].item() == "cluster"


def test_find_change_points_direct():
    rng = np.random.default_rng(3)
    x = np.concatenate([np.zeros(100), np.full(80, 3.0), np.full(120, 1.0)]) + rng.normal(0, 0.5, 300)
    x[50] = np.nan  # a failed step is skipped
    cps = find_change_points(x, min_size=5, threshold=5.0)
    assert len(cps) == 2
    assert abs(cps[0] - 100) <= 2 and abs(cps[1] - 180) <= 2
    assert find_change_points(np.ones(50)) == []
    assert find_change_points(rng.normal(0, 1, 8)) == []  # too short


def test_short_segments_are_not_searched_for_change_points():
    steps = qexafs_series(0, change_at=8, n=16)  # below changepoint_min_steps = 20
    assert len(track(steps).segments) == 1


# --------------------------------------------------------------------------- settings and errors
def test_settings_from_config_did_you_mean():
    s = TrackSettings.from_config({"particle_cn": 9.5, "z_event": 2.5, "z_high": 4.0})
    assert s.particle_cn == 9.5 and s.z_event == 2.5
    with pytest.raises(ConfigError, match="did you mean 'particle_cn'"):
        TrackSettings.from_config({"particel_cn": 9})
    with pytest.raises(ConfigError, match="positive"):
        TrackSettings.from_config({"z_high": -1.0})
    with pytest.raises(ConfigError, match="must not exceed"):
        TrackSettings(particle_cn=13)
    assert TrackSettings().to_dict()["rest_labels"] == ["OCP"]
    with pytest.raises(ConfigError):
        track(pt_steps(0), settings={"bulk_cnn": 12})


def test_shell_detection_and_missing_columns():
    assert detect_shells(["cn_Cu-N", "cn_Cu-N_err", "cn_Cu-Cu", "cn_Cu-Cu_err"]) == ("Cu-Cu", "Cu-N")
    assert detect_shells(["cn_Pt-C", "cn_Pt-O", "cn_Pt-Pt", "cn_Pt-Pt_limit"]) == ("Pt-Pt", "Pt-O")
    with pytest.raises(DataError, match="no usable evidence"):
        track(pd.DataFrame({"step": [0], "cn_Pt-O": [1.0], "cn_Pt-O_err": [0.1]}))
    with pytest.raises(DataError, match="cn_Pt-Pt_err"):
        track(pd.DataFrame({"step": [0], "cn_Pt-Pt": [1.0]}))
    with pytest.raises(DataError, match="condition column 'gass'"):
        track(pt_steps(0), condition_columns=["gass"])


def test_condition_columns_every_user_column_but_time_and_identifiers():
    steps = pt_steps(0)
    steps["loading_wt"] = [0.5] * 15 + [1.0] * 9
    steps["label"] = [f"scan {i}" for i in range(24)]  # an identifier, not a condition
    assert default_condition_columns(steps) == ["gas", "temperature_K", "loading_wt"]
    tr = track(steps)
    assert len(tr.segments) == 5  # the loading changes inside the second CO+O2 block
    tr = track(steps, condition_columns=["gas"])
    assert list(tr.segments["condition"]) == PT_GASES
    # potential repeats at the same value merge; a float and its text form are equal
    st = pd.DataFrame({"step": range(4), "potential_V": [0.1, "0.10", "0.100000001", -0.2],
                       "ok": True, "fit_ok": True,
                       "cn_Cu-Cu": [0.0, 0.1, 0.0, 5.0], "cn_Cu-Cu_err": [0.4] * 4})
    assert list(track(st).segments["n_steps"]) == [3, 1]


# --------------------------------------------------------------------------- cluster size
def _cuboctahedron_average_cn(shells: int) -> float:
    """Independent count: build the fcc cuboctahedron and count nearest neighbours."""
    rng = range(-2 * shells, 2 * shells + 1)
    pts = np.array([(x, y, z) for x in rng for y in rng for z in rng if (x + y + z) % 2 == 0], float)
    # cuboctahedron of n shells on the fcc lattice (nearest-neighbour vector (1, 1, 0)):
    # vertices n (1, 1, 0); {100} faces |x| <= n, {111} faces |x| + |y| + |z| <= 2 n
    a = np.abs(pts)
    keep = (a.max(axis=1) <= shells) & (a.sum(axis=1) <= 2 * shells)
    pts = pts[keep]
    pairs = cKDTree(pts).query_pairs(np.sqrt(2) + 1e-6)
    return len(pts), 2 * len(pairs) / len(pts)


@pytest.mark.parametrize("shells,atoms,cn", [(1, 13, 5.54), (2, 55, 7.85), (3, 147, 8.98), (4, 309, 9.63)])
def test_cuboctahedron_magic_numbers(shells, atoms, cn):
    # published values (Benfield 1992; Jentys 1999) to their 2 decimals
    assert cuboctahedron_atoms(shells) == atoms
    assert cuboctahedron_cn(shells) == pytest.approx(cn, abs=0.005)
    n, avg = _cuboctahedron_average_cn(shells)  # and an independent neighbour count
    assert n == atoms and avg == pytest.approx(cuboctahedron_cn(shells), abs=1e-12)


def test_cluster_size_from_cn_values():
    for cn, atoms in [(72 / 13, 13), (432 / 55, 55), (1320 / 147, 147)]:
        res = cluster_size_from_cn(cn)
        assert res.n_atoms == pytest.approx(atoms, rel=1e-6)
        assert res.magic_n_atoms == atoms
    res = cluster_size_from_cn(432 / 55, 0.5, element="Pt")
    assert res.bond_length == 2.775
    assert res.diameter_nm == pytest.approx(5 * 0.2775, rel=1e-6)  # (2n+1) d with n = 2
    assert res.n_atoms_lo < 55 < res.n_atoms_hi
    assert cluster_size_from_cn(0.0).n_atoms == 1
    assert np.isinf(cluster_size_from_cn(12.0).n_atoms)
    assert np.isinf(cluster_size_from_cn(11.8, 0.5).n_atoms_hi)
    assert np.isnan(cluster_size_from_cn(np.nan).n_atoms)
    arr = cluster_size_from_cn(np.array([5.54, 7.85]), np.array([0.3, 0.3]))
    assert arr.n_atoms.shape == (2,) and np.all(np.diff(arr.n_atoms) > 0)


@pytest.mark.parametrize("model", ["cuboctahedron", "sphere"])
def test_cluster_size_cn_consistent_with_zero_is_one_atom(model):
    """A fitted CN of -0.03 +/- 0.09 is an isolated atom, not 'unknown size'."""
    res = cluster_size_from_cn(-0.03, 0.09, model=model, element="Pt")
    assert res.n_atoms == 1 and res.n_atoms_lo == 1
    # The upper bound is the size at cn + cn_err = 0.06: a little more than one atom.
    hi = cluster_size_from_cn(0.06, model=model, element="Pt").n_atoms
    assert res.n_atoms_hi == pytest.approx(hi) and 1 <= hi < 13
    zero = cluster_size_from_cn(0.0, model=model, element="Pt")
    assert res.diameter_nm == pytest.approx(zero.diameter_nm)
    # Arrays mix the cases; -0.15 +/- 0.09 is 1.7 sigma below 0 (still zero), -0.5 +/- 0.09
    # is 5.6 sigma below zero: unphysical, so nan rather than a made-up size.
    arr = cluster_size_from_cn(np.array([-0.03, -0.15, -0.5, 2.0]), 0.09, model=model)
    assert arr.n_atoms[:2].tolist() == [1.0, 1.0]
    assert np.isnan(arr.n_atoms[2]) and arr.n_atoms[3] > 1
    assert arr.n_atoms_hi[1] == 1  # cn + err < 0: the upper bound is one atom too
    # Without an error bar a negative CN is not consistent with zero.
    assert np.isnan(cluster_size_from_cn(-0.03, model=model).n_atoms)


def test_cluster_size_sphere_model():
    # Calvin et al. 2003: CN = 12 [1 - 3/4 x + x^3/16], x = r/R; R = 5 r -> CN = 10.2015
    cn = 12 * (1 - 0.75 / 5 + 1 / (16 * 125))
    res = cluster_size_from_cn(cn, model="sphere", bond_length=2.775)
    assert res.diameter_nm == pytest.approx(2 * 5 * 0.2775, rel=1e-6)
    assert res.n_atoms == pytest.approx(4 * np.pi * np.sqrt(2) / 3 * 125, rel=1e-6)
    with pytest.raises(ConfigError):
        cluster_size_from_cn(5.0, model="cube")
    with pytest.raises(DataError, match="bond length"):
        cluster_size_from_cn(5.0, element="Xx")


def test_trend_with_ties_at_a_bound():
    """Fractions held at a bound repeat exactly: the rank test uses its tie-corrected form."""
    frac = np.r_[np.zeros(4), np.linspace(0.1, 0.8, 8)]
    steps = pd.DataFrame({"step": range(12), "ok": True, "frac_pt_foil": frac,
                          "frac_pt_foil_err": 0.01, "wl_height": 1.3 - 0.3 * frac})
    assert list(track(steps).events["event"]) == ["reduction"]
