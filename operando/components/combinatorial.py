"""Combinatorial LCF: every combination of up to k standards, ranked, with statistical tests.

For every step every combination of 1..``max_components`` standards is
fitted (batched over steps, exact bounded solver), ranked by reduced
chi-square as ``larch.math.lincombo_fitall`` ranks them, and two F-tests say
what the data support:

* **Is an extra reference justified?**  A combination c of s standards is
  compared with the best of its own (s-1)-subsets (nested models):
  ``F = ((chi2_sub - chi2_c) / (p_c - p_sub)) / (chi2_c / (N_idp - p_c))``
  with ``F(p_c - p_sub, N_idp - p_c)`` degrees of freedom.  This is Hamilton's
  R-factor ratio test written for chi-square (R-ratio^2 = chi-square ratio).
  The *selected* combination per step: start from the best single reference
  and step up to the best combination of s+1 standards while its extra
  reference is justified (p < ``alpha``).
* **Which combinations are statistically equivalent to the best** (lowest
  reduced chi-square)?  Those whose variance ratio
  ``(chi2_c / nu_c) / (chi2_best / nu_best)`` is below the ``1 - alpha``
  quantile of ``F(nu_c, nu_best)``, ``nu = N_idp - p``.

``N_idp``, the number of independent points, is by default the number of data
points in the fit range: right for white noise on a grid that was not
interpolated.  Noise made smooth by interpolation, or systematic misfit
(normalisation, missing standards), makes the tests too generous in
accepting extra standards; pass a smaller ``n_idp`` (e.g. fit range / energy
resolution) to be conservative.  The settings record which was used.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from operando._util.result import Result
from operando._util.stats import f_sf
from operando.errors import ConfigError, DataError

from ._linear import fit_linear, nvarys
from ._space import check_space
from ..options import ComponentOptions
from .lcf import LCFResult, check_common, empty_fits, prepare

__all__ = ["CombinationResult", "lcf_combinations"]


class CombinationResult(Result):
    """All combinations fitted at every step, with rankings and tests.

    Attributes
    ----------
    names : list of str
        All standards.
    combinations : list of tuple of int
        Reference indices of every combination (sizes 1..max_components).
    steps : (n,) array
        Step labels.
    weights, errors : list of (n, s) arrays
        Per combination, weights and errors of its members at every step.
    chi_square, redchi, rfactor : (n_comb, n) arrays
    p_extra : (n_comb, n) array
        p-value of the F-test of a combination against its best subset with
        one reference fewer (NaN for single standards).
    p_equivalent : (n_comb, n) array
        p-value of the variance-ratio test against the best combination.
    selected : (n,) int array
        Index (into ``combinations``) of the selected combination (-1 if not fitted).
    best : (n,) int array
        Index of the lowest reduced chi-square combination.
    settings : dict
    """

    def __init__(self, names, combinations, steps, fits, n_points, n_idp, alpha, settings,
                 lcf_parts):
        self.names = names
        self.combinations = combinations
        self.steps = steps
        self.weights = [f["weights"] for f in fits]
        self.errors = [f["errors"] for f in fits]
        self.chi_square = np.array([f["chi_square"] for f in fits])
        self.redchi = np.array([f["redchi"] for f in fits])
        self.rfactor = np.array([f["rfactor"] for f in fits])
        self.nvarys = np.array([f["nvarys"][0] for f in fits])
        self.n_points = n_points
        self.n_idp = n_idp
        self.alpha = alpha
        self.settings = settings
        self._lcf_parts = lcf_parts
        self._test()

    # ------------------------------------------------------------------ tests
    def _test(self) -> None:
        n_comb, n = self.chi_square.shape
        sizes = np.array([len(c) for c in self.combinations])
        ok = np.all(np.isfinite(self.chi_square), axis=0)
        self.ok = ok
        nu = self.n_idp[None, :] - self.nvarys[:, None]
        chi2 = self.chi_square
        self.p_extra = np.full((n_comb, n), np.nan)
        index = {c: i for i, c in enumerate(self.combinations)}
        for i, c in enumerate(self.combinations):
            if len(c) < 2:
                continue
            subs = [index[s] for s in itertools.combinations(c, len(c) - 1)]
            sub = np.array(subs)[np.argmin(chi2[subs], axis=0)]
            chi_sub = chi2[sub, np.arange(n)]
            dp = self.nvarys[i] - self.nvarys[sub]
            with np.errstate(invalid="ignore", divide="ignore"):
                F = np.clip(chi_sub - chi2[i], 0.0, None) / dp / (chi2[i] / nu[i])
            self.p_extra[i] = np.where(nu[i] > 0, f_sf(F, dp, np.maximum(nu[i], 1)), np.nan)
        redchi_idp = chi2 / nu
        masked = np.where(np.isfinite(self.redchi), self.redchi, np.inf)
        self.best = np.where(ok, np.argmin(masked, axis=0), -1)
        ref = redchi_idp[self.best, np.arange(n)]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = redchi_idp / ref[None, :]
        nu_best = nu[self.best, np.arange(n)]
        self.p_equivalent = f_sf(ratio, np.maximum(nu, 1), np.maximum(nu_best, 1)[None, :])
        self.p_equivalent[:, ~ok] = np.nan
        # step-up selection: best of each size while the extra reference is justified
        self.selected = np.full(n, -1)
        max_size = sizes.max()
        for j in np.flatnonzero(ok):
            chosen = None
            for s in range(1, max_size + 1):
                members = np.flatnonzero(sizes == s)
                cand = members[np.argmin(chi2[members, j])]
                if s == 1 or self.p_extra[cand, j] < self.alpha:
                    chosen = cand
                else:
                    break
            self.selected[j] = chosen

    # ------------------------------------------------------------------ views
    def label(self, i: int) -> str:
        """``"a+b"`` name of combination ``i``."""
        return "+".join(self.names[j] for j in self.combinations[i])

    def _col(self, step) -> int:
        cols = np.flatnonzero(self.steps == step)
        if cols.size == 0:
            raise DataError(f"no step {step!r} in this result")
        return int(cols[0])

    def table(self, step) -> pd.DataFrame:
        """Every combination at one step, ranked by reduced chi-square (rank 1 = best).

        Columns: ``combination, n_refs, frac_<name>, frac_<name>_err`` (NaN
        for standards not in it), ``chi_square, redchi, rfactor, rank,
        p_extra, justified, p_equivalent, equivalent, selected``.
        """
        j = self._col(step)
        rows = []
        for i, c in enumerate(self.combinations):
            row = {"combination": self.label(i), "n_refs": len(c)}
            for name in self.names:
                row[f"frac_{name}"] = np.nan
                row[f"frac_{name}_err"] = np.nan
            for m, r in enumerate(c):
                row[f"frac_{self.names[r]}"] = self.weights[i][j, m]
                row[f"frac_{self.names[r]}_err"] = self.errors[i][j, m]
            row.update(chi_square=self.chi_square[i, j], redchi=self.redchi[i, j],
                       rfactor=self.rfactor[i, j], p_extra=self.p_extra[i, j],
                       justified=bool(self.p_extra[i, j] < self.alpha),
                       p_equivalent=self.p_equivalent[i, j],
                       equivalent=bool(self.p_equivalent[i, j] > self.alpha),
                       selected=bool(i == self.selected[j]))
            rows.append(row)
        df = pd.DataFrame(rows).sort_values("redchi", kind="stable").reset_index(drop=True)
        df.insert(2, "rank", np.arange(1, len(df) + 1))
        return df

    def equivalent(self, step) -> list[str]:
        """Combinations statistically equivalent to the best at one step, best first."""
        df = self.table(step)
        return df.loc[df["equivalent"], "combination"].tolist()

    def to_dataframe(self) -> pd.DataFrame:
        """One row per step: the selected combination's fractions (0 for standards not in it,
        error NaN), ``lcf_combination, lcf_n_components, lcf_best, lcf_n_equivalent,
        lcf_equivalent, lcf_rfactor, lcf_redchi, lcf_chi_square, lcf_ok``."""
        return self.selected_fit().to_dataframe().drop(columns=["lcf_reason"]).assign(
            lcf_combination=[self.label(i) if i >= 0 else "" for i in self.selected],
            lcf_n_components=[len(self.combinations[i]) if i >= 0 else 0 for i in self.selected],
            lcf_best=[self.label(i) if i >= 0 else "" for i in self.best],
            lcf_n_equivalent=np.nansum(self.p_equivalent > self.alpha, axis=0),
            lcf_equivalent=[";".join(self.label(i) for i in np.argsort(self.redchi[:, j])
                                     if self.p_equivalent[i, j] > self.alpha)
                            for j in range(self.steps.size)])

    def selected_fit(self) -> LCFResult:
        """An :class:`LCFResult` of the selected combination at every step (weights of the
        other standards 0 with NaN error), for plots and ``fit(step)``."""
        parts = self._lcf_parts
        n, k = self.steps.size, len(self.names)
        W = np.zeros((n, k))
        E = np.full((n, k), np.nan)
        stats = {key: np.full(n, np.nan) for key in ("chi_square", "redchi", "rfactor")}
        nv = np.zeros(n, int)
        for j in np.flatnonzero(self.selected >= 0):
            i = self.selected[j]
            c = list(self.combinations[i])
            W[j, c] = self.weights[i][j]
            E[j, c] = self.errors[i][j]
            for key, values in stats.items():
                values[j] = getattr(self, key)[i, j]
            nv[j] = self.nvarys[i]
        W[~self.ok] = np.nan
        return LCFResult(names=self.names, steps=self.steps, weights=W, errors=E,
                         n_points=self.n_points, nvarys=nv, ok=self.ok.copy(),
                         reason=parts["reason"], x=parts["x"], xmin=parts["xmin"],
                         xmax=parts["xmax"], settings=self.settings, _data=parts["data"],
                         _basis=parts["basis"], **stats)

    def title(self) -> str:
        return self.report().splitlines()[0]

    def report(self, step=None, top: int = 8) -> str:
        """Per step the selected and best combinations; with ``step``, its ranked table."""
        s = self.settings
        lines = [f"Combinatorial LCF: {len(self.combinations)} combinations of "
                 f"{len(self.names)} standards (up to {s['max_components']}), "
                 f"alpha {self.alpha}, N_idp: {s['n_idp_rule']}"]
        if step is not None:
            df = self.table(step).head(top)
            cols = ["rank", "combination", "redchi", "rfactor", "p_extra", "equivalent",
                    "selected"]
            lines.append(df[cols].to_string(index=False))
            return "\n".join(lines)
        for j, st in enumerate(self.steps):
            if not self.ok[j]:
                lines.append(f"  step {st}: not fitted")
                continue
            i = self.selected[j]
            fr = ", ".join(f"{self.names[r]} {w:.3f}+-{e:.3f}" for r, w, e in
                           zip(self.combinations[i], self.weights[i][j], self.errors[i][j]))
            lines.append(f"  step {st}: selected {self.label(i)} ({fr}); best "
                         f"{self.label(self.best[j])}; "
                         f"{int(np.sum(self.p_equivalent[:, j] > self.alpha))} equivalent")
        return "\n".join(lines)


def lcf_combinations(normalized, standards, *, max_components: int = 3,
                     erange=ComponentOptions.erange, space: str = ComponentOptions.space,
                     sum_to_one: bool = ComponentOptions.sum_to_one,
                     bounds=(0.0, 1.0), standard_e0: str = "series", alpha: float = 0.05,
                     n_idp: float | None = None, steps=None) -> CombinationResult:
    """Fit every combination of 1..``max_components`` standards at every step.

    Parameters are those of :func:`operando.components.lcf` (no shifts), plus:

    max_components : int
        Largest number of standards in one combination.
    alpha : float
        Significance level of both F-tests (0 < alpha < 1).
    n_idp : float, optional
        Number of independent points in the fit range (default: the number
        of data points).

    Returns
    -------
    CombinationResult
    """
    space = check_space(space)
    if not (0 < float(alpha) < 1):
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    prep = prepare(normalized, standards, erange=erange, space=space,
                   standard_e0=standard_e0, steps=steps, margin=0.0)
    k = len(prep.refs)
    max_components = int(max_components)
    if not 1 <= max_components <= k:
        raise ConfigError(f"max_components must be between 1 and the {k} standards, "
                          f"got {max_components}")
    lower, upper = check_common(sum_to_one, bounds, max_components)
    combos = [c for s in range(1, max_components + 1)
              for c in itertools.combinations(range(k), s)
              if not (sum_to_one and upper is not None and upper * s < 1)]
    n = len(normalized)
    fits = [empty_fits(n, len(c), False) for c in combos]
    n_points = np.zeros(n, int)
    for group, i0, i1, A, Y in prep.blocks():
        m = i1 - i0
        if m <= nvarys(max_components, sum_to_one) + 1:
            raise DataError(f"fit range holds {m} points, too few for {max_components} standards")
        n_points[group] = m
        for c, fit in zip(combos, fits):
            out = fit_linear(Y, A[:, list(c)], lower=lower, upper=upper, sum_to_one=sum_to_one)
            for key, value in out.items():
                fit[key][group] = value
    if n_idp is None:
        idp = n_points.astype(float)
        rule = "number of data points in the fit range"
    else:
        if not float(n_idp) > nvarys(max_components, sum_to_one):
            raise ConfigError(f"n_idp={n_idp} must exceed the largest number of varied "
                              f"parameters ({nvarys(max_components, sum_to_one)})")
        idp = np.full(n, float(n_idp))
        rule = f"given: {float(n_idp):g}"
    base = empty_fits(n, k, False)
    ok = np.all([f["ok"] for f in fits], axis=0)
    base["ok"][:] = ok
    prep.fill_reasons(base)
    for fit in fits:
        fit["nvarys"] = np.full(n, nvarys(len(fit["weights"][0]), sum_to_one))
    settings = prep.settings(method="lcf_combinations", sum_to_one=bool(sum_to_one),
                             bounds=None if bounds is None else [lower, upper], shifts=False,
                             max_components=max_components, alpha=float(alpha),
                             n_idp_rule=rule, ranking="reduced chi-square (as lincombo_fitall)",
                             tests="F-test vs best nested subset (Hamilton); variance-ratio "
                                   "F-test vs best for equivalence")
    xmin = np.full(n, np.nan)
    xmax = np.full(n, np.nan)
    for group, i0, i1 in prep.windows:
        xmin[group], xmax[group] = prep.energy[i0], prep.energy[i1 - 1]
    parts = {"reason": base["reason"], "x": prep.energy, "xmin": xmin, "xmax": xmax,
             "data": prep.source, "basis": prep.basis}
    idp[~ok] = np.nan
    return CombinationResult(prep.names, combos, normalized.series.steps.copy(), fits, n_points,
                             idp, float(alpha), settings, parts)
