"""Principal component analysis of a series: eigenvalues, number of components, target tests.

Two preprocessings:

* ``"none"`` (default): the classic factor analysis of Malinowski on the raw
  data matrix D (energies x spectra), by SVD, no centring.  Eigenvalues are
  ``lambda_j = s_j^2`` (of D^T D).  A series of mixtures of p species has p
  significant eigenvalues, so the estimated number of components is the
  number of species.  Target transformation works in this space.
* ``"larch"``: exactly ``larch.math.pca_train``: subtract the mean spectrum,
  standardise every spectrum over energy, eigen-decompose ``Z^T Z / n``.  Its
  eigenvalues, variances, components and IND equal Larch's (tested); Larch's
  ``nsig`` counts the mean as a component.

Number of components (``"none"``): two statistics of Malinowski are computed,

* IND(n) = RE(n) / (c - n)^2 with the real error
  RE(n) = sqrt(sum_{j>n} lambda_j / (r (c - n))) (r = larger, c = smaller
  dimension of D); its minimum is one estimate;
* the F-test of Malinowski (1989) on reduced eigenvalues
  REV_j = lambda_j / ((r - j + 1)(c - j + 1)): eigenvalue n is significant
  when REV_n is larger than the pool of the smaller ones at level ``alpha``.

**The F-test decides** ``n_components`` (the largest significant n); the IND
minimum is reported next to it, and the settings say when the two disagree.
Measured on mixtures of real references with 0.3 % noise both give the true
number; the F-test is the one with a stated error rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from operando._util.result import Result
from operando._util.stats import f_sf
from operando.errors import ConfigError, DataError
from operando.options import ComponentOptions
from operando.xanes import NormalizedSeries

import operando.components._references as _references
from ._space import in_space, series_matrix, span

__all__ = ["PCAResult", "pca", "pca_matrix"]

_PREPROCESS = ("none", "larch")


@dataclass(frozen=True, eq=False)
class PCAResult(Result):
    """Eigen-analysis of the spectra of a series over one energy range.

    Attributes
    ----------
    x : (m,) array
        Energy (eV) of the analysed points.
    data : (n, m) array
        The spectra analysed (one row per step used).
    steps : (n,) array
        Their step labels.
    eigenvalues, explained_variance : (c,) arrays
        Eigenvalues (convention of ``preprocess``) and their fraction of the total.
    components : (c, m) array
        Abstract components in energy space (unit norm for ``"none"``; Larch's
        scaling for ``"larch"``).
    scores : (n, c) array
        Weights of the components in every spectrum (``"none"``: D = scores @ components).
    ind, real_error, f_pvalue : (c - 1,) arrays
        Malinowski's IND(n), RE(n) and F-test p-value for n = 1..c-1 factors.
    n_components : int
        The estimate (F-test at ``alpha`` for ``"none"``, Larch's ``nsig`` for ``"larch"``).
    n_ind, n_ftest : int
        The IND minimum and the F-test estimate.
    mean : (m,) array or None
        Mean spectrum subtracted (``"larch"``).
    targets : DataFrame or None
        Target-transformation tests of the candidate references given.
    settings : dict
    """

    x: np.ndarray
    data: np.ndarray
    steps: np.ndarray
    eigenvalues: np.ndarray
    explained_variance: np.ndarray
    components: np.ndarray
    scores: np.ndarray
    ind: np.ndarray
    real_error: np.ndarray
    f_pvalue: np.ndarray
    n_components: int
    n_ind: int
    n_ftest: int
    mean: np.ndarray | None = None
    targets: pd.DataFrame | None = None
    settings: dict = field(default_factory=dict)
    _svd: tuple | None = field(default=None, repr=False)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per component: ``component`` (1-based), ``eigenvalue``,
        ``explained_variance``, ``cumulative``, ``ind``, ``real_error``, ``f_pvalue``."""
        c = self.eigenvalues.size
        pad = lambda a: np.concatenate([a, np.full(c - a.size, np.nan)])  # noqa: E731
        return pd.DataFrame({"component": np.arange(1, c + 1), "eigenvalue": self.eigenvalues,
                             "explained_variance": self.explained_variance,
                             "cumulative": np.cumsum(self.explained_variance),
                             "ind": pad(self.ind), "real_error": pad(self.real_error),
                             "f_pvalue": pad(self.f_pvalue)})

    def reconstruct(self, n: int | None = None) -> np.ndarray:
        """The data rebuilt from the first ``n`` components (default ``n_components``), (n, m)."""
        n = self.n_components if n is None else int(n)
        if self.settings["preprocess"] == "larch":
            return np.array([self.project(y, n)["fit"] for y in self.data])
        return self.scores[:, :n] @ self.components[:n]

    def project(self, spectrum, n: int | None = None) -> dict:
        """Least-squares fit of one spectrum (on ``x``) by the first ``n`` components.

        For ``"larch"`` this is ``larch.math.pca_fit(..., rescale=False)``:
        the mean plus a combination of components.  Returns ``weights``,
        ``fit`` and ``chi_square`` (sum of squared residuals).
        """
        n = self.n_components if n is None else int(n)
        y = np.asarray(spectrum, dtype=float)
        if y.shape != self.x.shape:
            raise DataError(f"spectrum must have {self.x.size} points (on PCAResult.x)")
        comps = self.components[:n].T
        base = self.mean if self.mean is not None else 0.0
        w = np.linalg.lstsq(comps, y - base, rcond=None)[0]
        fit = comps @ w + base
        return {"weights": w, "fit": fit, "chi_square": float(np.sum((y - fit) ** 2))}

    def target_test(self, target, n: int | None = None) -> dict:
        """Target transformation of one candidate spectrum (on ``x``) into the first n components.

        Returns ``spoil`` (Malinowski's SPOIL = RET / REP: < 3 acceptable,
        3-6 moderate, > 6 reject), ``aet`` (rms residual of the projection),
        ``rep`` (error of the prediction propagated from the data's real error
        RE), ``redchi`` (AET^2 / (RE^2 + REP^2): ~1 for a target in the span)
        and ``fit`` (the projection).
        """
        if self._svd is None:
            raise ConfigError("target tests need preprocess='none'")
        n = self.n_components if n is None else int(n)
        if not 1 <= n < self.eigenvalues.size:
            raise ConfigError(f"n must be in 1..{self.eigenvalues.size - 1}, got {n}")
        t = np.asarray(target, dtype=float)
        if t.shape != self.x.shape:
            raise DataError(f"target must have {self.x.size} points (on PCAResult.x)")
        U, s, Vt = self._svd
        coef = U[:, :n].T @ t
        fit = U[:, :n] @ coef
        aet = float(np.sqrt(np.mean((t - fit) ** 2)))
        re = float(self.real_error[n - 1])
        rep = re * float(np.linalg.norm(coef / s[:n]))
        ret = float(np.sqrt(max(aet ** 2 - rep ** 2, 0.0)))
        spoil = ret / rep if rep > 0 else np.inf
        verdict = "acceptable" if spoil < 3 else "moderate" if spoil < 6 else "rejected"
        return {"spoil": spoil, "aet": aet, "rep": rep, "ret": ret,
                "redchi": aet ** 2 / (re ** 2 + rep ** 2), "verdict": verdict, "fit": fit,
                "n_components": n}

    def title(self) -> str:
        return self.report().splitlines()[0]

    def report(self) -> str:
        s = self.settings
        lines = [f"PCA of {self.data.shape[0]} spectra x {self.x.size} points "
                 f"({self.x[0]:.1f}-{self.x[-1]:.1f} eV), preprocess {s['preprocess']}",
                 f"  n_components = {self.n_components} ({s['criterion']}); IND minimum at "
                 f"{self.n_ind}, F-test (alpha {s['alpha']}) {self.n_ftest}"]
        lines.append(self.to_dataframe().head(10).to_string(index=False))
        if self.targets is not None:
            lines.append("  target tests:")
            lines.append(self.targets.to_string(index=False))
        return "\n".join(lines)


# --------------------------------------------------------------------------- statistics
def malinowski(eigenvalues: np.ndarray, n_rows: int, n_cols: int) -> dict:
    """IND, real error and F-test p-values for n = 1..c-1 factors (Malinowski).

    ``n_rows``, ``n_cols`` are the dimensions of the data matrix; the formulas
    use r = the larger and c = the smaller.
    """
    r, c = max(n_rows, n_cols), min(n_rows, n_cols)
    lam = np.asarray(eigenvalues, dtype=float)[:c]
    n = np.arange(1, c)
    tail = np.array([lam[k:].sum() for k in n])
    re = np.sqrt(np.clip(tail, 0, None) / (r * (c - n)))
    ind = re / (c - n) ** 2
    j = np.arange(1, c + 1)
    weight = (r - j + 1.0) * (c - j + 1.0)
    pool_w = np.array([weight[k:].sum() for k in n])
    positive = tail > 0
    # one call for every n (a call per n costs ~1 ms of scipy overhead: 0.5 s at c = 433)
    F = pool_w[positive] * lam[n[positive] - 1] / (weight[n[positive] - 1] * tail[positive])
    pvals = np.zeros(n.size)
    pvals[positive] = f_sf(F, 1, c - n[positive])
    return {"ind": ind, "real_error": re, "f_pvalue": pvals}


def _n_ftest(pvals: np.ndarray, alpha: float) -> int:
    significant = np.flatnonzero(pvals < alpha)
    return int(significant.max() + 1) if significant.size else 0


# --------------------------------------------------------------------------- public
def pca_matrix(x, spectra, *, preprocess: str = "none", alpha: float = 0.05,
               steps=None, settings: dict | None = None) -> PCAResult:
    """PCA of spectra already on one grid (rows = spectra).

    Parameters
    ----------
    x : (m,) array
        The grid (eV).
    spectra : (n, m) array
        One spectrum per row, at least 3 rows, all finite.
    preprocess : {"none", "larch"}
        See the module docstring.
    alpha : float
        Level of Malinowski's F-test.
    """
    if preprocess not in _PREPROCESS:
        raise ConfigError(f"preprocess must be one of {_PREPROCESS}, got {preprocess!r}")
    if not 0 < float(alpha) < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    x = np.asarray(x, dtype=float)
    Y = np.atleast_2d(np.asarray(spectra, dtype=float))
    narr, nfreq = Y.shape
    if Y.shape[1] != x.size:
        raise DataError(f"spectra have {Y.shape[1]} points, x has {x.size}")
    if narr < 3:
        raise DataError(f"PCA needs at least 3 spectra, got {narr}")
    if not np.all(np.isfinite(Y)):
        raise DataError("PCA needs finite spectra over the energy range")
    steps = np.arange(narr) if steps is None else np.asarray(steps)
    settings = dict(settings or {})
    settings.update(preprocess=preprocess, alpha=float(alpha))
    if preprocess == "larch":
        ymean = Y.mean(axis=0)
        z = Y - ymean
        z = (z.T - z.mean(axis=1)) / z.std(axis=1)          # (nfreq, narr), as pca_train
        eigval, eigvec_ = np.linalg.eigh(z.T @ z / narr)
        comps = (z @ -eigvec_ / narr).T[::-1]
        eigval = eigval[::-1]
        # pca_train's IND: its first value repeated, nsig = argmin (counts the mean)
        ind = [np.sqrt(nfreq * eigval[r:].sum() / (narr - r - 1)) / (narr - r - 1) ** 2
               for r in range(narr - 1)]
        ind = np.array([ind[0]] + ind)
        nsig = int(np.argmin(ind))
        stats = malinowski(eigval, nfreq, narr)
        settings["criterion"] = "Larch pca_train nsig (IND minimum, the mean counted)"
        scores = np.linalg.lstsq(comps.T, (Y - ymean).T, rcond=None)[0].T
        return PCAResult(x=x, data=Y, steps=steps, eigenvalues=eigval,
                         explained_variance=eigval / eigval.sum(), components=comps,
                         scores=scores, ind=ind, real_error=stats["real_error"],
                         f_pvalue=stats["f_pvalue"], n_components=nsig, n_ind=nsig,
                         n_ftest=_n_ftest(stats["f_pvalue"], alpha), mean=ymean,
                         settings=settings)
    U, s, Vt = np.linalg.svd(Y.T, full_matrices=False)      # D = Y^T (energies x spectra)
    sign = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])])
    U, Vt = U * sign, Vt * sign[:, None]
    lam = s ** 2
    stats = malinowski(lam, nfreq, narr)
    n_ind = int(np.argmin(stats["ind"]) + 1) if stats["ind"].size else 1
    n_f = _n_ftest(stats["f_pvalue"], alpha)
    settings["criterion"] = f"Malinowski F-test at alpha={alpha:g} (IND minimum reported)"
    settings["ind_agrees"] = bool(n_ind == n_f)
    return PCAResult(x=x, data=Y, steps=steps, eigenvalues=lam,
                     explained_variance=lam / lam.sum(), components=U.T,
                     scores=(s[:, None] * Vt).T, ind=stats["ind"],
                     real_error=stats["real_error"], f_pvalue=stats["f_pvalue"],
                     n_components=max(n_f, 1), n_ind=n_ind, n_ftest=n_f, settings=settings,
                     _svd=(U, s, Vt))


def pca(normalized: NormalizedSeries, *, erange=ComponentOptions.erange, absolute: bool = False,
        steps=None, space: str = ComponentOptions.space, preprocess: str = "none", alpha: float = 0.05,
        targets=None, standard_e0: str = "series") -> PCAResult:
    """PCA of the normalised spectra of a series (or of some of its steps) over one energy range.

    Parameters
    ----------
    normalized : NormalizedSeries
    erange : (float, float)
        Energy range, eV relative to the series' E0 (the median over the steps
        used), or absolute eV with ``absolute=True``.
    steps : sequence of int, optional
        ``step`` labels to use (default every normalised step).
    space : {"norm", "flat", "dnormde"}
    preprocess : {"none", "larch"}
    alpha : float
        Level of Malinowski's F-test.
    targets : dict or list, optional
        Candidate references (any form :func:`operando.components.lcf`
        accepts) tested by target transformation into the ``n_components``
        span (``preprocess="none"`` only).
    standard_e0 : {"series", "own"}
        How raw targets are normalised (as in :func:`lcf`).

    Returns
    -------
    PCAResult
    """
    rows, e0, space, lo, hi, i0, i1, Y = series_matrix(normalized, steps, space, erange, "PCA",
                                                       absolute=absolute)
    energy = normalized.energy
    settings = {"method": "pca", "space": space, "erange": [lo, hi], "absolute": bool(absolute),
                "e0": e0, "energy_range": [float(energy[i0]), float(energy[i1 - 1])],
                "steps": normalized.series.steps[rows].tolist()}
    result = pca_matrix(energy[i0:i1], Y, preprocess=preprocess, alpha=alpha,
                        steps=normalized.series.steps[rows], settings=settings)
    if targets is None:
        return result
    if preprocess != "none":
        raise ConfigError("target tests need preprocess='none'")
    refs = _references.resolve_checked(normalized, targets, e0, standard_e0)
    _references.check_coverage(refs, *span(energy, i0, i1, space))
    T = in_space(energy, _references.on_grid(refs, energy, space), space, i0, i1)
    rows_out = []
    for ref, t in zip(refs, T):
        tt = result.target_test(t)
        rows_out.append({"target": ref.name, "spoil": tt["spoil"], "aet": tt["aet"],
                         "rep": tt["rep"], "redchi": tt["redchi"], "verdict": tt["verdict"],
                         "n_components": tt["n_components"]})
    # result.settings holds what pca_matrix added (preprocess, criterion, alpha) too
    return replace(result, targets=pd.DataFrame(rows_out),
                   settings={**result.settings, "targets": [r.info() for r in refs]})
