"""The run folder: atomic file writes, a manifest, and per-chunk checkpoints.

Every file of a run is written to a hidden temporary file in the same folder,
flushed to disk (``fsync``) and then renamed over its target with
:func:`os.replace`, which is atomic on POSIX and Windows.  A reader therefore
sees either the previous complete file or the new complete file, never a
half-written one, whenever the writing process is killed.

A run folder looks like::

    manifest.json        "format": "operando-run", run id, config and input hashes,
                         status, pid, times, the outputs the run wrote
    .operando.lock       held (flock) by the run working on the folder
    checkpoints/         one small file per finished piece of work
        chunk_00000.npz
        ...
    steps.csv, settings.json, summary.json, *.png, ...

``status`` is ``"running"`` while a process works on the folder,
``"complete"`` when it finished and ``"interrupted"`` when it was stopped
(Ctrl-C, SIGTERM) or is found ``"running"`` with its process gone (killed).

Only a folder whose ``manifest.json`` carries ``"format": "operando-run"`` is
taken for a run: any other folder holding files is refused, whatever the flags.
The run's process holds the folder's lock (:mod:`.lock`) from the moment the
folder is found usable until :meth:`RunStore.close`.  ``overwrite`` removes only
what the old run recorded as its own (manifest, checkpoints, and every output
name, recorded in the manifest before the file is written), says what it removes
and what it keeps, and does so only in :meth:`RunStore.begin`, after the inputs
were read.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .._util.files import TMP_SUFFIX, atomic_path, write_json_atomic
from .._util.jsonsafe import to_json_ready
from ..errors import ConfigError, RunFolderError
from .checkpoint import load_npz, save_npz, arrays_to_table, table_to_arrays
from .lock import LOCK_NAME, RunLock

log = logging.getLogger(__name__)

__all__ = ["RunStore", "table_to_arrays", "arrays_to_table", "MANIFEST", "CHECKPOINTS", "RUN_FORMAT"]

MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
#: The marker of a run folder's manifest (``"format"``) and its version.
RUN_FORMAT = "operando-run"
RUN_FORMAT_VERSION = 1
#: The inputs whose hashes a resumed run compares, in the order a message names them.
INPUT_ORDER = ("spectra", "conditions", "foil")


# ------------------------------------------------------------------- RunStore
class RunStore:
    """A run folder with a manifest, checkpoints and atomic outputs, locked while in use.

    Parameters
    ----------
    directory : path
        The run folder.  Created if missing (in :meth:`begin`).
    overwrite : bool
        Replace the operando run in ``directory``: in :meth:`begin`, its manifest,
        checkpoints and recorded outputs are removed (named in a warning); other
        files are kept and named too.
    resume : bool
        Continue the run in ``directory``: its checkpoints are kept and
        :meth:`completed_steps` lists them.  A missing or empty folder simply
        starts a new run, so ``--resume`` is safe to pass every night.

    Raises
    ------
    ConfigError
        ``directory`` holds files but no operando run (whatever the flags), or
        a run and neither ``overwrite`` nor ``resume`` is set; both are set.
    FolderInUse
        Another live process holds the folder's lock (a ConfigError).
    OSError
        The folder cannot be locked (read-only, permission denied).

    Notes
    -----
    Call :meth:`begin` with the configuration hash before writing; it
    refuses to resume a run started with different settings or inputs.  Call
    :meth:`close` at the end (any end) to release the lock.
    """

    def __init__(self, directory: str | os.PathLike, *, overwrite: bool = False, resume: bool = False):
        self.dir = Path(directory).expanduser().resolve()
        if overwrite and resume:
            raise ConfigError("choose either overwrite (start again) or resume (continue), not both")
        self.overwrite = overwrite
        self.resume = resume
        self.checkpoint_dir = self.dir / CHECKPOINTS
        self.manifest: dict = {}
        self.resumed = False
        self._replace_old = False
        self._old: dict | None = None
        self.lock = RunLock(self.dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise ConfigError(f"output folder {self.dir} is a file, not a folder")
        if self.dir.is_dir():
            self._inspect()  # refuse a foreign folder before creating anything in it
            self.lock.acquire()
            try:
                self._inspect()  # again under the lock: another run may have just finished
                self._remove_stale_temporaries()
            except BaseException:
                self.lock.release()
                raise

    def _inspect(self) -> None:
        existing = self._read_manifest()
        if existing is None:
            if self._foreign_entries():
                if self.resume or self.overwrite:
                    raise ConfigError(
                        f"output folder {self.dir} holds files but no operando run ({MANIFEST} "
                        "missing); refusing to resume into it or delete it: choose another "
                        "output folder")
                raise ConfigError(
                    f"output folder {self.dir} already exists and is not empty; choose another "
                    "output folder (--out DIR or [output] dir)")
            return
        if not (self.overwrite or self.resume):
            raise ConfigError(
                f"output folder {self.dir} already holds a run (status {existing.get('status')!r}, "
                f"run id {existing.get('run_id')}); use --resume to continue it, --overwrite to "
                "replace it, or choose another output folder (--out DIR or [output] dir)")
        if self.resume and int(existing.get("format_version", 0)) > RUN_FORMAT_VERSION:
            raise ConfigError(f"the run in {self.dir} was written by a newer operando (run format "
                              f"{existing.get('format_version')}); update operando to resume it")
        self._old = existing
        if self.overwrite:
            # Removed in begin(): a run that fails before starting keeps the old one.
            self._replace_old = True
        else:
            self.manifest = existing
            self.resumed = True

    def _foreign_entries(self) -> list[str]:
        """Entries of the folder that are not ours (lock file, temporaries)."""
        return sorted(p.name for p in self.dir.iterdir()
                      if p.name != LOCK_NAME and not p.name.endswith(TMP_SUFFIX))

    # ----------------------------------------------------------- manifest
    def _read_manifest(self) -> dict | None:
        path = self.dir / MANIFEST
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not an operando run's manifest ({exc}); refusing to "
                              "use or delete the folder: choose another output folder") from None
        if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
            raise ConfigError(
                f"output folder {self.dir} is not an operando run: its {MANIFEST} lacks "
                f"\"format\": \"{RUN_FORMAT}\" (another program's file, or a run of an operando "
                "before 0.2); refusing to use or delete it: choose another output folder")
        return manifest

    def refuse_inputs_inside(self, inputs: Mapping[str, Any]) -> None:
        """Refuse to replace a run whose input files lie inside its folder.

        Parameters
        ----------
        inputs : mapping
            What -> path, glob or list of them (``{"source": ..., "config": ...}``).

        Raises
        ------
        ConfigError
            With ``overwrite``, when any input is the folder or lies inside it.
        """
        if not self._replace_old:
            return
        for what, value in inputs.items():
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                if item is None or isinstance(item, bool):
                    continue
                path = glob_root(str(item)).resolve()
                if path == self.dir or self.dir in path.parents:
                    raise ConfigError(
                        f"refusing to replace the run in {self.dir}: its input ({what}) {item} "
                        "lies inside the output folder and --overwrite would delete the run's "
                        "files around it; move the input out or choose another output folder")

    def begin(self, config_hash: str, *, data_hash: str | None = None, info: Mapping | None = None,
              config: Mapping | None = None, inputs: Mapping[str, str | None] | None = None,
              input_files: Mapping[str, str] | None = None) -> dict:
        """Start (or continue) the run and mark it ``running``.

        Parameters
        ----------
        config_hash, data_hash : str
        info, config : mapping, optional
            Recorded in the manifest.
        inputs : mapping, optional
            Input name (``"spectra"``, ``"conditions"``, ``"foil"``)
            -> hash; a resumed run must find every one unchanged.
        input_files : mapping, optional
            Input name -> the file it came from, named when it changed.

        Raises
        ------
        ConfigError
            When resuming a run whose configuration or inputs differ (the
            message names every input that changed).
        """
        if self.resumed:
            self._check_resumable(config_hash, data_hash, config, inputs, input_files)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.lock.held:
            self.lock.acquire()
            self._inspect()  # the folder was missing; someone may have made it meanwhile
        if self._replace_old:
            self._remove_old_run()
        self.checkpoint_dir.mkdir(exist_ok=True)
        now = _now()
        manifest = dict(self.manifest) if self.resumed else {
            "format": RUN_FORMAT,
            "run_id": f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
            "created": now,
            "outputs": [],
        }
        manifest.update({
            "format": RUN_FORMAT,
            "format_version": RUN_FORMAT_VERSION,
            "config_hash": config_hash,
            "data_hash": data_hash,
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "updated": now,
        })
        if inputs is not None:
            manifest["inputs"] = {k: v for k, v in inputs.items() if v is not None}
        if config is not None:
            manifest["config"] = to_json_ready(config)
        if info:
            manifest.update(to_json_ready(info))
        if self.resumed:
            manifest["resumed"] = int(manifest.get("resumed", 0)) + 1
        self._write_manifest(manifest)
        return manifest

    def _check_resumable(self, config_hash, data_hash, config, inputs, input_files) -> None:
        old = self.manifest
        if old.get("config_hash") != config_hash:
            changed = _diff(old.get("config") or {}, config or {})
            detail = f": {'; '.join(changed[:5])}" if changed else ""
            raise ConfigError(
                f"cannot resume the run in {self.dir}: its settings differ from this "
                f"configuration{detail}; use --overwrite to start again with the new settings "
                "or another output folder")
        before = old.get("inputs")
        if isinstance(before, Mapping) and inputs is not None:
            names = [k for k in INPUT_ORDER if k in set(before) | set(inputs)]
            names += sorted((set(before) | set(inputs)) - set(INPUT_ORDER))
            changed = [k + (f" {Path(input_files[k]).name}" if k in (input_files or {}) else "")
                       for k in names if before.get(k) != inputs.get(k)]
        elif data_hash is not None and old.get("data_hash") not in (None, data_hash):
            changed = ["spectra or conditions"]
        else:
            changed = []
        if changed:
            raise ConfigError(
                f"cannot resume the run in {self.dir}: changed since it started: "
                f"{', '.join(changed)}; use --overwrite to start again or another output folder")
        if old.get("status") == "running":
            log.warning("run %s was not stopped cleanly (process killed); resuming", old.get("run_id"))

    def _remove_old_run(self) -> None:
        """Remove what the old run recorded as its own; say what goes and what stays."""
        old = self._old or {}
        recorded = [n for n in old.get("outputs", []) if isinstance(n, str) and _plain_name(n)]
        gone = [n for n in recorded if (self.dir / n).is_file()]
        if self.checkpoint_dir.is_dir():
            gone.append(f"{CHECKPOINTS}/ ({sum(1 for _ in self.checkpoint_dir.iterdir())} files)")
        gone.append(MANIFEST)
        kept = [n for n in self._foreign_entries() if n not in recorded
                and n not in (CHECKPOINTS, MANIFEST)]
        log.warning("replacing the run %s in %s: removing %s%s", old.get("run_id"), self.dir,
                    ", ".join(gone),
                    f"; keeping {', '.join(kept)} (not written by that run)" if kept else "")
        for name in recorded:  # outputs first, the manifest last: a removal cut short
            with contextlib.suppress(FileNotFoundError):  # leaves a folder still ours
                (self.dir / name).unlink()
        if self.checkpoint_dir.is_dir():
            shutil.rmtree(self.checkpoint_dir)
        (self.dir / MANIFEST).unlink()
        self._replace_old = False

    def update(self, **fields: Any) -> None:
        """Record fields in the manifest (written atomically)."""
        self._write_manifest({**self.manifest, **fields, "updated": _now()})

    def finish(self, status: str = "complete", **fields: Any) -> None:
        """Mark the run ``complete`` or ``interrupted`` (or ``failed``)."""
        if status not in ("complete", "interrupted", "failed"):
            raise ValueError(f"unknown run status {status!r}")
        self.update(status=status, **fields)

    def close(self) -> None:
        """Release the folder's lock (idempotent); call at the end of any run."""
        self.lock.release()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def _write_manifest(self, manifest: dict) -> None:
        try:
            write_json_atomic(self.dir / MANIFEST, manifest)
        except OSError as exc:
            raise _folder_error(exc, self.dir / MANIFEST) from None
        self.manifest = manifest

    @property
    def status(self) -> str | None:
        return self.manifest.get("status")

    # -------------------------------------------------------- checkpoints
    def _checkpoint_path(self, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"bad checkpoint name {name!r}")
        return self.checkpoint_dir / f"{name}.npz"

    def save_checkpoint(self, name: str, arrays: Mapping[str, Any] | None = None,
                        meta: Mapping[str, Any] | None = None) -> Path:
        """Store one finished piece of work (numpy arrays + JSON metadata) atomically."""
        path = self._checkpoint_path(name)
        try:
            save_npz(path, arrays or {}, meta or {})
        except OSError as exc:
            raise _folder_error(exc, path) from None
        return path

    def load_checkpoint(self, name: str, keys=None) -> tuple[dict[str, np.ndarray], dict]:
        """The ``(arrays, meta)`` stored by :meth:`save_checkpoint` (with ``keys``, only
        those arrays).

        Raises
        ------
        RunFolderError
            The file is damaged (truncated, not a checkpoint) or unreadable.
        """
        path = self._checkpoint_path(name)
        try:
            return load_npz(path, keys)
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            # Atomic writes never leave a partial checkpoint: this is damage from outside.
            raise RunFolderError(path, f"checkpoint {name} is corrupt or unreadable "
                                       f"({type(exc).__name__}: {exc}); delete it to recompute "
                                       "that part with --resume, or use --overwrite") from None

    def has_checkpoint(self, name: str) -> bool:
        return self._checkpoint_path(name).is_file()

    def completed_steps(self) -> list[str]:
        """Names of the checkpoints present (only complete files ever exist)."""
        if self._replace_old or not self.checkpoint_dir.is_dir():
            return []
        return sorted(p.stem for p in self.checkpoint_dir.glob("*.npz") if not p.name.startswith("."))

    # ------------------------------------------------------------ outputs
    def path(self, name: str) -> Path:
        """The path of the output ``name``, recorded as an output of this run (in the
        manifest, before it is written)."""
        outputs = list(self.manifest.get("outputs", []))
        if self.manifest and name not in outputs:
            self.update(outputs=outputs + [name])
        return self.dir / name

    def write_with(self, name: str, writer: Callable[[Path], Any]) -> Path:
        """Call ``writer(temporary_path)`` and move the result to ``name`` atomically."""
        target = self.path(name)
        try:
            with atomic_path(target) as tmp:
                writer(tmp)
        except OSError as exc:
            raise _folder_error(exc, target) from None
        return target

    def write_text(self, name: str, text: str) -> Path:
        return self.write_with(name, lambda tmp: tmp.write_bytes(text.encode("utf-8")))

    def write_csv(self, name: str, table: pd.DataFrame, **to_csv: Any) -> Path:
        to_csv.setdefault("index", False)
        return self.write_with(name, lambda tmp: table.to_csv(tmp, **to_csv))

    def write_json(self, name: str, obj: Any) -> Path:
        text = json.dumps(to_json_ready(obj), indent=2, allow_nan=False, sort_keys=False)
        return self.write_text(name, text + "\n")

    def _remove_stale_temporaries(self) -> None:
        for folder in (self.dir, self.checkpoint_dir):
            if not folder.is_dir():
                continue
            for tmp in folder.glob(f".*{TMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def __repr__(self) -> str:
        return f"<RunStore {self.dir} status={self.status!r} checkpoints={len(self.completed_steps())}>"


def _folder_error(exc: OSError, path) -> RunFolderError:
    """An OSError while writing ``path`` as a one-line :class:`RunFolderError`."""
    return RunFolderError(path, f"cannot be written: {exc.strerror or exc}")


def folder_error(exc: OSError, folder) -> RunFolderError:
    """Any OSError of a run as a one-line :class:`RunFolderError` (the file it names,
    else the run folder)."""
    return RunFolderError(exc.filename or folder, exc.strerror or str(exc))


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".") \
        and name not in (MANIFEST, CHECKPOINTS, "..")


def glob_root(text: str) -> Path:
    """The path of a file or folder, or for a glob the folder before its first wildcard."""
    import glob as _glob

    path = Path(text).expanduser()
    while _glob.has_magic(str(path)) and path != path.parent:
        path = path.parent
    return path


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _diff(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out
