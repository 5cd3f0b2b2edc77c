"""Tracking stays linear in the series: segments are indexed by their bounds and
reversibility finds the earlier block of the same condition from an index.  These check
the index against the definition, computed the slow way, on cycled programs."""

import math

import numpy as np
import pandas as pd
import pytest

from operando.tracking import track
from operando.tracking.channels import Channel
from operando.tracking.segments import segment_bounds, stats

from _tracking_data import make_steps

GASES = [("O2", 673.0), ("CO+O2", 473.0), ("H2", 573.0), ("CO+O2", 523.0), ("He", 298.0)]
TRUTH = [dict(cn_m=m, cn_l=4.0 - 0.4 * m, wl=1.9 - 0.05 * m, edge=11566.0 - 0.2 * m)
         for m in (0.0, 3.0, 6.0, 4.0, 0.0)]


def cycled(cycles: int, order=None, seed: int = 4) -> pd.DataFrame:
    order = order or list(range(len(GASES)))
    conditions = [{"gas": GASES[i][0], "temperature_K": GASES[i][1]} for i in order] * cycles
    truth = [TRUTH[i] for i in order] * cycles
    return make_steps(conditions, truth, metal="Pt-Pt", ligand="Pt-O", repeats=3, seed=seed)


def expected_reversibility(tr) -> list[tuple[int, int, bool]]:
    """(segment, reference segment, changed between) by the definition: for every block,
    the most recent earlier block with the same condition (not the block just before),
    each represented by its last segment; changed = any segment of the blocks between in
    another state than the reference's."""
    seg = tr.segments
    keys = {int(b): tuple(g[["gas", "temperature_K"]].iloc[0]) for b, g in seg.groupby("block")}
    last = seg.groupby("block")["segment"].max()
    out = []
    for b in sorted(keys):
        earlier = [e for e in range(b) if keys[e] == keys[b]]
        if not earlier or earlier[-1] == b - 1:
            continue
        e = earlier[-1]
        i, j = int(last[e]), int(last[b])
        between = seg[(seg["block"] > e) & (seg["block"] < b)]["state"]
        out.append((j, i, bool((between != seg["state"].iloc[i]).any())))
    return out


@pytest.mark.parametrize("cycles,order", [(1, None), (4, None), (3, [0, 1, 2, 1, 3, 4, 2])])
def test_reversibility_index_equals_the_definition(cycles, order):
    tr = track(cycled(cycles, order))
    rev = tr.reversibility
    got = list(zip(rev["segment"].astype(int), rev["baseline_segment"].astype(int),
                   rev["changed_between"].astype(bool)))
    assert got == expected_reversibility(tr)
    if cycles > 1:
        assert len(rev) > 0


def test_segment_bounds_are_the_runs_of_each_segment():
    tr = track(cycled(3))
    segment = tr.steps["segment"].to_numpy()
    bounds = segment_bounds(segment, len(tr.segments))
    for g in range(len(tr.segments)):
        assert np.array_equal(np.flatnonzero(segment == g), np.arange(bounds[g], bounds[g + 1]))


def _stats_by_definition(channel, segment, n_seg):
    """Per segment, the estimate of the module docstring, one segment at a time."""
    bounds = segment_bounds(segment, n_seg)
    ss, dof = 0.0, 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        x = channel.value[a:b][np.isfinite(channel.value[a:b])]
        if x.size >= 2:
            ss += float(np.sum((x - x.mean()) ** 2))
            dof += x.size - 1
    s = np.sqrt(ss / dof) if dof >= 2 else np.nan
    mean, err, limit = (np.full(n_seg, np.nan) for _ in range(3))
    for g in range(n_seg):
        idx = bounds[g] + np.flatnonzero(channel.usable[bounds[g]:bounds[g + 1]])
        if idx.size == 0:
            continue
        x, e = channel.value[idx], channel.error[idx]
        mean[g] = x.mean()
        stat = np.sqrt(np.sum(e ** 2)) / idx.size if np.isfinite(e).all() else 0.0
        err[g] = (max(stat, s / np.sqrt(idx.size)) if np.isfinite(s)
                  else math.hypot(stat, channel.floor / math.sqrt(idx.size)))
        if np.isfinite(channel.limit[idx]).any():
            limit[g] = np.nanmean(channel.limit[idx])
    return mean, err, limit, s


@pytest.mark.parametrize("repeats", [True, False])
def test_segment_stats_equal_the_definition_bit_for_bit(repeats):
    """The per-segment estimates are computed for all segments at once; they must be the
    numbers of one segment at a time exactly (runs of 1-40 steps, NaN steps and errors,
    empty segments, missing limits; without repeats the channel's floor)."""
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 41, size=300) if repeats else np.ones(300, int)
    segment = np.repeat(np.arange(lengths.size), lengths)
    n = segment.size
    value = rng.normal(3.0, 1.5, n) * 10 ** rng.uniform(-3, 3, n)
    value[rng.random(n) < 0.15] = np.nan
    value[segment == 5] = np.nan                      # a segment without a usable step
    error = np.abs(rng.normal(0.2, 0.1, n))
    error[rng.random(n) < 0.05] = np.nan
    limit = np.abs(rng.normal(1.0, 0.3, n))
    limit[rng.random(n) < 0.3] = np.nan
    channel = Channel("cn_Pt-Pt", "CN(Pt-Pt)", "exafs", "metal", 1, value, error, 0.3, limit)
    got = stats(channel, segment, lengths.size)
    mean, err, lim, s = _stats_by_definition(channel, segment, lengths.size)
    assert np.isnan(got.scatter) if not repeats else got.scatter == s
    for a, b in ((got.mean, mean), (got.err, err), (got.limit, lim)):
        assert np.array_equal(a, b, equal_nan=True)
    assert np.isnan(got.mean[5]) and np.isfinite(got.mean).sum() > 200
