"""Input the readers used to accept silently (issue #15, item 8; issue #14, warnings):
HDF5 energies in keV and mu that is not numbers, conditions with a fractional step,
decimal commas and stray text, and messages that list a thousand column names."""

import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

from operando.errors import ConfigError, OperandoWarning, ReadError
from operando.io import open_hdf5, read_series, write_hdf5


@pytest.fixture(scope="module")
def pt_series(shared_data):
    return read_series(shared_data / "series" / "pt_l3_hydrogen_desorption.prj")


def _rewrite(path, name, data, **attrs):
    with h5py.File(path, "r+") as h5:
        del h5[name]
        ds = h5.create_dataset(name, data=data)
        for key, value in attrs.items():
            ds.attrs[key] = value


# ------------------------------------------------------------------------ HDF5
def test_hdf5_energy_in_kev_is_converted(tmp_path, pt_series):
    """Issue #15: keV energies made every step fail with a misleading final error."""
    path = write_hdf5(pt_series, tmp_path / "s.h5")
    _rewrite(path, "energy", pt_series.energy / 1000.0, units="eV")
    with pytest.warns(OperandoWarning, match="taken as keV and converted to eV"):
        series = read_series(path)
    np.testing.assert_allclose(series.energy, pt_series.energy, rtol=1e-15)
    assert (series.element, series.edge) == ("Pt", "L3")
    _rewrite(path, "energy", pt_series.energy / 1000.0, units="keV")   # said so: no guess
    np.testing.assert_allclose(read_series(path).energy, pt_series.energy, rtol=1e-15)
    np.testing.assert_allclose(open_hdf5(path).energy, pt_series.energy, rtol=1e-15)


@pytest.mark.parametrize("opener", [read_series, open_hdf5])
def test_hdf5_mu_as_strings_refused_integers_converted(tmp_path, pt_series, opener):
    path = write_hdf5(pt_series, tmp_path / "s.h5")
    _rewrite(path, "mu", pt_series.mu.astype(str).astype("S"))
    with pytest.raises(ReadError, match=r"s.h5: /mu holds byte strings \(\|S.*\), not numbers "
                                        r"\(accepted: /mu as floating-point numbers"):
        opener(path)
    counts = np.round(pt_series.mu * 1000).astype(np.int32)
    _rewrite(path, "mu", counts)
    with pytest.warns(OperandoWarning, match=r"/mu holds integers \(int32\); converted"):
        series = opener(path)
    mu = series.mu if hasattr(series, "mu") else series.read_rows(0, len(series))[0]
    np.testing.assert_array_equal(mu, counts.astype(float))
    _rewrite(path, "mu", pt_series.mu > 0.5)
    with pytest.raises(ReadError, match="/mu holds booleans"):
        opener(path)


# ----------------------------------------------------------------- conditions
def test_conditions_step_must_be_whole(tmp_path, shared_data):
    """Issue #15: a conditions step of 3.5 silently became 3."""
    path = shared_data / "series" / "pt_l3_hydrogen_desorption.prj"
    table = pd.DataFrame({"step": [0, 1, 2, 3.5], "gas": list("abcd")})
    with pytest.raises(ConfigError, match=r"'step' column must hold whole numbers.*row 4 "
                                          r"holds 3.5"):
        read_series(path, conditions=table)
    csv = tmp_path / "c.csv"
    csv.write_text("step,gas\n0,a\n1.0,b\nx,c\n")
    with pytest.raises(ConfigError, match="row 3 holds 'x'"):
        read_series(path, conditions=csv)


def test_decimal_comma_and_stray_text_in_known_columns(tmp_path, pt_series, shared_data):
    """Issue #15: "0,5" and "abc" in potential_V silently became labels.  A decimal comma
    (semicolon-separated CSV, European locale) is read as a point with a warning naming
    the rows; unusual text stays a label with a warning; text in temperature_K or time_s
    is refused naming the row."""
    source = shared_data / "series" / "pt_l3_hydrogen_desorption.prj"
    n = len(pt_series)
    csv = tmp_path / "c.csv"
    rows = [f"{i};{'OCP' if i == 0 else f'0,{i}'};{300 + i}" for i in range(n)]
    csv.write_text("step;potential_V;temperature_K\n" + "\n".join(rows) + "\n")
    with pytest.warns(OperandoWarning, match=r"potential_V written with a decimal comma in "
                                             r"row 2 \(step 1\), .* and 15 more \(e.g. '0,1'\)"):
        series = read_series(source, conditions=csv)
    potential = series.conditions["potential_V"]
    assert potential[0] == "OCP" and potential[3] == 0.3 and potential.dtype == object
    table = pd.DataFrame({"step": range(n), "potential_V": ["abc"] + [0.1] * (n - 1)})
    with pytest.warns(OperandoWarning, match="potential_V holds text that is not a number nor "
                                             r"a usual label such as 'OCP' in row 1 \(step 0\)"):
        read_series(source, conditions=table)
    table = pd.DataFrame({"step": range(n), "temperature_K": ["hot"] + [300.0] * (n - 1)})
    with pytest.raises(ConfigError, match=r"temperature_K must hold numbers; row 1 \(step 0\) "
                                          "holds 'hot'"):
        read_series(source, conditions=table)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OperandoWarning)        # OCP alone: no warning
        table = pd.DataFrame({"step": range(n), "potential_V": ["OCP"] + [0.1] * (n - 1)})
        read_series(source, conditions=table)


# -------------------------------------------------------------------- messages
def test_a_thousand_columns_give_short_messages(tmp_path):
    """Issue #14: a column file's 1,103 names were dumped into one 11 kB warning."""
    labels = [f"det_{i:04d}" for i in range(1103)]
    rng = np.random.default_rng(0)
    data = np.column_stack([8960 + np.arange(40.0), rng.random((40, 1102)) + 1])
    path = tmp_path / "wide.dat"
    path.write_text("# " + " ".join(labels) + "\n"
                    + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in data) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = read_series(path, element="Cu", edge="K")       # a matrix: 1,102 spectra
    assert series.mu.shape == (1102, 40)
    assert caught and max(len(str(w.message)) for w in caught) < 300
    assert "and 1,095 more" in str(caught[0].message)
    path.write_text("# " + " ".join(["i0"] + labels[1:]) + "\n"
                    + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in data) + "\n")
    with pytest.raises(ConfigError) as info:
        read_series(path)
    assert len(str(info.value)) < 500 and "and 1,095 more" in str(info.value)
