"""The residual and Jacobian of a batched shell fit (shared by :func:`~.fit.batch_fit`
and :func:`~.global_fit.batch_fit_global`).

:class:`BatchModel` holds the fixed part of a fit -- grids, the compressed FT matrix,
noise, the parameter layout with its vary flags, bounds and ties -- and evaluates, for
any rows and parameter values, Larch's residual, its sum of squares and, with the
Jacobian ``J`` (n_varys, m) of each row, ``A = J J^T`` and ``g = J r``.  See
:mod:`.fit` for why one dense matrix maps chi(k) to the residual.

Ties: a parameter may follow another of the same kind, ``value = factor x source``
(a shell's CN tied to the ligand CN, dE0 shared by a group of shells).  A tied
parameter is not varied; the source's Jacobian column collects ``factor`` times the
derivative of every path the tied parameter enters.
"""

from __future__ import annotations

import numpy as np

from .ft import resample_rows
from .problem import EVAL_CHUNK, estimate_noise_rows, cached_problem
from .result import DEFAULT_BOUNDS, DEFAULT_INIT, DEFAULT_VARY, SHELL_PARAMS
from .stack import PathStack


def per_spectrum(val, n, name):
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


class BatchModel:
    """Data, parameter layout and the residual/Jacobian evaluation of a batched fit.

    Attributes (after construction)
    -------------------------------
    names, kinds : parameter names and ``(param, shell index or None)``
    values, lo, hi : (n, n_par) start values and bounds (ties applied to ``values``)
    vidx : indices of the varied parameters; ``var_names``
    ok : (n,) rows that can be fitted (finite data and noise)
    eps_k, eps_r : (n,) noise
    data_res : (n, K) the data's residual (``data @ W^T / eps``)
    prob : the cached :class:`~.problem._Problem`
    """

    def __init__(self, k, chi, paths, *, kmin, kmax, kweight, dk, dk2, window, rmin, rmax,
                 fit_space, s02, init, vary, bounds, share_e0, ties, epsilon_k, nfft, kstep,
                 noise=None):
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
        self.paths, self.labels, self.share_e0 = paths, labels, share_e0
        n = self.n = len(chi)
        prob = self.prob = cached_problem(k, paths, kmin=kmin, kmax=kmax, kweight=kweight, dk=dk,
                                    dk2=dk2, window=window, rmin=rmin, rmax=rmax,
                                    fit_space=fit_space, nfft=nfft, kstep=kstep)
        data = resample_rows(k, chi, prob.model_k)
        ok = np.isfinite(data).all(axis=1)
        data[~ok] = 0.0
        if noise is not None:   # estimated by an earlier fit of these rows (batch_fit)
            if epsilon_k is not None:
                raise ValueError("give epsilon_k or noise, not both")
            eps_k, eps_r = (per_spectrum(v, n, "noise") for v in noise)
        elif epsilon_k is None:
            eps_k, eps_r = estimate_noise_rows(data, prob, kmin, kmax, kweight)
        else:
            eps_k = per_spectrum(epsilon_k, n, "epsilon_k")
            w = 2 * int(kweight) + 1
            eps_r = eps_k / (2 * np.sqrt((np.pi * w) / (kstep * (kmax**w - kmin**w))))
        eps = eps_r if fit_space == "r" else eps_k
        ok &= np.isfinite(eps) & (eps > 0)
        self.eps_k, self.eps_r = eps_k, eps_r
        self.eps = np.where(ok, eps, 1.0)
        self.ok = ok
        self.s02 = per_spectrum(s02, n, "s02")
        self.n_idp = 1 + 2 * (rmax - rmin) * (kmax - kmin) / np.pi
        self._layout(init, vary, bounds, ties or {})
        self.data_res = (data[:, prob.cols] @ prob.WT) / self.eps[:, None]   # (n, K)
        self._setup_jacobian()

    # ------------------------------------------------------------------ layout
    def _layout(self, init, vary, bounds, ties):
        labels, paths, n, share_e0 = self.labels, self.paths, self.n, self.share_e0
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
            values[:, j] = per_spectrum(_lookup(init, lab, pname, dflt), n, f"init {names[j]}")
            varies[j] = bool(_lookup(vary, lab, pname, DEFAULT_VARY[pname]))
            b = _lookup(bounds, lab, pname, DEFAULT_BOUNDS[pname])
            b = (None, None) if b is None else b
            lo[:, j] = per_spectrum(-np.inf if b[0] is None else b[0], n, f"bounds {names[j]}")
            hi[:, j] = per_spectrum(np.inf if b[1] is None else b[1], n, f"bounds {names[j]}")
        col_of = {nm: j for j, nm in enumerate(names)}
        self.ties = []                 # (tied column, source column, factor)
        for tied, (source, factor) in ties.items():
            if tied not in col_of or source not in col_of:
                raise ValueError(f"tie {tied} -> {source}: unknown parameter (parameters: {names})")
            jt, js = col_of[tied], col_of[source]
            if kinds[jt][0] != kinds[js][0]:
                raise ValueError(f"tie {tied} -> {source}: parameters of different kinds")
            if source in ties:
                raise ValueError(f"tie {tied} -> {source}: the source is tied itself")
            varies[jt] = False
            self.ties.append((jt, js, float(factor)))
        vidx = np.flatnonzero(varies)
        if len(vidx) == 0:
            raise ValueError("no parameter is varied")
        values[:, vidx] = np.clip(values[:, vidx], lo[:, vidx], hi[:, vidx])
        self.names, self.kinds, self.col_of = names, kinds, col_of
        self.values, self.lo, self.hi, self.varies = self.apply_ties(values), lo, hi, varies
        self.vidx, self.var_names, self.nv = vidx, [names[j] for j in vidx], len(vidx)

    def apply_ties(self, vals):
        """``vals`` (rows, n_par) with every tied column set from its source (in place)."""
        for jt, js, f in self.ties:
            vals[:, jt] = f * vals[:, js]
        return vals

    # ---------------------------------------------------------- residual, J
    def _setup_jacobian(self):
        labels, kinds, vidx = self.labels, self.kinds, self.vidx
        P = len(self.paths)
        col_of = self.col_of
        share_e0 = self.share_e0
        self.j_cn = [col_of[f"cn_{lab}"] for lab in labels]
        self.j_e0 = [col_of["de0" if share_e0 else f"de0_{lab}"] for lab in labels]
        self.j_dr = [col_of[f"deltar_{lab}"] for lab in labels]
        self.j_ss = [col_of[f"sigma2_{lab}"] for lab in labels]
        self.j_c3 = [col_of[f"c3_{lab}"] for lab in labels]
        deriv_of = {"cn": "amp", "de0": "e0"}
        # paths each column enters (de0 shared: all paths)
        enters = {j: (list(range(P)) if si is None else [si]) for j, (_, si) in enumerate(kinds)}
        # d model / d varied parameter = sum over (path p, weight) of the path derivative
        # (cn: times s02); a source collects its tied parameters' paths times the factor
        self.jac_terms = []
        for pos_i, j in enumerate(vidx):
            pname = kinds[j][0]
            terms = [(p, 1.0) for p in enters[j]]
            for jt, js, f in self.ties:
                if js == j:
                    terms += [(p, f) for p in enters[jt]]
            self.jac_terms.append((pos_i, deriv_of.get(pname, pname), terms))
        self.want = tuple(sorted({d for _, d, _ in self.jac_terms}))
        self.amp_pos = [pos_i for pos_i, deriv, _ in self.jac_terms if deriv == "amp"]
        self.neg_inv_eps = -1.0 / self.eps
        # c3 enters the model only when varied or nonzero somewhere (fixed values stay put)
        self.has_c3 = bool(any(kinds[j][0] == "c3" for j in vidx)
                           or np.any(self.values[:, self.j_c3] != 0))
        self.stack = PathStack(self.paths, self.prob.kk)
        self.nk = len(self.prob.kk)
        K = self.prob.WT.shape[1]
        cmax = min(EVAL_CHUNK, max(self.n, 1))
        self._g_buf = np.empty((self.nv, cmax, K))             # J = -G / eps, parameter-major
        self._sum_buf = np.empty((cmax, self.nk))

    def _evaluate_chunk(self, rows, cols, jac, out, o):
        nr = len(rows)
        P = len(self.paths)
        WT = self.prob.WT
        ev = self.stack.evaluate(cols, self.want if jac else (), reuse=True)
        chi_p, d = ev if jac else (ev, None)
        model = out["model"][o:o + nr]
        np.copyto(model, chi_p[0])
        for p in range(1, P):
            model += chi_p[p]
        r = model @ WT
        r *= self.neg_inv_eps[rows, None]
        r += self.data_res[rows]
        out["cost"][o:o + nr] = np.einsum("ij,ij->i", r, r)
        if not jac:
            return
        G = self._g_buf[:, :nr]
        buf = self._sum_buf[:nr]
        for pos_i, deriv, terms in self.jac_terms:
            (p0, w0), rest = terms[0], terms[1:]
            if not rest and w0 == 1.0:
                src = d[deriv][p0]
            else:
                src = np.multiply(d[deriv][p0], w0, out=buf)
                for p, w in rest:
                    if w == 1.0:
                        src += d[deriv][p]
                    else:
                        src += w * d[deriv][p]
            np.matmul(src, WT, out=G[pos_i])
        for pos_i in self.amp_pos:
            G[pos_i] *= self.s02[rows, None]
        G *= self.neg_inv_eps[rows, None]
        Gr = np.ascontiguousarray(G.transpose(1, 0, 2))          # (nr, nv, K)
        out["A"][o:o + nr] = Gr @ np.swapaxes(Gr, 1, 2)
        out["g"][o:o + nr] = (Gr @ r[:, :, None])[:, :, 0]

    def evaluate(self, rows, vals, jac=True, chunk=EVAL_CHUNK):
        """cost (r,), model on the support (r, n_kk) and, with ``jac``, ``A = J J^T``
        (r, n_varys, n_varys) and ``g = J r`` (r, n_varys) for the residual ``r`` and the
        Jacobian ``J`` (n_varys, m) of each row.  ``vals`` (r, n_par): every parameter
        (tied columns are recomputed from their sources).

        Rows go in chunks small enough to keep the element-wise temporaries of the path
        evaluation in cache (several times faster than one pass over all rows).
        """
        vals = self.apply_ties(np.array(vals, dtype=float))
        nr = len(rows)
        out = {"cost": np.empty(nr), "model": np.empty((nr, self.nk))}
        if jac:
            out["A"] = np.empty((nr, self.nv, self.nv))
            out["g"] = np.empty((nr, self.nv))
        cols = self.stack.columns((vals[:, self.j_cn] * self.s02[rows, None]).T,
                                  vals[:, self.j_e0].T, vals[:, self.j_dr].T,
                                  vals[:, self.j_ss].T, vals[:, self.j_c3].T, has_c3=self.has_c3)
        for i in range(0, nr, chunk):
            sl = slice(i, i + chunk)
            self._evaluate_chunk(rows[sl], cols.rows(sl), jac, out, i)
        return out

    def parameter_table(self, values, stderr_v):
        """``(value, stderr, at_bound)``, dicts name -> (n,), of the fitted ``values`` (n,
        n_par; set to NaN in place where a row is not ok) and the errors ``stderr_v`` (n,
        n_varys) of the varied parameters: a fixed parameter's error is 0, a tied one's
        |factor| x its source's; ``at_bound`` for the varied ones."""
        ok, names = self.ok, self.names
        values[~ok] = np.nan
        value = {nm: values[:, j] for j, nm in enumerate(names)}
        stderr = {nm: np.zeros(self.n) for nm in names}
        at_bound = {}
        for jj, j in enumerate(self.vidx):
            stderr[names[j]] = stderr_v[:, jj]
            at_bound[names[j]] = ok & ((values[:, j] <= self.lo[:, j])
                                       | (values[:, j] >= self.hi[:, j]))
        for jt, js, f in self.ties:
            stderr[names[jt]] = np.abs(f) * stderr[names[js]]
        for nm in names:
            stderr[nm][~ok] = np.nan
        return value, stderr, at_bound
