"""A series whose spectra stay in an operando-layout HDF5 file until asked for.

Quick-EXAFS experiments record 10^4-10^6 spectra; 100,000 x 1,000 points of
mu alone is 0.8 GB, with the reference channel 1.6 GB, and every analysis stage
makes copies.  :class:`LazySeries` keeps only the small parts in memory (energy
axis, the per-step conditions table, metadata) and reads rows of ``/mu`` and
``/reference`` with h5py slicing when a chunk asks for them.  It offers the
parts of the :class:`~operando.series.Series` interface that do not need all
spectra at once (``len``, ``steps``, ``s[i]``, ``take(slice)``,
``condition_columns()``); there is deliberately no ``mu`` attribute.

The file is opened per read, so a LazySeries pickles as its path and is safe
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

__all__ = ["LazySeries", "open_hdf5", "is_operando_hdf5"]


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
    return LazySeries(path, conditions=conditions, element=element, edge=edge)


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
    """An operando HDF5 series read row-block by row-block.

    Attributes
    ----------
    path : Path
    energy : (n_e,) array, eV
    conditions : DataFrame
        ``step``, ``file`` and the condition columns, one row per spectrum.
    element, edge : str or None
    metadata : dict
        From the file; ``source`` is the path and ``format`` ``"hdf5"``.
    has_reference : bool
        Whether the file holds a reference channel.
    shape : (int, int)
        ``(n_steps, n_energy)`` of ``/mu``.

    Notes
    -----
    ``read_rows(a, b)`` and ``rows(a, b).load()`` are the only ways to ``/mu``; every other
    accessor (``s[i]``, ``take``) goes through them, so a bound on ``b - a`` is a
    bound on the memory a reader of this series uses.
    """

    def __init__(self, path, *, conditions=None, element=None, edge=None):
        import h5py

        from ._conditions import attach, load_conditions
        from ._hdf5 import LAYOUT_NAME, check_numeric_dtype, read_layout

        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as h5:
                if h5.attrs.get("format") != LAYOUT_NAME:
                    raise ReadError(self.path, "not the operando HDF5 layout",
                                    "HDF5 written by operando.io.write_hdf5")
                fields = read_layout(self.path, _Headers(h5))
                check_numeric_dtype(self.path, "mu", h5["mu"].dtype)
                if "reference" in h5:
                    check_numeric_dtype(self.path, "reference", h5["reference"].dtype)
                self.shape = tuple(int(x) for x in h5["mu"].shape)
                self.has_reference = "reference" in h5
                first = h5["mu"][: min(self.shape[0], 16)]
        except OperandoError:
            raise
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise ReadError(self.path, f"malformed HDF5 content ({type(exc).__name__}: {exc})",
                            "the layout documented in operando.io") from None
        self.energy = np.asarray(fields["energy"], dtype=float)
        if len(self.shape) != 2 or self.shape[1] != self.energy.size:
            raise ReadError(self.path, f"/mu has shape {self.shape}, /energy {self.energy.shape}",
                            "/mu of shape (n_steps, n_energy)")
        table = fields["conditions"]
        extra = load_conditions(conditions)
        if extra is not None:
            table = attach(table, extra, "step")
        if len(table) != self.shape[0]:
            raise ReadError(self.path, f"/conditions has {len(table)} rows but /mu {self.shape[0]}",
                            "one conditions row per spectrum")
        self.conditions = table.reset_index(drop=True)
        el, ed = fields["element"], fields["edge"]
        if el is None or ed is None or element or edge:
            from ._scan import Scan, resolve_edge

            el, ed = resolve_edge(self.path, self.energy, first,
                                  Scan(file=self.path.name, energy=self.energy, mu=first[0],
                                       element=el, edge=ed), element, edge)
        self.element, self.edge = el, ed
        self.metadata = dict(fields["metadata"])
        self.metadata.update(source=str(self.path), format="hdf5", streamed=True)

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
        return _read_block(self.path, int(start), int(stop), self.has_reference)

    def take(self, index) -> Series:
        """Rows ``index`` (a slice with step 1) as an in-memory :class:`Series`."""
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("LazySeries.take accepts a contiguous slice only")
        start, stop, _ = index.indices(len(self))
        return self.rows(start, stop).load()

    def rows(self, start: int, stop: int) -> "RowSlice":
        """Rows ``start:stop`` as a :class:`RowSlice`: read where it is loaded."""
        start, stop, _ = slice(start, stop).indices(len(self))
        return RowSlice(path=self.path, start=start, stop=max(start, stop), energy=self.energy,
                        conditions=self.conditions.iloc[start:max(start, stop)].reset_index(drop=True),
                        element=self.element, edge=self.edge, metadata=dict(self.metadata),
                        has_reference=self.has_reference)

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
    """Rows ``start:stop`` of an operando HDF5 file, read by :meth:`load` wherever it runs.

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
    has_reference: bool

    def __len__(self) -> int:
        return self.stop - self.start

    def replace(self, **changes) -> "RowSlice":
        return dataclasses.replace(self, **changes)

    def load(self) -> Series:
        """The rows as an in-memory :class:`~operando.series.Series`."""
        try:
            mu, ref = _read_block(self.path, self.start, self.stop, self.has_reference)
        except OSError as exc:
            raise ReadError(self.path, f"rows {self.start}-{self.stop} cannot be read here "
                                       f"({exc})", "the file at the same path on every worker"
                            ) from None
        return Series(energy=self.energy, mu=mu, reference=ref, conditions=self.conditions,
                      element=self.element, edge=self.edge, metadata=dict(self.metadata))


def _read_block(path, start: int, stop: int, has_reference: bool):
    """``(mu, reference)`` rows ``start:stop`` of the file (reference None when absent):
    the one place that reads ``/mu``."""
    import h5py

    with h5py.File(path, "r") as h5:
        mu = np.asarray(h5["mu"][start:stop], dtype=float)
        ref = np.asarray(h5["reference"][start:stop], dtype=float) if has_reference else None
    return mu, ref
