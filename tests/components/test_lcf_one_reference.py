"""LCF with one reference is refused, never reported as a fraction (#23, item 3).

With ``sum_to_one`` the single weight is the constraint itself (1 +/- 0 at every step,
whatever the spectra); without it the weight is a scale factor (an amplitude ratio that
follows the normalisation). Neither is a fraction, and a ``frac_`` column is read as one by
the tracker, so the fit is refused at the boundary (config load, ``lcf``, ``lcf_arrays``).
"""

from __future__ import annotations

import warnings

import pytest

from operando import calibrate, cli, mixtures, normalize
from operando.components import lcf, lcf_arrays
from operando.config import load_config
from operando.errors import ConfigError
from operando.pipeline import run


@pytest.fixture(scope="module")
def cu_mixture(shared_data, tmp_path_factory):
    """Cu foil + CuO mixed from the real spectra, metal 0 -> 1 in 5 steps (0.065 % noise)."""
    series, truth = mixtures.cu_fraction_series(n_steps=5, seed=3)
    folder = tmp_path_factory.mktemp("cu") / "data"
    mixtures.write_folder(series, truth, folder)
    return series, truth, folder


def test_lcf_refuses_one_reference(cu_mixture, shared_data):
    series, _, _ = cu_mixture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norm = normalize(calibrate(series)[0])
    foil = str(shared_data / "references" / "cu_foil_rt.xdi")
    for sum_to_one in (True, False):
        with pytest.raises(ConfigError, match="at least two standards.*'cu_foil'"):
            lcf(norm, {"cu_foil": foil}, sum_to_one=sum_to_one)
    with pytest.raises(ConfigError, match="at least two standards"):
        lcf_arrays(norm.series.energy, norm.norm, norm.norm[:1], names=["start"])


def test_config_and_cli_refuse_one_lcf_reference(cu_mixture, shared_data, tmp_path, capsys):
    _, _, folder = cu_mixture
    foil = shared_data / "references" / "cu_foil_rt.xdi"
    with pytest.raises(ConfigError, match=r"\[components\] standards.*two or more"):
        load_config({"series": {"source": str(folder)},
                     "components": {"standards": {"cu_foil": str(foil)}}})
    with pytest.raises(ConfigError, match=r"\[components\] standards"):
        load_config({"series": {"source": str(folder)}, "components": {"standards": "first"}})
    toml = tmp_path / "run.toml"
    out = tmp_path / "out"
    toml.write_text(f'[series]\nsource = "{folder}"\npattern = "*.xdi"\n'
                    f'[components]\nstandards = {{ cu_foil = "{foil}" }}\n'
                    f'[output]\ndir = "{out}"\nplots = []\n')
    code = cli.main(["run", str(toml), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "two or more" in err
    assert not (out / "steps.csv").exists()       # refused before any work


def test_one_mcr_component_gives_no_fraction_columns(cu_mixture, tmp_path):
    """MCR with one component has the same flaw (its weight is 1 at every step): the run
    keeps its spectrum and figures but writes no frac_ column, and says why."""
    _, _, folder = cu_mixture
    cfg = load_config({"series": {"source": str(folder), "pattern": "*.xdi",
                                  "conditions": str(folder / "conditions.csv")},
                       "components": {"method": "mcr", "n_components": 1},
                       "output": {"dir": str(tmp_path / "out"), "plots": [], "report": False}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(cfg, progress=False)
    assert not [c for c in result.steps.columns if c.startswith("frac_")]
    assert "one component" in result.summary["components"]["mcr_note"]
