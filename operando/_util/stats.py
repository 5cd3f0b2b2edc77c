"""The one chi-square quantile the fit statistics use."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["chi2_ppf"]


@lru_cache(maxsize=256)
def chi2_ppf(q: float, dof: float) -> float:
    """``scipy.stats.chi2.ppf(q, dof)``: the ``q`` quantile of a chi-square with ``dof``
    degrees of freedom (``scipy.special.chdtri`` on the upper tail, the same function
    without importing scipy.stats)."""
    from scipy.special import chdtri

    if not 0 < q < 1 or not dof > 0:
        raise ValueError(f"chi2_ppf needs 0 < q < 1 and dof > 0, got q={q}, dof={dof}")
    return float(chdtri(float(dof), 1.0 - float(q)))
