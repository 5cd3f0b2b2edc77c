"""Tracking stays linear in the series: segments are indexed by their bounds and
reversibility finds the earlier block of the same condition from an index.  These check
the index against the definition, computed the slow way, on cycled programs."""

import numpy as np
import pandas as pd
import pytest

from operando.tracking import track
from operando.tracking.segments import segment_bounds

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
