"""Run a whole analysis from a configuration into a run folder.

``run(config)`` does, in order:

1. read the series (:func:`operando.io.read_series`);
2. resolve the settings shared by all steps, once, and checkpoint them
   (``checkpoints/prepare.npz``): e0 of the first good scan when
   ``e0 = "first"`` and S0^2 from the ``[reference]`` foil (or the given value);
3. process the steps in chunks of ``[run] chunk_size`` (``"auto"``: see
   :meth:`operando.config.Config.chunk_size_for`): optional energy
   calibration on the reference channel, normalisation, white line and, with
   ``[exafs]``, background removal and shell fits.  Every finished chunk is
   checkpointed (``checkpoints/chunk_NNNNN.npz``) as soon as it is done;
4. track states and events (:mod:`operando.tracking`, when present);
5. write ``steps.csv``, ``settings.json``, ``summary.json``, plots,
   ``segments.csv``, ``events.csv``, ``report.html`` and an Athena project
   (``[output] athena = "auto"``: series up to 500 steps), each atomically.

An operando-layout HDF5 source (:func:`operando.io.write_hdf5`) is streamed
rather than read: :func:`operando.io.open_hdf5` keeps energy, conditions and
metadata in memory and chunks read their rows with h5py slicing.  A first pass
over the file computes the data hash and, with calibration, every step's
shift (calibration of one row depends on that row only) and so the common
trimmed grid; chunk tasks then carry the raw rows and the grid and calibrate
in the worker.  After a chunk is checkpointed only its per-step table and its
rows among the :data:`PLOT_ROWS` (2,000) evenly spaced figure rows stay in
memory, and ``steps.csv`` is written in blocks, so no array of n_steps x
n_energy is ever built (per-step tables, n_steps x ~40 columns, are).  The
XANES map and chi(R) figures show those sampled rows when the series is
longer; an Athena project is written for a streamed series of at most
:data:`ATHENA_MAX_STREAMED` spectra.  Results equal those of the in-memory
path exactly.

By default (``[run] workers = 0``) chunks run on a
:class:`~concurrent.futures.ProcessPoolExecutor` with one process per core
when there is more than one chunk to do, and inline otherwise (a small series
pays no process start-up).  ``workers = 1`` runs every chunk inline (no
pickling; handy in a debugger); ``workers = N`` uses N processes (CLI
``--workers N``); any other executor (threads, dask's ``client.get_executor()``) can
be passed as ``executor=``; at most two chunks per worker are submitted at a
time, each carrying its rows and the settings (no closures, no shared file
system needed).  Results do not depend on the executor: chunk
boundaries are fixed by ``chunk_size`` (resolved from the number of steps
when ``"auto"``, never from the worker count; the resolved value is part of
the config hash, because fits warm-start within a chunk).

A step that cannot be analysed becomes a row with ``ok = False`` and a
``reason``; it never stops the run.  Ctrl-C or SIGTERM marks the run
``interrupted`` in ``manifest.json``, keeps the checkpoints and raises
:class:`RunInterrupted`; ``run(config, resume=True)`` (CLI ``--resume``) then
loads the finished chunks and computes only the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import (FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor,
                                ThreadPoolExecutor, wait)
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pandas as pd

from .config import ATHENA_AUTO_MAX_STEPS, Config, load_config
from .errors import ConfigError, OperandoError
from .runstore import OutputFolder, RunStore, arrays_to_table, table_to_arrays
from .series import Series

log = logging.getLogger(__name__)

__all__ = ["run", "RunResult", "RunInterrupted", "STEP_COLUMNS"]

#: The XANES columns of steps.csv, after ``step, file, <conditions>``.
STEP_COLUMNS = ("ok", "reason", "energy_shift", "e0", "edge_step", "wl_height", "wl_position",
                "wl_area", "edge_position")
_WL_COLUMNS = ("wl_height", "wl_position", "wl_area", "edge_position")


class RunInterrupted(OperandoError):
    """The run was stopped (Ctrl-C / SIGTERM); finished chunks are checkpointed.

    Attributes
    ----------
    run_dir : Path
    chunks_done, chunks_total : int
    signal_name : str
        ``"SIGINT"`` or ``"SIGTERM"``.
    """

    def __init__(self, run_dir, chunks_done: int, chunks_total: int, signal_name: str):
        self.run_dir = Path(run_dir)
        self.chunks_done = chunks_done
        self.chunks_total = chunks_total
        self.signal_name = signal_name
        super().__init__(
            f"run interrupted ({signal_name}) after {chunks_done}/{chunks_total} chunks; "
            f"finished chunks are kept in {self.run_dir}; continue with --resume"
        )


class _Terminated(BaseException):
    """Raised by the SIGTERM handler (a BaseException so no step handler swallows it)."""


@dataclass(frozen=True, eq=False)
class RunResult:
    """What a run produced.

    Attributes
    ----------
    dir : Path
        The run folder.
    steps : DataFrame
        The ``steps.csv`` table (one row per spectrum, input order).
    summary : dict
        Counts of ok / failed steps, failures, skipped input files, events,
        chunks computed and loaded, timings (also in ``summary.json``).
    settings : dict
        Every setting used, resolved (also in ``settings.json``).
    outputs : dict
        Output name -> path of every file written.
    tracking : object or None
        The :class:`operando.tracking.Tracking` result when tracking ran.
    """

    dir: Path
    steps: pd.DataFrame
    summary: dict
    settings: dict
    outputs: dict = field(default_factory=dict)
    tracking: Any = None

    @property
    def n_ok(self) -> int:
        return int(self.summary["n_ok"])

    @property
    def n_failed(self) -> int:
        return int(self.summary["n_failed"])

    def __repr__(self) -> str:
        return (f"<RunResult {self.dir}: {self.summary['n_steps']} steps, {self.n_ok} ok, "
                f"{self.n_failed} failed, {self.summary.get('n_events', 0)} events>")


# ====================================================================== stages
_OPTIONAL_STAGES = ("tracking", "plotting", "report", "export")


class _Stages(SimpleNamespace):
    """Stage functions; the optional stage modules are imported on first use.

    ``plotting`` and ``report`` bring matplotlib, ``export`` brings larch: a run
    without plots, report or Athena export must not pay for importing them.
    """

    def __getattr__(self, name):  # only called for attributes not set yet
        if name not in _OPTIONAL_STAGES:
            raise AttributeError(name)
        try:
            module = __import__(f"{__package__}.{name}", fromlist=[name])
        except ImportError as exc:
            if getattr(exc, "name", "") != f"{__package__}.{name}":
                raise
            module = None
        setattr(self, name, module)
        return module


def _stages() -> SimpleNamespace:
    """The stage functions, imported lazily (and replaceable in tests).

    Optional stages (tracking, plotting, report, export) are imported when a
    run first uses them, and are ``None`` when their module is not installed:
    the run then skips them with a note in the summary.
    """
    from . import exafs, io, xanes

    return _Stages(
        read_series=io.read_series, normalize=xanes.normalize, calibrate=xanes.calibrate,
        white_line=xanes.white_line, remove_background=exafs.remove_background,
        ShellModel=exafs.ShellModel, fit_shells=exafs.fit_shells,
        calibrate_s02=exafs.calibrate_s02,
    )


# ======================================================================== run
def run(config, *, executor: Executor | None = None, resume: bool = False,
        overwrite: bool = False, progress: bool | Callable[[int, int], Any] | None = None
        ) -> RunResult:
    """Analyse a series as configured and write the run folder.

    Parameters
    ----------
    config : Config, path, TOML text or dict
        Anything :func:`operando.config.load_config` accepts.
    executor : concurrent.futures.Executor, optional
        Chunks are submitted to it (it is not shut down).  Default: inline
        when ``[run] workers = 1`` or there is a single chunk to do, else a
        process pool of that many workers (``0``: one per core).
    resume : bool
        Continue the run in the output folder: finished chunks are loaded,
        not recomputed.  Refused if the settings or input spectra changed.
    overwrite : bool
        Replace a previous run in the output folder (also ``[output] overwrite``).
    progress : bool or callable, optional
        ``None``: a tqdm bar when stderr is a terminal; ``True``/``False``: bar
        or nothing; a callable gets ``(steps_done, steps_total)`` after each chunk.

    Returns
    -------
    RunResult

    Raises
    ------
    ConfigError
        Bad settings, output folder in use, or resume refused.
    ReadError, DataError
        Input that cannot be read or analysed at all.
    RunInterrupted
        Ctrl-C / SIGTERM; the manifest says ``interrupted``.
    """
    config = load_config(config)
    t_start = time.perf_counter()
    # The folder check first: refusing an occupied folder must not wait for imports.
    store = RunStore(config.output.dir, overwrite=overwrite or config.output.overwrite, resume=resume)
    stages = _stages()

    with _signal_guard():
        started = False
        figure_server = _start_figure_server(config)
        try:
            series = _read_series(stages, config)
            if _is_streamed(series):
                raw_hash, series = _scan_streamed(stages, config, series, progress)
            else:
                raw_hash = _data_hash(series)
                if config.normalize.calibrate:
                    # Once for the whole series: calibration trims the common grid to the
                    # points every shifted scan covers, so chunks must share one result.
                    series = _calibrate(stages, config, series)
            chunk_size = config.chunk_size_for(len(series))
            chunks = _chunk_bounds(len(series), chunk_size)
            store.begin(
                config.config_hash(len(series)), data_hash=raw_hash,
                config=config.analysis_dict(len(series)),
                info={"n_steps": len(series), "chunk_size": chunk_size,
                      "n_chunks": len(chunks), "version": _version("operando")},
            )
            started = True
            shared = _prepare(stages, store, config, series)
            state = _run_chunks(stages, store, config, series, chunks, shared, executor, progress,
                                while_waiting=lambda: _import_output_stages(
                                    stages, config, plots=figure_server is None))
            result = _finish(stages, store, config, series, shared, state, t_start,
                             figure_server)
            store.finish("complete", n_ok=result.n_ok, n_failed=result.n_failed)
        except (KeyboardInterrupt, _Terminated) as exc:
            name = "SIGTERM" if isinstance(exc, _Terminated) else "SIGINT"
            done = sum(1 for s in store.completed_steps() if s.startswith("chunk_"))
            total = store.manifest.get("n_chunks", 0)
            if started:
                store.finish("interrupted", signal=name)
            log.info("run interrupted by %s after %d/%d chunks", name, done, total)
            raise RunInterrupted(store.dir, done, total, name) from None
        except BaseException as exc:
            if started:
                store.finish("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if figure_server is not None:
                figure_server.stop()
    return result


class _signal_guard:
    """Turn SIGTERM into an exception in the main thread for the duration of a run."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            def _on_term(signum, frame):
                raise _Terminated()
            try:
                self.previous = signal.signal(signal.SIGTERM, _on_term)
            except (ValueError, OSError):  # not allowed here (embedded interpreters)
                self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


# -------------------------------------------------------------- read / prepare
def _read_series(stages, config: Config):
    s = config.series
    source = list(s.source) if len(s.source) > 1 else s.source[0]
    lazy = _open_streamed(config)
    if lazy is not None:
        if config.normalize.calibrate and not lazy.has_reference:
            raise ConfigError(
                "[normalize] calibrate = true needs a reference channel, but "
                f"{lazy.path} has no /reference dataset"
            )
        return lazy
    kwargs = dict(conditions=s.conditions, mu=s.mu, element=s.element, edge=s.edge,
                  reference=s.reference, format=s.format, pattern=s.pattern,
                  energy_column=s.energy_column, on_error=s.on_error)
    if s.columns is not None:
        kwargs["columns"] = list(s.columns)
    series = stages.read_series(source, **kwargs)
    if len(series) == 0:
        from .errors import DataError
        raise DataError(f"no spectra were read from {s.source}")
    if config.normalize.calibrate and series.reference is None:
        raise ConfigError(
            "[normalize] calibrate = true needs a reference channel, but the series has none "
            "(set [series] reference = \"auto\" and check the files have a reference column)"
        )
    return series


def _chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _data_hash(series) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(series.energy).tobytes())
    h.update(np.ascontiguousarray(series.mu).tobytes())
    if series.reference is not None:
        h.update(np.ascontiguousarray(series.reference).tobytes())
    h.update(series.conditions.to_csv(index=False).encode())
    return h.hexdigest()[:16]


# ------------------------------------------------- streamed (lazy HDF5) series
#: Rows of the XANES map and chi(R) figures at most (evenly spaced over the series).
PLOT_ROWS = 2000
#: A streamed series gets an Athena project only up to this many spectra (it holds them all).
ATHENA_MAX_STREAMED = 2000


def _open_streamed(config: Config):
    """A :class:`~operando.io.LazySeries` when the source is one operando-layout HDF5 file."""
    s = config.series
    if len(s.source) != 1 or s.format not in ("auto", "hdf5") or s.pattern:
        return None
    from .io._lazy import is_operando_hdf5, open_hdf5

    path = Path(s.source[0])
    if not path.is_file() or not is_operando_hdf5(path):
        return None
    return open_hdf5(path, conditions=s.conditions, element=s.element, edge=s.edge)


def _is_streamed(series) -> bool:
    return not hasattr(series, "mu")


def _scan_streamed(stages, config: Config, lazy, progress):
    """One pass over a streamed series: the data hash and, if asked, the calibration shifts.

    Returns ``(data_hash, series)``; with ``[normalize] calibrate`` the series
    is a :class:`_StreamedCalibration` (the shifts of every step and the common
    grid fixed, the spectra still on disk).
    """
    size = config.chunk_size_for(len(lazy))
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(lazy.energy).tobytes())
    calibrate = config.normalize.calibrate
    kwargs = _calibrate_kwargs(config)
    per_step: dict[str, list] = {"energy_shifts": [], "energy_shift_measured": [],
                                 "energy_shift_ok": [], "energy_shift_reason": []}
    lo, hi, calibration = -np.inf, np.inf, None
    bar = _progress(progress if not callable(progress) else False, len(lazy),
                    desc="operando: calibration" if calibrate else "operando: reading")
    try:
        for a, b, mu, ref in lazy.iter_rows(size):
            h.update(np.ascontiguousarray(mu).tobytes())
            if ref is not None:
                h.update(np.ascontiguousarray(ref).tobytes())
            if calibrate:
                block = Series(energy=lazy.energy, mu=mu, reference=ref, element=lazy.element,
                               edge=lazy.edge,
                               conditions=lazy.conditions.iloc[a:b].reset_index(drop=True),
                               metadata={})
                calibrated, _ = stages.calibrate(block, **kwargs)
                # Each row's shift depends on that row only; the common grid is the
                # intersection of the blocks' grids (as calibrate() on the whole series).
                lo, hi = max(lo, calibrated.energy[0]), min(hi, calibrated.energy[-1])
                for key, values in per_step.items():
                    values.extend(list(calibrated.metadata[key]))
                calibration = calibrated.metadata.get("calibration")
            del mu, ref
            bar.update(b - a)
    finally:
        bar.close()
    h.update(lazy.conditions.to_csv(index=False).encode())
    if not calibrate:
        return h.hexdigest()[:16], lazy
    keep = (lazy.energy >= lo) & (lazy.energy <= hi)
    if keep.sum() < 20:
        from .errors import DataError
        shifts = np.asarray(per_step["energy_shifts"], dtype=float)
        raise DataError(f"after shifting by up to {np.abs(shifts).max():.1f} eV fewer than 20 "
                        "energy points are covered by every scan")
    metadata = dict(lazy.metadata)
    metadata.update({
        "energy_shifts": np.asarray(per_step["energy_shifts"], dtype=float),
        "energy_shift_measured": np.asarray(per_step["energy_shift_measured"], dtype=float),
        "energy_shift_ok": np.asarray(per_step["energy_shift_ok"], dtype=bool),
        "energy_shift_reason": [str(x or "") for x in per_step["energy_shift_reason"]],
        "calibration": calibration, "interpolated": True,
    })
    return h.hexdigest()[:16], _StreamedCalibration(lazy.replace(metadata=metadata),
                                                    lazy.energy[keep], kwargs, stages)


def _calibrate_kwargs(config: Config) -> dict:
    if config.normalize.edge_energy is not None:
        return {"edge_energy": config.normalize.edge_energy}
    return {}


def _calibrate_onto(stages, raw, energy, kwargs):
    """``raw`` (an in-memory chunk) calibrated, on the series' common grid ``energy``.

    ``calibrate`` on the chunk alone trims less (its shifts span less), and
    interpolates point by point, so the series' grid is a subset of the
    chunk's and the values there equal those of calibrating the whole series.
    """
    calibrated, _ = stages.calibrate(raw, **kwargs)
    cols = np.searchsorted(calibrated.energy, energy)
    if cols.size and (cols[-1] >= calibrated.energy.size
                      or not np.array_equal(calibrated.energy[cols], energy)):
        raise RuntimeError("calibrated chunk grid does not contain the series grid")
    return calibrated.replace(energy=np.array(energy), mu=calibrated.mu[:, cols],
                              reference=calibrated.reference[:, cols])


class _StreamedCalibration:
    """A streamed series with its calibration fixed (shifts per step, common grid).

    ``take`` / ``s[i]`` return calibrated in-memory chunks; chunk tasks carry
    the raw rows plus ``onto`` and calibrate in the worker.
    """

    def __init__(self, source, energy, kwargs, stages):
        self.source = source
        self.stages = stages
        self.energy = np.asarray(energy, dtype=float)
        self.kwargs = dict(kwargs)
        for name in ("conditions", "element", "edge", "metadata", "has_reference"):
            setattr(self, name, getattr(source, name))

    @property
    def onto(self) -> dict:
        return {"energy": self.energy, "kwargs": self.kwargs}

    @property
    def steps(self):
        return self.source.steps

    def __len__(self):
        return len(self.source)

    def condition_columns(self):
        return self.source.condition_columns()

    def take(self, index):
        return _calibrate_onto(self.stages, self.source.take(index), self.energy, self.kwargs)

    def __getitem__(self, i):
        i = int(i) + (len(self) if int(i) < 0 else 0)
        return self.take(slice(i, i + 1))


def _prepare(stages, store: RunStore, config: Config, series) -> dict:
    """Settings shared by every chunk: fixed e0 and S0^2 (checkpointed)."""
    if store.has_checkpoint("prepare"):
        _, meta = store.load_checkpoint("prepare")
        return meta
    shared: dict = {"e0": config.normalize.e0, "e0_from_step": None, "s02": None}
    if config.normalize.e0 in ("first", "reference"):
        # These policies take e0 from the first good scan of the *series*; a
        # chunk on its own would use its own first scan.
        e0, step = _first_e0(stages, config, series)
        shared.update(e0=e0, e0_from_step=step)
    if config.exafs.enabled:
        shared["exafs_engine"] = _exafs_engine(config)
        shared.update(_s02(stages, config, series, shared["exafs_engine"]["background"]))
        shared["shells"] = _shells(config, series)
    store.save_checkpoint("prepare", meta=shared)
    return shared


def _first_e0(stages, config: Config, series) -> tuple[float, int]:
    from .errors import DataError

    for i in range(len(series)):
        one = series[i]
        norm = stages.normalize(one, **_normalize_kwargs(config, config.normalize.e0))
        if bool(np.asarray(norm.ok)[0]) and np.isfinite(norm.e0[0]):
            return float(norm.e0[0]), int(series.steps[i])
    raise DataError(f"e0 = \"{config.normalize.e0}\": no scan of the series could be normalised")


def _default_shells(series) -> list[str]:
    el = series.element
    if not el:
        raise ConfigError("[exafs] shells is not set and the element is unknown; give shells = "
                          "[\"Pt-O\", \"Pt-Pt\"] or [series] element")
    return [f"{el}-O", f"{el}-{el}"]


def _exafs_engine(config: Config) -> dict:
    """The engine of background removal and of shell fits, checked once, before any work
    (:func:`operando.exafs.engines.get_engine` refuses what it does not support)."""
    from .exafs.engines import get_engine

    x = config.exafs
    get_engine(x.engine, model=SimpleNamespace(fit_space=x.fit_space))
    return {"background": x.engine, "fit": x.engine}


def _shells(config: Config, series) -> list[str]:
    return list(config.exafs.shells or _default_shells(series))


def _shell_model(stages, config: Config, shells):
    x = config.exafs
    return stages.ShellModel(shells=list(shells), share_e0=x.share_e0, kmin=x.kmin, kmax=x.kmax,
                             kweight=x.kweight, dk=x.dk, window=x.window, rmin=x.rmin,
                             rmax=x.rmax, fit_space=x.fit_space)


def _s02(stages, config: Config, series, engine: str) -> dict:
    ref = config.reference
    if ref.s02 is not None:
        return {"s02": float(ref.s02), "s02_err": None, "s02_source": "user value"}
    shell = ref.shell or f"{series.element}-{series.element}"
    foil = stages.read_series(ref.file, element=series.element, edge=series.edge, reference=False)
    norm = stages.normalize(foil, **_normalize_kwargs(config, "each"))
    chi = stages.remove_background(norm, **{**_background_kwargs(config), "engine": engine})
    x = config.exafs
    cal = stages.calibrate_s02(chi, shell=shell, cn=ref.cn, step=int(foil.steps[0]), kmin=x.kmin,
                               kmax=x.kmax, kweight=x.kweight, dk=x.dk, window=x.window,
                               fit_space=x.fit_space, rbkg=x.rbkg)
    if not (np.isfinite(cal.s02) and cal.s02 > 0):
        from .errors import DataError
        raise DataError(f"{ref.file}: S0^2 calibration on {shell} failed (s02 = {cal.s02}); "
                        "check [reference] or give s02 directly")
    fit = {k: _plain(v) for k, v in dict(cal.fit).items()}
    return {"s02": float(cal.s02), "s02_err": _plain(cal.s02_err),
            "s02_source": f"calibrated on {ref.file} ({shell}, CN {ref.cn:g})", "s02_fit": fit}


def _plain(v):
    if isinstance(v, (np.generic,)):
        return v.item()
    return v


# ---------------------------------------------------------------- one chunk
def _normalize_kwargs(config: Config, e0) -> dict:
    n = config.normalize
    return dict(e0=e0, pre1=n.pre1, pre2=n.pre2, norm1=n.norm1, norm2=n.norm2, nnorm=n.nnorm,
                nvict=n.nvict, engine=n.engine)


def _background_kwargs(config: Config) -> dict:
    x = config.exafs
    return dict(rbkg=x.rbkg, kmin=x.bkg_kmin, kweight=x.kweight, engine=x.engine)


def _calibrate(stages, config: Config, series):
    """The calibrated series; the applied shifts (eV) go to ``metadata["energy_shifts"]``."""
    calibrated, shifts = stages.calibrate(series, **_calibrate_kwargs(config))
    metadata = dict(calibrated.metadata)
    metadata["energy_shifts"] = np.asarray(shifts, dtype=float).reshape(len(series))
    return calibrated.replace(metadata=metadata)


def _white_line_kwargs(config: Config) -> dict:
    w = config.normalize.wl_window
    return {} if w is None else {"window": tuple(w)}


@dataclass
class _ChunkTask:
    index: int
    series: Any
    config: Config
    shared: dict
    stages: Any = None  # None: import in the worker
    shifts: Any = None  # applied energy shifts (eV) of these steps
    shift_notes: Any = None  # why a step was not calibrated ("" when it was)
    onto: Any = None  # streamed calibration: {"energy": common grid, "kwargs"}; rows are raw


def _process_chunk(task: _ChunkTask) -> tuple[dict, dict]:
    """Analyse one chunk; returns the checkpoint ``(arrays, meta)``.

    Runs in a worker process or thread (or a dask worker: the task holds only
    the chunk's rows and settings, both picklable).  If the chunk as a whole
    raises, its steps are redone one by one so that only the bad steps are
    flagged.
    """
    stages = task.stages or _stages()
    series = task.series
    if task.onto is not None:
        series = _calibrate_onto(stages, series, task.onto["energy"], task.onto["kwargs"])
    n = len(series)
    shifts = np.zeros(n) if task.shifts is None else np.asarray(task.shifts, dtype=float)
    notes = [""] * n if task.shift_notes is None else list(task.shift_notes)
    try:
        part = _analyse(stages, task.config, task.shared, series, shifts, notes)
        parts = [part]
    except ConfigError:
        raise  # a setting, wrong for every step: stop the run with its message
    except Exception as exc:  # noqa: BLE001 - recorded per step below
        log.warning("chunk %d failed as a whole (%s: %s); retrying step by step",
                    task.index, type(exc).__name__, exc)
        parts = []
        for i in range(n):
            one = series[i]
            try:
                parts.append(_analyse(stages, task.config, task.shared, one, shifts[i:i + 1],
                                      notes[i:i + 1]))
            except ConfigError:
                raise
            except Exception as step_exc:  # noqa: BLE001 - recorded as the step's reason
                log.warning("step %s failed: %s", one.steps[0], step_exc)
                parts.append(_failed_part(one, f"{type(step_exc).__name__}: {step_exc}"))
    return _merge_parts(parts)


def _analyse(stages, config: Config, shared: dict, series, shifts, shift_notes) -> dict:
    n = len(series)
    norm = stages.normalize(series, **_normalize_kwargs(config, shared["e0"]))
    wl = stages.white_line(norm, **_white_line_kwargs(config))
    ok = np.array(norm.ok, dtype=bool).reshape(n)
    reason = [str(r or "") for r in norm.reason]
    for i, note in enumerate(shift_notes):
        if note:  # step kept, but its energy axis was not aligned
            reason[i] = "; ".join(x for x in (reason[i], f"calibration not applied: {note}") if x)
    table = pd.DataFrame({
        "step": series.steps.astype(np.int64),
        "ok": ok, "reason": reason, "energy_shift": shifts,
        "e0": np.asarray(norm.e0, dtype=float).reshape(n),
        "edge_step": np.asarray(norm.edge_step, dtype=float).reshape(n),
    })
    wl = wl.set_index("step").reindex(table["step"])
    for col in _WL_COLUMNS:
        table[col] = wl[col].to_numpy(dtype=float) if col in wl else np.nan
    arrays = {"norm": np.asarray(norm.norm, dtype=float), "flat": np.asarray(norm.flat, dtype=float)}
    meta = {"normalize_settings": dict(getattr(norm, "settings", {}) or {})}
    if config.exafs.enabled:
        x = config.exafs
        engines = shared.get("exafs_engine") or {"background": x.engine, "fit": x.engine}
        chi = stages.remove_background(norm, **{**_background_kwargs(config),
                                                "engine": engines["background"]})
        model = _shell_model(stages, config, shared["shells"])
        fit_kwargs = dict(s02=shared["s02"], engine=engines["fit"])
        if x.merge_repeats:
            fit_kwargs["merge_repeats"] = x.merge_repeats
        fit = stages.fit_shells(chi, model, **fit_kwargs)
        fits = fit.to_dataframe()
        merged_into = {}  # step -> the step whose merged fit represents it
        if "merged_steps" in fits:
            for first, members in zip(fits["step"], fits["merged_steps"]):
                for m in str(members).split(","):
                    if m.strip() and int(m) != int(first):
                        merged_into[int(m)] = int(first)
            fits = fits.drop(columns=["merged_steps"])
        fits = fits.set_index("step").reindex(table["step"]).reset_index(drop=True)
        for col in fits.columns:
            table[col] = fits[col].to_numpy()
        fit_ok = fits["fit_ok"].fillna(False).astype(bool).to_numpy() if "fit_ok" in fits else np.ones(n, bool)
        chi_reason = list(getattr(chi, "reason", [""] * n))
        for i in range(n):
            step = int(table.at[i, "step"])
            if step in merged_into:  # averaged with its repeats; fitted as that step
                table.at[i, "reason"] = f"fitted merged into step {merged_into[step]}"
                continue
            if not fit_ok[i] and table.at[i, "ok"]:
                table.at[i, "ok"] = False
                table.at[i, "reason"] = (chi_reason[i] or
                                         f"fit: {fits['fit_message'].iloc[i] if 'fit_message' in fits else 'failed'}")
        arrays["k"] = np.asarray(chi.k, dtype=float)
        arrays["chi"] = np.asarray(chi.chi, dtype=float)
        meta["background_settings"] = dict(getattr(chi, "settings", {}) or {})
        meta["fit_settings"] = _jsonable_settings(getattr(fit, "settings", {}) or {})
    return {"table": table, "arrays": arrays, "meta": meta, "n_e": series.energy.size}


def _jsonable_settings(settings: dict) -> dict:
    from .runstore import to_json_ready
    return to_json_ready(settings)


def _failed_part(one, reason: str) -> dict:
    table = pd.DataFrame({"step": one.steps.astype(np.int64), "ok": [False], "reason": [reason],
                          "energy_shift": [np.nan], "e0": [np.nan], "edge_step": [np.nan]})
    for col in _WL_COLUMNS:
        table[col] = np.nan
    nan = np.full((1, one.energy.size), np.nan)
    return {"table": table, "arrays": {"norm": nan, "flat": nan}, "meta": {}, "n_e": one.energy.size}


def _merge_parts(parts: list[dict]) -> tuple[dict, dict]:
    table = pd.concat([p["table"] for p in parts], ignore_index=True)
    table["ok"] = table["ok"].astype(bool)
    table["reason"] = table["reason"].fillna("").astype(str)
    arrays = {name: np.concatenate([p["arrays"][name] for p in parts]) for name in ("norm", "flat")}
    with_chi = [p for p in parts if "chi" in p["arrays"]]
    if with_chi:
        n_k = max(p["arrays"]["chi"].shape[1] for p in with_chi)
        k = next(p["arrays"]["k"] for p in with_chi if p["arrays"]["chi"].shape[1] == n_k)
        rows = []
        for p in parts:
            chi = p["arrays"].get("chi")
            block = np.full((len(p["table"]), n_k), np.nan)
            if chi is not None:
                block[:, :chi.shape[1]] = chi
            rows.append(block)
        arrays["k"] = k
        arrays["chi"] = np.concatenate(rows)
    meta = next((p["meta"] for p in parts if p["meta"]), {})
    arrays.update({f"t_{name}": value for name, value in table_to_arrays(table).items()})
    return arrays, meta


def _unpack_chunk(arrays: dict) -> tuple[pd.DataFrame, dict]:
    table = arrays_to_table({k[2:]: v for k, v in arrays.items() if k.startswith("t_")})
    rest = {k: v for k, v in arrays.items() if not k.startswith("t_")}
    return table, rest


# -------------------------------------------------------------- chunk loop
def _chunk_name(i: int) -> str:
    return f"chunk_{i:05d}"


def _import_output_stages(stages, config: Config, plots: bool = True) -> None:
    """Import the modules the end of the run needs (matplotlib: ~0.4 s) ahead of time."""
    if config.exafs.enabled and config.track.enabled:
        stages.tracking
    if plots and config.output.plots:
        stages.plotting
    if config.output.report:
        stages.report


def _run_chunks(stages, store, config, series, chunks, shared, executor, progress,
                while_waiting: Callable[[], Any] | None = None) -> dict:
    """Compute (or load) every chunk; keep per chunk only its table and the plot rows.

    ``while_waiting`` is called once, after the first chunks went to an
    executor: work for this otherwise idle process (the imports of the output
    stages).

    Each chunk's full arrays (norm, flat, chi) go to its checkpoint and are
    then dropped: what stays in memory is the per-step table and at most
    :data:`PLOT_ROWS` rows of norm and chi for the figures, so memory does not
    grow with n_steps x n_energy.  At most a few chunks per worker are in
    flight at once (:func:`_window`), so a streamed series is read only as
    fast as it is analysed.
    """
    done = set(store.completed_steps())
    plot_rows = _plot_rows(len(series))
    results: dict[int, tuple[dict, dict]] = {}
    loaded = 0
    for i, (a, b) in enumerate(chunks):
        if _chunk_name(i) in done:
            arrays, meta = store.load_checkpoint(_chunk_name(i))
            table, _ = _unpack_chunk(arrays)
            if table["step"].tolist() != [int(s) for s in series.steps[a:b]]:
                raise ConfigError(f"checkpoint {_chunk_name(i)} in {store.dir} does not match the "
                                  "series; use --overwrite to start again")
            results[i] = (_keep_for_outputs(arrays, a, b, plot_rows), meta)
            loaded += 1
    todo = [i for i in range(len(chunks)) if i not in results]
    bar = _progress(progress, len(series))
    bar.update(sum(chunks[i][1] - chunks[i][0] for i in results))
    own_executor = None
    if executor is None and config.run.workers != 1 and len(todo) > 1:
        n_workers = config.run.workers or os.cpu_count() or 1
        own_executor = executor = ProcessPoolExecutor(max_workers=min(n_workers, len(todo)),
                                                      initializer=_worker_signals)
    computed = 0

    def finished(i, result):
        nonlocal computed
        a, b = chunks[i]
        arrays, meta = _store_chunk(store, i, result)
        results[i] = (_keep_for_outputs(arrays, a, b, plot_rows), meta)
        computed += 1
        bar.update(b - a)

    try:
        if executor is None:
            for i in todo:
                a, b = chunks[i]
                task = _chunk_task(i, series, a, b, config, shared, stages)
                finished(i, _process_chunk(task))
        else:
            # Stage functions go to threads only; processes (ours, dask's) import their own.
            in_process = isinstance(executor, ThreadPoolExecutor)
            window = _window(executor)
            queue = list(reversed(todo))
            pending: dict[Future, int] = {}
            try:
                while queue or pending:
                    while queue and len(pending) < window:
                        i = queue.pop()
                        a, b = chunks[i]
                        task = _chunk_task(i, series, a, b, config, shared,
                                           stages if in_process else None)
                        pending[executor.submit(_process_chunk, task)] = i
                        del task  # the executor holds it until it has run
                    if while_waiting is not None:
                        while_waiting()
                        while_waiting = None
                    done_now, _ = wait(set(pending), return_when=FIRST_COMPLETED)
                    for fut in done_now:
                        finished(pending.pop(fut), fut.result())
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    except BaseException:
        if own_executor is not None:
            _stop_pool(own_executor)
            own_executor = None
        raise
    finally:
        if own_executor is not None:
            own_executor.shutdown(wait=True)
        bar.close()
    return {"results": [results[i] for i in range(len(chunks))], "loaded": loaded,
            "computed": computed, "plot_rows": plot_rows}


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


def _plot_rows(n: int, limit: int | None = None) -> np.ndarray:
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


def _chunk_task(i, series, a, b, config, shared, stages) -> _ChunkTask:
    meta = series.metadata
    shifts = meta.get("energy_shifts")
    notes = meta.get("energy_shift_reason")
    onto = None
    if isinstance(series, _StreamedCalibration):
        sub, onto = series.source.take(slice(a, b)), series.onto  # calibrated by the worker
    else:
        sub = series.take(slice(a, b))
    # Per-step metadata arrays do not follow take(); the chunk carries its slice.
    sub = sub.replace(metadata={k: v for k, v in meta.items()
                                if not (isinstance(v, (np.ndarray, list)) and len(v) == len(series))})
    return _ChunkTask(i, sub, config, shared, stages,
                      None if shifts is None else np.asarray(shifts, dtype=float)[a:b],
                      None if notes is None else [str(x or "") for x in list(notes)[a:b]], onto)


def _store_chunk(store: RunStore, i: int, result: tuple[dict, dict]) -> tuple[dict, dict]:
    arrays, meta = result
    store.save_checkpoint(_chunk_name(i), arrays, meta)
    log.info("chunk %d checkpointed", i)
    return arrays, meta


def _worker_signals() -> None:
    """Workers of our pool leave Ctrl-C to the parent, which stops them (SIGTERM: die quietly)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop our own pool now (an interrupted run must not wait for running chunks)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        try:
            proc.terminate()
        except (OSError, AttributeError):
            pass


class _NoBar:
    def __init__(self, callback=None, total=0):
        self.callback, self.total, self.n = callback, total, 0

    def update(self, k):
        self.n += k
        if self.callback is not None and k:
            self.callback(self.n, self.total)

    def close(self):
        pass


def _progress(progress, total: int, desc: str = "operando"):
    """A bar over steps: tqdm when ``progress`` is True, or None on a terminal / in a notebook.

    A callable ``progress`` gets ``(steps_done, steps_total)`` instead; False: nothing.
    """
    if callable(progress):
        return _NoBar(progress, total)
    show = _interactive() if progress is None else bool(progress)
    if not show:
        return _NoBar(None, total)
    import warnings

    with warnings.catch_warnings():
        # Without ipywidgets tqdm.auto falls back to the text bar, with a warning.
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm(total=total, unit="step", desc=desc, dynamic_ncols=True)


def _interactive() -> bool:
    """stderr is a terminal, or we run in a Jupyter kernel."""
    stream = sys.stderr
    if stream is not None and hasattr(stream, "isatty") and stream.isatty():
        return True
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


# -------------------------------------------------------------- outputs
def _finish(stages, store, config, series, shared, state, t_start,
            figure_server=None) -> RunResult:
    parts = state["results"]
    tables = [_unpack_chunk(arrays)[0] for arrays, _ in parts]
    computed = pd.concat(tables, ignore_index=True)
    steps = series.conditions.reset_index(drop=True).copy()
    if not np.array_equal(computed["step"].to_numpy(), steps["step"].to_numpy()):
        raise ConfigError(f"checkpoints in {store.dir} do not cover the series in order; "
                          "use --overwrite to start again")
    for col in computed.columns:
        if col != "step":
            steps[col] = computed[col].to_numpy()
    # Plot rows only (PLOT_ROWS at most): never n_steps x n_energy.
    plot_rows = state["plot_rows"]
    norm = np.concatenate([arrays["norm"] for arrays, _ in parts])
    meta0 = next((m for _, m in parts if m), {})
    outputs: dict[str, Path] = {}
    notes: list[str] = []
    for stage, used in (shared.get("exafs_engine") or {}).items():
        if used != config.exafs.engine:
            notes.append(f"[exafs] engine '{config.exafs.engine}' is not available for the {stage} "
                         f"yet; used '{used}'")

    tracking = None
    states = np.full(len(steps), "", dtype=object)
    if config.exafs.enabled and config.track.enabled:
        if stages.tracking is None:
            notes.append("tracking skipped: operando.tracking is not available")
        else:
            tracking = _track(stages, config, shared, steps)
            if "state" in tracking.steps:
                found = tracking.steps.set_index("step")["state"].reindex(steps["step"])
                states = found.fillna("").astype(str).to_numpy()
    elif not config.exafs.enabled:
        notes.append("tracking skipped: it needs the [exafs] shell fits")
    steps["state"] = states
    chi = None
    if config.exafs.enabled:
        chi_parts = [(arrays.get("k"), arrays.get("chi")) for arrays, _ in parts]
        n_k = max((c.shape[1] for _, c in chi_parts if c is not None), default=0)
        if n_k:
            k = next(kk for kk, c in chi_parts if c is not None and c.shape[1] == n_k)
            chi = (k, np.concatenate([
                np.pad(c, ((0, 0), (0, n_k - c.shape[1])), constant_values=np.nan) if c is not None
                else np.full((len(arrays["norm"]), n_k), np.nan)
                for (_, c), (arrays, _) in zip(chi_parts, parts)]))
    if len(plot_rows) < len(steps):
        notes.append(f"XANES map and chi(R) figures show {len(plot_rows)} of {len(steps)} steps, "
                     "evenly spaced")
    drawing = answer = None
    served = figure_server is not None and figure_server.send(
        str(store.dir), config, series.energy, steps, norm, chi, tracking, plot_rows)
    if not served:
        drawing = _Drawing(store, config, _figures(stages, config, series, steps, norm, chi,
                                                   tracking, notes, plot_rows), notes)
    try:
        outputs["steps"] = _write_steps(store, steps)
        if tracking is not None:
            outputs["segments"] = store.write_csv("segments.csv", tracking.segments)
            outputs["events"] = store.write_csv("events.csv", tracking.events)
            reversibility = getattr(tracking, "reversibility", None)
            if isinstance(reversibility, pd.DataFrame):
                outputs["reversibility"] = store.write_csv("reversibility.csv", reversibility)
        settings = _settings_record(config, store, series, shared, meta0)
        outputs["settings"] = store.write_json("settings.json", settings)
        if served:
            answer = figure_server.result()
            if answer is None:  # the server failed: draw here, reporting as usual
                drawing = _Drawing(store, config, _figures(stages, config, series, steps, norm,
                                                           chi, tracking, notes, plot_rows),
                                   notes, fork=False)
        if drawing is not None:
            outputs.update(drawing.finish())
        else:
            server_notes, server_drawn = answer
            notes += server_notes
            outputs.update({key: Path(path) for key, path in server_drawn.items()})
    finally:
        if drawing is not None:
            drawing.stop()

    failed = steps.loc[~steps["ok"].astype(bool), ["step", "file", "reason"]]
    skipped = list(series.metadata.get("skipped", []) or [])
    summary = {
        "status": "complete",
        "run_id": store.manifest.get("run_id"),
        "dir": str(store.dir),
        "n_steps": int(len(steps)),
        "n_ok": int(steps["ok"].sum()),
        "n_failed": int(len(failed)),
        "failures": [{"step": int(r.step), "file": str(r.file), "reason": str(r.reason)}
                     for r in failed.itertuples()],
        "n_skipped_files": len(skipped),
        "skipped_files": skipped,
        "n_events": int(len(tracking.events)) if tracking is not None else 0,
        "n_segments": int(len(tracking.segments)) if tracking is not None else 0,
        "chunks_total": len(parts),
        "chunks_computed": state["computed"],
        "chunks_loaded": state["loaded"],
        "seconds": round(time.perf_counter() - t_start, 3),
        "notes": notes,
    }
    outputs.update(_report_and_export(stages, store, config, series, steps, outputs, summary, notes,
                                      tracking, settings))
    summary["outputs"] = {k: str(v) for k, v in outputs.items()}
    outputs["summary"] = store.write_json("summary.json", summary)
    return RunResult(dir=store.dir, steps=steps, summary=summary, settings=settings,
                     outputs=outputs, tracking=tracking)


def _track(stages, config, shared, steps):
    t = config.track
    kwargs = dict(metal_shell=t.metal_shell, ligand_shell=t.ligand_shell,
                  settings=dict(t.settings))
    if t.condition_columns is not None:
        kwargs["condition_columns"] = list(t.condition_columns)
    return stages.tracking.track(steps, **kwargs)


def _settings_record(config, store, series, shared, meta0) -> dict:
    versions = {name: _version(name) for name in
                ("operando", "numpy", "scipy", "pandas", "matplotlib", "xraylarch", "lmfit")}
    versions["python"] = sys.version.split()[0]
    return {
        "config": config.to_dict(),
        "config_hash": config.config_hash(len(series)),
        "run_id": store.manifest.get("run_id"),
        "data_hash": store.manifest.get("data_hash"),
        "resolved": {
            "e0": shared.get("e0"), "e0_from_step": shared.get("e0_from_step"),
            "s02": shared.get("s02"), "s02_err": shared.get("s02_err"),
            "s02_source": shared.get("s02_source"), "s02_fit": shared.get("s02_fit"),
            "shells": shared.get("shells"), "exafs_engine": shared.get("exafs_engine"),
            "normalize": meta0.get("normalize_settings"),
            "background": meta0.get("background_settings"),
            "fit": meta0.get("fit_settings"),
            "chunk_size": config.chunk_size_for(len(series)),
            "athena": config.output.athena_for(len(series)),
        },
        "series": {
            "n_steps": len(series), "element": series.element, "edge": series.edge,
            "energy_range_eV": [float(series.energy[0]), float(series.energy[-1])],
            "n_energy": int(series.energy.size),
            "condition_columns": series.condition_columns(),
            "metadata": {k: v for k, v in series.metadata.items() if k in
                         ("source", "format", "mu_from", "interpolated", "skipped")},
        },
        "versions": versions,
    }


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _figures(stages, config, series, steps, norm, chi, tracking, notes, plot_rows) -> list:
    """The run's figures as ``(name, make)`` pairs, ``make()`` returning a Figure.

    ``white_line`` (white-line height vs condition) and ``xanes_map`` always;
    with tracking also ``cn`` (CN vs condition with events) and ``summary``.
    ``norm`` and ``chi`` hold only the rows ``plot_rows`` (all steps up to
    :data:`PLOT_ROWS`, else that many evenly spaced): the XANES map and the
    chi(R) panel show those; white line and CN show every step.
    """
    if not config.output.plots:
        return []
    plotting = stages.plotting
    if plotting is None:
        notes.append("plots skipped: operando.plotting is not available")
        return []
    energy = series.energy
    figures: list[tuple[str, Callable[[], Any]]] = [
        ("xanes_map", lambda: plotting.plot_xanes_map(
            energy, norm, steps=steps["step"].to_numpy()[plot_rows], tracking=tracking)),
    ]
    if tracking is not None:
        figures += [("white_line", lambda: plotting.plot_white_line(tracking)),
                    ("cn", lambda: plotting.plot_cn(tracking))]
        if chi is not None:
            # plot_summary takes its rows in the order of tracking.steps: give it the plot rows.
            sampled = tracking if len(plot_rows) == len(tracking.steps) else _replace_steps(
                tracking, tracking.steps.iloc[plot_rows].reset_index(drop=True))
            figures.append(("summary", lambda: plotting.plot_summary(
                sampled, energy, norm, *_chir(config, *chi))))
    else:
        figures.append(("white_line", lambda: _plot_white_line_plain(steps)))
    return figures


def _render_figures(store, figures, formats, notes) -> dict:
    """Make and save figures in this process; a figure that fails is noted, not raised."""
    import gc

    out = {}
    # Building figures makes many small objects, which set off full collections of the
    # whole process heap (~50 ms each at this point of a run, several per figure); the
    # figures' own garbage is collected once, when the stage ends.
    collect = gc.isenabled()
    gc.disable()
    try:
        for name, make in figures:
            try:
                fig = make()
            except (OperandoError, ValueError, KeyError, IndexError) as exc:
                # A figure is a by-product: record why it is missing, keep the run.
                notes.append(f"plot {name} not made: {type(exc).__name__}: {exc}")
                log.warning("plot %s not made: %s", name, exc)
                continue
            for fmt in formats:
                out[f"{name}.{fmt}"] = store.write_with(
                    f"{name}.{fmt}", lambda tmp, fig=fig, fmt=fmt: _save_plot(fig, tmp, fmt, name))
            del fig
    finally:
        if collect:
            gc.enable()
    return out


#: Figures a forked process draws while the run goes on: the summary is about half
#: of the figures' cost; the parent draws the rest and writes the tables meanwhile.
_FORKED_FIGURES = ("summary",)


class _FigureProcess:
    """Some of the run's figures, drawn by a forked copy of this process.

    Drawing is single-threaded Python + Agg, so on a machine with a free core a
    fork halves the figure stage.  A fork shares the imported matplotlib and
    the figure data copy-on-write: nothing is pickled or imported again.  The
    child writes each file atomically, exactly as the parent would, and exits
    without running any exit handler.  If it fails in any way, :meth:`join`
    says so and the parent draws those figures itself, so a failing figure is
    reported (a note) as in a run without the fork.

    Used only where a fork is safe and worthwhile (:func:`_fork_figures`).
    """

    def __init__(self, store, figures, formats):
        self.figures = figures
        self.pid = os.fork()
        if self.pid == 0:  # the child: draw, write, leave (never return into the run)
            code = 1
            try:
                import gc

                gc.disable()
                for name, make in figures:
                    fig = make()
                    for fmt in formats:
                        store.write_with(f"{name}.{fmt}",
                                         lambda tmp, fig=fig, fmt=fmt, name=name:
                                         _save_plot(fig, tmp, fmt, name))
                code = 0
            except BaseException:  # noqa: BLE001 - the parent redraws and reports
                code = 1
            finally:
                os._exit(code)

    def join(self) -> bool:
        """Wait for the child; True if it wrote every figure."""
        if self.pid is None:
            return False
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        return os.waitstatus_to_exitcode(status) == 0

    def stop(self) -> None:
        """End the child early (the run is failing or interrupted)."""
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = None


def _forks_allowed(config) -> bool:
    """May this run fork for its figures?  Where a fork is safe
    (:func:`operando._figure_server.can_fork`) and not when ``[run] workers = 1``
    (one process asked for)."""
    from ._figure_server import can_fork

    return config.run.workers != 1 and can_fork()


def _fork_figures(config, figures) -> bool:
    """Draw some of ``figures`` in a forked process?  Where that is allowed and
    useful: more than one figure, one of them :data:`_FORKED_FIGURES`."""
    return (_forks_allowed(config) and len(figures) > 1
            and any(name in _FORKED_FIGURES for name, _ in figures))


class _Drawing:
    """Figures being drawn: their forked share (:data:`_FORKED_FIGURES`, where
    :func:`_fork_figures` allows it) starts at once, the rest in :meth:`finish`.

    The run (without a figure server) and the figure server both draw this way,
    doing other work between the two steps.
    """

    def __init__(self, store, config, figures, notes: list[str], *, fork: bool = True):
        self.store, self.notes, self.formats = store, notes, config.output.plots
        self.order = [name for name, _ in figures]
        split = fork and _fork_figures(config, figures)
        self.forked = [f for f in figures if split and f[0] in _FORKED_FIGURES]
        self.here = [f for f in figures if f not in self.forked]
        self.child = _FigureProcess(store, self.forked, self.formats) if self.forked else None

    def finish(self) -> dict:
        """Draw the rest here, wait for the fork: ``{file: path}`` in figure order.

        If the fork failed, its figures are drawn here, so a failing figure is
        reported (a note) as in a run without the fork.
        """
        try:
            drawn = _render_figures(self.store, self.here, self.formats, self.notes)
            if self.child is not None:
                if self.child.join():
                    drawn.update({f"{name}.{fmt}": self.store.path(f"{name}.{fmt}")
                                  for name, _ in self.forked for fmt in self.formats})
                else:
                    log.info("figure process failed; drawing %s here",
                             [name for name, _ in self.forked])
                    drawn.update(_render_figures(self.store, self.forked, self.formats,
                                                 self.notes))
        finally:
            self.stop()
        return {key: drawn[key] for name in self.order for fmt in self.formats
                if (key := f"{name}.{fmt}") in drawn}

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


#: Raster resolution of the run figures, dots per inch: the 11 x 8 inch summary is
#: already 1320 x 960 pixels at 120 dpi (drawing and compressing scale with pixels).
_PLOT_DPI = {"summary": 120}


def _save_plot(fig, path, fmt: str, name: str) -> None:
    dpi = _PLOT_DPI.get(name, 150)
    if fmt == "png":
        # The pixels savefig writes; unfiltered rows + zlib level 1 (Pillow's encoder
        # tries every row filter): ~4x cheaper to encode, files ~15% smaller.
        from .plotting import write_png

        write_png(fig, path, dpi=dpi, compress_level=1)
    else:
        fig.savefig(path, format=fmt, dpi=dpi)


def _start_figure_server(config: Config):
    """The run's figure server (:mod:`operando._figure_server`), or None.

    One forked by the CLI before its imports is taken over if this run wants a
    server; otherwise it is stopped.
    """
    from . import _figure_server

    server = _figure_server.take_prestarted()
    if not config.output.plots or not _forks_allowed(config):
        if server is not None:
            server.stop()
        return None
    return server or _figure_server.FigureServer.start()


def _serve_figures(job_r: int, res_w: int, parent: int) -> int:
    """The figure server's life: import, wait for the data, draw, answer."""
    import pickle

    from ._figure_server import wait_for_job

    stages = _stages()
    if stages.plotting is None:
        return 1
    job = wait_for_job(job_r, parent)
    if job is None:  # the run ended without figures
        return 0
    folder, config, energy, steps, norm, chi, tracking, plot_rows = job
    notes: list[str] = []
    figures = _figures(stages, config, SimpleNamespace(energy=energy), steps, norm, chi,
                       tracking, notes, plot_rows)
    drawn = _Drawing(OutputFolder(folder), config, figures, notes).finish()
    with open(res_w, "wb", closefd=True) as out:
        out.write(pickle.dumps((notes, {key: str(path) for key, path in drawn.items()})))
    return 0


def _replace_steps(tracking, steps):
    from dataclasses import replace
    return replace(tracking, steps=steps)


#: Rows per block when writing steps.csv.
_CSV_BLOCK = 10_000


def _write_steps(store: RunStore, steps: pd.DataFrame):
    """``steps.csv`` written block by block (atomically): no whole-file text in memory.

    Same bytes as ``DataFrame.to_csv(index=False)`` (blocks of one frame share
    its dtypes, and each value is formatted on its own).
    """
    def writer(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for start in range(0, max(len(steps), 1), _CSV_BLOCK):
                steps.iloc[start:start + _CSV_BLOCK].to_csv(fh, index=False, header=start == 0,
                                                           lineterminator="\n")
    return store.write_with("steps.csv", writer)


def _chir(config, k, chi):
    from .exafs.batch import batch_xftf

    x = config.exafs
    r, chir = batch_xftf(k, np.nan_to_num(chi), kmin=x.kmin, kmax=x.kmax, dk=x.dk, window=x.window,
                         kweight=x.kweight)
    mag = np.abs(chir)
    mag[~np.isfinite(chi).all(axis=1)] = np.nan
    return r, mag


def _plot_white_line_plain(steps):
    """White-line height per step, for runs without tracking (no segments)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ok = steps["ok"].astype(bool).to_numpy()
    ax.plot(steps["step"][ok], steps["wl_height"][ok], "o-", ms=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("Step")
    ax.set_ylabel("White-line height (norm.)")
    return fig


def _report_and_export(stages, store, config, series, steps, outputs, summary, notes, tracking,
                       settings) -> dict:
    """``report.html`` (self-contained) and ``athena.prj`` (the calibrated raw mu)."""
    import warnings

    out = {}
    if config.output.athena == "auto" and not config.output.athena_for(len(series)):
        notes.append(f"Athena export skipped: {len(series)} steps (athena = \"auto\" writes "
                     f"athena.prj for series up to {ATHENA_AUTO_MAX_STEPS} steps; Athena and "
                     "Larix cannot usefully show more groups); set [output] athena = true to "
                     "write it, or export a selection with operando.export.write_athena")
    elif config.output.athena:
        if stages.export is None:
            notes.append("Athena export skipped: operando.export is not available")
        else:
            names = [f"step_{int(st):04d}_{Path(str(f)).stem}" for st, f in zip(steps["step"], steps["file"])]
            if _is_streamed(series) and len(series) > ATHENA_MAX_STREAMED:
                notes.append(f"Athena export skipped: {len(series)} spectra streamed from HDF5 "
                             f"(more than {ATHENA_MAX_STREAMED}); export a selection with "
                             "operando.export.write_athena")
                return _report(stages, store, config, series, steps, outputs, summary, notes,
                               tracking, settings, out)
            mu = series.take(slice(0, len(series))).mu if _is_streamed(series) else series.mu
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    out["athena"] = stages.export.write_athena(
                        store.path("athena.prj"), series.energy, mu, names,
                        element=series.element or "", edge=series.edge or "",
                        e0s=pd.to_numeric(steps["e0"], errors="coerce").to_numpy(dtype=float))
                except OperandoError as exc:
                    notes.append(f"Athena export not written: {exc}")
            notes += [f"Athena export: {w.message}" for w in caught]
    return _report(stages, store, config, series, steps, outputs, summary, notes, tracking,
                   settings, out)


def _report(stages, store, config, series, steps, outputs, summary, notes, tracking, settings,
            out) -> dict:
    if config.output.report:
        if stages.report is None:
            notes.append("report skipped: operando.report is not available")
        else:
            figures = {name.rsplit(".", 1)[0]: path for name, path in outputs.items()
                       if str(path).endswith(".png")}
            text = tracking.summary() if tracking is not None and hasattr(tracking, "summary") else ""
            text = "\n".join([_summary_text(summary), "", text]).strip()
            out["report"] = stages.report.write_report(
                store.path("report.html"),
                title=f"operando run {summary.get('run_id')}: {series.element or ''} {series.edge or ''}",
                summary_text=text, steps=steps,
                segments=None if tracking is None else tracking.segments,
                events=None if tracking is None else tracking.events,
                reversibility=None if tracking is None else getattr(tracking, "reversibility", None),
                figures=figures, settings=settings)
    return out


def _summary_text(summary: dict) -> str:
    lines = [f"{summary['n_steps']} steps: {summary['n_ok']} ok, {summary['n_failed']} failed; "
             f"{summary['n_events']} events; {summary['n_skipped_files']} input files skipped"]
    lines += [f"  step {f['step']} ({f['file']}): {f['reason']}" for f in summary["failures"][:50]]
    lines += [f"  skipped {f.get('file')}: {f.get('reason')}" for f in summary["skipped_files"][:50]]
    lines += [f"  note: {n}" for n in summary["notes"]]
    return "\n".join(lines)
