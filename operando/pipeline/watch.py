"""``operando watch``: follow a folder (or a growing HDF5 file) as the beamline writes it.

Design: the watch *is* the batch run, done again on what has landed so far, with
everything already computed kept.

* Input: every poll (``interval`` seconds, earlier on a file-system event) the
  ready scans are listed (:mod:`.follow`: settled size and time, a complete last
  row, listed in the conditions CSV when there is one); when that list or the
  conditions table changed, the series is read with the batch reader
  (:func:`operando.io.read_series` on the ready files, same options) and
  calibrated like a batch run.
* Chunks: the same boundaries as a batch run, ``[0, c), [c, 2c), ...`` for
  ``chunk_size = c`` (``"auto"`` is the batch's value for series up to
  ``2 x 256`` steps: 256, or 16 with a larch engine; give an integer for longer
  series).  Each chunk checkpoint records the hash of its inputs (its rows, grid,
  conditions, shifts and step settings).  A chunk is computed when its hash is
  new or changed: a full chunk once, the last partial chunk again each time it
  grows (its checkpoint replaced atomically), and any chunk whose inputs
  changed (a late scan sorting earlier, a conditions row corrected, a wider
  calibration shift narrowing the common grid).  The series-wide settings (E0,
  S0^2) are recomputed only when their own inputs change: with ``e0 = "first"``
  (or a value in eV) a full chunk is final; with ``e0 = "median"`` (the median of
  all scans' E0) E0 moves as scans land and every chunk is computed again at each
  update, as equality with the batch run requires.
* Equality with a batch run follows: each update hands the files read to the same
  :class:`~.session.Session` a batch run uses (project settings, S0^2 with its
  error, LCF references, systematics, outputs), with the same chunk boundaries.
  A batch ``operando run --resume`` on a watched folder loads every chunk (same
  config and input hashes).  The foil, the ``[components]`` reference files and
  the shells' FEFF files are hashed at every update: a change recomputes the
  series-wide values and every chunk they feed.
* Output: after each update every output but ``athena.prj`` (written when the
  watch stops: Larch's writer takes seconds) is rewritten atomically; ``report.html``
  carries ``<meta http-equiv="refresh">`` and a "live" line while the watch
  runs, removed when it stops.  ``watch.jsonl`` (one JSON line per update) lists
  the files read, the chunks computed and the files that changed after reading.
* Stop and restart: Ctrl-C (SIGINT) or SIGTERM ends the update in progress at
  once (finished chunks are checkpointed), marks the manifest ``interrupted``,
  strips the refresh and raises :class:`WatchStopped`; a signal whose exception
  was swallowed on its way is raised again at the next pass of the loop.  Any
  other end (``idle_timeout``: ``complete``; an error: ``failed``) leaves the
  manifest and report final the same way.  ``operando watch`` again
  continues: files read before, unchanged, need no settling, and no chunk whose
  inputs are unchanged is computed again.

Cost per update: reading every ready file (a few ms each) and hashing the
series; fits only for the changed chunks; all figures and the report.  Idle: a
listing and a stat per file each ``interval``; file-system events that only read
(the watch's own reads of the conditions CSV and scan tails) do not wake it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import load_config
from ..errors import ConfigError, NoSpectraError, OperandoError, ReadError
from ..io import natural_key
from .follow import ScanSource, Waker
from .outputs import add_athena_project
from .session import (RunInterrupted, RunResult, Session, SignalGuard, Terminated, mark,
                      signal_name)
from .settings import read_kwargs
from .store import RunStore, folder_error

log = logging.getLogger(__name__)

#: The update journal in the run folder.
JOURNAL = "watch.jsonl"
#: Seconds between two reloads of report.html in the browser while watching.
REFRESH_S = 5
_LIVE = re.compile(r'<meta http-equiv="refresh"[^>]*>|<p class="operando-live"[^>]*>.*?</p>', re.S)


class WatchStopped(RunInterrupted):
    """The watch was stopped (Ctrl-C / SIGTERM); everything read so far is kept."""

    def __init__(self, run_dir, n_steps: int, updates: int, signal_name: str,
                 written: bool = True):
        self.run_dir = Path(run_dir)
        self.chunks_done = self.chunks_total = 0
        self.signal_name = signal_name
        self.n_steps, self.updates = n_steps, updates
        where = (f"results are in {self.run_dir}; run operando watch again to continue"
                 if written else "no scan was ready, nothing was written")
        OperandoError.__init__(
            self, f"watch stopped ({signal_name}) with {n_steps} scans analysed; {where}")


@dataclass
class Update:
    """What one update did (handed to ``on_update``).

    Attributes
    ----------
    n_steps : int
        Scans in the series now.
    new, changed : list of str
        Files read for the first time, files changed after they were read.
    computed : list of int
        Chunks computed (new, grown or with changed inputs).
    result : RunResult
        The outputs as after a batch run on the same files.
    seconds : float
    """

    n_steps: int
    new: list
    changed: list
    computed: list
    result: RunResult
    seconds: float


def watch(config, *, poll: bool = False, interval: float = 0.5, settle: float = 1.0,
          idle_timeout: float | None = None,
          on_update: Callable[[Update], Any] | None = None) -> RunResult | None:
    """Follow the configured source and keep the run folder up to date.

    Parameters
    ----------
    config : Config, path, TOML text or dict
        As :func:`operando.pipeline.run`; ``[series] source`` is a folder, a glob
        or one operando HDF5 / NeXus file.  The run folder is created or continued
        (a folder holding another run's settings is refused, as ``--resume``).
    poll : bool
        Poll only (no file-system events; for network file systems).
    interval : float
        Seconds between two polls.
    settle : float
        Seconds a file must stay unchanged before it is read.
    idle_timeout : float, optional
        Return once no new scan has landed for this many seconds (default: run
        until Ctrl-C / SIGTERM).
    on_update : callable, optional
        Called with an :class:`Update` after each update.

    Returns
    -------
    RunResult or None
        The last update's result (None if nothing was ever ready), when
        ``idle_timeout`` ends the watch.

    Raises
    ------
    WatchStopped
        Ctrl-C / SIGTERM (a :class:`RunInterrupted`: the command exits 130 / 143).
    ConfigError, ReadError, DataError, RunFolderError
        As a batch run.
    """
    config = load_config(config)
    _check_timing(interval, settle, idle_timeout)
    # chunk_size "auto" resolves from the series length; a growing series needs a fixed
    # size: the batch's own value for short series (see the module docstring).
    config = config.with_run(chunk_size=config.chunk_size_for(1))
    try:
        return _Watch(config, poll=poll, interval=interval, settle=settle).loop(
            idle_timeout, on_update)
    except OSError as exc:
        raise folder_error(exc, config.output.dir) from None


def _check_timing(interval, settle, idle_timeout) -> None:
    """Refuse timings the loop cannot keep (NaN, infinite, negative) in one line."""
    checks = (("--interval", interval, "a number of seconds above 0 and finite", False),
              ("--settle", settle, "a number of seconds, 0 or more, finite", True),
              ("--idle-exit", idle_timeout, "a number of seconds, 0 or more, finite", True))
    for name, value, accepted, zero in checks:
        if value is None and name == "--idle-exit":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
            raise ConfigError(f"{name} {value}: give {accepted}")


class _Watch:
    def __init__(self, config, *, poll, interval, settle):
        s = config.series
        if len(s.source) != 1:
            raise ConfigError("operando watch follows one folder, glob or HDF5 file; "
                              f"[series] source lists {len(s.source)}")
        self.config = config
        self.interval = float(interval)
        self.source = ScanSource(s.source[0], pattern=s.pattern, conditions=s.conditions,
                                 settle=settle)
        if Path(s.source[0]).is_file() and not self.source.single:
            raise ConfigError(f"[series] source {s.source[0]}: operando watch follows a folder, a "
                              "glob or a growing HDF5 / NeXus file, not one file written at once "
                              "(an Athena project, a matrix or SPEC file): use operando run")
        self.order = s.order
        self.logs = read_kwargs(config).get("logs")
        self.poll = poll
        if config.normalize.e0 == "median":
            log.warning('[normalize] e0 = "median" moves as scans land, so every update '
                        'computes every chunk again; e0 = "first" or a value in eV keeps '
                        'finished chunks final')
        self.files: dict[str, list] = {}  # file read -> [size, mtime_ns] when read
        self.named: set[str] = set()  # skipped files already warned about
        self.updates = 0
        self.last_key = None
        self.result = None
        self.session: Session | None = None

    @property
    def n_steps(self) -> int:
        return 0 if self.session is None else self.session.n_steps

    # ------------------------------------------------------------------ loop
    def loop(self, idle_timeout, on_update):
        store = RunStore(self.config.output.dir, resume=True)
        self.session = Session(self.config, store, progress=False, live=True)
        folders = [self.source.folder]
        if self.source.conditions is not None:
            folders.append(self.source.conditions.parent)
        if self.logs is not None:
            folders += sorted({p.parent for p in self.logs.files()} - set(folders))
        waker = Waker(folders, poll=self.poll)
        log.info("watching %s (%s, every %.1f s)", self.source.source, waker.mode, self.interval)
        with store, SignalGuard() as guard:
            try:
                self._restore(store)
                idle_since = time.monotonic()
                while True:
                    guard.check()
                    if self._step(store, on_update):
                        idle_since = time.monotonic()
                    elif idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                        break
                    guard.check()
                    waker.wait(self.interval)
                self._final(store, "complete")
            except (KeyboardInterrupt, Terminated) as exc:
                name = signal_name(exc)
                self._final(store, "interrupted", signal=name)
                raise WatchStopped(store.dir, self.n_steps, self.updates, name,
                                   written=bool(store.manifest)) from None
            except BaseException as exc:
                error = folder_error(exc, store.dir) if isinstance(exc, OSError) else exc
                self._final(store, "failed", error=f"{type(error).__name__}: {error}")
                raise
            finally:
                waker.close()
        return self.result

    def _restore(self, store: RunStore) -> None:
        """What an earlier watch in this folder read."""
        path = store.dir / JOURNAL
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                self.files.update(entry.get("stamps", {}))
                self.updates = max(self.updates, int(entry.get("update", 0)))

    def _log_stamps(self) -> list:
        """Size and mtime of every [conditions] log: a growing log re-aligns the scans."""
        out = []
        for path in (self.logs.files() if self.logs is not None else []):
            try:
                st = path.stat()
                out.append([str(path), st.st_size, st.st_mtime_ns])
            except OSError:
                out.append([str(path), None, None])
        return out

    def _step(self, store: RunStore, on_update) -> bool:
        """One poll: an update if the ready scans or the conditions changed."""
        table = self.source.conditions_table()
        ready = self.source.ready(table, known=self.files)
        if not ready:
            return False
        stamps = {p.name: self.source.stamp(p) for p in ready}
        key = (json.dumps(stamps, sort_keys=True),
               None if table is None else table.to_csv(index=False), self._log_stamps())
        if key == self.last_key:
            return False
        t0 = time.perf_counter()
        new = sorted((n for n in stamps if n not in self.files), key=natural_key)
        changed = sorted(n for n in stamps if n in self.files and self.files[n] != stamps[n])
        for name in changed:  # a growing HDF5 file is expected to change
            (log.info if self.source.single else log.warning)(
                "%s changed after it was read; the chunks it feeds are checked again", name)
        try:
            result, computed = self._update(store, ready, table)
        except NoSpectraError as exc:
            if self.source.single:
                raise
            # Only files that are no spectra (a note, a FIFO) have landed: each is named
            # once, and the watch waits for scans (a batch run stops here).
            self._name_skipped(exc.skipped)
            self.last_key = key
            return False
        except ReadError as exc:
            if not self.source.single:
                raise
            # An HDF5 file open for writing may not be readable yet (HDF5 file locking,
            # a dataset being extended): try again at the next poll.
            log.info("%s not readable yet (%s); trying again", self.source.source, exc)
            return False
        self.last_key = key
        self.files.update(stamps)
        self.updates += 1
        scans = [n for n in new if n not in self.named]  # a file skipped is no scan read
        self._journal(store, {"update": self.updates, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              "n_steps": self.n_steps, "new": scans, "changed": changed,
                              "computed": computed,
                              "stamps": {n: stamps[n] for n in new + changed}})
        self.result = result
        if on_update is not None:
            on_update(Update(self.n_steps, scans, changed, computed, result,
                             time.perf_counter() - t0))
        return bool(new or changed or computed)

    # ---------------------------------------------------------------- update
    def _update(self, store: RunStore, ready, table):
        t_start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # rows of scans still to come, skipped files
            files = ready[0] if self.source.single else self.source.in_batch_order(
                ready, table, self.order)
            series, hashes = self.session.read(files, table)
        for w in caught:
            log.debug("reading: %s", w.message)
        self._name_skipped(series.metadata.get("skipped", []) or [])
        result, computed = self.session.update(series, hashes, t_start=t_start)
        if "report" in result.outputs:
            _live_report(store, self.n_steps, self.source.source)
        return result, computed

    def _name_skipped(self, skipped) -> None:
        """Each skipped file named once (summary.json lists them all at every update)."""
        for item in skipped:
            if item.get("file") not in self.named:
                self.named.add(item.get("file"))
                log.warning("skipped %s: %s", item.get("file"), item.get("reason"))

    def _journal(self, store: RunStore, entry: dict) -> None:
        path = store.path(JOURNAL)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _final(self, store: RunStore, status: str, **fields) -> None:
        """athena.prj, the report without its refresh; the manifest says how the watch
        ended.  Nothing when no update ever began (no folder made for nothing)."""
        if not store.manifest:
            return
        try:
            _live_report(store, None, None)
            self.session.close()
            if status != "failed" and self.session.last is not None:
                add_athena_project(store, *self.session.last)
        except (OSError, OperandoError) as exc:
            log.warning("could not close the watch cleanly: %s", exc)
        mark(store, status, **fields)


def _live_report(store: RunStore, n_steps, source) -> None:
    """Add (``n_steps`` given) or remove the live refresh of ``report.html``."""
    path = store.dir / "report.html"
    if not path.is_file():
        return
    text = _LIVE.sub("", path.read_text(encoding="utf-8"))
    if n_steps is not None:
        import html

        text = text.replace('<meta charset="utf-8">', '<meta charset="utf-8">'
                            f'<meta http-equiv="refresh" content="{REFRESH_S}">', 1)
        banner = (f'<p class="operando-live" style="background:#fff3cd;padding:6px 10px;'
                  f'border:1px solid #e0c36c">Live: following {html.escape(str(source))} - '
                  f'{n_steps} scans analysed, updated {time.strftime("%H:%M:%S")}; this page '
                  f'reloads every {REFRESH_S} s while operando watch runs.</p>')
        text = text.replace("<body>", "<body>" + banner, 1)
    store.write_text("report.html", text)
