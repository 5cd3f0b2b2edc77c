"""Conditions from instrument logs aligned by the scans' own times.

Series are mixed from real measured spectra (../shared/data) by operando.mixtures
and written with Scan.start_time/Scan.end_time headers; the logs are written as the
instruments write them (tests/_logfiles.py).  The program (the conditions each
step was mixed under) is the truth the aligned conditions must give back.
"""

import datetime as dt
import logging
import warnings

import numpy as np
import pandas as pd
import pytest

import operando as op
from operando import mixtures
from operando.config import load_config
from operando.errors import ConfigError, DataError, ReadError
from operando.pipeline import run
from operando.pipeline.settings import read_kwargs

from _logfiles import program as _program
from _logfiles import (write_chi, write_eclab, write_gamry, write_gas_setpoints,
                       write_temperature_signal)

T0 = dt.datetime(2025, 3, 13, 10, 0, 0)


@pytest.fixture(scope="module")
def potential_folder(shared_data, tmp_path_factory):
    series, truth = mixtures.cu_potential_series(repeats=3, data_dir=shared_data)
    folder = tmp_path_factory.mktemp("cu") / "scans"
    # NSLS-II ISS's own time format: "03/13/2025  10:02:00.000000"
    mixtures.write_folder(series, truth, folder, start=T0, time_format="iss")
    log = folder.parent / "potentiostat.mpt"
    # the potentiostat was started 5 h before the first scan: time/s is offset by 18,000 s
    write_eclab(log, _program(series, T0, 100.0, "potential_V"),
                acquisition_start=T0 - dt.timedelta(hours=5))
    return series, folder, log


def test_eclab_log_gives_the_program(potential_folder, caplog):
    series, folder, log = potential_folder
    text = log.read_bytes()
    assert b"\xb5F" in text and b"," in text.split(b"\n")[-2]  # latin-1 micro sign, decimal commas
    logs = op.LogConditions(logs=[{"file": str(log), "ph": 13.0, "reference_V": 0.197}])
    with caplog.at_level(logging.INFO, logger="operando.io._align"):
        got = op.read_series(folder, logs=logs).conditions
    assert "taken as one clock" in caplog.text
    program = series.conditions["potential_V"].tolist()
    ocp = np.array([p == "OCP" for p in program])
    assert got["potential_V"].tolist()[:len(program)] == program  # set points: exact
    assert (got["control"] == np.where(ocp, "OCP", "potentiostatic")).all()
    # open circuit: the measured potential (0.05 V vs RHE in the log) in ocv_V only;
    # 1 mV noise, a median of 15 samples: 5 mV is > 10 sigma
    assert np.abs(got["ocv_V"][ocp] - 0.05).max() < 0.005
    assert got["ocv_V"][~ocp].isna().all()
    held = np.array([float(p) for p in np.array(program)[~ocp]])
    assert np.abs(got["ewe_V"][~ocp].to_numpy(float) - held).max() < 0.005
    assert not got["conditions_mixed"].any()
    # times: start of each scan from its header, time_s from the first scan
    np.testing.assert_allclose(got["time_s"], series.conditions["time_s"] -
                               series.conditions["time_s"].iloc[0])


def test_events_equal_those_of_the_conditions_table(potential_folder, tmp_path):
    series, folder, log = potential_folder
    base = {"series": {"source": str(folder), "pattern": "*.xdi", "element": "Cu", "edge": "K"},
            "normalize": {"calibrate": True},
            "components": {"standards": {"oxide": "first", "metal": "steps:21-23"}},
            "output": {"plots": [], "report": False}}
    table = {**base, "series": {**base["series"], "conditions": str(folder / "conditions.csv")},
             "output": {**base["output"], "dir": str(tmp_path / "table")}}
    logged = {**base, "conditions": {"logs": [{"file": str(log), "ph": 13.0,
                                               "reference_V": 0.197}]},
              "output": {**base["output"], "dir": str(tmp_path / "logs")}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = run(load_config(table), progress=False)
        b = run(load_config(logged), progress=False)
    assert len(a.tracking.events) > 0
    pd.testing.assert_frame_equal(a.tracking.events, b.tracking.events)
    assert a.tracking.steps["segment"].tolist() == b.tracking.steps["segment"].tolist()


def test_gamry_log_gives_the_measured_potential(potential_folder, tmp_path):
    series, folder, _ = potential_folder
    program = [p for p in _program(series, T0, 100.0, "potential_V") if p[2] != "OCP"]
    log = tmp_path / "CHRONOA.DTA"
    write_gamry(log, program, start=T0 - dt.timedelta(minutes=30))
    with pytest.warns(op.OperandoWarning, match="does not cover 3 scan"):
        got = op.conditions_from_logs(op.read_series(folder),
                                      [{"file": str(log), "ph": 13.0, "reference_V": 0.197}])
    expected = series.conditions["potential_V"]
    held = expected != "OCP"
    # Vf is a signal: median of 15 samples with 1 mV noise, rounded to 1 mV -> within 2 mV
    assert np.abs(got["potential_V"][held].to_numpy(float) -
                  expected[held].to_numpy(float)).max() <= 0.002
    assert got["potential_V"][~held].isna().all()  # the OCP scans lie after the log ends


@pytest.mark.parametrize("how", ["CORPOT", "OCVCURVE"])
def test_gamry_open_circuit_is_marked(potential_folder, tmp_path, how):
    """Open circuit in Gamry files: its own Open Circuit Potential experiment (TAG CORPOT),
    or the open-circuit delay (OCVCURVE) that opens the next experiment, whose CURVE
    clock starts again after the delay.  Two logs in sequence: each scan takes the one
    that covers it."""
    series, folder, _ = potential_folder
    program = _program(series, T0, 100.0, "potential_V")
    held = [p for p in program if p[2] != "OCP"]
    (begin, end, _), = [p for p in program if p[2] == "OCP"]
    chrono = tmp_path / "CHRONOA.DTA"
    write_gamry(chrono, held, start=T0 - dt.timedelta(minutes=30))
    rest = tmp_path / f"{how}.DTA"
    if how == "CORPOT":
        write_gamry(rest, [(begin, end, 0.05)], start=begin, tag="CORPOT", seed=1)
    else:
        after = (end, end + dt.timedelta(seconds=600), 0.4)
        write_gamry(rest, [after], start=begin, ocv_delay=((end - begin).total_seconds(), 0.05),
                    seed=1)
        assert "OCVCURVE\tTABLE" in rest.read_text(encoding="latin-1")
    logs = [{"file": str(f), "ph": 13.0, "reference_V": 0.197} for f in (chrono, rest)]
    with pytest.warns(op.OperandoWarning, match="does not cover"):
        got = op.conditions_from_logs(op.read_series(folder), logs)
    expected = series.conditions["potential_V"]
    ocp = (expected == "OCP").to_numpy()
    assert ocp.sum() == 3
    assert got["potential_V"][ocp].tolist() == ["OCP"] * 3
    assert got["control"].tolist() == np.where(ocp, "OCP", "potentiostatic").tolist()
    # the measured OCV (0.05 V vs RHE, 1 mV noise, a median of 15 samples): within 5 mV
    assert np.abs(got["ocv_V"][ocp].to_numpy(float) - 0.05).max() < 0.005
    assert got["ocv_V"][~ocp].isna().all()
    # the controlled scans keep the first log's measured Vf (rounded to 1 mV): within 2 mV
    assert np.abs(got["potential_V"][~ocp].to_numpy(float) -
                  expected[~ocp].to_numpy(float)).max() <= 0.002


def test_ch_instruments_exports_one_per_period(potential_folder, tmp_path):
    """CH Instruments runs one technique per file: an i-t curve at each potential, an
    open-circuit record at the end; every file is a log, each scan takes the one that
    covers it."""
    series, folder, _ = potential_folder
    files = []
    for k, (begin, end, value) in enumerate(_program(series, T0, 100.0, "potential_V")):
        files.append(tmp_path / f"step{k:02d}.txt")
        write_chi(files[-1], begin, end, value, seed=k)
    assert files[0].read_text().startswith("Mar. 13, 2025   10:00:20\n")
    logs = [{"file": str(f), "ph": 13.0, "reference_V": 0.197} for f in files]
    with pytest.warns(op.OperandoWarning, match="does not cover"):
        got = op.conditions_from_logs(op.read_series(folder), logs)
    expected = series.conditions["potential_V"]
    ocp = (expected == "OCP").to_numpy()
    # Init E written to 1 mV vs Ag/AgCl: vs RHE it rounds back to the program's value
    assert got["potential_V"].tolist() == expected.tolist()
    assert got["control"].tolist() == np.where(ocp, "OCP", "potentiostatic").tolist()
    assert np.abs(got["ocv_V"][ocp].to_numpy(float) - 0.05).max() < 0.005
    assert (got["current_mA"][~ocp] < 0).all() and not got["conditions_mixed"].any()
    cv = tmp_path / "cv.txt"
    cv.write_text(files[0].read_text().replace("Amperometric i-t Curve", "Cyclic Voltammetry"))
    with pytest.raises(ReadError, match="cv.txt: line 2: technique 'Cyclic Voltammetry' is not"):
        op.conditions_from_logs(op.read_series(folder), [str(cv)])


def test_a_log_being_written_is_read_without_its_half_line(potential_folder, tmp_path):
    series, folder, log = potential_folder
    text = log.read_bytes()
    growing = tmp_path / "growing.mpt"
    growing.write_bytes(text[:len(text) - 25])  # the last row cut in the middle
    spec = {"file": str(growing), "ph": 13.0, "reference_V": 0.197}
    whole = op.io.read_log(op.LogSpec(**{**spec, "file": str(log)}))
    part = op.io.read_log(op.LogSpec(**spec))
    assert len(part.times) == len(whole.times) - 1
    broken = tmp_path / "broken.mpt"  # a complete file with a bad row is refused
    broken.write_bytes(text[:len(text) - 25] + b"\r\n")
    with pytest.raises(ReadError, match="broken.mpt: line"):
        op.io.read_log(op.LogSpec(**{**spec, "file": str(broken)}))


@pytest.fixture(scope="module")
def gas_folder(shared_data, tmp_path_factory):
    series, truth = mixtures.fe_gas_series(repeats=2, data_dir=shared_data)
    folder = tmp_path_factory.mktemp("fe") / "scans"
    start = dt.datetime(2025, 3, 13, 10, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    mixtures.write_folder(series, truth, folder, start=start)  # ISO 8601 with +01:00
    return series, folder, start


def test_gas_setpoints_delay_and_a_switch_during_a_scan(gas_folder, tmp_path):
    series, folder, start = gas_folder
    delay = 45.0  # s from the valve to the cell
    c = series.conditions
    changes = []
    straddled = None
    rows = c.drop_duplicates(["gas", "temperature_K"]).index.tolist()
    for j, i in enumerate(rows):
        arrive = start + dt.timedelta(seconds=float(c["time_s"][i]) - 200)
        if j == 4:  # this switch reaches the cell 10 s into the scan of step i
            arrive = start + dt.timedelta(seconds=float(c["time_s"][i]) + 10)
            straddled = i
        valve = (arrive - dt.timedelta(seconds=delay)).astimezone(dt.timezone.utc)
        changes.append((valve, c["gas"][i], 20.0 if c["gas"][i] == "H2" else 0.0,
                        80.0, c["temperature_K"][i]))
    log = tmp_path / "gas.csv"
    write_gas_setpoints(log, changes)
    assert "+00:00" in log.read_text()  # the gas PC logs UTC, the scans local time
    spec = {"file": str(log), "delay_s": delay,
            "columns": {"gas": "gas", "temperature_set_K": "temperature_K"}}
    with pytest.warns(op.OperandoWarning, match="conditions_mixed"):
        got = op.conditions_from_logs(op.read_series(folder), [spec])
    mixed = got["conditions_mixed"].to_numpy()
    assert np.flatnonzero(mixed).tolist() == [straddled]
    keep = ~mixed
    assert got["gas"][keep].tolist() == c["gas"][keep].tolist()
    assert got["temperature_K"][keep].tolist() == c["temperature_K"][keep].tolist()
    assert got["gas"][straddled] == c["gas"][straddled - 1]  # the setpoint in force at its start
    # without the delay every change acts 45 s earlier: the straddled scan is no longer mixed
    plain = op.conditions_from_logs(op.read_series(folder), [{**spec, "delay_s": 0.0}])
    assert not plain["conditions_mixed"].any()


def test_mixed_scans_stay_out_of_segment_statistics():
    steps = pd.DataFrame({"step": range(8), "gas": ["He"] * 4 + ["H2"] * 4, "ok": True,
                          "wl_height": [1.50, 1.51, 1.49, 1.20, 1.30, 1.31, 1.29, 1.30],
                          "edge_position": [8980.0] * 8,
                          "conditions_mixed": [False] * 3 + [True] + [False] * 4})
    tracked = op.track(steps)
    first = tracked.segments.iloc[0]
    # the mixed step's 1.20 would pull the He mean down by 0.07; without it, 1.50
    assert abs(first["wl_height"] - 1.50) < 1e-9 and first["n_ok"] == 3
    assert tracked.condition_columns == ["gas"]
    unflagged = op.track(steps.assign(conditions_mixed=False)).segments.iloc[0]
    assert abs(unflagged["wl_height"] - 1.425) < 1e-9


def test_temperature_ramp_signal(gas_folder, tmp_path):
    series, folder, start = gas_folder
    naive = start.replace(tzinfo=None)
    t = np.arange(-600.0, float(series.conditions["time_s"].max()) + 600, 2.0)
    kelvin = 300.0 + 0.1 * (t + 600.0)  # 6 K per minute
    log = tmp_path / "furnace.tsv"
    write_temperature_signal(log, t + 600.0, kelvin, start=naive - dt.timedelta(seconds=600))
    spec = {"file": str(log), "time": "elapsed_s", "kind": "signal",
            "start": (naive - dt.timedelta(seconds=600)).isoformat(), "timezone": "Europe/Paris",
            "columns": {"T_K": "temperature_K"}}
    got = op.conditions_from_logs(op.read_series(folder), [spec])
    middle = series.conditions["time_s"].to_numpy(float) + 15.0
    expected = 300.0 + 0.1 * (middle + 600.0)
    # median of 16 samples with 0.3 K noise on a linear ramp: the value mid-scan within 0.5 K
    assert np.abs(got["temperature_K"] - expected).max() < 0.5
    # half the range over a 30 s scan: 1.5 K, +- the noise's extremes (16 samples of
    # 0.3 K: about +-0.5 K at each end)
    assert got["temperature_K_spread"].between(0.8, 2.2).all()


def test_bad_logs_name_file_and_line(gas_folder, tmp_path):
    _, folder, start = gas_folder
    series = op.read_series(folder)
    bad = tmp_path / "bad_time.csv"
    bad.write_text("time,gas\n2025-03-13T09:00:00+00:00,He\nyesterday,H2\n")
    with pytest.raises(ReadError, match="bad_time.csv: line 3: time 'yesterday'"):
        op.conditions_from_logs(series, [str(bad)])
    none = tmp_path / "no_time.csv"
    none.write_text("when,gas\n1,He\n")
    with pytest.raises(ReadError, match="no_time.csv: line 1: no time column"):
        op.conditions_from_logs(series, [str(none)])
    back = tmp_path / "back.csv"
    back.write_text("time,gas\n2025-03-13T09:00:00Z,He\n2025-03-13T09:30:00Z,H2\n"
                    "2025-03-13T09:10:00Z,He\n")
    with pytest.raises(ReadError, match="back.csv: line 4: the clock goes back"):
        op.conditions_from_logs(series, [str(back)])
    with pytest.raises(ReadError, match="line 2: .*UTC offset.*Asia/Tokyo"):
        op.conditions_from_logs(series, [{"file": str(back), "timezone": "Asia/Tokyo"}])
    naive = tmp_path / "naive.csv"
    naive.write_text("time,gas\n2025-03-13T09:00:00,He\n")
    with pytest.raises(ConfigError, match="naive.csv: its times are naive"):
        op.conditions_from_logs(series, [str(naive)])
    elapsed = tmp_path / "elapsed.csv"
    elapsed.write_text("time,gas\n0,He\n10,H2\n")
    with pytest.raises(ReadError, match="elapsed seconds .* no start time"):
        op.conditions_from_logs(series, [str(elapsed)])
    mpr = tmp_path / "run.mpr"
    mpr.write_bytes(b"BIO-LOGIC MODULAR FILE\x1a")
    with pytest.raises(ReadError, match="GPL-3.0.*export it as .mpt"):
        op.conditions_from_logs(series, [str(mpr)])


def test_config_section_reaches_the_reader(tmp_path):
    (tmp_path / "gas.csv").write_text("time,gas\n2025-03-13T09:00:00,He\n")
    cfg = load_config({"series": {"source": str(tmp_path)},
                       "conditions": {"logs": [{"file": "gas.csv", "delay_s": 30,
                                                "columns": {"gas": "gas"}}],
                                      "headers": {"flow": "Gas.flow"}}}, base_dir=tmp_path)
    logs = read_kwargs(cfg)["logs"]
    assert logs.logs[0].delay_s == 30 and logs.logs[0].columns == {"gas": "gas"}
    assert logs.files() == [tmp_path / "gas.csv"] and logs.headers == {"flow": "Gas.flow"}
    with pytest.raises(ConfigError, match="unknown .*delay'.*did you mean 'delay_s'"):
        load_config({"series": {"source": str(tmp_path)},
                     "conditions": {"logs": [{"file": "gas.csv", "delay": 30}]}})


def test_header_conditions(gas_folder, tmp_path):
    series, folder, _ = gas_folder
    # ISS writes the gas handling system's setpoints into every scan's header
    out = tmp_path / "iss"
    out.mkdir()
    for i, path in enumerate(sorted(folder.glob("*.xdi"))):
        text = path.read_text().replace(
            "# ///", f"# SampleGasHandlingSystem.MFC16: {10 + i} sccm\n# ///")
        (out / path.name).write_text(text)
    got = op.read_series(out, logs=op.LogConditions(
        headers={"flow_mfc16": "SampleGasHandlingSystem.MFC16"})).conditions
    assert got["flow_mfc16"].tolist() == [10.0 + i for i in range(len(got))]


def test_check_figure_shades_the_scans(gas_folder, tmp_path):
    series, folder, start = gas_folder
    log = tmp_path / "gas.csv"
    t = start.astimezone(dt.timezone.utc)
    write_gas_setpoints(log, [(t, "O2", 0, 80, 298), (t + dt.timedelta(seconds=700), "H2", 20,
                                                       80, 573)])
    logs = op.LogConditions(logs=[{"file": str(log)}])
    steps = op.conditions_from_logs(op.read_series(folder), logs)
    fig = op.viz.plot_condition_logs(steps, logs)
    # one panel per numeric channel (flows and the set temperature), each scan shaded
    assert len(fig.axes) == 3
    assert all(len(ax.patches) == len(steps) for ax in fig.axes)
