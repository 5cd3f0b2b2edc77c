"""The run folder: atomic file writes, a manifest, and per-chunk checkpoints.

Every file of a run is written to a hidden temporary file in the same folder,
flushed to disk (``fsync``) and then renamed over its target with
:func:`os.replace`, which is atomic on POSIX and Windows.  A reader therefore
sees either the previous complete file or the new complete file, never a
half-written one, whenever the writing process is killed.

A run folder looks like::

    manifest.json        run id, config hash, data hash, status, pid, times
    checkpoints/         one small file per finished piece of work
        chunk_00000.npz
        ...
    steps.csv, settings.json, summary.json, *.png, ...

``status`` is ``"running"`` while a process works on the folder,
``"complete"`` when it finished and ``"interrupted"`` when it was stopped
(Ctrl-C, SIGTERM) or is found ``"running"`` with its process gone (killed).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .._util.files import (TMP_SUFFIX, atomic_path, write_bytes_atomic, write_csv_atomic,
                          write_json_atomic, write_text_atomic)
from .._util.jsonsafe import to_json_ready
from ..errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "RunStore", "write_text_atomic", "write_bytes_atomic", "write_csv_atomic",
    "write_json_atomic", "atomic_path", "MANIFEST", "CHECKPOINTS",
]

MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"


# ---------------------------------------------------------------- checkpoints
def _save_npz(path: Path, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    payload = {f"a_{k}": np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.array(json.dumps(to_json_ready(meta)))
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    write_bytes_atomic(path, buffer.getvalue())


def _load_npz(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k[2:]: data[k] for k in data.files if k.startswith("a_")}
        meta = json.loads(str(data["__meta__"])) if "__meta__" in data.files else {}
    return arrays, meta


def table_to_arrays(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Columns of a DataFrame as plain numpy arrays (no pickling), order kept.

    Floats, ints and bools keep their exact values; every other column is
    stored as text (``None`` as an empty string).
    """
    out = {"__columns__": np.array(list(map(str, table.columns)))}
    for i, column in enumerate(table.columns):
        values = table[column]
        if values.dtype.kind in "fiub":
            out[f"col{i}"] = values.to_numpy()
        else:
            out[f"col{i}"] = np.array(["" if v is None or (isinstance(v, float) and math.isnan(v))
                                        else str(v) for v in values], dtype=str)
    return out


def arrays_to_table(arrays: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Inverse of :func:`table_to_arrays`."""
    columns = [str(c) for c in arrays["__columns__"]]
    data = {}
    for i, column in enumerate(columns):
        values = arrays[f"col{i}"]
        data[column] = values.astype(object) if values.dtype.kind == "U" else values
    return pd.DataFrame(data, columns=columns)


# ------------------------------------------------------------------- RunStore
class RunStore:
    """A run folder with a manifest, checkpoints and atomic outputs.

    Parameters
    ----------
    directory : path
        The run folder.  Created if missing.
    overwrite : bool
        Replace an existing run in ``directory`` (only a folder holding a
        ``manifest.json``, or an empty one, is ever deleted).
    resume : bool
        Continue the run in ``directory``: its checkpoints are kept and
        :meth:`completed_steps` lists them.  A missing or empty folder simply
        starts a new run, so ``--resume`` is safe to pass every night.

    Raises
    ------
    ConfigError
        ``directory`` already holds a run (or other files) and neither
        ``overwrite`` nor ``resume`` is set; both are set; or another live
        process is writing the run.

    Notes
    -----
    Call :meth:`begin` with the configuration hash before writing; it
    refuses to resume a run started with different settings.
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
        existing = self._read_manifest()
        has_files = self.dir.is_dir() and any(self.dir.iterdir())
        if self.dir.exists() and not self.dir.is_dir():
            raise ConfigError(f"output folder {self.dir} is a file, not a folder")
        if has_files and existing is None:
            if resume or overwrite:
                raise ConfigError(
                    f"output folder {self.dir} holds files but no operando run ({MANIFEST} missing); "
                    "refusing to resume into it or delete it: choose another output folder"
                )
            raise ConfigError(
                f"output folder {self.dir} already exists and is not empty; choose another output "
                "folder (--out DIR or [output] dir)"
            )
        if existing is not None:
            if not (overwrite or resume):
                raise ConfigError(
                    f"output folder {self.dir} already holds a run (status {existing.get('status')!r}, "
                    f"run id {existing.get('run_id')}); use --resume to continue it, --overwrite to "
                    "replace it, or choose another output folder (--out DIR or [output] dir)"
                )
            self._refuse_if_live(existing)
            if overwrite:
                # Deleted in begin(): a run that fails before starting keeps the old one.
                self._replace_old = True
            else:
                self.manifest = existing
                self.resumed = True
        if self.dir.is_dir():
            self._remove_stale_temporaries()

    # ----------------------------------------------------------- manifest
    def _read_manifest(self) -> dict | None:
        path = self.dir / MANIFEST
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            # Atomic writes make this "impossible"; say so rather than guess.
            raise ConfigError(f"{path} is unreadable ({exc}); use --overwrite to start again") from None

    def _refuse_if_live(self, manifest: Mapping) -> None:
        if manifest.get("status") != "running" or manifest.get("host") != socket.gethostname():
            return
        pid = manifest.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            raise ConfigError(
                f"output folder {self.dir} is being written by another running process "
                f"(pid {pid}); wait for it or stop it first"
            )

    def begin(self, config_hash: str, *, data_hash: str | None = None, info: Mapping | None = None,
              config: Mapping | None = None) -> dict:
        """Start (or continue) the run and mark it ``running``.

        Raises
        ------
        ConfigError
            When resuming a run whose configuration or input data differ.
        """
        if self.resumed:
            old = self.manifest
            if old.get("config_hash") != config_hash:
                changed = _diff(old.get("config") or {}, config or {})
                detail = f": {'; '.join(changed[:5])}" if changed else ""
                raise ConfigError(
                    f"cannot resume the run in {self.dir}: its settings differ from this "
                    f"configuration{detail}; use --overwrite to start again with the new settings "
                    "or another output folder"
                )
            if data_hash is not None and old.get("data_hash") not in (None, data_hash):
                raise ConfigError(
                    f"cannot resume the run in {self.dir}: the input spectra changed since it "
                    "started; use --overwrite to start again or another output folder"
                )
            if old.get("status") == "running":
                log.warning("run %s was not stopped cleanly (process killed); resuming", old.get("run_id"))
        if self._replace_old:
            shutil.rmtree(self.dir)
            self._replace_old = False
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(exist_ok=True)
        now = _now()
        manifest = dict(self.manifest) if self.resumed else {
            "run_id": f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
            "created": now,
        }
        manifest.update({
            "config_hash": config_hash,
            "data_hash": data_hash,
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "updated": now,
        })
        if config is not None:
            manifest["config"] = to_json_ready(config)
        if info:
            manifest.update(to_json_ready(info))
        if self.resumed:
            manifest["resumed"] = int(manifest.get("resumed", 0)) + 1
        self._write_manifest(manifest)
        return manifest

    def update(self, **fields: Any) -> None:
        """Record fields in the manifest (written atomically)."""
        self._write_manifest({**self.manifest, **fields, "updated": _now()})

    def finish(self, status: str = "complete", **fields: Any) -> None:
        """Mark the run ``complete`` or ``interrupted`` (or ``failed``)."""
        if status not in ("complete", "interrupted", "failed"):
            raise ValueError(f"unknown run status {status!r}")
        self.update(status=status, **fields)

    def _write_manifest(self, manifest: dict) -> None:
        write_json_atomic(self.dir / MANIFEST, manifest)
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
        _save_npz(path, arrays or {}, meta or {})
        return path

    def load_checkpoint(self, name: str) -> tuple[dict[str, np.ndarray], dict]:
        """The ``(arrays, meta)`` stored by :meth:`save_checkpoint`."""
        return _load_npz(self._checkpoint_path(name))

    def has_checkpoint(self, name: str) -> bool:
        return self._checkpoint_path(name).is_file()

    def completed_steps(self) -> list[str]:
        """Names of the checkpoints present (only complete files ever exist)."""
        if self._replace_old or not self.checkpoint_dir.is_dir():
            return []
        return sorted(p.stem for p in self.checkpoint_dir.glob("*.npz") if not p.name.startswith("."))

    # ------------------------------------------------------------ outputs
    def path(self, name: str) -> Path:
        return self.dir / name

    def write_with(self, name: str, writer: Callable[[Path], Any]) -> Path:
        """Call ``writer(temporary_path)`` and move the result to ``name`` atomically."""
        with atomic_path(self.dir / name) as tmp:
            writer(tmp)
        return self.dir / name

    def write_text(self, name: str, text: str) -> Path:
        return write_text_atomic(self.dir / name, text)

    def write_csv(self, name: str, table: pd.DataFrame, **to_csv: Any) -> Path:
        return write_csv_atomic(self.dir / name, table, **to_csv)

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json_atomic(self.dir / name, obj)

    def _remove_stale_temporaries(self) -> None:
        for folder in (self.dir, self.checkpoint_dir):
            if not folder.is_dir():
                continue
            for tmp in folder.glob(f".*{TMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def __repr__(self) -> str:
        return f"<RunStore {self.dir} status={self.status!r} checkpoints={len(self.completed_steps())}>"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


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
