"""One analysis session behind ``operando run`` and ``operando watch``.

A :class:`Session` turns a series into a run folder.  ``run`` feeds it every file
at once (one :meth:`Session.update`); ``watch`` feeds it the files as they land
(one update per change).  Either way an update does, in order:

1. the Athena project's own parameters (``[series] use_project_settings``);
2. the configuration resolved for the series (:func:`.settings.resolve`);
3. the inputs that shape a result hashed (:func:`input_files`: spectra,
   conditions, the ``[foil]``, every ``[components]`` standard's file,
   every shell's FEFF ``file``) and recorded in the manifest; a resumed batch run
   refuses a change, naming the input and its file;
4. the series-wide settings (:func:`.prepare.prepare`: E0, S0^2 with its error,
   the shells with the foil's values, systematics variants, LCF standards),
   recomputed when what they depend on changed;
5. the chunks (:func:`.chunks.run_chunks`): each checkpoint records the hash of its
   inputs (rows, grid, conditions, shifts, step settings, input files), so a chunk
   is computed when it is new or its inputs changed, and loaded otherwise;
6. tracking, the series-wide analyses and every output (:func:`.outputs.finish`), the
   figures drawn in the chunks' worker processes meanwhile.

The same update on the same files gives the same tables, whichever command fed it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._util.result import Result
from ..errors import ConfigError, DataError, OperandoError
from ..io import read_series
from .chunks import chunk_bounds, run_chunks, worker_pool
from .outputs import finish, package_version, summary_text
from .prepare import prepare
from .settings import (calibrate_kwargs, check_against_series, project_settings, read_kwargs,
                       resolve, with_project_settings)
from .source import (calibrated, file_hash, input_hashes, is_streamed, read_source,
                     scan_streamed)
from .store import RunStore

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


class Terminated(BaseException):
    """Raised by the SIGTERM handler (a BaseException so no step handler swallows it)."""


class SignalGuard:
    """SIGTERM as :class:`Terminated` in the main thread while a session runs, and no
    signal lost: every SIGINT / SIGTERM is remembered, and :meth:`check` raises it
    again at a safe point when the exception it raised was swallowed on its way (a
    callback the interpreter cannot raise from, a library's broad ``except``)."""

    def __init__(self):
        self.received: str | None = None
        self.previous: dict = {}

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum, exc in ((signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)):
            def handler(number, frame, exc=exc, name=signal.Signals(signum).name):
                self.received = name
                raise exc()
            try:
                self.previous[signum] = signal.signal(signum, handler)
            except (ValueError, OSError):  # not allowed here (embedded interpreters)
                pass
        self._hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def _unraisable(self, unraisable) -> None:
        if not isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
            self._hook(unraisable)

    def check(self) -> None:
        """Raise the signal received whose exception never reached the caller."""
        if self.received == "SIGTERM":
            raise Terminated()
        if self.received == "SIGINT":
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> bool:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        if self.previous:
            sys.unraisablehook = self._hook
        self.previous = {}
        return False


def signal_name(exc: BaseException) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


def mark(store: RunStore, status: str, **fields) -> None:
    """Record how the run ended; a folder that cannot be written any more (full disk)
    must not hide the error that ended the run."""
    try:
        store.finish(status, **fields)
    except OSError as exc:
        log.warning("could not mark the run %s in %s: %s", status, store.dir, exc)
    except OperandoError as exc:
        log.warning("could not mark the run %s: %s", status, exc)


def input_files(config, plan) -> dict[str, str]:
    """Every file besides the series that shapes a result, by the key a message names:
    ``"foil"``, ``"[components] <name>"``, ``"[exafs] shell <label> file"``."""
    files: dict[str, str] = {}
    if plan.exafs and plan.foil.s02 is None and plan.foil.file:
        files["foil"] = str(plan.foil.file)
    if plan.components is not None and plan.components["method"] == "lcf":
        for name, source in plan.components["standards"]:
            path = source.partition("#")[0]
            if Path(path).is_file():
                files[f"[components] {name or Path(path).stem}"] = path
    if plan.exafs:
        for shell in plan.shells or ():
            if isinstance(shell, dict) and shell.get("file"):
                files[f"[exafs] shell {shell.get('label')} file"] = str(shell["file"])
    return files


def digest(obj, h=None) -> str:
    """A stable hash (16 hex digits) of settings: dicts, sequences, dataclasses, arrays
    (by their bytes, never a shortened repr) and plain values."""
    top = h is None
    h = hashlib.sha256() if top else h
    if isinstance(obj, np.ndarray):
        h.update(f"a{obj.dtype.str}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        for f in dataclasses.fields(obj):
            h.update(f.name.encode())
            digest(getattr(obj, f.name), h)
    elif isinstance(obj, dict):
        h.update(b"{")
        for key in obj:
            h.update(repr(key).encode())
            digest(obj[key], h)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            digest(item, h)
        h.update(b"]")
    else:
        h.update(repr(obj).encode())
    return h.hexdigest()[:16] if top else ""


def chunk_hash(series, a: int, b: int, settings_digest: str) -> str:
    """Hash of everything a chunk's result depends on (rows, grid, conditions, shifts,
    and the digest of the step settings and input files)."""
    h = hashlib.sha256(settings_digest.encode())
    h.update(np.ascontiguousarray(series.energy).tobytes())
    h.update(np.ascontiguousarray(series.mu[a:b]).tobytes())
    if series.reference is not None:
        h.update(np.ascontiguousarray(series.reference[a:b]).tobytes())
    h.update(series.conditions.iloc[a:b].to_csv(index=False).encode())
    meta = series.metadata
    for key in ("energy_shifts", "energy_shift_reason"):
        if meta.get(key) is not None:
            h.update(repr(list(meta[key])[a:b]).encode())
    return h.hexdigest()[:16]


class Session:
    """A series in, the run folder out (see the module docstring).

    Parameters
    ----------
    config : Config
    store : RunStore
        The run folder (opened by the caller, which closes it).
    executor : concurrent.futures.Executor, optional
    progress : bool or callable, optional
        As :func:`operando.pipeline.run`.
    live : bool
        A watch: the inputs grow by design, so only the settings of an earlier run
        in the folder must match; ``athena.prj`` is written once, when the watch stops.
        A ``[track] baseline`` condition that has not landed yet is awaited, not an
        error: until it lands an update writes everything but the tracking (segments,
        events, the tracking columns), with a note; the update after it lands tracks
        as a batch run does.  :meth:`close` makes the note final when it never did.
    """

    def __init__(self, config, store: RunStore, *, executor=None, progress=None,
                 live: bool = False):
        self.config = config
        self.store = store
        self.executor = executor
        self.progress = progress
        self.live = live
        self.calibrate = calibrate_kwargs(config)
        self.read_options = read_kwargs(config)
        self.started = False
        self.n_steps = 0
        self.last = None  # (plan, series, steps) of the last update, for athena.prj
        self.missing: str | None = None  # live: the [track] baseline not landed yet
        self.waiting: str | None = None  # its note in summary.json and the report
        self.summary: dict | None = None  # the last update's (the RunResult's) summary

    # -------------------------------------------------------------- reading
    def read(self, files=None, table=None):
        """``(series, hashes)``: the configured source (``files`` given: those files, with
        the conditions ``table``) read, hashed and calibrated.  A batch run streams an
        operando HDF5 source; a watch reads what has landed into memory."""
        if files is None:
            series = read_source(self.read_options, self.calibrate)
        else:
            kwargs = {k: v for k, v in self.read_options.items()
                      if k not in ("source", "pattern", "conditions")}
            series = read_series(files, conditions=table, **kwargs)
            if len(series) == 0:
                raise DataError(f"no spectra were read from {self.read_options['source']}")
            if self.calibrate is not None and series.reference is None:
                raise ConfigError("[normalize] calibrate = true needs a reference channel, but "
                                  "the series has none")
        if is_streamed(series):
            hashes, series = scan_streamed(series, self.calibrate,
                                           self.config.chunk_size_for(len(series)), self.progress)
            return series, hashes
        hashes = input_hashes(series)
        if self.calibrate is not None:
            series = calibrated(series, self.calibrate)
        return series, hashes

    # --------------------------------------------------------------- update
    def update(self, series, hashes: dict, *, t_start: float | None = None):
        """Analyse ``series`` into the run folder.  Returns ``(RunResult, computed)``:
        the outputs and the chunks computed (the others were loaded)."""
        t_start = time.perf_counter() if t_start is None else t_start
        store = self.store
        n = len(series)
        config = self.config
        project, project_notes = project_settings(series)
        use_project = bool(config.series.use_project_settings and project)
        if use_project:
            config = with_project_settings(config, project)
        full_plan = resolve(config, n)
        missing = check_against_series(full_plan, series, live=self.live)
        # a watch writes athena.prj (all spectra, Larch's writer: seconds) once, at the end
        plan = replace(full_plan, athena=False, athena_limit=None) if self.live else full_plan
        waiting = None
        if missing is not None:  # live: the baseline condition has not landed yet
            plan = replace(plan, track=None)
            waiting = (f"tracking waits for its baseline: {missing} so far; no segments, "
                       "events or tracking columns until that condition lands")
            if self.waiting is None:
                log.warning("%s", waiting)
        elif self.waiting is not None:
            log.info("the [track] baseline condition landed: tracking from this update on")
        self.missing, self.waiting = missing, waiting
        chunks = chunk_bounds(n, plan.chunk_size)
        files = input_files(config, plan)
        inputs = {k: v for k, v in hashes.items() if k != "data"}
        inputs.update({key: file_hash(path) for key, path in files.items()})
        info = {"n_steps": n, "chunk_size": plan.chunk_size, "n_chunks": len(chunks),
                "version": package_version("operando")}
        if not self.live:
            store.begin(config.config_hash(n), data_hash=hashes["data"],
                        config=config.analysis_dict(n),
                        inputs=inputs,
                        input_files=files, info=info)
        else:
            info["mode"] = "watch"
            if store.manifest.get("status") != "running":
                store.begin(config.config_hash(n), config=config.analysis_dict(n), info=info)
            store.update(data_hash=hashes["data"], inputs=inputs, **info)
        self.started = True
        # seconds of each stage (summary.json "timings"; finish adds its own)
        timings = {"read": time.perf_counter() - t_start}
        lap = time.perf_counter()
        shared, step_settings = prepare(store, plan, series, inputs)
        timings["prepare"] = time.perf_counter() - lap
        lap = time.perf_counter()
        wanted = None
        if not is_streamed(series):
            settings_digest = digest((step_settings, {k: v for k, v in inputs.items()
                                                      if k not in ("spectra", "conditions")}))
            wanted = {i: chunk_hash(series, a, b, settings_digest)
                      for i, (a, b) in enumerate(chunks)}
        pool_notes: list[str] = []
        if plan.plots:
            # the run's workers draw the figures: matplotlib imported here, before they
            # fork, is imported once for all of them (not again in each, ~0.35 s)
            from .. import viz  # noqa: F401
        with worker_pool(self.executor, plan.workers, pool_notes) as pool:
            state = run_chunks(store, series, chunks, step_settings, executor=pool,
                               progress=self.progress, hashes=wanted)
            timings["chunks"] = time.perf_counter() - lap
            self.n_steps = n
            record = {"config": config.to_dict(), "config_hash": config.config_hash(n),
                      "t_start": t_start, "timings": timings, "project_settings": project,
                      "project_settings_used": use_project,
                      "notes": (project_notes if config.series.use_project_settings else [])
                      + ([waiting] if waiting else []) + pool_notes}
            steps, summary, settings, outputs, tracking = finish(store, plan, series, shared,
                                                                 state, record, executor=pool)
        self.last, self.summary = (full_plan, series, steps), summary
        if self.live:
            store.update(n_ok=summary["n_ok"], n_failed=summary["n_failed"])
        result = RunResult(dir=store.dir, steps=steps, summary=summary, settings=settings,
                           outputs=outputs, tracking=tracking)
        return result, state["computed_chunks"]

    def close(self) -> None:
        """The watch stops: a baseline still awaited never landed.  Its note in
        ``summary.json``, ``report.html`` and the last result's summary says so (one
        warning line)."""
        if self.waiting is None:
            return
        final = (f"no tracking: the watch stopped before its baseline landed ({self.missing}); "
                 "no segments or events were written")
        log.warning("%s", final)
        if self.summary is not None:
            self.summary["notes"] = [final if n == self.waiting else n
                                     for n in self.summary["notes"]]
        path = self.store.dir / "summary.json"
        if path.is_file():
            summary = json.loads(path.read_text(encoding="utf-8"))
            summary["notes"] = [final if n == self.waiting else n
                                for n in summary.get("notes", [])]
            self.store.write_json("summary.json", summary)
        report = self.store.dir / "report.html"
        if report.is_file():
            text = report.read_text(encoding="utf-8")
            self.store.write_text("report.html", text.replace(
                html.escape(self.waiting, quote=False), html.escape(final, quote=False)))
        self.missing = self.waiting = None
