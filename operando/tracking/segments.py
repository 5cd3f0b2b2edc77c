"""Segments of a series and what each evidence channel says about each of them.

A **segment** is a block of consecutive steps under one condition, or a part of
such a block between change points.  Per segment and channel, the estimate is the
mean of the usable steps and its uncertainty

``err = max(stat, s / sqrt(n))``

where ``stat`` is the error of the mean from the steps' own errors (CN, fraction),
``n`` the number of usable steps and ``s`` the **scatter of repeat scans within a
condition**: the standard deviation of a single step about its segment mean, pooled
over all segments of the series with repeats.  The scatter is the floor: a fit error
that is too small (linear-combination errors are 3-5 x smaller than the scatter of
repeats) or a quantity with no error of its own (white line, edge) gets the measured
one.  A series without repeats uses the channel's documented floor for one step
instead (:class:`~.settings.TrackSettings`).  What moves a whole condition and not
its repeats (a bias common to a phase, such as an oxide's own M...M leaking into the
metal path) is not a scatter: the states handle it by judging against the baseline
state and the detection limit (:mod:`.states`), and every verdict is a difference
between segments, where a common bias cancels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .changepoints import find_change_points, robust_noise
from .channels import Channel
from .evidence import Difference, two_sided_p, z_of_p
from ..options import TrackSettings


def split(block: np.ndarray, signal: np.ndarray, s: TrackSettings) -> tuple[np.ndarray, list[str]]:
    """``(segment of every step, origin of every segment)``: blocks, split at change points
    of ``signal`` when a block is long enough to find them."""
    segment = np.zeros(block.size, dtype=int)
    origin: list[str] = []
    seg_id = -1
    starts = segment_bounds(block, int(block[-1]) + 1)
    for b in range(int(block[-1]) + 1):
        idx = np.arange(starts[b], starts[b + 1])
        cuts: list[int] = []
        if np.isfinite(signal[idx]).sum() >= max(s.changepoint_min_steps, 2 * s.changepoint_min_size):
            finite = np.isfinite(signal[idx])
            found = find_change_points(signal[idx][finite], min_size=s.changepoint_min_size,
                                       threshold=s.changepoint_z)
            positions = np.flatnonzero(finite)
            cuts = [int(positions[c]) for c in found]
        bounds = [0] + cuts + [idx.size]
        for j in range(len(bounds) - 1):
            seg_id += 1
            segment[idx[bounds[j]:bounds[j + 1]]] = seg_id
            origin.append("condition" if j == 0 else "change point")
    return segment, origin


def segment_bounds(segment: np.ndarray, n_seg: int) -> np.ndarray:
    """Where each segment starts, and the end of the last: ``bounds[g]:bounds[g + 1]``
    are the steps of segment ``g``.  Blocks and segments are runs of consecutive steps
    numbered in order, so this index replaces a search of the whole series per segment
    (tracking stays linear in the series)."""
    return np.searchsorted(np.asarray(segment), np.arange(n_seg + 1), side="left")


@dataclass(frozen=True, eq=False)
class ChannelStats:
    """A channel per segment: ``mean``, ``err``, ``n`` usable steps, mean detection
    ``limit`` (or None), and the repeat ``scatter`` (NaN: no repeats, floor used)."""

    mean: np.ndarray
    err: np.ndarray
    n: np.ndarray
    limit: np.ndarray | None
    scatter: float


def repeat_scatter(channel: Channel, segment: np.ndarray) -> float:
    """Standard deviation of one step about its segment mean, pooled over the segments
    with at least two usable steps (NaN with fewer than 2 degrees of freedom)."""
    n_seg = int(segment.max()) + 1 if segment.size else 0
    pos, starts, n = _runs(np.isfinite(channel.value), segment_bounds(segment, n_seg))
    x = channel.value[pos]
    mean = np.zeros(n_seg)
    mean[n > 0] = _sums(x, starts, n)[n > 0] / n[n > 0]
    seg_ss = _sums((x - np.repeat(mean, n)) ** 2, starts, n)
    ss, dof = 0.0, 0
    for value in seg_ss[n >= 2]:            # in order, as the segments come
        ss += float(value)
    dof = int(np.sum(n[n >= 2] - 1))
    return math.sqrt(ss / dof) if dof >= 2 else math.nan


def stats(channel: Channel, segment: np.ndarray, n_seg: int) -> ChannelStats:
    """The channel's estimate and uncertainty in every segment (module docstring)."""
    s = repeat_scatter(channel, segment)
    pos, starts, n = _runs(channel.usable, segment_bounds(segment, n_seg))
    have = n > 0
    mean, err = np.full(n_seg, np.nan), np.full(n_seg, np.nan)
    x, e = channel.value[pos], channel.error[pos]
    mean[have] = _sums(x, starts, n)[have] / n[have]
    all_finite = _sums((~np.isfinite(e)).astype(float), starts, n) == 0
    with np.errstate(invalid="ignore", over="ignore"):
        stat = np.where(all_finite, np.sqrt(_sums(e ** 2, starts, n)) / np.maximum(n, 1), 0.0)
    if np.isfinite(s):
        err[have] = np.maximum(stat[have], s / np.sqrt(n[have]))
    else:
        err[have] = [math.hypot(a, channel.floor / math.sqrt(m))
                     for a, m in zip(stat[have], n[have])]
    limit = None
    if channel.limit is not None:
        lim = channel.limit[pos]
        counted = ~np.isnan(lim)            # np.nanmean's: the mean of the non-NaN values
        cnt = _sums(counted.astype(float), starts, n)
        shown = _sums(np.isfinite(lim).astype(float), starts, n) > 0
        limit = np.full(n_seg, np.nan)
        limit[shown] = _sums(np.where(counted, lim, 0.0), starts, n)[shown] / cnt[shown]
    return ChannelStats(mean, err, n.astype(float), limit, s)


def _runs(use: np.ndarray, bounds: np.ndarray):
    """``(pos, starts, n)``: the steps with ``use`` in order, and where each segment's
    run of them starts in ``pos`` and how many it has."""
    pos = np.flatnonzero(use)
    cuts = np.searchsorted(pos, bounds)
    return pos, cuts[:-1], np.diff(cuts)


def _sums(x: np.ndarray, starts: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per run, ``x[starts[g]:starts[g] + n[g]].sum()`` bit for bit (0 for an empty run):
    the runs of one length are summed as the rows of one array, which NumPy sums as it
    sums each slice (pairwise); ``np.add.reduceat`` adds in another order."""
    out = np.zeros(len(n))
    for length in np.unique(n[n > 0]):
        g = np.flatnonzero(n == length)
        out[g] = x[starts[g, None] + np.arange(length)].sum(axis=1)
    return out


def difference(channel: Channel, st: ChannelStats, a: int, b: int) -> Difference:
    """Segment ``b`` minus segment ``a`` in one channel, with its z and p."""
    delta = st.mean[b] - st.mean[a]
    err = math.hypot(st.err[a], st.err[b])
    z = delta / err if err > 0 else math.nan
    return Difference(channel.name, channel.label, channel.kind, channel.sign, float(delta),
                      float(err), float(z), two_sided_p(z))


def trend(channel: Channel, idx: np.ndarray, order: np.ndarray) -> Difference | None:
    """A monotonic change over a segment's steps in one channel.

    Two tests, both of which must pass (the p-value reported is the larger):
    Kendall's rank test of the values against their order in time (exact null
    distribution; distribution-free, so a non-linear change such as a reduction that
    saturates is found, and a single wild step cannot make one), and the size of the
    change: the mean of the last third of the steps minus the first third, with each
    mean's error the larger of its steps' own errors and the repeat scatter (or the
    channel floor).  ``delta`` and ``err`` are that difference.
    """
    use = idx[channel.usable[idx]]
    if use.size < 3:
        return None
    x = channel.value[use[np.argsort(order[use], kind="stable")]]
    k = max(1, x.size // 3)
    e = channel.error[use]
    means, errs = [], []
    # the scatter of one step from successive differences: a smooth change cancels in them
    noise = robust_noise(x)
    spread = max(noise, channel.floor) if np.isfinite(noise) else channel.floor
    for part, pe in ((x[:k], e[:k]), (x[-k:], e[-k:])):
        stat = math.sqrt(float(np.sum(pe ** 2))) / k if np.isfinite(pe).all() else 0.0
        means.append(float(part.mean()))
        errs.append(max(stat, spread / math.sqrt(k)))
    delta = means[1] - means[0]
    err = math.hypot(*errs)
    z = delta / err if err > 0 else math.nan
    p = max(two_sided_p(z), kendall_p(x))
    return Difference(channel.name, channel.label, channel.kind, channel.sign, delta, err,
                      z_of_p(p) * (1 if delta >= 0 else -1), p)


def kendall_p(x: np.ndarray) -> float:
    """Two-sided p-value of Kendall's tau of ``x`` against its order (scipy's exact
    distribution for short sequences without ties, else its tie-corrected normal form)."""
    from scipy.stats import kendalltau

    exact = x.size <= 50 and np.unique(x).size == x.size  # ties (a bound): the normal form
    p = kendalltau(np.arange(x.size), x, method="exact" if exact else "asymptotic").pvalue
    return float(p) if np.isfinite(p) else 1.0


def outliers(channels: list[Channel], all_stats: dict, segment: np.ndarray, s: TrackSettings
             ) -> tuple[np.ndarray, list[str]]:
    """Steps far from the median of their own condition's repeats (reported, kept).

    The segments with the same number of usable steps are taken together (a median per
    row of one array: the numbers of one median per segment, in a few calls)."""
    n = segment.size
    flag = np.zeros(n, dtype=bool)
    why = [""] * n
    bounds = segment_bounds(segment, int(segment.max()) + 1 if n else 0)
    for ch in channels:
        scatter = all_stats[ch.name].scatter
        if not np.isfinite(scatter) or scatter <= 0:
            continue
        usable = np.flatnonzero(ch.usable)           # positions of the usable steps
        first = np.searchsorted(usable, bounds)      # their range in each segment
        count = np.diff(first)
        for size in np.unique(count[count >= 3]):
            rows = np.flatnonzero(count == size)
            idx = usable[first[rows][:, None] + np.arange(size)]
            values = ch.value[idx]
            dev = np.abs(values - np.median(values, axis=1)[:, None]) / scatter
            for i, d in zip(idx[dev > s.outlier_z], dev[dev > s.outlier_z]):
                flag[i] = True
                why[i] = "; ".join(x for x in (why[i], f"{ch.label} {d:.1f} repeat scatters "
                                               "from its condition's median") if x)
    return flag, why
