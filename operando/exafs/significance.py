"""Is a shell there?  The F-test of adding it and the detection limit of its CN.

Both engines call these two functions, the fast one on all steps at once, the larch
engine on one step at a time, with their own refits.

**F-test** (:func:`f_test`).  H0 is the model without the shell S (its CN 0, its own
parameters dropped: CN, and its dR, sigma2 and dE0 when they are varied and used by
no other shell -- ``b`` of them); H1 is the *free* fit, never the refit of an absent
shell with its geometry pinned.  On the chi-square scaled so that H1's reduced
chi-square is 1 (Larch's error bars make the same assumption: the misfit is noise),
``F = [(chi2_0 - chi2_1) / b] / [chi2_1 / nu]``, ``nu = n_idp - n_varys(H1)``,
follows Fisher's F(b, nu) under H0 (Hamilton's test); ``p_S`` is its upper tail and
the shell is significant (``sig_S``) when ``p_S < P_SIGNIFICANT`` and its free-fit
CN is positive.  A shell whose free-fit CN exceeds ``WALD_Z`` times its error is not
refitted without it: ``chi2_0 - chi2_1`` is then taken as ``(CN / sigma)^2`` in the
same units (the profile of a linear model at CN = 0, Wald's statistic), which makes
p < 1e-4 either way (:func:`wald_f`).

**Detection limit** (:func:`detection_limit`, ``cn_S_limit``): how far above its fitted
value the CN of S could be at 95 % one-sided -- the CN a shell of that geometry must
exceed to stand out of the step's noise, the same kind of number at every step (for a
step without the shell, the largest CN that could hide in its noise; the upper limit of
its CN is ``cn_S + cn_S_limit``).  The CN of S is held at c and everything else
refitted (for an absent shell with its geometry pinned as reported: dR = 0, sigma2 at
``absent_sigma2`` or the reference value), giving
``D(c) = [chi2(c) - chi2_min] / (chi2_min / nu)`` with chi2_min, nu of the reported
fit.  The one-sided 95 % upper limit (:func:`upper_limit`) is the c > CN where
``D(c) = F(0.90; 1, nu)`` (= t(0.95; nu)^2); the detection limit is its distance from
the CN.  It is found with one refit per step at the quadratic (covariance) estimate
``c1 = CN + t sigma``, then ``CN + (c1 - CN) t / sqrt(D(c1))``, i.e. ``sqrt(D)`` taken
linear in c through the minimum (``refits=2`` adds a second refit there and the secant
of ``sqrt(D)`` through both).  On the Cu mixtures one refit agrees with two to 1e-5 and
with a dense grid of larch feffit refits to 0.1 % (tests/exafs/test_exafs_significance.py);
the covariance estimate alone was off by up to 0.3 % there, more where the profile is
not quadratic (near a bound).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .._util.stats import f_ppf, f_sf

#: The shell is significant when the F-test p-value is below this (and its CN > 0).
P_SIGNIFICANT = 0.05
#: Confidence of the one-sided upper limit of a CN.
LIMIT_LEVEL = 0.95
#: Above this many sigma (free fit) the F-test uses Wald's statistic instead of a refit.
WALD_Z = 6.0


def f_test(chi2_without, chi2_with, b, n_idp, n_varys_with):
    """``(F, p)`` of adding ``b`` parameters (arrays or scalars; NaN where undefined).

    ``chi2_without`` / ``chi2_with``: Larch's chi-square of the fits without and with
    the shell; ``nu = n_idp - n_varys_with``.  A refit without the shell that ends
    *lower* than the fit with it (a better minimum found) gives F <= 0, p = 1.
    """
    c0, c1 = np.asarray(chi2_without, float), np.asarray(chi2_with, float)
    b = np.asarray(b, float)
    nu = np.asarray(n_idp, float) - np.asarray(n_varys_with, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        F = ((c0 - c1) / b) / (c1 / nu)
        good = np.isfinite(F) & (b > 0) & (nu > 0) & (c1 > 0)
    F = np.where(good, F, np.nan)
    p = np.where(good, f_sf(np.where(good, F, 1.0), np.where(good, b, 1.0),
                            np.where(good, nu, 1.0)), np.nan)
    return (F, p) if F.ndim else (float(F), float(p))


def wald_f(cn, err, b):
    """F of removing a shell from its Wald statistic ``(CN / sigma)^2 / b`` (arrays)."""
    cn, err = np.asarray(cn, float), np.asarray(err, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cn / err) ** 2 / np.asarray(b, float)


def needs_refit(cn, err):
    """Rows whose F-test needs the refit without the shell (CN < WALD_Z sigma)."""
    cn, err = np.asarray(cn, float), np.asarray(err, float)
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(cn) & np.isfinite(err) & (err > 0) & (cn >= WALD_Z * err))


def significant(p, cn_free):
    """``p < P_SIGNIFICANT`` and a positive free-fit CN (False where p is NaN)."""
    p, cn = np.asarray(p, float), np.asarray(cn_free, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(p) & (p < P_SIGNIFICANT) & np.isfinite(cn) & (cn > 0)


def upper_limit(cn, err, chi2_min, nu, profile: Callable, *, level: float = LIMIT_LEVEL,
                refits: int = 1):
    """One-sided ``level`` upper limit of a CN from its chi-square profile.

    Parameters
    ----------
    cn, err, chi2_min, nu : (n,) arrays
        The reported CN, its error bar, Larch's chi-square and ``n_idp - n_varys`` of
        the reported fit of each step.
    profile : callable ``(c, idx) -> chi2``
        Refits the steps ``idx`` (indices into the arrays) with the CN held at ``c``
        ((m,) array) and returns their chi-square.  Called ``refits`` times.
    level : float
        0.95: the crossing of ``F(2 level - 1; 1, nu)``.
    refits : {1, 2}

    Returns
    -------
    (n,) array
        The limit (NaN where the inputs are not finite).
    """
    cn, err, chi2_min, nu = (np.atleast_1d(np.asarray(x, float)) for x in (cn, err, chi2_min, nu))
    out = np.full(cn.shape, np.nan)
    with np.errstate(invalid="ignore"):
        use = (np.isfinite(cn) & np.isfinite(err) & (err > 0) & np.isfinite(chi2_min)
               & (chi2_min > 0) & (nu > 0))
    idx = np.flatnonzero(use)
    if idx.size == 0:
        return out
    s = np.sqrt([f_ppf(2 * level - 1, 1, float(v)) for v in nu[idx]])
    c0, sig, scale = cn[idx], err[idx], chi2_min[idx] / nu[idx]

    def root_d(c):
        d = (np.asarray(profile(c, idx), float) - chi2_min[idx]) / scale
        return np.sqrt(np.clip(np.where(np.isfinite(d), d, np.nan), 0.0, None))

    c1 = c0 + s * sig
    r1 = root_d(c1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c2 = np.where(np.isfinite(r1) & (r1 > 1e-3 * s), c0 + (c1 - c0) * s / r1, c1 + s * sig)
    c2 = np.minimum(c2, c0 + 4 * s * sig)            # a flat profile: stop at 4x the estimate
    if refits < 2:
        out[idx] = np.where(np.isfinite(r1), c2, np.nan)
        return out
    r2 = root_d(c2)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (r2 - r1) / (c2 - c1)
        lim = np.where(np.isfinite(slope) & (slope > 0), c2 + (s - r2) / slope, c2)
    # the secant may not leave the bracket it was built on by more than its width
    lim = np.clip(lim, np.minimum(c1, c2) - np.abs(c2 - c1), np.maximum(c1, c2) + np.abs(c2 - c1))
    out[idx] = np.where(np.isfinite(r1) & np.isfinite(r2), lim, np.nan)
    return out


def detection_limit(cn, err, chi2_min, nu, profile: Callable, *, level: float = LIMIT_LEVEL,
                    refits: int = 1):
    """:func:`upper_limit` minus the CN: the one-sided ``level`` half-width of the CN's
    chi-square profile (arrays; NaN where the inputs are not finite)."""
    cn = np.atleast_1d(np.asarray(cn, float))
    return upper_limit(cn, err, chi2_min, nu, profile, level=level, refits=refits) - cn
