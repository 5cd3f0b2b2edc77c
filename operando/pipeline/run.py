"""``run(config)``: a whole analysis from a configuration into a run folder.

In order:

1. read the series (:mod:`.source`; an operando HDF5 file is streamed);
2. hand it, all at once, to the :class:`~.session.Session` (the same one ``operando
   watch`` feeds as scans land): the settings shared by all steps, once,
   checkpointed (:mod:`.prepare`: E0, S0^2 from the ``[foil]``), the chunks
   (:mod:`.chunks`, :mod:`.steps`), each checkpointed as soon as it is done,
   tracking and every output (:mod:`.outputs`).

Ctrl-C or SIGTERM marks the run ``interrupted`` in ``manifest.json``, keeps the
checkpoints and raises :class:`RunInterrupted`; ``run(config, resume=True)`` (CLI
``--resume``) then loads the finished chunks and computes only the rest.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable

from ..config import load_config
from .session import (RunInterrupted, RunResult, Session, SignalGuard, Terminated, mark,
                      signal_name)
from .store import RunStore, folder_error

log = logging.getLogger(__name__)


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
    with store, SignalGuard():
        store.refuse_inputs_inside(run_inputs(config))
        session = Session(config, store, executor=executor, progress=progress)
        try:
            series, hashes = session.read()
            result, _ = session.update(series, hashes, t_start=t_start)
            store.finish("complete", n_ok=result.n_ok, n_failed=result.n_failed)
        except (KeyboardInterrupt, Terminated) as exc:
            name = signal_name(exc)
            done = sum(1 for s in store.completed_steps() if s.startswith("chunk_"))
            total = store.manifest.get("n_chunks", 0)
            if session.started:
                mark(store, "interrupted", signal=name)
            log.info("run interrupted by %s after %d/%d chunks", name, done, total)
            raise RunInterrupted(store.dir, done, total, name) from None
        except BaseException as exc:
            if session.started:
                error = exc if not isinstance(exc, OSError) else folder_error(exc, store.dir)
                mark(store, "failed", error=f"{type(error).__name__}: {error}")
            raise
    return result


def run_inputs(config) -> dict:
    """The files a run reads (what -> path, glob or list), for the inside-the-folder check."""
    s = config.series
    # A reference *file* (matrix series); a column name is not a path.
    reference = s.reference if isinstance(s.reference, str) and Path(s.reference).exists() else None
    return {"source": list(s.source), "conditions": s.conditions, "reference channel": reference,
            "foil": config.foil.file, "config": config.path}
