"""Every result type answers the result protocol: ``to_dataframe()``, ``report()``,
``_repr_html_()`` and ``to_xarray()`` (``operando/_util/result.py``).

The types are enumerated from the package itself (every subclass of the protocol's
base, and every public class whose name says it is a result), so a new result type
without the protocol, or without a case here, fails this test.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings

import numpy as np
import pandas as pd
import pytest

import operando as op
from operando._util.result import Result

xr = pytest.importorskip("xarray", reason="to_xarray() needs xarray (pip install '.[notebook]')")

#: Class names that say "I am a result" (checked against every public class of the package).
RESULT_NAMES = ("Result", "Report", "Series", "Calibration", "Transform", "Tracking",
                "Systematics")
#: Public classes with such names that are not results of an analysis, and why.
NOT_RESULTS = {
    "BatchFitResult": "the array-level return of operando.exafs.batch (ShellFitResult wraps it)",
    "AutobkResult": "a named tuple of arrays inside operando.exafs.batch",
    "LazySeries": "a streamed view of an HDF5 file, read into a Series",
    "SeriesSpec": "the recipe of a simulated series, an input",
    "SeriesConfig": "the [series] section of a configuration, an input",
    "StreamedCalibration": "the pipeline's calibrated view of a streamed series, an input",
    "Result": "the protocol's base class itself",
}


def _package_classes() -> dict[str, type]:
    out = {}
    for info in pkgutil.walk_packages(op.__path__, "operando."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and not name.startswith("_"):
                out[name] = cls
    return out


@pytest.fixture(scope="module")
def results(samples, tmp_path_factory):
    """One instance of every result type, from the bundled Pt sample series."""
    folder = samples / "pt_co_oxidation"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.OperandoWarning)  # the foil is not a step
        series = op.read_series(folder, conditions=folder / "conditions.csv")
        foil = op.read_series(folder / "pt_foil.xdi")
    norm = op.normalize(series, e0="first")
    chi = op.remove_background(norm)
    model = op.ShellModel(shells=["Pt-O", "Pt-Pt"], kmin=3, kmax=12, rmin=1.2, rmax=3.2)
    fits = op.fit_shells(chi, model, s02=0.85)
    foil_chi = op.remove_background(op.normalize(foil))
    s02 = op.calibrate_s02(foil_chi, shell="Pt-Pt", cn=12)
    refs = {"start": "first", "end": "last"}
    fractions = op.lcf(norm, refs)
    steps = (series.conditions.merge(norm.to_dataframe(), on="step")
             .merge(op.white_line(norm), on="step").merge(fits.to_dataframe(), on="step"))
    cfg = op.load_config({
        "series": {"source": [f"pt_co_oxidation_{i:03d}.xdi" for i in (0, 1, 8, 9)],
                   "conditions": "conditions.csv", "element": "Pt", "edge": "L3"},
        "output": {"dir": str(tmp_path_factory.mktemp("run") / "out"), "plots": [],
                   "report": False, "athena": False},
        "run": {"workers": 1}}, base_dir=folder)
    _, merge_report = op.xanes.merge_repeats(series, by="gas")
    _, deglitch_report = op.xanes.deglitch(series)
    sub = chi.normalized.series.take([0, 8])
    small_chi = op.remove_background(op.normalize(sub, e0="first"))
    return {
        "Series": series, "NormalizedSeries": norm, "ChiSeries": chi,
        "RSeries": op.fourier_transform(chi), "ShellFitResult": fits, "S02Calibration": s02,
        "LCFResult": fractions, "PCAResult": op.pca(norm), "MCRResult": op.mcr(norm, 2),
        "CombinationResult": op.lcf_combinations(norm, refs, max_components=2),
        "Systematics": op.cn_systematics(op.normalize(sub, e0="first"), model, s02=0.85),
        "WaveletTransform": op.exafs.wavelet_transform(small_chi),
        "Tracking": op.track(steps), "RunResult": op.run(cfg, progress=False),
        "MergeReport": merge_report, "DeglitchReport": deglitch_report,
        "ClusterCalibration": op.exafs.calibrate_cluster(
            foil_chi.chi[0], float(foil_chi.e0[0]), model,
            op.exafs.cluster_model(model, "Pt-Pt")),
        "TwoPhaseResult": op.fit_two_phase(small_chi, small_chi.chi[0], model, shell="Pt-Pt",
                                           s02=0.85, fraction_mode="fit", disorder="free"),
    }


def test_every_result_type_is_enumerated_here(results):
    classes = _package_classes()
    named = {n for n in classes if n.endswith(RESULT_NAMES) or n in RESULT_NAMES}
    protocol = {n for n, c in classes.items() if issubclass(c, Result) and c is not Result}
    assert named - set(NOT_RESULTS) <= protocol, \
        f"result types without the protocol: {sorted(named - set(NOT_RESULTS) - protocol)}"
    assert protocol == set(results), f"cases missing: {sorted(protocol - set(results))}"


@pytest.mark.parametrize("kind", ["Series", "NormalizedSeries", "ChiSeries", "RSeries",
                                  "ShellFitResult", "S02Calibration", "LCFResult", "PCAResult",
                                  "MCRResult", "CombinationResult", "Systematics",
                                  "WaveletTransform", "Tracking", "RunResult", "MergeReport",
                                  "DeglitchReport", "TwoPhaseResult", "ClusterCalibration"])
def test_result_protocol(results, kind):
    obj = results[kind]
    assert type(obj).__name__ == kind
    table = obj.to_dataframe()
    assert isinstance(table, pd.DataFrame) and len(table) and len(table.columns)
    text = obj.report()
    assert isinstance(text, str) and text.strip()
    html = obj._repr_html_()
    assert isinstance(html, str) and "<table" in html
    ds = obj.to_xarray()
    assert isinstance(ds, xr.Dataset) and ds.data_vars
    if "step" in table.columns:
        # the table's steps are the dataset's (one row per step, same labels)
        assert "step" in ds.dims
        np.testing.assert_array_equal(ds["step"].values, table["step"].to_numpy())
    # the numbers travel: a numeric column of the table is a variable of the dataset
    numeric = [c for c in table.columns if c != "step" and pd.api.types.is_float_dtype(table[c])
               and c in ds]
    for col in numeric[:3]:
        np.testing.assert_allclose(ds[col].values, table[col].to_numpy(), equal_nan=True)
