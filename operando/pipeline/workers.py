"""The run's own worker processes: how many, and that they end with the run.

* :func:`worker_count`: ``workers = 0`` means one per core; a larger number than the
  cores this process may use is capped there with an
  :class:`~operando.errors.OperandoWarning` naming the cap (a configuration written
  for a cluster node still runs on a laptop; results do not depend on the worker
  count, chunk boundaries come from ``chunk_size`` only).
* :func:`init_worker`: the pool's initializer.  Ctrl-C is left to the parent, which
  stops the pool; SIGTERM ends a worker quietly; and a worker dies with its parent
  even when the parent is killed with ``kill -9`` (which runs no clean-up code):
  on Linux through the parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``),
  elsewhere through a daemon thread that polls :func:`os.getppid` once a second.
  Otherwise the workers (about 250 MB each) live on, re-parented, and keep the
  run folder's lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
import warnings

from ..errors import OperandoWarning

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
#: Seconds between two parent checks of the watchdog thread (non-Linux).
WATCHDOG_PERIOD = 1.0


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where known, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_count(requested: int) -> int:
    """Worker processes for ``[run] workers = requested`` (0: one per core).

    Warns (:class:`~operando.errors.OperandoWarning`) when ``requested`` exceeds the
    cores and returns the core count instead.
    """
    cores = available_cores()
    if requested == 0:
        return cores
    if requested > cores:
        warnings.warn(f"--workers {requested} is more than the {cores} cores available; "
                      f"using {cores} (more processes than cores only add memory)",
                      OperandoWarning, stacklevel=2)
        return cores
    return requested


def init_worker(parent_pid: int) -> None:
    """Initializer of the run's process pool (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not _die_with_parent_linux():
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                         name="operando-parent-watchdog").start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _die_with_parent_linux() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCHDOG_PERIOD)
    os._exit(1)  # no clean-up: the parent that would collect our result is gone
