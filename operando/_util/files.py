"""Atomic file writes: a reader sees the previous complete file or the new one, never half.

Every output of the package goes through :func:`atomic_path`: the data go to a
hidden temporary file in the target's folder (named ``.<name>.<random>`` +
:data:`TMP_SUFFIX`, so a run folder can recognise and remove the leftovers of a
killed writer), are flushed to disk (``fsync``), get the permissions a plain
``open()`` would give (``mkstemp`` makes 0600 files), and the file is renamed
over its target with :func:`os.replace` (atomic on POSIX and Windows); the
folder is then synced so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .jsonsafe import to_json_ready

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic", "write_csv_atomic",
           "write_json_atomic", "TMP_SUFFIX"]

#: Suffix of every temporary file an atomic write makes.
TMP_SUFFIX = ".tmp-operando"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    For writers that insist on a file name (``savefig``, Athena writers).  If the
    block raises, the temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> with atomic_path("out/map.png") as tmp:          # doctest: +SKIP
    ...     fig.savefig(tmp, format="png")
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes 0600 files; give outputs the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)  # closed (so flushed) before atomic_path syncs it to disk
    return target


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (temp file, fsync, rename)."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_csv_atomic(path: str | os.PathLike, table, **to_csv: Any) -> Path:
    """Write a DataFrame as CSV atomically (``index=False`` unless given)."""
    to_csv.setdefault("index", False)
    buffer = io.StringIO()
    table.to_csv(buffer, **to_csv)
    return write_text_atomic(path, buffer.getvalue())


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically.

    numpy scalars and arrays, paths and tuples are converted; NaN and
    infinities become ``null`` so the file is strict JSON.
    """
    text = json.dumps(to_json_ready(obj), indent=indent, allow_nan=False, sort_keys=False)
    return write_text_atomic(path, text + "\n")
