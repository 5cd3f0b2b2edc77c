"""Scale-out: dask executors, streaming operando HDF5 series, the progress bar.

One small simulated Pt series (with its foil reference channel, so calibration
runs) is analysed inline from memory, inline streamed from HDF5, and streamed
on a local dask cluster; every steps.csv must be byte-identical, because chunk
boundaries (and so the fits' warm starts) are fixed by ``chunk_size`` and each
row's calibration shift depends on that row only.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from operando import pipeline, simulate
from operando.pipeline import chunks as chunks_module
from operando.pipeline import outputs as outputs_module
from operando.pipeline.progress import progress_bar
from operando.cli import main
from operando.config import load_config
from operando.io import open_hdf5, write_hdf5

from _streamed import count_rows_read, run_in_memory

N_STEPS = 200
CHUNK = 32  # 200 = 6 x 32 + 8: the last chunk is short


@pytest.fixture(scope="module")
def h5_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale")
    series, _ = simulate.simulate_series(simulate.PT_CO_OXIDATION.scaled(N_STEPS), seed=3)
    path = write_hdf5(series, folder / "series.h5")
    return path


def _config(source: Path, out: Path, *, exafs: bool = True) -> object:
    return load_config(_config_text(source, out, exafs=exafs))


def _config_text(source: Path, out: Path, *, exafs: bool = True) -> str:
    text = f"""
[series]
source = "{source}"

[normalize]
e0 = "first"
calibrate = true

[foil]
s02 = 0.85

[output]
dir = "{out}"
report = false
athena = false
plots = []

[run]
chunk_size = {CHUNK}
"""
    if exafs:
        text += """
[exafs]
shells = ["Pt-O", "Pt-Pt"]
kmin = 3.0
kmax = 12.0
kweight = 2
rmin = 1.2
rmax = 3.2
engine = "fast"
"""
    return text


@pytest.fixture(scope="module")
def in_memory_run(h5_series, tmp_path_factory):
    """The reference: the same file read whole into memory (the pre-streaming path)."""
    out = tmp_path_factory.mktemp("mem") / "run"
    result = run_in_memory(_config(h5_series, out))
    assert result.n_ok > N_STEPS * 0.9  # a meaningful comparison: nearly every step fitted
    return out


def _steps_text(run_dir: Path) -> str:
    return (Path(run_dir) / "steps.csv").read_text()


def test_streamed_hdf5_equals_in_memory(h5_series, in_memory_run, tmp_path, monkeypatch):
    calls = count_rows_read(monkeypatch)
    result = pipeline.run(_config(h5_series, tmp_path / "run"), progress=False)
    assert result.settings["series"]["metadata"]["format"] == "hdf5"  # the streamed path ran
    # Exact equality: same chunk boundaries, same per-row calibration, same arithmetic.
    assert _steps_text(tmp_path / "run") == _steps_text(in_memory_run)
    # mu is only ever read in chunk-sized blocks, never whole.
    assert calls and max(calls) <= CHUNK < N_STEPS
    assert sum(calls) >= N_STEPS  # and every row was read


def test_lazy_series_holds_no_spectra(h5_series):
    lazy = open_hdf5(h5_series)
    assert not hasattr(lazy, "mu")
    assert len(lazy) == N_STEPS and lazy.energy.size == lazy.shape[1]
    assert lazy.element == "Pt" and lazy.edge == "L3"
    block = lazy.take(slice(40, 72))
    from operando.io import read_series

    whole = read_series(h5_series)
    np.testing.assert_array_equal(block.mu, whole.mu[40:72])
    np.testing.assert_array_equal(block.reference, whole.reference[40:72])
    assert block.steps.tolist() == list(range(40, 72))


def test_dask_executor_equals_inline(h5_series, in_memory_run, tmp_path):
    distributed = pytest.importorskip("distributed")
    # Worker processes (not threads): this is what a cluster does, so the chunk
    # tasks and their results really go through pickling.  Two workers start in
    # a few seconds, well inside this file's budget.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = pipeline.run(_config(h5_series, tmp_path / "run"),
                              executor=client.get_executor(), progress=False)
        # The CLI connects its own client to the same scheduler.
        toml = tmp_path / "run.toml"
        toml.write_text(_config_text(h5_series, tmp_path / "cli"))
        code = main(["run", str(toml), "--scheduler", cluster.scheduler_address, "--no-progress"])
    assert result.summary["chunks_computed"] == -(-N_STEPS // CHUNK)
    assert _steps_text(tmp_path / "run") == _steps_text(in_memory_run)
    assert code == 0 and _steps_text(tmp_path / "cli") == _steps_text(in_memory_run)


def test_plot_rows_are_bounded_and_even():
    assert chunks_module.sample_rows(10).tolist() == list(range(10))
    rows = chunks_module.sample_rows(100_000)
    assert len(rows) == chunks_module.PLOT_ROWS and rows[0] == 0 and rows[-1] == 99_999
    gaps = np.diff(rows)
    assert gaps.min() >= 49 and gaps.max() <= 51


def test_figures_get_at_most_plot_rows(h5_series, tmp_path, monkeypatch):
    monkeypatch.setattr(chunks_module, "PLOT_ROWS", 50)
    seen = {}
    real = outputs_module.figure_list

    def spy(ft, energy, steps, norm, chi, tracking, plot_rows, **kwargs):
        seen.update(norm=norm.shape, rows=len(plot_rows))
        figures = real(ft, energy, steps, norm, chi, tracking, plot_rows, **kwargs)
        drawn = dict(figures)["white_line"].args[0]   # the TrackingResult the figure gets
        outliers = set(tracking.steps["step"][tracking.steps["outlier"].astype(bool)])
        seen.update(trend=set(drawn.steps["step"]), wanted=set(steps["step"].iloc[plot_rows])
                    | outliers, segments=len(drawn.segments) == len(tracking.segments))
        return figures

    monkeypatch.setattr(outputs_module, "figure_list", spy)
    config = _config(h5_series, tmp_path / "run", exafs=False).with_output(plots=["png"])
    result = pipeline.run(config, progress=False)
    assert seen["rows"] == 50 and seen["norm"][0] == 50
    # the trend figures: the plot rows' steps and every outlier, all segments
    assert seen["trend"] == seen["wanted"] and seen["segments"]
    assert any("show 50 of 200 steps" in n for n in result.summary["notes"])
    assert len(result.steps) == N_STEPS


# ---------------------------------------------------------------- progress
def test_progress_callable_false_and_tty(h5_series, tmp_path, monkeypatch):
    seen = []
    pipeline.run(_config(h5_series, tmp_path / "a", exafs=False), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (N_STEPS, N_STEPS) and [d for d, _ in seen] == sorted(d for d, _ in seen)

    class Tty:
        def isatty(self):
            return True

        def write(self, text):
            return len(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Tty())
    from tqdm.std import tqdm

    bar = progress_bar(None, 10)
    assert isinstance(bar, tqdm)
    bar.close()
    assert not isinstance(progress_bar(False, 10), tqdm)
    monkeypatch.setattr(Tty, "isatty", lambda self: False)
    assert not isinstance(progress_bar(None, 10), tqdm)


def test_cli_scheduler_unreachable_is_one_line_error(h5_series, tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    from operando import cli

    monkeypatch.setattr(cli, "SCHEDULER_TIMEOUT", "1s")
    toml = tmp_path / "run.toml"
    toml.write_text(_config_text(h5_series, tmp_path / "out", exafs=False))
    code = main(["run", str(toml), "--scheduler", "tcp://127.0.0.1:9", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "--scheduler tcp://127.0.0.1:9" in err and "Traceback" not in err


def test_chunks_of_an_hdf5_file_carry_bounds_not_spectra(h5_series, tmp_path, monkeypatch):
    """A chunk task of a streamed HDF5 series carries the file path and its row bounds
    (a worker reads its own rows); what it carries pickled is a small part of its rows."""
    import pickle

    from operando.io import RowSlice
    seen = []
    real = chunks_module.process_chunk

    def spy(task):
        seen.append((len(pickle.dumps(task)), task.series))
        return real(task)

    monkeypatch.setattr(chunks_module, "process_chunk", spy)
    pipeline.run(_config(h5_series, tmp_path / "run").with_run(workers=1), progress=False)
    whole = open_hdf5(h5_series)
    assert len(seen) == -(-N_STEPS // CHUNK)
    for size, rows in seen:
        assert isinstance(rows, RowSlice) and rows.path == whole.path
        mu, ref = whole.read_rows(rows.start, rows.stop)
        assert size < (mu.nbytes + ref.nbytes) / 4
        loaded = rows.load()
        np.testing.assert_array_equal(loaded.mu, mu)
        np.testing.assert_array_equal(loaded.reference, ref)


def test_summary_records_seconds_per_stage(in_memory_run):
    """summary.json ``timings``: the seconds of every stage the run went through (what the
    benchmarks print); stages add up to no more than the whole run."""
    import json

    summary = json.loads((in_memory_run / "summary.json").read_text())
    timings = summary["timings"]
    assert {"read", "prepare", "chunks", "tables", "tracking", "wavelet", "outputs",
            "athena"} <= set(timings)  # no figures nor report in this configuration
    assert all(v >= 0 for v in timings.values())
    assert sum(timings.values()) <= summary["seconds"] + 0.01
