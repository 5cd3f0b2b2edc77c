"""The figure server: a forked process that draws a run's figures.

The start of a run (imports, reading, S0^2 calibration) keeps one core busy;
a server forked then puts the other to work on the plotting imports (~0.4 s
of matplotlib), waits, and draws the figures from the data the run sends when
its fits are done (splitting them again with a fork of its own, see
:func:`operando.pipeline._serve_figures`).  Data goes over a pipe, pickled
(the XANES map and chi rows: a few MB); the answer is the notes and the files
written, each atomically as the run would write it.  If anything goes wrong
in the server, :meth:`FigureServer.result` returns None and the run draws the
figures itself: a broken server can cost time, never a figure or a note.

This module imports nothing heavy, so the ``operando`` command can fork the
server (:func:`prestart`) before it imports numpy, pandas and the pipeline;
the server imports them itself, on the idle core.  A run takes it over
(:func:`take_prestarted`) or, called from Python, forks its own.  Linux only,
and only while the process has a single thread (a fork copies only the
calling thread; a lock held by another would stay locked in the child).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import sys
import threading

log = logging.getLogger("operando.pipeline")

_PRESTARTED: "FigureServer | None" = None


def can_fork() -> bool:
    """A fork is available and safe here.

    Linux only (a fork after macOS system frameworks may crash), and never when
    other Python threads exist (a dask client, a notebook kernel, a progress
    bar): a fork copies only the calling thread, and a lock another thread
    holds would stay locked in the child.
    """
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and threading.active_count() == 1)


class FigureServer:
    """The parent's handle on a forked figure server."""

    def __init__(self):
        job_r, self._job_w = os.pipe()
        self._res_r, res_w = os.pipe()
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # the server: never returns into the caller
            code = 1
            try:
                os.close(self._job_w)
                os.close(self._res_r)
                from .pipeline import _serve_figures

                code = _serve_figures(job_r, res_w, parent)
            except BaseException:  # noqa: BLE001 - the run draws and reports instead
                code = 1
            finally:
                os._exit(code)
        os.close(job_r)
        os.close(res_w)

    @classmethod
    def start(cls) -> "FigureServer | None":
        """Fork a server, or None where that is not possible or not safe."""
        if not can_fork():
            return None
        try:
            return cls()
        except OSError as exc:  # no fork (resource limits): the run draws
            log.info("figure server not started: %s", exc)
            return None

    def send(self, *data) -> bool:
        """Hand the figure data over; False if the server is gone."""
        try:
            payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
            with open(self._job_w, "wb", closefd=True) as fh:
                self._job_w = None
                fh.write(len(payload).to_bytes(8, "little"))
                fh.write(payload)
            return True
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
            log.info("figure server not used: %s", exc)
            return False

    def result(self):
        """``(notes, {file: path})`` from the server (files in figure order), or None
        if it failed."""
        try:
            with open(self._res_r, "rb", closefd=True) as fh:
                self._res_r = None
                answer = fh.read()
            _, status = os.waitpid(self.pid, 0)
            self.pid = None
            if os.waitstatus_to_exitcode(status) != 0 or not answer:
                return None
            return pickle.loads(answer)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            log.info("figure server failed: %s", exc)
            return None

    def stop(self) -> None:
        """Close the pipes and end the server if it still runs (idempotent)."""
        for name in ("_job_w", "_res_r"):
            fd = getattr(self, name)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, None)
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = None


def wait_for_job(job_r: int, parent: int):
    """In the server: the data :meth:`FigureServer.send` sent, or None if the
    run closed the pipe without sending or its process is gone."""
    with open(job_r, "rb", closefd=True) as fh:
        while not select.select([fh], [], [], 1.0)[0]:
            if os.getppid() != parent:
                return None
        head = fh.read(8)
        if len(head) < 8:
            return None
        return pickle.loads(fh.read(int.from_bytes(head, "little")))


def prestart() -> None:
    """Fork a server now, for the next run of this process to take over."""
    global _PRESTARTED
    if _PRESTARTED is None:
        _PRESTARTED = FigureServer.start()


def take_prestarted() -> "FigureServer | None":
    """The server :func:`prestart` forked (once), or None."""
    global _PRESTARTED
    server, _PRESTARTED = _PRESTARTED, None
    return server
