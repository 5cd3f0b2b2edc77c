"""Notebook objects: HTML reprs, the xarray bridge (and back), the step explorer's figure."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import operando as op
from operando.components import lcf

ROOT = Path(__file__).resolve().parents[2]
xr = pytest.importorskip("xarray", reason="the xarray bridge needs xarray (pip install '.[notebook]')")


@pytest.fixture(scope="module")
def pt(samples):
    folder = samples / "pt_co_oxidation"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.OperandoWarning)  # the foil is not a step
        series = op.read_series(folder, conditions=folder / "conditions.csv")
    nz = op.normalize(series, e0="first")
    chi = op.remove_background(nz)
    model = op.ShellModel(shells=["Pt-O", "Pt-Pt"], kmin=3, kmax=12, rmin=1.2, rmax=3.2)
    fits = op.fit_shells(chi, model, s02=0.85)
    steps = (series.conditions.merge(nz.to_dataframe(), on="step").merge(op.white_line(nz), on="step")
             .merge(fits.to_dataframe(), on="step"))
    return series, nz, chi, fits, op.track(steps)


def test_html_reprs_hold_the_numbers(pt):
    series, nz, chi, fits, tr = pt
    h = series._repr_html_()
    assert "Series Pt L3: 16 spectra x 428 points" in h and "<svg" in h and "CO+O2" in h
    h = nz._repr_html_()
    assert "NormalizedSeries: 16 steps, 16 ok" in h and f"{nz.e0[0]:.6g}" in h
    h = fits._repr_html_()
    assert "shells Pt-O, Pt-Pt" in h and f"{fits.table['cn_Pt-Pt'].iloc[0]:.4g}" in h
    h = tr._repr_html_()
    assert f"{len(tr.events)} events" in h
    for event in tr.events["event"]:
        assert event in h
    # a long table shows its head and tail and says what it left out
    assert "more rows" in series._repr_html_() or len(series) <= 12


def test_reprs_do_not_import_matplotlib():
    code = ("import sys, numpy as np, pandas as pd, operando as op\n"
            "e = np.linspace(8900, 9100, 300)\n"
            "mu = 0.5 + np.arctan((e - 8980) / 2)[None, :] / np.pi + np.zeros((3, 1))\n"
            "s = op.Series(e, mu, pd.DataFrame({'step': range(3), 'file': list('abc')}))\n"
            "s._repr_html_(); op.normalize(s)._repr_html_()\n"
            "print('matplotlib' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_series_round_trips_through_xarray_and_netcdf(pt, tmp_path):
    series = pt[0]
    ds = series.to_xarray()
    assert ds["mu"].dims == ("step", "energy") and "reference" in ds
    assert list(ds["gas"].values[:4]) == ["O2"] * 4 and ds.attrs["element"] == "Pt"
    # select by condition as in xarray
    assert ds.sel(step=ds.gas == "H2").sizes["step"] == 4
    back = op.Series.from_xarray(ds)
    np.testing.assert_array_equal(back.mu, series.mu)
    np.testing.assert_array_equal(back.reference, series.reference)
    np.testing.assert_array_equal(back.energy, series.energy)
    pd.testing.assert_frame_equal(back.conditions, series.conditions, check_dtype=False)
    assert (back.element, back.edge) == ("Pt", "L3")
    path = tmp_path / "series.nc"
    ds.to_netcdf(path, engine="scipy")
    again = op.Series.from_xarray(xr.open_dataset(path, engine="scipy"))
    np.testing.assert_array_equal(again.mu, series.mu)
    assert list(again.conditions["gas"]) == list(series.conditions["gas"])


def test_mixed_condition_column_comes_back_as_text():
    e = np.linspace(8900, 9100, 50)
    cond = pd.DataFrame({"step": range(3), "file": ["a", "b", "c"],
                         "potential_V": pd.Series([0.5, -0.2, "OCP"], dtype=object)})
    s = op.Series(e, np.ones((3, 50)), cond, element="Cu", edge="K")
    back = op.Series.from_xarray(s.to_xarray())
    assert list(back.conditions["potential_V"]) == ["0.5", "-0.2", "OCP"]
    da = s.to_xarray()["mu"]  # a bare DataArray works too (no file names: empty)
    assert op.Series.from_xarray(da).files == ["a", "b", "c"]
    with pytest.raises(op.DataError, match="'mu' variable"):
        op.Series.from_xarray(s.to_xarray().rename({"mu": "absorbance"}))


def test_results_to_xarray(pt):
    series, nz, chi, fits, _ = pt
    ds = nz.to_xarray()
    np.testing.assert_array_equal(ds["norm"].values, nz.norm)
    assert ds["e0"].dims == ("step",) and "pre1" in ds.attrs["settings"]
    assert op.Series.from_xarray(ds).mu.shape == series.mu.shape  # back to the raw series
    c = chi.to_xarray()
    assert c["chi"].dims == ("step", "k") and c.sizes["k"] == chi.k.size and "gas" in c.coords
    f = fits.to_xarray()
    np.testing.assert_array_equal(f["cn_Pt-Pt"].values, fits.table["cn_Pt-Pt"].to_numpy())
    assert f["model_chi"].dims == ("step", "k")
    rs = op.fourier_transform(chi, kmin=3, kmax=12).to_xarray(chi.conditions)
    assert rs["chir_mag"].dims == ("step", "r") and "gas" in rs.coords
    r = lcf(nz, {"first": "first", "last": "last"})
    d = r.to_xarray()
    assert list(d["component"].values) == ["first", "last"]
    np.testing.assert_array_equal(d["weight"].values, r.weights)
    assert "frac_first" in r._repr_html_()


def test_explorer_figure_panels(pt):
    from operando.viz.explorer import explorer_figure

    series, nz, chi, fits, _ = pt
    fig = explorer_figure(nz, chi, fits, 9)
    mu_ax, k_ax, r_ax = fig.axes
    assert [ln.get_label() for ln in k_ax.get_lines()] == ["data", "fit"]
    np.testing.assert_allclose(k_ax.get_lines()[0].get_ydata(), chi.chi[9] * chi.k ** 2)
    assert "step 9" in mu_ax.get_title() and "fit good" in k_ax.get_title()
    assert len(explorer_figure(nz, index=0).axes) == 1
    with pytest.raises(op.DataError, match="outside the series"):
        explorer_figure(nz, index=99)
