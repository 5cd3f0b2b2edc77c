"""The run's input: the series read (or opened for streaming), hashed and calibrated.

An operando-layout HDF5 source (:func:`operando.io.write_hdf5`), or a NeXus NXxas
file whose frames share one energy axis, is streamed rather than read:
:func:`operando.io.open_hdf5` / :func:`operando.io.open_nexus` keep energy, conditions
and metadata in memory and chunks read their rows with h5py slicing.  A first pass over the file
computes the data hash and, with calibration, every step's shift (calibration of
one row depends on that row only) and so the common trimmed grid; chunk tasks then
carry the raw rows and the grid and calibrate in the worker
(:class:`StreamedCalibration`).  Results equal those of the in-memory path exactly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..io import is_operando_hdf5, open_hdf5, open_nexus, read_series
from ..series import Series
from ..xanes import calibrate
from .progress import progress_bar


def read_source(read: dict, calibrate_kwargs: dict | None):
    """The series to analyse: a :class:`~operando.series.Series`, or a lazy view of an
    operando HDF5 or NeXus file (:class:`~operando.io.LazySeries`) to be streamed."""
    lazy = _open_streamed(read)
    if lazy is not None:
        if calibrate_kwargs is not None and not lazy.has_reference:
            raise ConfigError("[normalize] calibrate = true needs a reference channel, but "
                              f"{lazy.path} has none")
        return lazy
    kwargs = {k: v for k, v in read.items() if k != "source"}
    series = read_series(read["source"], **kwargs)
    if len(series) == 0:
        raise DataError(f"no spectra were read from {read['source']}")
    if calibrate_kwargs is not None and series.reference is None:
        raise ConfigError(
            "[normalize] calibrate = true needs a reference channel, but the series has none "
            "(set [series] reference = \"auto\" and check the files have a reference column)")
    return series


def _open_streamed(read: dict):
    """A lazy view when the source is one operando-layout HDF5 file, or one NeXus NXxas
    file whose frames share an energy axis (:func:`operando.io.open_nexus`), else None."""
    source = read["source"]
    if read.get("logs") is not None:  # conditions aligned from logs: read in memory
        return None
    if isinstance(source, list) or read.get("format") not in ("auto", "hdf5", "nexus") \
            or read.get("pattern"):
        return None
    path = Path(source)
    if not path.is_file():
        return None
    kwargs = dict(conditions=read.get("conditions"), element=read.get("element"),
                  edge=read.get("edge"))
    if is_operando_hdf5(path):
        return open_hdf5(path, **kwargs) if read.get("format") != "nexus" else None
    if read.get("format") == "hdf5" or read.get("reference", "auto") not in ("auto", None, True,
                                                                            False):
        return None  # a reference file is refused for NeXus by read_series: say so there
    return open_nexus(path, **kwargs)


def is_streamed(series) -> bool:
    return not hasattr(series, "mu")


def input_hashes(series) -> dict[str, str]:
    """Hashes (SHA-256, 16 hex digits) of an in-memory series' inputs.

    ``"spectra"`` (energy, mu, reference channel), ``"conditions"`` (the table
    as CSV) and ``"data"`` (both, the run's ``data_hash``).
    """
    return _Hashes().spectra(series.energy, series.mu, series.reference) \
        .conditions(series.conditions).digests()


def file_hash(path) -> str:
    """SHA-256 (16 hex digits) of a file's bytes (the reference foil)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class _Hashes:
    """The run's input hashes, fed in pieces (a streamed series is hashed chunk by chunk)."""

    def __init__(self):
        self.data, self.spectra_h, self.conditions_h = (hashlib.sha256() for _ in range(3))

    def spectra(self, energy=None, mu=None, reference=None) -> "_Hashes":
        for array in (energy, mu, reference):
            if array is not None:
                raw = np.ascontiguousarray(array).tobytes()
                self.data.update(raw)
                self.spectra_h.update(raw)
        return self

    def conditions(self, table) -> "_Hashes":
        raw = table.to_csv(index=False).encode()
        self.data.update(raw)
        self.conditions_h.update(raw)
        return self

    def digests(self) -> dict[str, str]:
        return {"data": self.data.hexdigest()[:16], "spectra": self.spectra_h.hexdigest()[:16],
                "conditions": self.conditions_h.hexdigest()[:16]}


def calibrated(series: Series, kwargs: dict) -> Series:
    """The calibrated series; the applied shifts (eV) go to ``metadata["energy_shifts"]``.

    Once for the whole series: calibration trims the common grid to the points every
    shifted scan covers, so chunks must share one result.
    """
    out, shifts = calibrate(series, **kwargs)
    metadata = dict(out.metadata)
    metadata["energy_shifts"] = np.asarray(shifts, dtype=float).reshape(len(series))
    return out.replace(metadata=metadata)


def scan_streamed(lazy, calibrate_kwargs: dict | None, chunk_size: int, progress):
    """One pass over a streamed series: the data hash and, if asked, the calibration shifts.

    Returns ``(hashes, series)`` (hashes as :func:`input_hashes`); with calibration
    the series is a :class:`StreamedCalibration` (the shifts of every step and the
    common grid fixed, the spectra still on disk).
    """
    h = _Hashes().spectra(lazy.energy)
    per_step: dict[str, list] = {"energy_shifts": [], "energy_shift_measured": [],
                                 "energy_shift_ok": [], "energy_shift_reason": []}
    lo, hi, calibration = -np.inf, np.inf, None
    bar = progress_bar(progress if not callable(progress) else False, len(lazy),
                       desc="operando: calibration" if calibrate_kwargs is not None
                       else "operando: reading")
    try:
        for a, b, mu, ref in lazy.iter_rows(chunk_size):
            h.spectra(mu=mu, reference=ref)
            if calibrate_kwargs is not None:
                block = Series(energy=lazy.energy, mu=mu, reference=ref, element=lazy.element,
                               edge=lazy.edge,
                               conditions=lazy.conditions.iloc[a:b].reset_index(drop=True),
                               metadata={})
                done, _ = calibrate(block, **calibrate_kwargs)
                # Each row's shift depends on that row only; the common grid is the
                # intersection of the blocks' grids (as calibrate() on the whole series).
                lo, hi = max(lo, done.energy[0]), min(hi, done.energy[-1])
                for key, values in per_step.items():
                    values.extend(list(done.metadata[key]))
                calibration = done.metadata.get("calibration")
            del mu, ref
            bar.update(b - a)
    finally:
        bar.close()
    h.conditions(lazy.conditions)
    if calibrate_kwargs is None:
        return h.digests(), lazy
    keep = (lazy.energy >= lo) & (lazy.energy <= hi)
    if keep.sum() < 20:
        shifts = np.asarray(per_step["energy_shifts"], dtype=float)
        raise DataError(f"after shifting by up to {np.abs(shifts).max():.1f} eV fewer than 20 "
                        "energy points are covered by every scan")
    metadata = dict(lazy.metadata)
    metadata.update({
        "energy_shifts": np.asarray(per_step["energy_shifts"], dtype=float),
        "energy_shift_measured": np.asarray(per_step["energy_shift_measured"], dtype=float),
        "energy_shift_ok": np.asarray(per_step["energy_shift_ok"], dtype=bool),
        "energy_shift_reason": [str(x or "") for x in per_step["energy_shift_reason"]],
        "calibration": calibration, "interpolated": True,
    })
    return h.digests(), StreamedCalibration(lazy.replace(metadata=metadata),
                                                   lazy.energy[keep], calibrate_kwargs)


def calibrate_onto(raw: Series, energy: np.ndarray, kwargs: dict) -> Series:
    """``raw`` (an in-memory chunk) calibrated, on the series' common grid ``energy``.

    ``calibrate`` on the chunk alone trims less (its shifts span less), and
    interpolates point by point, so the series' grid is a subset of the
    chunk's and the values there equal those of calibrating the whole series.
    """
    done, _ = calibrate(raw, **kwargs)
    cols = np.searchsorted(done.energy, energy)
    if cols.size and (cols[-1] >= done.energy.size
                      or not np.array_equal(done.energy[cols], energy)):
        raise RuntimeError("calibrated chunk grid does not contain the series grid")
    return done.replace(energy=np.array(energy), mu=done.mu[:, cols],
                        reference=done.reference[:, cols])


class StreamedCalibration:
    """A streamed series with its calibration fixed (shifts per step, common grid).

    ``take`` / ``s[i]`` return calibrated in-memory chunks; chunk tasks carry
    the raw rows plus :attr:`onto` and calibrate in the worker.
    """

    def __init__(self, source, energy, kwargs):
        self.source = source
        self.energy = np.asarray(energy, dtype=float)
        self.kwargs = dict(kwargs)
        for name in ("conditions", "element", "edge", "metadata", "has_reference"):
            setattr(self, name, getattr(source, name))

    @property
    def onto(self) -> dict:
        return {"energy": self.energy, "kwargs": self.kwargs}

    @property
    def steps(self):
        return self.source.steps

    def __len__(self):
        return len(self.source)

    def condition_columns(self):
        return self.source.condition_columns()

    def take(self, index):
        return calibrate_onto(self.source.take(index), self.energy, self.kwargs)

    def __getitem__(self, i):
        i = int(i) + (len(self) if int(i) < 0 else 0)
        return self.take(slice(i, i + 1))


def rows_of(series, rows) -> Series:
    """The rows (positions) of an in-memory or streamed series, as one in-memory Series."""
    if hasattr(series, "mu"):
        return series.take(rows)
    parts = [series.take(slice(int(r), int(r) + 1)) for r in rows]
    ref = None if parts[0].reference is None else np.concatenate([p.reference for p in parts])
    return parts[0].replace(mu=np.concatenate([p.mu for p in parts]), reference=ref,
                            conditions=pd.concat([p.conditions for p in parts], ignore_index=True))
