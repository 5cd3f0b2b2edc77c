"""Scan times from single-file sources (SPEC #D, NeXus NXentry and per-frame times, the
operando HDF5, a per-spectrum time column) and ``[conditions] headers`` from SPEC scans
and NeXus entries, aligned with an EC-Lab log written as the instrument writes it.

The series is mixed from real measured Cu K spectra (../shared/data) by
operando.mixtures; the program it was mixed under is the truth.
"""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import operando as op
from operando import mixtures
from operando.errors import ConfigError

from _logfiles import program, write_eclab
from _scanfiles import SCAN_S, write_nexus, write_spec

T0 = dt.datetime(2025, 3, 13, 10, 0, 0)
LOG = {"ph": 13.0, "reference_V": 0.197}


@pytest.fixture(scope="module")
def cu(shared_data, tmp_path_factory):
    series, _ = mixtures.cu_potential_series(repeats=3, data_dir=shared_data)
    folder = tmp_path_factory.mktemp("single")
    log = folder / "potentiostat.mpt"
    write_eclab(log, program(series, T0, 100.0, "potential_V"),
                acquisition_start=T0 - dt.timedelta(hours=2))
    return series, folder, log


def _logs(log, **headers):
    return op.LogConditions(logs=[{"file": str(log), **LOG}], headers=headers)


def _check(got, series):
    """Every scan's conditions are the program's; times from the first scan."""
    assert got["potential_V"].tolist() == series.conditions["potential_V"].tolist()
    assert not got["conditions_mixed"].any()
    np.testing.assert_allclose(got["time_s"], series.conditions["time_s"] -
                               series.conditions["time_s"].iloc[0])


def test_spec_scan_times_and_headers(cu):
    series, folder, log = cu
    n = len(series)
    path = folder / "operando.spec"
    cell = 298.0 + np.arange(n)  # the cell heater's motor position, one per scan
    write_spec(path, series, T0, motors={"cell_T": cell}, user={"GAS": ["He"] * (n - 3) + ["H2"] * 3})
    got = op.read_series(path, logs=_logs(log, temperature_K="cell_T", gas="GAS"))
    _check(got.conditions, series)
    assert got.conditions["temperature_K"].tolist() == cell.tolist()
    assert got.conditions["gas"].tolist() == ["He"] * (n - 3) + ["H2"] * 3
    # the Epoch column gives each scan's end: 30 s after its #D start
    assert (pd.to_datetime(got.conditions["time_end"]) -
            pd.to_datetime(got.conditions["time_start"])).dt.total_seconds().tolist() == [SCAN_S] * n
    np.testing.assert_allclose(got.mu, series.mu, atol=1e-8)  # ln of 10 significant digits


def test_spec_without_epoch_ends_each_scan_at_the_next(cu, tmp_path):
    """Without an Epoch column a SPEC scan ends when the next starts: a scan followed by
    a gap in which the potential changed is then (rightly, for all the file says) mixed."""
    series, folder, log = cu
    path = tmp_path / "plain.spec"
    write_spec(path, series, T0, motors={"cell_T": np.zeros(len(series))}, user={})
    path.write_text(path.read_text().replace("#L energy  Epoch  i0  itrans",
                                             "#L energy  seconds  i0  itrans"))
    with pytest.warns(op.OperandoWarning, match="conditions_mixed"):
        got = op.read_series(path, logs=_logs(log)).conditions
    # the last scan of each potential (but the last of the series) spans the next change
    last = series.conditions.groupby("potential_V", sort=False).tail(1).index[:-1]
    assert np.flatnonzero(got["conditions_mixed"]).tolist() == sorted(last.tolist())


def test_nexus_entries_times_and_headers(cu):
    series, folder, log = cu
    path = folder / "entries.nxs"
    temperature = 300.0 + 5.0 * np.arange(len(series))
    write_nexus(path, series, T0, frames=False, temperature=temperature)
    got = op.read_series(path, logs=_logs(log, temperature_K="sample/temperature"))
    _check(got.conditions, series)
    assert got.conditions["temperature_K"].tolist() == temperature.tolist()


def test_nexus_qexafs_frames(cu, tmp_path):
    """QEXAFS frames back to back: each lasts until the next starts; a potential step
    at a frame boundary belongs to the frame that starts then (none mixed)."""
    series, _, _ = cu
    frames = series.replace(conditions=series.conditions.assign(
        time_s=SCAN_S * np.arange(len(series))))
    log = tmp_path / "frames.mpt"
    write_eclab(log, program(frames, T0, 0.0, "potential_V"), acquisition_start=T0)
    path = tmp_path / "qexafs.nxs"
    write_nexus(path, frames, T0, frames=True)
    got = op.read_series(path, logs=_logs(log)).conditions
    _check(got, frames)


def test_operando_hdf5_keeps_the_scan_times(cu, tmp_path):
    series, folder, log = cu
    path = folder / "operando.spec"
    if not path.exists():
        write_spec(path, series, T0, motors={"cell_T": np.zeros(len(series))}, user={})
    read = op.read_series(path)
    h5 = op.io.write_hdf5(read, tmp_path / "series.h5")
    got = op.read_series(h5, logs=_logs(log)).conditions
    _check(got, series)
    # a reordered series keeps each scan's own time
    backwards = read.take(np.arange(len(read))[::-1])
    aligned = op.conditions_from_logs(backwards, [{"file": str(log), **LOG}])
    assert aligned["potential_V"].tolist() == series.conditions["potential_V"].tolist()[::-1]


def test_matrix_with_a_time_column(cu, tmp_path):
    """A QEXAFS matrix file (energy + one mu column per spectrum) and its per-spectrum
    start times given as a conditions table keyed by step."""
    series, _, log = cu
    path = tmp_path / "frames.dat"
    labels = [f"frame{i:03d}" for i in range(len(series))]
    body = np.column_stack([series.energy, series.mu.T])
    np.savetxt(path, body, fmt="%.10g", header="energy " + " ".join(labels))
    starts = [(T0 + dt.timedelta(seconds=float(t))).isoformat()
              for t in series.conditions["time_s"]]
    table = tmp_path / "times.csv"
    pd.DataFrame({"step": range(len(series)), "time_start": starts}).to_csv(table, index=False)
    with pytest.warns(op.OperandoWarning, match="conditions_mixed"):
        got = op.read_series(path, conditions=table, logs=_logs(log)).conditions
    # a frame without an end lasts until the next starts: the last of each potential
    # (but the series' last) spans the next change and is flagged; all carry the program
    last = series.conditions.groupby("potential_V", sort=False).tail(1).index[:-1]
    assert np.flatnonzero(got["conditions_mixed"]).tolist() == sorted(last.tolist())
    assert got["potential_V"].tolist() == series.conditions["potential_V"].tolist()


def test_headers_refused_where_spectra_have_no_header(shared_data, tmp_path):
    logs = op.LogConditions(headers={"gas": "Gas.name"})
    with pytest.raises(ConfigError, match=r"headers: pt_l3_hydrogen_desorption.prj is an Athena "
                                          r"project .* no header per spectrum"):
        op.read_series(shared_data / "series/pt_l3_hydrogen_desorption.prj", logs=logs)
    path = tmp_path / "m.dat"
    np.savetxt(path, np.column_stack([np.linspace(8900, 9100, 50), np.ones((50, 3))]),
               header="energy a b c")
    with pytest.raises(ConfigError, match="m.dat is a matrix file .* no header per spectrum"):
        op.read_series(path, logs=logs)
