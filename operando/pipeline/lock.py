"""One run at a time per output folder: an advisory lock held for the whole run.

The lock is :func:`fcntl.flock` on ``<folder>/.operando.lock``.  The kernel drops it
when the holding process ends in any way (exit, exception, ``kill -9``, power loss
of the process), so a dead run never leaves a stale lock behind: there is nothing to
detect or clean up.  The file itself carries the holder's pid, host and start time,
read by a second run for its refusal message.

A released lock removes its file (so a finished run folder holds only results).
Removing a lock file another process may be about to lock is the classic flock race;
:meth:`RunLock.acquire` closes it by checking, once locked, that the path still names
the file it locked, and retrying otherwise.

Worker processes forked by the run inherit the open file and so keep the folder
locked as long as any of them lives (they end with their parent:
:mod:`operando.pipeline.workers`).  On platforms without :mod:`fcntl` (Windows) no
lock is taken and a warning is logged once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

#: The lock file inside a run folder.
LOCK_NAME = ".operando.lock"


class FolderInUse(ConfigError):
    """Another live process holds the output folder's lock.

    Attributes
    ----------
    folder : Path
    holder : dict
        ``pid``, ``host``, ``started`` (local time) and ``command`` of the holder,
        as far as it wrote them.
    """

    def __init__(self, folder, holder: dict):
        self.folder = Path(folder)
        self.holder = dict(holder)
        who = ", ".join(f"{k} {holder[k]}" for k in ("pid", "host") if holder.get(k))
        when = f", started {holder['started']}" if holder.get("started") else ""
        what = f" ({holder['command']})" if holder.get("command") else ""
        super().__init__(
            f"output folder {self.folder} is in use by another operando run "
            f"({who or 'process details not written yet'}{when}){what}; wait for it to finish "
            "or stop it, or choose another output folder")


class RunLock:
    """The exclusive lock of a run folder.

    Parameters
    ----------
    folder : path
        The run folder; it must exist when :meth:`acquire` is called.

    Examples
    --------
    >>> with RunLock("out").acquire():          # doctest: +SKIP
    ...     ...                                 # the folder is ours
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock or raise :class:`FolderInUse` naming the holder (never waits).

        Raises
        ------
        FolderInUse
            Another process holds it.
        OSError
            The folder cannot be written (read-only, permission, full disk).
        """
        if self._fd is not None:
            return self
        if fcntl is None:  # pragma: no cover - Windows
            log.warning("no file locking on this platform: nothing stops two runs sharing %s",
                        self.folder)
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise FolderInUse(self.folder, _written_holder(self.path)) from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file as we locked it: lock the new one
        self._fd = fd
        self._write_holder()
        return self

    def _write_holder(self) -> None:
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join(os.path.basename(a) if i == 0 else a
                                      for i, a in enumerate(sys.argv))[:200]}
        data = (json.dumps(holder) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        with contextlib.suppress(OSError):
            os.fsync(self._fd)

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still locked: see the module docstring
        os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def __repr__(self) -> str:
        return f"<RunLock {self.path} {'held' if self.held else 'free'}>"


#: Seconds a refused run waits for the holder's details: the holder writes them right
#: after taking the lock, but on a loaded machine the two may be a few ms apart.
HOLDER_WAIT_S = 2.0


def _written_holder(path) -> dict:
    """The holder's details, waited for briefly when it has just taken the lock."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while not (holder := read_holder(path)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return holder


def read_holder(path) -> dict:
    """What the holder of a lock file wrote about itself ({} if nothing readable yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        holder = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
