"""The xraylarch engine: ``larch.xafs.autobk`` and ``larch.xafs.feffit`` per step.

The reference the fast engine is tested against.  Shell fits are sequential:
each step is fitted with the robust procedure (:func:`_fit_robust`: warm start
from the previous good step, retries from deterministic starts, absent-shell
handling, all rules from :mod:`operando.exafs.policy`); :meth:`LarchEngine.fit_joint`
fits several steps in one feffit with several datasets.  Larch is imported only
when this engine is used.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterable, Mapping

import numpy as np

from ...feffpaths import FeffPath
from ..model import PAR_KINDS, ShellModel
from ..policy import (absent_note, absent_sigma2, at_bound, constraint_acceptable, defaults,
                      fit_problems, fit_quality, start_from, starts, zero_shells)
from .base import Engine

log = logging.getLogger(__name__)


def _fit_step(k, chi, model: ShellModel, paths: Mapping[str, FeffPath], *, s02: float,
              start: Mapping[str, Mapping[str, float]] | None = None,
              absent: Iterable[str] = (), vary_s02: bool = False,
              fixed_cn: Mapping[str, float] | None = None) -> dict:
    """One feffit of one step; never raises.

    Returns the result columns (:func:`result_columns` without ``step``) plus
    ``_model_chi`` (on ``k``), ``_params`` and ``_chi_square`` / ``_bad``
    internals used by the retry logic.
    """
    from larch.fitting import param, param_group
    from larch.xafs import feffit, feffit_dataset, feffit_transform, feffpath
    from larch import Group

    absent = set(absent)
    fixed_cn = dict(fixed_cn or {})
    pars = {"s02": param(s02, vary=vary_s02, min=0.2 if vary_s02 else -np.inf,
                         max=2.0 if vary_s02 else np.inf)}
    if model.share_e0:
        de0_start = np.mean([(start or {}).get(s.label, defaults(s, model))["de0"]
                             for s in model.shells])
        pars["de0"] = param(float(np.clip(de0_start, -model.de0_max * 0.9, model.de0_max * 0.9)),
                            vary=True, min=-model.de0_max, max=model.de0_max)
    feff_paths = []
    for spec in model.shells:
        name = spec.name
        init = (start or {}).get(spec.label) or defaults(spec, model)
        if spec.label in fixed_cn:
            pars[f"cn_{name}"] = param(fixed_cn[spec.label], vary=False)
        elif spec.label in absent:
            pars[f"cn_{name}"] = param(float(np.clip(init["cn"], 0.0, spec.cn_max * 0.9)),
                                       vary=True, min=model.absent_cn_min, max=spec.cn_max)
        else:
            pars[f"cn_{name}"] = param(float(np.clip(init["cn"], 0.3, spec.cn_max * 0.9)),
                                       vary=True, min=spec.cn_min, max=spec.cn_max)
        if spec.label in absent:
            ss = absent_sigma2(spec, model)
            pars[f"dr_{name}"] = param(0.0, vary=False)
            pars[f"ss_{name}"] = param(float(ss), vary=False)
        else:
            pars[f"dr_{name}"] = param(float(np.clip(init["dr"], -0.8 * model.dr_max, 0.8 * model.dr_max)),
                                       vary=True, min=-model.dr_max, max=model.dr_max)
            pars[f"ss_{name}"] = param(float(np.clip(init["sigma2"], model.sigma2_min * 1.2,
                                                     model.sigma2_max * 0.9)),
                                       vary=True, min=model.sigma2_min, max=model.sigma2_max)
        e0_name = "de0" if model.share_e0 else f"de0_{name}"
        if not model.share_e0:
            pars[e0_name] = param(float(np.clip(init["de0"], -model.de0_max * 0.9, model.de0_max * 0.9)),
                                  vary=True, min=-model.de0_max, max=model.de0_max)
        feff_paths.append(feffpath(str(paths[spec.label].file), label=name, degen=1.0,
                                   s02=f"s02*cn_{name}", e0=e0_name, deltar=f"dr_{name}",
                                   sigma2=f"ss_{name}"))

    out: dict[str, Any] = {}
    nan = float("nan")
    for spec in model.shells:
        for kind in PAR_KINDS:
            out[f"{kind}_{spec.label}"] = nan
            out[f"{kind}_{spec.label}_err"] = nan
    out.update(s02=float(s02), s02_err=nan, r_factor=nan, redchi=nan, chi_square=nan,
               n_idp=float(model.n_idp()), n_varys=0, fit_ok=False, fit_quality="failed", fit_message="",
               _model_chi=np.full(k.size, np.nan), _params={}, _bad="")
    if not np.all(np.isfinite(chi)) or not np.any(chi[(k >= model.kmin) & (k <= model.kmax)]):
        out["fit_message"] = out["_bad"] = "chi(k) is not finite or all zero in the k range"
        return out

    transform = feffit_transform(kmin=model.kmin, kmax=model.kmax, kweight=model.kweight,
                                 dk=model.dk, window=model.window, rmin=model.rmin,
                                 rmax=model.rmax, fitspace=model.fit_space)
    data = Group(k=np.asarray(k, float), chi=np.asarray(chi, float))
    try:
        dataset = feffit_dataset(data=data, paths=feff_paths, transform=transform)
        with _quiet_larch():
            result = feffit(param_group(**pars), dataset, path_outputs=False)
    except Exception as exc:  # lmfit/larch raise ValueError etc. on NaN residuals
        out["fit_message"] = out["_bad"] = f"feffit failed: {type(exc).__name__}: {exc}"
        return out

    params = result.params

    def value(name):
        return float(params[name].value)

    def stderr(name):
        par = params[name]
        if not par.vary or par.stderr is None:
            return nan
        return float(par.stderr)

    for spec in model.shells:
        name, label = spec.name, spec.label
        e0_name = "de0" if model.share_e0 else f"de0_{name}"
        out[f"cn_{label}"] = value(f"cn_{name}")
        out[f"cn_{label}_err"] = stderr(f"cn_{name}")
        out[f"r_{label}"] = paths[label].reff + value(f"dr_{name}")
        out[f"r_{label}_err"] = stderr(f"dr_{name}")
        out[f"sigma2_{label}"] = value(f"ss_{name}")
        out[f"sigma2_{label}_err"] = stderr(f"ss_{name}")
        out[f"de0_{label}"] = value(e0_name)
        out[f"de0_{label}_err"] = stderr(e0_name)
    out["s02"] = value("s02")
    out["s02_err"] = stderr("s02")
    out.update(r_factor=float(result.rfactor), redchi=float(result.chi2_reduced),
               chi_square=float(result.chi_square), n_idp=float(result.n_independent),
               n_varys=int(result.nvarys))
    model_chi = np.interp(k, dataset.model.k, dataset.model.chi, right=np.nan)
    out["_model_chi"] = model_chi
    out["_params"] = _param_table(params, pars)
    bound_names = [n for n, p in params.items()
                   if n in pars and p.vary and at_bound(p.value, p.min, p.max)]
    out["_bad"] = fit_problems(result.success, result.message, bound_names, result.errorbars)
    out["fit_quality"], out["fit_message"] = fit_quality(out["_bad"], out["r_factor"], out["redchi"])
    out["fit_ok"] = out["fit_quality"] == "good"
    return out


@contextlib.contextmanager
def _quiet_larch():
    """Silence the 'UFloat with std_dev==0' warning larch triggers for fixed parameters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using UFloat objects with std_dev==0")
        yield


def _param_table(params, names) -> dict:
    """``{name: (value, stderr, vary, min, max)}``; stderr NaN for fixed/undetermined."""
    out = {}
    for name, par in params.items():
        if name not in names:
            continue
        err = float(par.stderr) if (par.vary and par.stderr is not None) else float("nan")
        out[name] = (float(par.value), err, bool(par.vary), float(par.min), float(par.max))
    return out



def _fit_robust(k, chi, model, paths, s02, start, opts) -> dict:
    """Fit one step with retries and absent-shell handling; never raises."""
    reff = {label: p.reff for label, p in paths.items()}

    def fit(start_, absent_=()):
        row = _fit_step(k, chi, model, paths, s02=s02, start=start_, absent=absent_)
        row["_reff"] = reff
        row["_absent"] = tuple(absent_)
        return row

    def better(a, b):  # prefer acceptable fits, then lower chi-square
        key = lambda r: (bool(r["_bad"]), r["chi_square"] if np.isfinite(r["chi_square"]) else np.inf)
        return a if key(a) <= key(b) else b

    def settle(row):
        """Absent-shell handling on a finished fit."""
        if not np.isfinite(row["chi_square"]):
            return row
        absent = zero_shells(row, model)
        if not absent:
            return row
        constrained = fit(start_from(row, model, absent), absent)
        if not constraint_acceptable(row, constrained, 2 * len(absent)):
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
    if row["_bad"] and not row["_bad"].startswith("chi(k)"):
        first = row["_bad"]
        tries = 1
        for s in starts(model, opts["retries"]):
            row = better(row, settle(fit(s)))
            tries += 1
            if not row["_bad"]:
                break
        row["_note_retry"] = f"retried from {tries - 1} starts after: {first}"
        if row["_bad"] == first:
            row["_bad"] = "still " + first
    notes = []
    if row.get("_note_retry"):
        notes.append(row["_note_retry"])
    for label in row["_absent"]:
        notes.append(absent_note(next(s for s in model.shells if s.label == label), model))
    quality, reason = fit_quality(row["_bad"], row["r_factor"], row["redchi"],
                                  rfactor_max=opts["rfactor_max"], redchi_max=opts["redchi_max"])
    if reason:
        notes.append(reason)
    row["fit_quality"] = quality
    row["fit_ok"] = quality == "good"
    row["fit_message"] = "; ".join(notes)
    return row


def _fit_chunk(k, chi, ok, reasons, steps, model, paths, s02, opts) -> list[dict]:
    """Fit consecutive steps with warm start (module level so executors can pickle it)."""
    rows = []
    start = None
    for i in range(len(steps)):
        if not ok[i]:
            row = _fit_step(k, np.full(k.size, np.nan), model, paths, s02=s02)
            row["fit_message"] = f"not fitted: {reasons[i] or 'step not ok'}"
        else:
            row = _fit_robust(k, chi[i], model, paths, s02, start if opts["warm_start"] else None,
                              opts)
            if row["fit_ok"]:
                start = start_from(row, model, row["_absent"])
        row["step"] = int(steps[i])
        log.debug("step %s: fit_ok=%s %s", steps[i], row["fit_ok"], row["fit_message"])
        rows.append(row)
    return rows


def _fit_segment(k, chis, steps, model, paths, s02, shared) -> list[dict]:
    """Joint feffit of several steps sharing the ``shared`` parameter kinds."""
    from larch import Group
    from larch.fitting import param, param_group
    from larch.xafs import feffit, feffit_dataset, feffit_transform, feffpath

    kind_name = {"cn": "cn", "r": "dr", "sigma2": "ss", "de0": "de0"}
    pars = {"s02": param(s02, vary=False)}
    datasets = []
    for j in range(len(steps)):
        feff_paths = []
        for spec in model.shells:
            d = defaults(spec, model)
            names = {}
            for kind in PAR_KINDS:
                base = kind_name[kind] + ("" if kind == "de0" and model.share_e0 else f"_{spec.name}")
                pname = base if kind in shared else f"{base}_{j}"
                names[kind] = pname
                if pname in pars:
                    continue
                if kind == "cn":
                    pars[pname] = param(d["cn"], vary=True, min=spec.cn_min, max=spec.cn_max)
                elif kind == "r":
                    pars[pname] = param(0.0, vary=True, min=-model.dr_max, max=model.dr_max)
                elif kind == "sigma2":
                    pars[pname] = param(d["sigma2"], vary=True, min=model.sigma2_min,
                                        max=model.sigma2_max)
                else:
                    pars[pname] = param(0.0, vary=True, min=-model.de0_max, max=model.de0_max)
            feff_paths.append(feffpath(str(paths[spec.label].file), label=f"{spec.name}_{j}",
                                       degen=1.0, s02=f"s02*{names['cn']}", e0=names["de0"],
                                       deltar=names["r"], sigma2=names["sigma2"]))
        transform = feffit_transform(kmin=model.kmin, kmax=model.kmax, kweight=model.kweight,
                                     dk=model.dk, window=model.window, rmin=model.rmin,
                                     rmax=model.rmax, fitspace=model.fit_space)
        datasets.append(feffit_dataset(data=Group(k=k, chi=chis[j]), paths=feff_paths,
                                       transform=transform))
    rows = []
    try:
        with _quiet_larch():
            result = feffit(param_group(**pars), datasets, path_outputs=False)
        failure = None
    except Exception as exc:
        result, failure = None, f"feffit failed: {type(exc).__name__}: {exc}"
    for j, step in enumerate(steps):
        row = _fit_step(k, np.full(k.size, np.nan), model, paths, s02=s02)  # empty row
        row["step"] = int(step)
        if result is None:
            row["fit_message"] = failure
            rows.append(row)
            continue
        params = result.params
        for spec in model.shells:
            for kind in PAR_KINDS:
                base = kind_name[kind] + ("" if kind == "de0" and model.share_e0 else f"_{spec.name}")
                pname = base if kind in shared else f"{base}_{j}"
                par = params[pname]
                val = float(par.value) + (paths[spec.label].reff if kind == "r" else 0.0)
                row[f"{kind}_{spec.label}"] = val
                row[f"{kind}_{spec.label}_err"] = float("nan") if par.stderr is None else float(par.stderr)
        ds = result.datasets[j]
        row["_model_chi"] = np.interp(k, ds.model.k, ds.model.chi, right=np.nan)
        row["_params"] = _param_table(params, pars)
        row.update(r_factor=float(result.rfactor), redchi=float(result.chi2_reduced),
                   chi_square=float(result.chi_square), n_idp=float(result.n_independent),
                   n_varys=int(result.nvarys), fit_ok=bool(result.success and result.errorbars),
                   fit_quality="good" if result.success and result.errorbars else "failed",
                   fit_message=f"segment fit of steps {steps} sharing {list(shared)}"
                   + ("" if result.errorbars else "; no error bars"))
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

    def fit_rows(self, k, chi, ok, reasons, steps, model, paths, s02, opts):
        return _fit_chunk(k, chi, ok, reasons, steps, model, paths, s02, opts)

    def calibrate_row(self, k, chi, model, paths, cn):
        return _fit_step(k, chi, model, paths, s02=1.0, start=None, vary_s02=True, fixed_cn=cn)

    def fit_joint(self, k, chis, steps, model, paths, s02, shared):
        return _fit_segment(k, chis, steps, model, paths, s02, shared)
