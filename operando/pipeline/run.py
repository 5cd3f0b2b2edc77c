"""``run(config)``: a whole analysis from a configuration into a run folder.

In order:

1. read the series (:mod:`.source`; an operando HDF5 file is streamed);
2. resolve the configuration for it (:func:`.settings.resolve`) and the settings
   shared by all steps, once, checkpointed (:mod:`.prepare`: E0 of the first good
   scan when ``e0 = "first"``, the engine, S0^2 from the ``[foil]`` foil);
3. process the steps in chunks of ``[run] chunk_size`` (:mod:`.chunks`,
   :mod:`.steps`), each checkpointed as soon as it is done;
4. track states and events and write every output (:mod:`.outputs`).

Ctrl-C or SIGTERM marks the run ``interrupted`` in ``manifest.json``, keeps the
checkpoints and raises :class:`RunInterrupted`; ``run(config, resume=True)`` (CLI
``--resume``) then loads the finished chunks and computes only the rest.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .._util.result import Result
from ..config import load_config
from ..errors import OperandoError
from .chunks import chunk_bounds, run_chunks
from .outputs import finish, package_version, summary_text
from .prepare import prepare
from .settings import (calibrate_kwargs, check_against_series, project_settings, read_kwargs,
                       resolve, with_project_settings)
from .source import (calibrated, file_hash, input_hashes, is_streamed, read_source,
                     scan_streamed)
from .store import RunStore, folder_error

log = logging.getLogger(__name__)


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
class RunResult(Result):
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

    def to_dataframe(self) -> pd.DataFrame:
        """The ``steps.csv`` table (a copy)."""
        return self.steps.copy()

    def title(self) -> str:
        return self.__repr__().strip("<>")

    def report(self) -> str:
        """The run's counts, failures and notes, then the tracking's account."""
        text = f"{self.title()}\n{summary_text(self.summary)}"
        return text if self.tracking is None else f"{text}\n\n{self.tracking.report()}"

    def _repr_html_(self) -> str:
        from .._util.reprs import run_html

        return run_html(self)


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
    try:
        return _run(config, executor=executor, resume=resume, overwrite=overwrite,
                    progress=progress)
    except OSError as exc:
        # Read-only folder, full disk, permission denied: one line, no traceback (#15).
        raise folder_error(exc, config.output.dir) from None


def _run(config, *, executor, resume, overwrite, progress) -> RunResult:
    t_start = time.perf_counter()
    store = RunStore(config.output.dir, overwrite=overwrite or config.output.overwrite, resume=resume)
    with store, _signal_guard():
        store.refuse_inputs_inside(run_inputs(config))
        calibrate = calibrate_kwargs(config)
        started = False
        timings: dict[str, float] = {}
        lap = time.perf_counter()
        try:
            series = read_source(read_kwargs(config), calibrate)
            if is_streamed(series):
                hashes, series = scan_streamed(series, calibrate,
                                               config.chunk_size_for(len(series)), progress)
            else:
                hashes = input_hashes(series)
                if calibrate is not None:
                    series = calibrated(series, calibrate)
            n = len(series)
            project, project_notes = project_settings(series)
            if config.series.use_project_settings and project:
                config = with_project_settings(config, project)
            plan = resolve(config, n)
            check_against_series(plan, series)
            chunks = chunk_bounds(n, plan.chunk_size)
            inputs, files = dict(hashes), {}
            if plan.exafs and plan.foil.s02 is None and plan.foil.file:
                inputs["foil"] = file_hash(plan.foil.file)
                files["foil"] = plan.foil.file
            store.begin(config.config_hash(n), data_hash=hashes["data"],
                        config=config.analysis_dict(n),
                        inputs={k: v for k, v in inputs.items() if k != "data"}, input_files=files,
                        info={"n_steps": n, "chunk_size": plan.chunk_size,
                              "n_chunks": len(chunks), "version": package_version("operando")})
            started = True
            timings["read"] = time.perf_counter() - lap
            lap = time.perf_counter()
            shared, step_settings = prepare(store, plan, series)
            timings["prepare"] = time.perf_counter() - lap
            lap = time.perf_counter()
            state = run_chunks(store, series, chunks, step_settings, workers=plan.workers,
                               executor=executor, progress=progress)
            timings["chunks"] = time.perf_counter() - lap
            record = {"config": config.to_dict(), "config_hash": config.config_hash(n),
                      "t_start": t_start, "timings": timings, "project_settings": project,
                      "project_settings_used": bool(config.series.use_project_settings and project),
                      "notes": project_notes if config.series.use_project_settings else []}
            steps, summary, settings, outputs, tracking = finish(store, plan, series, shared,
                                                                 state, record)
            result = RunResult(dir=store.dir, steps=steps, summary=summary, settings=settings,
                               outputs=outputs, tracking=tracking)
            store.finish("complete", n_ok=result.n_ok, n_failed=result.n_failed)
        except (KeyboardInterrupt, _Terminated) as exc:
            name = "SIGTERM" if isinstance(exc, _Terminated) else "SIGINT"
            done = sum(1 for s in store.completed_steps() if s.startswith("chunk_"))
            total = store.manifest.get("n_chunks", 0)
            if started:
                _mark(store, "interrupted", signal=name)
            log.info("run interrupted by %s after %d/%d chunks", name, done, total)
            raise RunInterrupted(store.dir, done, total, name) from None
        except BaseException as exc:
            if started:
                error = exc if not isinstance(exc, OSError) else folder_error(exc, store.dir)
                _mark(store, "failed", error=f"{type(error).__name__}: {error}")
            raise
    return result


def _mark(store: RunStore, status: str, **fields) -> None:
    """Record how the run ended; a folder that cannot be written any more (full disk)
    must not hide the error that ended the run."""
    try:
        store.finish(status, **fields)
    except OSError as exc:
        log.warning("could not mark the run %s in %s: %s", status, store.dir, exc)
    except OperandoError as exc:
        log.warning("could not mark the run %s: %s", status, exc)


def run_inputs(config) -> dict:
    """The files a run reads (what -> path, glob or list), for the inside-the-folder check."""
    s = config.series
    # A reference *file* (matrix series); a column name is not a path.
    reference = s.reference if isinstance(s.reference, str) and Path(s.reference).exists() else None
    return {"source": list(s.source), "conditions": s.conditions, "reference channel": reference,
            "foil": config.foil.file, "config": config.path}


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
