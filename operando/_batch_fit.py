"""Batched EXAFS shell fits reproducing ``larch.xafs.feffit`` statistics.

The residual is Larch's (``FeffitDataSet._residual``): data chi is put on the
model grid ``kstep * arange(int(1.01 + max(k) / kstep))`` by linear
interpolation, the difference data - model is k-weighted and windowed, Fourier
transformed and the real/imaginary parts between ``rmin`` and ``rmax`` are
divided by ``epsilon_r`` (``fit_space="r"``), or the k-weighted difference on
``[kmin, kmax)`` is divided by ``epsilon_k`` (``fit_space="k"``).  Both are
linear in chi, so one dense matrix ``M`` maps chi on the window support to the
residual, and the Jacobian is ``-M @ dchi/dp / eps`` with the analytic path
derivatives of :class:`PathTable`.

Minimiser: Levenberg-Marquardt with Marquardt's ``diag(J^T J)`` damping run on
all spectra at once (each spectrum keeps its own damping and stops on its own).
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

from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from ._batch_larch import ftwindow

from ._batch_ft import SQRT_PI, ft_matrix, resample_rows
from ._blas import single_threaded_blas
from ._batch_paths import PathTable

SHELL_PARAMS = ("cn", "deltar", "sigma2", "c3")
DEFAULT_VARY = {"cn": True, "deltar": True, "sigma2": True, "c3": False, "de0": True}
DEFAULT_INIT = {"deltar": 0.0, "sigma2": 0.005, "c3": 0.0, "de0": 0.0}  # cn: path degeneracy
DEFAULT_BOUNDS = {"cn": (0.0, np.inf), "deltar": (-0.5, 0.5), "sigma2": (-0.01, 0.05),
                  "c3": (-0.01, 0.01), "de0": (-20.0, 20.0)}
UNITS = {"cn": "", "deltar": "Angstrom", "sigma2": "Angstrom^2", "c3": "Angstrom^3",
         "de0": "eV"}


@dataclass
class BatchFitResult:
    """Results of :func:`batch_fit`: one value per spectrum for everything.

    Attributes
    ----------
    labels : list of str
        Shell labels, in the order of ``paths``.
    param_names : list of str
        ``"<param>_<label>"`` for shell parameters (``cn``, ``deltar``, ``sigma2``,
        ``c3``) and ``"de0"`` (shared) or ``"de0_<label>"``.
    var_names : list of str
        The varied parameters, in the order of ``covar``.
    value, stderr : dict of str -> ndarray (n,)
        Best values and 1-sigma errors (Larch's scaling; 0 for fixed parameters).
        Units: cn 1, deltar Angstrom, sigma2 Angstrom^2, c3 Angstrom^3, de0 eV.
    at_bound : dict of str -> ndarray (n,) bool
        Varied parameter ended on a bound.
    covar : ndarray (n, n_varys, n_varys)
        Scaled covariance of the varied parameters.
    chi_square, redchi, r_factor : ndarray (n,)
        Larch's ``chi_square``, ``chi2_reduced`` and ``rfactor``.
    n_idp : float
        Number of independent points.
    n_varys, npts : int
        Number of varied parameters and of residual points.
    epsilon_k, epsilon_r : ndarray (n,)
        Noise used to scale the residual.
    success : ndarray (n,) bool
    message : ndarray (n,) of str
    nfev : ndarray (n,) int
        Residual + Jacobian evaluations per spectrum.
    model_k : ndarray (n_m,)
        Model k grid, 1/Angstrom.
    model_chi : ndarray (n, n_m)
        Best-fit model chi(k) on the window support (zero elsewhere).
    reff : dict of label -> float
        Path half lengths, Angstrom.
    settings : dict
        Every resolved setting.
    """

    labels: list
    param_names: list
    var_names: list
    value: dict
    stderr: dict
    at_bound: dict
    covar: np.ndarray
    chi_square: np.ndarray
    redchi: np.ndarray
    r_factor: np.ndarray
    n_idp: float
    n_varys: int
    npts: int
    epsilon_k: np.ndarray
    epsilon_r: np.ndarray
    success: np.ndarray
    message: np.ndarray
    nfev: np.ndarray
    model_k: np.ndarray = field(repr=False)
    model_chi: np.ndarray = field(repr=False)
    reff: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.success)

    def to_dataframe(self):
        """One row per spectrum: ``cn_S, cn_S_err, r_S, r_S_err, sigma2_S, sigma2_S_err,
        de0_S, de0_S_err`` per shell S (``c3_S`` when varied), then ``r_factor, redchi,
        chi_square, n_idp, n_varys, fit_ok, fit_message, nfev``."""
        import pandas as pd

        cols = {}
        for lab in self.labels:
            e0name = "de0" if "de0" in self.value else f"de0_{lab}"
            for name, src in (("cn", f"cn_{lab}"), ("r", f"deltar_{lab}"),
                              ("sigma2", f"sigma2_{lab}"), ("de0", e0name)):
                val = self.value[src]
                if name == "r":
                    val = val + self.reff[lab]
                cols[f"{name}_{lab}"] = val
                cols[f"{name}_{lab}_err"] = self.stderr[src]
            if f"c3_{lab}" in self.var_names:
                cols[f"c3_{lab}"] = self.value[f"c3_{lab}"]
                cols[f"c3_{lab}_err"] = self.stderr[f"c3_{lab}"]
        cols.update(r_factor=self.r_factor, redchi=self.redchi, chi_square=self.chi_square,
                    n_idp=np.full(len(self), self.n_idp), n_varys=np.full(len(self), self.n_varys),
                    fit_ok=self.success, fit_message=self.message, nfev=self.nfev)
        return pd.DataFrame(cols)


class _Problem:
    """Fixed part of a batch fit: grids, FT matrix, parameter layout."""

    def __init__(self, k, paths, *, kmin, kmax, kweight, dk, dk2, window, rmin, rmax,
                 fit_space, nfft, kstep):
        self.kstep, self.nfft = kstep, nfft
        ikmax = int(1.01 + max(k) / kstep)
        k_full = kstep * np.arange(nfft, dtype="float64")
        self.model_k = k_full[:ikmax]
        kwin = ftwindow(k_full, xmin=kmin, xmax=kmax, dx=dk, dx2=dk2, window=window)
        self.kwin_ave = kwin.sum() * kstep / (kmax - kmin)
        self.fft_weight = kwin[:ikmax] * self.model_k**kweight
        if fit_space == "r":
            rstep = np.pi / (kstep * nfft)
            irmin = int(max(0, 0.01 + rmin / rstep))
            irmax = int(min(nfft / 2, 0.01 + rmax / rstep))
            cols = np.flatnonzero(self.fft_weight != 0)
            self.M = ft_matrix(cols, np.arange(irmin, irmax), nfft, kstep) * self.fft_weight[cols]
        elif fit_space == "k":
            iqmin = int(max(0, 0.01 + kmin / kstep))
            iqmax = int(min(nfft / 2, 0.01 + kmax / kstep, ikmax))
            cols = np.arange(iqmin, iqmax)
            self.M = np.diag(self.model_k[cols] ** kweight)
        else:
            raise ValueError(f"fit_space must be 'r' or 'k'; got {fit_space!r}")
        if len(cols) == 0 or self.M.shape[0] == 0:
            raise ValueError("empty fit range: check kmin/kmax/rmin/rmax against the data k range")
        self.cols = cols
        self.kk = self.model_k[cols]
        self.MT = np.ascontiguousarray(self.M.T)
        self.npts = self.M.shape[0]
        self.paths = paths


_PROBLEMS: dict = {}


def _problem(k, paths, **kw) -> _Problem:
    """A cached :class:`_Problem` (the FT matrix depends only on the grid and settings;
    a pipeline fits chunk after chunk with the same ones)."""
    key = (float(max(k)), tuple(sorted(kw.items())))
    prob = _PROBLEMS.get(key)
    if prob is None:
        if len(_PROBLEMS) >= 16:
            _PROBLEMS.clear()
        prob = _PROBLEMS[key] = _Problem(k, None, **kw)
    if prob.paths is paths:
        return prob
    import copy

    prob = copy.copy(prob)          # shares the arrays; only the paths differ
    prob.paths = paths
    return prob


def _noise(chi_model_grid, prob: _Problem, kmin, kmax, kweight):
    """Larch's ``FeffitDataSet.estimate_noise`` for every row: (eps_k, eps_r)."""
    nfft, kstep = prob.nfft, prob.kstep
    x = chi_model_grid * prob.fft_weight
    chir = scipy.fft.rfft(x, n=nfft, axis=-1, workers=-1) * (kstep / SQRT_PI)
    rstep = np.pi / (kstep * nfft)
    irmin = int(0.01 + 15.0 / rstep)
    irmax = int(min(nfft / 2, 1.01 + 30.0 / rstep))
    high = chir[:, irmin:irmax]
    ms = (high.real**2 + high.imag**2).sum(axis=1) / (2 * high.shape[1])
    eps_r = np.sqrt(ms) / prob.kwin_ave
    w = 2 * kweight + 1
    eps_k = np.sqrt((2 * np.pi * w) / (kstep * (kmax**w - kmin**w))) * eps_r
    return eps_k, eps_r


def _per_spectrum(val, n, name):
    arr = np.asarray(val, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or an array of shape ({n},); got {arr.shape}")
    return arr.astype(float).copy()


def _lookup(spec, label, pname, default):
    """Value for (label, pname) from a dict keyed by label -> {pname: v}, or pname."""
    if spec is None:
        return default
    if pname == "de0" and label is None:
        return spec.get("de0", default)
    sub = spec.get(label)
    if isinstance(sub, dict) and pname in sub:
        return sub[pname]
    if f"{pname}_{label}" in spec:
        return spec[f"{pname}_{label}"]
    return default


def batch_fit(
    k: np.ndarray,
    chi: np.ndarray,
    paths: list[PathTable],
    *,
    kmin: float,
    kmax: float,
    kweight: float = 2,
    dk: float = 4.0,
    dk2: float | None = None,
    window: str = "kaiser",
    rmin: float,
    rmax: float,
    fit_space: str = "r",
    s02=1.0,
    init: dict | None = None,
    vary: dict | None = None,
    bounds: dict | None = None,
    share_e0: bool = True,
    epsilon_k=None,
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
    epsilon_k : float or ndarray (n,), optional
        Noise in chi(k); default Larch's ``estimate_noise`` of each spectrum.
    max_nfev : int
        Maximum number of LM iterations (one residual + Jacobian each).
    ftol, xtol : float
        Stop when both the actual and the predicted (linearised) relative
        decrease of the sum of squares are below ``ftol`` (MINPACK's test), or
        the scaled step is below ``xtol`` times the scaled parameter norm.
        Larch's feffit uses 1e-6 for both; the defaults are 100x tighter (a
        relative chi-square change of 1e-8 moves a parameter by ~1e-4 of its
        error bar).
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
                          epsilon_k=epsilon_k, max_nfev=max_nfev, ftol=ftol, xtol=xtol,
                          nfft=nfft, kstep=kstep)


def _batch_fit(k, chi, paths, *, kmin, kmax, kweight, dk, dk2, window, rmin, rmax, fit_space,
               s02, init, vary, bounds, share_e0, epsilon_k, max_nfev, ftol, xtol, nfft,
               kstep):
    k = np.asarray(k, dtype=float)
    chi = np.asarray(chi, dtype=float)
    if chi.ndim == 1:
        chi = chi[None, :]
    if chi.ndim != 2 or chi.shape[1] != len(k):
        raise ValueError(f"chi must have shape (n, {len(k)}) to match k; got {chi.shape}")
    paths = list(paths)
    labels = [p.label for p in paths]
    if len(set(labels)) != len(labels):
        raise ValueError(f"path labels must be unique; got {labels}")
    if dk2 is None:
        dk2 = dk
    n = len(chi)
    prob = _problem(k, paths, kmin=kmin, kmax=kmax, kweight=kweight, dk=dk, dk2=dk2,
                    window=window, rmin=rmin, rmax=rmax, fit_space=fit_space, nfft=nfft,
                    kstep=kstep)
    data = resample_rows(k, chi, prob.model_k)
    ok = np.isfinite(data).all(axis=1)
    data[~ok] = 0.0
    if epsilon_k is None:
        eps_k, eps_r = _noise(data, prob, kmin, kmax, kweight)
    else:
        eps_k = _per_spectrum(epsilon_k, n, "epsilon_k")
        w = 2 * int(kweight) + 1
        eps_r = eps_k / (2 * np.sqrt((np.pi * w) / (kstep * (kmax**w - kmin**w))))
    eps = eps_r if fit_space == "r" else eps_k
    ok &= np.isfinite(eps) & (eps > 0)
    eps = np.where(ok, eps, 1.0)
    s02 = _per_spectrum(s02, n, "s02")

    # ---- parameter layout ------------------------------------------------------
    names, kinds = [], []          # kinds: (param, shell index or None)
    for i, lab in enumerate(labels):
        for pname in SHELL_PARAMS:
            names.append(f"{pname}_{lab}")
            kinds.append((pname, i))
        if not share_e0:
            names.append(f"de0_{lab}")
            kinds.append(("de0", i))
    if share_e0:
        names.append("de0")
        kinds.append(("de0", None))
    n_par = len(names)
    values = np.zeros((n, n_par))
    lo = np.full((n, n_par), -np.inf)
    hi = np.full((n, n_par), np.inf)
    varies = np.zeros(n_par, bool)
    for j, (pname, si) in enumerate(kinds):
        lab = None if si is None else labels[si]
        dflt = paths[si].degen if pname == "cn" else DEFAULT_INIT[pname]
        values[:, j] = _per_spectrum(_lookup(init, lab, pname, dflt), n, f"init {names[j]}")
        varies[j] = bool(_lookup(vary, lab, pname, DEFAULT_VARY[pname]))
        b = _lookup(bounds, lab, pname, DEFAULT_BOUNDS[pname])
        b = (None, None) if b is None else b
        lo[:, j] = _per_spectrum(-np.inf if b[0] is None else b[0], n, f"bounds {names[j]}")
        hi[:, j] = _per_spectrum(np.inf if b[1] is None else b[1], n, f"bounds {names[j]}")
    vidx = np.flatnonzero(varies)
    var_names = [names[j] for j in vidx]
    nv = len(vidx)
    if nv == 0:
        raise ValueError("no parameter is varied")
    values[:, vidx] = np.clip(values[:, vidx], lo[:, vidx], hi[:, vidx])
    data_sub = data[:, prob.cols]
    data_res = (data_sub @ prob.MT) / eps[:, None]           # (n, m)

    # ---- residual and Jacobian ---------------------------------------------------
    want = tuple({"cn": "amp", "de0": "e0"}.get(kinds[j][0], kinds[j][0]) for j in vidx)
    pos = {j: i for i, j in enumerate(vidx)}

    def evaluate_chunk(rows, vals, jac):
        nr = len(rows)
        model = np.zeros((nr, len(prob.kk)))
        dmodel = np.zeros((nr, nv, len(prob.kk))) if jac else None
        for table in paths:
            j_cn = names.index(f"cn_{table.label}")
            j_e0 = names.index("de0" if share_e0 else f"de0_{table.label}")
            jpar = {pn: names.index(f"{pn}_{table.label}") for pn in SHELL_PARAMS[1:]}
            out = table.chi(prob.kk, amp=vals[:, j_cn] * s02[rows], e0=vals[:, j_e0],
                            deltar=vals[:, jpar["deltar"]], sigma2=vals[:, jpar["sigma2"]],
                            c3=vals[:, jpar["c3"]], jacobian=jac, wrt=want)
            if jac:
                c, d = out
                if j_cn in pos:
                    dmodel[:, pos[j_cn]] += d["amp"] * s02[rows, None]
                if j_e0 in pos:
                    dmodel[:, pos[j_e0]] += d["e0"]
                for pn, j in jpar.items():
                    if j in pos:
                        dmodel[:, pos[j]] += d[pn]
            else:
                c = out
            model += c
        resid = data_res[rows] - (model @ prob.MT) / eps[rows, None]
        if not jac:
            return model, resid, None
        # Jacobian stored as (rows, n_varys, m)
        J = (dmodel.reshape(nr * nv, -1) @ prob.MT).reshape(nr, nv, -1)
        J *= -1.0 / eps[rows, None, None]
        return model, resid, J

    def evaluate(rows, vals, jac=True, chunk=128):
        """model on the support (r, n_kk), residual (r, m), Jacobian (r, n_varys, m).

        Chunks keep the elementwise temporaries in cache (2-3x faster than one pass).
        """
        if len(rows) <= chunk:
            return evaluate_chunk(rows, vals, jac)
        parts = [evaluate_chunk(rows[i:i + chunk], vals[i:i + chunk], jac)
                 for i in range(0, len(rows), chunk)]
        return tuple(None if parts[0][j] is None else np.concatenate([p[j] for p in parts])
                     for j in range(3))

    # ---- vectorised Levenberg-Marquardt ---------------------------------------------
    fit_rows = np.flatnonzero(ok)
    nfev = np.zeros(n, int)
    success = np.zeros(n, bool)
    message = np.array(["non-finite data or noise estimate"] * n, dtype=object)
    message[fit_rows] = "maximum number of iterations reached"
    x = values[fit_rows].copy()
    m_model, r, J = evaluate(fit_rows, x) if len(fit_rows) else (None, None, None)
    nfev[fit_rows] = 1
    model_best = np.zeros((n, len(prob.kk)))
    if len(fit_rows):
        model_best[fit_rows] = m_model
        cost = (r * r).sum(axis=1)
        lam = np.full(len(fit_rows), 1e-3)
        active = np.ones(len(fit_rows), bool)
        lo_f, hi_f = lo[fit_rows][:, vidx], hi[fit_rows][:, vidx]
        for _ in range(max_nfev):
            a_idx = np.flatnonzero(active)
            if len(a_idx) == 0:
                break
            Ja, ra = J[a_idx], r[a_idx]
            A = Ja @ np.swapaxes(Ja, 1, 2)
            g = (Ja @ ra[..., None])[..., 0]
            diag = np.einsum("rii->ri", A).copy()
            diag = np.maximum(diag, 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300)
            lhs = A + lam[a_idx, None, None] * (diag[:, :, None] * np.eye(nv))
            # active set: a parameter on a bound whose descent direction points out of
            # the box is held there for this step (otherwise the clipped step stalls)
            xv0 = x[a_idx][:, vidx]
            held = (((xv0 <= lo_f[a_idx]) & (g > 0)) | ((xv0 >= hi_f[a_idx]) & (g < 0)))
            g_full, A_full = g, A
            if held.any():
                keep = ~held
                lhs = lhs * (keep[:, :, None] & keep[:, None, :]) + held[:, :, None] * np.eye(nv)
                g = np.where(held, 0.0, g)
            try:
                step = -np.linalg.solve(lhs, g[..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = -np.stack([np.linalg.lstsq(m_, g_, rcond=None)[0]
                                  for m_, g_ in zip(lhs, g)])
            xv = x[a_idx][:, vidx]
            xt_v = np.clip(xv + step, lo_f[a_idx], hi_f[a_idx])
            xt = x[a_idx].copy()
            xt[:, vidx] = xt_v
            mt, rt, Jt = evaluate(fit_rows[a_idx], xt)
            nfev[fit_rows[a_idx]] += 1
            cost_t = (rt * rt).sum(axis=1)
            better = np.isfinite(cost_t) & (cost_t <= cost[a_idx])
            acc = a_idx[better]
            dcost = cost[acc] - cost_t[better]
            # predicted reduction of the linearised model for the step actually taken
            # (MINPACK's ftol test: actual and predicted reductions both small)
            ds = (xt_v - xv)[better]
            pred = -(2.0 * np.einsum("ri,ri->r", g_full[better], ds)
                     + np.einsum("ri,rij,rj->r", ds, A_full[better], ds))
            sc = np.sqrt(diag[better])
            dx_norm = np.linalg.norm(sc * (xt_v[better] - xv[better]), axis=1)
            x_norm = np.linalg.norm(sc * xv[better], axis=1)
            x[acc], r[acc], J[acc], cost[acc] = xt[better], rt[better], Jt[better], cost_t[better]
            model_best[fit_rows[acc]] = mt[better]
            lam[acc] = np.maximum(lam[acc] * 0.2, 1e-10)
            rej = a_idx[~better]
            lam[rej] *= 10.0
            conv_f = (dcost <= ftol * cost[acc]) & (pred <= ftol * cost[acc])
            conv_x = dx_norm <= xtol * (x_norm + xtol)
            done = acc[conv_f | conv_x]
            active[done] = False
            success[fit_rows[done]] = True
            message[fit_rows[acc[conv_f]]] = "converged: relative reduction of chi-square below ftol"
            message[fit_rows[acc[conv_x & ~conv_f]]] = "converged: relative step below xtol"
            stuck = rej[lam[rej] > 1e10]
            active[stuck] = False
            success[fit_rows[stuck]] = True
            message[fit_rows[stuck]] = "converged: no further decrease of chi-square possible"
        values[fit_rows] = x

    # ---- statistics as in larch.feffit ------------------------------------------------
    npts = prob.npts
    n_idp = 1 + 2 * (rmax - rmin) * (kmax - kmin) / np.pi
    chi_square = np.full(n, np.nan)
    redchi = np.full(n, np.nan)
    r_factor = np.full(n, np.nan)
    covar = np.full((n, nv, nv), np.nan)
    stderr_v = np.full((n, nv), np.nan)
    if len(fit_rows):
        ssq = (r * r).sum(axis=1)
        chi_square[fit_rows] = ssq * n_idp / npts
        redchi[fit_rows] = chi_square[fit_rows] / (n_idp - nv)
        r_factor[fit_rows] = ssq / (data_res[fit_rows] ** 2).sum(axis=1)
        A = J @ np.swapaxes(J, 1, 2)
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
    values[~ok] = np.nan
    value = {nm: values[:, j] for j, nm in enumerate(names)}
    stderr = {nm: np.zeros(n) for nm in names}
    at_bound = {}
    for jj, j in enumerate(vidx):
        stderr[names[j]] = stderr_v[:, jj]
        at_bound[names[j]] = ok & ((values[:, j] <= lo[:, j]) | (values[:, j] >= hi[:, j]))
    for nm in names:
        stderr[nm][~ok] = np.nan
    model_chi = np.zeros((n, len(prob.model_k)))
    model_chi[:, prob.cols] = model_best
    model_chi[~ok] = np.nan
    settings = dict(kmin=kmin, kmax=kmax, kweight=kweight, dk=dk, dk2=dk2, window=window,
                    rmin=rmin, rmax=rmax, fit_space=fit_space, share_e0=share_e0,
                    max_nfev=max_nfev, ftol=ftol, xtol=xtol, nfft=nfft, kstep=kstep,
                    vary={nm: bool(varies[j]) for j, nm in enumerate(names)},
                    bounds_method="projected LM step (clip to box)",
                    epsilon="given epsilon_k" if epsilon_k is not None else "estimate_noise")
    return BatchFitResult(
        labels=labels, param_names=names, var_names=var_names, value=value, stderr=stderr,
        at_bound=at_bound, covar=covar, chi_square=chi_square, redchi=redchi,
        r_factor=r_factor, n_idp=float(n_idp), n_varys=int(nv), npts=int(npts),
        epsilon_k=np.where(ok, eps_k, np.nan), epsilon_r=np.where(ok, eps_r, np.nan),
        success=success, message=message, nfev=nfev, model_k=prob.model_k,
        model_chi=model_chi, reff={p.label: p.reff for p in paths}, settings=settings)
