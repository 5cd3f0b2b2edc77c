"""Run options that change how files are read and which settings apply (#14 wiring)."""

from __future__ import annotations

import json
import warnings

import numpy as np

import pytest

from operando.config import load_config
from operando.errors import ConfigError, DataError
from operando.pipeline import run


def test_series_reading_keys_are_validated():
    cfg = load_config({"series": {"source": "x", "mu": ["ch1", "ch2"], "order": "time",
                                  "channels": {"i0": "I0_EH1", "icr": "ICR"}, "dead_time": True}})
    assert cfg.series.mu == ("ch1", "ch2") and cfg.series.order == "time"
    assert dict(cfg.series.channels) == {"i0": "I0_EH1", "icr": "ICR"}
    with pytest.raises(ConfigError, match="did you mean 'iref'"):
        load_config({"series": {"source": "x", "channels": {"irf": "REF"}}})
    with pytest.raises(ConfigError, match="order"):
        load_config({"series": {"source": "x", "order": "size"}})


def test_athena_project_settings_reported_and_used_on_request(shared_data, tmp_path):
    prj = shared_data / "series" / "pt_l3_hydrogen_desorption.prj"
    base = {"series": {"source": str(prj), "element": "Pt", "edge": "L3"},
            "output": {"dir": str(tmp_path / "a"), "plots": [], "report": False, "athena": False}}
    plain = run(load_config(base), progress=False)
    resolved = plain.settings["resolved"]
    assert resolved["project_settings"]["norm1"] == pytest.approx(12.251)
    assert resolved["project_settings_used"] is False
    assert resolved["normalize"]["norm1"] != pytest.approx(12.251)  # Larch's own default
    base["series"]["use_project_settings"] = True
    base["output"]["dir"] = str(tmp_path / "b")
    used = run(load_config(base), progress=False)
    assert used.settings["resolved"]["project_settings_used"] is True
    assert used.settings["resolved"]["normalize"]["norm1"] == pytest.approx(12.251)
    assert used.settings["resolved"]["normalize"]["e0_value"] == pytest.approx(11564.508, abs=1e-3)


def test_an_undetermined_s02_stops_the_run(shared_data, tmp_path):
    """A foil whose data end at k ~ 6 cannot give S0^2 for a k 3-12 window: the run says so
    instead of using 0.8 +/- 1.4 for every CN."""
    foil = shared_data / "references" / "cu_foil_rt.xdi"
    lines = foil.read_text().splitlines()
    keep = [ln for ln in lines if ln.startswith("#") or float(ln.split()[0]) < 8979 + 140]
    short = tmp_path / "short_foil.xdi"
    short.write_text("\n".join(keep) + "\n")
    cfg = load_config({
        "series": {"source": str(foil), "element": "Cu", "edge": "K"},
        "foil": {"file": str(short)},
        "exafs": {"shells": ["Cu-Cu"], "kmin": 3.0, "kmax": 12.0},
        "output": {"dir": str(tmp_path / "out"), "plots": [], "report": False}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="S0\\^2 .* not determined|S0\\^2 calibration"):
            run(cfg, progress=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_references_from_the_series_itself(shared_data, tmp_path):
    """LCF against stretches of the series (its oxidised start and its most metallic
    steps): the weights are the fractions relative to those end states."""
    from operando import mixtures

    series, truth = mixtures.cu_fraction_series(n_steps=11)
    mixtures.write_folder(series, truth, tmp_path / "data")
    cfg = load_config({
        "series": {"source": str(tmp_path / "data"), "pattern": "*.xdi",
                   "conditions": str(tmp_path / "data" / "conditions.csv"),
                   "element": "Cu", "edge": "K"},
        "normalize": {"calibrate": True},
        "components": {"standards": {"start": "first", "metal": "steps:9-10"}},
        "output": {"dir": str(tmp_path / "out"), "plots": [], "report": False}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(cfg, progress=False)
    metal = truth["frac_cu_foil"].to_numpy()
    expected = (metal - metal[0]) / (metal[9:11].mean() - metal[0])
    got = result.steps["frac_metal"].to_numpy()
    assert np.abs(got - expected)[:10].max() < 0.03  # step 10 (1.05) is held at the bound 1
    assert got[10] == 1.0
    refs = result.summary["components"]["standards"]
    assert [r["name"] for r in refs] == ["start", "metal"]
