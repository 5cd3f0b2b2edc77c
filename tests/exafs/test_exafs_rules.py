"""Shell rules (fixed, bounded, tied, from the reference, dE0 groups) from Python and from
the configuration, ties in batch_fit against Larch expressions, the reference foil's
disorder (S0^2 / sigma2 of real Cu and Pt foils, temperature model), reference-phase
paths, and the systematics band."""

from __future__ import annotations

import math

import numpy as np
import pytest

from operando import exafs, mixtures, xanes
from operando.errors import ConfigError
from operando.exafs.plan import build_plan
from operando.exafs.shells import Rule, ShellSpec
from operando.feffpaths import path_for_shell

WINDOW = dict(kmin=3.0, kmax=12.0, rmin=1.0, rmax=3.0, kweight=2, dk=1.0, window="hanning")


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize("value, rule", [
    (None, Rule()),
    ("free", Rule()),
    (0.0085, Rule(mode="fixed", value=0.0085)),
    ([0.003, 0.01], Rule(lo=0.003, hi=0.01)),
    ("0.5 * Cu-O", Rule(mode="tied", source="Cu-O", factor=0.5)),
    ("Cu-O*0.5", Rule(mode="tied", source="Cu-O", factor=0.5)),
    ("Cu-Cu_ox2", Rule(mode="tied", source="Cu-Cu_ox2", factor=1.0)),
    ({"shell": "Cu-O", "factor": 2}, Rule(mode="tied", source="Cu-O", factor=2.0)),
    ("foil", Rule(mode="foil")),
])
def test_rule_values(value, rule):
    assert Rule.parse("sigma2", value, "Cu-Cu") == rule
    assert Rule.parse("sigma2", rule.to_value(), "Cu-Cu") == rule       # round trip


@pytest.mark.parametrize("kind, value, match", [
    ("sigma2", True, "not accepted"),
    ("sigma2", [0.01, 0.003], r"\[min, max\]"),
    ("sigma2", "half of Cu-O", "not accepted"),
    ("de0", "Cu-O", "e0_group"),
    ("cn", "foil", "sigma2, deltar and de0"),
    ("de0", {"edge": -3}, "energy"),
])
def test_bad_rule_values_name_shell_and_parameter(kind, value, match):
    with pytest.raises(ConfigError, match=match) as err:
        Rule.parse(kind, value, "Cu-Cu")
    assert f"'Cu-Cu' {kind}" in str(err.value)


def test_model_checks_ties_labels_and_groups():
    with pytest.raises(ConfigError, match="not a shell of the model"):
        exafs.ShellModel(shells=["Cu-O", {"label": "Cu-C", "cn": "2 * Cu-N"}])
    with pytest.raises(ConfigError, match="tied to itself"):
        exafs.ShellModel(shells=["Cu-O", {"label": "Cu-C", "cn": "Cu-C"}])
    with pytest.raises(ConfigError, match="tied too"):
        exafs.ShellModel(shells=["Cu-O", {"label": "Cu-C", "cn": "Cu-O"},
                                 {"label": "Cu-C_2", "cn": "Cu-C"}])
    with pytest.raises(ConfigError, match="different de0 rules"):
        exafs.ShellModel(shells=[{"label": "Cu-O", "de0": 1.0}, {"label": "Cu-C", "de0": 2.0}])
    with pytest.raises(ConfigError, match="Absorber-Scatterer"):
        ShellSpec.from_value("CuO-Cu")
    with pytest.raises(ConfigError, match="did you mean 'sigma2'"):
        ShellSpec.from_value({"label": "Cu-O", "sigma": 0.003})
    with pytest.raises(ConfigError, match="one absorber"):
        exafs.ShellModel(shells=["Cu-O", "Pt-Pt"])
    m = exafs.ShellModel(shells=["Cu-O", "Cu-Cu", {"label": "Cu-Cu_ox1", "cn": "Cu-O",
                                                   "e0_group": "oxide"}], share_e0="phase")
    assert m.e0_groups() == {"ligand": ["Cu-O"], "metal": ["Cu-Cu"], "oxide": ["Cu-Cu_ox1"]}
    assert m.tested_shells() == ["Cu-Cu"] and not m.spec("Cu-Cu_ox1").is_metal
    assert exafs.ShellModel(shells=m.to_dict()["shells"], share_e0="phase") == m
    assert "cn_Cu-Cu_ox1_err_s02" in exafs.result_columns(m)
    assert "cn_Cu-Cu_ox1_limit" not in exafs.result_columns(m)   # tied: not tested


def test_plan_counts_and_absent_pinning():
    m = exafs.ShellModel(shells=["Cu-O", {"label": "Cu-Cu", "sigma2": 0.0085},
                                 {"label": "Cu-Cu_ox1", "cn": "Cu-O", "sigma2": 0.005,
                                  "deltar": 0.0}], share_e0="phase")
    plan = build_plan(m)
    # Cu-O: CN, dR, sigma2; Cu-Cu: CN, dR; dE0: ligand and metal groups
    assert plan.n_varys == 7
    assert plan.pars["cn:Cu-Cu_ox1"].tie == ("cn:Cu-O", 1.0)
    pinned = build_plan(m, absent=["Cu-Cu"])
    # absent metal: its dR held at 0, its lone dE0 group follows the ligand's (CN stays)
    assert pinned.n_varys == 5 and pinned.pars["de0:metal"].tie == ("de0:ligand", 1.0)
    assert pinned.pars["cn:Cu-Cu"].lo == m.absent_cn_min
    assert build_plan(m, removed=["Cu-O"]).pars["cn:Cu-Cu_ox1"].tie == ("cn:Cu-O", 1.0)
    with pytest.raises(ConfigError, match="E0 of the data"):
        build_plan(exafs.ShellModel(shells=[{"label": "Cu-Cu", "de0": {"edge": 8985.0}}]))
    edge = build_plan(exafs.ShellModel(shells=[{"label": "Cu-Cu", "de0": {"edge": 8985.0}}]),
                      e0=np.array([8979.0, 8983.0]))
    np.testing.assert_allclose(edge.pars["de0:all"].value, [6.0, 2.0])


# ------------------------------------------------------ ties vs Larch exprs
@pytest.fixture(scope="module")
def cuo_chi(shared_data):
    from larch import Group
    from larch.io import read_ascii
    from larch.xafs import autobk, pre_edge

    d = read_ascii(str(shared_data / "references" / "cuo_tenorite_13K.xdi"))
    g = Group(energy=np.asarray(d.energy, float), mu=np.log(d.i0 / d.itrans))
    pre_edge(g)
    autobk(g, rbkg=1.0, kweight=2)
    return g


def test_tied_cn_and_shared_de0_in_batch_fit_equal_larch_expressions(cuo_chi):
    """Real CuO (13 K): Cu-O plus CuO's Cu...Cu at 2.90 A with CN tied to CN(Cu-O) and
    the Cu...Cu dE0 tied to the Cu-O one; batch_fit's ties against feffit expressions."""
    from larch import Group
    from larch.fitting import param, param_group
    from larch.xafs import feffit, feffit_dataset, feffit_transform, feffpath

    from operando.exafs.batch import batch_fit, tabulate_path

    g = cuo_chi
    p_o, p_c = path_for_shell("Cu-O"), path_for_shell("Cu-Cu", distance=2.90)
    pars = param_group(s02=param(0.9), cn_o=param(4.0, vary=True, min=0, max=16),
                       dr_o=param(0.0, vary=True, min=-0.25, max=0.25),
                       ss_o=param(0.004, vary=True, min=0.001, max=0.03),
                       de0=param(0.0, vary=True, min=-15, max=15),
                       cn_c=param("1.0*cn_o"), dr_c=param(0.0, vary=True, min=-0.25, max=0.25),
                       ss_c=param(0.005, vary=True, min=0.001, max=0.03), de0_c=param("de0"))
    paths = [feffpath(str(p_o.file), label="o", degen=1, s02="s02*cn_o", e0="de0",
                      deltar="dr_o", sigma2="ss_o"),
             feffpath(str(p_c.file), label="c", degen=1, s02="s02*cn_c", e0="de0_c",
                      deltar="dr_c", sigma2="ss_c")]
    tr = feffit_transform(fitspace="r", **WINDOW)
    # plain arrays (no autobk delta_chi in the noise), as batch_fit gets
    ref = feffit(pars, feffit_dataset(data=Group(k=g.k, chi=g.chi), paths=paths, transform=tr))
    res = batch_fit(g.k, g.chi[None], [tabulate_path(p_o, label="O"), tabulate_path(p_c, label="C")],
                    s02=0.9, share_e0=False, ties={"cn_C": ("cn_O", 1.0), "de0_C": ("de0_O", 1.0)},
                    init={"O": {"cn": 4.0, "sigma2": 0.004}, "C": {"sigma2": 0.005}},
                    bounds={"O": {"cn": (0, 16), "deltar": (-0.25, 0.25), "sigma2": (0.001, 0.03),
                                  "de0": (-15, 15)},
                            "C": {"deltar": (-0.25, 0.25), "sigma2": (0.001, 0.03)}},
                    ftol=1e-10, xtol=1e-10, **WINDOW)
    assert res.n_varys == ref.nvarys == 6
    for ours, theirs in (("cn_O", "cn_o"), ("deltar_C", "dr_c"), ("sigma2_C", "ss_c"),
                         ("de0_O", "de0"), ("cn_C", "cn_c"), ("de0_C", "de0_c")):
        par = ref.params[theirs]
        # same optimum; analytic vs finite-difference Jacobian: errors within 2 %
        assert abs(res.value[ours][0] - par.value) <= 0.01 * par.stderr, ours
        assert res.stderr[ours][0] == pytest.approx(par.stderr, rel=0.02), ours
    assert res.chi_square[0] == pytest.approx(ref.chi_square, rel=1e-5)


# ---------------------------------------------------------- the foils
def _foil_chi(shared_data, name):
    from larch import Group
    from larch.io import read_ascii
    from larch.xafs import autobk, pre_edge

    d = read_ascii(str(shared_data / "references" / name))
    g = Group(energy=np.asarray(d.energy, float), mu=np.log(d.i0 / d.itrans))
    pre_edge(g)
    autobk(g, rbkg=1.0, kweight=2)
    return exafs.ChiSeries(k=g.k, chi=g.chi[None], e0=np.array([g.e0]), edge_step=np.ones(1),
                           ok=np.ones(1, bool), reason=[""], settings={})


def test_pt_and_cu_foil_disorder_match_the_correlated_debye_model(shared_data):
    """Room-temperature foils: sigma2 against the correlated-Debye value at 295 K with the
    published Debye temperatures (Pt 230 K, Cu 315 K; Sevillano, Meuth & Rehr 1979), on
    the file's own FEFF path (feffcu01.dat for Cu)."""
    from larch.xafs import feffpath, sigma2_debye

    pt = exafs.calibrate_s02(_foil_chi(shared_data, "pt_foil_rt.xdi"), shell="Pt-Pt", cn=12,
                             kmin=3, kmax=17, dk=4, window="kaiser", rmin=1.9, rmax=3.2)
    # research fit with xraylarch on the same file: S0^2 0.855 +/- 0.027, sigma2 0.00485
    assert pt.s02 == pytest.approx(0.855, abs=0.027) and pt.fit["fit_ok"]
    debye = sigma2_debye(295.0, 230.0, feffpath(str(path_for_shell("Pt-Pt").file)))
    assert abs(pt.sigma2 - debye) <= 2 * pt.sigma2_err + 0.0002      # 0.00485 vs 0.00483
    cufile = shared_data / "feff" / "feffcu01.dat"
    cu = exafs.calibrate_s02(_foil_chi(shared_data, "cu_foil_rt.xdi"), shell="Cu-Cu", cn=12,
                             file=cufile, kmin=3, kmax=17, dk=4, window="kaiser", rmin=1.4,
                             rmax=3.0)
    debye = sigma2_debye(295.0, 315.0, feffpath(str(cufile)))
    assert abs(cu.sigma2 - debye) <= 2 * cu.sigma2_err                # 0.00867 vs 0.0089
    # S0^2 depends on the window: calibrate in the sample's (Pt k 3-12: 0.77, research)
    pt12 = exafs.calibrate_s02(_foil_chi(shared_data, "pt_foil_rt.xdi"), shell="Pt-Pt", cn=12,
                               kmin=3, kmax=12, rmin=1.2, rmax=3.2)
    assert pt12.s02 < pt.s02 - 0.04


def test_apply_foil_policies_and_temperature(shared_data):
    from larch.xafs import feffpath, sigma2_debye

    values = exafs.FoilValues(shell="Cu-Cu", sigma2=0.0086, sigma2_err=0.0004,
                                   deltar=-0.015, edge_energy=8983.0)
    m = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW)
    fixed = exafs.apply_foil(m, values)
    cu = fixed.spec("Cu-Cu")
    assert cu.sigma2 == Rule(mode="fixed", value=0.0086) and cu.deltar == Rule()
    assert cu.de0 == Rule(mode="edge", value=8983.0) and cu.absent_sigma2 == 0.0086
    assert fixed.e0_groups() == {"all": ["Cu-O"], "Cu-Cu": ["Cu-Cu"]}
    bound = exafs.apply_foil(m, values, sigma2="bound", deltar="fix", de0="free")
    assert bound.spec("Cu-Cu").sigma2 == Rule(lo=0.0082, hi=0.0086 + 0.003)
    assert bound.spec("Cu-Cu").deltar == Rule(mode="fixed", value=-0.015)
    assert exafs.apply_foil(m, values, sigma2="free", de0="free") == m
    # an explicit rule on the shell wins; "foil" takes the foil's value
    own = exafs.ShellModel(shells=["Cu-O", {"label": "Cu-Cu", "sigma2": 0.01,
                                            "deltar": "foil"}], **WINDOW)
    got = exafs.apply_foil(own, values).spec("Cu-Cu")
    assert got.sigma2.value == 0.01 and got.deltar == Rule(mode="fixed", value=-0.015)
    # a 573 K sample: sigma2 + [Debye(573) - Debye(295)] on the shell's path
    hot = exafs.apply_foil(m, values, temperature_K=295, sample_temperature_K=573,
                                debye_temperature_K=315)
    path = feffpath(str(path_for_shell("Cu-Cu").file))
    shift = sigma2_debye(573.0, 315.0, path) - sigma2_debye(295.0, 315.0, path)
    assert hot.spec("Cu-Cu").sigma2.value == pytest.approx(0.0086 + shift, rel=1e-12)
    assert 0.006 < shift < 0.008
    with pytest.raises(ConfigError, match="debye_temperature_K"):
        exafs.apply_foil(m, values, temperature_K=295, sample_temperature_K=573)
    # unknown values (NaN) leave the shell alone
    assert exafs.apply_foil(m, exafs.FoilValues(shell="Cu-Cu")) == m


# ---------------------------------------------------------- config tables
def test_config_reads_shell_tables_ties_and_reference_policies(tmp_path):
    from operando.config import load_config

    (tmp_path / "feff").mkdir()
    src = path_for_shell("Cu-Cu", distance=2.90).file
    (tmp_path / "feff" / "feff0004.dat").write_text(src.read_text())
    (tmp_path / "scans").mkdir()
    text = f"""
[series]
source = "{tmp_path / 'scans'}"
element = "Cu"
[foil]
s02 = 0.88
sigma2 = 0.0085
de0 = "free"
[exafs]
share_e0 = "phase"
significance = "all"
systematics = true
shells = ["Cu-O", "Cu-Cu",
          {{label = "Cu-Cu_ox1", file = "feff/feff0004.dat", cn = "1.0 * Cu-O", sigma2 = 0.004, deltar = [-0.05, 0.05], e0_group = "oxide"}}]
"""
    (tmp_path / "run.toml").write_text(text)
    cfg = load_config(tmp_path / "run.toml")
    shells = cfg.exafs.shells
    assert shells[2]["file"] == str(tmp_path / "feff" / "feff0004.dat")    # relative to the file
    assert cfg.exafs.share_e0 == "phase" and cfg.exafs.systematics
    assert cfg.foil.sigma2 == 0.0085 and cfg.foil.de0 == "free"
    model = exafs.ShellModel(shells=list(shells), share_e0="phase")
    assert model.spec("Cu-Cu_ox1").cn == Rule(mode="tied", source="Cu-O", factor=1.0)
    for bad, match in (('shells = [{label = "Cu-C", cn = "2 * Cu-N"}]', "not a shell"),
                       ('shells = [{label = "Cu-O", sigma = 0.003}]', "did you mean"),
                       ('share_e0 = "yes"', "phase")):
        with pytest.raises(ConfigError, match=match):
            load_config({"series": {"source": str(tmp_path / "scans")},
                         "foil": {"s02": 0.9}, "exafs": _toml_entry(bad)})
    with pytest.raises(ConfigError, match="fix.*bound.*free"):
        load_config({"series": {"source": str(tmp_path / "scans")},
                     "foil": {"s02": 0.9, "sigma2": "fixed"}, "exafs": {}})


def _toml_entry(line):
    import tomllib

    return tomllib.loads(line)


# ------------------------------------------------------- phases, systematics
def test_tenorite_cluster_and_paths():
    from operando.exafs import phases

    atoms = phases.cluster(phases.CUO_CELL, phases.CUO_SITES, absorber="Cu", rmax=3.3)
    d = np.round([np.linalg.norm(p) for _, p in atoms[1:]], 3)
    # tenorite (Asbrink & Norrby 1970): 2 x 1.951, 2 x 1.961 Cu-O, 2 x 2.784 O,
    # Cu at 2.901 (4), 3.083 (4), 3.173 (2)
    assert d.tolist() == [1.951] * 2 + [1.961] * 2 + [2.784] * 2 + [2.901] * 4 + [3.083] * 4 \
        + [3.173] * 2
    paths = phases.phase_paths(atoms, rmax=3.2)
    assert [(p.scatterer, round(p.reff, 3), p.degeneracy) for p in paths] == [
        ("O", 1.951, 2.0), ("O", 1.961, 2.0), ("O", 2.784, 2.0), ("Cu", 2.901, 4.0),
        ("Cu", 3.083, 4.0), ("Cu", 3.173, 2.0)]
    with pytest.raises(ConfigError, match="ligand_cn"):
        phases.tied_shells(paths, ligand="Cu-O", ligand_cn=0)


def test_systematics_band_and_plot(shared_data):
    refs = mixtures.load_references(["cu_foil", "cuo"], data_dir=shared_data)
    series, _ = mixtures.mix_series(refs, [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]], noise=0.003,
                                    seed=4, energy_jitter=0.0)
    fser, _ = mixtures.mix_series(refs, [[1.0, 0.0]], noise="qexafs", seed=99, energy_jitter=0.0)
    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW)
    sy = exafs.cn_systematics(xanes.normalize(series, e0="first"), model,
                              foil=xanes.normalize(fser, e0="each"))
    names = [v["name"] for v in sy.variants]
    assert names == ["base", "kmax-2", "kmax+1", "rbkg0.8", "rbkg1.2", "rmin+0.2", "rmax+0.2",
                     "e0 each"]
    t = sy.table
    assert (t["cn_Cu-Cu_sys_min"] <= t["cn_Cu-Cu"] + 1e-12).all()
    assert (t["cn_Cu-Cu"] <= t["cn_Cu-Cu_sys_max"] + 1e-12).all()
    np.testing.assert_allclose(t["cn_Cu-Cu_sys"], (t["cn_Cu-Cu_sys_max"] - t["cn_Cu-Cu_sys_min"]) / 2)
    # every variant recalibrates the foil in its own window: S0^2 differs between them
    assert sy.by_variant.groupby("variant")["s02"].first().nunique() > 3
    # measured on this input: the band of CN(Cu-Cu) is below 1 at every step with the
    # foil's sigma2 and dE0
    assert (t["cn_Cu-Cu_sys"] < 1.0).all()
    fig = sy.plot("Cu-Cu", x=[0, 6, 12], truth=[0, 6, 12])
    assert fig.axes[0].get_ylabel() == "CN(Cu-Cu)"
    assert math.isfinite(float(t["cn_Cu-Cu_sys_sd"].iloc[1]))
