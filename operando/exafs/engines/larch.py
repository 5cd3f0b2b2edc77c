"""The xraylarch engine: ``larch.xafs.autobk`` and ``larch.xafs.feffit`` per step.

The reference the fast engine is tested against.  Shell fits are sequential:
each step is fitted with the robust procedure (:func:`_fit_robust`: warm start
from the previous good step, retries from deterministic starts, absent-shell
handling, all rules from :mod:`operando.exafs.policy`), then the tested shells get
their F-test and detection limit (:func:`_significance`,
:mod:`operando.exafs.significance`); :meth:`LarchEngine.fit_joint` fits several
steps in one feffit with several datasets.  Every fit's parameters come from
:func:`operando.exafs.plan.build_plan` (fixed, bounded, tied, dE0 groups), turned
into lmfit parameters with expressions for ties.  Larch is imported only when this
engine is used.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from ...errors import DataError
from ...feffpaths import FeffPath
from ...schema import SHELL_KINDS
from ..model import ShellModel, n_independent
from ..plan import PLAN_KIND, allow_negative_cn, build_plan, param_names
from ..policy import (at_bound, conclude, constraint_acceptable, judge, n_pinned,
                      removed_parameters, start_from, starts, zero_shells)
from ..._util.stats import f_sf
from ..significance import detection_limit, f_test, needs_refit, significant, wald_f
from .base import Engine

log = logging.getLogger(__name__)


def empty_row(k, model: ShellModel, s02: float) -> dict:
    nan = float("nan")
    out: dict[str, Any] = {}
    for spec in model.shells:
        for kind in SHELL_KINDS:
            out[f"{kind}_{spec.label}"] = nan
            out[f"{kind}_{spec.label}_err"] = nan
    for lab in model.tested_shells():
        out.update({f"cn_{lab}_limit": nan, f"p_{lab}": nan, f"sig_{lab}": False})
    out.update(s02=float(s02), s02_err=nan, r_factor=nan, redchi=nan, chi_square=nan,
               n_idp=float(n_independent(model)), n_varys=0, fit_ok=False, fit_quality="failed",
               fit_message="", _model_chi=np.full(k.size, np.nan), _params={}, _bad="")
    return out


def _lmfit_params(plan, names, suffix=lambda name: "") -> dict:
    """Larch parameters of a plan (ties as expressions); ``suffix(plan name)`` is
    appended to a parameter's name (per-dataset parameters of a joint fit)."""
    from larch.fitting import param

    pars = {}
    for pname, par in plan.pars.items():
        name = names[pname] + suffix(pname)
        if par.tie is not None:
            src = names[par.tie[0]] + suffix(par.tie[0])
            pars[name] = param(f"{par.tie[1]!r}*{src}")
        elif par.vary:
            pars[name] = param(float(par.value), vary=True, min=float(par.lo), max=float(par.hi))
        else:
            pars[name] = param(float(par.value), vary=False)
    return pars


def _fit_step(k, chi, model: ShellModel, paths: Mapping[str, FeffPath], *, s02: float,
              start: Mapping[str, Mapping[str, float]] | None = None,
              absent: Iterable[str] = (), vary_s02: bool = False,
              fixed_cn: Mapping[str, float] | None = None, removed: Iterable[str] = (),
              e0: float | None = None) -> dict:
    """One feffit of one step; never raises.

    Returns the result columns (:func:`result_columns` without ``step``) plus
    ``_model_chi`` (on ``k``), ``_params`` and ``_bad`` (why not acceptable).
    """
    from larch import Group
    from larch.fitting import param, param_group
    from larch.xafs import feffit, feffit_dataset

    plan = build_plan(model, start, absent=absent, fixed_cn=fixed_cn, removed=removed, e0=e0)
    names = param_names(model, plan)
    pars = {"s02": param(s02, vary=vary_s02, min=0.2 if vary_s02 else -np.inf,
                         max=2.0 if vary_s02 else np.inf)}
    pars.update(_lmfit_params(plan, names))
    feff_paths = _feff_paths(model, plan, names, paths)
    out = empty_row(k, model, s02)
    if not np.all(np.isfinite(chi)) or not np.any(chi[(k >= model.kmin) & (k <= model.kmax)]):
        out["fit_message"] = out["_bad"] = "chi(k) is not finite or all zero in the k range"
        return out

    data = Group(k=np.asarray(k, float), chi=np.asarray(chi, float))
    try:
        dataset = feffit_dataset(data=data, paths=feff_paths, transform=_transform(model))
        with _quiet_larch():
            result = feffit(param_group(**pars), dataset, path_outputs=False)
    except Exception as exc:  # lmfit/larch raise ValueError etc. on NaN residuals
        out["fit_message"] = out["_bad"] = f"feffit failed: {type(exc).__name__}: {exc}"
        return out

    params = result.params
    _shell_values(out, params, model, plan, names, paths)
    out["s02"] = float(params["s02"].value)
    out["s02_err"] = (float(params["s02"].stderr) if vary_s02 and params["s02"].stderr is not None
                      else float("nan"))
    _statistics(out, result, k, dataset, pars)
    bound_names = [n for n, p in params.items()
                   if n in pars and p.vary and at_bound(p.value, p.min, p.max)]
    out["fit_message"] = judge(out, result.success, result.message, bound_names,
                               result.errorbars)
    return out


def _transform(model: ShellModel):
    """The feffit transform of ``model``'s k and R windows."""
    from larch.xafs import feffit_transform

    return feffit_transform(kmin=model.kmin, kmax=model.kmax, kweight=model.kweight,
                            dk=model.dk, window=model.window, rmin=model.rmin, rmax=model.rmax,
                            fitspace=model.fit_space)


def _feff_paths(model, plan, names, paths, suffix=lambda name: "", tag="") -> list:
    """One Larch FEFF path per shell, its parameters named as :func:`_lmfit_params` names
    them (``suffix`` and ``tag``: a joint fit's per-dataset names and path labels)."""
    from larch.xafs import feffpath

    out = []
    for spec in model.shells:
        use = plan.of_shell[spec.label]
        nm = {kind: names[use[kind]] + suffix(use[kind]) for kind in use}
        out.append(feffpath(str(paths[spec.label].file), label=spec.name + tag, degen=1.0,
                            s02=f"s02*{nm['cn']}", e0=nm["de0"], deltar=nm["deltar"],
                            sigma2=nm["sigma2"]))
    return out


def _shell_values(out, params, model, plan, names, paths, suffix=lambda name: "") -> None:
    """Each shell's CN, R, sigma2 and dE0 with their errors, from the fitted ``params``,
    into ``out`` (NaN error for a parameter neither varied nor tied)."""
    for spec in model.shells:
        use = plan.of_shell[spec.label]
        for kind in SHELL_KINDS:
            pname = use[PLAN_KIND[kind]]
            par = params[names[pname] + suffix(pname)]
            varied = par.vary or par.expr is not None
            out[f"{kind}_{spec.label}"] = float(par.value) + (
                paths[spec.label].reff if kind == "r" else 0.0)
            out[f"{kind}_{spec.label}_err"] = (float(par.stderr) if varied and par.stderr
                                               is not None else float("nan"))


def _statistics(out, result, k, dataset, pars) -> None:
    """feffit's statistics, the model chi(k) on ``k`` and the parameter table, into ``out``."""
    out.update(r_factor=float(result.rfactor), redchi=float(result.chi2_reduced),
               chi_square=float(result.chi_square), n_idp=float(result.n_independent),
               n_varys=int(result.nvarys))
    out["_model_chi"] = np.interp(k, dataset.model.k, dataset.model.chi, right=np.nan)
    out["_params"] = _param_table(result.params, pars)


@contextlib.contextmanager
def _quiet_larch():
    """Silence the 'UFloat with std_dev==0' warning larch triggers for fixed parameters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using UFloat objects with std_dev==0")
        yield


def _param_table(params, names) -> dict:
    """``{name: (value, stderr, vary, min, max)}``; stderr NaN for fixed/undetermined;
    a tied parameter reports its propagated error and vary False."""
    out = {}
    for name, par in params.items():
        if name not in names:
            continue
        has_err = (par.vary or par.expr is not None) and par.stderr is not None
        out[name] = (float(par.value), float(par.stderr) if has_err else float("nan"),
                     bool(par.vary), float(par.min), float(par.max))
    return out


def _fit_robust(k, chi, model, paths, s02, start, opts, e0=None) -> dict:
    """Fit one step with retries and absent-shell handling; never raises."""
    reff = {label: p.reff for label, p in paths.items()}

    def fit(start_, absent_=()):
        row = _fit_step(k, chi, model, paths, s02=s02, start=start_, absent=absent_, e0=e0)
        row["_reff"] = reff
        row["_absent"] = tuple(absent_)
        return row

    def better(a, b):  # prefer acceptable fits, then lower chi-square
        key = lambda r: (bool(r["_bad"]), r["chi_square"] if np.isfinite(r["chi_square"]) else np.inf)
        return a if key(a) <= key(b) else b

    def settle(row):
        """Absent-shell handling on a finished (free) fit; the result keeps the free fit
        in ``_free`` (the F-test's alternative hypothesis)."""
        out = _settle(row)
        out["_free"] = row
        return out

    def _settle(row):
        if not np.isfinite(row["chi_square"]):
            return row
        absent = zero_shells(row, model)
        if not absent:
            return row
        constrained = fit(start_from(row, model, absent), absent)
        if not constraint_acceptable(row, constrained, n_pinned(model, absent)):
            return row  # pinning the shell makes the fit significantly worse: it is there
        # A shell that is clearly present once its distance is pinned gets released again.
        back = [s for s in absent if np.isfinite(constrained[f"cn_{s}_err"])
                and constrained[f"cn_{s}"] > 2 * constrained[f"cn_{s}_err"]]
        if back:
            still = [s for s in absent if s not in back]
            released = fit(start_from(constrained, model, still), still)
            if not released["_bad"] and not zero_shells(released, model):
                return released
        return constrained

    row = settle(fit(start))
    tries, first = 0, row["_bad"]
    if first and not first.startswith("chi(k)"):
        for s in starts(model, opts["retries"]):
            row = better(row, settle(fit(s)))
            tries += 1
            if not row["_bad"]:
                break
    row["_bad"] = conclude(row, row["_bad"], tries, first, row["_absent"], model, opts)
    return row


def _significance(k, chi, model, paths, s02, row, e0=None) -> None:
    """F-test and detection limit of every tested shell, into ``row``
    (:mod:`operando.exafs.significance`)."""
    free = row.get("_free", row)
    if not np.isfinite(row["chi_square"]) or not np.isfinite(free["chi_square"]):
        return
    for lab in model.tested_shells():
        b = removed_parameters(model, lab)
        if needs_refit(free[f"cn_{lab}"], free[f"cn_{lab}_err"]):
            h0 = _fit_step(k, chi, model, paths, s02=s02, start=start_from(free, model),
                           removed=[lab], e0=e0)
            F, _ = f_test(h0["chi_square"], free["chi_square"], b, free["n_idp"],
                          free["n_varys"])
        else:
            F = float(wald_f(free[f"cn_{lab}"], free[f"cn_{lab}_err"], b))
        nu = free["n_idp"] - free["n_varys"]
        p = float(f_sf(F, b, nu)) if np.isfinite(F) and nu > 0 else float("nan")
        row[f"p_{lab}"] = p
        row[f"sig_{lab}"] = bool(significant(p, free[f"cn_{lab}"]))
        start = start_from(row, model)
        absent = row.get("_absent", ())

        def profile(c, idx, lab=lab, start=start, absent=absent):
            return [_fit_step(k, chi, model, paths, s02=s02, start=start, absent=absent,
                              fixed_cn={lab: float(c[0])}, e0=e0)["chi_square"]]

        row[f"cn_{lab}_limit"] = float(detection_limit(
            [row[f"cn_{lab}"]], [row[f"cn_{lab}_err"]], [row["chi_square"]],
            [row["n_idp"] - row["n_varys"]], profile)[0])


def _fit_chunk(k, chi, ok, reasons, steps, model, paths, s02, opts, e0=None) -> list[dict]:
    """Fit consecutive steps with warm start (module level so executors can pickle it)."""
    rows = []
    start = None
    for i in range(len(steps)):
        if not ok[i]:
            row = empty_row(k, model, s02)
            row["fit_message"] = f"not fitted: {reasons[i] or 'step not ok'}"
        else:
            e0_i = None if e0 is None else float(e0[i])
            row = _fit_robust(k, chi[i], model, paths, s02, start if opts["warm_start"] else None,
                              opts, e0_i)
            _significance(k, chi[i], model, paths, s02, row, e0_i)
            if row["fit_ok"]:
                start = start_from(row, model, row["_absent"])
        row["step"] = int(steps[i])
        log.debug("step %s: fit_ok=%s %s", steps[i], row["fit_ok"], row["fit_message"])
        rows.append(row)
    return rows


def _fit_segment(k, chis, steps, model, paths, s02, shared, e0=None) -> list[dict]:
    """Joint feffit of several steps sharing the ``shared`` parameter kinds
    (of ``"cn", "r", "sigma2", "de0"``); ties and dE0 groups as in a per-step fit."""
    from larch import Group
    from larch.fitting import param, param_group
    from larch.xafs import feffit, feffit_dataset

    plan = allow_negative_cn(build_plan(model, e0=None if e0 is None else e0[0]), model)
    if e0 is not None and np.ptp(np.asarray(e0, float)) > 1e-9 and any(
            model.spec(lab).de0.mode == "edge" for lab in model.labels):
        raise DataError("a joint fit with dE0 held at the reference edge needs one E0 for all "
                        "its steps (normalize with e0 = \"first\" or a number)")
    names = param_names(model, plan)
    shared_kinds = {PLAN_KIND[kind] for kind in shared}
    pars: dict = {"s02": param(s02, vary=False)}
    datasets = []
    transform = _transform(model)
    step_names, shared_names = [], set()
    for j in range(len(steps)):
        def suffix(pname, j=j):
            return "" if plan.pars[pname].kind in shared_kinds else f"_{j}"

        mine = _lmfit_params(plan, names, suffix)
        step_names.append([nm for nm in mine if nm.endswith(f"_{j}")])
        shared_names.update(nm for nm in mine if nm not in step_names[-1])
        for name, par in mine.items():
            pars.setdefault(name, par)
        datasets.append(feffit_dataset(data=Group(k=k, chi=chis[j]), transform=transform,
                                       paths=_feff_paths(model, plan, names, paths, suffix,
                                                         f"_{j}")))
    try:
        with _quiet_larch():
            result = feffit(param_group(**pars), datasets, path_outputs=False)
        failure = None
    except Exception as exc:  # lmfit/larch raise ValueError etc. on NaN residuals
        result, failure = None, f"feffit failed: {type(exc).__name__}: {exc}"
    rows = []
    for j, step in enumerate(steps):
        row = empty_row(k, model, s02)
        row["step"] = int(step)
        if result is None:
            row["fit_message"] = failure
            rows.append(row)
            continue
        params = result.params
        _shell_values(row, params, model, plan, names, paths,
                      lambda pname, j=j: "" if plan.pars[pname].kind in shared_kinds else f"_{j}")
        _statistics(row, result, k, result.datasets[j], pars)
        own = set(step_names[j]) | shared_names    # this step's parameters and the shared ones
        bound_names = [n for n, p in params.items()
                       if n in own and p.vary and at_bound(p.value, p.min, p.max)]
        reason = judge(row, result.success, result.message, bound_names, result.errorbars)
        row["fit_message"] = "; ".join(x for x in (
            f"global fit of {len(steps)} steps sharing {sorted(shared)}", reason) if x)
        rows.append(row)
    return rows


class LarchEngine(Engine):
    """xraylarch per step: ``autobk``, ``feffit`` (R, k or q space), joint feffit."""

    name = "larch"
    fit_spaces = ("r", "k", "q")
    joint_fits = True
    min_chunk = 1

    def background(self, energy, mu, e0, edge_step, rows, settings):
        from larch import Group
        from larch.xafs import autobk

        done, problems = {}, {}
        for i in rows:
            group = Group()
            try:
                autobk(energy, mu[i], group=group, rbkg=settings["rbkg"], e0=e0[i],
                       edge_step=edge_step[i], kmin=settings["kmin"], kmax=settings["kmax"],
                       kweight=settings["kweight"], dk=settings["dk"], win=settings["window"],
                       nclamp=settings["nclamp"], clamp_lo=settings["clamp_lo"],
                       clamp_hi=settings["clamp_hi"])
            except Exception as exc:  # larch raises bare exceptions on bad spectra
                problems[i] = f"autobk failed: {type(exc).__name__}: {exc}"
                continue
            chi = getattr(group, "chi", None)
            if chi is None or not np.all(np.isfinite(chi)) or len(chi) < 40:
                problems[i] = "autobk returned no usable chi(k)"
            else:
                done[i] = np.asarray(chi, dtype=float)
        return done, problems, e0, {}

    fit_rows = staticmethod(_fit_chunk)
    fit_joint = staticmethod(_fit_segment)

    def calibrate_row(self, k, chi, model, paths, cn):
        return _fit_step(k, chi, model, paths, s02=1.0, start=None, vary_s02=True, fixed_cn=cn)
