"""Step changes in a noisy sequence (CN per step): binary segmentation of the CUSUM."""

from __future__ import annotations

import math

import numpy as np


def robust_noise(x: np.ndarray) -> float:
    """Gaussian sigma of ``x`` from the median absolute first difference.

    Differences cancel a step change except at one point, so the estimate is
    insensitive to the very changes we look for: the noise scale both the change-point
    search and the segment statistics (:mod:`.segments`) measure steps against.
    """
    if x.size < 3:
        return math.nan
    d = np.diff(x)
    mad = np.median(np.abs(d - np.median(d)))
    return float(1.4826 * mad / math.sqrt(2))


def find_change_points(values, *, min_size: int = 5, threshold: float = 5.0,
                       noise: float | None = None) -> list[int]:
    """Step changes in a noisy sequence by binary segmentation of the CUSUM.

    For every admissible split ``k`` the statistic
    ``T_k = |mean(x[:k]) - mean(x[k:])| / (sigma sqrt(1/k + 1/(n-k)))`` is the
    difference of the two means over its standard error; the split with the
    largest ``T`` is accepted when ``T >= threshold`` and both halves are
    searched again.

    Parameters
    ----------
    values : (n,) array
        The sequence (e.g. CN(M-M) per step); non-finite values are ignored.
    min_size : int
        Minimum number of finite points on each side of a change.
    threshold : float
        Significance threshold in units of the standard error of the mean
        difference.
    noise : float, optional
        Per-point noise sigma; estimated robustly from the median absolute
        first difference of the whole sequence when omitted.

    Returns
    -------
    list of int
        Positions (indices into ``values``) where a new regime starts, sorted.
    """
    x_all = np.asarray(values, dtype=float)
    finite = np.flatnonzero(np.isfinite(x_all))
    x = x_all[finite]
    if x.size < 2 * min_size:
        return []
    sigma = robust_noise(x) if noise is None else float(noise)
    if not np.isfinite(sigma) or sigma <= 0:
        # A noiseless sequence: any difference is a change, scale by the data span instead.
        sigma = max(float(np.ptp(x)) * 1e-9, 1e-300)
    found: list[int] = []
    stack = [(0, x.size)]
    while stack:
        a, b = stack.pop()
        n = b - a
        if n < 2 * min_size:
            continue
        seg = x[a:b]
        csum = np.cumsum(seg)
        k = np.arange(min_size, n - min_size + 1)
        left = csum[k - 1] / k
        right = (csum[-1] - csum[k - 1]) / (n - k)
        stat = np.abs(left - right) / (sigma * np.sqrt(1.0 / k + 1.0 / (n - k)))
        best = int(np.argmax(stat))
        if stat[best] >= threshold:
            split = a + int(k[best])
            found.append(split)
            stack.append((a, split))
            stack.append((split, b))
    return sorted(int(finite[i]) for i in found)
