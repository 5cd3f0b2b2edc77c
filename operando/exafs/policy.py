"""The fit policy both engines apply: starting values, when a fit is acceptable,
and how a shell consistent with zero is handled.

One copy of each rule, so the batched engine and the xraylarch engine judge a fit
the same way (the fast engine applies them to arrays of fits at once).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from .._util.stats import chi2_ppf
from .model import ShellModel
from .plan import absent_sigma2, default_start, plan_structure
from .shells import ShellSpec

#: A varied parameter this close to a bound (as a fraction of the bound span, or of
#: max(1, |value|) for a one-sided bound) counts as "at bound".
AT_BOUND_FRACTION = 1e-3
#: Confidence of the Hamilton-type test that decides whether pinning a shell is acceptable.
HAMILTON_CONFIDENCE = 0.95
#: R-factor above which a converged fit is reported "poor".  The usual EXAFS standard
#: (Kelly, Hesterberg & Ravel 2008; Calvin, XAFS for Everyone, 2013): below 0.02 a fit is
#: good, up to 0.05 acceptable; above, the model misses part of the signal, whatever the
#: noise.  An absolute threshold: a fit is never judged by its neighbours.
RFACTOR_MAX = 0.05
#: Reduced chi-square above which a fit is "poor": off by default.  Larch's noise estimate
#: (chi(R) between 15 and 30 A) leaves out every systematic error, so good fits of real
#: spectra routinely reach 10-1000; a threshold means something only with a noise
#: estimate the user trusts.
REDCHI_MAX = float("inf")
_NOT_CONVERGED = "did not converge"
_NO_ERRORBARS = "no error bars (singular covariance)"


def starts(model: ShellModel, retries: int) -> list[dict]:
    """Deterministic starts for retries: the defaults and spread perturbations."""
    base = {s.label: default_start(s) for s in model.shells}
    moves = [(1.0, 0.0, 1.0, 0.0), (1.0, 0.05, 1.6, 4.0), (1.0, -0.05, 0.6, -4.0),
             (0.5, 0.02, 1.0, 7.0), (1.5, -0.02, 2.0, -7.0), (0.7, 0.1, 0.8, 2.0),
             (1.2, -0.1, 1.3, -2.0)]
    out = []
    for cn_f, dr, ss_f, de0 in moves[:max(1, retries)]:
        out.append({label: {"cn": v["cn"] * cn_f, "dr": dr,
                            "sigma2": float(np.clip(v["sigma2"] * ss_f, model.sigma2_min * 1.5,
                                                    model.sigma2_max * 0.8)),
                            "de0": de0} for label, v in base.items()})
    return out


def start_from(row: Mapping[str, Any], model: ShellModel, absent=()) -> dict:
    """Warm start from a fitted row (absent shells restart from defaults)."""
    out = {}
    for spec in model.shells:
        label = spec.label
        d = default_start(spec)
        cn = row.get(f"cn_{label}")
        if label in absent or cn is None or not np.isfinite(cn):
            out[label] = {**d, "de0": row.get(f"de0_{label}", 0.0)}
            continue
        out[label] = {"cn": max(float(cn), 0.5), "dr": row[f"r_{label}"] - row["_reff"][label],
                      "sigma2": row[f"sigma2_{label}"], "de0": row[f"de0_{label}"]}
    return out


def constraint_acceptable(free: Mapping, constrained: Mapping, n_fixed: int) -> bool:
    """Whether fixing ``n_fixed`` parameters is statistically acceptable.

    Hamilton-type test: the constrained chi-square may exceed the free one by
    up to the 95 % point of a chi-square with ``n_fixed`` degrees of freedom,
    in units of the free fit's reduced chi-square (Larch's scaling).  With
    nothing fixed (an absent shell whose geometry is already fixed by its rules)
    it is always acceptable.
    """
    c_free, c_con = free["chi_square"], constrained["chi_square"]
    if not np.isfinite(c_con):
        return False
    if n_fixed <= 0:
        return True
    if not (np.isfinite(c_free) and np.isfinite(free["redchi"]) and free["redchi"] > 0):
        return True
    return (c_con - c_free) / free["redchi"] <= hamilton_threshold(n_fixed)


def zero_shells(row: Mapping[str, Any], model: ShellModel) -> list[str]:
    """Shells with a varied CN that is consistent with zero (CN < 2 sigma, or near 0
    without an error bar)."""
    out = []
    for spec in model.shells:
        if spec.cn.mode != "free":
            continue
        cn, err = row[f"cn_{spec.label}"], row[f"cn_{spec.label}_err"]
        if not np.isfinite(cn):
            continue
        if np.isfinite(err) and cn < 2 * err:
            out.append(spec.label)
        elif not np.isfinite(err) and cn < 0.5:
            out.append(spec.label)
    return out


def n_pinned(model: ShellModel, absent) -> int:
    """How many parameters pinning the shells ``absent`` fixes (their free dR and
    sigma2, and a dE0 group left with absent shells only)."""
    return _n_varys(model, (), ()) - _n_varys(model, tuple(absent), ())


def removed_parameters(model: ShellModel, label: str) -> int:
    """``b`` of the F-test: the varied parameters that go with shell ``label`` (its CN,
    its free dR and sigma2, its dE0 when no other shell uses that group)."""
    return _n_varys(model, (), ()) - _n_varys(model, (), (label,))


@lru_cache(maxsize=256)
def _n_varys(model: ShellModel, absent: tuple, removed: tuple) -> int:
    return plan_structure(model, absent=absent, removed=removed).n_varys


def hamilton_threshold(n_fixed: int) -> float:
    """How much chi-square (in units of the free fit's reduced chi-square) fixing
    ``n_fixed`` parameters may add and still be acceptable."""
    return chi2_ppf(HAMILTON_CONFIDENCE, n_fixed)


def at_bound(value, lo, hi):
    """Whether a varied parameter ended on a bound (works on scalars and arrays)."""
    value, lo, hi = (np.asarray(x, dtype=float) for x in (value, lo, hi))
    with np.errstate(invalid="ignore"):
        span = np.where(np.isfinite(hi - lo), hi - lo, np.maximum(1.0, np.abs(value)))
        return ((np.isfinite(lo) & (value - lo <= AT_BOUND_FRACTION * span))
                | (np.isfinite(hi) & (hi - value <= AT_BOUND_FRACTION * span)))


def fit_problems(converged: bool, message: str, bound_names, errorbars: bool) -> str:
    """Why a fit is not acceptable (``""`` when it is): it did not converge, a varied
    parameter ended on a bound, or the covariance gave no error bars."""
    problems = []
    if not converged:
        problems.append(f"{_NOT_CONVERGED} ({message})")
    if bound_names:
        problems.append("at bound: " + ", ".join(bound_names))
    if not errorbars:
        problems.append(_NO_ERRORBARS)
    return "; ".join(problems)


def fit_quality(problems: str, r_factor: float, redchi: float, *, rfactor_max: float = RFACTOR_MAX,
                redchi_max: float = REDCHI_MAX) -> tuple[str, str]:
    """``(quality, reason)`` of a finished fit, on absolute criteria only.

    ``"failed"``: no converged fit with error bars (``problems`` from :func:`fit_problems`
    says which), or nothing could be fitted.  ``"poor"``: converged with error bars, but
    a varied parameter ended on a bound, or the R-factor exceeds ``rfactor_max``, or the
    reduced chi-square exceeds ``redchi_max``.  ``"good"``: none of these.
    """
    if (not np.isfinite(r_factor) or _NOT_CONVERGED in problems or _NO_ERRORBARS in problems):
        return "failed", problems or "no fit"
    reasons = [problems] if problems else []
    if r_factor > rfactor_max:
        reasons.append(f"R-factor {r_factor:.3g} > {rfactor_max:g}")
    if np.isfinite(redchi) and redchi > redchi_max:
        reasons.append(f"reduced chi-square {redchi:.3g} > {redchi_max:g}")
    return ("poor" if reasons else "good"), "; ".join(reasons)


def judge(row: dict, converged: bool, message: str, bound_names, errorbars: bool) -> str:
    """``row``'s ``_bad``, ``fit_quality`` and ``fit_ok`` (:func:`fit_problems`, then
    :func:`fit_quality` with the default limits); returns the quality's reason."""
    row["_bad"] = fit_problems(converged, message, bound_names, errorbars)
    row["fit_quality"], reason = fit_quality(row["_bad"], row["r_factor"], row["redchi"])
    row["fit_ok"] = row["fit_quality"] == "good"
    return reason


def conclude(row: dict, bad: str, tries: int, first: str, absent, model: ShellModel,
             opts: Mapping) -> str:
    """``row``'s ``fit_quality``, ``fit_ok`` and ``fit_message`` once a step's fit is
    final: ``tries`` retries after the problem ``first``, the ``absent`` shells pinned,
    the limits of ``opts``.  Returns the final problems (``bad``, "still ..." when the
    retries did not change them)."""
    notes = []
    if tries:
        notes.append(f"retried from {tries} starts after: {first}")
        if bad == first:
            bad = "still " + first
    notes += [absent_note(model.spec(label), model) for label in absent]
    row["fit_quality"], reason = fit_quality(bad, row["r_factor"], row["redchi"],
                                             rfactor_max=opts["rfactor_max"],
                                             redchi_max=opts["redchi_max"])
    row["fit_ok"] = row["fit_quality"] == "good"
    row["fit_message"] = "; ".join(notes + ([reason] if reason else []))
    return bad


def absent_note(spec: ShellSpec, model: ShellModel) -> str:
    """The fit message of a shell refitted as absent."""
    parts = []
    if spec.deltar.mode == "free":
        parts.append("dR=0")
    if spec.sigma2.mode == "free":
        parts.append(f"sigma2={absent_sigma2(spec, model):g} A^2")
    held = (", ".join(parts) + " fixed, ") if parts else ""
    return f"{spec.label} CN consistent with 0: refitted with {held}CN >= {model.absent_cn_min:g}"

