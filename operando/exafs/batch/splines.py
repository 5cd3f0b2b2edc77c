"""Cubic splines without scipy: FITPACK's not-a-knot knots, the B-spline basis and
the s=0 interpolating spline (bit-identical knots and basis, tested against
scipy.interpolate), shared by the batched AUTOBK and the FEFF path tables.

Small numpy versions of the scipy.interpolate calls the engine needs: importing
scipy.interpolate in every worker costs more than building an operator.
tests/exafs/test_batch.py checks them against scipy (agreement ~1e-15).
"""

from __future__ import annotations

import numpy as np


def not_a_knot_knots(x: np.ndarray) -> np.ndarray:
    """Knots of the cubic interpolating spline through ``x`` (strictly increasing).

    The knot vector ``splrep(x, y, k=3, s=0)`` returns (FITPACK) and
    ``make_interp_spline(x, y, k=3)`` uses (not-a-knot): ``x[0]`` four times,
    ``x[2:-2]``, ``x[-1]`` four times -- ``len(x) + 4`` knots, ``len(x)``
    coefficients.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or len(x) < 4:
        raise ValueError(f"cubic interpolation needs at least 4 points; got {len(x)}")
    if not np.all(np.diff(x) > 0):
        raise ValueError("Expect x to be a 1D strictly increasing sequence.")
    return np.concatenate([np.full(4, x[0]), x[2:-2], np.full(4, x[-1])])


def bspline_basis(t: np.ndarray, x: np.ndarray, k: int = 3) -> np.ndarray:
    """Values of the ``len(t) - k - 1`` B-splines of degree ``k`` on knots ``t`` at ``x``.

    Column ``j`` is ``splev(x, (t, e_j, k))`` (``e_j`` the j-th unit coefficient
    vector), extrapolated past the base interval ``[t[k], t[-k-1]]`` with the
    end polynomial pieces as splev/BSpline do.  Cox-de Boor recursion
    (FITPACK's ``fpbspl``), vectorised over ``x``.
    """
    t = np.asarray(t, dtype=float)
    x = np.asarray(x, dtype=float)
    n_coef = len(t) - k - 1
    # interval l with t[l] <= x < t[l+1], restricted to the base interval
    ell = np.searchsorted(t, x, side="right") - 1
    ell = np.clip(ell, k, n_coef - 1)
    h = np.zeros((k + 1, len(x)))
    h[0] = 1.0
    for j in range(1, k + 1):
        hh = h[:j].copy()
        h[0] = 0.0
        for i in range(1, j + 1):
            xb = t[ell + i]
            xa = t[ell + i - j]
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.where(xb != xa, hh[i - 1] / (xb - xa), 0.0)
            h[i - 1] += w * (xb - x)
            h[i] = w * (x - xa)
    out = np.zeros((len(x), n_coef))
    rows = np.arange(len(x))
    for i in range(k + 1):
        out[rows, ell - k + i] = h[i]
    return out


def cubic_interp_matrix(x: np.ndarray, xout: np.ndarray) -> np.ndarray:
    """Matrix ``M`` (len(xout), len(x)) with ``M @ y`` = not-a-knot cubic spline of y at xout.

    ``M`` is ``make_interp_spline(x, np.eye(len(x)), k=3)(xout)`` (extrapolating),
    i.e. the s=0 ``UnivariateSpline``/``splrep`` interpolant applied to any ``y``:
    the basis at ``xout`` times the inverse of the collocation matrix at ``x``.
    """
    t = not_a_knot_knots(x)
    colloc = bspline_basis(t, x)                    # (n, n), banded
    b_out = bspline_basis(t, np.asarray(xout, dtype=float))
    return np.linalg.solve(colloc.T, b_out.T).T


class NotAKnotSpline:
    """Cubic interpolating spline through ``(x, y)``: ``UnivariateSpline(x, y, s=0)``.

    FITPACK's s=0 cubic (``splrep``/``UnivariateSpline``) is the not-a-knot
    interpolant; ``spl(q, nu)`` gives its value or ``nu``-th derivative at ``q``
    (extrapolating with the end pieces, as splev does), without scipy.
    """

    def __init__(self, x, y):
        x = np.asarray(x, dtype=float)
        self.t = not_a_knot_knots(x)
        self.c = np.linalg.solve(bspline_basis(self.t, x), np.asarray(y, dtype=float))

    def __call__(self, q, nu: int = 0):
        t, c, k = self.t, self.c, 3
        if not 0 <= nu <= k:
            raise ValueError(f"0 <= nu <= 3 must hold; got nu={nu}")
        for _ in range(nu):   # derivative: degree k - 1 on t[1:-1] (de Boor)
            c = k * (c[1:] - c[:-1]) / (t[k + 1:-1] - t[1:-k - 1])
            t, k = t[1:-1], k - 1
        q = np.asarray(q, dtype=float)
        return (bspline_basis(t, q.ravel(), k) @ c).reshape(q.shape)
