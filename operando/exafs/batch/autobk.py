"""Batched AUTOBK background removal, reproducing ``larch.xafs.autobk``.

Why a linear solve reproduces Larch
-----------------------------------
For a fixed edge energy the k grid, the spline knots and the FT window are
fixed, and every step of Larch's residual is linear in the spline
coefficients ``c`` and in ``mu``::

    bkg(kraw) = B c                      (B: cubic B-spline basis at the data k)
    chi(kout) = A (mu - B c)             (A: s=0 cubic interpolation onto kout,
                                          i.e. FITPACK's not-a-knot spline)
    out       = P chi                    (P: Re/Im of the windowed, k-weighted
                                          FT for R < rbkg)

Only the clamp weight is not linear: Larch appends
``clamp * scale * chi[ends]`` with ``scale = 0.1 + 10 * mean(out**2)``.
Setting the gradient of ``|out|^2 + scale^2 |clamp chi[ends]|^2`` to zero gives
``(1 + 20 scale q / N_out) P^T out + scale^2 G^T (clamp chi[ends]) = 0``
(``q = |clamp chi[ends]|^2``), i.e. the normal equations of the *linear*
problem with an effective clamp weight ``w^2 = scale^2 / (1 + 20 scale q / N_out)``.
We solve that linear problem for all spectra at once (batched ``nspl x nspl``
solves) and iterate on ``w`` (a scalar per spectrum) to a fixed point, which is
the exact stationary point of Larch's objective; Larch's ``leastsq`` gets there
to its ``ftol = 1e-6``.  The optimum does not depend on Larch's initial spline,
so that is not computed.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..._util.blas import single_threaded_blas
from ..._util.larch_compat import ETOK, TINY_ENERGY, ftwindow, index_nearest, index_of, remove_dups
from .ft import ft_matrix
from .splines import bspline_basis, cubic_interp_matrix, not_a_knot_knots
from ...options import BackgroundOptions


class _AutobkOperator:
    """Everything about one (energy grid, ek0, settings) that is shared by all spectra."""

    def __init__(self, energy, ek0, *, rbkg, kweight, kmin, kmax, dk, window, nknots,
                 nclamp, clamp_lo, clamp_hi, nfft, kstep):
        iek0 = index_of(energy, ek0)
        rgrid = np.pi / (kstep * nfft)
        rbkg = max(rbkg, 2 * rgrid)
        enpe = energy[iek0:] - ek0
        kraw = np.sign(enpe) * np.sqrt(ETOK * abs(enpe))
        if kmax is None or kmax < 0:
            kmax = max(kraw)
        else:
            kmax = max(0, min(max(kraw), kmax))
        kout = kstep * np.arange(int(1.01 + kmax / kstep), dtype="float64")
        iemax = min(len(energy), 2 + index_of(energy, ek0 + kmax * kmax / ETOK)) - 1
        ftwin = kout**kweight * ftwindow(kout, xmin=kmin, xmax=kmax, window=window,
                                         dx=dk, dx2=dk)
        nspl = 1 + int(2 * rbkg * (kmax - kmin) / np.pi)
        irbkg = int(1 + (nspl - 1) * np.pi / (2 * rgrid * (kmax - kmin)))
        if nknots is not None:
            nspl = nknots
        nspl = max(5, min(128, nspl))
        spl_k = np.zeros(nspl)
        for i in range(nspl):
            q = kmin + i * (kmax - kmin) / (nspl - 1)
            spl_k[i] = kraw[index_nearest(kraw, q)]
        # knots depend only on the abscissae (s=0 interpolation): same as Larch's splrep
        knots = not_a_knot_knots(spl_k)
        kraw_ = kraw[: iemax - iek0 + 1]
        # B: spline basis at the data points (Larch pads extra coefs; splev ignores them)
        basis = bspline_basis(knots, kraw_)                               # (n_raw, nspl)
        # A: UnivariateSpline(kraw_, y, s=0)(kout) is FITPACK's not-a-knot interpolant,
        # which is make_interp_spline(k=3) with its default not-a-knot conditions.
        interp_t = cubic_interp_matrix(kraw_, kout)                       # (n_kout, n_raw)
        self.A_T = np.ascontiguousarray(interp_t.T)                     # (n_raw, n_kout)
        C = interp_t @ basis                                             # (n_kout, nspl)
        P = ft_matrix(np.arange(len(kout)), np.arange(irbkg), nfft, kstep) * ftwin  # (2 irbkg, n_kout)
        F = P @ C
        self.P_T = np.ascontiguousarray(P.T)
        self.F = F
        self.FtF = F.T @ F
        self.C = C
        self.basis = basis
        clamp_idx, clamp_wt = [], []
        if nclamp > 0:
            for idx, wt in ((np.arange(nclamp), abs(clamp_lo)),
                            (np.arange(len(kout) - nclamp, len(kout)), abs(clamp_hi))):
                if wt != 0:
                    clamp_idx.append(idx)
                    clamp_wt.append(np.full(nclamp, wt))
        self.nclamp = nclamp
        self.clamp_idx = np.concatenate(clamp_idx) if clamp_idx else np.zeros(0, int)
        self.clamp_wt = np.concatenate(clamp_wt) if clamp_wt else np.zeros(0)
        G = self.clamp_wt[:, None] * C[self.clamp_idx]
        self.G = G
        self.GtG = G.T @ G
        self.n_out = 2 * irbkg
        self.kout, self.iek0, self.iemax, self.nspl, self.irbkg = kout, iek0, iemax, nspl, irbkg
        self.knots, self.rbkg, self.kmax = knots, rbkg, kmax

    def apply(self, mu_rows, max_iter=50, rtol=1e-12):
        """Spline coefficients and chi (in mu units) for rows of raw mu."""
        mu_ = mu_rows[:, self.iek0: self.iemax + 1]
        chi_data = mu_ @ self.A_T                       # (n, n_kout)
        y1 = chi_data @ self.P_T                        # (n, n_out)
        b1 = y1 @ self.F                                # (n, nspl)
        if self.nclamp == 0 or len(self.clamp_idx) == 0:
            coefs = np.linalg.solve(self.FtF, b1.T).T
            return coefs, chi_data - coefs @ self.C.T
        g = self.clamp_wt * chi_data[:, self.clamp_idx]  # (n, m)
        b2 = g @ self.G                                  # (n, nspl)
        w2 = np.full(len(mu_), 0.01)
        active = np.ones(len(mu_), bool)
        coefs = np.zeros((len(mu_), self.nspl))
        for _ in range(max_iter):
            idx = np.flatnonzero(active)
            if len(idx) == 0:
                break
            lhs = self.FtF[None] + w2[idx, None, None] * self.GtG[None]
            rhs = b1[idx] + w2[idx, None] * b2[idx]
            c = np.linalg.solve(lhs, rhs[..., None])[..., 0]
            coefs[idx] = c
            out = y1[idx] - c @ self.F.T
            scale = 0.1 + 10.0 * (out * out).mean(axis=1)
            clamp = g[idx] - c @ self.G.T
            q = (clamp * clamp).sum(axis=1)
            new_w2 = scale**2 / (1.0 + 20.0 * scale * q / self.n_out)
            done = np.abs(new_w2 - w2[idx]) <= rtol * new_w2
            w2[idx] = new_w2
            active[idx[done]] = False
        return coefs, chi_data - coefs @ self.C.T


_OPERATORS: "OrderedDict[tuple, _AutobkOperator]" = OrderedDict()
#: Operators kept for reuse (a pipeline calls batch_autobk once per chunk of steps with
#: the same grid, e0 and settings; building one costs ~10 ms, applying it ~50 us/spectrum).
_OPERATOR_CACHE = 16


def _operator(energy, ek0, settings) -> _AutobkOperator:
    key = (energy.tobytes(), ek0, tuple(sorted(settings.items())))
    op = _OPERATORS.get(key)
    if op is None:
        op = _AutobkOperator(energy, ek0, **settings)
        _OPERATORS[key] = op
        while len(_OPERATORS) > _OPERATOR_CACHE:
            _OPERATORS.popitem(last=False)
    else:
        _OPERATORS.move_to_end(key)
    return op


class AutobkResult(tuple):
    """``(k, chi, bkg, ok)`` returned by :func:`batch_autobk` (a plain 4-tuple with names)."""

    __slots__ = ()

    def __new__(cls, k, chi, bkg, ok):
        return super().__new__(cls, (k, chi, bkg, ok))

    k = property(lambda self: self[0], doc="k grid, 1/Angstrom (Larch's kstep grid from 0)")
    chi = property(lambda self: self[1], doc="chi(k) (n, n_k), NaN rows where not ok")
    bkg = property(lambda self: self[2], doc="background mu0(E) (n, n_e), in mu units")
    ok = property(lambda self: self[3], doc="(n,) bool, False for rows with non-finite input")


def batch_autobk(
    energy: np.ndarray,
    mu: np.ndarray,
    e0,
    edge_step,
    *,
    rbkg: float = BackgroundOptions.rbkg,
    kweight: float = BackgroundOptions.kweight,
    kmin: float = BackgroundOptions.kmin,
    kmax: float | None = BackgroundOptions.kmax,
    dk: float = BackgroundOptions.dk,
    window: str = BackgroundOptions.window,
    nknots: int | None = None,
    nclamp: int = BackgroundOptions.nclamp,
    clamp_lo: float = BackgroundOptions.clamp_lo,
    clamp_hi: float = BackgroundOptions.clamp_hi,
    nfft: int = 2048,
    kstep: float = 0.05,
) -> AutobkResult:
    """AUTOBK background removal of many spectra on one energy grid.

    Gives Larch's ``autobk(energy, mu, ek0=e0, edge_step=edge_step, ...)`` result
    for every row (see the module docstring for why a batched linear solve is
    exact), at the cost of a few matrix products per spectrum.

    Parameters
    ----------
    energy : ndarray, shape (n_e,)
        Common energy grid, eV, increasing (duplicates are nudged by Larch's
        ``remove_dups`` exactly as ``autobk`` does).
    mu : ndarray, shape (n, n_e) or (n_e,)
        Raw mu(E) (not normalised: the clamp term is not scale-invariant, so the
        background is fitted on mu as given and chi is divided by ``edge_step``
        afterwards, as Larch does).
    e0 : float or ndarray, shape (n,)
        Edge energy ``ek0``, eV.  With an array, spectra with *exactly* equal e0
        share one precomputed operator (one group per distinct value; each group
        costs a few ms to set up, so round e0 upstream, e.g. to 0.01 eV, when many
        spectra have nearly equal e0).  e0 outside the energy range marks the row
        not ok (Larch would run ``pre_edge`` instead).
    edge_step : float or ndarray, shape (n,)
        Edge step, mu units.
    rbkg : float
        R below which chi(R) is minimised, Angstrom.
    kweight : float
        k weight of the FT in the objective.
    kmin, kmax : float
        k range of the spline, 1/Angstrom (``kmax=None``: end of data).
    dk, window : float, str
        FT window of the objective (Larch's ``dk`` and ``win``).
    nknots : int, optional
        Number of spline knots (default from ``rbkg`` and the k range).
    nclamp, clamp_lo, clamp_hi : int, float, float
        Number of end points and weights of the low-/high-k clamps.
    nfft, kstep : int, float
        FFT length and output k step, 1/Angstrom.

    Returns
    -------
    AutobkResult
        4-tuple ``(k, chi, bkg, ok)``: ``k`` (n_k,) 1/Angstrom on Larch's
        ``kstep`` grid from 0; ``chi`` (n, n_k) = chi(k) / edge_step;
        ``bkg`` (n, n_e) background (``mu`` below e0); ``ok`` (n,) bool.  Rows
        with non-finite ``mu``, ``e0`` or ``edge_step`` (or ``edge_step == 0``)
        get NaN chi and bkg and ``ok = False``; nothing is raised for them.  With
        several e0 groups and ``kmax=None`` the k grids differ in length: rows are
        returned on the longest grid, zero-padded past their own kmax (which is
        what ``xftf`` does to them anyway).  1-d ``mu`` gives 1-d outputs.
    """
    with single_threaded_blas():
        return _batch_autobk(energy, mu, e0, edge_step, rbkg=rbkg, kweight=kweight, kmin=kmin,
                             kmax=kmax, dk=dk, window=window, nknots=nknots, nclamp=nclamp,
                             clamp_lo=clamp_lo, clamp_hi=clamp_hi, nfft=nfft, kstep=kstep)


def _batch_autobk(energy, mu, e0, edge_step, *, rbkg, kweight, kmin, kmax, dk, window, nknots,
                  nclamp, clamp_lo, clamp_hi, nfft, kstep):
    energy = remove_dups(np.asarray(energy, dtype=float), tiny=TINY_ENERGY)
    mu = np.asarray(mu, dtype=float)
    single = mu.ndim == 1
    mu2 = mu[None, :] if single else mu
    if mu2.ndim != 2 or mu2.shape[1] != len(energy):
        raise ValueError(f"mu must have shape (n, {len(energy)}) to match energy; "
                         f"got {mu.shape}")
    n = len(mu2)
    e0s = np.broadcast_to(np.asarray(e0, dtype=float), (n,))
    steps = np.broadcast_to(np.asarray(edge_step, dtype=float), (n,))
    ok = (np.isfinite(e0s) & np.isfinite(steps) & (steps != 0)
          & (e0s >= energy.min()) & (e0s <= energy.max()))
    settings = dict(rbkg=rbkg, kweight=kweight, kmin=kmin, kmax=kmax, dk=dk, window=window,
                    nknots=nknots, nclamp=nclamp, clamp_lo=clamp_lo, clamp_hi=clamp_hi,
                    nfft=nfft, kstep=kstep)
    groups = []
    for val in np.unique(e0s[ok]):
        rows = np.flatnonzero(ok & (e0s == val))
        op = _operator(energy, float(val), settings)
        sub = mu2[rows, op.iek0: op.iemax + 1]
        good = np.isfinite(sub).all(axis=1)
        ok[rows[~good]] = False
        groups.append((op, rows[good]))
    n_k = max([len(op.kout) for op, _ in groups], default=int(1.01 + (kmax or 0) / kstep))
    k = kstep * np.arange(n_k, dtype="float64")
    chi = np.full((n, n_k), np.nan)
    bkg = np.full((n, len(energy)), np.nan)
    for op, rows in groups:
        if len(rows) == 0:
            continue
        coefs, chi_mu = op.apply(mu2[rows])
        nk = len(op.kout)
        chi[rows, :nk] = chi_mu / steps[rows, None]
        chi[rows, nk:] = 0.0
        b = mu2[rows].copy()
        b[:, op.iek0: op.iek0 + op.basis.shape[0]] = coefs @ op.basis.T
        bkg[rows] = b
    if single:
        return AutobkResult(k, chi[0], bkg[0], ok[0])
    return AutobkResult(k, chi, bkg, ok)
