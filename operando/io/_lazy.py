"""A series whose spectra stay in an HDF5 file (operando layout or NeXus NXxas) until asked for.

Quick-EXAFS experiments record 10^4-10^6 spectra; 100,000 x 1,000 points of
mu alone is 0.8 GB, with the reference channel 1.6 GB, and every analysis stage
makes copies.  :class:`LazySeries` keeps only the small parts in memory (energy
axis, the per-step conditions table, metadata) and reads rows with h5py slicing
when a chunk asks for them, through a row reader per format: :class:`LayoutRows`
(``/mu`` and ``/reference`` of the operando layout) or :class:`NexusRows` (the
frames of NXxas entries sharing one energy axis, mu built as the in-memory reader
builds it).  It offers the
parts of the :class:`~operando.series.Series` interface that do not need all
spectra at once (``len``, ``steps``, ``s[i]``, ``take(slice)``,
``condition_columns()``); there is deliberately no ``mu`` attribute.

The file is opened per read, so a LazySeries pickles as its path and reader and is safe
to use from worker processes and threads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import OperandoError, ReadError
from ..series import Series

log = logging.getLogger(__name__)

__all__ = ["LazySeries", "RowSlice", "open_hdf5", "open_nexus", "is_operando_hdf5"]


def is_operando_hdf5(path) -> bool:
    """Whether ``path`` is an HDF5 file in the layout written by ``write_hdf5``."""
    from ._hdf5 import HDF5_SIGNATURE, LAYOUT_NAME

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                return False
        import h5py

        with h5py.File(path, "r") as h5:
            return h5.attrs.get("format") == LAYOUT_NAME
    except OSError:
        return False


def open_hdf5(path, *, conditions=None, element=None, edge=None) -> "LazySeries":
    """Open an operando-layout HDF5 series without reading its spectra.

    Parameters
    ----------
    path : path-like
        A file written by :func:`operando.io.write_hdf5` (or appended to in
        the same layout).
    conditions : path-like or DataFrame, optional
        Extra conditions keyed by ``step``, as for :func:`operando.io.read_series`.
    element, edge : str, optional
        Used when the file does not say (as for ``read_series``).

    Returns
    -------
    LazySeries

    Raises
    ------
    ReadError
        Not an HDF5 file in the operando layout, or malformed content.
    """
    import h5py

    from ._conditions import attach, load_conditions
    from ._hdf5 import (LAYOUT_NAME, check_numeric_dtype, layout_edge, malformed_content,
                        read_layout)

    path = Path(path)
    with malformed_content(path), h5py.File(path, "r") as h5:
        if h5.attrs.get("format") != LAYOUT_NAME:
            raise ReadError(path, "not the operando HDF5 layout",
                            "HDF5 written by operando.io.write_hdf5")
        fields = read_layout(path, _Headers(h5))
        check_numeric_dtype(path, "mu", h5["mu"].dtype)
        if "reference" in h5:
            check_numeric_dtype(path, "reference", h5["reference"].dtype)
        shape = tuple(int(x) for x in h5["mu"].shape)
        has_reference = "reference" in h5
        first = h5["mu"][: min(shape[0], 16)]
    energy = np.asarray(fields["energy"], dtype=float)
    if len(shape) != 2 or shape[1] != energy.size:
        raise ReadError(path, f"/mu has shape {shape}, /energy {energy.shape}",
                        "/mu of shape (n_steps, n_energy)")
    table = fields["conditions"]
    extra = load_conditions(conditions)
    if extra is not None:
        table = attach(table, extra, "step")
    if len(table) != shape[0]:
        raise ReadError(path, f"/conditions has {len(table)} rows but /mu {shape[0]}",
                        "one conditions row per spectrum")
    el, ed = layout_edge(path, fields, first, element, edge)
    metadata = dict(fields["metadata"])
    metadata.update(source=str(path), format="hdf5", streamed=True)
    return LazySeries(path, energy=energy, conditions=table, element=el, edge=ed,
                      metadata=metadata, reader=LayoutRows(path, has_reference))


class _Headers:
    """The HDF5 file as ``read_layout`` sees it, minus the large datasets.

    Lets the layout reader decode energy, conditions and metadata (one place
    for that logic) while ``/mu`` and ``/reference`` stay on disk.
    """

    _LARGE = ("mu", "reference")

    def __init__(self, h5):
        self._h5 = h5
        self.attrs = h5.attrs

    def __contains__(self, name):
        return name in self._h5

    def __getitem__(self, name):
        if name in self._LARGE:
            return _NotRead()
        return self._h5[name]


class _NotRead:
    def __getitem__(self, key):
        return None


class LazySeries:
    """An HDF5 series read row-block by row-block.

    Attributes
    ----------
    path : Path
    energy : (n_e,) array, eV
    conditions : DataFrame
        ``step``, ``file`` and the condition columns, one row per spectrum.
    element, edge : str or None
    metadata : dict
        As :func:`operando.io.read_series` gives it, with ``streamed`` True; ``source``
        is the path and ``format`` ``"hdf5"`` or ``"nexus"``.
    reader : LayoutRows or NexusRows
        Reads rows ``(mu, reference)`` of the file.
    has_reference : bool
        Whether the file holds a reference channel.
    shape : (int, int)
        ``(n_steps, n_energy)``.

    Notes
    -----
    ``read_rows(a, b)`` and ``rows(a, b).load()`` are the only ways to the spectra; every other
    accessor (``s[i]``, ``take``) goes through them, so a bound on ``b - a`` is a
    bound on the memory a reader of this series uses.
    """

    def __init__(self, path, *, energy, conditions, element, edge, metadata, reader):
        self.path = Path(path)
        self.energy = energy
        self.conditions = conditions.reset_index(drop=True)
        self.element, self.edge = element, edge
        self.metadata = metadata
        self.reader = reader
        self.has_reference = reader.has_reference
        self.shape = (len(self.conditions), int(energy.size))

    # ------------------------------------------------------------ Series-like
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def steps(self) -> np.ndarray:
        return self.conditions["step"].to_numpy()

    def condition_columns(self) -> list[str]:
        return [c for c in self.conditions.columns if c not in ("step", "file")]

    def read_rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(mu, reference)`` rows ``start:stop`` (reference None when absent)."""
        return self.reader.read(int(start), int(stop))

    def take(self, index) -> Series:
        """Rows ``index`` (a slice with step 1) as an in-memory :class:`Series`."""
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("LazySeries.take accepts a contiguous slice only")
        start, stop, _ = index.indices(len(self))
        return self.rows(start, stop).load()

    def rows(self, start: int, stop: int) -> "RowSlice":
        """Rows ``start:stop`` as a :class:`RowSlice`: read where it is loaded."""
        start, stop, _ = slice(start, stop).indices(len(self))
        stop = max(start, stop)
        metadata = dict(self.metadata)
        times = metadata.get("scan_times")
        if isinstance(times, list) and len(times) == len(self):  # one per step, as Series.take
            metadata["scan_times"] = times[start:stop]
        return RowSlice(path=self.path, start=start, stop=stop, energy=self.energy,
                        conditions=self.conditions.iloc[start:stop].reset_index(drop=True),
                        element=self.element, edge=self.edge, metadata=metadata,
                        reader=self.reader)

    def __getitem__(self, i) -> Series:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"step index {i} out of range for {len(self)} spectra")
        return self.take(slice(i, i + 1))

    def replace(self, **changes) -> "LazySeries":
        """A copy with ``metadata`` replaced (the spectra stay where they are)."""
        import copy

        unknown = set(changes) - {"metadata"}
        if unknown:
            raise TypeError(f"LazySeries.replace only changes metadata, not {sorted(unknown)}")
        new = copy.copy(self)
        new.metadata = dict(changes["metadata"])
        return new

    def iter_rows(self, size: int):
        """``(start, stop, mu, reference)`` for consecutive blocks of ``size`` rows."""
        for start in range(0, len(self), size):
            stop = min(start + size, len(self))
            yield (start, stop, *self.read_rows(start, stop))

    def __repr__(self) -> str:
        return (f"<LazySeries {self.path.name}: {self.shape[0]} spectra x {self.shape[1]} points, "
                f"{self.element} {self.edge}, reference={'yes' if self.has_reference else 'no'}>")


@dataclass(frozen=True, eq=False)
class RowSlice:
    """Rows ``start:stop`` of an HDF5 series, read by :meth:`load` wherever it runs.

    What a chunk task carries to a worker instead of the spectra: the path, the bounds,
    the rows' conditions, the energy grid and metadata.  A worker (a process, a dask
    worker on another machine with the file at the same path) reads its own slice, so
    no spectra pass through the scheduler.
    """

    path: Path
    start: int
    stop: int
    energy: np.ndarray
    conditions: pd.DataFrame
    element: str | None
    edge: str | None
    metadata: dict
    reader: object  # LayoutRows or NexusRows: reads the rows where load() runs

    def __len__(self) -> int:
        return self.stop - self.start

    def replace(self, **changes) -> "RowSlice":
        return dataclasses.replace(self, **changes)

    def load(self) -> Series:
        """The rows as an in-memory :class:`~operando.series.Series`."""
        try:
            mu, ref = self.reader.read(self.start, self.stop)
        except OSError as exc:
            raise ReadError(self.path, f"rows {self.start}-{self.stop} cannot be read here "
                                       f"({exc})", "the file at the same path on every worker"
                            ) from None
        return Series(energy=self.energy, mu=mu, reference=ref, conditions=self.conditions,
                      element=self.element, edge=self.edge, metadata=dict(self.metadata))


@dataclass(frozen=True)
class LayoutRows:
    """Reads rows of an operando-layout file: ``/mu`` and ``/reference``."""

    path: Path
    has_reference: bool

    def read(self, start: int, stop: int):
        """``(mu, reference)`` rows ``start:stop`` (reference None when absent): the one
        place that reads ``/mu``."""
        import h5py

        with h5py.File(self.path, "r") as h5:
            mu = np.asarray(h5["mu"][start:stop], dtype=float)
            ref = np.asarray(h5["reference"][start:stop], dtype=float) \
                if self.has_reference else None
        return mu, ref


@dataclass(frozen=True)
class NexusRows:
    """Reads rows of NeXus NXxas entries sharing one energy axis, as the in-memory
    reader builds them: mu by the entry's mode, columns in cleaned energy order."""

    path: Path
    entries: tuple  # (entry name, its first row, describe_nxxas's datasets, mu_from and n)
    order: np.ndarray  # file energy positions of the cleaned (increasing) grid
    has_reference: bool = False

    def read(self, start: int, stop: int):
        """``(mu, None)`` rows ``start:stop`` across the entries."""
        import h5py

        from ._hdf5 import nxxas_rows

        parts = []
        with h5py.File(self.path, "r") as h5:
            for name, first, described in self.entries:
                a, b = max(start, first), min(stop, first + described["n"])
                if a < b:
                    parts.append(nxxas_rows(h5[name], described, a - first, b - first))
        mu = np.concatenate(parts) if parts else np.empty((0, self.order.size))
        # C order, as the in-memory rows: a column-indexed copy may not be, and reductions
        # over another memory order round differently
        return np.ascontiguousarray(mu[:, self.order]), None


def open_nexus(path, *, conditions=None, element=None, edge=None) -> "LazySeries | None":
    """A NeXus NXxas file opened without reading its frames, or None when it must be
    read in memory by :func:`operando.io.read_series`.

    Streamed: every NXxas entry (one with 2-D frames, or several) has the same energy
    axis with distinct energies, no element/edge selection skips an entry, and the
    element and edge are known from the file or the arguments.  Anything else (other
    axes, a guess of the edge from the data, a malformed entry) returns None so that
    the in-memory reader handles it and its messages stay the same.
    """
    import h5py

    from ._conditions import attach, load_conditions
    from ._hdf5 import describe_nxxas, nxxas_entries
    from ._scan import Scan, clean_energy, resolve_edge
    from ._select import select_scans
    from ..series import default_conditions

    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            described = [describe_nxxas(path, h5[name]) for name in nxxas_entries(h5)]
    except (OperandoError, KeyError, ValueError, TypeError, OSError):
        return None
    if not described or any(not np.array_equal(d["energy"], described[0]["energy"])
                            for d in described):
        return None
    raw = described[0]["energy"]
    # duplicate energies are kept or refused by their rows' values: in memory
    if not np.all(np.isfinite(raw)) or np.unique(raw).size != raw.size:
        return None
    try:
        energy, order = clean_energy(path.name, raw, np.arange(raw.size)[:, None])
        # the entries as select_scans sees them (element, edge, energy range; no spectra)
        entry_scans = [Scan(file=d["name"], energy=energy, mu=energy, element=d["element"],
                            edge=d["edge"]) for d in described]
        _, skipped = select_scans(path, entry_scans, element, edge)
    except OperandoError:
        return None
    head = described[0]
    if skipped or not ((head["element"] or element) and (head["edge"] or edge)):
        return None
    files, labels, times, first = [], [], [], 0
    entries = []
    for d in described:
        rows = {k: d[k] for k in ("datasets", "mu_from", "n")}  # what a worker needs
        entries.append((d["name"], first, rows))
        first += d["n"]
        for i in range(d["n"]):
            files.append(f"{path.name}#{d['name']}" + (f"[{i}]" if d["n"] > 1 else ""))
            labels.append(d["name"])
            times.append(d["times"][i])
    reader = NexusRows(path, tuple(entries), order[:, 0])
    try:
        el, ed = resolve_edge(path, energy, reader.read(0, 1)[0],
                              Scan(file=files[0], energy=energy, mu=energy,
                                   element=head["element"], edge=head["edge"]), element, edge)
    except OperandoError:
        return None
    table = attach(default_conditions(len(files), files), load_conditions(conditions), "step",
                   labels=labels)
    kinds = sorted({d["mu_from"] for d in described})
    formulas = sorted({d["fields"].get("mu_formula") for d in described} - {None})
    metadata = {"source": str(path), "format": "nexus",
                "mu_from": kinds[0] if len(kinds) == 1 else kinds, "interpolated": False,
                "skipped": [], "header": dict(head["fields"]), "scan_times": times}
    if formulas:
        metadata["mu_formula"] = formulas[0] if len(formulas) == 1 else formulas
    metadata["streamed"] = True
    return LazySeries(path, energy=energy, conditions=table, element=el, edge=ed,
                      metadata=metadata, reader=reader)
