"""The fitted quantity (normalised mu, flattened mu or its derivative) and the fit windows."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from operando.errors import ConfigError, DataError
from operando.xanes import NormalizedSeries

#: Accepted ``space`` values: Larch/Athena's normalised mu(E), flattened mu(E),
#: and the energy derivative of normalised mu(E) (Larix "dnormde").
SPACES = ("norm", "flat", "dnormde")


def check_space(space: str) -> str:
    if space not in SPACES:
        raise ConfigError(f"space must be one of {SPACES}, got {space!r}")
    return space


def check_erange(erange) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in erange)
    except (TypeError, ValueError):
        raise ConfigError(f"erange must be (low, high) in eV relative to E0, got {erange!r}") \
            from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"erange must be (low, high) with low < high, eV relative to E0, "
                          f"got {erange!r}")
    return lo, hi


def window(energy: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
    """Index range ``[i0, i1)`` of the grid points with ``lo <= E <= hi``."""
    i0 = int(np.searchsorted(energy, lo - 1e-9, side="left"))
    i1 = int(np.searchsorted(energy, hi + 1e-9, side="right"))
    return i0, i1


def span(energy: np.ndarray, i0: int, i1: int, space: str) -> tuple[float, float]:
    """Lowest and highest energy the fitted quantity on ``i0:i1`` reads (``"dnormde"``
    differentiates from one point beyond the window)."""
    a, b = (max(i0 - 1, 0), min(i1, energy.size - 1)) if space == "dnormde" else (i0, i1 - 1)
    return float(energy[a]), float(energy[b])


def in_space(energy: np.ndarray, values: np.ndarray, space: str, i0: int, i1: int) -> np.ndarray:
    """``values`` (..., n_e) on the full grid -> the fitted quantity on points ``i0:i1``.

    For ``"dnormde"`` the derivative is numpy's ``gradient`` on the full grid
    (central differences inside, one-sided at the grid ends), evaluated from a
    one-point margin so a window gives the same numbers as the full array.
    """
    if space != "dnormde":
        return values[..., i0:i1]
    a, b = max(i0 - 1, 0), min(i1 + 1, energy.size)
    if b - a < 2:
        raise DataError("the fit window holds fewer than 2 points: cannot differentiate")
    grad = np.gradient(values[..., a:b], energy[a:b], axis=-1)
    return grad[..., i0 - a: i0 - a + (i1 - i0)]


class SeriesMatrix(NamedTuple):
    """What PCA and MCR decompose (:func:`series_matrix`)."""

    rows: np.ndarray
    e0: float
    space: str
    lo: float
    hi: float
    i0: int
    i1: int
    data: np.ndarray


def series_matrix(normalized, steps, space, erange, what: str, *,
                  absolute: bool = False) -> SeriesMatrix:
    """The normalised rows among ``steps`` (all when None; at least 3, else
    :class:`DataError` naming ``what``, PCA or MCR) in the checked ``space`` on the grid
    window of the checked ``erange`` (relative to their median E0 unless ``absolute``;
    at least 5 points, else :class:`DataError`)."""
    if not isinstance(normalized, NormalizedSeries):
        raise ConfigError(f"{what.lower()} needs a NormalizedSeries, got {type(normalized).__name__}")
    space = check_space(space)
    lo, hi = check_erange(erange)
    sel = np.ones(len(normalized), bool) if steps is None else \
        np.isin(normalized.series.steps, np.asarray(steps))
    rows = np.flatnonzero(sel & normalized.ok)
    if rows.size < 3:
        raise DataError(f"{what} needs at least 3 normalised steps, {rows.size} selected")
    e0 = float(np.median(normalized.e0[rows]))
    energy = normalized.energy
    emin, emax = (lo, hi) if absolute else (e0 + lo, e0 + hi)
    i0, i1 = window(energy, emin, emax)
    if i1 - i0 < 5:
        raise DataError(f"energy range {emin:.1f}-{emax:.1f} eV holds {i1 - i0} grid points")
    source = normalized.flat if space == "flat" else normalized.norm
    data = in_space(energy, source[rows], space, i0, i1)
    return SeriesMatrix(rows, e0, space, lo, hi, i0, i1, data)
