"""Which scans of a growing source are complete: the input side of ``operando watch``.

A scan is *ready* when

* its size and modification time have not changed for ``settle`` seconds (a file
  whose size changes between two polls is still being written);
* it ends the way a complete file of its format ends: a text scan (XDI, column
  file) with a newline after a data row (a scan cut inside a row, or with its
  header only, is not complete), checked on the decompressed content of a gzip,
  bzip2 or xz scan whose stream has ended; an HDF5 file with its signature in
  place;
* with a conditions table (``[series] conditions``), the table lists it (by name
  or stem): the batch reader skips unlisted files, so the watch waits for their
  row instead.

The conditions CSV may grow while it is read: only its complete lines (up to the
last newline) are used, and a complete row the batch reader would refuse (more
fields than the header, text in a number column, a repeated file, an unclosed
quote, bytes that are not UTF-8) is left out and warned once: its scan waits until
the row is fixed.  A FIFO, socket, device file or broken link in the folder is never
opened: it is ready at once (with the first scan), and the reader skips and names it.  A file that was ready once and is then changed (size or
time) is reported as changed; the run recomputes the chunk it belongs to.

File-system events (:mod:`watchdog`) only wake the loop early; readiness is always
decided by the checks above, so the polling fallback gives the same results.
"""

from __future__ import annotations

import bz2
import io
import logging
import lzma
import stat
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, ReadError
# The batch reader's own listing and ordering rules (one copy: a watch must see the
# folder exactly as operando run does).
from ..io import (expand, load_conditions, natural_key, order_files,
                  read_growing_conditions)
from .store import glob_root

log = logging.getLogger(__name__)

#: Bytes read from the end of a text scan to check its last line.
_TAIL = 4096
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class Stamp:
    """Size (bytes) and modification time (ns) of a file, and since when (s) unchanged."""

    size: int
    mtime_ns: int
    since: float = field(default=0.0, compare=False)

    def key(self) -> list:
        return [self.size, self.mtime_ns]


class ScanSource:
    """The scans of a watched folder, glob or HDF5 file, and which of them are ready.

    Parameters
    ----------
    source : str
        A folder, a glob (``"scans/*.xdi"``) or one operando HDF5 / NeXus file.
    pattern : str, optional
        Glob filter inside a folder, as ``[series] pattern``.
    conditions : str, optional
        The conditions CSV (may grow).
    settle : float
        Seconds a file must stay unchanged before it is read.
    """

    def __init__(self, source: str, *, pattern: str | None = None,
                 conditions: str | None = None, settle: float = 1.0):
        self.source = Path(source)
        self.pattern = pattern
        self.conditions = None if conditions is None else Path(conditions)
        self.settle = float(settle)
        self.single = self.source.suffix.lower() in (".h5", ".hdf5", ".nxs", ".nx5", ".hdf")
        self._stamps: dict[Path, Stamp] = {}
        self._warned: set[str] = set()  # the conditions rows' problems warned about
        self._parsed: tuple[bytes, pd.DataFrame] | None = None  # the last CSV read

    @property
    def folder(self) -> Path:
        """The folder to watch for events."""
        return self.source.parent if self.single else glob_root(str(self.source))

    def candidates(self) -> list[Path]:
        """Files the batch reader would take from the source now (its listing rules)."""
        if self.single:
            return [self.source] if self.source.is_file() else []
        try:
            found = expand(str(self.source), self.pattern, self.conditions)
        except ReadError:  # no data file (yet)
            return []
        return [] if found is None else list(found[0])

    def in_batch_order(self, files, table: pd.DataFrame | None, order: str = "auto") -> list[Path]:
        """``files`` in the order the batch reader gives a folder or glob: the conditions
        table's rows (``order = "auto"``), else natural name order.  (``"time"`` sorts by
        the headers' start times in the reader itself, whatever order it is given.)"""
        files = sorted(files, key=lambda p: natural_key(p.name))
        if table is not None and order == "auto":
            files, _ = order_files(files, load_conditions(table))
        return files

    def conditions_table(self) -> pd.DataFrame | None:
        """The conditions CSV's complete, good lines as a table (None: no table configured).

        A missing file, or one without a complete header line yet, lists no scan:
        the watch waits for it.  A bad row is left out (its scan waits) with one
        warning the first time it is seen (:func:`operando.io.read_growing_conditions`).

        Raises
        ------
        ReadError
            Its good lines still cannot be parsed as CSV (a broken header).
        """
        if self.conditions is None:
            return None
        try:
            raw = self.conditions.read_bytes()
        except FileNotFoundError:
            raw = b""
        if self._parsed is not None and self._parsed[0] == raw:
            # unchanged since the last poll (an idle watch polls twice a second): the
            # same table, its problems already warned about, without parsing it again
            return self._parsed[1].copy()
        try:
            table, problems = read_growing_conditions(raw)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                ValueError) as exc:
            raise ReadError(self.conditions, f"could not read the conditions CSV: {exc}",
                            "a CSV file with a header row") from None
        for problem in problems:
            if problem not in self._warned:
                log.warning("%s %s; its scan waits until the row is fixed",
                            self.conditions.name, problem)
        self._warned = set(problems)  # a row fixed, then broken again, is warned again
        self._parsed = (raw, table.copy())
        return table

    def ready(self, table: pd.DataFrame | None, known: dict[str, list] | None = None,
              now: float | None = None) -> list[Path]:
        """The files complete now (see the module docstring), in no particular order.

        ``known`` maps file names already read to their ``[size, mtime_ns]``: such a
        file, unchanged, is ready at once (it settled before a restart).
        """
        now = time.monotonic() if now is None else now
        listed = _listed(table)
        out, special = [], []
        current = {}
        for path in self.candidates():
            try:
                st = path.stat()
            except OSError:
                try:
                    st = path.lstat()  # a broken link or a link loop: the reader names it
                except OSError:
                    continue
            stamp = Stamp(st.st_size, st.st_mtime_ns, now)
            old = self._stamps.get(path)
            if old is not None and old == stamp:
                stamp.since = old.since
            current[path] = stamp
            if listed is not None and not listed.intersection(_names(path)):
                continue
            if not stat.S_ISREG(st.st_mode):
                # never opened (a FIFO blocks): nothing to settle, the reader skips it
                special.append(path)
                continue
            if known is not None and known.get(path.name) == stamp.key():
                out.append(path)
                continue
            if now - stamp.since >= self.settle and stamp.size > 0 and self._complete(path):
                out.append(path)
        self._stamps = current
        # special entries alone are no series to read: they come with the first scan
        return out + special if out else []

    def stamp(self, path: Path) -> list:
        s = self._stamps.get(path)
        if s is None:
            st = path.stat()
            return [st.st_size, st.st_mtime_ns]
        return s.key()

    def _complete(self, path: Path) -> bool:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head.startswith(_HDF5_SIGNATURE):
                return True
            kind = next((k for magic, k in _COMPRESSED if head.startswith(magic)), None)
            if kind is not None:
                fh.seek(0)
                tail = _decompressed_tail(fh, kind)
                if tail is None:
                    return False
            else:
                fh.seek(0, io.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - _TAIL))
                tail = fh.read()
        if not tail.endswith(b"\n"):
            return False
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        if not lines:
            return False
        last = lines[-1]
        # A data row: numbers only (a header or comment line last means no data yet).
        try:
            [float(x) for x in last.replace(b",", b" ").split()]
        except ValueError:
            return False
        return True


#: Magic bytes of the compressed formats the reader accepts (gzip, bzip2, xz).
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


def _decompressed_tail(fh, kind: str) -> bytes | None:
    """The last bytes of a compressed file's content, or None while its stream is
    incomplete (still being written) or corrupt.  Streamed: memory stays at one block
    and the tail whatever the content's size (the reader applies its own limits)."""
    engine = {"gzip": lambda: zlib.decompressobj(wbits=31), "bzip2": bz2.BZ2Decompressor,
              "xz": lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)}[kind]()
    tail = b""
    zlib_like = kind == "gzip"
    pending = b""
    try:
        while not engine.eof:
            if zlib_like:
                if not pending:
                    pending = fh.read(1 << 16)
                    if not pending:
                        return None  # the stream has not ended: still being written
                out = engine.decompress(pending, 1 << 20)
                pending = engine.unconsumed_tail
            else:
                block = b""
                if engine.needs_input:
                    block = fh.read(1 << 16)
                    if not block:
                        return None
                out = engine.decompress(block, max_length=1 << 20)
            tail = (tail + out)[-_TAIL:]
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None
    return tail


def _names(path: Path) -> set[str]:
    """The names a conditions table may list a scan by: its name or stem, also without
    a compression suffix (``a.xdi.gz``: ``a.xdi.gz``, ``a.xdi``, ``a``)."""
    names = {path.name, path.stem}
    if path.suffix.lower() in (".gz", ".gzip", ".bz2", ".xz"):
        names.add(Path(path.stem).stem)
    return names


def _listed(table: pd.DataFrame | None) -> set[str] | None:
    if table is None:
        return None
    cols = {str(c).strip(): c for c in table.columns}
    if "file" not in cols:
        raise ConfigError("the conditions table of a watched folder needs a 'file' column "
                          f"(file basenames); columns are {list(cols)}")
    return {str(v).strip() for v in table[cols["file"]].dropna()}


#: watchdog event types that wake the loop (not "opened", "closed_no_write").
WAKING_EVENTS = ("created", "modified", "moved", "deleted", "closed")


class Waker:
    """Wakes the watch loop early on file-system events (watchdog), else every poll.

    Parameters
    ----------
    folders : list of Path
        Folders to observe (non-recursive).
    poll : bool
        Do not use watchdog (network file systems often deliver no events).
    """

    def __init__(self, folders, *, poll: bool = False):
        self.event = threading.Event()
        self.observer = None
        self.mode = "poll"
        if poll:
            return
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            log.info("watchdog is not installed: polling")
            return
        waker = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                # Only a change wakes the loop: opening, reading and closing a file
                # unchanged (the watch's own reads of the conditions CSV and of scan
                # tails) would wake it forever.
                if event.event_type in WAKING_EVENTS:
                    waker.event.set()

        try:
            observer = Observer()
            for folder in dict.fromkeys(Path(f) for f in folders):
                if folder.is_dir():
                    observer.schedule(_Handler(), str(folder), recursive=False)
            observer.daemon = True
            observer.start()
        except (OSError, RuntimeError) as exc:  # inotify limits, unsupported file system
            log.info("file-system events unavailable (%s): polling", exc)
            return
        self.observer, self.mode = observer, "events"

    def wait(self, timeout: float) -> None:
        """Until an event or ``timeout`` seconds."""
        self.event.wait(timeout)
        self.event.clear()

    def close(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=2)
            self.observer = None
