"""The figures and report of a run: a XANES-only series with [components] (the real Au L3
time steps against real standards, LCF and MCR) draws fractions, the LCF overlay, PCA and
MCR and no CN; a run with shell fits draws the CN with its parameter trends and the
wavelet maps, and lists each segment's lobes."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

import operando as op
from operando.config import load_config
from operando.pipeline import run
from operando.viz import write_athena

from _components_data import AU_PRJ, AU_TIMES


@pytest.fixture(scope="module")
def au_folder(shared_data, tmp_path_factory):
    """The Au time steps as their own Athena project (the shared project also holds the
    standards, which a run would take as steps) with a conditions table of the hours."""
    folder = tmp_path_factory.mktemp("au")
    s = op.read_series(AU_PRJ)
    rows = [list(s.conditions["label"]).index(t) for t in AU_TIMES]
    t = s.take(rows)
    write_athena(folder / "au_times.prj", t.energy, t.mu, AU_TIMES, element="Au", edge="L3")
    pd.DataFrame({"file": [f"au_times.prj#{n}" for n in AU_TIMES],
                  "time_h": [float(n[2:].replace("_", ".")) for n in AU_TIMES]}
                 ).to_csv(folder / "conditions.csv", index=False)
    return folder


def _au_run(folder, out, components):
    config = load_config({
        "series": {"source": "au_times.prj", "conditions": "conditions.csv"},
        "normalize": {"pre1": -150, "pre2": -30, "nnorm": 1, "norm1": 150, "norm2": 850},
        "components": components,
        "output": {"dir": str(folder / out), "plots": ["png"]},
    }, base_dir=folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.OperandoWarning)
        return run(config, progress=False)


def test_xanes_only_lcf_run_draws_the_component_figures(au_folder):
    refs = [f"{AU_PRJ}#{n}" for n in ("Au_foil", "Au3_Cl_aq", "Au_thiosulphate_aq")]
    result = _au_run(au_folder, "lcf", {"standards": refs})
    pngs = sorted(k for k in result.outputs if k.endswith(".png"))
    assert pngs == ["fractions.png", "lcf_fit.png", "pca.png", "white_line.png",
                    "xanes_difference.png", "xanes_map.png"]
    assert not [n for n in result.summary["notes"] if "not made" in n or "not computed" in n]
    assert result.tracking.metal_shell is None  # XANES only: no CN figure, and no failure note
    html = (result.dir / "report.html").read_text()
    # the overlay is the step with the most metal (d_720, the last), and the caption says so
    foil = result.steps["frac_Au_foil"]
    assert int(result.steps["step"][foil.idxmax()]) == 7
    assert "Linear-combination fit of step 7" in html and "largest Au_foil fraction" in html
    for section in ("Component analysis", "States per segment", "n_components", "Au3_Cl_aq"):
        assert section in html


def test_mcr_run_draws_spectra_and_profiles(au_folder):
    result = _au_run(au_folder, "mcr", {"method": "mcr", "n_components": 2})
    assert {"mcr.png", "pca.png", "fractions.png"} <= set(result.outputs)
    summary = json.loads((result.dir / "summary.json").read_text())
    assert summary["components"]["mcr_components"] == ["mcr1", "mcr2"]
    assert "MCR-ALS" in (result.dir / "report.html").read_text()


def test_exafs_run_draws_cn_trends_and_wavelet_lobes(samples, tmp_path):
    folder = samples / "cu_nc_potential"
    config = load_config({
        "series": {"source": "cu_nc_potential.dat", "conditions": "conditions.csv",
                   "element": "Cu", "edge": "K"},
        "foil": {"s02": 0.9},
        "exafs": {"shells": ["Cu-N", "Cu-Cu"], "kmin": 3.0, "kmax": 11.0, "rmin": 1.2, "rmax": 3.0},
        "output": {"dir": str(tmp_path / "cu"), "plots": ["png"]},
    }, base_dir=folder)
    result = run(config, progress=False)
    assert {"cn.png", "fit_parameters.png", "wavelet.png", "summary.png"} <= set(result.outputs)
    lobes = pd.read_csv(result.dir / "wavelet_lobes.csv")
    assert set(lobes["shell"]) == {"Cu-N", "Cu-Cu"}
    seg = result.tracking.segments.set_index("segment")
    cucu = lobes[lobes["shell"] == "Cu-Cu"].set_index("segment")
    # a Cu-Cu lobe of its own only where the tracker found metal, at the Cu-Cu distance
    for g, row in cucu.iterrows():
        metal = seg.loc[g, "state"] in ("cluster", "particle") and seg.loc[g, "cn_Cu-Cu"] > 2
        if metal:
            assert row["lobe"] and 2.0 < row["r"] < 2.5 and 6.0 < row["k"] < 8.5
        if seg.loc[g, "state"] == "isolated":
            assert not row["lobe"]
    html = (result.dir / "report.html").read_text()
    assert "Wavelet lobes" in html and "Evidence per event" in html and "fit_quality" in html


def test_workers_draw_the_same_figures_and_lobes_as_the_run_inline(samples, tmp_path):
    """The wavelet maps and the figures computed on the run's workers (workers = 2) are
    the same bytes as computed in the run's process (workers = 1): the lobes and every PNG
    (an SVG carries its time of writing; both runs write every SVG)."""
    folder = samples / "cu_nc_potential"
    outputs = {}
    for workers in (1, 2):
        config = load_config({
            "series": {"source": "cu_nc_potential.dat", "conditions": "conditions.csv",
                       "element": "Cu", "edge": "K"},
            "foil": {"s02": 0.9},
            "exafs": {"shells": ["Cu-N", "Cu-Cu"]},
            "output": {"dir": str(tmp_path / f"w{workers}"), "plots": ["png", "svg"]},
            "run": {"workers": workers},
        }, base_dir=folder)
        result = run(config, progress=False)
        outputs[workers] = {name: path.read_bytes() for name, path in result.outputs.items()
                            if name.endswith(".png") or name == "wavelet_lobes"}
        assert len([n for n in result.outputs if n.endswith(".svg")]) == len(outputs[workers]) - 1
    assert "wavelet.png" in outputs[2] and "wavelet_lobes" in outputs[2]
    assert outputs[1].keys() == outputs[2].keys()
    different = [name for name in outputs[1] if outputs[1][name] != outputs[2][name]]
    assert not different
