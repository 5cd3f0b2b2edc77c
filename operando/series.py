"""The :class:`Series`: spectra on one energy grid plus the condition of every step.

A series is what every reader returns and every stage consumes.  It is
immutable in spirit: methods return new objects and never change the arrays
of the one they are called on.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ._util.result import Result
from .errors import DataError


@dataclass(frozen=True, eq=False)
class Series(Result):
    """A time/condition series of XAS spectra on one common energy grid.

    Parameters
    ----------
    energy : (n_energy,) array
        Strictly increasing photon energy in eV.
    mu : (n_steps, n_energy) array
        Absorption, one row per spectrum, in input order.  A row may hold
        non-finite values (a dead frame); the stages flag such a step rather
        than failing the series.
    conditions : DataFrame
        One row per step with at least ``step`` (int, 0-based input order) and
        ``file`` (source file, with ``#name`` for one group of a multi-group
        file).  Optional ``potential_V``, ``gas``, ``temperature_K``,
        ``time_s`` and any user columns.
    element, edge : str or None
        Absorbing element symbol (``"Pt"``) and edge (``"L3"``).
    reference : (n_steps, n_energy) array or None
        Reference-channel mu (usually a metal foil between it and iref).
    metadata : dict
        Source metadata: ``source`` (path), ``format``, ``mu_from``
        (``"transmission"``, ``"fluorescence"``, ``"mu"``),
        ``interpolated`` (bool: whether any scan was interpolated onto the
        common grid) and reader-specific headers.
    """

    energy: np.ndarray
    mu: np.ndarray
    conditions: pd.DataFrame
    element: str | None = None
    edge: str | None = None
    reference: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        energy = np.asarray(self.energy, dtype=float)
        mu = np.atleast_2d(np.asarray(self.mu, dtype=float))
        if energy.ndim != 1 or energy.size < 2:
            raise DataError(f"energy must be a 1-D array of at least 2 points, got shape {energy.shape}")
        if not np.all(np.isfinite(energy)):
            raise DataError("energy holds non-finite values")
        if np.any(np.diff(energy) <= 0):
            raise DataError("energy must be strictly increasing")
        if mu.ndim != 2 or mu.shape[1] != energy.size:
            raise DataError(
                f"mu must have shape (n_steps, {energy.size}) to match energy, got {mu.shape}"
            )
        conditions = pd.DataFrame(self.conditions).reset_index(drop=True)
        if len(conditions) != mu.shape[0]:
            raise DataError(
                f"conditions table has {len(conditions)} rows but there are {mu.shape[0]} spectra"
            )
        for column in ("step", "file"):
            if column not in conditions.columns:
                raise DataError(f"conditions table needs a '{column}' column")
        reference = self.reference
        if reference is not None:
            reference = np.atleast_2d(np.asarray(reference, dtype=float))
            if reference.shape != mu.shape:
                raise DataError(
                    f"reference channel shape {reference.shape} does not match mu {mu.shape}"
                )
        object.__setattr__(self, "energy", energy)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "conditions", conditions)
        object.__setattr__(self, "reference", reference)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return self.mu.shape[0]

    @property
    def n_steps(self) -> int:
        return self.mu.shape[0]

    @property
    def steps(self) -> np.ndarray:
        """The ``step`` numbers, in order."""
        return self.conditions["step"].to_numpy()

    @property
    def files(self) -> list[str]:
        return [str(f) for f in self.conditions["file"]]

    def __repr__(self) -> str:
        label = f"{self.element or '?'} {self.edge or '?'}"
        cols = self.condition_columns()
        return (
            f"<Series {label}: {self.n_steps} spectra x {self.energy.size} points, "
            f"{self.energy[0]:.1f}-{self.energy[-1]:.1f} eV, conditions {cols}>"
        )

    def to_dataframe(self) -> pd.DataFrame:
        """The conditions table: ``step``, ``file`` and the condition columns."""
        return self.conditions.copy()

    def title(self) -> str:
        return self.__repr__().strip("<>")

    def _repr_html_(self) -> str:
        from ._util.reprs import series_html

        return series_html(self)

    def to_xarray(self):
        """An ``xarray.Dataset``: ``mu`` (and ``reference``) over ``(step, energy)``, the
        conditions as coordinates along ``step``, element/edge/source as attributes
        (needs xarray: ``pip install "operando[notebook]"``)."""
        from ._util.xr import series_dataset

        return series_dataset(self)

    @classmethod
    def from_xarray(cls, obj) -> "Series":
        """A Series from :meth:`to_xarray`'s Dataset (or any of a NormalizedSeries), or a
        DataArray of mu with dims ``(step, energy)``: conditions from the coordinates
        along ``step``."""
        from ._util.xr import series_fields

        return cls(**series_fields(obj))

    def replace(self, **changes: Any) -> "Series":
        """A copy with some fields replaced (arrays are not copied)."""
        return replace(self, **changes)

    def take(self, indices: Iterable[int] | np.ndarray | slice) -> "Series":
        """The sub-series of the given row positions (not ``step`` labels)."""
        if isinstance(indices, slice):
            idx = np.arange(self.n_steps)[indices]
        else:
            idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
        idx = idx.astype(int)
        metadata = self.metadata
        times = metadata.get("scan_times")
        if isinstance(times, list) and len(times) == self.n_steps:  # one per step: follow it
            metadata = {**metadata, "scan_times": [times[i] for i in idx]}
        return replace(
            self,
            mu=self.mu[idx],
            conditions=self.conditions.iloc[idx].reset_index(drop=True),
            reference=None if self.reference is None else self.reference[idx],
            metadata=metadata,
        )

    def __getitem__(self, item) -> "Series":
        if isinstance(item, numbers.Integral):
            return self.take([int(item)])
        return self.take(item)

    # --------------------------------------------------------------- selection
    def mask(self, **conditions: Any) -> np.ndarray:
        """Boolean mask of the steps matching every ``column=value`` given.

        A value may be a scalar (equality; case-insensitive for text), a list
        or set (membership), a ``(low, high)`` tuple (inclusive range) or a
        callable taking the column and returning a boolean array.
        """
        keep = np.ones(self.n_steps, dtype=bool)
        for column, value in conditions.items():
            if column not in self.conditions.columns:
                raise DataError(
                    f"no condition column '{column}'; columns are {list(self.conditions.columns)}"
                )
            col = self.conditions[column]
            if callable(value):
                keep &= np.asarray(value(col), dtype=bool)
            elif isinstance(value, tuple) and len(value) == 2:
                numeric = pd.to_numeric(col, errors="coerce")
                low, high = value
                # a label such as 'OCP' in a numeric column never falls in a range
                sel = numeric.notna().to_numpy().copy()
                if low is not None:
                    sel &= (numeric >= low).to_numpy()
                if high is not None:
                    sel &= (numeric <= high).to_numpy()
                keep &= sel
            else:  # one value, or any of a list or set
                options = value if isinstance(value, (list, set, frozenset)) else [value]
                keep &= np.array([_same(v, options) for v in col])
        return keep

    def where(self, **conditions: Any) -> "Series":
        """Steps whose conditions match, e.g. ``series.where(gas="H2")``."""
        return self.take(self.mask(**conditions))

    def between(self, **ranges: tuple[float | None, float | None]) -> "Series":
        """Steps with numeric conditions in inclusive ranges,
        e.g. ``series.between(potential_V=(-1.0, -0.2))``.  Labels such as
        ``OCP`` in a numeric column are excluded."""
        for column, value in ranges.items():
            if not (isinstance(value, tuple) and len(value) == 2):
                raise DataError(f"between({column}=...) needs a (low, high) tuple, got {value!r}")
        return self.take(self.mask(**ranges))

    def condition_columns(self) -> list[str]:
        """Condition columns other than ``step`` and ``file``."""
        return [c for c in self.conditions.columns if c not in ("step", "file")]


def _same(value: Any, options: Iterable[Any]) -> bool:
    for option in options:
        if isinstance(value, str) or isinstance(option, str):
            if str(value).strip().lower() == str(option).strip().lower():
                return True
        else:
            try:
                if value == option or (np.isnan(value) and np.isnan(option)):
                    return True
            except TypeError:
                continue
    return False


def default_conditions(n: int, files: Iterable[str] | None = None) -> pd.DataFrame:
    """A minimal conditions table: ``step`` 0..n-1 and ``file``."""
    files = list(files) if files is not None else [""] * n
    return pd.DataFrame({"step": np.arange(n, dtype=int), "file": files})
