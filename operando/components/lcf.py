"""Linear-combination fitting (LCF) of a whole series against reference spectra.

:func:`lcf` fits every step of a :class:`~operando.xanes.NormalizedSeries`
(normalised mu, flattened mu or its derivative) with a weighted sum of
standards, batched: all steps share one Gram matrix and the bounded /
sum-to-one problem is solved exactly (``_solver``).  :func:`lcf_arrays` does the
same for any spectra already on one grid (e.g. chi(k) * k^w arrays).

The statistics follow ``larch.math.lincombo_fit``: unweighted residual,
``chi_square`` = sum of squared residuals, ``redchi = chi_square / (n_points -
nvarys)`` (sum-to-one removes one varied weight), ``rfactor = sum(resid^2) /
sum(data^2)``, and weight errors from the covariance scaled by ``redchi``
(lmfit's default ``scale_covar``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from operando._util.result import Result
from operando.errors import ConfigError, DataError
from operando.options import ComponentOptions
from operando.xanes import NormalizedSeries

import operando.components._references as _references
import operando.components._solver as _solver
from ._linear import ShiftModel, fit_linear, fit_shifts, nvarys
from ._space import check_erange, check_space, in_space, span, window

log = logging.getLogger(__name__)

__all__ = ["LCFResult", "lcf", "lcf_arrays"]

@dataclass(frozen=True, eq=False)
class LCFResult(Result):
    """Weights of the standards for every step, with errors and fit statistics.

    Attributes
    ----------
    names : list of str
        Reference names (columns ``frac_<name>``).
    steps : (n,) array
        The ``step`` label of every row.
    weights, errors : (n, k) arrays
        Fitted weights and their 1-sigma errors (NaN for steps not fitted).
    shifts, shift_errors : (n, k) arrays or None
        Energy shift of each reference (eV; the reference is evaluated at
        ``E - shift``), when shifts were fitted.
    chi_square, redchi, rfactor : (n,) arrays
        Fit statistics as ``larch.math.lincombo_fit``.
    n_points, nvarys : (n,) int arrays
        Points in the fit range and varied parameters.
    ok : (n,) bool array
    reason : list of str
        Why a step was not fitted (``""`` when ok).
    x : (n_x,) array
        The grid (energy, eV, or whatever :func:`lcf_arrays` was given).
    xmin, xmax : (n,) arrays
        First and last grid point of each step's fit range.
    settings : dict
        Every setting (fit range, space, constraints, standards and how they
        were normalised, solver, how errors are computed).
    """

    names: list
    steps: np.ndarray
    weights: np.ndarray
    errors: np.ndarray
    chi_square: np.ndarray
    redchi: np.ndarray
    rfactor: np.ndarray
    n_points: np.ndarray
    nvarys: np.ndarray
    ok: np.ndarray
    reason: list
    x: np.ndarray
    xmin: np.ndarray
    xmax: np.ndarray
    settings: dict = field(default_factory=dict)
    shifts: np.ndarray | None = None
    shift_errors: np.ndarray | None = None
    _data: np.ndarray | None = field(default=None, repr=False)
    _basis: np.ndarray | None = field(default=None, repr=False)
    _refs: list | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.steps.size

    def _row(self, step) -> int:
        rows = np.flatnonzero(self.steps == step)
        if rows.size == 0:
            raise DataError(f"no step {step!r} in this LCF result (steps {self.steps.min()}.."
                            f"{self.steps.max()})")
        return int(rows[0])

    def to_dataframe(self) -> pd.DataFrame:
        """One row per step: ``step``, ``frac_<name>``, ``frac_<name>_err`` (and
        ``shift_<name>``, ``shift_<name>_err``), ``lcf_sum``, ``lcf_rfactor``,
        ``lcf_redchi``, ``lcf_chi_square``, ``lcf_n_points``, ``lcf_ok``, ``lcf_reason``."""
        cols: dict = {"step": self.steps}
        for j, name in enumerate(self.names):
            cols[f"frac_{name}"] = self.weights[:, j]
            cols[f"frac_{name}_err"] = self.errors[:, j]
        if self.shifts is not None:
            for j, name in enumerate(self.names):
                cols[f"shift_{name}"] = self.shifts[:, j]
                cols[f"shift_{name}_err"] = self.shift_errors[:, j]
        cols["lcf_sum"] = self.weights.sum(axis=1)
        cols["lcf_rfactor"] = self.rfactor
        cols["lcf_redchi"] = self.redchi
        cols["lcf_chi_square"] = self.chi_square
        cols["lcf_n_points"] = self.n_points
        cols["lcf_ok"] = self.ok
        cols["lcf_reason"] = list(self.reason)
        return pd.DataFrame(cols)

    def to_xarray(self):
        """An ``xarray.Dataset``: ``weight``, ``weight_err`` over ``(step, component)``."""
        from operando._util.xr import lcf_dataset
        return lcf_dataset(self)

    def _repr_html_(self) -> str:
        from operando._util.reprs import lcf_html
        return lcf_html(self)

    def fit(self, step) -> pd.DataFrame:
        """The fit of one step (by its ``step`` label) over its fit range.

        Columns: ``x`` (eV for XANES), ``data``, ``fit``, ``residual`` and one
        column per reference with its weighted contribution.
        """
        i = self._row(step)
        if not self.ok[i]:
            raise DataError(f"step {step} was not fitted: {self.reason[i]}")
        space = self.settings["space"]
        i0, i1 = window(self.x, self.xmin[i], self.xmax[i])
        data = in_space(self.x, self._data[i], space, i0, i1)
        if self.shifts is not None and self._refs is not None:
            A = ShiftModel(self._refs, self.x, space, i0, i1).basis(self.shifts[i])
        else:
            A = in_space(self.x, self._basis, space, i0, i1).T
        parts = A * self.weights[i][None, :]
        fit = parts.sum(axis=1)
        out = {"x": self.x[i0:i1], "data": data, "fit": fit, "residual": data - fit}
        for j, name in enumerate(self.names):
            out[name] = parts[:, j]
        return pd.DataFrame(out)

    def report(self, max_rows: int = 20) -> str:
        """A plain-text summary: settings, then fractions +- errors per step."""
        s = self.settings
        bounds = s.get("bounds")
        lines = [
            f"LCF of {len(self)} steps ({int(self.ok.sum())} fitted) against "
            f"{len(self.names)} standards: {', '.join(self.names)}",
            f"  space {s.get('space')}, fit range {s.get('erange')} "
            f"{'eV relative to E0' if s.get('relative', True) else ''}, "
            f"weights in {bounds if bounds else '(-inf, inf)'}, "
            f"sum to one: {s.get('sum_to_one')}, shifts: {s.get('shifts')}",
            f"  errors: {s.get('errors')}",
        ]
        df = self.to_dataframe()
        head = ["step"] + [f"frac_{n}" for n in self.names] + ["lcf_rfactor", "lcf_redchi"]
        lines.append("  " + "  ".join(f"{h:>18s}" for h in head))
        rows = range(len(self)) if len(self) <= max_rows else \
            list(range(max_rows // 2)) + [-1] + list(range(len(self) - max_rows // 2, len(self)))
        for i in rows:
            if i == -1:
                lines.append("  ...")
                continue
            r = df.iloc[i]
            if not r["lcf_ok"]:
                lines.append(f"  {r['step']:>18}  not fitted: {r['lcf_reason']}")
                continue
            cells = [f"{r['step']:>18}"]
            cells += [f"{r[f'frac_{n}']:8.4f} +- {r[f'frac_{n}_err']:6.4f}" for n in self.names]
            cells += [f"{r['lcf_rfactor']:18.3e}", f"{r['lcf_redchi']:18.3e}"]
            lines.append("  " + "  ".join(cells))
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers
def check_common(sum_to_one, bounds, k):
    """``(lower, upper)`` of every weight (None: unbounded), checked against ``sum_to_one``."""
    try:
        lower, upper = (None, None) if bounds is None else (
            None if v is None else float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ConfigError(f"bounds must be (low, high) or None, got {bounds!r}") from None
    if lower is not None and upper is not None and lower >= upper:
        raise ConfigError(f"bounds must have low < high, got {bounds!r}")
    if sum_to_one and upper is not None and upper * k < 1:
        raise ConfigError(f"with sum_to_one, {k} weights bounded above by {upper} cannot sum to 1")
    return lower, upper


def _check_two_or_more(names) -> None:
    """One weight is the sum_to_one constraint (1 +/- 0) or a scale: never a fraction."""
    if len(names) < 2:
        raise ConfigError(f"LCF needs at least two standards, got one ({names[0]!r}): a "
                          "weight fixed by sum_to_one or a scale, never a fraction; add the "
                          'other state (a file, "first", "last") or use method = "mcr"')


def _solver_note(k, shifts):
    if shifts:
        return ("variable projection: scipy least_squares (trf) over the shifts from 0, exact "
                "bounded weights at every trial shift")
    if k > _solver.MAX_ENUMERATED:
        return "scipy SLSQP per spectrum (more than 6 standards)"
    return "exact: enumeration of the 3^k active sets, batched over steps (closed form per face)"


_ERRORS_NOTE = ("sqrt(diag(cov) * redchi) as lmfit (scale_covar); cov from the curvature of "
                "chi-square in all weights (sum-to-one honoured), also for a weight at a bound")


# --------------------------------------------------------------------------- public
def lcf(normalized: NormalizedSeries, standards, *, erange=ComponentOptions.erange,
        space: str = ComponentOptions.space, sum_to_one: bool = ComponentOptions.sum_to_one,
        bounds=(0.0, 1.0), shifts: bool = ComponentOptions.shifts,
        max_shift: float = ComponentOptions.max_shift, standard_e0: str = "series",
        steps=None) -> LCFResult:
    """Linear-combination fit of every step against reference spectra.

    Parameters
    ----------
    normalized : NormalizedSeries
        The series, normalised (:func:`operando.normalize`).
    standards : dict or list
        ``{name: reference}`` or a list of standards (names from the file
        stem, ``"first"``, ``"step_<n>"``, ...).  A reference is a path (XDI,
        column file, ``"file.prj#group"``), a one-spectrum Series (raw; it is
        resampled onto the series' grid and normalised with the series' own
        settings, see ``standard_e0``), a
        one-spectrum NormalizedSeries, ``"first"`` / ``"last"`` / a step
        number / a slice of the series, a 1-D array on the series grid or an
        ``(energy, values)`` pair (both taken as normalised).
    erange : (float, float)
        Fit range relative to each step's E0, eV (inclusive).
    space : {"norm", "flat", "dnormde"}
        Normalised mu, flattened mu, or the derivative of normalised mu (1/eV).
    sum_to_one : bool
        Constrain the weights to sum to 1 (Larch's default).
    bounds : (float, float) or None
        Bounds of every weight; None for unbounded (Larch's function default).
    shifts : bool
        Fit an energy shift per reference, bounded by ``max_shift`` (eV).
    standard_e0 : {"series", "own"}
        Normalise raw standards about the series' E0 (median over steps;
        same absolute windows as the data, the default) or about their own E0.
    steps : sequence of int, optional
        ``step`` labels to fit (default: every step).

    Returns
    -------
    LCFResult

    Raises
    ------
    ConfigError
        Bad settings, or fewer than two standards (one weight is never a fraction).
    DataError
        A reference on another edge or element, a reference not covering the
        fit range, linearly dependent standards (each naming the reference),
        or a fit range with too few points.
    """
    space = check_space(space)
    max_shift = float(max_shift)
    if shifts and not (0 < max_shift <= 50):
        raise ConfigError(f"max_shift must be in (0, 50] eV, got {max_shift}")
    prep = prepare(normalized, standards, erange=erange, space=space,
                   standard_e0=standard_e0, steps=steps, margin=max_shift if shifts else 0.0)
    k = len(prep.refs)
    _check_two_or_more(prep.names)
    lower, upper = check_common(sum_to_one, bounds, k)
    nv = nvarys(k, sum_to_one, shifts)
    n = len(normalized)
    res = empty_fits(n, k, shifts)
    for group, i0, i1, A, Y in prep.blocks():
        if i1 - i0 <= nv + 1:
            raise DataError(f"fit range {prep.energy[i0]:.1f}-{prep.energy[i1 - 1]:.1f} eV "
                            f"holds {i1 - i0} points, too few for {nv} varied parameters: "
                            "widen erange")
        res["xmin"][group], res["xmax"][group] = prep.energy[i0], prep.energy[i1 - 1]
        if not shifts:
            _store(res, group, fit_linear(Y, A, lower=lower, upper=upper, sum_to_one=sum_to_one))
            continue
        model = ShiftModel(prep.refs, prep.energy, space, i0, i1)
        for row, y in zip(group, Y):
            if not np.all(np.isfinite(y)):
                continue
            out = fit_shifts(y, model, lower=lower, upper=upper, sum_to_one=sum_to_one,
                             max_shift=max_shift)
            _store(res, row, out)
            res["ok"][row] = True
            if not out["converged"]:
                log.info("lcf step %s: shift fit did not converge (%s)",
                         normalized.series.steps[row], out["message"])
    prep.fill_reasons(res)
    settings = prep.settings(sum_to_one=bool(sum_to_one),
                             bounds=None if bounds is None else [lower, upper],
                             shifts=bool(shifts), max_shift=max_shift if shifts else None,
                             nvarys=nv, solver=_solver_note(k, shifts), errors=_ERRORS_NOTE)
    return LCFResult(names=prep.names, steps=normalized.series.steps.copy(), x=prep.energy,
                     settings=settings, _data=prep.source, _basis=prep.basis,
                     _refs=prep.refs if shifts else None, **res)


class Prepared:
    """Standards resolved and checked, and the fit windows of a series (shared by LCF modes)."""

    def __init__(self, normalized, refs, rows, selected, e0_series, lo, hi, space, standard_e0,
                 steps):
        self.normalized = normalized
        self.refs = refs
        self.names = [r.name for r in refs]
        self.rows = rows
        self.selected = selected
        self.e0_series = e0_series
        self.lo, self.hi = lo, hi
        self.space = space
        self.standard_e0 = standard_e0
        self.steps = steps
        self.energy = normalized.energy
        self.source = normalized.flat if space == "flat" else normalized.norm
        self.basis = _references.on_grid(refs, self.energy, space)
        self.windows = []

    def blocks(self):
        """Yield ``(rows, i0, i1, A (m, k), Y (r, m))`` per distinct E0 of the fitted steps."""
        for group, i0, i1 in self.windows:
            A = in_space(self.energy, self.basis, self.space, i0, i1).T
            Y = in_space(self.energy, self.source[group], self.space, i0, i1)
            yield group, i0, i1, A, Y

    def fill_reasons(self, res) -> None:
        nz = self.normalized
        for i in np.flatnonzero(~res["ok"]):
            if res["reason"][i]:
                continue
            res["reason"][i] = ("lcf: " + nz.reason[i]) if not nz.ok[i] else \
                "lcf: not selected" if not self.selected[i] else \
                "lcf: data not finite in the fit range"

    def settings(self, **extra) -> dict:
        ranges = [(float(self.energy[i0]), float(self.energy[i1 - 1])) for _, i0, i1 in
                  self.windows]
        out = {
            "method": "lcf", "space": self.space, "erange": [self.lo, self.hi], "relative": True,
            "e0": self.e0_series if len(ranges) == 1 else "per step (see xmin/xmax)",
            "fit_range": ranges[0] if len(ranges) == 1 else ranges,
        }
        out.update(extra)
        out.update({
            "interpolation": "not-a-knot cubic spline onto the series grid (as lincombo_fit)",
            "normalization": _references.series_norm_settings(self.normalized),
            "standard_e0": self.standard_e0,
            "standards": [r.info() for r in self.refs],
            "steps": None if self.steps is None else
            [int(s) for s in np.asarray(self.steps).ravel()],
        })
        return out


def prepare(normalized, standards, *, erange, space, standard_e0, steps,
            margin) -> Prepared:
    """Resolve and check the standards and the fit windows of every step to be fitted.

    Raises the errors documented in :func:`lcf` (other edge, coverage, singular basis).
    """
    if not isinstance(normalized, NormalizedSeries):
        raise ConfigError(f"LCF needs a NormalizedSeries (operando.normalize), got "
                          f"{type(normalized).__name__}")
    lo, hi = check_erange(erange)
    if standard_e0 not in ("series", "own"):
        raise ConfigError(f"standard_e0 must be 'series' or 'own', got {standard_e0!r}")
    energy = normalized.energy
    n = len(normalized)
    all_steps = normalized.series.steps
    selected = np.ones(n, bool) if steps is None else np.isin(all_steps, np.asarray(steps))
    if steps is not None and not selected.any():
        raise DataError(f"none of steps {list(steps)[:10]} is in the series")
    rows = np.flatnonzero(selected & normalized.ok & np.isfinite(normalized.e0))
    if rows.size == 0:
        raise DataError("no normalised step to fit (every selected step failed normalisation)")
    e0_series = float(np.median(normalized.e0[rows]))
    refs = _references.resolve_checked(normalized, standards, e0_series, standard_e0)
    prep = Prepared(normalized, refs, rows, selected, e0_series, lo, hi, space, standard_e0,
                    steps)
    for e0 in np.unique(normalized.e0[rows]):
        group = rows[normalized.e0[rows] == e0]
        i0, i1 = window(energy, e0 + lo, e0 + hi)
        if i1 - i0 < 3:
            raise DataError(f"fit range {e0 + lo:.1f}-{e0 + hi:.1f} eV holds {i1 - i0} points "
                            f"of the grid ({energy[0]:.1f}-{energy[-1]:.1f} eV): widen erange")
        _references.check_coverage(refs, *span(energy, i0, i1, space), margin)
        A = in_space(energy, prep.basis, space, i0, i1).T
        _references.check_basis(A, prep.names, f" {energy[i0]:.1f}-{energy[i1 - 1]:.1f} eV")
        prep.windows.append((group, i0, i1))
    return prep


def lcf_arrays(x, spectra, standards, *, names=None, xrange=None,
               sum_to_one: bool = ComponentOptions.sum_to_one,
               bounds=(0.0, 1.0), steps=None) -> LCFResult:
    """LCF of spectra already on one grid (e.g. chi(k) * k^w) against standards on that grid.

    Parameters
    ----------
    x : (n_x,) array
        The common grid (energy in eV, k in 1/Angstrom, ...), increasing.
    spectra : (n, n_x) array
        One spectrum per row.
    standards : (k, n_x) array
        One reference per row, on ``x``.
    names : list of str, optional
        Reference names (default ``ref0, ref1, ...``).
    xrange : (float, float), optional
        Absolute fit range on ``x`` (inclusive; default the whole grid).
    sum_to_one, bounds
        As :func:`lcf`.
    steps : array, optional
        Step labels of the rows (default 0..n-1).

    Returns
    -------
    LCFResult
    """
    x = np.asarray(x, dtype=float)
    Y = np.atleast_2d(np.asarray(spectra, dtype=float))
    R = np.atleast_2d(np.asarray(standards, dtype=float))
    if x.ndim != 1 or np.any(np.diff(x) <= 0):
        raise DataError("x must be a strictly increasing 1-D array")
    if Y.shape[1] != x.size or R.shape[1] != x.size:
        raise DataError(f"spectra {Y.shape} and standards {R.shape} must have {x.size} columns "
                        "(one per point of x)")
    k = R.shape[0]
    names = [f"ref{j}" for j in range(k)] if names is None else [str(v) for v in names]
    if len(names) != k or len(set(names)) != k:
        raise ConfigError(f"names must be {k} unique labels, got {names}")
    _check_two_or_more(names)
    lower, upper = check_common(sum_to_one, bounds, k)
    lo, hi = (x[0], x[-1]) if xrange is None else check_erange(xrange)
    i0, i1 = window(x, lo, hi)
    nv = nvarys(k, sum_to_one)
    if i1 - i0 <= nv + 1:
        raise DataError(f"xrange {lo}-{hi} holds {i1 - i0} points, too few for {nv} parameters")
    A = R[:, i0:i1].T
    bad = [names[j] for j in range(k) if not np.all(np.isfinite(A[:, j]))]
    if bad:
        raise DataError(f"reference(s) {bad} are not finite over the fit range {lo}-{hi}")
    _references.check_basis(A, names)
    n = Y.shape[0]
    res = empty_fits(n, k, False)
    out = fit_linear(Y[:, i0:i1], A, lower=lower, upper=upper, sum_to_one=sum_to_one)
    _store(res, np.arange(n), out)
    res["xmin"][:], res["xmax"][:] = x[i0], x[i1 - 1]
    for i in np.flatnonzero(~res["ok"]):
        res["reason"][i] = "lcf: data not finite in the fit range"
    settings = {"method": "lcf_arrays", "space": "as given", "erange": [float(lo), float(hi)],
                "relative": False, "sum_to_one": bool(sum_to_one),
                "bounds": None if bounds is None else [lower, upper], "shifts": False,
                "nvarys": nv, "solver": _solver_note(k, False), "errors": _ERRORS_NOTE,
                "standards": names}
    step_labels = np.arange(n) if steps is None else np.asarray(steps)
    return LCFResult(names=names, steps=step_labels, x=x, settings=settings, _data=Y, _basis=R,
                     **res)


def empty_fits(n, k, shifts):
    res = {"weights": np.full((n, k), np.nan), "errors": np.full((n, k), np.nan),
           "chi_square": np.full(n, np.nan), "redchi": np.full(n, np.nan),
           "rfactor": np.full(n, np.nan), "n_points": np.zeros(n, int), "nvarys": np.zeros(n, int),
           "ok": np.zeros(n, bool), "reason": [""] * n, "xmin": np.full(n, np.nan),
           "xmax": np.full(n, np.nan)}
    if shifts:
        res["shifts"] = np.full((n, k), np.nan)
        res["shift_errors"] = np.full((n, k), np.nan)
    return res


def _store(res, rows, out):
    for key, value in out.items():
        if key in res:
            res[key][rows] = value
