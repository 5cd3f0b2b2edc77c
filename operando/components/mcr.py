"""MCR-ALS of a series when no references exist: spectra and concentrations, with their ambiguity.

The alternating least squares is pyMCR's (``pymcr.mcr.McrAR``, NIST; pure
numpy/scipy, works with numpy 2): ordinary least squares for C and S^T in
turn, then the constraints: non-negative concentrations and spectra, closure
(concentrations of a step sum to 1), and optionally fixed known spectra (e.g.
a metal foil) that the ALS never changes.

Initial spectra: ``"purest"`` picks the most dissimilar steps by successive
projections (the spectrum farthest from the mean, then each time the one with
the largest part outside the span of those picked: for mixtures the picks are
vertices of the mixing simplex, the purest steps, as SIMPLISMA's pure samples);
or the steps given; or arrays given.

An MCR solution is not unique: any rotation ``C T, T^-1 S^T`` that keeps the
constraints fits equally well.  :func:`feasible_bands` finds, for every
component, the feasible solutions with the largest and smallest signal
contribution (the MCR-BANDS idea of Jaumot & Tauler, 2010) with scipy SLSQP.
The envelope of those solutions and the ALS one is reported as the band of
feasible concentrations: a lower bound on the true feasible range, stated
with the tolerances used.
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
from ._space import in_space, series_matrix, span

log = logging.getLogger(__name__)

__all__ = ["MCRResult", "mcr", "purest_rows"]



@dataclass(frozen=True, eq=False)
class MCRResult(Result):
    """Resolved spectra and concentration profiles, with fit quality and ambiguity.

    Attributes
    ----------
    names : list of str
        Component names (``mcr1, mcr2, ...``, or the names of fixed references).
    x : (m,) array
        Energy of the analysed points, eV.
    spectra : (k, m) array
        Resolved spectra (normalised units).
    concentrations : (n, k) array
        Per step (all steps of the series; NaN for steps not used).
    conc_min, conc_max : (n, k) arrays
        Band of feasible concentrations (NaN when not computed).
    steps : (n,) array
    used : (n,) bool array
        Steps analysed.
    lack_of_fit : float
        100 * sqrt(sum(residual^2) / sum(data^2)), %.
    lack_of_fit_pca : float
        The same for the best rank-k approximation (PCA): the floor ALS cannot beat.
    residual_rms : (n,) array
        rms residual per step.
    fixed : list of str
        Names of the fixed spectra.
    n_iter : int
    settings : dict
    """

    names: list
    x: np.ndarray
    spectra: np.ndarray
    concentrations: np.ndarray
    conc_min: np.ndarray
    conc_max: np.ndarray
    steps: np.ndarray
    used: np.ndarray
    lack_of_fit: float
    lack_of_fit_pca: float
    residual_rms: np.ndarray
    fixed: list
    n_iter: int
    settings: dict = field(default_factory=dict)

    @property
    def band_width(self) -> float:
        """Largest width of the feasible-concentration band over steps and components."""
        w = self.conc_max - self.conc_min
        return float(np.nanmax(w)) if np.any(np.isfinite(w)) else float("nan")

    def to_dataframe(self) -> pd.DataFrame:
        """One row per step: ``step``, ``mcr_<name>``, ``mcr_<name>_min``, ``mcr_<name>_max``,
        ``mcr_residual_rms``."""
        cols: dict = {"step": self.steps}
        for j, name in enumerate(self.names):
            cols[f"mcr_{name}"] = self.concentrations[:, j]
            cols[f"mcr_{name}_min"] = self.conc_min[:, j]
            cols[f"mcr_{name}_max"] = self.conc_max[:, j]
        cols["mcr_residual_rms"] = self.residual_rms
        return pd.DataFrame(cols)

    def title(self) -> str:
        return self.report().splitlines()[0]

    def report(self) -> str:
        s = self.settings
        lines = [f"MCR-ALS (pyMCR) of {int(self.used.sum())} steps, {len(self.names)} components "
                 f"({', '.join(self.names)}; fixed: {self.fixed or 'none'}), "
                 f"{self.x[0]:.1f}-{self.x[-1]:.1f} eV",
                 f"  constraints: {s['constraints']}; init: {s['init']}; {self.n_iter} iterations",
                 f"  lack of fit {self.lack_of_fit:.3f} % (PCA floor with the same rank "
                 f"{self.lack_of_fit_pca:.3f} %)",
                 f"  rotational ambiguity: feasible concentrations vary by up to "
                 f"{self.band_width:.3f} ({s['bands']})"]
        return "\n".join(lines)


# --------------------------------------------------------------------------- pieces
def purest_rows(D: np.ndarray, k: int, start: np.ndarray | None = None) -> list[int]:
    """Indices of the k most dissimilar rows (successive projections; see module docstring).

    With ``start`` (rows of known spectra), the picks are those least
    explained by the known spectra and by each other.
    """
    picks: list[int] = []
    basis = [] if start is None else [np.asarray(r, dtype=float) for r in np.atleast_2d(start)]
    while len(picks) < k:
        if basis:
            Q, _ = np.linalg.qr(np.array(basis).T)
            R = D - (D @ Q) @ Q.T
        else:
            R = D - D.mean(axis=0)
        norms = np.einsum("ij,ij->i", R, R)
        norms[picks] = -1.0
        picks.append(int(np.argmax(norms)))
        basis.append(D[picks[-1]])
    return picks


class _Rotation:
    """Feasible rotations ``C' = C M^-1, S' = M S`` of an MCR solution, with derivatives."""

    def __init__(self, C, S, fixed, closure):
        self.C, self.S = C, S
        k = C.shape[1]
        self.k = k
        self.free_rows = [j for j in range(k) if j not in set(fixed)]
        self.slots = [(r, c) for r in self.free_rows for c in range(k) if c != r]
        self.dM = []
        for r, c in self.slots:
            d = np.zeros((k, k))
            d[r, c] = 1.0
            if closure:
                d[r, r] = -1.0                     # rows of M sum to 1
            self.dM.append(d)
        self.total = np.linalg.norm(C @ S)

    def matrix(self, p):
        M = np.eye(self.k)
        for v, d in zip(p, self.dM):
            M = M + v * d
        return M

    def solution(self, p):
        M = self.matrix(p)
        Minv = np.linalg.inv(M)
        return M, Minv, self.C @ Minv, M @ self.S

    def scf(self, p, j):
        """Signal contribution of component j and its gradient."""
        M, Minv, Cp, Sp = self.solution(p)
        nc, ns = np.linalg.norm(Cp[:, j]), np.linalg.norm(Sp[j])
        grad = np.empty(len(self.dM))
        for i, d in enumerate(self.dM):
            dC = -(Cp @ d @ Minv)[:, j]
            dS = (d @ self.S)[j]
            grad[i] = (Cp[:, j] @ dC / nc * ns + nc * (Sp[j] @ dS) / ns) / self.total
        return nc * ns / self.total, grad

    def cons_c(self, p):
        return self.solution(p)[2].ravel()

    def jac_c(self, p):
        _, Minv, Cp, _ = self.solution(p)
        return np.stack([-(Cp @ d @ Minv).ravel() for d in self.dM], axis=1)

    def cons_s(self, p):
        return (self.matrix(p) @ self.S).ravel()

    def jac_s(self, p):
        return np.stack([(d @ self.S).ravel() for d in self.dM], axis=1)


def feasible_bands(C: np.ndarray, S: np.ndarray, *, fixed=(), closure: bool = True,
                   tol_s: float = 0.0) -> dict:
    """Extreme feasible MCR solutions of each component (max and min signal contribution).

    Solutions are ``C' = C M^-1``, ``S' = M S`` with M = I at the ALS
    solution; rows of M for fixed spectra stay unit rows; with closure the
    rows of M sum to 1 (then C' rows still sum to 1).  Feasible:
    ``C' >= 0`` and ``S' >= -tol_s``.  For each component j the signal
    contribution ``||c'_j|| ||s'_j|| / ||C S||`` is maximised and minimised
    with scipy SLSQP (analytic gradients) from M = I.

    Returns ``{"conc_min", "conc_max" (n, k), "scf" (k, 2) min/max, "solutions" list}``.
    """
    from scipy.optimize import minimize

    rot = _Rotation(C, S, fixed, closure)
    k = C.shape[1]
    solutions = [(C, S)]
    scf = np.zeros((k, 2))
    if not rot.slots:
        return {"conc_min": C.copy(), "conc_max": C.copy(), "scf": scf, "solutions": solutions}
    constraints = [{"type": "ineq", "fun": rot.cons_c, "jac": rot.jac_c}]
    if np.isfinite(tol_s):
        constraints.append({"type": "ineq", "fun": lambda p: rot.cons_s(p) + tol_s,
                            "jac": rot.jac_s})
    for j in range(k):
        for col, sign in ((0, 1.0), (1, -1.0)):
            def objective(p, j=j, sign=sign):
                try:
                    f, g = rot.scf(p, j)
                except np.linalg.LinAlgError:
                    return 1e6, np.zeros(len(rot.slots))
                return sign * f, sign * g

            res = minimize(objective, np.zeros(len(rot.slots)), jac=True, method="SLSQP",
                           constraints=constraints, options={"maxiter": 100, "ftol": 1e-7})
            try:
                _, _, Cp, Sp = rot.solution(res.x)
            except np.linalg.LinAlgError:
                continue
            feasible = Cp.min() >= -1e-6 and Sp.min() >= -tol_s - 1e-6
            if feasible:
                solutions.append((Cp, Sp))
                scf[j, col] = rot.scf(res.x, j)[0]
            else:
                log.info("mcr band: component %d %s search ended infeasible (%s)", j,
                         "min" if col == 0 else "max", res.message)
    stack = np.stack([s[0] for s in solutions])
    return {"conc_min": stack.min(axis=0), "conc_max": stack.max(axis=0), "scf": scf,
            "solutions": solutions}


class _Relog(logging.Filter):
    """Drop pyMCR's records after logging them here at DEBUG (library code never prints)."""

    def filter(self, record):
        log.debug("pyMCR: %s", record.getMessage())
        return False


# --------------------------------------------------------------------------- public
def mcr(normalized: NormalizedSeries, n_components: int | None = None, *,
        erange=ComponentOptions.erange, steps=None, space: str = ComponentOptions.space,
        init="purest", fixed=None, closure: bool = True,
        max_iter: int = 500, bands: bool = True, tol_spectra: float | None = None,
        standard_e0: str = "series") -> MCRResult:
    """MCR-ALS of a series: non-negative spectra and concentrations (with closure).

    Parameters
    ----------
    normalized : NormalizedSeries
    n_components : int, optional
        Number of components (default: the PCA estimate, Malinowski's F-test,
        over the same range and steps).
    erange : (float, float)
        Energy range relative to the series' E0 (median over the steps used), eV.
    steps : sequence of int, optional
        Step labels to use (default every normalised step).
    space : {"norm", "flat", "dnormde"}
        ``"dnormde"`` has negative values: non-negativity of spectra is then off.
    init : "purest", sequence of step labels, or (k, m) array
        Initial spectra (see module docstring).
    fixed : dict or list, optional
        Known spectra kept fixed (any reference form :func:`lcf` accepts);
        they are the first components.
    closure : bool
        Concentrations of every step sum to 1.
    max_iter : int
        ALS iterations at most.
    bands : bool
        Compute the band of feasible concentrations (rotational ambiguity).
    tol_spectra : float, optional
        Tolerated negative spectrum value in the band search (default: 3 x the
        PCA real error, i.e. 3 noise standard deviations).

    Returns
    -------
    MCRResult
    """
    from pymcr.constraints import ConstraintNonneg, ConstraintNorm
    from pymcr.mcr import McrAR

    from .pca import pca_matrix

    rows, e0, space, lo, hi, i0, i1, D = series_matrix(normalized, steps, space, erange, "MCR")
    energy = normalized.energy
    if not np.all(np.isfinite(D)):
        raise DataError("MCR needs finite spectra over the energy range")
    p = pca_matrix(energy[i0:i1], D)
    k = p.n_components if n_components is None else int(n_components)
    if not 1 <= k < min(D.shape):
        raise ConfigError(f"n_components must be in 1..{min(D.shape) - 1}, got {k}")

    fixed_refs = []
    if fixed is not None:
        fixed_refs = _references.resolve_checked(normalized, fixed, e0, standard_e0)
        _references.check_coverage(fixed_refs, *span(energy, i0, i1, space))
        if len(fixed_refs) > k:
            raise ConfigError(f"{len(fixed_refs)} fixed spectra but only {k} components")
    nf = len(fixed_refs)
    F = in_space(energy, _references.on_grid(fixed_refs, energy, space), space, i0, i1) \
        if nf else np.zeros((0, i1 - i0))

    if isinstance(init, str):
        if init != "purest":
            raise ConfigError(f"init must be 'purest', a list of steps or an array, got {init!r}")
        picks = purest_rows(D, k - nf, start=F if nf else None)
        S0 = D[picks]
        init_note = "purest steps " + str(normalized.series.steps[rows][picks].tolist())
    else:
        arr = np.asarray(init)
        if arr.ndim == 1:
            idx = [int(np.flatnonzero(normalized.series.steps[rows] == s)[0])
                   if np.any(normalized.series.steps[rows] == s) else -1 for s in arr]
            if -1 in idx or len(idx) != k - nf:
                raise ConfigError(f"init steps {arr.tolist()} must be {k - nf} analysed step "
                                  "labels (one per free component)")
            S0 = D[idx]
            init_note = f"steps {arr.tolist()}"
        else:
            S0 = np.asarray(arr, dtype=float)
            if S0.shape != (k - nf, i1 - i0):
                raise ConfigError(f"init spectra must have shape ({k - nf}, {i1 - i0}): one per "
                                  "free component")
            init_note = "given spectra"
    if nf:
        S0 = np.vstack([F, S0])
    nonneg_s = space != "dnormde"
    c_cons = [ConstraintNonneg()] + ([ConstraintNorm()] if closure else [])
    s_cons = [ConstraintNonneg()] if nonneg_s else []
    als = McrAR(max_iter=int(max_iter), c_constraints=c_cons, st_constraints=s_cons,
                tol_increase=None, tol_n_increase=None, tol_n_above_min=50,
                tol_err_change=1e-14)
    # pyMCR sends its messages to a stdout handler (and resets its level in fit):
    # during the fit they go to this module's log instead
    pymcr_log = logging.getLogger("pymcr.mcr")
    relog = _Relog()
    pymcr_log.addFilter(relog)
    try:
        als.fit(D, ST=S0.copy(), st_fix=list(range(nf)) if nf else None)
    finally:
        pymcr_log.removeFilter(relog)
    exits = [name for name in ("max_iter_reached", "tol_increase", "tol_n_increase",
                               "tol_err_change", "tol_n_above_min")
             if getattr(als, f"exit_{name}", False)]
    log.info("mcr: %d iterations, exit %s", als.n_iter, exits)
    C, S = np.asarray(als.C_opt_), np.asarray(als.ST_opt_)
    resid = D - C @ S
    ssq = float(np.sum(D ** 2))
    lof = 100.0 * np.sqrt(np.sum(resid ** 2) / ssq)
    lof_pca = 100.0 * np.sqrt(np.sum((D - p.reconstruct(k)) ** 2) / ssq)
    n = len(normalized)
    names = [r.name for r in fixed_refs] + [f"mcr{j + 1}" for j in range(k - nf)]
    conc = np.full((n, k), np.nan)
    conc[rows] = C
    cmin = np.full((n, k), np.nan)
    cmax = np.full((n, k), np.nan)
    re = float(p.real_error[k - 1]) if k - 1 < p.real_error.size else 0.0
    tol_s = 3.0 * re if tol_spectra is None else float(tol_spectra)
    band_note = "not computed"
    if bands:
        b = feasible_bands(C, S, fixed=range(nf), closure=closure,
                           tol_s=tol_s if nonneg_s else np.inf)
        cmin[rows], cmax[rows] = b["conc_min"], b["conc_max"]
        band_note = (f"envelope of the ALS solution and the max/min signal-contribution "
                     f"solutions (MCR-BANDS), C >= 0, spectra >= -{tol_s:.4g}; a lower bound "
                     "on the feasible range")
    res_rms = np.full(n, np.nan)
    res_rms[rows] = np.sqrt(np.mean(resid ** 2, axis=1))
    settings = {"method": "mcr-als (pyMCR McrAR, OLS + constraints)", "space": space,
                "erange": [lo, hi], "e0": e0, "energy_range": [float(energy[i0]),
                                                              float(energy[i1 - 1])],
                "n_components": k, "n_components_source": "given" if n_components else
                "PCA (Malinowski F-test)", "init": init_note,
                "constraints": ", ".join(["C >= 0"] + (["closure (rows of C sum to 1)"]
                                                       if closure else [])
                                         + (["S >= 0"] if nonneg_s else [])
                                         + ([f"fixed spectra {names[:nf]}"] if nf else [])),
                "max_iter": int(max_iter), "exit": exits, "bands": band_note,
                "fixed": [r.info() for r in fixed_refs],
                "steps": normalized.series.steps[rows].tolist()}
    return MCRResult(names=names, x=energy[i0:i1], spectra=S, concentrations=conc,
                     conc_min=cmin, conc_max=cmax, steps=normalized.series.steps.copy(),
                     used=np.isin(np.arange(n), rows), lack_of_fit=float(lof),
                     lack_of_fit_pca=float(lof_pca), residual_rms=res_rms,
                     fixed=names[:nf], n_iter=int(als.n_iter), settings=settings)
