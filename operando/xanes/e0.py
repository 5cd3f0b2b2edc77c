"""Larch's ``find_e0`` for many spectra at once, and its refinement.

The smoothing of the derivative is linear in mu, so it becomes one precomputed
matrix per energy grid and window: every spectrum's derivative is smoothed with
one matrix product, then the edge is picked by Larch's rules (:func:`_select_peak`)
and, for calibration, refined on the unsmoothed derivative.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from .._util.larch_compat import TINY_ENERGY, find_energy_step, lorentzian, remove_dups


def _smooth_matrix(x: np.ndarray, xstep: float, sigma: float) -> np.ndarray:
    """Matrix ``S`` with ``S @ y == larch.math.smooth(x, y, sigma=sigma, xstep=xstep)``.

    Larch's Lorentzian smoothing (interpolate onto a uniform grid, reflect-pad,
    convolve, interpolate back) is linear in ``y``; this builds it once for a
    window so many spectra are smoothed with one matrix product.
    """
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
    normalises chunk after chunk on one grid, and the matrix is the same each time."""
    smat = _smooth_matrix(np.frombuffer(x_bytes, dtype=float), step, step)
    smat.setflags(write=False)
    return smat


def _fftconvolve_valid(y: np.ndarray, win: np.ndarray) -> np.ndarray:
    """``scipy.signal.fftconvolve(y, win[:, None], mode="valid", axes=0)`` for
    ``len(y) >= len(win)``, with numpy's FFT (the same pocketfft as scipy.fft;
    without importing scipy.signal in every worker)."""
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


def refine_on_raw_derivative(energy: np.ndarray, mu: np.ndarray, guess: np.ndarray,
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


def parabola_vertex(x: np.ndarray, y: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def find_e0_rows(energy: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        refined, _ = parabola_vertex(enw, smoothed, ix)
        e0_ref[rows] = refined
        early = ix < 1
        e0[rows[early]] = energy[istart + 2]
        e0_ref[rows[early]] = energy[istart + 2]
    return e0, e0_ref


def dedup_energy(energy: np.ndarray) -> np.ndarray:
    """Larch's ``remove_dups`` with ``TINY_ENERGY`` (a no-op for steps > 5 meV)."""
    return np.asarray(remove_dups(np.asarray(energy, dtype=float), tiny=TINY_ENERGY), dtype=float)


def check_rows(mu: np.ndarray) -> tuple[np.ndarray, list[str]]:
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


