"""Exact, batched least squares with bounded weights and an optional sum-to-one constraint.

Every spectrum ``y`` of a series is fitted with the same basis ``A`` (m points x
k references): minimise ``||A w - y||^2`` subject to ``lower <= w_j <= upper``
and, optionally, ``sum(w) = 1``.  The problem depends on the spectrum only
through ``b = A^T y``; the Gram matrix ``G = A^T A`` is shared.

For few references the solution is found exactly by enumerating active sets:
each weight is either free, at its lower bound or at its upper bound (3^k
patterns).  For one pattern the free weights solve an equality-constrained
linear system (the KKT system of the face), so the candidate weights are an
affine function of ``b``: ``w = b @ P.T + q`` with ``P, q`` computed once per
pattern.  The optimum of a convex quadratic over a box (intersected with the
sum-to-one plane) lies in the relative interior of one face, where it equals
that face's unconstrained optimum; so the feasible candidate with the lowest
objective is the global optimum.  Batched over all spectra this is a handful of
(n, k) matrix products per pattern.  :func:`kkt_violation` checks the
optimality conditions of a solution independently (used by the tests).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..options import ComponentOptions

#: Largest number of weights solved by enumeration (3^k faces); above it an
#: iterative per-spectrum solver (scipy SLSQP) is used.
MAX_ENUMERATED = 6
_FEASIBLE_TOL = 1e-10


def _limit(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _faces(k: int, lower: float, upper: float):
    """Yield state vectors (0 free, 1 at lower, 2 at upper) of every face."""
    states = [0]
    if math.isfinite(lower):
        states.append(1)
    if math.isfinite(upper):
        states.append(2)
    yield from itertools.product(states, repeat=k)


def _face_map(G: np.ndarray, state, lower: float, upper: float, sum_to_one: bool):
    """Affine map ``w = b @ P.T + q`` of the optimum on one face, or None if the face is empty."""
    k = G.shape[0]
    state = np.asarray(state)
    free = np.flatnonzero(state == 0)
    fixed = np.flatnonzero(state != 0)
    x_fix = np.where(state == 1, lower, upper)[fixed].astype(float)
    P = np.zeros((k, k))
    q = np.zeros(k)
    q[fixed] = x_fix
    nf = free.size
    if nf == 0:
        if sum_to_one and abs(x_fix.sum() - 1.0) > _FEASIBLE_TOL:
            return None
        return P, q
    G_ff = G[np.ix_(free, free)]
    c = G[np.ix_(free, fixed)] @ x_fix if fixed.size else np.zeros(nf)
    if sum_to_one:
        kkt = np.zeros((nf + 1, nf + 1))
        kkt[:nf, :nf] = G_ff
        kkt[:nf, nf] = 1.0
        kkt[nf, :nf] = 1.0
        try:
            M = np.linalg.inv(kkt)
        except np.linalg.LinAlgError:
            return None
        Mff = M[:nf, :nf]
        P[np.ix_(free, free)] = Mff
        q[free] = -Mff @ c + M[:nf, nf] * (1.0 - x_fix.sum())
    else:
        try:
            Mff = np.linalg.inv(G_ff)
        except np.linalg.LinAlgError:
            return None
        P[np.ix_(free, free)] = Mff
        q[free] = -Mff @ c
    return P, q


def face_maps(G: np.ndarray, *, lower: float | None = 0.0, upper: float | None = 1.0,
              sum_to_one: bool = ComponentOptions.sum_to_one) -> list[tuple[np.ndarray, np.ndarray]]:
    """The affine maps of every non-empty face for Gram matrix ``G`` (precompute once)."""
    lo = _limit(lower, -np.inf)
    hi = _limit(upper, np.inf)
    maps = []
    for state in _faces(G.shape[0], lo, hi):
        m = _face_map(G, state, lo, hi, sum_to_one)
        if m is not None:
            maps.append(m)
    return maps


def solve(G: np.ndarray, B: np.ndarray, *, lower: float | None = 0.0, upper: float | None = 1.0,
          sum_to_one: bool = ComponentOptions.sum_to_one, maps=None) -> np.ndarray:
    """Bounded (and optionally sum-to-one) least-squares weights for every row of ``B``.

    Parameters
    ----------
    G : (k, k) array
        Gram matrix ``A^T A`` of the basis (positive definite).
    B : (n, k) array
        ``A^T y`` for every spectrum ``y``.
    lower, upper : float or None
        Bounds of every weight (None: unbounded on that side).
    sum_to_one : bool
        Constrain the weights of each spectrum to sum to 1.
    maps : list, optional
        Output of :func:`face_maps` for the same ``G`` and settings.

    Returns
    -------
    (n, k) array
        The optimal weights.  Rows of ``B`` that are not finite give NaN rows.
    """
    B = np.atleast_2d(np.asarray(B, dtype=float))
    n, k = B.shape
    lo = _limit(lower, -np.inf)
    hi = _limit(upper, np.inf)
    if sum_to_one and (k * hi < 1.0 - _FEASIBLE_TOL or k * lo > 1.0 + _FEASIBLE_TOL):
        raise ValueError(f"bounds [{lo}, {hi}] cannot hold {k} weights summing to 1")
    if k > MAX_ENUMERATED:
        return _solve_iterative(G, B, lo, hi, sum_to_one)
    tol = _FEASIBLE_TOL * max(1.0, abs(lo) if math.isfinite(lo) else 1.0,
                              abs(hi) if math.isfinite(hi) else 1.0)
    best = np.full((n, k), np.nan)
    # the interior face first: where its optimum is feasible it is the global optimum
    interior = _face_map(G, (0,) * k, lo, hi, sum_to_one)
    todo = np.ones(n, bool)
    if interior is not None:
        W = B @ interior[0].T + interior[1]
        inside = np.all((W >= lo - tol) & (W <= hi + tol), axis=1)
        best[inside] = W[inside]
        todo = ~inside
    if todo.any():
        rows = np.flatnonzero(todo)
        best[rows] = _enumerate(G, B[rows], lo, hi, tol, sum_to_one, maps)
    np.clip(best, lo, hi, out=best)
    best[~np.all(np.isfinite(B), axis=1)] = np.nan
    return best


def _enumerate(G, B, lo, hi, tol, sum_to_one, maps):
    """Lowest-objective feasible face optimum for every row of B."""
    n, k = B.shape
    if maps is None:
        maps = face_maps(G, lower=lo, upper=hi, sum_to_one=sum_to_one)
    best = np.full((n, k), np.nan)
    best_obj = np.full(n, np.inf)
    for P, q in maps:
        W = B @ P.T + q
        feasible = np.all((W >= lo - tol) & (W <= hi + tol), axis=1)
        if not feasible.any():
            continue
        # objective up to the constant y^T y: w^T G w - 2 b^T w
        obj = np.einsum("ij,ij->i", W @ G - 2.0 * B, W)
        better = feasible & (obj < best_obj)
        best[better] = W[better]
        best_obj[better] = obj[better]
    return best


def _solve_iterative(G, B, lo, hi, sum_to_one):
    """Per-spectrum SLSQP for more weights than :data:`MAX_ENUMERATED` (slow, exact to tolerance)."""
    from scipy.optimize import minimize

    n, k = B.shape
    out = np.full((n, k), np.nan)
    bounds = [(None if not math.isfinite(lo) else lo, None if not math.isfinite(hi) else hi)] * k
    cons = [{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}] \
        if sum_to_one else []
    start = np.full(k, 1.0 / k)
    for i in range(n):
        b = B[i]
        if not np.all(np.isfinite(b)):
            continue
        res = minimize(lambda w: w @ G @ w - 2 * b @ w, start, jac=lambda w: 2 * (G @ w - b),
                       bounds=bounds, constraints=cons, method="SLSQP",
                       options={"ftol": 1e-14, "maxiter": 500})
        out[i] = np.clip(res.x, lo, hi)
    return out


def constrained_covariance(G: np.ndarray, sum_to_one: bool) -> np.ndarray:
    """Unscaled covariance of the weights: ``G^-1``, projected onto ``sum(w) = 1`` when asked.

    Multiply by the reduced chi-square of a spectrum to get its covariance (as
    lmfit does with ``scale_covar=True``).  With the constraint this is the
    covariance of the free weights with the last one eliminated
    (``w_k = 1 - sum(others)``), which does not depend on which one is eliminated.
    """
    Ginv = np.linalg.inv(G)
    if not sum_to_one:
        return Ginv
    u = Ginv.sum(axis=1)
    return Ginv - np.outer(u, u) / u.sum()


def kkt_violation(G: np.ndarray, b: np.ndarray, w: np.ndarray, *, lower: float | None = 0.0,
                  upper: float | None = 1.0, sum_to_one: bool = ComponentOptions.sum_to_one) -> float:
    """Largest violation of the optimality (KKT) conditions of one solution ``w``.

    Returns the worst of: bound violations, the sum-to-one residual, the
    stationarity residual of free weights, and wrongly-signed multipliers of
    weights at a bound.  Zero (to rounding) at the optimum.
    """
    lo = _limit(lower, -np.inf)
    hi = _limit(upper, np.inf)
    g = G @ w - b                                  # half the gradient of the objective
    scale = max(1.0, float(np.abs(b).max()))
    tol = 1e-9
    at_lo = np.isfinite(lo) & (np.abs(w - lo) <= tol)
    at_hi = np.isfinite(hi) & (np.abs(w - hi) <= tol)
    free = ~(at_lo | at_hi)
    nu = 0.0
    if sum_to_one:
        if free.any():
            nu = -float(np.mean(g[free]))          # the equality's multiplier
        else:
            # every weight at a bound: any nu with g + nu >= 0 (lower), <= 0 (upper) will do
            lo_nu = float(np.max(-g[at_lo])) if at_lo.any() else -np.inf
            hi_nu = float(np.min(-g[at_hi])) if at_hi.any() else np.inf
            nu = lo_nu if not math.isfinite(hi_nu) else hi_nu if not math.isfinite(lo_nu) \
                else 0.5 * (lo_nu + hi_nu)
    worst = max(0.0, float(np.max(lo - w)), float(np.max(w - hi)))
    if sum_to_one:
        worst = max(worst, abs(float(w.sum()) - 1.0))
    r = g + nu
    if free.any():
        worst = max(worst, float(np.abs(r[free]).max()) / scale)
    if at_lo.any():
        worst = max(worst, float(np.max(-r[at_lo])) / scale)
    if at_hi.any():
        worst = max(worst, float(np.max(r[at_hi])) / scale)
    return worst
