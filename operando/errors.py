"""User-facing errors.

Everything a user can cause (a bad file, a bad setting, a step that cannot be
analysed) is raised as an :class:`OperandoError` subclass whose message names
the file, step or setting, says what is wrong, and what would be accepted.
Library internals (numpy, larch, h5py) never leak a traceback for bad input:
the boundary functions catch them and re-raise one of these.
"""

from __future__ import annotations


class OperandoError(Exception):
    """Base class for every error a user can cause."""


class ReadError(OperandoError):
    """A file could not be read, or its content is not an XAS spectrum we accept."""

    def __init__(self, path, problem: str, accepted: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.accepted = accepted
        msg = f"{self.path}: {problem}"
        if accepted:
            msg += f" (accepted: {accepted})"
        super().__init__(msg)


class NoSpectraError(ReadError):
    """None of the files of a folder, glob or list is a spectrum; ``skipped`` lists each
    with its reason (``{"file", "reason"}``).  A batch run stops on it; a watch waits for
    scans to land."""

    def __init__(self, path, problem: str, accepted: str | None = None, *, skipped=()):
        super().__init__(path, problem, accepted)
        self.skipped = list(skipped)


class ConfigError(OperandoError, ValueError):
    """A setting is unknown, of the wrong type or out of range (a ``ValueError``)."""


class RunFolderError(OperandoError):
    """The run folder cannot be written or read back: read-only, full disk, permission
    denied, or a damaged checkpoint.  Finished results already in the folder are kept."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DataError(OperandoError, ValueError):
    """Data read fine but cannot be analysed as asked (wrong edge, too short k-range, ...;
    a ``ValueError``)."""


class OperandoWarning(UserWarning):
    """Something was repaired or assumed while reading; the result is usable."""
