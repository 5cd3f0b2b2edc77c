"""One least-squares fit of many spectra with parameters shared across them:
:func:`batch_fit_global`, ``larch.xafs.feffit`` with several datasets.

The joint Jacobian is block-sparse: each spectrum's residual depends on its own
(local) parameters -- typically the CNs -- and on the shared ones (sigma2, dR, dE0).
:class:`~.evaluate.BatchModel` gives every spectrum's ``A_i = J_i J_i^T`` and
``g_i = J_i r_i`` over its local + shared parameters, so the joint normal equations
have the arrow shape ::

    [ D_1            B_1 ] [dL_1]     [g_L1]
    [      ...       ... ] [ ...] = - [ ...]
    [           D_n  B_n ] [dL_n]     [g_Ln]
    [ B_1^T ... B_n^T  C ] [dS  ]     [g_S ]      C = sum C_i, g_S = sum g_Si

and are solved through the Schur complement of the shared block,
``(C - sum B_i^T D_i^-1 B_i) dS = -g_S + sum B_i^T D_i^-1 g_Li``,
``dL_i = -D_i^-1 (g_Li + B_i dS)``: O(n) small solves instead of one dense
(n n_L + n_S)^2 system, so 1,000 spectra cost about one batched per-spectrum fit.
Levenberg-Marquardt as in :func:`~.fit.batch_fit` (MINPACK's scaled damping, gain
ratio, projected steps with bound-held parameters), on the joint chi-square.

Statistics are feffit's for several datasets: ``n_idp`` and the number of residual
points summed over the spectra, ``chi_square = sum(resid^2) n_idp / npts``,
``redchi = chi_square / (n_idp - n_varys)`` with every local and shared varied
parameter counted, ``r_factor = sum(resid^2) / sum(data^2)``, and the covariance the
inverse of the joint ``J^T J`` (the diagonal blocks of the local parameters from the
block inverse) scaled by ``sum(resid^2) / (n_idp - n_varys)``.
"""

from __future__ import annotations

import numpy as np

from ..._util.blas import single_threaded_blas
from ...options import FitOptions
from .evaluate import BatchModel
from .result import BatchFitResult


def batch_fit_global(k, chi, paths, *, shared, kmin, kmax, kweight=FitOptions.kweight,
                     dk=FitOptions.dk, dk2=None, window=FitOptions.window, rmin, rmax,
                     fit_space=FitOptions.fit_space, s02=1.0, init=None, vary=None,
                     bounds=None, share_e0=FitOptions.share_e0, ties=None, epsilon_k=None, max_nfev=500,
                     ftol=1e-8, xtol=1e-8, nfft=2048, kstep=0.05) -> BatchFitResult:
    """Fit all spectra (rows of ``chi``) at once, the parameters ``shared`` common to all.

    Parameters
    ----------
    shared : iterable of str
        ``batch_fit`` parameter names (``"sigma2_Cu-Cu"``, ``"deltar_Cu-Cu"``,
        ``"de0"`` or ``"de0_Cu-O"``) with one value for every spectrum; the other
        varied parameters are fitted per spectrum.  Shared starting values are the
        mean of ``init`` over the spectra.
    Other parameters
        As :func:`~.fit.batch_fit` (``max_nfev``: joint iterations).

    Returns
    -------
    BatchFitResult
        Per spectrum values and errors (shared ones repeated); ``chi_square``,
        ``redchi``, ``r_factor`` (repeated), ``n_idp``, ``n_varys`` of the joint fit;
        ``row_chi_square`` / ``row_r_factor`` per spectrum; ``shared`` the shared names.
        Rows with non-finite data or noise are left out (``success`` False, NaN).
    """
    with single_threaded_blas():
        return _global(k, chi, paths, shared=shared, kmin=kmin, kmax=kmax, kweight=kweight,
                       dk=dk, dk2=dk if dk2 is None else dk2, window=window, rmin=rmin,
                       rmax=rmax, fit_space=fit_space, s02=s02, init=init, vary=vary,
                       bounds=bounds, share_e0=share_e0, ties=ties, epsilon_k=epsilon_k,
                       max_nfev=max_nfev, ftol=ftol, xtol=xtol, nfft=nfft, kstep=kstep)


def _global(k, chi, paths, *, shared, max_nfev, ftol, xtol, **kw):
    bm = BatchModel(k, chi, paths, **kw)
    names, vidx, nv = bm.names, bm.vidx, bm.nv
    shared = set(shared)
    unknown = shared - set(names)
    if unknown:
        raise ValueError(f"shared parameters {sorted(unknown)} are not parameters ({names})")
    sh = np.array([i for i, j in enumerate(vidx) if names[j] in shared], int)     # positions
    lc = np.array([i for i, j in enumerate(vidx) if names[j] not in shared], int)
    rows = np.flatnonzero(bm.ok)
    n, m, ns, nl = bm.n, len(rows), len(sh), len(lc)
    if m == 0:
        raise ValueError("no spectrum with finite data and noise to fit")
    values = bm.values.copy()
    lo, hi = bm.lo[rows][:, vidx], bm.hi[rows][:, vidx]
    x = values[rows][:, vidx]                       # (m, nv), shared columns kept equal
    x[:, sh] = x[:, sh].mean(axis=0)
    lo_s, hi_s = lo[:, sh].max(axis=0), hi[:, sh].min(axis=0)
    x[:, sh] = np.clip(x[:, sh], lo_s, hi_s)

    def evaluate(xv):
        vals = values[rows].copy()
        vals[:, vidx] = xv
        return bm.evaluate(rows, vals)

    ev = evaluate(x)
    cost = float(ev["cost"].sum())
    lam, dscale = 1e-3, np.zeros((m, nv))
    success, message, nfev = False, "maximum number of iterations reached", 1
    for _ in range(max_nfev):
        A, g = ev["A"], ev["g"]
        diag = np.einsum("rii->ri", A).copy()
        diag[:, sh] = diag[:, sh].sum(axis=0)        # the joint diagonal of a shared parameter
        diag = np.maximum(diag, 1e-12 * diag.max() + 1e-300)
        dscale = np.maximum(dscale, diag)
        held = ((x <= lo) & (g_joint(g, sh) > 0)) | ((x >= hi) & (g_joint(g, sh) < 0))
        step, pred_gn = _solve(A, g, dscale, lam, held, sh, lc)
        if pred_gn <= ftol * cost:
            success, message = True, "converged: relative reduction of chi-square below ftol"
            break
        xt = np.clip(x + step, lo, hi)
        xt[:, sh] = np.clip(xt[0, sh], lo_s, hi_s)
        ev_t = evaluate(xt)
        nfev += 1
        cost_t = float(ev_t["cost"].sum())
        ds = xt - x
        if np.isfinite(cost_t) and cost_t <= cost:
            gj = g_joint(g, sh)
            pred = -(2.0 * _dot_joint(gj, ds, sh) + _quad(A, ds))
            dcost = cost - cost_t
            sc = np.sqrt(dscale)
            dx_norm = np.sqrt(_sumsq(sc * ds, sh))
            x_norm = np.sqrt(_sumsq(sc * x, sh))
            x, cost, ev = xt, cost_t, ev_t
            rho = dcost / max(pred, 1e-300)
            lam = max(lam * (1 / 3 if rho > 0.75 else 2.0 if rho < 0.25 else 1.0), 1e-10)
            if dcost <= ftol * cost and pred <= ftol * cost:
                success, message = True, "converged: relative reduction of chi-square below ftol"
                break
            if dx_norm <= xtol * (x_norm + xtol):
                success, message = True, "converged: relative step below xtol"
                break
        else:
            lam *= 10.0
            if lam > 1e10:
                success, message = True, "converged: no further decrease of chi-square possible"
                break

    # ---- statistics as feffit's multi-dataset fit -------------------------------------
    prob = bm.prob
    n_idp = m * bm.n_idp
    npts = m * prob.npts
    n_varys = m * nl + ns
    ssq = cost
    chi_square = ssq * n_idp / npts
    redchi = chi_square / (n_idp - n_varys)
    r_factor = ssq / float((bm.data_res[rows] ** 2).sum())
    scale = ssq / (n_idp - n_varys)
    err_l, err_s, cov_s = _errors(ev["A"], sh, lc, scale)
    stderr_v = np.full((n, nv), np.nan)
    stderr_v[np.ix_(rows, lc)] = err_l
    stderr_v[np.ix_(rows, sh)] = err_s
    values[rows[:, None], vidx[None, :]] = x
    value, stderr, at_bound = bm.parameter_table(bm.apply_ties(values), stderr_v)
    model_chi = np.full((n, len(prob.model_k)), np.nan)
    model_chi[rows] = 0.0
    model_chi[rows[:, None], prob.cols[None, :]] = ev["model"]
    covar = np.full((n, nv, nv), np.nan)
    covar[np.ix_(rows, sh, sh)] = cov_s
    ok = bm.ok
    row_cs = np.full(n, np.nan)
    row_cs[rows] = ev["cost"] * bm.n_idp / prob.npts
    row_rf = np.full(n, np.nan)
    row_rf[rows] = ev["cost"] / (bm.data_res[rows] ** 2).sum(axis=1)
    settings = dict(kw_settings(kw), max_nfev=max_nfev, ftol=ftol, xtol=xtol,
                    shared=sorted(shared), ties={names[jt]: (names[js], f) for jt, js, f in bm.ties},
                    vary={nm: bool(bm.varies[j]) for j, nm in enumerate(names)},
                    method="joint Levenberg-Marquardt, Schur complement of the shared block")
    full = lambda v: np.where(ok, v, np.nan)  # noqa: E731
    return BatchFitResult(
        labels=bm.labels, param_names=names, var_names=bm.var_names, value=value, stderr=stderr,
        at_bound=at_bound, covar=covar, chi_square=full(chi_square), redchi=full(redchi),
        r_factor=full(r_factor), n_idp=float(n_idp), n_varys=int(n_varys), npts=int(npts),
        epsilon_k=np.where(ok, bm.eps_k, np.nan), epsilon_r=np.where(ok, bm.eps_r, np.nan),
        success=ok & success, message=np.where(ok, message, "non-finite data or noise estimate"),
        nfev=np.where(ok, nfev, 0), model_k=prob.model_k, model_chi=model_chi,
        reff={p.label: p.reff for p in bm.paths}, settings=settings, shared=sorted(shared),
        row_chi_square=row_cs, row_r_factor=row_rf)


def kw_settings(kw):
    keep = ("kmin", "kmax", "kweight", "dk", "dk2", "window", "rmin", "rmax", "fit_space",
            "share_e0", "nfft", "kstep")
    out = {key: kw[key] for key in keep}
    out["epsilon"] = "given epsilon_k" if kw.get("epsilon_k") is not None else "estimate_noise"
    return out


# ------------------------------------------------------------------ block algebra
def g_joint(g, sh):
    """Per-row gradient with the shared entries replaced by their sum over rows."""
    out = g.copy()
    out[:, sh] = g[:, sh].sum(axis=0)
    return out


def _sumsq(v, sh):
    """Joint squared norm of a (m, nv) array whose shared columns are one vector."""
    lc = np.setdiff1d(np.arange(v.shape[1]), sh)
    return float((v[:, lc] ** 2).sum() + (v[0, sh] ** 2).sum())


def _dot_joint(gj, d, sh):
    lc = np.setdiff1d(np.arange(d.shape[1]), sh)
    return float((gj[:, lc] * d[:, lc]).sum() + (gj[0, sh] * d[0, sh]).sum())


def _quad(A, d):
    """d^T A_joint d for the arrow-shaped joint matrix (per-row blocks, shared summed)."""
    return float(np.einsum("ri,rij,rj->", d, A, d))


def _solve(A, g, dscale, lam, held, sh, lc):
    """The damped joint step (m, nv) and the Gauss-Newton predicted reduction."""
    m, nv = g.shape
    gl = np.where(held[:, lc], 0.0, g[:, lc])
    gs = g[:, sh].sum(axis=0)
    held_s = held[0, sh]
    gs = np.where(held_s, 0.0, gs)
    steps, preds = [], []
    for damp in (lam, 1e-10):
        D = A[:, lc][:, :, lc] + damp * (dscale[:, lc][:, :, None] * np.eye(len(lc)))
        B = A[:, lc][:, :, sh]
        C = A[:, sh][:, :, sh].sum(axis=0) + damp * np.diag(dscale[0, sh] if len(sh) else [])
        hl = held[:, lc]
        if hl.any():
            keep = ~hl
            D = D * (keep[:, :, None] & keep[:, None, :]) + hl[:, :, None] * np.eye(len(lc))
            B = B * keep[:, :, None]
        if held_s.any():
            ks = ~held_s
            C = C * (ks[:, None] & ks[None, :]) + np.diag(held_s.astype(float))
            B = B * ks[None, None, :]
        Dinv_B = np.linalg.solve(D, B) if len(sh) else np.zeros((m, len(lc), 0))
        Dinv_g = np.linalg.solve(D, gl[..., None])[..., 0]
        if len(sh):
            S = C - np.einsum("rli,rlj->ij", B, Dinv_B)
            rhs = -gs + np.einsum("rli,rl->i", B, Dinv_g)
            try:
                ds = np.linalg.solve(S, rhs)
            except np.linalg.LinAlgError:
                ds = np.linalg.lstsq(S, rhs, rcond=None)[0]
        else:
            ds = np.zeros(0)
        dl = -(Dinv_g + np.einsum("rls,s->rl", Dinv_B, ds))
        step = np.zeros((m, nv))
        step[:, lc] = dl
        step[:, sh] = ds
        steps.append(step)
        preds.append(-float((gl * dl).sum() + (gs * ds).sum()))
    return steps[0], preds[1]


def _errors(A, sh, lc, scale):
    """Standard errors of the local parameters (m, nl) and the shared ones (ns,), and
    the shared covariance, from the block inverse of the joint J^T J."""
    m = A.shape[0]
    D = A[:, lc][:, :, lc]
    B = A[:, lc][:, :, sh]
    C = A[:, sh][:, :, sh].sum(axis=0)
    try:
        Dinv = np.linalg.inv(D)
    except np.linalg.LinAlgError:
        Dinv = np.linalg.pinv(D)
    if len(sh):
        Dinv_B = Dinv @ B
        S = C - np.einsum("rli,rlj->ij", B, Dinv_B)
        try:
            Sinv = np.linalg.inv(S)
        except np.linalg.LinAlgError:
            Sinv = np.linalg.pinv(S)
        # diagonal blocks of the inverse: D^-1 + D^-1 B S^-1 B^T D^-1
        local = Dinv + np.einsum("rls,st,rkt->rlk", Dinv_B, Sinv, Dinv_B)
    else:
        Sinv = np.zeros((0, 0))
        local = Dinv
    err_l = np.sqrt(np.abs(np.einsum("rii->ri", local)) * scale)
    err_s = np.sqrt(np.abs(np.diag(Sinv)) * scale) * np.ones((m, 1))
    return err_l, err_s, Sinv * scale
