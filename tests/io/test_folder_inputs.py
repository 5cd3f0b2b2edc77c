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
