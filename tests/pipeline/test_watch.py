"""Live mode (#16 item 1): ``operando watch`` follows scans as they land, reads none
half-written, survives Ctrl-C and restart, and ends with the batch run's steps.csv."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from operando.pipeline.follow import ScanSource

ROOT = Path(__file__).resolve().parents[2]
N_SCANS = 50
CHUNK = 8
SLOW = 17  # this scan is written in six pieces over 0.6 s


# ------------------------------------------------------------ ready or not
XDI = "# XDI/1.0\n# Element.symbol: Cu\n# Column.1: energy eV\n# Column.2: mu\n#----\n# energy mu\n"


def test_a_scan_is_ready_only_when_settled_complete_and_listed(tmp_path):
    source = ScanSource(str(tmp_path), pattern="*.xdi", conditions=str(tmp_path / "c.csv"),
                        settle=1.0)
    (tmp_path / "c.csv").write_text("file,potential_V\na.xdi,0.1\nb.xdi,0.2\nc.xdi,0")
    rows = "".join(f"{8900 + i}.0 {0.1 * i:.3f}\n" for i in range(50))
    (tmp_path / "a.xdi").write_text(XDI + rows)                  # complete
    (tmp_path / "b.xdi").write_text(XDI + rows[:len(rows) // 2] + "8950.0 0.")  # cut in a row
    (tmp_path / "c.xdi").write_text(XDI)                         # header only
    (tmp_path / "d.xdi").write_text(XDI + rows)                  # not listed (yet)
    table = source.conditions_table()
    # The CSV's last line has no newline yet: c.xdi's row is not there.
    assert list(table["file"]) == ["a.xdi", "b.xdi"]
    assert source.ready(table, now=0.0) == []                     # nothing has settled yet
    assert [p.name for p in source.ready(table, now=0.5)] == []
    assert [p.name for p in source.ready(table, now=1.5)] == ["a.xdi"]
    with open(tmp_path / "a.xdi", "a") as fh:                     # a grows again: wait again
        fh.write("8950.0 5.0\n")
    assert source.ready(table, now=2.0) == []
    assert [p.name for p in source.ready(table, now=3.1)] == ["a.xdi"]
    # A file read before a restart, unchanged, is ready without settling.
    known = {"d.xdi": source.stamp(tmp_path / "d.xdi")}
    fresh = ScanSource(str(tmp_path), pattern="*.xdi", settle=1.0)
    assert [p.name for p in fresh.ready(None, known=known, now=0.0)] == ["d.xdi"]


def test_an_unchanged_conditions_csv_is_not_parsed_again(tmp_path, monkeypatch, caplog):
    """An idle watch polls twice a second: the conditions CSV is parsed only when its
    bytes change, and its bad row is warned about once."""
    from operando.pipeline import follow

    parsed = []
    real = follow.read_growing_conditions
    monkeypatch.setattr(follow, "read_growing_conditions",
                        lambda raw: parsed.append(raw) or real(raw))
    csv = tmp_path / "c.csv"
    csv.write_text("file,potential_V\na.xdi,0.1\nb.xdi,0.2,9\n")   # b's row: a field too many
    source = ScanSource(str(tmp_path), pattern="*.xdi", conditions=str(csv), settle=0.0)
    with caplog.at_level("WARNING"):
        first = source.conditions_table()
        first.loc[0, "file"] = "changed by a caller.xdi"
        again = source.conditions_table()
    assert len(parsed) == 1 and list(again["file"]) == ["a.xdi"]
    assert sum("b.xdi" in r.getMessage() or "line 3" in r.getMessage()
               for r in caplog.records) == 1
    with open(csv, "a") as fh:
        fh.write("c.xdi,0.3\n")
    assert list(source.conditions_table()["file"]) == ["a.xdi", "c.xdi"] and len(parsed) == 2


# --------------------------------------------------------------- acceptance
WRITER = """
import sys, time
from pathlib import Path
stage, dest = Path(sys.argv[1]), Path(sys.argv[2])
rows = (stage / "conditions.csv").read_text().splitlines(keepends=True)
(dest / "conditions.csv").write_text(rows[0])
for i, row in enumerate(rows[1:]):
    name = row.split(",")[0]
    data = (stage / name).read_bytes()
    with open(dest / name, "wb") as fh:
        pieces = 6 if i == SLOW else 1
        for k in range(pieces):
            fh.write(data[k * len(data) // pieces:(k + 1) * len(data) // pieces])
            fh.flush()
            if pieces > 1:
                time.sleep(0.1)
    with open(dest / "conditions.csv", "a") as fh:  # the row follows its scan, in two writes
        fh.write(row[:len(row) // 2]); fh.flush(); time.sleep(0.01); fh.write(row[len(row) // 2:])
    time.sleep(0.09)
""".replace("SLOW", str(SLOW))

CONFIG = """
[series]
source = "scans"
pattern = "*.xdi"
conditions = "scans/conditions.csv"

[normalize]
calibrate = true
e0 = "first"   # a full chunk stays final (with "median" E0 moves as scans land)

[foil]
s02 = 0.9

[exafs]
shells = ["Cu-O", "Cu-Cu"]
kmin = 3.0
kmax = 11.0
rmin = 1.0
rmax = 3.0

[output]
dir = "OUT"
plots = []

[run]
chunk_size = CHUNK
workers = 1
""".replace("CHUNK", str(CHUNK))


def _operando(*args):
    exe = Path(sys.executable).with_name("operando")
    return ([str(exe)] if exe.exists() else [sys.executable, "-m", "operando.cli"]) + list(args)


def _journal(out: Path) -> list[dict]:
    path = out / "watch.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(out: Path, n_steps: int, proc, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        entries = _journal(out)
        if entries and entries[-1]["n_steps"] >= n_steps:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError(f"the watch did not reach {n_steps} scans in {timeout} s")


def _stop(proc) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "watch stopped (SIGINT)" in err, err
    return err


@pytest.mark.parametrize("workers", [1, 2])
def test_watch_follows_50_landing_scans_through_a_restart_and_equals_batch(tmp_path,
                                                                          shared_data, workers):
    """``workers = 2``: every update runs its chunks and draws its figures on a process
    pool forked from the watching process (its file-system observer threads alive)."""
    from operando.mixtures import cu_potential_series, write_folder

    series, truth = cu_potential_series(cycles=2, repeats=3, seed=1, data_dir=shared_data)
    write_folder(series.take(slice(0, N_SCANS)), truth, tmp_path / "stage")
    (tmp_path / "scans").mkdir()
    config = CONFIG.replace("workers = 1", f"workers = {workers}")
    if workers > 1:
        config = config.replace("plots = []", 'plots = ["png"]')
    (tmp_path / "watch.toml").write_text(config.replace("OUT", "live"))
    (tmp_path / "batch.toml").write_text(config.replace("OUT", "batch"))
    out = tmp_path / "live"
    cmd = _operando("watch", "watch.toml", "--settle", "0.5", "--interval", "0.2")

    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    assert first.stdout.readline().startswith("watching")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "stage"),
                               str(tmp_path / "scans")])
    try:
        _wait_for(out, 10, first, timeout=60)
        _stop(first)
        # Stopped: the report no longer reloads itself.
        assert 'http-equiv="refresh"' not in (out / "report.html").read_text()
        assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
        n_first = len(_journal(out))

        second = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        _wait_for(out, N_SCANS, second, timeout=90)
        live = (out / "report.html").read_text()
        assert re.search(r'<meta http-equiv="refresh" content="\d+">', live)
        assert f"{N_SCANS} scans analysed" in live
        _stop(second)
    finally:
        writer.wait(timeout=60)
    assert 'http-equiv="refresh"' not in (out / "report.html").read_text()

    entries = _journal(out)
    files = sorted(p.name for p in (tmp_path / "scans").glob("*.xdi"))
    assert len(files) == N_SCANS
    # Every scan read exactly once, in order, across both sessions.
    read = [name for e in entries for name in e["new"]]
    assert read == files
    # None half-read: each file was read at its final size and time, never found changed.
    for e in entries:
        assert e["changed"] == []
        for name, (size, mtime_ns) in e["stamps"].items():
            st = (tmp_path / "scans" / name).stat()
            assert (size, mtime_ns) == (st.st_size, st.st_mtime_ns), name
    # Nothing redone: a chunk is computed only when scans of it arrived in that update
    # (the restart's first update computes nothing).
    position = {name: i for i, name in enumerate(files)}
    for e in entries:
        new_chunks = {position[name] // CHUNK for name in e["new"]}
        assert set(e["computed"]) <= new_chunks, e
    assert entries[n_first]["new"] == [] or entries[n_first]["computed"] != []
    assert entries[n_first]["computed"] == [] or entries[n_first]["new"]

    batch = subprocess.run(_operando("run", "batch.toml", "--no-progress"), cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert batch.returncode == 0, batch.stderr
    watched = pd.read_csv(out / "steps.csv")
    assert watched["file"].tolist() == files and watched["ok"].all()
    assert (out / "steps.csv").read_bytes() == (tmp_path / "batch" / "steps.csv").read_bytes()
    for name in ("segments.csv", "events.csv"):
        assert (out / name).read_bytes() == (tmp_path / "batch" / name).read_bytes(), name
    assert (out / "athena.prj").is_file()  # written when the watch stopped
    if workers > 1:
        assert (out / "cn.png").read_bytes() == (tmp_path / "batch" / "cn.png").read_bytes()
