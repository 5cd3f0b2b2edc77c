"""Batched EXAFS shell fits reproducing ``larch.xafs.feffit`` statistics.

The residual is Larch's (``FeffitDataSet._residual``): data chi is put on the
model grid ``kstep * arange(int(1.01 + max(k) / kstep))`` by linear
interpolation, the difference data - model is k-weighted and windowed, Fourier
transformed and the real/imaginary parts between ``rmin`` and ``rmax`` are
divided by ``epsilon_r`` (``fit_space="r"``), or the k-weighted difference on
``[kmin, kmax)`` is divided by ``epsilon_k`` (``fit_space="k"``).  Both are
linear in chi, so one dense matrix ``M`` maps chi on the window support to the
residual, and the Jacobian is ``-M @ dchi/dp / eps`` with the analytic path
derivatives of :class:`PathTable` (all paths evaluated together by
:class:`~.stack.PathStack`).  Only ``|r|^2``, ``J J^T`` and ``J r``
enter the fit and its statistics, so ``M`` is replaced by the ``W`` of its
significant singular values (``|W v| = |M v|`` to rounding; 36 instead of 144 rows
for k 3-12, R 1-3.2; see ``problem._Problem._compressed``).

Minimiser: Levenberg-Marquardt with Marquardt's scaled damping run on all spectra
at once (each spectrum keeps its own damping and stops on its own).  As in
MINPACK (lmfit's leastsq, used by feffit) the scale is the running maximum of
``diag(J^T J)``, the damping follows the gain ratio (actual / predicted decrease)
and the tests are MINPACK's ftol/xtol; in addition a spectrum stops, without
evaluating another point, once the Gauss-Newton predicted decrease from where it
is falls below ``ftol`` times chi-square.
Box bounds are enforced by projecting each trial point onto the box (a
projected LM step), not by lmfit's sine transform: both give the same optimum
when no bound is active; an active bound is reported in ``at_bound`` and its
parameter's error bar is then not meaningful (as in lmfit).

Statistics follow ``feffit`` exactly: ``n_idp = 1 + 2 (rmax - rmin)(kmax - kmin)/pi``,
``chi_square = sum(resid^2) n_idp / npts``, ``redchi = chi_square / (n_idp - n_varys)``,
``r_factor = sum(resid^2) / sum(data_resid^2)``, and the covariance
``inv(J^T J)`` scaled by ``sum(resid^2) / (n_idp - n_varys)`` (what
``propagate_uncertainties`` computes: lmfit's ``redchi = sum(resid^2)/(npts - n_varys)``
times ``(npts - n_varys) / (n_idp - n_varys)``).  ``epsilon`` comes from Larch's
``estimate_noise`` (rms of chi(R) between 15 and 30 Angstrom).  Larch also adds
autobk's ``delta_chi`` in quadrature when the data group carries autobk
details; arrays carry none, so that term is absent here (pass ``epsilon_k``).
"""

from __future__ import annotations

import numpy as np

from ..._util.blas import single_threaded_blas
from .evaluate import BatchModel
from .paths import PathTable
from .result import BatchFitResult
from ...options import FitOptions


def batch_fit(
    k: np.ndarray,
    chi: np.ndarray,
    paths: list[PathTable],
    *,
    kmin: float,
    kmax: float,
    kweight: float = FitOptions.kweight,
    dk: float = FitOptions.dk,
    dk2: float | None = None,
    window: str = FitOptions.window,
    rmin: float,
    rmax: float,
    fit_space: str = FitOptions.fit_space,
    s02=1.0,
    init: dict | None = None,
    vary: dict | None = None,
    bounds: dict | None = None,
    share_e0: bool = FitOptions.share_e0,
    ties: dict | None = None,
    epsilon_k=None,
    noise=None,
    max_nfev: int = 200,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    nfft: int = 2048,
    kstep: float = 0.05,
) -> BatchFitResult:
    """Fit every spectrum (row of ``chi``) with one single-scattering shell per path.

    Model: ``chi(k) = sum_S path_S(k; amp = cn_S * s02, e0 = de0, deltar_S,
    sigma2_S, c3_S)`` with Larch's EXAFS equation (path degeneracy replaced by
    ``cn``), compared with the data exactly as ``feffit`` does (see the module
    docstring).

    Parameters
    ----------
    k : ndarray, shape (n_k,)
        Common k grid of the data, 1/Angstrom.
    chi : ndarray, shape (n, n_k)
        chi(k) of each spectrum.  Rows with non-finite values are not fitted
        (``success=False``, NaN results).
    paths : list of PathTable
        One per shell; labels must be unique.
    kmin, kmax, dk, dk2, window, kweight : float, float, float, float, str, float
        k window (1/Angstrom) and k weight, as Larch's feffit transform.
    rmin, rmax : float
        R range of the fit, Angstrom (also defines ``n_idp`` in k-space fits).
    fit_space : {"r", "k"}
        Residual in R space (real and imaginary parts) or k space.
    s02 : float or ndarray (n,)
        Amplitude reduction factor S0^2 (fixed).
    init : dict, optional
        Starting values: ``{label: {"cn": .., "deltar": .., "sigma2": .., "c3": ..,
        "de0": ..}, "de0": ..}``; each value a scalar or an (n,) array (warm or
        per-spectrum starts).  Defaults: cn = path degeneracy, deltar = 0,
        sigma2 = 0.005 Angstrom^2, c3 = 0, de0 = 0 eV.
    vary : dict, optional
        Same layout with bools; default cn, deltar, sigma2, de0 varied, c3 fixed.
    bounds : dict, optional
        Same layout with ``(lo, hi)`` pairs (scalars or (n,) arrays; ``None`` for
        unbounded).  Defaults: cn [0, inf), deltar [-0.5, 0.5] Angstrom, sigma2
        [-0.01, 0.05] Angstrom^2, c3 [-0.01, 0.01] Angstrom^3, de0 [-20, 20] eV.
    share_e0 : bool
        One ``de0`` for all shells (key ``"de0"``) or one per shell (under the
        shell's label).
    ties : dict, optional
        ``{parameter: (source parameter, factor)}``, parameter names as in
        :attr:`BatchFitResult.param_names` (``"cn_Cu-Cu_ox1": ("cn_Cu-O", 0.5)``,
        ``"de0_Cu-Cu_ox1": ("de0_Cu-O", 1.0)``): the parameter is not varied and
        equals factor x the source (same kind; the source must not be tied itself).
        Its error is |factor| x the source's.  Like a Larch expression ``0.5*cn_cu_o``.
    epsilon_k : float or ndarray (n,), optional
        Noise in chi(k); default Larch's ``estimate_noise`` of each spectrum.
    noise : (ndarray (n,), ndarray (n,)), optional
        ``(epsilon_k, epsilon_r)`` of each spectrum as an earlier fit of the same
        spectra with the same window estimated them (its result's ``epsilon_k``,
        ``epsilon_r``; NaN where it could not fit): the estimate is not repeated.
        Exclusive with ``epsilon_k``.
    max_nfev : int
        Maximum number of LM iterations (one residual + Jacobian each).
    ftol, xtol : float
        Stop when both the actual and the predicted (linearised) relative
        decrease of the sum of squares are below ``ftol`` (MINPACK's test), when
        the Gauss-Newton predicted relative decrease from the current point is
        below ``ftol``, or when the scaled step is below ``xtol`` times the scaled
        parameter norm.  Larch's feffit uses 1e-6 for both; the defaults are 100x
        tighter (a relative chi-square change of 1e-8 moves a parameter by ~1e-4
        of its error bar).
    nfft, kstep : int, float
        FFT length and model k step, 1/Angstrom.

    Returns
    -------
    BatchFitResult
    """
    with single_threaded_blas():
        return _batch_fit(k, chi, paths, kmin=kmin, kmax=kmax, kweight=kweight, dk=dk,
                          dk2=dk2, window=window, rmin=rmin, rmax=rmax, fit_space=fit_space,
                          s02=s02, init=init, vary=vary, bounds=bounds, share_e0=share_e0,
                          ties=ties, epsilon_k=epsilon_k, noise=noise, max_nfev=max_nfev,
                          ftol=ftol, xtol=xtol, nfft=nfft, kstep=kstep)


def _batch_fit(k, chi, paths, *, kmin, kmax, kweight, dk, dk2, window, rmin, rmax, fit_space,
               s02, init, vary, bounds, share_e0, ties, epsilon_k, noise, max_nfev, ftol, xtol,
               nfft, kstep):
    if dk2 is None:
        dk2 = dk
    bm = BatchModel(k, chi, paths, kmin=kmin, kmax=kmax, kweight=kweight, dk=dk, dk2=dk2,
                    window=window, rmin=rmin, rmax=rmax, fit_space=fit_space, s02=s02, init=init,
                    vary=vary, bounds=bounds, share_e0=share_e0, ties=ties, epsilon_k=epsilon_k,
                    noise=noise, nfft=nfft, kstep=kstep)
    n, nv, nk, prob = bm.n, bm.nv, bm.nk, bm.prob
    ok, values, lo, hi, vidx = bm.ok, bm.values, bm.lo, bm.hi, bm.vidx
    names, var_names, labels, data_res = bm.names, bm.var_names, bm.labels, bm.data_res
    evaluate = bm.evaluate

    # ---- vectorised Levenberg-Marquardt ---------------------------------------------
    # Per row: Marquardt's scaled damping with MINPACK's scale (running maximum of
    # diag(J^T J), so a parameter that loses sensitivity keeps its damping), the damping
    # updated by the gain ratio (actual / predicted reduction), and a Gauss-Newton
    # stopping test before each step (see the loop).
    fit_rows = np.flatnonzero(ok)
    nf = len(fit_rows)
    nfev = np.zeros(n, int)
    success = np.zeros(n, bool)
    message = np.array(["non-finite data or noise estimate"] * n, dtype=object)
    message[fit_rows] = "maximum number of iterations reached"
    msg_ftol = "converged: relative reduction of chi-square below ftol"
    x = values[fit_rows].copy()
    nfev[fit_rows] = 1
    model_best = np.zeros((n, nk))
    A_cur = np.zeros((0, nv, nv))
    cost = np.zeros(0)
    if nf:
        ev = evaluate(fit_rows, x)
        model_best[fit_rows] = ev["model"]
        cost, A_cur, g_cur = ev["cost"], ev["A"], ev["g"]
        lam = np.full(nf, 1e-3)
        dscale = np.zeros((nf, nv))
        active = np.ones(nf, bool)
        lo_f, hi_f = lo[fit_rows][:, vidx], hi[fit_rows][:, vidx]
        eye = np.eye(nv)
        for _ in range(max_nfev):
            a_idx = np.flatnonzero(active)
            if len(a_idx) == 0:
                break
            na = len(a_idx)
            A, g = A_cur[a_idx], g_cur[a_idx]
            diag = np.einsum("rii->ri", A)
            diag = np.maximum(diag, 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300)
            diag = np.maximum(diag, dscale[a_idx])
            dscale[a_idx] = diag
            xa = x[a_idx]
            xv = xa[:, vidx]
            lo_a, hi_a = lo_f[a_idx], hi_f[a_idx]
            # active set: a parameter on a bound whose descent direction points out of
            # the box is held there for this step (otherwise the clipped step stalls)
            held = ((xv <= lo_a) & (g > 0)) | ((xv >= hi_a) & (g < 0))
            dmat = diag[:, :, None] * eye
            # two systems per row: the damped step and the Gauss-Newton step (1e-10 damping
            # keeps it defined when J^T J is singular)
            lhs = np.concatenate([A + lam[a_idx, None, None] * dmat, A + 1e-10 * dmat])
            g_step = g
            if held.any():
                hr = np.flatnonzero(held.any(axis=1))
                keep = ~held[hr]
                mask = keep[:, :, None] & keep[:, None, :]
                ident = held[hr][:, :, None] * eye
                for o in (0, na):
                    lhs[o + hr] = lhs[o + hr] * mask + ident
                g_step = np.where(held, 0.0, g)
            rhs = np.concatenate([g_step, g_step])
            try:
                steps = -np.linalg.solve(lhs, rhs[..., None])[..., 0]
            except np.linalg.LinAlgError:
                steps = -np.stack([np.linalg.lstsq(m_, g_, rcond=None)[0]
                                   for m_, g_ in zip(lhs, rhs)])
            step = steps[:na]
            # Gauss-Newton predicted reduction from here, g^T (J^T J)^-1 g over the free
            # parameters: below ftol * chi-square no step can reduce chi-square by more
            # (to first order), so the row stops without evaluating another point
            # (MINPACK's ftol test without the confirming evaluation)
            pred_gn = -np.einsum("ri,ri->r", g_step, steps[na:])
            stop = pred_gn <= ftol * cost[a_idx]
            if stop.any():
                done = a_idx[stop]
                active[done] = False
                success[fit_rows[done]] = True
                message[fit_rows[done]] = msg_ftol
                go = ~stop
                a_idx, A, g, diag, xa, xv, lo_a, hi_a, step = (
                    a_idx[go], A[go], g[go], diag[go], xa[go], xv[go], lo_a[go], hi_a[go],
                    step[go])
                if len(a_idx) == 0:
                    continue
            xt_v = np.clip(xv + step, lo_a, hi_a)
            xt = xa
            xt[:, vidx] = xt_v
            ev = evaluate(fit_rows[a_idx], xt)
            nfev[fit_rows[a_idx]] += 1
            cost_t = ev["cost"]
            better = np.isfinite(cost_t) & (cost_t <= cost[a_idx])
            acc, rej = a_idx[better], a_idx[~better]
            dcost = cost[acc] - cost_t[better]
            # predicted reduction of the linearised model for the step actually taken
            ds = (xt_v - xv)[better]
            Ab = A[better]
            pred = -(2.0 * np.einsum("ri,ri->r", g[better], ds)
                     + np.einsum("ri,ri->r", ds, (Ab @ ds[:, :, None])[:, :, 0]))
            sc = np.sqrt(diag[better])
            dx_norm = np.linalg.norm(sc * ds, axis=1)
            x_norm = np.linalg.norm(sc * xv[better], axis=1)
            x[acc], cost[acc] = xt[better], cost_t[better]
            A_cur[acc], g_cur[acc] = ev["A"][better], ev["g"][better]
            model_best[fit_rows[acc]] = ev["model"][better]
            # damping: gain ratio > 0.75 -> / 3, < 0.25 -> x 2; rejected step -> x 10
            rho = dcost / np.maximum(pred, 1e-300)
            lam[acc] = np.maximum(lam[acc] * np.where(rho > 0.75, 1.0 / 3.0,
                                                      np.where(rho < 0.25, 2.0, 1.0)), 1e-10)
            lam[rej] *= 10.0
            # MINPACK's tests: actual and predicted relative reductions both below ftol,
            # or the scaled step below xtol times the scaled parameters
            conv_f = (dcost <= ftol * cost[acc]) & (pred <= ftol * cost[acc])
            conv_x = dx_norm <= xtol * (x_norm + xtol)
            done = acc[conv_f | conv_x]
            active[done] = False
            success[fit_rows[done]] = True
            message[fit_rows[acc[conv_f]]] = msg_ftol
            message[fit_rows[acc[conv_x & ~conv_f]]] = "converged: relative step below xtol"
            stuck = rej[lam[rej] > 1e10]
            active[stuck] = False
            success[fit_rows[stuck]] = True
            message[fit_rows[stuck]] = "converged: no further decrease of chi-square possible"
        values[fit_rows] = bm.apply_ties(x)

    # ---- statistics as in larch.feffit ------------------------------------------------
    npts = prob.npts
    n_idp = bm.n_idp
    chi_square = np.full(n, np.nan)
    redchi = np.full(n, np.nan)
    r_factor = np.full(n, np.nan)
    covar = np.full((n, nv, nv), np.nan)
    stderr_v = np.full((n, nv), np.nan)
    if len(fit_rows):
        ssq = cost
        chi_square[fit_rows] = ssq * n_idp / npts
        redchi[fit_rows] = chi_square[fit_rows] / (n_idp - nv)
        r_factor[fit_rows] = ssq / (data_res[fit_rows] ** 2).sum(axis=1)
        A = A_cur
        # propagate_uncertainties uses lmfit's redchi = ssq / (npts - n_varys), so the
        # covariance scale is ssq / (n_idp - n_varys), not feffit's chi2_reduced
        err_scale = ssq / (n_idp - nv)
        try:
            cov = np.linalg.inv(A)
        except np.linalg.LinAlgError:
            cov = np.linalg.pinv(A)
        cov = cov * err_scale[:, None, None]
        covar[fit_rows] = cov
        stderr_v[fit_rows] = np.sqrt(np.abs(np.einsum("rii->ri", cov)))
    value, stderr, at_bound = bm.parameter_table(values, stderr_v)
    model_chi = np.zeros((n, len(prob.model_k)))
    model_chi[:, prob.cols] = model_best
    model_chi[~ok] = np.nan
    settings = dict(kmin=kmin, kmax=kmax, kweight=kweight, dk=dk, dk2=dk2, window=window,
                    rmin=rmin, rmax=rmax, fit_space=fit_space, share_e0=share_e0,
                    max_nfev=max_nfev, ftol=ftol, xtol=xtol, nfft=nfft, kstep=kstep,
                    vary={nm: bool(bm.varies[j]) for j, nm in enumerate(names)},
                    ties={names[jt]: (names[js], f) for jt, js, f in bm.ties},
                    bounds_method="projected LM step (clip to box)",
                    epsilon="given epsilon_k" if epsilon_k is not None else "estimate_noise")
    return BatchFitResult(
        labels=labels, param_names=names, var_names=var_names, value=value, stderr=stderr,
        at_bound=at_bound, covar=covar, chi_square=chi_square, redchi=redchi,
        r_factor=r_factor, n_idp=float(n_idp), n_varys=int(nv), npts=int(npts),
        epsilon_k=np.where(ok, bm.eps_k, np.nan), epsilon_r=np.where(ok, bm.eps_r, np.nan),
        success=success, message=message, nfev=nfev, model_k=prob.model_k,
        model_chi=model_chi, reff={p.label: p.reff for p in paths}, settings=settings)
