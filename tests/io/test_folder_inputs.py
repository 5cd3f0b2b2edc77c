"""Whatever lands in a source folder, only spectra are read; the rest is skipped and named
(#23, item 5): a stray note with two number columns, a text note, a table of other
columns, a file name that is not UTF-8. A bad row of a growing conditions table is left
out and named (the scan it lists waits); a plain two-column energy/mu file is a reference.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from operando import cli, mixtures, read_series
from operando.config import load_config
from operando.errors import ReadError
from operando.io import load_conditions, read_growing_conditions
from operando.pipeline import run

ROOT = Path(__file__).resolve().parents[2]
#: A name written by another system's encoding (latin-1 "ÿþ"): not valid UTF-8.
ODD_NAME = os.fsdecode(b"scan_\xff\xfe.xdi")
STRAYS = {"notes.txt": "calibration of the day\n1 2\n3 4\n5 6\n",
          "readme.txt": "just words\nno numbers here\n",
          "table.dat": "a b c\n1 2 3\n4 5 6\n"}


@pytest.fixture(scope="module")
def cu_folder(shared_data, tmp_path_factory):
    """4 Cu foil + CuO mixtures from the real spectra, plus files that are no spectra."""
    series, truth = mixtures.cu_fraction_series(n_steps=4, seed=5)
    folder = tmp_path_factory.mktemp("cu") / "data"
    mixtures.write_folder(series, truth, folder)
    (folder / "conditions.csv").unlink()        # a folder without a table: every file counts
    (folder / "truth.csv").unlink()
    for name, text in STRAYS.items():
        (folder / name).write_text(text)
    shutil.copy(folder / "cu_fraction_00001.xdi", os.path.join(folder, ODD_NAME))
    return folder


def _toml(tmp_path, folder, out) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'[series]\nsource = "{folder}"\nelement = "Cu"\nedge = "K"\n'
                    f'[output]\ndir = "{out}"\nplots = []\nreport = false\n')
    return path


def test_run_skips_and_names_every_file_that_is_no_spectrum(cu_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["run", str(_toml(tmp_path, cu_folder, out)), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    skipped = {s["file"]: s["reason"] for s in summary["skipped_files"]}
    assert set(skipped) == {*STRAYS, "scan_\\xff\\xfe.xdi"}, skipped
    assert "only 3 rows: not a spectrum" in skipped["notes.txt"]
    assert "not valid UTF-8" in skipped["scan_\\xff\\xfe.xdi"]
    steps = pd.read_csv(out / "steps.csv")
    assert list(steps["file"]) == [f"cu_fraction_{i:05d}.xdi" for i in range(4)]
    assert steps["ok"].all()
    # on_error = "raise" stops at the first of them with its name instead
    with pytest.raises(ReadError, match="notes.txt"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_series(cu_folder, element="Cu", edge="K", on_error="raise")


def test_watch_skips_them_too(cu_folder, tmp_path):
    out = tmp_path / "wout"
    done = subprocess.run(
        [sys.executable, "-m", "operando.cli", "watch", str(_toml(tmp_path, cu_folder, out)),
         "--poll", "--interval", "0.2", "--settle", "0.2", "--idle-exit", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    steps = pd.read_csv(out / "steps.csv")
    assert list(steps["file"]) == [f"cu_fraction_{i:05d}.xdi" for i in range(4)]


def test_a_bad_row_of_a_growing_conditions_table_is_left_out_and_named(cu_folder, tmp_path):
    series, truth = mixtures.cu_fraction_series(n_steps=4, seed=5)
    mixtures.write_folder(series, truth, tmp_path / "data")
    good = (tmp_path / "data" / "conditions.csv").read_bytes()
    assert good.count(b"\n") == 5                       # header + 4 rows
    lines = good.splitlines(keepends=True)
    # the beamline appends: a row with a stray field, a typo in time_s, a repeated scan,
    # then a good row, then one still being written (no newline yet)
    grown = (b"".join(lines[:3]) + lines[3].rstrip(b"\n") + b",oops\n"
             + lines[4].replace(b",", b",x", 1) + lines[1] + b'"open.xdi,5\n'
             + b"extra.xdi,99.0\n" + b"late.x")
    table, problems = read_growing_conditions(grown)
    assert list(table["file"]) == ["cu_fraction_00000.xdi", "cu_fraction_00001.xdi",
                                   "extra.xdi"]
    assert problems == ["line 4: 3 fields, the header has 2",
                        "line 5: time_s must be a number, not 'x90.0'",
                        "line 6: file 'cu_fraction_00000.xdi' is already on line 2",
                        "line 7: an unclosed quote"]
    # what is kept loads as the batch reader loads the file
    assert load_conditions(table)["time_s"].tolist() == [0.0, 30.0, 99.0]
    # fixed, the rows come back: the scans they list were waited on, not lost
    table, problems = read_growing_conditions(good)
    assert problems == [] and len(table) == 4


def test_a_plain_two_column_file_is_a_reference(shared_data, tmp_path):
    """Energy and mu without column names (Athena's/Larix's plain export) read as such:
    LCF with such copies of the real Cu foil and CuO equals LCF with the XDI files."""
    series, truth = mixtures.cu_fraction_series(n_steps=5, seed=2)
    data = tmp_path / "data"
    mixtures.write_folder(series, truth, data)
    refs = shared_data / "references"
    plain = {}
    for name, file in (("cu_foil", "cu_foil_rt.xdi"), ("cuo", "cuo_tenorite_13K.xdi")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = read_series(refs / file, reference=False)
        plain[name] = tmp_path / f"{name}.txt"
        np.savetxt(plain[name], np.column_stack([s.energy, s.mu[0]]), fmt="%.8f")

    def fractions(references, out):
        cfg = load_config({"series": {"source": str(data), "pattern": "*.xdi",
                                      "conditions": str(data / "conditions.csv")},
                           "components": {"standards": references},
                           "output": {"dir": str(tmp_path / out), "plots": [],
                                      "report": False}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run(cfg, progress=False).steps["frac_cu_foil"].to_numpy()

    got = fractions({k: str(v) for k, v in plain.items()}, "plain")
    want = fractions({"cu_foil": str(refs / "cu_foil_rt.xdi"),
                      "cuo": str(refs / "cuo_tenorite_13K.xdi")}, "xdi")
    # the same spectra (written to 1e-8): the same fractions to well below their errors
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - truth["frac_cu_foil"].to_numpy()).max() < 0.05


# ------------------------------------------- a bad row appended while the watch runs
XANES = """[series]
source = "scans"
conditions = "scans/conditions.csv"
element = "Cu"
edge = "K"
[normalize]
e0 = "first"
calibrate = true
norm1 = 150.0
norm2 = 600.0
[output]
dir = "{out}"
plots = []
report = false
athena = false
[run]
chunk_size = 4
workers = 1
"""


@pytest.mark.slow
def test_watch_waits_on_a_bad_conditions_row_warns_once_and_reads_it_fixed(
        shared_data, tmp_path, caplog):
    """Cu foil + CuO along the potential program (real spectra) land one by one; the row
    of one scan is appended with a stray field. The watch goes on with the later scans,
    warns once naming the line, reads the scan once the row is fixed, and ends with the
    batch run's steps.csv."""
    import logging
    import threading
    import time

    from operando.pipeline import watch

    series, truth = mixtures.cu_potential_series(repeats=1, seed=5, data_dir=shared_data)
    mixtures.write_folder(series, truth, tmp_path / "stage")
    for out in ("batch", "live"):
        (tmp_path / f"{out}.toml").write_text(XANES.format(out=out))
    rows = (tmp_path / "stage" / "conditions.csv").read_text().splitlines(keepends=True)
    n = len(rows) - 1
    bad = 4                                   # rows[4]: the 4th scan, line 5 of the file
    bad_name = rows[bad].split(",")[0]
    scans = tmp_path / "scans"
    scans.mkdir()
    table = scans / "conditions.csv"
    seen_without_it = threading.Event()

    def on_update(update):
        if update.n_steps == n - 1:
            seen_without_it.set()

    def beamline():
        table.write_text(rows[0])
        for i, row in enumerate(rows[1:], start=1):
            name = row.split(",")[0]
            (scans / name).write_bytes((tmp_path / "stage" / name).read_bytes())
            with open(table, "a") as fh:
                fh.write(row.rstrip("\n") + ",oops\n" if i == bad else row)
            time.sleep(0.05)
        # the row is fixed only after the watch has analysed every other scan without it
        seen_without_it.wait(120)
        fixed = tmp_path / "fixed.csv"
        fixed.write_text("".join(rows))
        os.replace(fixed, table)

    writer = threading.Thread(target=beamline)
    caplog.set_level(logging.WARNING, logger="operando")
    writer.start()
    updates = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            watch(load_config(tmp_path / "live.toml"), poll=True, interval=0.05, settle=0.1,
                  idle_timeout=2.0, on_update=lambda u: (updates.append(u), on_update(u)))
    finally:
        writer.join()
    assert seen_without_it.is_set()
    # while the row was bad its scan waited: the series had every scan but that one
    waiting = [u for u in updates if u.n_steps == n - 1]
    assert waiting and bad_name not in waiting[-1].result.steps["file"].tolist()
    assert updates[-1].n_steps == n
    warned = [r.getMessage() for r in caplog.records if "conditions.csv line" in r.getMessage()]
    # one line, once, though the watch polled the bad row many times
    assert warned == [f"conditions.csv line {bad + 1}: 5 fields, the header has 4; its scan "
                      "waits until the row is fixed"], warned
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(load_config(tmp_path / "batch.toml"), progress=False)
    live = pd.read_csv(tmp_path / "live" / "steps.csv")
    batch = pd.read_csv(tmp_path / "batch" / "steps.csv")
    pd.testing.assert_frame_equal(live, batch, check_exact=False, rtol=1e-6)


# ------------------------------------------- FIFOs, sockets, devices, broken links
SPECIAL = {"pipe.dat", "gone.xdi", "loop.xdi"}


def _special_folder(tmp_path) -> Path:
    """3 real-spectrum mixtures, a FIFO, a symbolic link to a scan that is gone and one to
    itself."""
    series, truth = mixtures.cu_fraction_series(n_steps=3, seed=7)
    folder = tmp_path / "data"
    mixtures.write_folder(series, truth, folder)
    (folder / "conditions.csv").unlink()
    (folder / "truth.csv").unlink()
    os.mkfifo(folder / "pipe.dat")
    os.symlink(tmp_path / "nowhere" / "scan_9.xdi", folder / "gone.xdi")
    os.symlink("loop.xdi", folder / "loop.xdi")  # a link to itself
    return folder


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("command", ["run", "watch"])
def test_a_fifo_and_a_broken_link_are_skipped_and_named_never_opened(tmp_path, command):
    folder = _special_folder(tmp_path)
    out = tmp_path / "out"
    extra = (["--poll", "--interval", "0.1", "--settle", "0.2", "--idle-exit", "2"]
             if command == "watch" else ["--no-progress"])
    # a timeout: opening the FIFO would block forever
    done = subprocess.run(
        [sys.executable, "-m", "operando.cli", command, str(_toml(tmp_path, folder, out)),
         *extra], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert all(name in done.stderr for name in SPECIAL), done.stderr
    summary = json.loads((out / "summary.json").read_text())
    skipped = {s["file"]: s["reason"] for s in summary["skipped_files"]}
    assert set(skipped) == SPECIAL, skipped
    assert skipped["pipe.dat"] == "a FIFO (named pipe), not a regular file"
    assert skipped["gone.xdi"].startswith("broken symbolic link")
    assert "symbolic links" in skipped["loop.xdi"]
    steps = pd.read_csv(out / "steps.csv")
    assert list(steps["file"]) == [f"cu_fraction_{i:05d}.xdi" for i in range(3)]
    assert steps["ok"].all()
    if command == "watch":  # the journal counts scans read, not the entries skipped
        journal = [json.loads(line) for line in (out / "watch.jsonl").read_text().splitlines()]
        assert sorted(n for entry in journal for n in entry["new"]) == list(steps["file"])


def test_the_reader_names_special_entries_and_raises_on_them_when_asked(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    folder = _special_folder(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = read_series(folder, element="Cu", edge="K")
    assert len(series) == 3
    assert {s["file"] for s in series.metadata["skipped"]} == SPECIAL
    assert any(all(name in str(w.message) for name in SPECIAL) for w in caught)
    with pytest.raises(ReadError, match="gone.xdi: broken symbolic link"):
        read_series(folder, element="Cu", edge="K", on_error="raise")


@pytest.mark.slow
def test_a_watch_that_sees_only_notes_waits_for_scans(shared_data, tmp_path, caplog):
    """A watch started on a folder holding only files that are no spectra (a note with two
    number columns, a table of other columns) names each once and waits; the real Cu foil + CuO scans
    that land later are read, and steps.csv equals a batch run on the same folder (which
    skips the notes too). Before, the watch stopped at once: none of the files could be
    read."""
    import logging
    import threading
    import time

    from operando.pipeline import watch

    series, truth = mixtures.cu_fraction_series(n_steps=4, seed=5, data_dir=shared_data)
    mixtures.write_folder(series, truth, tmp_path / "stage")
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("notes.txt", "table.dat"):  # both end with a row of numbers: they settle
        (scans / name).write_text(STRAYS[name])
    for out in ("batch", "live"):
        (tmp_path / f"{out}.toml").write_text(
            f'[series]\nsource = "scans"\nelement = "Cu"\nedge = "K"\n'
            f'[output]\ndir = "{out}"\nplots = []\nreport = false\n')
    waited = threading.Event()

    def beamline():
        waited.wait(60)                       # the watch has polled the notes alone
        for name in sorted(p.name for p in (tmp_path / "stage").glob("*.xdi")):
            (scans / name).write_bytes((tmp_path / "stage" / name).read_bytes())
            time.sleep(0.05)

    def named_both():
        text = " ".join(r.getMessage() for r in caplog.records)
        return "skipped notes.txt" in text and "skipped table.dat" in text

    caplog.set_level(logging.WARNING, logger="operando")
    writer = threading.Thread(target=beamline)
    writer.start()
    updates = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            watcher = threading.Thread(target=lambda: watch(
                load_config(tmp_path / "live.toml"), poll=True, interval=0.05, settle=0.1,
                idle_timeout=3.0, on_update=updates.append))
            watcher.start()
            deadline = time.monotonic() + 60
            while not named_both() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert named_both(), [r.getMessage() for r in caplog.records]
            assert not updates                # nothing to analyse yet, and no stop
            waited.set()
            watcher.join(120)
    finally:
        waited.set()
        writer.join()
    assert not watcher.is_alive()
    assert updates and updates[-1].n_steps == 4
    messages = [r.getMessage() for r in caplog.records]
    assert sum("skipped notes.txt" in m for m in messages) == 1   # named once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(load_config(tmp_path / "batch.toml"), progress=False)
    live = pd.read_csv(tmp_path / "live" / "steps.csv")
    batch = pd.read_csv(tmp_path / "batch" / "steps.csv")
    pd.testing.assert_frame_equal(live, batch, check_exact=False, rtol=1e-6)
