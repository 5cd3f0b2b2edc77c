"""Combining the evidence channels: how significant is a difference seen in several of them?

The channels of one series are strongly correlated (CN(M-M), the metallic
fraction, the white line and the edge all follow the same metal), so Stouffer's
sum of z, which assumes independent channels, would overstate the evidence.  The
combination used is the **strongest channel after a Bonferroni correction** over
the channels compared: ``p = min(1, m * p_min)`` with ``p_min`` the smallest
two-sided p-value of the ``m`` channels, reported back as a two-sided z.  It is
valid whatever the correlation, conservative when the channels agree, and a
single wild channel cannot make an event unless it is significant on its own
after the correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri, stdtr

__all__ = ["Difference", "combine", "two_sided_p", "z_of_p"]


def two_sided_p(z: float, dof: float | None = None) -> float:
    """Two-sided p-value of ``z`` (Gaussian, or Student's t with ``dof``)."""
    if not np.isfinite(z):
        return math.nan
    if dof is not None and np.isfinite(dof):
        return float(2.0 * stdtr(dof, -abs(z)))
    return float(2.0 * ndtr(-abs(z)))


def z_of_p(p: float) -> float:
    """The two-sided Gaussian z of a p-value."""
    if not np.isfinite(p):
        return math.nan
    return float(-ndtri(max(p, 1e-300) / 2.0))


@dataclass(frozen=True)
class Difference:
    """One channel's difference between two segments (or a trend within one)."""

    channel: str
    label: str
    kind: str
    sign: int
    delta: float
    err: float
    z: float
    p: float


def combine(diffs: list[Difference]) -> tuple[float, float, Difference | None]:
    """``(z, p, strongest)``: the combined two-sided z and p of ``diffs`` and the channel
    that carries it (see the module docstring)."""
    usable = [d for d in diffs if np.isfinite(d.p)]
    if not usable:
        return math.nan, math.nan, None
    strongest = min(usable, key=lambda d: d.p)
    p = min(1.0, len(usable) * strongest.p)
    return z_of_p(p), p, strongest
