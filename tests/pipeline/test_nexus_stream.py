"""Streaming a NeXus NXxas source: the run's process reads energy, conditions and metadata;
chunk tasks carry row bounds; workers read their own frames.

The series is mixed from REAL measured spectra (Cu foil + CuO along the potential program,
operando.mixtures) and written as NXxas files the ways beamlines do: one entry of 2-D
frames with ``data/mu``, one entry of 2-D incoming/absorbed beam frames (mu = ln(I0/It)),
and one entry per spectrum.  The streamed run must equal the in-memory run of the same file
byte for byte (same rows, same chunk boundaries, same arithmetic), also on a dask cluster
of worker processes.
"""

import datetime as dt
import pickle
from pathlib import Path

import numpy as np
import pytest

from operando import mixtures, pipeline
from operando.config import load_config
from operando.io import LazySeries, RowSlice, open_nexus, read_series
from operando.pipeline import chunks as chunks_module

from _scanfiles import write_nexus
from _streamed import count_rows_read, run_in_memory

T0 = dt.datetime(2025, 3, 13, 10, 0, 0)
CHUNK = 5  # 27 spectra = 5 x 5 + 2: the last chunk is short
OUTPUTS = ("steps.csv", "segments.csv", "events.csv")


def _write_beams(path, series, *, reverse: bool) -> None:
    """One NXxas entry of 2-D incoming/absorbed beam frames (transmission), the energy
    axis written decreasing when ``reverse`` (a downward sweep)."""
    import h5py

    rng = np.random.default_rng(7)
    i0 = 2.0e5 * (1.0 + 0.02 * rng.standard_normal(series.mu.shape))
    it = i0 * np.exp(-series.mu)
    cols = slice(None, None, -1) if reverse else slice(None)
    with h5py.File(path, "w") as h5:
        entry = h5.create_group("scan")
        entry["definition"] = "NXxas"
        entry["data/energy"] = series.energy[cols]
        entry["incoming_beam/data"] = i0[:, cols]
        entry["absorbed_beam/data"] = it[:, cols]
        entry["data/mode"] = "Transmission"
        entry["sample/element"] = series.element
        entry["edge"] = series.edge
        time = entry["data"].create_dataset("time", data=series.conditions["time_s"].to_numpy())
        time.attrs["start"] = T0.isoformat()


@pytest.fixture(scope="module")
def project(shared_data, tmp_path_factory):
    series, _ = mixtures.cu_potential_series(repeats=3, seed=11, data_dir=shared_data)
    folder = tmp_path_factory.mktemp("nexus")
    write_nexus(folder / "frames.nxs", series, T0, frames=True)
    write_nexus(folder / "entries.nxs", series, T0, frames=False)
    _write_beams(folder / "beams.nxs", series, reverse=True)
    series.conditions[["step", "potential_V", "cycle"]].to_csv(folder / "conditions.csv",
                                                               index=False)
    return series, folder


def _config(folder: Path, name: str, out: Path, **run):
    extra = "".join(f"{k} = {v}\n" for k, v in run.items())
    return load_config(f"""
[series]
source = "{folder / name}"
conditions = "{folder / 'conditions.csv'}"

[normalize]
e0 = "first"
norm1 = 150.0
norm2 = 600.0

[output]
dir = "{out}"
plots = []
report = false
athena = false

[run]
chunk_size = {CHUNK}
{extra}""")


def _same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("name", ["frames.nxs", "beams.nxs", "entries.nxs"])
def test_lazy_nexus_builds_the_rows_read_series_builds(project, name):
    series, folder = project
    path = folder / name
    lazy = open_nexus(path, conditions=folder / "conditions.csv")
    whole = read_series(path, conditions=folder / "conditions.csv")
    assert isinstance(lazy, LazySeries) and not hasattr(lazy, "mu")  # frames stay on disk
    assert len(lazy) == len(whole) == len(series)
    np.testing.assert_array_equal(lazy.energy, whole.energy)
    assert lazy.conditions.equals(whole.conditions)
    assert (lazy.element, lazy.edge) == (whole.element, whole.edge) == ("Cu", "K")
    assert {k: v for k, v in lazy.metadata.items() if k != "streamed"} == whole.metadata
    for a, b in [(0, 5), (7, 19), (25, 27)]:
        block = lazy.take(slice(a, b))
        np.testing.assert_array_equal(block.mu, whole.mu[a:b])  # bitwise: same arithmetic
        assert block.conditions.equals(whole.take(slice(a, b)).conditions)
        assert block.metadata["scan_times"] == whole.take(slice(a, b)).metadata["scan_times"]
    # the mixture is the truth: the direct mu file gives back the mixed spectra
    if name == "frames.nxs":
        np.testing.assert_array_equal(lazy.take(slice(0, len(lazy))).mu, series.mu)


def test_other_nexus_files_keep_the_in_memory_path(project, tmp_path):
    """Entries on different energy axes, or an edge that only the data could tell: None,
    and read_series reads them as before."""
    import h5py

    series, folder = project
    moved = tmp_path / "moved.nxs"
    write_nexus(moved, series, T0, frames=False)
    with h5py.File(moved, "r+") as h5:
        del h5["entry2/data/energy"]
        h5["entry2/data/energy"] = series.energy + 0.5
    assert open_nexus(moved) is None
    assert len(read_series(moved)) == len(series)
    unnamed = tmp_path / "unnamed.nxs"
    write_nexus(unnamed, series, T0, frames=True)
    with h5py.File(unnamed, "r+") as h5:
        del h5["entry1/edge"]
    assert open_nexus(unnamed) is None  # the edge is guessed from all frames: in memory
    assert isinstance(open_nexus(unnamed, element="Cu", edge="K"), LazySeries)
    assert read_series(unnamed).edge == "K"


@pytest.mark.parametrize("name", ["frames.nxs", "beams.nxs", "entries.nxs"])
def test_streamed_nexus_run_equals_in_memory(project, name, tmp_path, monkeypatch):
    _, folder = project
    memory = run_in_memory(_config(folder, name, tmp_path / "mem"))
    calls = count_rows_read(monkeypatch)
    streamed = pipeline.run(_config(folder, name, tmp_path / "run", workers=1), progress=False)
    assert memory.n_ok == streamed.n_ok == len(streamed.steps)
    _same_outputs(tmp_path / "mem", tmp_path / "run")
    # the streamed path ran: frames read in chunk-sized blocks, never whole
    assert calls and max(calls) <= CHUNK and sum(calls) >= len(streamed.steps)


def test_nexus_on_a_dask_cluster_equals_local(project, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    _, folder = project
    local = run_in_memory(_config(folder, "frames.nxs", tmp_path / "mem"))
    tasks = []
    real = chunks_module._task

    def spy(*args, **kwargs):
        task = real(*args, **kwargs)
        tasks.append((task.series, pickle.dumps(task)))
        return task

    monkeypatch.setattr(chunks_module, "_task", spy)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = pipeline.run(_config(folder, "frames.nxs", tmp_path / "dask"),
                              executor=client.get_executor(), progress=False)
    assert result.summary["chunks_computed"] == -(-len(local.steps) // CHUNK)
    _same_outputs(tmp_path / "mem", tmp_path / "dask")
    lazy = open_nexus(folder / "frames.nxs")
    assert len(tasks) == result.summary["chunks_computed"]
    sizes = [len(sent) for _, sent in tasks]
    row_bytes = lazy.read_rows(0, 1)[0].nbytes
    # what a task carries does not grow with its rows (5 rows, last chunk 2) ...
    assert max(sizes) - min(sizes) < row_bytes
    for rows, sent in tasks:  # ... bounds and a reader, not spectra
        assert isinstance(rows, RowSlice) and not hasattr(rows, "mu")
        assert rows.path == lazy.path
        mu = lazy.read_rows(rows.start, rows.stop)[0]
        assert all(row.tobytes() not in sent for row in mu)
        np.testing.assert_array_equal(rows.load().mu, mu)
