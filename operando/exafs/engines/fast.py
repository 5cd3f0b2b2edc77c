"""The batched engine (``engine="fast"``): every step at once, same rules as Larch.

:func:`background_rows` runs :func:`operando.exafs.batch.batch_autobk` over all
steps (grouped by e0 rounded to 0.01 eV so steps share one operator) and
:func:`fit_rows` runs the robust shell-fit procedure of the larch engine
(:func:`operando.exafs.engines.larch._fit_robust`) on all steps at once with
:func:`operando.exafs.batch.batch_fit` (the passes: :mod:`.fast_passes`):

1. a first batched pass from the default start, followed by absent-shell
   pinning with the larch engine's rule (CN < 2 sigma -> refit with dR = 0,
   sigma2 = ``absent_sigma2`` fixed and CN >= ``absent_cn_min``, accepted by
   the same Hamilton-type test, released again when the pinned CN is > 2 sigma);
2. with ``warm_start``, a second pass (again with pinning) for the steps the
   first left suspect -- not acceptable, or an R-factor above
   ``WARM_RF_RATIO`` x the median of the preceding acceptable steps -- each
   starting from the previous acceptable step's result (its neighbour in the
   series), keeping per step the better of the two (acceptable first, then
   lower chi-square): the batched counterpart of the larch engine's sequential
   warm start.  Steps whose default-start fit is acceptable are not refitted:
   on the simulated Cu series (2,000 steps) a warm start changed such fits by
   < 0.07 of their error bars, except R of one barely-present shell (2 sigma);
3. retries of bad steps (not converged, ended on a bound, no error bars) from
   the same deterministic starts (:func:`operando.exafs.policy.starts`), each
   start a batched pass followed by the pinning for those steps;
4. every fit judged on absolute criteria (:func:`operando.exafs.policy.fit_quality`:
   good, poor or failed), never against its neighbours.

Results are kept as arrays (one entry per fitted step) and turned into the
larch engine's row dicts only at the end, so :func:`operando.exafs.results.make_result`
builds the identical table.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from ..._util.larch_compat import ETOK, TINY_ENERGY, remove_dups
from ..batch import batch_autobk, batch_fit
from ..batch.stack import PathStack
from ..plan import COLUMN_KIND, build_plan, param_names, plan_structure
from ..policy import at_bound, conclude, judge, starts
from ..significance import significant
from .base import Engine
from .fast_global import fit_joint
from .fast_passes import BatchedPasses, batch_arguments, path_tables, trailing_median
from .larch import empty_row as larch_empty_row

log = logging.getLogger(__name__)

#: Steps per batch_autobk call (bounds the (n, n_energy) background array).
AUTOBK_CHUNK = 4096
#: Steps per evaluation of the final model chi(k) (element-wise temporaries stay in cache).
MODEL_CHUNK = 64
#: e0 is rounded to this (eV) so that steps share one AUTOBK operator.
E0_ROUND = 0.01
#: Warm-start pass: a step whose first-pass R-factor exceeds this multiple of the
#: median of the preceding WARM_RF_WINDOW acceptable steps is refitted from its
#: neighbour's result (so are steps whose first pass is not acceptable).
WARM_RF_RATIO = 1.5
WARM_RF_WINDOW = 15


# ============================================================== background
def background_rows(energy, mu, e0, edge_step, rows, *, rbkg, kweight, kmin, kmax, dk, window,
                    nclamp, clamp_lo, clamp_hi, kstep):
    """chi(k) rows for the steps ``rows``.

    Returns
    -------
    chi_rows : dict step index -> (n_k_i,) array (only steps that worked)
    problems : dict step index -> str
    """
    energy_d = remove_dups(np.asarray(energy, dtype=float), tiny=TINY_ENERGY)
    rows = np.asarray(rows, dtype=int)
    e0r = np.round(np.asarray(e0, float) / E0_ROUND) * E0_ROUND
    order = rows[np.argsort(e0r[rows], kind="stable")]
    out, problems = {}, {}
    for a in range(0, len(order), AUTOBK_CHUNK):
        idx = order[a:a + AUTOBK_CHUNK]
        res = batch_autobk(energy, mu[idx], e0r[idx], edge_step[idx], rbkg=rbkg, kweight=kweight,
                           kmin=kmin, kmax=kmax, dk=dk, window=window, nclamp=nclamp,
                           clamp_lo=clamp_lo, clamp_hi=clamp_hi, kstep=kstep)
        # Each step's own k range (Larch's kout), not the zero-padded common grid.
        kmax_i = np.sqrt(ETOK * np.maximum(energy_d[-1] - e0r[idx], 0.0))
        if kmax is not None and kmax >= 0:
            kmax_i = np.maximum(0.0, np.minimum(kmax_i, kmax))
        finite = np.isfinite(kmax_i)
        n_k = np.where(finite, 1.01 + np.where(finite, kmax_i, 0.0) / kstep, 0.0).astype(int)
        # usable: autobk ok, at least 40 points, all finite up to the step's own n_k
        bad = ~np.isfinite(res.chi)
        first_bad = np.where(bad.any(axis=1), bad.argmax(axis=1), res.chi.shape[1])
        usable = res.ok & finite & (n_k >= 40) & (first_bad >= np.minimum(n_k, res.chi.shape[1]))
        for j in np.flatnonzero(usable):
            out[int(idx[j])] = res.chi[j, :n_k[j]]
        for j in np.flatnonzero(~usable):
            problems[int(idx[j])] = "autobk returned no usable chi(k)"
    return out, problems



def fit_rows(k, chi, ok, reasons, steps, model, paths, s02, opts, e0=None) -> list[dict]:
    """All steps' result rows (the larch engine's row dicts), fitted in batches."""
    n = len(steps)
    eng = BatchedPasses(k, chi, model, paths, s02, opts, e0)
    kk = (k >= model.kmin) & (k <= model.kmax)
    chi = np.asarray(chi, dtype=float).reshape(n, k.size)
    usable = (np.asarray(ok, bool).reshape(n) & np.isfinite(chi).all(axis=1)
              & (chi[:, kk] != 0).any(axis=1))
    rows = np.flatnonzero(usable)
    m = len(rows)
    fits = eng.settle(rows, eng.fit(rows, eng.default_start(m)))
    if opts["warm_start"] and m > 1:
        # Second pass, only for the steps the first pass left suspect: not acceptable, or
        # an R-factor well above that of the preceding acceptable steps (a local minimum).
        # Each starts from the previous acceptable step's result (its neighbour in the
        # series), as the larch engine's sequential warm start; the better fit is kept.
        rf = fits["r_factor"]
        good = fits.bad == ""
        med = trailing_median(rf, good, WARM_RF_WINDOW)
        suspect = ~good | (np.isfinite(med) & (rf > WARM_RF_RATIO * med))
        source = good & ~suspect
        prev = np.full(m, -1)
        last = -1
        for i in range(m):
            prev[i] = last
            if source[i]:
                last = i
        has = np.flatnonzero(suspect & (prev >= 0))
        if len(has):
            src = prev[has]
            start = eng.start_from(fits, src, ())
            # absent shells of the neighbour restart from the defaults, as in _start_from
            for j, a in enumerate(fits.absent[src]):
                for lab in a:
                    for kk_, v in eng.defaults[lab].items():
                        if kk_ != "de0":
                            start[lab][kk_][j] = v
            warm = eng.settle(rows[has], eng.fit(rows[has], start))
            fits.put(has, warm, eng.better(fits.subset(has), warm))
    first = fits.bad.copy()
    tries = np.zeros(m, int)
    todo = np.flatnonzero(fits.bad != "")
    for start in starts(model, opts["retries"]):
        if len(todo) == 0:
            break
        trial = eng.settle(rows[todo], eng.fit(rows[todo], eng.const_start(start, len(todo))))
        fits.put(todo, trial, eng.better(fits.subset(todo), trial))
        tries[todo] += 1
        todo = todo[fits.bad[todo] != ""]
    eng.significance(rows, fits)
    log.debug("fast engine: %d batched passes for %d steps", eng.nfit, m)

    # ------------------------------------------------------------ row dicts
    model_chi = np.full((m, k.size), np.nan)
    if m:
        # sum of the path chi(k) (PathTable.chi of each path), in chunks on reused buffers
        stack = PathStack(eng.tables, k)
        labs = [spec.label for spec in model.shells]
        cols = stack.columns(np.array([fits[f"cn_{lab}"] * s02 for lab in labs]),
                             np.array([fits[f"de0_{lab}"] for lab in labs]),
                             np.array([fits[f"r_{lab}"] - eng.reff[lab] for lab in labs]),
                             np.array([fits[f"sigma2_{lab}"] for lab in labs]),
                             np.zeros((len(labs), m)), has_c3=False)
        model_chi = np.empty((m, k.size))
        for a in range(0, m, MODEL_CHUNK):
            sl = slice(a, min(a + MODEL_CHUNK, m))
            chi_p = stack.evaluate(cols.rows(sl), reuse=True)
            np.copyto(model_chi[sl], chi_p[0])
            for p in range(1, len(labs)):
                model_chi[sl] += chi_p[p]
    empty = empty_row(k, model, s02)
    out = []
    pos_of = {int(r): j for j, r in enumerate(rows)}
    # per-step values as Python floats, column by column (float(v[j]) of every column)
    names = list(fits.cols)
    values = list(zip(*(v.astype(float).tolist() for v in fits.cols.values()))) if m else []
    sig = {lab: significant(fits[f"p_{lab}"], fits[f"free_cn_{lab}"]).tolist()
           for lab in eng.tested}
    layouts = {}  # absent shells -> the parameter layout of their plan
    for i in range(n):
        if i not in pos_of:
            row = dict(empty)
            row["_model_chi"] = empty["_model_chi"].copy()
            if not ok[i]:
                row["fit_message"] = f"not fitted: {reasons[i] or 'step not ok'}"
            row["step"] = int(steps[i])
            out.append(row)
            continue
        j = pos_of[i]
        row: dict[str, Any] = dict(zip(names, values[j]))
        row["n_varys"] = int(fits["n_varys"][j])
        for lab in eng.tested:
            row[f"sig_{lab}"] = sig[lab][j]
        row["s02"], row["s02_err"] = float(s02), float("nan")
        fits.bad[j] = conclude(row, fits.bad[j], int(tries[j]), first[j], fits.absent[j],
                               model, opts)
        row["_model_chi"] = model_chi[j]
        absent = tuple(fits.absent[j])
        if absent not in layouts:
            layouts[absent] = _param_layout(*_structure(model, absent), eng.reff)
        row["_params"] = _params(row, layouts[absent], s02)
        row["step"] = int(steps[i])
        out.append(row)
    return out


@lru_cache(maxsize=64)
def _structure(model, absent):
    """(plan structure, larch names) of ``model`` with the shells ``absent`` pinned."""
    plan = plan_structure(model, absent=absent)
    return plan, param_names(model, plan)


def empty_row(k, model, s02) -> dict:
    """The larch engine's row for a step that cannot be fitted."""
    msg = "chi(k) is not finite or all zero in the k range"
    out = larch_empty_row(k, model, s02)
    out.update(fit_message=msg, _bad=msg)
    return out


def _param_layout(plan, names, reff) -> list[tuple]:
    """Per parameter of ``plan``: its name among the larch engine's ``names``
    (:func:`operando.exafs.plan.param_names`), the row column of its value, the offset
    subtracted from it (R_eff for dR), the column of its error (None: fixed), vary, min
    and max -- what :func:`_params` reads from each row fitted with ``plan``."""
    layout = []
    for pname, par in plan.pars.items():
        kind, ref = pname.split(":", 1)
        lab = plan.groups[pname][0] if kind == "de0" else ref
        column = f"{COLUMN_KIND[kind]}_{lab}"
        err_column = f"{column}_err" if (par.vary or par.tie is not None) else None
        lo, hi = (float(par.lo), float(par.hi)) if par.vary else (-np.inf, np.inf)
        layout.append((names[pname], column, reff[lab] if kind == "deltar" else 0.0, err_column,
                       bool(par.vary), lo, hi))
    return layout


def _params(row, layout, s02) -> dict:
    """``{name: (value, stderr, vary, min, max)}`` of ``row``, fitted with the plan of
    ``layout`` (:func:`_param_layout`)."""
    nan = float("nan")
    out = {"s02": (float(s02), nan, False, -np.inf, np.inf)}
    for name, column, offset, err_column, vary, lo, hi in layout:
        err = nan if err_column is None else float(row[err_column])
        out[name] = (float(row[column] - offset), err, vary, lo, hi)
    return out


# ============================================================ S0^2 calibration
def calibrate_row(k, chi, model, paths, cn: Mapping[str, float]) -> dict:
    """``larch._fit_step(..., s02=1, vary_s02=True, fixed_cn=cn)`` with :func:`batch_fit`.

    The amplitude of each shell is ``S0^2 * CN`` with CN fixed, so passing the fixed
    CN as batch_fit's (fixed) ``s02`` makes batch_fit's ``cn`` parameter S0^2 itself:
    same model, same bounds (0.2 .. 2) and start (1.0) as the larch engine, the other
    parameters from the same plan (:func:`operando.exafs.plan.build_plan`), and the
    error bar of S0^2 is that parameter's (Larch's scaling).  One shell (the usual
    first-shell calibration) or several sharing S0^2 only if they share one fixed CN.
    """
    labels = [s.label for s in model.shells]
    cns = {float(cn[lab]) for lab in labels}
    if len(cns) != 1:
        raise ValueError("calibrate_row: every shell needs the same fixed CN")
    cn_fixed = cns.pop()
    out = empty_row(k, model, 1.0)
    kk = (k >= model.kmin) & (k <= model.kmax)
    if not np.all(np.isfinite(chi)) or not np.any(chi[kk]):
        return out
    plan = build_plan(model, fixed_cn=cn)
    args = batch_arguments(plan, labels)
    for lab in labels:
        args["init"][lab]["cn"], args["vary"][lab]["cn"] = 1.0, True
        args["bounds"][lab]["cn"] = (0.2, 2.0)
    tables = path_tables(model, paths)
    res = batch_fit(k, chi[None, :], tables, **model.fit_window(), s02=cn_fixed, **args)
    value = {name: float(v[0]) for name, v in res.value.items()}
    err = {name: float(v[0]) for name, v in res.stderr.items()}
    s02, s02_err = value[f"cn_{labels[0]}"], err[f"cn_{labels[0]}"]
    out["_model_chi"] = np.zeros(k.size)
    for table, lab in zip(tables, labels):
        e0name = "de0" if args["share_e0"] else f"de0_{lab}"
        out[f"cn_{lab}"], out[f"cn_{lab}_err"] = cn_fixed, float("nan")
        out[f"r_{lab}"] = paths[lab].reff + value[f"deltar_{lab}"]
        for kind, name in (("r", f"deltar_{lab}"), ("sigma2", f"sigma2_{lab}"), ("de0", e0name)):
            out[f"{kind}_{lab}_err"] = err[name]
        out[f"sigma2_{lab}"], out[f"de0_{lab}"] = value[f"sigma2_{lab}"], value[e0name]
        out["_model_chi"] += table.chi(k, amp=s02 * cn_fixed, e0=value[e0name],
                                       deltar=value[f"deltar_{lab}"], sigma2=value[f"sigma2_{lab}"])
    out.update(s02=s02, s02_err=s02_err, r_factor=float(res.r_factor[0]),
               redchi=float(res.redchi[0]), chi_square=float(res.chi_square[0]),
               n_idp=float(res.n_idp), n_varys=int(res.n_varys))
    params = _params(out, _param_layout(plan, param_names(model, plan),
                                        {lab: paths[lab].reff for lab in labels}), s02)
    params["s02"] = (s02, s02_err, True, 0.2, 2.0)
    out["_params"] = params
    bound_names = [name for name, (val, _err, varies, lo, hi) in params.items()
                   if varies and at_bound(val, lo, hi)]
    out["fit_message"] = judge(out, res.success[0], res.message[0], bound_names,
                               all(np.isfinite(p[1]) and p[1] > 0 for p in params.values() if p[2]))
    return out


class FastEngine(Engine):
    """Batched AUTOBK and shell fits (:mod:`operando.exafs.batch`); no q-space fits."""

    name = "fast"
    fit_spaces = ("r", "k")
    joint_fits = True
    #: Smallest chunk handed to an executor: batching is this engine's speed.
    min_chunk = 256

    def background(self, energy, mu, e0, edge_step, rows, settings):
        keys = ("rbkg", "kweight", "kmin", "kmax", "dk", "window", "nclamp", "clamp_lo",
                "clamp_hi", "kstep")
        done, problems = background_rows(energy, mu, e0, edge_step, rows,
                                         **{key: settings[key] for key in keys})
        e0 = np.where(np.isfinite(e0), np.round(e0 / E0_ROUND) * E0_ROUND, e0)
        return done, problems, e0, {"e0_round": E0_ROUND}

    fit_rows = staticmethod(fit_rows)
    calibrate_row = staticmethod(calibrate_row)
    fit_joint = staticmethod(fit_joint)
