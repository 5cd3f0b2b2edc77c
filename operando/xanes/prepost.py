"""Pre-edge line and post-edge polynomial of many spectra: Larch's ``pre_edge`` rules.

Once E0 and the fit ranges are fixed, the pre-edge line and the post-edge
polynomial are linear least-squares fits: every spectrum sharing the same index
ranges is solved with one precomputed pseudo-inverse (a matrix product).
:func:`resolve_plan` reproduces how ``larch.xafs.pre_edge`` fills its defaults and
index ranges; :func:`normalize_row_larch` is the oracle engine's call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._util.larch_compat import index_nearest, index_of

#: Larch's largest post-edge polynomial order (larch.xafs.pre_edge.MAX_NNORM).
MAX_NNORM = 5
#: Rows per block in the fast engine: keeps temporaries in cache-friendly sizes.
_CHUNK = 256


# ------------------------------------------------------------ pre-edge parameters
@dataclass(frozen=True)
class PrePostPlan:
    """Resolved pre_edge settings and index ranges for one E0 (Larch's rules)."""

    e0: float
    ie0: int
    pre1: float
    pre2: float
    norm1: float
    norm2: float
    nnorm: int
    nvict: int
    npre: int
    pre_lo: int
    pre_hi: int
    post_lo: int
    post_hi: int

    def key(self) -> tuple:
        return (self.e0, self.pre_lo, self.pre_hi, self.post_lo, self.post_hi, self.nnorm,
                self.nvict, self.npre)


def resolve_plan(energy, e0, pre1, pre2, norm1, norm2, nnorm, nvict) -> PrePostPlan:
    """Resolve ``None`` defaults and fit ranges exactly as ``larch.xafs.preedge``."""
    n = energy.size
    emin, emax = float(energy[0]), float(energy[-1])
    ie0 = index_nearest(energy, e0)
    npre = 1
    if pre1 is None:
        if ie0 > 20:
            pre1 = 5.0 * round((energy[1] - e0) / 5.0)
        else:
            pre1 = 2.0 * round((energy[1] - e0) / 2.0)
    pre1 = max(pre1, emin - e0)
    if pre2 is None:
        pre2 = 0.5 * pre1
    if pre1 > pre2:
        pre1, pre2 = pre2, pre1
    ipre1 = index_of(energy - e0, pre1)
    ipre2 = index_of(energy - e0, pre2)
    if (ipre2 - ipre1) < 3:
        nvict = 0
        npre = 0

    if norm2 is None:
        norm2 = 5.0 * round((emax - e0) / 5.0)
    if norm2 < 0:
        norm2 = emax - e0 - norm2
    norm2 = min(norm2, emax - e0)
    if norm1 is None:
        norm1 = min(25, 5.0 * round(norm2 / 15.0))
    if norm1 > norm2:
        norm1, norm2 = norm2, norm1
    norm1 = min(norm1, norm2 - 2)
    if nnorm is None:
        nnorm = 2
        if norm2 - norm1 < 300:
            nnorm = 1
        if norm2 - norm1 < 30:
            nnorm = 0
    nnorm = max(min(int(nnorm), MAX_NNORM), 0)

    p1 = index_of(energy, pre1 + e0)
    p2 = index_nearest(energy, pre2 + e0)
    if npre == 0:
        if p2 == p1:
            p2 = p2 + 1
    elif p2 - p1 < 2:
        p2 = min(n, p1 + 2)

    q1 = index_of(energy, norm1 + e0)
    q2 = index_nearest(energy, norm2 + e0)
    if q1 > n - 3:
        q1 = n - 3
    if q2 - q1 < 2:
        q1 = q1 - 2
        nnorm = 0
    elif q2 - q1 < 5:
        nnorm = min(1, nnorm)
    return PrePostPlan(float(e0), ie0, float(pre1), float(pre2), float(norm1), float(norm2), nnorm,
                 int(nvict), npre, p1, p2, q1, q2)


@functools.lru_cache(maxsize=32)
def _poly_operators(x_fit: bytes, x_eval: bytes, deg: int):
    """Least-squares operators for a degree-``deg`` polynomial fit, as numpy's
    ``Polynomial.fit`` does it (x mapped onto [-1, 1] for conditioning).

    ``x_fit`` and ``x_eval`` are the float64 bytes of the grids: the cache key, since
    the same plan recurs chunk after chunk.  The arrays returned are read-only:
    ``pinv`` (deg+1, n_fit): scaled coefficients = y @ pinv.T;
    ``v_eval`` (n_eval, deg+1): values = coefs @ v_eval.T;
    ``to_power`` (deg+1, deg+1): coefficients in powers of x = coefs @ to_power.T.
    """
    x_fit, x_eval = np.frombuffer(x_fit), np.frombuffer(x_eval)
    lo, hi = float(x_fit.min()), float(x_fit.max())
    if hi <= lo:
        hi = lo + 1.0
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    v_fit = np.polynomial.polynomial.polyvander((x_fit - mid) / half, deg)
    v_eval = np.polynomial.polynomial.polyvander((x_eval - mid) / half, deg)
    pinv = np.linalg.pinv(v_fit)
    to_power = np.zeros((deg + 1, deg + 1))
    for j in range(deg + 1):
        unit = np.zeros(deg + 1)
        unit[j] = 1.0
        c = np.polynomial.Polynomial(unit, domain=[lo, hi], window=[-1, 1]).convert().coef
        to_power[: c.size, j] = c
    for array in (pinv, v_eval, to_power):
        array.setflags(write=False)
    return pinv, v_eval, to_power


def normalize_rows_fast(energy: np.ndarray, mu: np.ndarray, plan: PrePostPlan, out: dict, rows: np.ndarray):
    """Batched pre_edge for rows sharing one plan; writes into ``out`` arrays.

    Only the fit windows are touched before the edge step is known; the two
    full-width passes then build ``norm = mu/step - (pre/step)`` and
    ``flat = norm - poly/step + 1`` (above E0) from rank-2/3 products.
    """
    n_e = energy.size
    ie0 = plan.ie0
    if plan.npre == 0:
        width = plan.pre_hi - plan.pre_lo
        p_pre = np.zeros((2, width))
        p_pre[0] = 1.0 / max(1, width)
        v_pre = np.column_stack([np.ones(n_e), np.zeros(n_e)])
        pre_pow = np.eye(2)
        weight = None
    else:
        p_pre, v_pre, pre_pow = _poly_operators(energy[plan.pre_lo : plan.pre_hi].tobytes(),
                                                energy.tobytes(), 1)
        weight = energy**plan.nvict if plan.nvict else None
    p_post, v_post, post_pow = _poly_operators(
        energy[plan.post_lo : plan.post_hi].tobytes(), energy.tobytes(), plan.nnorm
    )
    if weight is not None:
        # pre_edge = (line in E) * E**-nvict: fold the factor into the evaluation matrix
        v_pre = v_pre / weight[:, None]
        p_pre = p_pre * weight[plan.pre_lo : plan.pre_hi][None, :]
    # flat: above E0 remove poly/step and add back poly[ie0]/step (= 1); below E0 = norm
    v_post_flat = v_post.copy()
    v_post_flat[:ie0] = 0.0
    one_above = np.zeros(n_e)
    one_above[ie0:] = 1.0
    vpre_t = np.ascontiguousarray(v_pre.T)
    vpost_flat_t = np.ascontiguousarray(v_post_flat.T)
    pre_on_post = v_pre[plan.post_lo : plan.post_hi]  # pre_edge on the post window
    chunk = _CHUNK
    contiguous = rows.size > 0 and rows[-1] - rows[0] + 1 == rows.size
    for start in range(0, rows.size, chunk):
        with np.errstate(all="ignore"):  # non-finite results are flagged per row below
            _normalize_chunk(mu, rows[start : start + chunk], contiguous, plan, out, p_pre,
                             p_post, v_post, pre_on_post, vpre_t, vpost_flat_t, one_above,
                             pre_pow, post_pow)


def _normalize_chunk(mu, r, contiguous, plan, out, p_pre, p_post, v_post, pre_on_post, vpre_t,
                     vpost_flat_t, one_above, pre_pow, post_pow):
    """One block of rows (``r``) of :func:`normalize_rows_fast`."""
    ie0 = plan.ie0
    sel = slice(int(r[0]), int(r[-1]) + 1) if contiguous else r
    y = mu[sel]
    c_pre = y[:, plan.pre_lo : plan.pre_hi] @ p_pre.T
    sub_win = y[:, plan.post_lo : plan.post_hi] - c_pre @ pre_on_post.T
    c_post = sub_win @ p_post.T
    raw_step = c_post @ v_post[ie0]
    good = np.isfinite(raw_step) & (raw_step > 0)
    inv_step = 1.0 / np.maximum(1.0e-12, np.abs(raw_step))
    norm = y * inv_step[:, None]
    norm -= (c_pre * inv_step[:, None]) @ vpre_t
    flat = norm - (c_post * inv_step[:, None]) @ vpost_flat_t
    flat += one_above
    # absurd but finite input (~1e300) can overflow; such a row is not usable
    finite_out = np.isfinite(norm.sum(axis=1)) & np.isfinite(flat.sum(axis=1))
    out["overflow"][sel] = good & ~finite_out
    good &= finite_out
    norm[~good] = np.nan
    flat[~good] = np.nan
    out["norm"][sel] = norm
    out["flat"][sel] = flat
    out["edge_step"][sel] = raw_step
    c_pre_raw = c_pre @ pre_pow.T
    out["pre_offset"][sel] = c_pre_raw[:, 0]
    out["pre_slope"][sel] = c_pre_raw[:, 1] if plan.npre else 0.0
    coefs = np.zeros((r.size, MAX_NNORM + 1))
    coefs[:, : plan.nnorm + 1] = c_post @ post_pow.T
    out["norm_coefs"][sel] = coefs
    out["fit_ok"][sel] = good


def normalize_row_larch(energy: np.ndarray, row: np.ndarray, e0, plan_kw: dict) -> dict:
    """One spectrum through ``larch.xafs.pre_edge`` (the oracle engine)."""
    from larch import Group
    from larch.xafs import pre_edge

    group = Group()
    pre_edge(energy, row, group=group, e0=e0, **plan_kw)
    details = group.pre_edge_details
    ie0 = index_nearest(energy, group.e0)
    raw_step = float(group.post_edge[ie0] - group.pre_edge[ie0])
    coefs = [getattr(details, f"norm_c{j}") for j in range(MAX_NNORM + 1)
             if hasattr(details, f"norm_c{j}")]
    return {
        "e0": float(group.e0),
        "norm": np.asarray(group.norm, dtype=float),
        "flat": np.asarray(group.flat, dtype=float),
        "raw_step": raw_step,
        "pre_offset": float(details.pre_offset),
        "pre_slope": float(details.pre_slope),
        "norm_coefs": coefs,
        "settings": {
            **{k: getattr(details, k) for k in ("pre1", "pre2", "norm1", "norm2", "nnorm",
                                                 "nvict")},
            # larch does not report the pre-edge order it fell back to; same rule here
            "npre": resolve_plan(energy, float(group.e0), plan_kw["pre1"], plan_kw["pre2"],
                             plan_kw["norm1"], plan_kw["norm2"], plan_kw["nnorm"],
                             plan_kw["nvict"]).npre,
        },
    }


def collapse_setting(used: np.ndarray, values: np.ndarray, integer: bool) -> Any:
    """A scalar if every ok step used the same value, else the per-step list (None: not ok)."""
    cast = int if integer else float
    finite = used[np.isfinite(used)]
    if finite.size == 0:
        return None
    if np.all(finite == finite[0]):
        return cast(finite[0])
    return [cast(v) if np.isfinite(v) else None for v in values]


def empty_out(n: int, n_e: int) -> dict:
    return {
        # filled row by row; rows never written are set to NaN by normalize
        "norm": np.empty((n, n_e)),
        "flat": np.empty((n, n_e)),
        "edge_step": np.full(n, np.nan),
        "pre_offset": np.full(n, np.nan),
        "pre_slope": np.full(n, np.nan),
        "norm_coefs": np.full((n, MAX_NNORM + 1), np.nan),
        "fit_ok": np.zeros(n, dtype=bool),
        "overflow": np.zeros(n, dtype=bool),
    }
