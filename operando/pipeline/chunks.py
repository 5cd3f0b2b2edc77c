"""The chunk loop: every chunk computed (or loaded from its checkpoint) on an executor.

By default (``[run] workers = 0``) chunks run on the run's own
:class:`~concurrent.futures.ProcessPoolExecutor` (:func:`worker_pool`, one process per
core), which then draws the figures; ``workers = 1`` runs every chunk inline; any other
executor (threads, dask's ``client.get_executor()``) can be passed in.  At most two chunks
per worker are submitted at a time, each carrying its rows and settings (no
closures); a chunk of an operando HDF5 or NeXus file carries its bounds instead and the worker
reads its own rows (:class:`~operando.io.RowSlice`: the file at the same path on
every worker).  Results do not depend on the executor:
chunk boundaries come from ``chunk_size`` only, and fits warm-start within a chunk.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait

import numpy as np

from ..errors import ConfigError
from ..io import LazySeries
from .progress import progress_bar
from .settings import StepSettings
from .source import StreamedCalibration
from .steps import ChunkTask, process_chunk, unpack_chunk
from .store import RunStore
from .workers import init_worker, worker_count

log = logging.getLogger(__name__)

#: Rows of the XANES map and chi(R) figures at most (evenly spaced over the series).
PLOT_ROWS = 2000


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def chunk_name(i: int) -> str:
    return f"chunk_{i:05d}"


def run_chunks(store: RunStore, series, chunks, settings: StepSettings, *,
               executor: Executor | None, progress, hashes: dict | None = None) -> dict:
    """Compute (or load) every chunk; keep per chunk only its table and the plot rows.

    ``hashes`` maps a chunk to the hash of its inputs (recorded in its checkpoint as
    ``input_hash``): a checkpointed chunk whose recorded hash differs (a watch's
    growing last chunk, a changed input) is computed again, its checkpoint replaced
    atomically.  Without ``hashes`` every checkpointed chunk is loaded.

    Each chunk's full arrays (norm, flat, chi) go to its checkpoint and are then
    dropped: what stays in memory is the per-step table and at most
    :data:`PLOT_ROWS` rows of norm and chi for the figures, so memory does not
    grow with n_steps x n_energy.  At most a few chunks per worker are in flight,
    so a streamed series is read only as fast as it is analysed.
    """
    done = set(store.completed_steps())
    plot_rows = sample_rows(len(series))
    results: dict[int, tuple[dict, dict]] = {}
    loaded = 0
    for i, (a, b) in enumerate(chunks):
        if chunk_name(i) in done:
            arrays, stored = store.load_checkpoint(chunk_name(i))
            if hashes is not None and stored.get("input_hash") != hashes[i]:
                continue
            table, _ = unpack_chunk(arrays)
            if table["step"].tolist() != [int(s) for s in series.steps[a:b]]:
                raise ConfigError(f"checkpoint {chunk_name(i)} in {store.dir} does not match the "
                                  "series; use --overwrite to start again")
            results[i] = (_keep_for_outputs(arrays, a, b, plot_rows), stored)
            loaded += 1
    todo = [i for i in range(len(chunks)) if i not in results]
    bar = progress_bar(progress, len(series))
    bar.update(sum(chunks[i][1] - chunks[i][0] for i in results))
    computed = 0

    def finished(i, result):
        nonlocal computed
        a, b = chunks[i]
        arrays, chunk_meta = result
        if hashes is not None:
            chunk_meta = {**chunk_meta, "input_hash": hashes[i]}
        store.save_checkpoint(chunk_name(i), arrays, chunk_meta)
        log.info("chunk %d checkpointed", i)
        results[i] = (_keep_for_outputs(arrays, a, b, plot_rows), chunk_meta)
        computed += 1
        bar.update(b - a)

    try:
        if executor is None:
            for i in todo:
                finished(i, process_chunk(_task(i, series, chunks[i], settings)))
        else:
            _submit_all(executor, todo, series, chunks, settings, finished)
    finally:
        bar.close()
    return {"results": [results[i] for i in range(len(chunks))], "loaded": loaded,
            "computed": computed, "computed_chunks": todo, "plot_rows": plot_rows}


class Later:
    """``fn(*args)`` run by :meth:`result`, in this process: what :func:`submit` gives
    without an executor, with a future's interface."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def result(self):
        return self.fn(*self.args)


def submit(executor: Executor | None, fn, *args):
    """``fn(*args)`` started on ``executor`` (its future), or, without one, a
    :class:`Later` that runs it in this process when its result is asked for."""
    return Later(fn, *args) if executor is None else executor.submit(fn, *args)


@contextmanager
def worker_pool(executor: Executor | None, workers: int, notes: list[str]):
    """The executor of one update: ``executor`` when given; else, unless ``workers = 1``,
    the run's own process pool (its processes start at the first task, so an update
    that submits nothing starts none), stopped at once if the update is interrupted;
    else None (everything inline).  A capped worker count is logged and noted."""
    if executor is not None or workers == 1:
        yield executor
        return
    with warnings.catch_warnings(record=True) as capped:
        warnings.simplefilter("always")
        n_workers = worker_count(workers)
    for w in capped:
        log.warning("%s", w.message)
        notes.append(str(w.message))
    pool = ProcessPoolExecutor(max_workers=n_workers, initializer=init_worker,
                               initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _submit_all(executor, todo, series, chunks, settings, finished) -> None:
    window = _window(executor)
    queue = list(reversed(todo))
    pending: dict[Future, int] = {}
    try:
        while queue or pending:
            while queue and len(pending) < window:
                i = queue.pop()
                pending[executor.submit(process_chunk, _task(i, series, chunks[i], settings))] = i
            done_now, _ = wait(set(pending), return_when=FIRST_COMPLETED)
            for fut in done_now:
                finished(pending.pop(fut), fut.result())
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise


def _window(executor) -> int:
    """How many chunks to keep submitted: two per worker (one running, one queued)."""
    workers = getattr(executor, "_max_workers", None)  # ProcessPool/ThreadPool executors
    client = getattr(executor, "_client", None)  # dask.distributed ClientExecutor
    if workers is None and client is not None:
        try:
            workers = sum(client.nthreads().values())
        except Exception:  # noqa: BLE001 - any failure here only affects the window size
            workers = None
    return 2 * max(1, int(workers or os.cpu_count() or 1))


def sample_rows(n: int, limit: int | None = None) -> np.ndarray:
    """Positions of the rows shown in the XANES map and chi(R) figures.

    All rows up to ``limit`` (:data:`PLOT_ROWS`), else ``limit`` rows evenly
    spaced over the series (first and last included).
    """
    limit = PLOT_ROWS if limit is None else limit
    if n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(np.int64))


def _keep_for_outputs(arrays: dict, a: int, b: int, plot_rows: np.ndarray) -> dict:
    """The parts of a chunk's checkpoint the outputs need: its table and its plot rows."""
    rows = plot_rows[(plot_rows >= a) & (plot_rows < b)] - a
    kept = {k: v for k, v in arrays.items() if k.startswith("t_")}
    kept["norm"] = np.array(arrays["norm"][rows])
    if "chi" in arrays:
        kept["chi"] = np.array(arrays["chi"][rows])
        kept["k"] = arrays["k"]
    return kept


def _task(i, series, bounds, settings) -> ChunkTask:
    a, b = bounds
    meta = series.metadata
    shifts = meta.get("energy_shifts")
    notes = meta.get("energy_shift_reason")
    onto = None
    # A streamed HDF5/NeXus series: the task carries the bounds, the worker reads its own rows
    # (no spectra through the scheduler or the pool's pipe).
    if isinstance(series, StreamedCalibration):
        sub, onto = series.source.rows(a, b), series.onto  # calibrated by the worker
    elif isinstance(series, LazySeries):
        sub = series.rows(a, b)
    else:
        sub = series.take(slice(a, b))
    # Per-step metadata arrays do not follow take(); the chunk carries its slice.
    sub = sub.replace(metadata={k: v for k, v in meta.items()
                                if not (isinstance(v, (np.ndarray, list)) and len(v) == len(series))})
    return ChunkTask(i, sub, settings,
                     None if shifts is None else np.asarray(shifts, dtype=float)[a:b],
                     None if notes is None else [str(x or "") for x in list(notes)[a:b]], onto)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop our own pool now (an interrupted run must not wait for running chunks)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        try:
            proc.terminate()
        except (OSError, AttributeError):
            pass
