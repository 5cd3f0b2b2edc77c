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
from ..policy import at_bound, defaults, fit_problems, hamilton_threshold

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
    """Struct of arrays: one entry per fitted step of every result column."""

    def __init__(self, n: int, labels: Sequence[str], n_k: int):
        nan = np.full(n, np.nan)
        self.cols: dict[str, np.ndarray] = {}
        for lab in labels:
            for kind in ("cn", "r", "sigma2", "de0"):
                self.cols[f"{kind}_{lab}"] = nan.copy()
                self.cols[f"{kind}_{lab}_err"] = nan.copy()
        for name in ("chi_square", "redchi", "r_factor", "n_idp"):
            self.cols[name] = nan.copy()
        self.cols["n_varys"] = np.zeros(n, int)
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


class BatchedPasses:
    def __init__(self, k, chi, model, paths, s02, opts):
        self.k, self.chi, self.model, self.paths, self.s02, self.opts = k, chi, model, paths, s02, opts
        self.tables = path_tables(model, paths)
        self.labels = [s.label for s in model.shells]
        self.reff = {lab: paths[lab].reff for lab in self.labels}
        self.defaults = {s.label: defaults(s, model) for s in model.shells}
        self.nfit = 0  # batched passes (for the log)

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
    def fit(self, rows, start, absent=()) -> Fits:
        """One batched fit of the data rows ``rows`` with the shells ``absent`` pinned."""
        out = Fits(len(rows), self.labels, self.k.size)
        for a in range(0, len(rows), FIT_CHUNK):
            sl = slice(a, min(a + FIT_CHUNK, len(rows)))
            part = self._fit(np.asarray(rows)[sl], {lab: {kk: v[sl] for kk, v in d.items()}
                                                    for lab, d in start.items()}, absent)
            out.put(np.arange(sl.start, sl.stop), part)
        return out

    def _fit(self, rows, start, absent) -> Fits:
        model, n = self.model, len(rows)
        self.nfit += 1
        init, vary, bounds = {}, {}, {}
        if model.share_e0:
            de0 = np.mean([start[lab]["de0"] for lab in self.labels], axis=0)
            init["de0"] = np.clip(de0, -0.9 * model.de0_max, 0.9 * model.de0_max)
            bounds["de0"] = (-model.de0_max, model.de0_max)
        for spec in model.shells:
            lab, s = spec.label, start[spec.label]
            if lab in absent:
                ss = spec.absent_sigma2 if spec.absent_sigma2 is not None else model.absent_sigma2
                init[lab] = {"cn": np.clip(s["cn"], 0.0, 0.9 * spec.cn_max), "deltar": 0.0,
                             "sigma2": float(ss)}
                vary[lab] = {"cn": True, "deltar": False, "sigma2": False}
                bounds[lab] = {"cn": (model.absent_cn_min, spec.cn_max)}
            else:
                init[lab] = {"cn": np.clip(s["cn"], 0.3, 0.9 * spec.cn_max),
                             "deltar": np.clip(s["dr"], -0.8 * model.dr_max, 0.8 * model.dr_max),
                             "sigma2": np.clip(s["sigma2"], 1.2 * model.sigma2_min,
                                               0.9 * model.sigma2_max)}
                vary[lab] = {"cn": True, "deltar": True, "sigma2": True}
                bounds[lab] = {"cn": (spec.cn_min, spec.cn_max),
                               "deltar": (-model.dr_max, model.dr_max),
                               "sigma2": (model.sigma2_min, model.sigma2_max)}
            vary[lab]["c3"] = False
            if not model.share_e0:
                init[lab]["de0"] = np.clip(s["de0"], -0.9 * model.de0_max, 0.9 * model.de0_max)
                vary[lab]["de0"] = True
                bounds[lab]["de0"] = (-model.de0_max, model.de0_max)
        res = batch_fit(self.k, self.chi[rows], self.tables, kmin=model.kmin, kmax=model.kmax,
                        kweight=model.kweight, dk=model.dk, window=model.window, rmin=model.rmin,
                        rmax=model.rmax, fit_space=model.fit_space, s02=self.s02, init=init,
                        vary=vary, bounds=bounds, share_e0=model.share_e0, ftol=FIT_TOL,
                        xtol=FIT_TOL)
        out = Fits(n, self.labels, self.k.size)
        var_err = []
        for lab in self.labels:
            e0name = "de0" if model.share_e0 else f"de0_{lab}"
            for kind, src, off in (("cn", f"cn_{lab}", 0.0), ("r", f"deltar_{lab}", self.reff[lab]),
                                   ("sigma2", f"sigma2_{lab}", 0.0), ("de0", e0name, 0.0)):
                out.cols[f"{kind}_{lab}"][:] = res.value[src] + off
                err = np.array(res.stderr[src], float)
                if src not in res.var_names:
                    err = np.full(n, np.nan)  # fixed: no error bar, as the larch engine
                else:
                    var_err.append(err)
                out.cols[f"{kind}_{lab}_err"][:] = err
        out.cols["chi_square"][:] = res.chi_square
        out.cols["redchi"][:] = res.redchi
        out.cols["r_factor"][:] = res.r_factor
        out.cols["n_idp"][:] = res.n_idp
        out.cols["n_varys"][:] = res.n_varys
        out.absent[:] = [tuple(a for a in self.labels if a in absent)] * n
        # The acceptance rule of both engines (policy.fit_problems), per fit.
        bound_names = [[] for _ in range(n)]
        for name in res.var_names:
            lo, hi = self._bounds_of(name, bounds)
            for i in np.flatnonzero(at_bound(res.value[name], lo, hi)):
                bound_names[i].append(self._larch_name(name))
        errorbars = np.all([np.isfinite(e) & (e > 0) for e in var_err], axis=0)
        finite = np.isfinite(res.chi_square)
        for i in range(n):
            out.bad[i] = fit_problems(finite[i] and res.success[i], res.message[i],
                                      bound_names[i], errorbars[i] or not finite[i])
        return out

    def _bounds_of(self, name, bounds):
        if name == "de0":
            return bounds["de0"]
        kind, lab = name.split("_", 1)
        if kind == "de0":
            return bounds[lab]["de0"]
        return bounds[lab][kind]

    def _larch_name(self, name):
        """batch_fit parameter name -> the larch engine's parameter name."""
        if name == "de0":
            return "de0"
        kind, lab = name.split("_", 1)
        spec = next(s for s in self.model.shells if s.label == lab)
        return {"cn": "cn_", "deltar": "dr_", "sigma2": "ss_", "de0": "de0_"}[kind] + spec.name

    # ------------------------------------------------------- robustness rules
    def zero_shells(self, fits: Fits) -> list[tuple]:
        """``policy.zero_shells`` per row."""
        flags = []
        for lab in self.labels:
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
            with np.errstate(invalid="ignore", divide="ignore"):
                acceptable = np.isfinite(c_con) & (
                    trivially | ((c_con - c_free) / red <= hamilton_threshold(2 * len(absent))))
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
