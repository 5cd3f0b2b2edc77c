"""Every setting is checked before any work, special files are refused and a text file's
size is bounded whatever its compression (#23, item 6). Each case ends in one line and
exit code 2, never a traceback nor a hang (the command runs in a child with a timeout)."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from operando import mixtures, read_series, tracking
from operando.config import load_config
from operando.errors import ConfigError, ReadError
from operando.io._text import MAX_LINES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cu_potential(shared_data, tmp_path_factory):
    """The Cu potential sequence (+0.4 ... -1.0 V, OCP) mixed from the real Cu foil + CuO."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series, truth = mixtures.cu_potential_series(repeats=1)
    folder = tmp_path_factory.mktemp("cu") / "data"
    mixtures.write_folder(series, truth, folder)
    return folder


def _operando(tmp_path, text: str, timeout: float = 120) -> tuple[int, str]:
    """``operando run`` of a config in a child process (a hang fails at the timeout)."""
    toml = tmp_path / "run.toml"
    toml.write_text(text)
    try:
        done = subprocess.run([sys.executable, "-m", "operando.cli", "run", str(toml),
                               "--no-progress"], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"operando run hung on:\n{text}")
    return done.returncode, done.stderr


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("operando: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _series(folder: Path, out: Path, extra: str = "") -> str:
    return (f'[series]\nsource = "{folder}"\npattern = "*.xdi"\n'
            f'conditions = "{folder / "conditions.csv"}"\n{extra}\n'
            f'[output]\ndir = "{out}"\nplots = []\nreport = false\n')


# ------------------------------------------------------------------ labels, numbers, windows
def test_a_track_baseline_naming_no_condition_stops_before_any_fit(cu_potential, tmp_path):
    out = tmp_path / "out"
    code, err = _operando(tmp_path, _series(cu_potential, out) + '[track]\nbaseline = "-0.3 V"\n'
                          '[exafs]\nshells = ["Cu-O", "Cu-Cu"]\n[foil]\ns02 = 0.85\n')
    line = _one_line(err)
    assert code == 2 and "[track] baseline = '-0.3 V' matches no condition" in line
    assert "'-0.20 V'" in line and "'OCP'" in line           # what would be accepted
    chunks = list((out / "checkpoints").glob("chunk_*")) if (out / "checkpoints").is_dir() else []
    assert chunks == []                                      # no chunk was fitted
    assert not (out / "steps.csv").exists()
    # the labels the check accepts are the tracker's own
    conditions = read_series(cu_potential, pattern="*.xdi",
                             conditions=cu_potential / "conditions.csv").conditions
    for label in ("-0.20 V", "-0.2 V", " -0.200v", "ocp", "first"):  # numbers by value
        tracking.check_baseline(conditions, settings={"baseline": label})
    with pytest.raises(ConfigError, match="matches no condition"):
        tracking.check_baseline(conditions, settings={"baseline": "-0.3 V"})


@pytest.mark.parametrize("setting, key", [("norm1 = 1e300", "norm1"),
                                          ("pre2 = -5000.0", "pre2")])
def test_a_normalisation_window_outside_the_data_is_one_line(cu_potential, tmp_path, setting,
                                                             key):
    code, err = _operando(tmp_path, _series(cu_potential, tmp_path / "out",
                                            f"[normalize]\n{setting}"))
    line = _one_line(err)
    assert code == 2 and f"[normalize] {key} = " in line and "data" in line


def test_an_exafs_window_beyond_the_scans_stops_before_any_fit(cu_potential, tmp_path):
    """The mixtures reach k = 13.1 1/A; kmin 14 used to fail every step, after all of them
    were read and normalised, and end in "no usable evidence"."""
    out = tmp_path / "out"
    code, err = _operando(tmp_path, _series(cu_potential, out) + '[exafs]\nshells = ["Cu-O", '
                          '"Cu-Cu"]\nkmin = 14.0\nkmax = 18.0\n[foil]\ns02 = 0.85\n')
    line = _one_line(err)
    assert code == 2 and "[exafs] kmin = 14 1/A: the scans reach k = 13.1 1/A" in line
    assert not (out / "steps.csv").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300"])
def test_non_finite_or_absurd_numbers_are_refused_at_load(value):
    with pytest.raises(ConfigError, match=r"\[components\] erange"):
        load_config(f'[series]\nsource = "x"\n[components]\nstandards = ["a", "b"]\n'
                    f'erange = [-20.0, {value}]\n')
    with pytest.raises(ConfigError, match=r"\[normalize\] wl_window"):
        load_config(f'[series]\nsource = "x"\n[normalize]\nwl_window = [-10.0, {value}]\n')
    with pytest.raises(ConfigError, match=r"\[normalize\] edge_energy"):
        load_config(f'[series]\nsource = "x"\n[normalize]\nedge_energy = {value}\n')
    if value != "1e300":        # a finite window beyond the data: refused with the data above
        with pytest.raises(ConfigError, match=r"\[normalize\] norm2"):
            load_config(f'[series]\nsource = "x"\n[normalize]\nnorm2 = {value}\n')


# ------------------------------------------------------------------------- special files
def test_special_files_are_refused_at_once(cu_potential, tmp_path):
    fifo = tmp_path / "scans.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    cases = {
        "FIFO source": f'[series]\nsource = "{fifo}"\n[output]\ndir = "{out}"\n',
        "/dev/zero foil": _series(cu_potential, out, '[foil]\nfile = "/dev/zero"\n'
                                                     '[exafs]\nshells = ["Cu-Cu"]'),
        "/dev/urandom reference": _series(cu_potential, out, '[components]\nstandards = '
                                                             '["/dev/urandom", "first"]'),
    }
    for name, text in cases.items():
        code, err = _operando(tmp_path, text, timeout=60)
        line = _one_line(err)
        assert code == 2 and "not a regular file" in line, (name, line)
    # the reader refuses them too, for notebook use
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ReadError, match="not a regular file"):
            read_series(path)


# ------------------------------------------------------------------------- points per scan
def test_points_per_scan_are_capped_whatever_the_compression(tmp_path):
    """A gzip of short lines, well within the decompression limits (about 30x), holding
    more lines than a scan may: refused before a line is split, in bounded memory."""
    path = tmp_path / "long_scan.dat.gz"
    rnd = random.Random(0)
    n = MAX_LINES + 1000
    with gzip.open(path, "wt") as fh:
        fh.write("# energy mu\n")
        fh.write("".join(f"{8000 + i * 0.01:.2f} {rnd.randint(0, 9)}\n" for i in range(n)))
    # the child's own peak (VmHWM; ru_maxrss would carry the forking parent's across exec)
    script = ("import re, operando as op\n"
              f"try:\n    op.read_series({str(path)!r})\nexcept op.ReadError as e:\n"
              "    print(e)\n"
              "status = open('/proc/self/status').read()\n"
              "print(int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) // 1024)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    message, peak_mb = done.stdout.strip().splitlines()
    assert f"more than the {MAX_LINES:,} points a scan may have" in message
    # Parsing these lines (no cap) peaked at ~680 MB; refused, the process stays near its
    # imports plus the decompressed bytes (~20 MB): 400 MB leaves room for the imports.
    assert int(peak_mb) < 400, peak_mb
