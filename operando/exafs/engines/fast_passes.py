"""The batched passes of the fast engine: every step's fit as arrays, and the fit
policy (:mod:`operando.exafs.policy`) applied to all of them at once.

:class:`Fits` holds one entry per fitted step of every result column;
:class:`BatchedPasses` runs :func:`operando.exafs.batch.batch_fit` from given
starts, judges the fits, pins absent shells and compares pass results.  The order
of the passes is :func:`operando.exafs.engines.fast.fit_rows`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from ..batch import batch_fit, tabulate_path
from ..plan import build_plan, default_start, param_names
from ..policy import (at_bound, fit_problems, hamilton_threshold, n_pinned,
                      removed_parameters)
from ..._util.stats import f_sf
from ..significance import detection_limit, f_test, needs_refit, wald_f

#: Steps per batch_fit call (bounds the (n, n_varys, n_residual) Jacobian).
FIT_CHUNK = 2048
#: ftol and xtol of the shell fits: Larch's feffit values (batch_fit's default is 100x
#: tighter).  Measured on 1,000 simulated Cu steps: CN, R and sigma2 within 0.004 of
#: their error bars of the 1e-8 results, error bars within 0.2 %.
FIT_TOL = 1e-6


@lru_cache(maxsize=64)
def _table(file: str, label: str):
    return tabulate_path(file, label=label)


def path_tables(model, paths) -> list:
    return [_table(str(paths[s.label].file), s.label) for s in model.shells]


class Fits:
    """Struct of arrays: one entry per fitted step of every result column.

    Besides the result columns: ``free_chi_square``, ``free_n_varys``, ``free_n_idp``
    and ``free_cn_<S>``: the free fit (before any absent shell was pinned) that the
    F-test compares with (:mod:`operando.exafs.significance`).
    """

    def __init__(self, n: int, labels: Sequence[str], tested: Sequence[str] = ()):
        nan = np.full(n, np.nan)
        self.cols: dict[str, np.ndarray] = {}
        for lab in labels:
            for kind in ("cn", "r", "sigma2", "de0"):
                self.cols[f"{kind}_{lab}"] = nan.copy()
                self.cols[f"{kind}_{lab}_err"] = nan.copy()
        for name in ("chi_square", "redchi", "r_factor", "n_idp", "free_chi_square",
                     "free_n_idp"):
            self.cols[name] = nan.copy()
        for lab in tested:
            for name in (f"free_cn_{lab}", f"free_cn_{lab}_err", f"cn_{lab}_limit", f"p_{lab}"):
                self.cols[name] = nan.copy()
        self.cols["n_varys"] = np.zeros(n, int)
        self.cols["free_n_varys"] = np.zeros(n, int)
        self.bad = np.array([""] * n, dtype=object)
        self.absent = np.empty(n, dtype=object)
        self.absent[:] = [()] * n
        self.n = n

    def __getitem__(self, key):
        return self.cols[key]

    def subset(self, idx) -> "Fits":
        out = Fits.__new__(Fits)
        out.cols = {k: v[idx] for k, v in self.cols.items()}
        out.bad, out.absent, out.n = self.bad[idx], self.absent[idx], len(idx)
        return out

    def put(self, idx, other: "Fits", mask=None):
        """Rows ``idx`` (positions in self) take ``other``'s rows where ``mask``."""
        idx = np.asarray(idx, int)
        if mask is None:
            mask = np.ones(len(idx), bool)
        sel = idx[mask]
        for k, v in self.cols.items():
            v[sel] = other.cols[k][mask]
        self.bad[sel] = other.bad[mask]
        self.absent[sel] = other.absent[mask]

    def mark_free(self):
        """Record every row as its own free fit (a pass without pinned shells)."""
        for name in ("chi_square", "n_idp", "n_varys"):
            self.cols[f"free_{name}"][:] = self.cols[name]
        for name in self.cols:
            if name.startswith("free_cn_"):
                self.cols[name][:] = self.cols["cn_" + name[len("free_cn_"):]]


def bound_names(res, bounds, plan, names) -> list[list[str]]:
    """Per spectrum of ``res`` (a batch fit with ``bounds``, its keyword argument), the
    varied parameters that ended on a bound, by their ``names`` (the larch engine's,
    :func:`operando.exafs.plan.param_names`)."""
    out = [[] for _ in range(len(res))]
    for name in res.var_names:
        if name == "de0":
            lo, hi = bounds["de0"]
            pname = next(iter(plan.groups))
        else:
            kind, lab = name.split("_", 1)
            lo, hi = bounds[lab][kind]
            pname = plan.of_shell[lab][kind]
        for i in np.flatnonzero(at_bound(res.value[name], lo, hi)):
            out[i].append(names[pname])
    return out


def batch_arguments(plan, labels) -> dict:
    """``batch_fit`` keyword arguments (init, vary, bounds, ties, share_e0) of a plan.

    dE0: one shared parameter when the plan has a single, untied dE0 for every shell;
    otherwise one per shell, the first shell of each group carrying the group's
    parameter and the others tied to it (a group following another group ties to
    that group's first shell).
    """
    init, vary, bounds, ties = {}, {}, {}, {}
    de0_pars = list(plan.groups)
    share_e0 = len(de0_pars) == 1 and plan.pars[de0_pars[0]].tie is None
    for lab in labels:
        use = plan.of_shell[lab]
        init[lab], vary[lab], bounds[lab] = {}, {"c3": False}, {}
        for kind in ("cn", "deltar", "sigma2"):
            par = plan.pars[use[kind]]
            init[lab][kind] = par.value
            vary[lab][kind] = bool(par.vary)
            if par.vary:
                bounds[lab][kind] = (par.lo, par.hi)
            if par.tie is not None:
                ties[f"{kind}_{lab}"] = (f"{kind}_{par.tie[0].split(':', 1)[1]}", par.tie[1])
        if share_e0:
            continue
        gname = use["de0"]
        gpar = plan.pars[gname]
        leader = plan.groups[gname][0]
        init[lab]["de0"] = gpar.value
        vary[lab]["de0"] = False
        if gpar.tie is not None:
            ties[f"de0_{lab}"] = (f"de0_{plan.groups[gpar.tie[0]][0]}", gpar.tie[1])
        elif lab != leader:
            ties[f"de0_{lab}"] = (f"de0_{leader}", 1.0)
        elif gpar.vary:
            vary[lab]["de0"] = True
            bounds[lab]["de0"] = (gpar.lo, gpar.hi)
    if share_e0:
        par = plan.pars[de0_pars[0]]
        init["de0"], vary["de0"] = par.value, bool(par.vary)
        bounds["de0"] = (par.lo, par.hi) if par.vary else (None, None)
    return dict(init=init, vary=vary, bounds=bounds, ties=ties, share_e0=share_e0)


class BatchedPasses:
    """Batched passes over the data rows ``chi`` (``e0``: their E0, eV, or None)."""

    def __init__(self, k, chi, model, paths, s02, opts, e0=None):
        self.k, self.chi, self.model, self.paths, self.s02, self.opts = k, chi, model, paths, s02, opts
        self.e0 = None if e0 is None else np.asarray(e0, float)
        self.tables = path_tables(model, paths)
        self.labels = [s.label for s in model.shells]
        self.tested = model.tested_shells()
        self.reff = {lab: paths[lab].reff for lab in self.labels}
        self.defaults = {s.label: default_start(s) for s in model.shells}
        self.nfit = 0  # batched passes (for the log)
        # every pass fits rows of the same chi with the same window: each row's noise
        # (epsilon_k, epsilon_r) is estimated by its first pass and reused by the others
        self.noise = np.full((2, len(chi)), np.nan)
        self.noise_known = np.zeros(len(chi), bool)

    def new_fits(self, n) -> Fits:
        return Fits(n, self.labels, self.tested)

    # ---------------------------------------------------------------- starts
    def default_start(self, n):
        return {lab: {kk: np.full(n, v) for kk, v in d.items()} for lab, d in self.defaults.items()}

    def const_start(self, start: Mapping, n):
        return {lab: {kk: np.full(n, float(v)) for kk, v in d.items()} for lab, d in start.items()}

    def start_from(self, fits: Fits, idx, absent=()):
        """``policy.start_from`` for rows ``idx`` of ``fits`` (absent shells restart)."""
        n = len(idx)
        out = {}
        for lab in self.labels:
            d = self.defaults[lab]
            cn = fits[f"cn_{lab}"][idx]
            de0 = fits[f"de0_{lab}"][idx]
            restart = np.full(n, lab in absent) | ~np.isfinite(cn)
            out[lab] = {
                "cn": np.where(restart, d["cn"], np.maximum(np.nan_to_num(cn), 0.5)),
                "dr": np.where(restart, d["dr"], np.nan_to_num(fits[f"r_{lab}"][idx] - self.reff[lab])),
                "sigma2": np.where(restart, d["sigma2"], np.nan_to_num(fits[f"sigma2_{lab}"][idx],
                                                                       nan=d["sigma2"])),
                "de0": np.nan_to_num(de0, nan=0.0),
            }
        return out

    # ----------------------------------------------------------------- a pass
    def fit(self, rows, start, absent=(), *, removed=(), fixed_cn=None) -> Fits:
        """One batched fit of the data rows ``rows`` with the shells ``absent`` pinned,
        ``removed`` taken out and the CNs ``fixed_cn`` (label -> (n,) array) held."""
        out = self.new_fits(len(rows))
        fixed_cn = fixed_cn or {}
        for a in range(0, len(rows), FIT_CHUNK):
            sl = slice(a, min(a + FIT_CHUNK, len(rows)))
            part = self._fit(np.asarray(rows)[sl], {lab: {kk: v[sl] for kk, v in d.items()}
                                                    for lab, d in start.items()}, absent,
                             removed, {lab: np.asarray(v)[sl] for lab, v in fixed_cn.items()})
            out.put(np.arange(sl.start, sl.stop), part)
        return out

    def _fit(self, rows, start, absent, removed=(), fixed_cn=None) -> Fits:
        model, n = self.model, len(rows)
        self.nfit += 1
        plan = build_plan(model, start, absent=absent, removed=removed, fixed_cn=fixed_cn,
                          e0=None if self.e0 is None else self.e0[rows])
        args = batch_arguments(plan, self.labels)
        known = bool(self.noise_known[rows].all())
        res = batch_fit(self.k, self.chi[rows], self.tables, **model.fit_window(), s02=self.s02,
                        ftol=FIT_TOL, xtol=FIT_TOL,
                        noise=tuple(self.noise[:, rows]) if known else None, **args)
        if not known:
            self.noise[:, rows] = res.epsilon_k, res.epsilon_r
            self.noise_known[rows] = True
        out = self.new_fits(n)
        var_err = []
        errs_of = set(res.var_names) | set(args["ties"])
        for lab in self.labels:
            e0name = "de0" if args["share_e0"] else f"de0_{lab}"
            for kind, src, off in (("cn", f"cn_{lab}", 0.0), ("r", f"deltar_{lab}", self.reff[lab]),
                                   ("sigma2", f"sigma2_{lab}", 0.0), ("de0", e0name, 0.0)):
                out.cols[f"{kind}_{lab}"][:] = res.value[src] + off
                err = np.array(res.stderr[src], float)
                if src not in errs_of:
                    err = np.full(n, np.nan)  # fixed: no error bar, as the larch engine
                elif src in res.var_names:
                    var_err.append(err)
                out.cols[f"{kind}_{lab}_err"][:] = err
        out.cols["chi_square"][:] = res.chi_square
        out.cols["redchi"][:] = res.redchi
        out.cols["r_factor"][:] = res.r_factor
        out.cols["n_idp"][:] = res.n_idp
        out.cols["n_varys"][:] = res.n_varys
        out.absent[:] = [tuple(a for a in self.labels if a in absent)] * n
        if not absent and not removed and not fixed_cn:
            out.mark_free()
        # The acceptance rule of both engines (policy.fit_problems), per fit.
        on_bound = bound_names(res, args["bounds"], plan, param_names(model, plan))
        errorbars = np.all([np.isfinite(e) & (e > 0) for e in var_err], axis=0)
        finite = np.isfinite(res.chi_square)
        converged = finite & res.success
        # "" (new_fits' value) where converged with error bars and nothing on a bound
        any_bound = np.array([bool(b) for b in on_bound], bool)
        for i in np.flatnonzero(~(converged & errorbars) | any_bound):
            out.bad[i] = fit_problems(bool(converged[i]), res.message[i],
                                      on_bound[i], errorbars[i] or not finite[i])
        return out

    # ---------------------------------------------------------- significance
    def significance(self, rows, fits: Fits) -> None:
        """F-test and detection limit of every tested shell, for every fitted row, in
        ``fits`` (``p_S``, ``cn_S_limit``): one batched pass without the shell, and two
        batched profile passes per set of pinned shells (:mod:`operando.exafs.significance`)."""
        pos = np.flatnonzero(np.isfinite(fits["chi_square"]) & np.isfinite(fits["free_chi_square"]))
        if len(pos) == 0:
            return
        for lab in self.tested:
            b = removed_parameters(self.model, lab)
            nu = fits["free_n_idp"][pos] - fits["free_n_varys"][pos]
            refit = needs_refit(fits[f"free_cn_{lab}"][pos], fits[f"free_cn_{lab}_err"][pos])
            F = wald_f(fits[f"free_cn_{lab}"][pos], fits[f"free_cn_{lab}_err"][pos], b)
            sub = pos[refit]
            if len(sub):
                h0 = self.fit(rows[sub], self.start_from(fits, sub, ()), removed=(lab,))
                F[refit] = f_test(h0["chi_square"], fits["free_chi_square"][sub], b,
                                  fits["free_n_idp"][sub], fits["free_n_varys"][sub])[0]
            fits[f"p_{lab}"][pos] = np.where(np.isfinite(F), f_sf(np.where(
                np.isfinite(F), F, 1.0), b, np.where(nu > 0, nu, 1.0)), np.nan)
            by_absent: dict[tuple, list[int]] = {}
            for j in pos:
                by_absent.setdefault(tuple(fits.absent[j]), []).append(int(j))
            for absent, idx in by_absent.items():
                idx = np.array(idx)
                start = self.start_from(fits, idx, ())

                def profile(c, sub, idx=idx, start=start, absent=absent, lab=lab):
                    st = {s: {kk: v[sub] for kk, v in d.items()} for s, d in start.items()}
                    return self.fit(rows[idx[sub]], st, absent, fixed_cn={lab: c})["chi_square"]

                fits[f"cn_{lab}_limit"][idx] = detection_limit(
                    fits[f"cn_{lab}"][idx], fits[f"cn_{lab}_err"][idx], fits["chi_square"][idx],
                    fits["n_idp"][idx] - fits["n_varys"][idx], profile)

    # ------------------------------------------------------- robustness rules
    def zero_shells(self, fits: Fits) -> list[tuple]:
        """``policy.zero_shells`` per row (shells with a varied CN only)."""
        flags = []
        for lab in self.labels:
            if self.model.spec(lab).cn.mode != "free":
                flags.append(np.zeros(fits.n, bool))
                continue
            cn, err = fits[f"cn_{lab}"], fits[f"cn_{lab}_err"]
            fe = np.isfinite(err)
            flags.append(np.isfinite(cn) & ((fe & (cn < 2 * np.where(fe, err, 0)))
                                            | (~fe & (cn < 0.5))))
        return [tuple(lab for lab, f in zip(self.labels, col) if f) for col in zip(*flags)]

    def better(self, a: Fits, b: Fits) -> np.ndarray:
        """True where ``b`` should replace ``a`` (acceptable first, then lower chi-square)."""
        def key(f):
            cs = np.where(np.isfinite(f["chi_square"]), f["chi_square"], np.inf)
            return (f.bad != "").astype(int), cs
        ba, ca = key(a)
        bb, cb = key(b)
        return (bb < ba) | ((bb == ba) & (cb < ca))

    def settle(self, rows, fits: Fits) -> Fits:
        """Absent-shell handling of ``fits`` (rows of the data ``rows``); returns a new Fits."""
        out = fits.subset(np.arange(fits.n))
        finite = np.isfinite(fits["chi_square"])
        zero = self.zero_shells(fits)
        groups: dict[tuple, list[int]] = {}
        for i, z in enumerate(zero):
            if z and finite[i]:
                groups.setdefault(z, []).append(i)
        for absent, pos in groups.items():
            pos = np.array(pos)
            free = fits.subset(pos)
            con = self.fit(rows[pos], self.start_from(fits, pos, absent), absent)
            # Hamilton-type test (policy.constraint_acceptable)
            c_free, c_con, red = free["chi_square"], con["chi_square"], free["redchi"]
            trivially = ~(np.isfinite(c_free) & np.isfinite(red) & (red > 0))
            n_fixed = n_pinned(self.model, absent)
            with np.errstate(invalid="ignore", divide="ignore"):
                acceptable = np.isfinite(c_con) & (
                    trivially | (n_fixed <= 0)
                    | ((c_con - c_free) / red <= hamilton_threshold(max(n_fixed, 1))))
            chosen = con
            # a shell clearly present once its distance is pinned is released again
            back_sets = []
            for j in range(len(pos)):
                back = tuple(s for s in absent if np.isfinite(con[f"cn_{s}_err"][j])
                             and con[f"cn_{s}"][j] > 2 * con[f"cn_{s}_err"][j])
                back_sets.append(back if acceptable[j] else ())
            release_groups: dict[tuple, list[int]] = {}
            for j, back in enumerate(back_sets):
                if back:
                    release_groups.setdefault(back, []).append(j)
            for back, jj in release_groups.items():
                jj = np.array(jj)
                still = tuple(s for s in absent if s not in back)
                rel = self.fit(rows[pos[jj]], self.start_from(con, jj, still), still)
                rzero = self.zero_shells(rel)
                take = np.array([not rel.bad[m] and not rzero[m] for m in range(len(jj))])
                chosen.put(jj, rel, take)
            for name in chosen.cols:     # the F-test compares with the free fit
                if name.startswith("free_"):
                    chosen.cols[name][:] = free.cols[name]
            out.put(pos, chosen, acceptable)
        return out


def trailing_median(values, use, window):
    """Per row, the median of ``values`` over the last ``window`` preceding rows with
    ``use`` (NaN with fewer than 3 of them)."""
    out = np.full(len(values), np.nan)
    pos = np.flatnonzero(use)
    if len(pos) < 3:
        return out
    v = np.asarray(values, float)[pos]
    # before row i there are cnt[i] used rows; window = v[max(0, cnt - window):cnt]
    cnt = np.searchsorted(pos, np.arange(len(values)), side="left")
    meds = np.full(len(v) + 1, np.nan)           # meds[c]: median of the window ending at c
    for c in range(3, min(window, len(v)) + 1):
        meds[c] = np.median(v[:c])
    if len(v) > window:
        from numpy.lib.stride_tricks import sliding_window_view

        meds[window + 1:] = np.median(sliding_window_view(v, window)[1:], axis=1)
    return meds[cnt]
