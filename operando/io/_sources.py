"""What a ``source`` names: the files of a folder, glob or list, in which order, and the
format of one file from its content."""

from __future__ import annotations

import glob as _glob
import os
import stat
from pathlib import Path

from ..errors import ConfigError, ReadError
from ._athena import looks_like_athena
from ._compress import inner_name
from ._conditions import natural_key
from ._hdf5 import HDF5_SIGNATURE
from ._spec import looks_like_spec

#: Files in a folder that are never spectra.
NOT_DATA = {".csv", ".json", ".toml", ".yaml", ".yml", ".md", ".png", ".pdf", ".log", ".ini",
            ".cfg", ".html", ".py", ".ipynb", ".h5", ".hdf5", ".prj", ".nxs"}
ACCEPTED_SOURCE = ("a folder, glob or list of column files, or one .xdi/.dat/.txt/.fio column "
                   "file, matrix file, Athena .prj, SPEC file or .h5/.nxs file (any of them "
                   "also gzip/bzip2/xz compressed)")
ORDERS = ("auto", "name", "time")


def expand(source, pattern, conditions) -> tuple[list[Path], str] | None:
    """``(files, how)`` of a multi-file source (``how``: list, folder, glob), or None.

    A list keeps its order; a folder's or glob's files come in natural name
    order (``scan_2`` before ``scan_10``).
    """
    if isinstance(source, (list, tuple)):
        if not source:
            raise ReadError("[]", "empty list of files", ACCEPTED_SOURCE)
        return [Path(s) for s in source], "list"
    if not isinstance(source, (str, Path)):
        raise ConfigError(f"source must be a path, glob or list of paths, got "
                          f"{type(source).__name__}")
    text = str(source)
    path = Path(source)
    if path.is_dir():
        skip = Path(conditions).resolve() if isinstance(conditions, (str, Path)) else None
        # not p.is_file(): a FIFO, socket, device or broken link is listed too, so the
        # reader names it as skipped (entry_problem) instead of dropping it silently
        found = [p for p in (path.glob(pattern) if pattern else path.iterdir())
                 if not p.is_dir() and not p.name.startswith(".")
                 and (pattern or Path(inner_name(p)).suffix.lower() not in NOT_DATA)
                 and Path(os.path.realpath(p)) != skip]  # realpath: a link loop too
        if not found:
            raise ReadError(path, "folder holds no data files"
                            + (f" matching {pattern!r}" if pattern else ""), ACCEPTED_SOURCE)
        return sorted(found, key=lambda p: natural_key(p.name)), "folder"
    if not path.exists() and any(ch in text for ch in "*?["):
        found = [Path(p) for p in _glob.glob(text) if not Path(p).is_dir()]
        if not found:
            raise ReadError(text, "glob matches no files", ACCEPTED_SOURCE)
        return sorted(found, key=lambda p: natural_key(p.name)), "glob"
    return None


def printable_name(path) -> str:
    """A file's name as text every output can hold: bytes that are not UTF-8 (a name
    written by another system's encoding) shown as ``\\xff``."""
    return os.fsencode(Path(path).name).decode("utf-8", "backslashreplace")


def name_problem(path) -> str | None:
    """Why a file name cannot be a step's ``file`` (None when it can): a name that is not
    valid UTF-8 cannot go into steps.csv, settings.json or a conditions table."""
    name = Path(path).name
    if printable_name(path) != name:
        return "file name is not valid UTF-8 (rename it)"
    return None


#: What a folder entry that is no regular file is, by its stat mode.
_SPECIAL = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
            (stat.S_ISCHR, "a device file"), (stat.S_ISBLK, "a device file"))


def entry_problem(path) -> str | None:
    """Why a folder entry is no file to read (None for a regular file), from its metadata
    only: it is never opened (opening a FIFO blocks until a writer comes; a device may
    never end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.fsencode(os.readlink(path)).decode("utf-8", "backslashreplace")
            return f"broken symbolic link (its target {target} does not exist)"
        return "no longer exists"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _SPECIAL if test(mode)), "not a file")
    return f"{kind}, not a regular file"


def detect(path: Path, raw: bytes) -> str:
    """The format of one (decompressed) file from its content, then its name."""
    suffix = Path(inner_name(path)).suffix.lower()
    if raw.startswith(HDF5_SIGNATURE) or suffix in (".h5", ".hdf5", ".nxs", ".nx5", ".hdf"):
        return "hdf5"
    if looks_like_athena(raw[:600]) or suffix == ".prj":
        return "athena"
    if looks_like_spec(raw[:200000]):
        return "spec"
    return "columns"
