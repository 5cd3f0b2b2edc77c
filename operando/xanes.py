"""XANES stage: energy calibration, pre-edge subtraction / normalisation, white line.

Three public functions, each taking the previous stage's object and returning
a new one (nothing is changed in place):

* :func:`calibrate` shifts every scan so that its reference-channel edge sits
  at the tabulated (or given) edge energy.
* :func:`normalize` does Larch's ``pre_edge`` (same defaults, same maths) on
  every spectrum of a :class:`~operando.series.Series` and returns a
  :class:`NormalizedSeries`.
* :func:`white_line` measures white-line height, position, area and the
  half-step edge position on a :class:`NormalizedSeries`.

Two engines compute the normalisation.  ``engine="larch"`` loops over the
spectra calling :func:`larch.xafs.pre_edge` and is the reference.
``engine="fast"`` exploits that, once E0 and the fit ranges are fixed, the
pre-edge line and the post-edge polynomial are linear least-squares fits:
every spectrum sharing the same index ranges is solved with one precomputed
pseudo-inverse (a matrix product).  Larch's ``find_e0`` is reproduced in a
batched form too (the smoothing of the derivative is linear, so it becomes a
precomputed matrix per window), so ``e0="each"`` is also batched.  The fast
engine agrees with Larch to rounding error (the tests hold it to 1e-3 on real
spectra; in practice the difference is ~1e-12).

Per-step failures (dead frame, non-finite values, no edge) never raise: the
step gets ``ok=False`` and a ``reason`` naming the stage and the problem; its
``norm``/``flat`` rows are NaN and every other step is unaffected.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .series import Series

log = logging.getLogger(__name__)

__all__ = ["NormalizedSeries", "normalize", "calibrate", "white_line"]

#: Larch's smallest tolerated energy step (larch.xafs.xafsutils.TINY_ENERGY), eV.
TINY_ENERGY = 0.0005
#: Larch's largest post-edge polynomial order (larch.xafs.pre_edge.MAX_NNORM).
MAX_NNORM = 5
#: Rows per block in the fast engine: keeps temporaries in cache-friendly sizes.
_CHUNK = 256

_E0_POLICIES = ("first", "each", "reference")
_ENGINES = ("fast", "larch")


# --------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class NormalizedSeries:
    """Normalised spectra of a series, with everything needed to reproduce them.

    Attributes
    ----------
    series : Series
        The input series (not copied).
    norm : (n, n_e) array
        Normalised mu, ``(mu - pre_edge) / edge_step`` (Larch ``norm``).  NaN rows
        for steps that are not ok.
    flat : (n, n_e) array
        Flattened normalised mu (Larch ``flat``): above E0 the post-edge
        polynomial (scaled by ``edge_step``) is removed and 1 added back; below
        E0 equal to ``norm``.  NaN rows for steps that are not ok.
    e0 : (n,) array
        Edge energy used for each step, eV.
    edge_step : (n,) array
        Edge jump at E0 in the units of mu.  For steps whose fit gave a
        non-positive step this holds that (raw, signed) value; NaN where no fit
        was possible.
    pre_offset, pre_slope : (n,) arrays
        Pre-edge line ``(pre_offset + pre_slope * E) * E**-nvict`` (Larch's
        ``pre_edge_details.pre_offset/pre_slope``); units of mu (times eV**nvict).
    norm_coefs : (n, k) array
        Post-edge polynomial coefficients in powers of energy,
        ``post_edge - pre_edge = sum_j norm_coefs[:, j] * E**j`` (Larch
        ``norm_c0, norm_c1, ...``); unused higher orders are 0.
    ok : (n,) bool array
    reason : list of str
        ``""`` when ok, else ``"normalize: <problem>"``.
    settings : dict
        Every resolved setting: ``e0`` policy, ``e0_value`` (common E0 or None),
        ``e0_source_step``, ``engine``, ``pre1``, ``pre2``, ``norm1``, ``norm2``
        (eV relative to E0), ``nnorm``, ``nvict``, ``npre``.  A setting that was
        the same for every ok step is a scalar; one that varies (``e0="each"``
        with defaults) is a list with one value per step (None for steps not ok).
    """

    series: Series
    norm: np.ndarray
    flat: np.ndarray
    e0: np.ndarray
    edge_step: np.ndarray
    pre_offset: np.ndarray
    pre_slope: np.ndarray
    norm_coefs: np.ndarray
    ok: np.ndarray
    reason: list
    settings: dict = field(default_factory=dict)

    @property
    def energy(self) -> np.ndarray:
        """Energy grid, eV (that of the series)."""
        return self.series.energy

    def __len__(self) -> int:
        return self.norm.shape[0]

    def table(self) -> pd.DataFrame:
        """One row per step: ``step, e0, edge_step, ok, reason``."""
        return pd.DataFrame(
            {
                "step": self.series.steps,
                "e0": self.e0,
                "edge_step": self.edge_step,
                "ok": self.ok,
                "reason": list(self.reason),
            }
        )


# --------------------------------------------------------------------------- helpers
def _index_of(array: np.ndarray, value: float) -> int:
    """Larch ``index_of``: index of the last point at or below ``value`` (0 if none)."""
    if value < array[0]:
        return 0
    return int(np.searchsorted(array, value, side="right") - 1)


def _index_nearest(array: np.ndarray, value: float) -> int:
    """Larch ``index_nearest``: index of the point nearest ``value`` (first on ties)."""
    return int(np.abs(array - value).argmin())


def _remove_dups(energy: np.ndarray) -> np.ndarray:
    """Larch's ``remove_dups`` with ``TINY_ENERGY`` (a no-op for steps > 5 meV)."""
    from ._batch_larch import remove_dups

    return np.asarray(remove_dups(np.asarray(energy, dtype=float), tiny=TINY_ENERGY), dtype=float)


def _check_rows(mu: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Flag dead frames: any non-finite value, all zero or constant (vectorised)."""
    n, n_e = mu.shape
    reason = [""] * n
    finite = np.isfinite(mu)
    n_bad = n_e - np.count_nonzero(finite, axis=1)
    with np.errstate(invalid="ignore"):
        hi = mu.max(axis=1)
        lo = mu.min(axis=1)
    # constant within rounding of its own magnitude (all-zero is the common dead frame)
    flat = (n_bad == 0) & ((hi - lo) <= 1e-12 * np.maximum(1.0, np.abs(mu[:, 0])))
    for i in np.flatnonzero(n_bad):
        reason[i] = (
            "mu has no finite values (dead frame)"
            if n_bad[i] == n_e
            else f"mu has {int(n_bad[i])} non-finite value(s) (NaN/inf)"
        )
    for i in np.flatnonzero(flat):
        reason[i] = "mu is all zero (dead frame)" if hi[i] == 0 and lo[i] == 0 \
            else "mu is constant (dead frame)"
    ok = (n_bad == 0) & ~flat
    return ok, reason


# ------------------------------------------------------------------ batched find_e0
def _smooth_matrix(x: np.ndarray, xstep: float, sigma: float) -> np.ndarray:
    """Matrix ``S`` with ``S @ y == larch.math.smooth(x, y, sigma=sigma, xstep=xstep)``.

    Larch's Lorentzian smoothing (interpolate onto a uniform grid, reflect-pad,
    convolve, interpolate back) is linear in ``y``; this builds it once for a
    window so many spectra are smoothed with one matrix product.
    """
    from ._batch_larch import lorentzian

    npad = 5
    xmin = xstep * int((min(x) - npad * xstep) / xstep)
    xmax = xstep * int((max(x) + npad * xstep) / xstep)
    npts1 = 1 + int(abs(xmax - xmin + xstep * 0.1) / xstep)
    npts = min(npts1, 50 * len(x))
    x0 = np.linspace(xmin, xmax, npts)
    m = len(x)
    # linear interpolation x -> x0 (np.interp clamps beyond the ends, as larch does)
    w0 = np.empty((npts, m))
    eye = np.eye(m)
    for j in range(m):
        w0[:, j] = np.interp(x0, x, eye[j])
    sig = sigma / xstep
    win = lorentzian(np.arange(2 * npts), center=npts, sigma=sig)
    win = win / win.sum()
    y1 = np.concatenate((w0[npts:0:-1], w0, w0[-1 : -npts - 1 : -1]), axis=0)
    y2 = _fftconvolve_valid(y1, win)
    if y2.shape[0] > npts:
        nex = int((y2.shape[0] - npts) / 2)
        y2 = y2[nex:][:npts]
    # linear interpolation x0 -> x (x lies inside x0, so no extrapolation)
    j = np.clip(np.searchsorted(x0, x, side="right") - 1, 0, npts - 2)
    frac = (x - x0[j]) / (x0[j + 1] - x0[j])
    return (1.0 - frac)[:, None] * y2[j] + frac[:, None] * y2[j + 1]


@functools.lru_cache(maxsize=32)
def _smooth_matrix_cached(x_bytes: bytes, step: float) -> np.ndarray:
    """:func:`_smooth_matrix` (``xstep = sigma = step``) cached by grid: a pipeline
    normalises chunk after chunk on one grid, and building the matrix costs ~15 ms."""
    smat = _smooth_matrix(np.frombuffer(x_bytes, dtype=float), step, step)
    smat.setflags(write=False)
    return smat


def _fftconvolve_valid(y: np.ndarray, win: np.ndarray) -> np.ndarray:
    """``scipy.signal.fftconvolve(y, win[:, None], mode="valid", axes=0)`` for
    ``len(y) >= len(win)``, with numpy's FFT (the same pocketfft as scipy.fft;
    importing scipy.signal costs ~1 s, scipy.fft ~0.07 s)."""
    n1, n2 = y.shape[0], win.shape[0]
    n = n1 + n2 - 1
    nfast = _next_fast_len(n)
    full = np.fft.irfft(np.fft.rfft(y, nfast, axis=0) * np.fft.rfft(win, nfast)[:, None],
                        nfast, axis=0)[:n]
    return full[n2 - 1:n1].copy()


@functools.lru_cache(maxsize=64)
def _next_fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: ``scipy.fft.next_fast_len(n, real=True)``."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _select_peak(dmu: np.ndarray, nmin: int) -> np.ndarray:
    """Row-wise index chosen by Larch's ``_finde0`` from derivative rows ``dmu``."""
    m, length = dmu.shape
    d = np.where(np.isfinite(dmu), dmu, -1.0)
    inner = d[:, nmin:-nmin]
    dm_min = inner.min(axis=1)
    dm_ptp = np.maximum(1.0e-10, inner.max(axis=1) - dm_min)
    d = (d - dm_min[:, None]) / dm_ptp[:, None]
    dhigh0 = 0.60 if length > 20 else 0.30
    dhigh = np.full(m, dhigh0)
    low = (d > dhigh0).sum(axis=1) < 3
    if low.any():
        d1 = 0.5 * dhigh0
        c1 = (d[low] > d1).sum(axis=1)
        dhigh[low] = np.where(c1 > 3, d1, 0.5 * d1)
    high = d > dhigh[:, None]
    high[high.sum(axis=1) < 3] = True
    cand = np.zeros_like(high)
    hi = length - nmin  # larch skips i > len - nmin
    cand[:, nmin : hi + 1] = high[:, nmin : hi + 1] & high[:, nmin - 1 : hi] & high[:, nmin + 1 : hi + 2]
    cand &= d > 0.0
    imax = np.argmax(np.where(cand, d, -np.inf), axis=1)
    imax[~cand.any(axis=1)] = 0
    return imax


def _refine_on_raw_derivative(energy: np.ndarray, mu: np.ndarray, guess: np.ndarray,
                              half_width: float = 1.0) -> np.ndarray:
    """Edge (eV) as the vertex of a least-squares parabola through the *unsmoothed*
    derivative within ``guess +/- half_width``.

    Smoothing an asymmetric derivative peak (an L3 edge followed by a strong
    white line) moves its maximum: on the simulated Pt L3 foil the smoothed
    vertex sits 0.21 eV above the true inflection point, this one 0.05 eV
    (scan-to-scan spread 0.015 eV; Cu K: 0.002 eV).  Rows with fewer than 5
    points in the window, a parabola that is not a maximum, or a vertex outside
    the window keep ``guess``.
    """
    out = np.array(guess, dtype=float)
    deriv = np.gradient(mu, axis=1) / np.gradient(energy)[None, :]
    # Rows whose window starts at the same grid point share one design matrix: one
    # least-squares solve per group (a QEXAFS series has a handful), not one per row.
    centre_index = np.searchsorted(energy, guess)
    for index in np.unique(centre_index):
        rows = np.flatnonzero(centre_index == index)
        centre = energy[min(index, energy.size - 1)]
        sel = np.abs(energy - centre) < half_width
        if sel.sum() < 5:
            continue
        u = energy[sel] - centre
        design = np.stack([u * u, u, np.ones_like(u)], axis=1)
        (a, b, _), *_ = np.linalg.lstsq(design, deriv[np.ix_(rows, np.flatnonzero(sel))].T, rcond=None)
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = -b / (2 * a)
        good = (a < 0) & (np.abs(vertex) < half_width)
        out[rows[good]] = centre + vertex[good]
    return out


def _vertex(x: np.ndarray, y: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parabola through points i-1, i, i+1 of rows ``y`` (grid ``x``): vertex (x, y).

    Falls back to the grid point where i is at an end, the parabola is not a
    maximum, or the vertex leaves [x[i-1], x[i+1]].
    """
    m = y.shape[0]
    rows = np.arange(m)
    xv = x[i].astype(float)
    yv = y[rows, i].astype(float)
    inner = (i >= 1) & (i <= x.size - 2)
    if not inner.any():
        return xv, yv
    r, c = rows[inner], i[inner]
    u0 = x[c - 1] - x[c]
    u2 = x[c + 1] - x[c]
    y0, y1, y2 = y[r, c - 1], y[r, c], y[r, c + 1]
    # quadratic a u^2 + b u + y1 through (u0, y0), (0, y1), (u2, y2)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = ((y0 - y1) / u0 - (y2 - y1) / u2) / (u0 - u2)
        b = (y0 - y1) / u0 - a * u0
        uv = -b / (2.0 * a)
        good = (a < 0) & np.isfinite(uv) & (uv >= u0) & (uv <= u2)
    xv[r[good]] = x[c[good]] + uv[good]
    yv[r[good]] = y1[good] + b[good] * uv[good] + a[good] * uv[good] ** 2
    return xv, yv


def _find_e0_rows(energy: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Larch ``find_e0`` on every (finite) row of ``mu``, batched.

    Parameters
    ----------
    energy : (n_e,) array
        Strictly increasing energy, eV (already passed through ``remove_dups``).
    mu : (m, n_e) array
        Finite spectra.

    Returns
    -------
    e0 : (m,) array
        Exactly what ``larch.xafs.find_e0(energy, row)`` returns, eV (a grid point).
    e0_refined : (m,) array
        Sub-grid E0: vertex of a parabola through the maximum of the smoothed
        derivative and its two neighbours, eV.
    """
    from ._batch_larch import find_energy_step, remove_dups

    n = energy.size
    m = mu.shape[0]
    if m == 0:
        return np.empty(0), np.empty(0)
    # larch's _finde0 drops the last point (its "ordered" selection), so do we
    en = np.asarray(remove_dups(energy, tiny=TINY_ENERGY))[:-1]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        estep1 = find_energy_step(en)
    nmin = max(3, int(len(en) * 0.02))
    dmu = np.gradient(mu[:, :-1], axis=1) / np.gradient(en)[None, :]
    ie0 = _select_peak(dmu, nmin)

    e0 = np.empty(m)
    e0_ref = np.empty(m)
    # rows sharing ie0 share the smoothing window and step: one matrix per group
    for key in np.unique(ie0):
        rows = np.flatnonzero(ie0 == key)
        k = int(key)
        e1 = en[k]
        istart, istop = max(3, k - 75), min(k + 75, n - 3)
        if k < 0.05 * n:
            e1 = energy.mean()
            istart, istop = max(3, k - 20), n - 3
        estep = 0.5 * (max(0.01, min(1.0, estep1)) + max(0.01, min(1.0, e1 / 25000.0)))
        enw = np.asarray(remove_dups(energy[istart:istop], tiny=TINY_ENERGY))[:-1]
        smat = _smooth_matrix_cached(enw.tobytes(), estep)
        grad = np.gradient(mu[rows, istart : istop - 1], axis=1) / np.gradient(enw)[None, :]
        smoothed = grad @ smat.T
        nmin_w = max(3, int(len(enw) * 0.02))
        ix = _select_peak(smoothed, nmin_w)
        e0[rows] = enw[ix]
        refined, _ = _vertex(enw, smoothed, ix)
        e0_ref[rows] = refined
        early = ix < 1
        e0[rows[early]] = energy[istart + 2]
        e0_ref[rows[early]] = energy[istart + 2]
    return e0, e0_ref


# ------------------------------------------------------------ pre-edge parameters
@dataclass(frozen=True)
class _Plan:
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


def _resolve(energy, e0, pre1, pre2, norm1, norm2, nnorm, nvict) -> _Plan:
    """Resolve ``None`` defaults and fit ranges exactly as ``larch.xafs.preedge``."""
    n = energy.size
    emin, emax = float(energy[0]), float(energy[-1])
    ie0 = _index_nearest(energy, e0)
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
    ipre1 = _index_of(energy - e0, pre1)
    ipre2 = _index_of(energy - e0, pre2)
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

    p1 = _index_of(energy, pre1 + e0)
    p2 = _index_nearest(energy, pre2 + e0)
    if npre == 0:
        if p2 == p1:
            p2 = p2 + 1
    elif p2 - p1 < 2:
        p2 = min(n, p1 + 2)

    q1 = _index_of(energy, norm1 + e0)
    q2 = _index_nearest(energy, norm2 + e0)
    if q1 > n - 3:
        q1 = n - 3
    if q2 - q1 < 2:
        q1 = q1 - 2
        nnorm = 0
    elif q2 - q1 < 5:
        nnorm = min(1, nnorm)
    return _Plan(float(e0), ie0, float(pre1), float(pre2), float(norm1), float(norm2), nnorm,
                 int(nvict), npre, p1, p2, q1, q2)


def _poly_operators(x_fit: np.ndarray, x_eval: np.ndarray, deg: int):
    """Cached :func:`_poly_operators_uncached` (the same plan recurs chunk after chunk)."""
    out = _poly_operators_bytes(np.ascontiguousarray(x_fit, dtype=float).tobytes(),
                                np.ascontiguousarray(x_eval, dtype=float).tobytes(), int(deg))
    return tuple(a.copy() for a in out)


@functools.lru_cache(maxsize=32)
def _poly_operators_bytes(x_fit: bytes, x_eval: bytes, deg: int):
    return _poly_operators_uncached(np.frombuffer(x_fit), np.frombuffer(x_eval), deg)


def _poly_operators_uncached(x_fit: np.ndarray, x_eval: np.ndarray, deg: int):
    """Least-squares operators for a degree-``deg`` polynomial fit, as numpy's
    ``Polynomial.fit`` does it (x mapped onto [-1, 1] for conditioning).

    Returns ``pinv`` (deg+1, n_fit): scaled coefficients = y @ pinv.T;
    ``v_eval`` (n_eval, deg+1): values = coefs @ v_eval.T;
    ``to_power`` (deg+1, deg+1): coefficients in powers of x = coefs @ to_power.T.
    """
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
    return pinv, v_eval, to_power


def _normalize_fast(energy: np.ndarray, mu: np.ndarray, plan: _Plan, out: dict, rows: np.ndarray):
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
        p_pre, v_pre, pre_pow = _poly_operators(energy[plan.pre_lo : plan.pre_hi], energy, 1)
        weight = energy**plan.nvict if plan.nvict else None
    p_post, v_post, post_pow = _poly_operators(
        energy[plan.post_lo : plan.post_hi], energy, plan.nnorm
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
    """One block of rows (``r``) of :func:`_normalize_fast`."""
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


def _normalize_larch(energy: np.ndarray, row: np.ndarray, e0, plan_kw: dict) -> dict:
    """One spectrum through ``larch.xafs.pre_edge`` (the reference engine)."""
    from larch import Group
    from larch.xafs import pre_edge

    group = Group()
    pre_edge(energy, row, group=group, e0=e0, **plan_kw)
    details = group.pre_edge_details
    ie0 = _index_nearest(energy, group.e0)
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
            "npre": _resolve(energy, float(group.e0), plan_kw["pre1"], plan_kw["pre2"],
                             plan_kw["norm1"], plan_kw["norm2"], plan_kw["nnorm"],
                             plan_kw["nvict"]).npre,
        },
    }


def _collapse(used: np.ndarray, values: np.ndarray, integer: bool) -> Any:
    """A scalar if every ok step used the same value, else the per-step list (None: not ok)."""
    cast = int if integer else float
    finite = used[np.isfinite(used)]
    if finite.size == 0:
        return None
    if np.all(finite == finite[0]):
        return cast(finite[0])
    return [cast(v) if np.isfinite(v) else None for v in values]


# ------------------------------------------------------------------------ normalize
def normalize(
    series: Series,
    *,
    e0: str | float = "first",
    pre1: float | None = None,
    pre2: float | None = None,
    norm1: float | None = None,
    norm2: float | None = None,
    nnorm: int | None = None,
    nvict: int = 0,
    engine: str = "fast",
) -> NormalizedSeries:
    """Pre-edge subtraction and normalisation of every spectrum (Larch ``pre_edge``).

    Parameters
    ----------
    series : Series
        Spectra on one energy grid (eV).
    e0 : {"first", "each", "reference"} or float
        Edge energy policy.  ``"first"``: Larch's ``find_e0`` on the first good
        spectrum (finite, not constant, positive edge step), used for every
        step.  ``"each"``: ``find_e0`` on every spectrum.  ``"reference"``:
        ``find_e0`` on the reference channel of the first good step (use after
        :func:`calibrate`), used for every step.  A number: that E0 in eV for
        every step (must lie within the grid's 2nd..2nd-last points).
    pre1, pre2 : float, optional
        Pre-edge fit range relative to E0, eV.  Default as Larch: ``pre1`` =
        (2nd energy point - E0) rounded to 5 eV (2 eV if E0 is within 20 points
        of the start); ``pre2 = pre1 / 2``.
    norm1, norm2 : float, optional
        Post-edge fit range relative to E0, eV.  Default as Larch: ``norm2`` =
        (last energy - E0) rounded to 5 eV; ``norm1 = min(25, norm2 / 15``
        rounded to 5 eV).
    nnorm : int, optional
        Post-edge polynomial order (0..5).  Default as Larch: 2 if
        ``norm2 - norm1 >= 300`` eV, 1 if >= 30 eV, else 0.
    nvict : int
        Victoreen exponent: the pre-edge line is fitted to ``mu * E**nvict``.
    engine : {"fast", "larch"}
        ``"fast"``: batched linear algebra (same maths); ``"larch"``: loop over
        ``larch.xafs.pre_edge`` (the reference).

    Returns
    -------
    NormalizedSeries
        Steps that cannot be normalised (non-finite or constant mu, edge step
        <= 0 or not finite, E0 not found) have ``ok=False``, a reason and NaN
        ``norm``/``flat`` rows; they never raise.

    Raises
    ------
    ConfigError
        Unknown ``e0`` policy or engine, or a numeric ``e0`` outside the grid.
    DataError
        ``e0="reference"`` for a series without a reference channel.
    """
    with _blas_single_thread():
        return _normalize(series, e0=e0, pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2,
                          nnorm=nnorm, nvict=nvict, engine=engine)


def _normalize(series, *, e0, pre1, pre2, norm1, norm2, nnorm, nvict, engine):
    if not isinstance(series, Series):
        raise ConfigError(f"normalize needs an operando Series, got {type(series).__name__}")
    if engine not in _ENGINES:
        raise ConfigError(f"engine must be one of {_ENGINES}, got {engine!r}")
    if isinstance(e0, str):
        if e0 not in _E0_POLICIES:
            raise ConfigError(
                f"e0 must be one of {_E0_POLICIES} or a number in eV, got {e0!r}"
            )
    elif isinstance(e0, bool) or not isinstance(e0, (int, float, np.integer, np.floating)):
        raise ConfigError(f"e0 must be one of {_E0_POLICIES} or a number in eV, got {e0!r}")
    if nnorm is not None and not (0 <= int(nnorm) <= MAX_NNORM):
        raise ConfigError(f"nnorm must be between 0 and {MAX_NNORM}, got {nnorm!r}")

    energy = _remove_dups(series.energy)
    mu = series.mu
    n, n_e = mu.shape
    if n_e < 20:
        raise DataError(f"normalize needs at least 20 energy points, the grid has {n_e}")

    ok, problems = _check_rows(mu)
    e0_arr = np.full(n, np.nan)
    e0_value: float | None = None
    e0_source: int | None = None

    def _candidate_e0(rows: np.ndarray) -> np.ndarray:
        # find_e0 on finite rows; failures make the row not ok
        vals = np.full(rows.size, np.nan)
        if rows.size:
            try:
                vals, _ = _find_e0_rows(energy, mu[rows])
            except Exception as exc:  # noqa: BLE001 - recorded per step below
                log.debug("batched find_e0 failed (%s); per-row fallback", exc)
                for j, r in enumerate(rows):
                    try:
                        vals[j] = _find_e0_rows(energy, mu[r : r + 1])[0][0]
                    except Exception:  # noqa: BLE001
                        vals[j] = np.nan
        return vals

    if isinstance(e0, str) and e0 == "each":
        rows = np.flatnonzero(ok)
        e0_arr[rows] = _candidate_e0(rows)
    elif isinstance(e0, str) and e0 in ("first", "reference"):
        if e0 == "reference":
            if series.reference is None:
                raise DataError(
                    "e0='reference' needs a reference channel, but this series has none "
                    "(use e0='first', 'each' or a number in eV)"
                )
            ref_ok, _ = _check_rows(series.reference)
            candidates = np.flatnonzero(ref_ok)
            source = series.reference
        else:
            candidates = np.flatnonzero(ok)
            source = mu
        for r in candidates:
            try:
                val = float(_find_e0_rows(energy, source[r : r + 1])[0][0])
            except Exception:  # noqa: BLE001 - try the next spectrum
                continue
            if e0 == "first":
                # the first *good* spectrum: it must also normalise to a positive step
                plan = _resolve(energy, val, pre1, pre2, norm1, norm2, nnorm, nvict)
                probe = _empty_out(1, n_e)
                _normalize_fast(energy, mu[r : r + 1], plan, probe, np.array([0]))
                if not probe["fit_ok"][0]:
                    continue
            e0_value, e0_source = val, int(series.steps[r])
            break
        if e0_value is None:
            log.warning("normalize: no good %s spectrum to find E0 from; every step flagged",
                        "reference" if e0 == "reference" else "")
            for i in range(n):
                if ok[i]:
                    ok[i] = False
                    problems[i] = f"no good {'reference ' if e0 == 'reference' else ''}" \
                                  "spectrum in the series to find E0 from"
        else:
            e0_arr[:] = e0_value
    else:
        e0_value = float(e0)
        if not (energy[1] <= e0_value <= energy[-2]):
            raise ConfigError(
                f"e0={e0_value} eV is outside the energy grid "
                f"({energy[1]:.2f}..{energy[-2]:.2f} eV accepted)"
            )
        e0_arr[:] = e0_value

    for i in np.flatnonzero(ok & ~np.isfinite(e0_arr)):
        ok[i] = False
        problems[i] = "find_e0 failed (no edge found)"

    out = _empty_out(n, n_e)
    per_step: dict[str, np.ndarray] = {k: np.full(n, np.nan) for k in
                                       ("pre1", "pre2", "norm1", "norm2", "nnorm", "nvict", "npre")}
    plan_kw = dict(pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2, nnorm=nnorm, nvict=nvict)

    if engine == "fast":
        plans: dict[tuple, tuple[_Plan, list[np.ndarray]]] = {}
        good_rows = np.flatnonzero(ok)
        values, inverse = np.unique(e0_arr[good_rows], return_inverse=True)
        for j, val in enumerate(values):
            plan = _resolve(energy, float(val), pre1, pre2, norm1, norm2, nnorm, nvict)
            idx = good_rows[inverse.ravel() == j] if values.size > 1 else good_rows
            plans.setdefault(plan.key(), (plan, []))[1].append(idx)
            for k in per_step:
                per_step[k][idx] = getattr(plan, k)
        for plan, parts in plans.values():
            _normalize_fast(energy, mu, plan, out, np.sort(np.concatenate(parts)))
    else:
        for i in np.flatnonzero(ok):
            try:
                res = _normalize_larch(energy, mu[i], None if e0 == "each" else e0_arr[i],
                                       plan_kw)
            except Exception as exc:  # noqa: BLE001 - recorded as the step's reason
                problems[i] = f"larch pre_edge failed: {exc}"
                ok[i] = False
                continue
            e0_arr[i] = res["e0"]
            out["norm"][i] = res["norm"]
            out["flat"][i] = res["flat"]
            out["edge_step"][i] = res["raw_step"]
            out["pre_offset"][i] = res["pre_offset"]
            out["pre_slope"][i] = res["pre_slope"]
            coefs = res["norm_coefs"]
            out["norm_coefs"][i] = 0.0
            out["norm_coefs"][i, : len(coefs)] = coefs
            good = np.isfinite(res["raw_step"]) and res["raw_step"] > 0
            out["fit_ok"][i] = good
            if not good:
                out["norm"][i] = np.nan
                out["flat"][i] = np.nan
            for k in per_step:
                per_step[k][i] = res["settings"][k]

    for i in np.flatnonzero(ok & ~out["fit_ok"]):
        ok[i] = False
        problems[i] = "normalised mu is not finite (overflow)" if out["overflow"][i] else (
            f"edge step is {out['edge_step'][i]:.4g} (<= 0 or not finite): no absorption edge"
        )
    bad = ~ok
    out["norm"][bad] = np.nan
    out["flat"][bad] = np.nan
    for k in ("pre_offset", "pre_slope"):
        out[k][bad & ~np.isfinite(out["edge_step"])] = np.nan
    out["norm_coefs"][bad & ~np.isfinite(out["edge_step"])] = np.nan
    reason = ["" if ok[i] else f"normalize: {problems[i]}" for i in range(n)]
    if bad.any():
        log.info("normalize: %d of %d steps not ok", int(bad.sum()), n)

    settings: dict[str, Any] = {
        "e0": e0 if isinstance(e0, str) else float(e0),
        "e0_value": e0_value,
        "e0_source_step": e0_source,
        "engine": engine,
    }
    for k, values in per_step.items():
        settings[k] = _collapse(values[ok], values, integer=k in ("nnorm", "nvict", "npre"))
    settings["requested"] = dict(plan_kw)

    ncoef = out["norm_coefs"].shape[1]
    used = settings["nnorm"]
    if isinstance(used, int):
        ncoef = used + 1
    return NormalizedSeries(
        series=series,
        norm=out["norm"],
        flat=out["flat"],
        e0=e0_arr,
        edge_step=out["edge_step"],
        pre_offset=out["pre_offset"],
        pre_slope=out["pre_slope"],
        norm_coefs=out["norm_coefs"][:, :ncoef].copy(),
        ok=ok,
        reason=reason,
        settings=settings,
    )


def _blas_single_thread():
    """Keep BLAS single-threaded for our skinny matrix products.

    They are memory-bound; OpenBLAS threads only add contention, and on a
    shared or oversubscribed machine they made the fast engine ~4x slower.
    (One cached threadpoolctl controller per process, see
    :func:`operando._blas.single_threaded_blas`.)
    """
    from ._blas import single_threaded_blas

    return single_threaded_blas()


def _empty_out(n: int, n_e: int) -> dict:
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


# ------------------------------------------------------------------------ calibrate
_E0_METHODS = ("refined", "find_e0")


def calibrate(
    series: Series,
    *,
    edge_energy: float | None = None,
    e0_method: str = "refined",
    max_shift: float = 20.0,
) -> tuple[Series, np.ndarray]:
    """Align every scan on its reference channel (e.g. a metal foil).

    For each step the reference edge E_ref is found on the reference-channel mu
    as the maximum of the smoothed derivative (Larch's ``find_e0``), the shift
    ``edge_energy - E_ref`` is added to that scan's energy axis, and mu and the
    reference are linearly interpolated back onto the common grid.  The grid is
    trimmed to the points covered by every shifted scan, so nothing is
    extrapolated (a few points at each end are lost, at most the largest shift).

    Parameters
    ----------
    series : Series
        Must have a reference channel.
    edge_energy : float, optional
        Target reference edge energy, eV.  Default: the tabulated edge energy
        ``xraydb.xray_edge(series.element, series.edge).energy``.
    e0_method : {"refined", "find_e0"}
        ``"find_e0"``: Larch's ``find_e0`` exactly, which returns an energy grid
        point, so the alignment is only good to half a grid step.
        ``"refined"`` (default): the same maximum refined to sub-grid precision
        by a least-squares parabola through the unsmoothed derivative within
        +/- 1 eV of it (smoothing would pull the maximum of an asymmetric edge
        towards the white line by ~0.2 eV at Pt L3).
    max_shift : float
        Largest believable shift, eV.  A larger one (usually a glitch or a
        missing foil picked as the "edge") is not applied: that step keeps its
        energy axis (shift 0) and is flagged in the metadata, because shifting
        a scan by tens of eV on a wrong edge would silently corrupt it.  The
        same holds when no reference edge can be found for a step (dead
        reference frame).

    Returns
    -------
    calibrated : Series
        The aligned series.  ``metadata`` gains ``energy_shifts`` (applied
        shifts, eV), ``energy_shift_measured`` (measured, eV; NaN where not
        found), ``energy_shift_ok`` (bool per step), ``energy_shift_reason``
        (``""`` when applied), ``calibration`` (edge_energy, e0_method,
        max_shift) and ``interpolated=True``.
    shifts : (n,) array
        The applied shifts, eV (0 for flagged steps).

    Raises
    ------
    DataError
        No reference channel; no edge energy given and none tabulated for the
        series' element/edge; nothing left of the grid after shifting.
    ConfigError
        Unknown ``e0_method`` or non-positive ``max_shift``.
    """
    if series.reference is None:
        raise DataError(
            "calibrate needs a reference channel (e.g. a foil between it and iref), "
            "but this series has none; read it with reference=True or skip calibration"
        )
    if e0_method not in _E0_METHODS:
        raise ConfigError(f"e0_method must be one of {_E0_METHODS}, got {e0_method!r}")
    if not (np.isfinite(max_shift) and max_shift > 0):
        raise ConfigError(f"max_shift must be a positive number of eV, got {max_shift!r}")
    if edge_energy is None:
        edge_energy = _tabulated_edge(series)
    edge_energy = float(edge_energy)

    energy = _remove_dups(series.energy)
    ref = series.reference
    n = ref.shape[0]
    ref_ok, ref_problem = _check_rows(ref)
    measured = np.full(n, np.nan)
    rows = np.flatnonzero(ref_ok)
    if rows.size:
        with _blas_single_thread():
            grid_e0, refined_e0 = _find_e0_rows(energy, ref[rows])
            if e0_method == "refined":
                refined_e0 = _refine_on_raw_derivative(energy, ref[rows], refined_e0)
        measured[rows] = edge_energy - (refined_e0 if e0_method == "refined" else grid_e0)
    applied = np.where(np.isfinite(measured), measured, 0.0)
    shift_ok = np.isfinite(measured)
    reason = [""] * n
    for i in range(n):
        if not ref_ok[i]:
            reason[i] = f"calibrate: reference channel unusable ({ref_problem[i]}); not shifted"
        elif not np.isfinite(measured[i]):
            reason[i] = "calibrate: no reference edge found; not shifted"
        elif abs(measured[i]) > max_shift:
            shift_ok[i] = False
            applied[i] = 0.0
            reason[i] = (
                f"calibrate: measured shift {measured[i]:+.2f} eV exceeds max_shift "
                f"{max_shift:g} eV; not applied"
            )
    for i in np.flatnonzero(~shift_ok):
        log.warning("step %s: %s", series.steps[i], reason[i])

    lo = energy[0] + max(0.0, applied.max())
    hi = energy[-1] + min(0.0, applied.min())
    keep = (energy >= lo - 1e-9) & (energy <= hi + 1e-9)
    if keep.sum() < 20:
        raise DataError(
            f"after shifting by up to {np.abs(applied).max():.1f} eV fewer than 20 energy "
            "points are covered by every scan"
        )
    new_energy = series.energy[keep]
    new_mu = np.empty((n, new_energy.size))
    new_ref = np.empty((n, new_energy.size))
    for i in range(n):
        src = energy + applied[i]
        new_mu[i] = np.interp(new_energy, src, series.mu[i])
        new_ref[i] = np.interp(new_energy, src, ref[i])
        # np.interp spreads a NaN to its neighbours' intervals only; keep dead rows dead
        if not np.all(np.isfinite(series.mu[i])):
            new_mu[i] = _interp_with_nan(new_energy, src, series.mu[i])
        if not np.all(np.isfinite(ref[i])):
            new_ref[i] = _interp_with_nan(new_energy, src, ref[i])

    metadata = dict(series.metadata)
    metadata.update(
        energy_shifts=applied.copy(),
        energy_shift_measured=measured,
        energy_shift_ok=shift_ok,
        energy_shift_reason=reason,
        calibration={"edge_energy": edge_energy, "e0_method": e0_method,
                     "max_shift": float(max_shift)},
        interpolated=True,
    )
    calibrated = series.replace(energy=new_energy, mu=new_mu, reference=new_ref,
                                metadata=metadata)
    return calibrated, applied


def _interp_with_nan(x_new, x, y):
    good = np.isfinite(y)
    if good.sum() < 2:
        return np.full(x_new.size, np.nan)
    out = np.interp(x_new, x[good], y[good])
    # points whose bracketing source point was bad stay bad
    bad_x = x[~good]
    if bad_x.size:
        step = np.median(np.diff(x))
        near = np.min(np.abs(x_new[:, None] - bad_x[None, :]), axis=1) < step
        out[near] = np.nan
    return out


def _tabulated_edge(series: Series) -> float:
    from ._edges import edge_energy

    if not series.element or not series.edge:
        raise DataError(
            "calibrate needs edge_energy, or a series with element and edge set "
            f"(got element={series.element!r}, edge={series.edge!r})"
        )
    try:
        return edge_energy(series.element, series.edge)
    except ConfigError as exc:
        raise DataError(
            f"no tabulated {series.element} {series.edge} edge energy ({exc}); "
            "pass edge_energy in eV"
        ) from None


# ----------------------------------------------------------------------- white line
def white_line(normalized: NormalizedSeries, *, window: tuple[float, float] = (-10.0, 30.0)
               ) -> pd.DataFrame:
    """White-line descriptors of every step, computed on ``norm`` in one batch.

    Parameters
    ----------
    normalized : NormalizedSeries
    window : (float, float)
        Energy window relative to each step's E0, eV (inclusive).

    Returns
    -------
    DataFrame
        One row per step:

        ``step``
        ``wl_height``
            Maximum of ``norm`` within the window, refined by a parabola through
            the maximum point and its two neighbours (no refinement when the
            maximum is on the window's edge); unitless (edge step = 1).
        ``wl_position``
            Energy of that maximum, eV (parabola vertex).
        ``wl_area``
            Trapezoid integral over the window's grid points of
            ``max(norm - 1, 0)`` (the part of the white line above the edge
            step, clipped at zero point by point before integrating), eV.
        ``edge_position``
            Energy where ``norm`` first crosses 0.5 upwards (last point below,
            next point at or above, searched within the window), linearly
            interpolated, eV; NaN if ``norm`` never crosses 0.5 in the window.

        All NaN for steps that are not ok or whose window holds < 3 points.
    """
    if not isinstance(normalized, NormalizedSeries):
        raise ConfigError(
            f"white_line needs a NormalizedSeries (from normalize), got {type(normalized).__name__}"
        )
    w0, w1 = (float(v) for v in window)
    if not w1 > w0:
        raise ConfigError(f"window must be (low, high) with low < high in eV, got {window!r}")
    energy = normalized.series.energy
    norm = normalized.norm
    n = norm.shape[0]
    res = {k: np.full(n, np.nan) for k in ("wl_height", "wl_position", "wl_area",
                                           "edge_position")}
    ok = np.asarray(normalized.ok, dtype=bool) & np.isfinite(normalized.e0)
    e0 = normalized.e0
    # rows sharing E0 share the window: one slice per distinct E0
    for val in np.unique(e0[ok]):
        rows = np.flatnonzero(ok & (e0 == val))
        lo = int(np.searchsorted(energy, val + w0, side="left"))
        hi = int(np.searchsorted(energy, val + w1, side="right"))
        if hi - lo < 3:
            continue
        with _blas_single_thread():
            _white_line_block(energy, norm[rows], lo, hi, rows, res)
    return pd.DataFrame({"step": normalized.series.steps, **res})


def _white_line_block(energy, y, lo, hi, rows, res):
    ew = energy[lo:hi]
    yw = y[:, lo:hi]
    imax = np.argmax(yw, axis=1)
    at_edge = (imax == 0) | (imax == ew.size - 1)
    xv, yv = _vertex(ew, yw, imax)
    xv[at_edge] = ew[imax[at_edge]]
    yv[at_edge] = yw[at_edge, imax[at_edge]]
    res["wl_height"][rows] = yv
    res["wl_position"][rows] = xv
    excess = np.clip(yw - 1.0, 0.0, None)
    res["wl_area"][rows] = 0.5 * ((excess[:, 1:] + excess[:, :-1]) @ np.diff(ew))
    below = yw < 0.5
    cross = below[:, :-1] & ~below[:, 1:]
    has = cross.any(axis=1)
    first = np.argmax(cross, axis=1)
    r = np.arange(yw.shape[0])
    ya, yb = yw[r, first], yw[r, first + 1]
    xa, xb = ew[first], ew[first + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = xa + (0.5 - ya) * (xb - xa) / (yb - ya)
    res["edge_position"][rows] = np.where(has, pos, np.nan)
