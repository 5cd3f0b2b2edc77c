"""Property tests for operando.xanes.normalize (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from larch.io import read_xdi

from operando.series import Series, default_conditions
from operando.xanes import normalize, white_line

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def cu_foil(shared_data):
    g = read_xdi(str(shared_data / "references" / "cu_foil_rt.xdi"))
    return g.energy, np.log(g.i0 / g.itrans)


@PROPERTY_SETTINGS
@given(
    scale=st.floats(1e-3, 1e3),
    offset=st.floats(-50.0, 50.0),
    slope=st.floats(-1e-3, 1e-3),  # per eV: up to ~10 units of mu over the scan
    policy=st.sampled_from(["each", "fixed"]),
)
def test_norm_invariant_to_scale_and_added_line(cu_foil, scale, offset, slope, policy):
    energy, mu = cu_foil
    e0 = "each" if policy == "each" else 8980.0
    base = normalize(Series(energy, mu[None], default_conditions(1)), e0=e0)
    line = offset + slope * (energy - energy[0])
    moved = normalize(Series(energy, (scale * mu + line)[None], default_conditions(1)), e0=e0)
    assert base.ok[0] and moved.ok[0]
    # find_e0 normalises its derivative by min and range, so E0 is unchanged
    assert moved.e0[0] == base.e0[0]
    # pre-edge line absorbs the added line, the step absorbs the scale: norm equal
    # to rounding; 1e-9 relative to the values (norm is O(1))
    for a, b in ((moved.norm, base.norm), (moved.flat, base.flat)):
        assert np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))) < 1e-9


row_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-1e6, 1e6),
)


@PROPERTY_SETTINGS
@given(
    rows=arrays(np.float64, st.tuples(st.integers(1, 4), st.just(60)), elements=row_values),
    policy=st.sampled_from(["first", "each", 8990.0]),
)
def test_normalize_never_raises_on_arbitrary_rows(rows, policy):
    energy = np.linspace(8950.0, 9100.0, 60)
    # mix in one real-looking spectrum so some rows are good
    edge = 0.3 + 0.01 * (energy - 8950) / 150 + 1.0 / (1 + np.exp(-(energy - 8990.0) / 2.0))
    mu = np.vstack([rows, edge[None]])
    s = Series(energy, mu, default_conditions(mu.shape[0]))
    res = normalize(s, e0=policy)
    assert res.ok.shape == (mu.shape[0],) and len(res.reason) == mu.shape[0]
    finite_rows = np.isfinite(mu).all(axis=1)
    assert not np.any(res.ok & ~finite_rows)
    # ok rows are finite, not-ok rows are NaN and say why
    assert np.all(np.isfinite(res.norm[res.ok]))
    assert np.all(np.isnan(res.norm[~res.ok]))
    assert all((r == "") == bool(k) for r, k in zip(res.reason, res.ok))
    if policy != "first":
        # with its own or a sensible fixed E0 the real-looking edge always normalises
        # ("first" takes E0 from the first usable row, which may be junk here)
        assert res.ok[-1]
    wl = white_line(res)
    assert wl.loc[~res.ok, "wl_height"].isna().all()
