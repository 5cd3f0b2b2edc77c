"""A watch whose ``[track] baseline`` condition lands late (the OCP scans measured at
the end of the potential program): every update before it computes and writes all but
the tracking, with a note; the update it lands in tracks; the end equals a batch run.
A baseline that never lands leaves a truthful final note, not a traceback.

Series mixed from real Cu foil and CuO (tenorite) spectra in ../shared/data
(:mod:`operando.mixtures`, +0.4 V ... -1.0 V vs RHE, then OCP)."""

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from operando import mixtures
from operando.config import load_config
from operando.errors import ConfigError
from operando.pipeline import run, watch

REFS = Path(__file__).resolve().parents[3] / "shared" / "data" / "references"

CONFIG = """
[series]
source = "scans"
pattern = "*.xdi"
conditions = "scans/conditions.csv"
element = "Cu"
edge = "K"

[normalize]
e0 = "first"
calibrate = true
norm1 = 150.0
norm2 = 600.0

[components]
standards = {{ cu_foil = "cu_foil.xdi", cuo = "cuo.xdi" }}

[track]
baseline = "OCP"

[output]
dir = "{out}"
plots = []
report = true
athena = false

[run]
chunk_size = 4
workers = 1
"""
WAITS = "tracking waits for its baseline: [track] baseline = 'OCP' matches no condition"
NEVER = "no tracking: the watch stopped before its baseline landed"


def _project(tmp_path: Path, shared_data) -> list[str]:
    """Staged scans (2 per potential, OCP last), the LCF standards, ``live.toml`` and
    ``batch.toml``; returns the conditions rows (header first)."""
    series, truth = mixtures.cu_potential_series(repeats=2, seed=7, data_dir=shared_data)
    mixtures.write_folder(series, truth, tmp_path / "stage")
    shutil.copy(REFS / "cu_foil_rt.xdi", tmp_path / "cu_foil.xdi")
    shutil.copy(REFS / "cuo_tenorite_13K.xdi", tmp_path / "cuo.xdi")
    for out in ("live", "batch"):
        (tmp_path / f"{out}.toml").write_text(CONFIG.format(out=out))
    (tmp_path / "scans").mkdir()
    return (tmp_path / "stage" / "conditions.csv").read_text().splitlines(keepends=True)


def _land(tmp_path: Path, rows: list[str]) -> None:
    """The beamline writes ``rows``' scans, then appends their conditions rows."""
    table = tmp_path / "scans" / "conditions.csv"
    if not table.is_file():
        table.write_text(rows[0])
        rows = rows[1:]
    for row in rows:
        name = row.split(",")[0]
        shutil.copy(tmp_path / "stage" / name, tmp_path / "scans" / name)
        with open(table, "a") as fh:
            fh.write(row)


def _watch(tmp_path: Path, on_update):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return watch(load_config(tmp_path / "live.toml"), poll=True, interval=0.05, settle=0.0,
                     idle_timeout=0.5, on_update=on_update)


def _same_table(a: Path, b: Path) -> None:
    left, right = pd.read_csv(a), pd.read_csv(b)
    assert list(left.columns) == list(right.columns), a.name
    assert len(left) == len(right), a.name
    for col in left.columns:
        x, y = left[col], right[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            np.testing.assert_allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-6,
                                       atol=1e-12, equal_nan=True, err_msg=f"{a.name} {col}")
        else:
            assert x.fillna("").astype(str).tolist() == y.fillna("").astype(str).tolist(), \
                f"{a.name} {col}"


def test_watch_waits_for_a_late_baseline_then_tracks_as_the_batch_run(tmp_path, shared_data):
    """Scans land one per update; OCP (the baseline) lands last.  Until then every
    update writes steps (LCF fractions with errors) without tracking, with the note;
    once it lands the watch tracks, and steps/segments/events equal the batch run's."""
    rows = _project(tmp_path, shared_data)
    scans = rows[1:]
    n_before = sum(",OCP," not in row for row in scans)
    assert n_before == len(scans) - 2  # OCP is the program's last condition
    live = tmp_path / "live"
    seen = []

    def next_scan(update):
        summary = json.loads((live / "summary.json").read_text())
        seen.append((update.n_steps, update.result.tracking is not None, summary["notes"],
                     (live / "segments.csv").is_file(), update.result.steps.copy()))
        if update.n_steps < len(scans):
            _land(tmp_path, scans[update.n_steps:update.n_steps + 1])

    _land(tmp_path, [rows[0], scans[0]])
    _watch(tmp_path, next_scan)
    assert [s[0] for s in seen] == list(range(1, len(scans) + 1))  # one update per scan
    for n, tracked, notes, segments, steps in seen[:n_before]:
        assert not tracked and not segments, n           # kept going, no tracking yet
        assert sum(WAITS in note for note in notes) == 1, notes
        assert steps["ok"].all() and steps["frac_cu_foil_err"].notna().all(), n
        assert "segment" not in steps, n
    for n, tracked, notes, segments, steps in seen[n_before:]:
        assert tracked and segments and not any(WAITS in note for note in notes), n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(load_config(tmp_path / "batch.toml"), progress=False)
    for name in ("steps.csv", "segments.csv", "events.csv"):
        _same_table(live / name, tmp_path / "batch" / name)
    # the metal appears against the OCP oxide along the reducing potentials
    assert "aggregation" in set(pd.read_csv(live / "events.csv")["event"])
    assert json.loads((live / "manifest.json").read_text())["status"] == "complete"


def test_a_baseline_that_never_lands_ends_with_a_truthful_note(tmp_path, shared_data):
    """The watch stops (idle exit) before OCP lands: exit 0 as any idle exit, no
    traceback, one warning line while waiting and one at the end; summary.json and the
    report say there is no tracking and why; a batch run on the same scans refuses."""
    rows = _project(tmp_path, shared_data)
    _land(tmp_path, [row for row in rows if ",OCP," not in row])
    proc = subprocess.run([sys.executable, "-m", "operando.cli", "watch", "live.toml", "--poll",
                           "--settle", "0", "--interval", "0.05", "--idle-exit", "0.5"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("tracking waits for its baseline") == 1, proc.stderr
    assert proc.stderr.count(NEVER) == 1, proc.stderr
    live = tmp_path / "live"
    notes = json.loads((live / "summary.json").read_text())["notes"]
    assert [n for n in notes if "baseline" in n] == [
        f"{NEVER} ([track] baseline = 'OCP' matches no condition; conditions are "
        "['-0.20 V', '-0.40 V', '-0.60 V', '-0.80 V', '-1.00 V', '0.00 V', '0.20 V', "
        "'0.40 V']); no segments or events were written"]
    report = (live / "report.html").read_text()
    assert NEVER in report and "tracking waits" not in report
    assert not (live / "segments.csv").exists() and not (live / "events.csv").exists()
    assert len(pd.read_csv(live / "steps.csv")) == len(rows) - 3
    assert json.loads((live / "manifest.json").read_text())["status"] == "complete"
    with warnings.catch_warnings(), pytest.raises(ConfigError, match="matches no condition"):
        warnings.simplefilter("ignore")
        run(load_config(tmp_path / "batch.toml"), progress=False)
    assert not (tmp_path / "batch" / "checkpoints").exists()  # refused before any fit
