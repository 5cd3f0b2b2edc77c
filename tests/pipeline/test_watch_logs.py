"""Live (#21 item 6): ``operando watch`` follows a folder where scans land while the
potentiostat's EC-Lab log grows; every scan is aligned again when the log catches up, and
the final steps.csv carries the program's conditions and equals a batch run's.

Scans are mixed from real measured Cu K spectra (../shared/data) by operando.mixtures
and written with ISS-style Scan.start_time/end_time headers; the log is written as
EC-Lab writes it (tests/_logfiles.py) and appended line by line as the scans land.
"""

import datetime as dt
import threading
import warnings

import numpy as np
import pandas as pd

from operando import mixtures
from operando.pipeline import run, watch

from _logfiles import program, write_eclab

T0 = dt.datetime(2025, 3, 13, 10, 0, 0)
START = T0 - dt.timedelta(hours=1)  # the potentiostat's acquisition start


def _log_rows(path):
    """(header bytes, [(seconds, row bytes)]) of an EC-Lab .mpt written by write_eclab."""
    lines = path.read_bytes().split(b"\r\n")
    n_head = int(lines[1].split(b":")[1])
    rows = [(float(ln.split(b"\t")[7].replace(b",", b".")), ln + b"\r\n")
            for ln in lines[n_head:] if ln.strip()]
    return b"\r\n".join(lines[:n_head]) + b"\r\n", rows


def test_watch_aligns_scans_as_the_log_grows_and_equals_batch(tmp_path, shared_data):
    series, truth = mixtures.cu_potential_series(repeats=2, data_dir=shared_data)
    stage = tmp_path / "stage"
    mixtures.write_folder(series, truth, stage, start=T0, time_format="iss")
    write_eclab(tmp_path / "stage.mpt", program(series, T0, 100.0, "potential_V"),
                acquisition_start=START)
    head, rows = _log_rows(tmp_path / "stage.mpt")
    scans, log = tmp_path / "scans", tmp_path / "potentiostat.mpt"
    scans.mkdir()

    def config(out):
        return {"series": {"source": str(scans), "pattern": "*.xdi", "element": "Cu",
                           "edge": "K"},
                "conditions": {"logs": [{"file": str(log), "ph": 13.0, "reference_V": 0.197}]},
                "normalize": {"calibrate": True, "e0": "first"},
                "output": {"dir": str(tmp_path / out), "plots": [], "report": False}}

    seen, landed, failed = [], threading.Condition(), []

    def on_update(update):
        steps = update.result.steps
        with landed:
            seen.append((update.n_steps, steps["potential_V"].tolist()))
            landed.notify_all()

    def writer():
        try:
            log.write_bytes(head)
            written = 0
            for i, name in enumerate(series.files):
                # the log lags: it has reached this scan's start, not its end
                until = (T0 - START).total_seconds() + float(series.conditions["time_s"][i])
                with open(log, "ab") as fh:
                    while written < len(rows) and rows[written][0] <= until:
                        fh.write(rows[written][1])
                        written += 1
                (scans / name).write_bytes((stage / name).read_bytes())
                with landed:  # the watch takes the scan before the log moves on
                    if not landed.wait_for(lambda: seen and seen[-1][0] > i, timeout=60):
                        raise AssertionError(f"scan {i} never analysed")
            with open(log, "ab") as fh:  # the rest of the log: every scan covered
                fh.writelines(r for _, r in rows[written:])
        except Exception as exc:  # reported by the test thread
            failed.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the log not yet covering the newest scan
        live = watch(config("live"), interval=0.1, settle=0.3, idle_timeout=4.0,
                     on_update=on_update)
    thread.join(timeout=120)
    assert not failed, failed
    expected = series.conditions["potential_V"].tolist()
    # while the log lagged, the newest scan had no potential yet (never a wrong one) ...
    firsts = {}
    for n, potentials in seen:
        firsts.setdefault(n, potentials)
    assert sorted(firsts) == list(range(1, len(series) + 1))
    for n, potentials in firsts.items():
        assert pd.isna(potentials[-1]), (n, potentials[-1])
        assert potentials[:-1] == expected[:n - 1]
    # ... and once the log caught up every scan carries the program's conditions
    steps = pd.read_csv(tmp_path / "live" / "steps.csv", dtype={"potential_V": str})
    assert steps["potential_V"].tolist() == [str(p) for p in expected]
    assert live.steps["potential_V"].tolist() == expected
    ocp = np.array([p == "OCP" for p in expected])
    assert (steps["control"] == np.where(ocp, "OCP", "potentiostatic")).all()
    assert steps["ewe_V"][~ocp].notna().all() and steps["ocv_V"][ocp].notna().all()
    assert not steps["conditions_mixed"].any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(config("batch"), progress=False)
    assert (tmp_path / "live" / "steps.csv").read_bytes() == \
        (tmp_path / "batch" / "steps.csv").read_bytes()
