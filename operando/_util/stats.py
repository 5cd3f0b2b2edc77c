"""The distribution functions the fit statistics use (chi-square and F), one copy each."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["chi2_ppf", "f_ppf", "f_sf"]


@lru_cache(maxsize=256)
def chi2_ppf(q: float, dof: float) -> float:
    """``scipy.stats.chi2.ppf(q, dof)``: the ``q`` quantile of a chi-square with ``dof``
    degrees of freedom (``scipy.special.chdtri`` on the upper tail, the same function
    without importing scipy.stats)."""
    from scipy.special import chdtri

    if not 0 < q < 1 or not dof > 0:
        raise ValueError(f"chi2_ppf needs 0 < q < 1 and dof > 0, got q={q}, dof={dof}")
    return float(chdtri(float(dof), 1.0 - float(q)))


@lru_cache(maxsize=256)
def f_ppf(q: float, dfn: float, dfd: float) -> float:
    """``scipy.stats.f.ppf(q, dfn, dfd)``: the ``q`` quantile of Fisher's F with ``dfn`` and
    ``dfd`` degrees of freedom (``scipy.special.fdtri``, without importing scipy.stats)."""
    from scipy.special import fdtri

    if not 0 < q < 1 or not dfn > 0 or not dfd > 0:
        raise ValueError(f"f_ppf needs 0 < q < 1 and dfn, dfd > 0, got q={q}, dfn={dfn}, dfd={dfd}")
    return float(fdtri(float(dfn), float(dfd), float(q)))


def f_sf(x, dfn, dfd):
    """``scipy.stats.f.sf(x, dfn, dfd)``: the probability that Fisher's F with ``dfn`` and
    ``dfd`` degrees of freedom exceeds ``x`` (``scipy.special.fdtrc``); arguments may be
    arrays (broadcast; NaN where ``x`` is NaN, 1 where ``x <= 0``)."""
    import numpy as np
    from scipy.special import fdtrc

    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.where(x > 0, fdtrc(np.asarray(dfn, float), np.asarray(dfd, float),
                                    np.where(x > 0, x, 1.0)), 1.0)
    out = np.where(np.isnan(x), np.nan, out)
    return out if out.ndim else float(out)
