"""White line of a normalised series: height, position, area and the half-step edge."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._util.blas import single_threaded_blas
from ..errors import ConfigError
from ..options import WhiteLineOptions
from ..schema import WHITE_LINE_COLUMNS
from .e0 import parabola_vertex
from .result import NormalizedSeries


# ----------------------------------------------------------------------- white line
def white_line(normalized: NormalizedSeries, *, window: tuple[float, float] = WhiteLineOptions.window
               ) -> pd.DataFrame:
    """White-line descriptors of every step, computed on ``norm`` in one batch.

    Parameters
    ----------
    normalized : NormalizedSeries
    window : (float, float)
        Energy window relative to each step's E0, eV (inclusive).

    Returns
    -------
    DataFrame
        One row per step:

        ``step``
        ``wl_height``
            Maximum of ``norm`` within the window, refined by a parabola through
            the maximum point and its two neighbours (no refinement when the
            maximum is on the window's edge); unitless (edge step = 1).
        ``wl_position``
            Energy of that maximum, eV (parabola vertex).
        ``wl_area``
            Trapezoid integral over the window's grid points of
            ``max(norm - 1, 0)`` (the part of the white line above the edge
            step, clipped at zero point by point before integrating), eV.
        ``edge_position``
            Energy where ``norm`` first crosses 0.5 upwards (last point below,
            next point at or above, searched within the window), linearly
            interpolated, eV; NaN if ``norm`` never crosses 0.5 in the window.

        All NaN for steps that are not ok or whose window holds < 3 points.
    """
    if not isinstance(normalized, NormalizedSeries):
        raise ConfigError(
            f"white_line needs a NormalizedSeries (from normalize), got {type(normalized).__name__}"
        )
    w0, w1 = (float(v) for v in window)
    if not w1 > w0:
        raise ConfigError(f"window must be (low, high) with low < high in eV, got {window!r}")
    energy = normalized.series.energy
    norm = normalized.norm
    n = norm.shape[0]
    res = {k: np.full(n, np.nan) for k in WHITE_LINE_COLUMNS}
    ok = np.asarray(normalized.ok, dtype=bool) & np.isfinite(normalized.e0)
    e0 = normalized.e0
    # rows sharing E0 share the window: one slice per distinct E0
    for val in np.unique(e0[ok]):
        rows = np.flatnonzero(ok & (e0 == val))
        lo = int(np.searchsorted(energy, val + w0, side="left"))
        hi = int(np.searchsorted(energy, val + w1, side="right"))
        if hi - lo < 3:
            continue
        with single_threaded_blas():
            _white_line_block(energy, norm[rows], lo, hi, rows, res)
    return pd.DataFrame({"step": normalized.series.steps, **res})


def _white_line_block(energy, y, lo, hi, rows, res):
    ew = energy[lo:hi]
    yw = y[:, lo:hi]
    imax = np.argmax(yw, axis=1)
    at_edge = (imax == 0) | (imax == ew.size - 1)
    xv, yv = parabola_vertex(ew, yw, imax)
    xv[at_edge] = ew[imax[at_edge]]
    yv[at_edge] = yw[at_edge, imax[at_edge]]
    res["wl_height"][rows] = yv
    res["wl_position"][rows] = xv
    excess = np.clip(yw - 1.0, 0.0, None)
    res["wl_area"][rows] = 0.5 * ((excess[:, 1:] + excess[:, :-1]) @ np.diff(ew))
    below = yw < 0.5
    cross = below[:, :-1] & ~below[:, 1:]
    has = cross.any(axis=1)
    first = np.argmax(cross, axis=1)
    r = np.arange(yw.shape[0])
    ya, yb = yw[r, first], yw[r, first + 1]
    xa, xb = ew[first], ew[first + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = xa + (0.5 - ya) * (xb - xa) / (yb - ya)
    res["edge_position"][rows] = np.where(has, pos, np.nan)
