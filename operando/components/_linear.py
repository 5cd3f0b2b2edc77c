"""The fitting kernels of LCF: batched linear fits of many spectra on one basis, and shift fits.

Both return plain arrays; :mod:`operando.components.lcf` wraps them into results.
"""

from __future__ import annotations

import numpy as np

import operando.components._solver as _solver
from ._space import in_space
from ..options import ComponentOptions


def nvarys(k: int, sum_to_one: bool, shifts: bool = ComponentOptions.shifts) -> int:
    """Number of varied parameters, counted as lmfit counts them in ``lincombo_fit``."""
    return k - (1 if sum_to_one else 0) + (k if shifts else 0)


def fit_linear(Y: np.ndarray, A: np.ndarray, *, lower, upper, sum_to_one: bool) -> dict:
    """Fit every row of ``Y`` (r, m) with basis ``A`` (m, k): weights, errors and statistics.

    Errors are ``sqrt(diag(C) * redchi)`` with ``C`` the constrained covariance
    of :func:`_solver.constrained_covariance` (lmfit's ``scale_covar``).  The
    curvature is that of all weights (sum-to-one honoured), also when a weight
    sits at a bound, so an error bar is never zero because of a bound.
    """
    r, m = Y.shape
    k = A.shape[1]
    G = A.T @ A
    finite = np.all(np.isfinite(Y), axis=1)
    Yf = np.where(finite[:, None], Y, 0.0)
    B = Yf @ A
    W = _solver.solve(G, B, lower=lower, upper=upper, sum_to_one=sum_to_one)
    resid = Yf - W @ A.T
    chi2 = np.einsum("ij,ij->i", resid, resid)
    ssq = np.einsum("ij,ij->i", Yf, Yf)
    nv = nvarys(k, sum_to_one)
    dof = m - nv
    redchi = chi2 / dof
    cov = _solver.constrained_covariance(G, sum_to_one)
    errors = np.sqrt(np.clip(np.diag(cov), 0.0, None)[None, :] * redchi[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        rfactor = chi2 / ssq
    out = {"weights": W, "errors": errors, "chi_square": chi2, "redchi": redchi,
           "rfactor": rfactor, "n_points": np.full(r, m), "nvarys": np.full(r, nv),
           "ok": finite}
    for key in ("weights", "errors"):
        out[key][~finite] = np.nan
    for key in ("chi_square", "redchi", "rfactor"):
        out[key][~finite] = np.nan
    return out


class ShiftModel:
    """References with a bounded energy shift each, evaluated in the fitted space on one window."""

    def __init__(self, refs, energy: np.ndarray, space: str, i0: int, i1: int):
        self.space = space
        self.a = max(i0 - 1, 0) if space == "dnormde" else i0
        self.b = min(i1 + 1, energy.size) if space == "dnormde" else i1
        self.x = energy[self.a:self.b]
        self.i0, self.i1 = i0 - self.a, i1 - self.a
        self.splines = [ref.spline(space) for ref in refs]
        self.derivs = [s.derivative() for s in self.splines]

    def basis(self, shifts: np.ndarray) -> np.ndarray:
        """(m, k) basis with reference j evaluated at ``E - shifts[j]``."""
        vals = np.stack([s(self.x - d) for s, d in zip(self.splines, shifts)])
        return in_space(self.x, vals, self.space, self.i0, self.i1).T

    def basis_derivative(self, shifts: np.ndarray) -> np.ndarray:
        """(m, k): d basis_j / d shift_j."""
        vals = np.stack([-s(self.x - d) for s, d in zip(self.derivs, shifts)])
        return in_space(self.x, vals, self.space, self.i0, self.i1).T


def fit_shifts(y: np.ndarray, model: ShiftModel, *, lower, upper, sum_to_one: bool,
               max_shift: float) -> dict:
    """LCF of one spectrum with a bounded energy shift per reference (variable projection).

    The shifts are optimised by ``scipy.optimize.least_squares`` (trust region,
    bounds +-max_shift, starting at 0); for every trial shift the weights are
    the exact bounded solution.  Errors: covariance ``(J^T J)^-1 * redchi`` of
    weights and shifts together (sum-to-one honoured); a reference with zero
    weight has an undetermined shift (error NaN).
    """
    from scipy.optimize import least_squares

    k = len(model.splines)

    def weights(shifts):
        A = model.basis(shifts)
        G = A.T @ A
        return A, _solver.solve(G, (y @ A)[None, :], lower=lower, upper=upper,
                                sum_to_one=sum_to_one)[0]

    def residual(shifts):
        A, w = weights(shifts)
        return A @ w - y

    res = least_squares(residual, np.zeros(k), bounds=(-max_shift, max_shift), method="trf",
                        x_scale=1.0, xtol=1e-10, ftol=1e-12, gtol=1e-12, max_nfev=200 * k)
    shifts = res.x
    A, w = weights(shifts)
    r = A @ w - y
    m = y.size
    chi2 = float(r @ r)
    nv = nvarys(k, sum_to_one, shifts=True)
    redchi = chi2 / (m - nv)
    dA = model.basis_derivative(shifts) * w[None, :]
    active = np.abs(w) > 1e-12
    J = np.hstack([A, dA[:, active]])
    c = np.concatenate([np.ones(k), np.zeros(int(active.sum()))])
    errors = np.full(k, np.nan)
    shift_err = np.full(k, np.nan)
    try:
        Hinv = np.linalg.inv(J.T @ J)
        if sum_to_one:
            u = Hinv @ c
            Hinv = Hinv - np.outer(u, u) / (c @ u)
        var = np.clip(np.diag(Hinv), 0.0, None) * redchi
        errors = np.sqrt(var[:k])
        shift_err[active] = np.sqrt(var[k:])
    except np.linalg.LinAlgError:
        pass
    return {"weights": w, "errors": errors, "shifts": np.where(active, shifts, 0.0),
            "shift_errors": shift_err, "chi_square": chi2, "redchi": redchi,
            "rfactor": chi2 / float(y @ y), "n_points": m, "nvarys": nv,
            "converged": bool(res.success), "message": str(res.message)}
