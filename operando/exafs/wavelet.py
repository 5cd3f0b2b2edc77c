"""Wavelet-transform EXAFS: where in k (which scatterer) and in R (which distance) chi(k) is.

A Fourier transform says at which distance R there is scattering; a wavelet transform
also says at which k, and the k of a lobe tells light from heavy neighbours: the
backscattering amplitude of O or N peaks at low k (about 4-6 1/Angstrom), that of a
metal at higher k (7-10 1/Angstrom).  So a M-N and a M-M lobe at similar R are told
apart on a k-R map: the picture single-atom catalyst papers show as evidence.

:func:`cauchy_wavelet` is ``larch.xafs.cauchy_wavelet`` (Munoz, Argoul and Farges, Am.
Mineral. 88, 694 (2003)) written for a whole series at once: the same FFT grid, the same
filter, rows batched; equal to Larch's on the same chi(k) within floating point (tested).
:func:`morlet_wavelet` is the Morlet transform of Funke, Scheinost and Chukalina (Phys.
Rev. B 71, 094110 (2005)), computed on the same grid in Fourier space (its filter, the
Fourier transform of the Morlet wavelet, is known in closed form), with the r axis
scaled so a lobe sits at the R of the Fourier transform.  Neither imports xraylarch.

:func:`wavelet_transform` takes a :class:`~operando.exafs.ChiSeries` (or ``k, chi``
arrays), per step or averaged per group of steps (a segment: chi(k) is averaged before
the transform, which is linear), and returns a :class:`WaveletTransform`;
:func:`lobe_positions` finds the (k, R) of the largest modulus in an R window around
each shell (:func:`shell_windows`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .._util.larch_compat import ftwindow
from .._util.result import Result
from ..errors import ConfigError, DataError
from ..feffpaths import default_distance
from ..options import FTOptions

__all__ = ["WaveletTransform", "cauchy_wavelet", "morlet_wavelet", "wavelet_transform",
           "lobe_positions", "shell_windows", "METHODS"]

#: Wavelets available to :func:`wavelet_transform`.
METHODS = ("cauchy", "morlet")
#: Largest transform held in memory at once (complex values of steps x R x FFT length).
_CHUNK_VALUES = 8_000_000
#: First-shell peak of |chi(R)| below the real distance (phase shift), Angstrom: the centre
#: of a shell's window on the (not phase-corrected) R axis.
PHASE_SHIFT = 0.35


@dataclass(frozen=True, eq=False)
class WaveletTransform(Result):
    """Wavelet transforms of chi(k), one map per step or per group of steps.

    Attributes
    ----------
    k : (n_k,) array
        Photoelectron wavenumber, 1/Angstrom (the input grid).
    r : (n_r,) array
        Radial distance, Angstrom (not phase corrected, as chi(R)).
    wt : (n, n_r, n_k) complex array
        The transform of each row (Larch's ``wcauchy`` layout, R by k, per row).
    labels : list
        What each row is: a step label, or the group (segment) it averages.
    n_steps : (n,) int array
        Steps averaged into each row (1 per step).
    settings : dict
        Method, kweight, k window, wavelet parameters, FFT length.
    """

    k: np.ndarray
    r: np.ndarray
    wt: np.ndarray
    labels: list
    n_steps: np.ndarray
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.wt.shape[0]

    @property
    def modulus(self) -> np.ndarray:
        """``|wt|``, (n, n_r, n_k)."""
        return np.abs(self.wt)

    def row(self, label) -> int:
        """The row of ``label`` (a step or a group)."""
        for i, lab in enumerate(self.labels):
            if lab == label:
                return i
        raise DataError(f"no wavelet map labelled {label!r}; labels are {self.labels[:20]}")

    def lobes(self, windows: Mapping[str, tuple[float, float]], **kwargs) -> pd.DataFrame:
        """:func:`lobe_positions` of this transform."""
        return lobe_positions(self, windows, **kwargs)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per map: ``label``, ``n_steps`` and where its modulus peaks (``k_peak``
        1/Angstrom, ``r_peak`` Angstrom, ``modulus_peak``)."""
        mod = self.modulus.reshape(len(self), -1)
        finite = np.isfinite(mod).any(axis=1)
        flat = np.argmax(np.where(np.isfinite(mod), mod, -np.inf), axis=1)
        ir, ik = np.unravel_index(flat, self.wt.shape[1:])
        return pd.DataFrame({"label": list(self.labels), "n_steps": np.asarray(self.n_steps),
                             "k_peak": np.where(finite, self.k[ik], np.nan),
                             "r_peak": np.where(finite, self.r[ir], np.nan),
                             "modulus_peak": np.where(finite, mod[np.arange(len(self)), flat],
                                                      np.nan)})

    def title(self) -> str:
        return self.__repr__().strip("<>")

    def to_xarray(self):
        """An ``xarray.Dataset``: ``modulus`` over ``(map, r, k)``, ``label`` and
        ``n_steps`` per map."""
        from .._util.xr import wavelet_dataset

        return wavelet_dataset(self)

    def __repr__(self) -> str:
        return (f"<WaveletTransform {self.settings.get('method')}: {len(self)} maps, "
                f"k {self.k[0]:.2f}-{self.k[-1]:.2f} 1/A x R {self.r[0]:.2f}-{self.r[-1]:.2f} A>")


def _rows(chi) -> tuple[np.ndarray, bool]:
    chi = np.asarray(chi, dtype=float)
    if chi.ndim not in (1, 2):
        raise DataError(f"chi must be 1-D (one spectrum) or 2-D (steps x k), got shape {chi.shape}")
    return np.atleast_2d(chi), chi.ndim == 1


def _grid(k, n_k: int) -> tuple[float, int]:
    """Larch's k step (rounded to 0.001) and the points the transform keeps."""
    k = np.asarray(k, dtype=float)
    if k.ndim != 1 or k.size != n_k or k.size < 2:
        raise DataError(f"k must be 1-D with one value per chi point ({n_k}), got shape {k.shape}")
    kstep = np.round(1000.0 * (k[1] - k[0])) / 1000.0
    if kstep <= 0:
        raise DataError("k must increase")
    if abs(k[0]) > kstep / 2:
        # Larch places chi at k = 0, 1, 2 ... * kstep: a grid starting elsewhere would be
        # transformed as if it started at 0.
        raise DataError(f"k must start at 0 (Larch's grid from autobk), got k[0] = {k[0]:g}")
    return kstep, n_k


def _filtered(x: np.ndarray, kweight: float, k: np.ndarray, n_out: int,
              kernels: tuple) -> np.ndarray:
    """Larch's transform ``ifft(filter * fft(k^w chi padded to nfft/2 points, 2 nfft))``,
    its first ``n_out`` points, for every row and every R: (n, n_r, n_out) complex.

    Larch's FFT has 2 ``nfft`` points (4096) for a chi(k) of a few hundred.  The same
    numbers come from a convolution: each R's filter is turned once into its kernel in
    k (:func:`_kernels`, cached: the same for every row and every call on one grid),
    and each row is convolved with the kernels by FFTs that fit the k grid (``n_in +
    n_out - 1`` points, rounded up to a fast length); rows are batched in
    memory-bounded blocks.  Equal to Larch's to floating-point rounding (tested).
    """
    from scipy.fft import fft, ifft

    kernel_ft, n_in = kernels
    x = (x * k ** kweight if kweight != 0 else x)[:, :n_in]
    n_r, size = kernel_ft.shape
    out = np.empty((x.shape[0], n_r, n_out), dtype=complex)
    rows = max(1, _CHUNK_VALUES // (n_r * size))
    buffer = np.empty((min(rows, x.shape[0]), n_r, size), dtype=complex)
    for a in range(0, x.shape[0], rows):
        b = min(a + rows, x.shape[0])
        product = np.multiply(kernel_ft[None, :, :], fft(x[a:b], size, axis=1)[:, None, :],
                              out=buffer[:b - a])
        # every 1-D transform is computed alike on any number of threads: same numbers
        full = ifft(product, axis=2, overwrite_x=True, workers=-1)
        out[a:b] = full[:, :, n_in - 1:n_in - 1 + n_out]
    return out


@lru_cache(maxsize=8)
def _kernels(method: str, kstep: float, rmax_out: float, nfft: int, n_k: int, n_out: int,
             eta: float = 0.0, sigma: float = 0.0, rows: tuple[int, int] | None = None
             ) -> tuple[np.ndarray, int]:
    """``(FFT of every R's kernel at the lags -(n_in - 1) .. n_out - 1, n_in)`` of a
    wavelet on Larch's grid: the filter in Fourier space (2 ``nfft`` points, as Larch),
    its inverse FFT (circular, as Larch's), the lags a row of ``n_in`` points meets.
    ``rows``: the R grid points ``start:stop`` only (the grid and the filters are
    those of the whole grid)."""
    from scipy.fft import fft, ifft, next_fast_len

    n_fft = 2 * nfft
    n_in = min(n_k, nfft // 2)
    full = _r_axis(kstep, rmax_out)
    r = full[slice(*rows)] if rows is not None else full
    spectrum = np.zeros((r.size, n_fft), dtype=complex)
    if method == "cauchy":
        nrpts = full.size
        omega = 2 * np.pi * (1.0 / kstep) * np.arange(nfft) / (2 * nfft)
        a = nrpts / (2 * r)
        cauchy_sum = np.log(2 * np.pi) - np.log(1.0 + np.arange(nrpts)).sum()
        aom = a[:, None] * omega[None, :]
        aom[aom == 0] = 1.0e-19
        # The Cauchy wavelet of order n in Fourier space, (a w)^n exp(-a w) 2 pi / n!, on
        # positive frequencies only (an analytic wavelet); n = nrpts as in Larch.
        spectrum[:, :nfft] = np.exp(cauchy_sum + nrpts * np.log(aom) - aom)
        scale = None
    else:
        omega = 2 * np.pi * np.fft.fftfreq(n_fft, d=kstep)
        a = 2 * r / eta
        spectrum[:] = np.exp(-0.5 * sigma ** 2 * (omega[None, :] / a[:, None] - eta) ** 2)
        scale = 1.0 / np.sqrt(a)
    lags = np.arange(-(n_in - 1), n_out) % n_fft
    kernel_ft = fft(ifft(spectrum, axis=1)[:, lags], next_fast_len(n_in + n_out - 1), axis=1)
    if scale is not None:
        kernel_ft *= scale[:, None]
    kernel_ft.setflags(write=False)
    return kernel_ft, n_in


def _r_axis(kstep: float, rmax_out: float) -> np.ndarray:
    """Larch's R grid (its step uses 2048 whatever ``nfft`` is; the first point is 1e-19)."""
    rstep = (np.pi / 2048) / kstep
    nrpts = int(np.round((rmax_out - 1.0e-7) / rstep))
    r = np.linspace(0, rmax_out, nrpts)
    r[0] = 1.0e-19
    return r


def _r_rows(kstep: float, rmax_out: float, rrange) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The R grid (Larch's, up to ``rmax_out``) and, with ``rrange`` (lo, hi) in Angstrom,
    only its points in that range, with their positions."""
    r = _r_axis(kstep, rmax_out)
    if rrange is None:
        return r, None
    inside = np.flatnonzero((r >= rrange[0]) & (r <= rrange[1]))
    if inside.size == 0:
        raise DataError(f"R range {rrange} holds no point of the R grid up to {rmax_out} A")
    rows = (int(inside[0]), int(inside[-1]) + 1)
    return r[rows[0]:rows[1]], rows


def cauchy_wavelet(k, chi, *, kweight: float = 0, rmax_out: float = 10.0, nfft: int = 2048,
                   rrange: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cauchy wavelet transform, ``larch.xafs.cauchy_wavelet`` for one or many spectra.

    Parameters
    ----------
    k : (n_k,) array
        Uniform k grid from 0, 1/Angstrom (autobk's).
    chi : (n_k,) or (n, n_k) array
        chi(k), one row per spectrum.
    kweight : float
        chi is weighted by k**kweight first.
    rmax_out : float
        Largest R, Angstrom.
    nfft : int
        FFT length parameter (Larch's ``nfft``).
    rrange : (float, float), optional
        Only the points of the R grid in this range, Angstrom (the grid is the same:
        what is computed is a part of the whole transform, at a part of its cost).

    Returns
    -------
    r : (n_r,) array
        Larch's ``wcauchy_r`` (Angstrom; the first point is 1e-19, not 0).
    wt : (n_r, n_k) or (n, n_r, n_k) complex array
        Larch's ``wcauchy`` for each spectrum.
    """
    x, single = _rows(chi)
    kstep, n_out = _grid(k, x.shape[1])
    k = np.asarray(k, dtype=float)
    r, rows = _r_rows(kstep, rmax_out, rrange)
    wt = _filtered(x, kweight, k, n_out,
                   _kernels("cauchy", kstep, rmax_out, nfft, x.shape[1], n_out, rows=rows))
    return r, (wt[0] if single else wt)


def morlet_wavelet(k, chi, *, kweight: float = 0, eta: float = 10.0, sigma: float = 1.0,
                   rmax_out: float = 10.0, nfft: int = 2048,
                   rrange: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Morlet wavelet transform (Funke et al. 2005) on the grid of :func:`cauchy_wavelet`.

    ``W(k, r) = sqrt(a) * integral chi(k') conj(psi(a (k' - k))) dk'`` with
    ``psi(t) = exp(i eta t) exp(-t^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)`` and
    ``a = 2 r / eta``, so a lobe of ``sin(2 k R)`` sits at ``r = R``.  Computed as
    ``a**-0.5 * ifft(fft(chi) * exp(-sigma^2 (w / a - eta)^2 / 2))`` (the wavelet's
    Fourier transform in closed form).  ``eta`` sets the trade-off: a larger value
    resolves R better and k worse (the wavelet spans about ``sigma * eta / (2 r)``
    in k).

    Parameters
    ----------
    k, chi, kweight, rmax_out, nfft, rrange
        As :func:`cauchy_wavelet`.
    eta : float
        Frequency of the wavelet (dimensionless).
    sigma : float
        Width of its Gaussian envelope (dimensionless).

    Returns
    -------
    r : (n_r,) array
        Angstrom, the grid of :func:`cauchy_wavelet`.
    wt : (n_r, n_k) or (n, n_r, n_k) complex array
    """
    if not (eta > 0 and sigma > 0):
        raise ConfigError(f"morlet wavelet needs eta > 0 and sigma > 0, got eta={eta}, sigma={sigma}")
    x, single = _rows(chi)
    kstep, n_out = _grid(k, x.shape[1])
    k = np.asarray(k, dtype=float)
    r, rows = _r_rows(kstep, rmax_out, rrange)
    wt = _filtered(x, kweight, k, n_out, _kernels("morlet", kstep, rmax_out, nfft,
                                                        x.shape[1], n_out, eta, sigma, rows))
    return r, (wt[0] if single else wt)


def wavelet_transform(k, chi=None, *, method: str = "cauchy", kweight: float = FTOptions.kweight,
                      kmin: float | None = None, kmax: float | None = None, dk: float = FTOptions.dk,
                      window: str = FTOptions.window, rmax_out: float = 6.0, groups=None,
                      steps=None, eta: float = 10.0, sigma: float = 1.0,
                      nfft: int = 2048, rrange: tuple[float, float] | None = None
                      ) -> WaveletTransform:
    """Wavelet transforms of a series, per step or averaged per group (segment).

    Parameters
    ----------
    k : (n_k,) array or ChiSeries
        The k grid (1/Angstrom, from 0), or a ChiSeries (then ``chi`` is omitted and
        the step labels come from it).
    chi : (n, n_k) array, optional
        chi(k) per step; rows that are not finite are left out (of a group's mean,
        or as NaN maps).
    method : {"cauchy", "morlet"}
    kweight : float
    kmin, kmax, dk, window : optional
        A k window (Larch's ``ftwindow``) applied before the transform, so noise at
        the ends does not make lobes; ``None`` (both) transforms chi as it is, as
        ``larch.xafs.cauchy_wavelet`` does.
    rmax_out : float
        Largest R kept, Angstrom.
    groups : (n,) array, optional
        A group label per step (e.g. the tracking segment): one map per group, of
        the mean chi(k) of its finite rows.  Default one map per step.
    steps : (n,) array, optional
        Step labels (default from the ChiSeries, else 0..n-1).
    eta, sigma : float
        Morlet parameters (:func:`morlet_wavelet`).
    nfft : int
    rrange : (float, float), optional
        Only the R points in this range (e.g. the shells' lobe windows), Angstrom:
        the same numbers there as the whole map, at a part of its cost.

    Returns
    -------
    WaveletTransform
    """
    if chi is None:
        if not hasattr(k, "chi"):
            raise DataError("wavelet_transform needs a ChiSeries, or k and chi arrays")
        steps = k.steps if steps is None else steps
        k, chi = k.k, k.chi
    x, _ = _rows(chi)
    k = np.asarray(k, dtype=float)
    if method not in METHODS:
        raise ConfigError(f"wavelet method {method!r} is not known; accepted: {', '.join(METHODS)}")
    steps = np.arange(x.shape[0]) if steps is None else np.asarray(steps)
    if steps.size != x.shape[0]:
        raise DataError(f"{steps.size} step labels for {x.shape[0]} chi rows")
    finite = np.isfinite(x).all(axis=1)
    if groups is None:
        labels, counts = [s.item() if hasattr(s, "item") else s for s in steps], finite.astype(int)
        rows = np.where(finite[:, None], x, 0.0)
    else:
        groups = np.asarray(groups)
        if groups.size != x.shape[0]:
            raise DataError(f"{groups.size} group labels for {x.shape[0]} chi rows")
        labels = list(dict.fromkeys(g.item() if hasattr(g, "item") else g for g in groups))
        rows = np.zeros((len(labels), x.shape[1]))
        counts = np.zeros(len(labels), dtype=int)
        for i, g in enumerate(labels):
            use = (groups == g) & finite
            counts[i] = int(use.sum())
            if counts[i]:
                rows[i] = x[use].mean(axis=0)
    if (kmin is None) != (kmax is None):
        raise ConfigError("give both kmin and kmax for a k window, or neither")
    if kmin is not None:
        rows = rows * ftwindow(k, xmin=kmin, xmax=kmax, dx=dk, window=window)[None, :]
    if method == "cauchy":
        r, wt = cauchy_wavelet(k, rows, kweight=kweight, rmax_out=rmax_out, nfft=nfft,
                               rrange=rrange)
        params = {}
    else:
        r, wt = morlet_wavelet(k, rows, kweight=kweight, eta=eta, sigma=sigma, rmax_out=rmax_out,
                               nfft=nfft, rrange=rrange)
        params = {"eta": eta, "sigma": sigma}
    wt[counts == 0] = np.nan
    settings = {"method": method, "kweight": kweight, "kmin": kmin, "kmax": kmax, "dk": dk,
                "window": window if kmin is not None else None, "rmax_out": rmax_out,
                "nfft": nfft, "averaged": groups is not None, "rrange": rrange, **params}
    return WaveletTransform(k=k, r=r, wt=wt, labels=labels, n_steps=counts, settings=settings)


def shell_windows(shells: Sequence[str], distances: Mapping[str, float] | None = None,
                  half_width: float = 0.5) -> dict[str, tuple[float, float]]:
    """R windows (Angstrom, not phase corrected) around each shell's first peak.

    A shell ``"Cu-N"`` at distance ``d`` (``distances``, else the shipped default of
    :mod:`operando.feffpaths`) peaks near ``d - PHASE_SHIFT`` in |chi(R)|; its window is
    that +/- ``half_width``, cut at the midpoint where two windows would overlap.

    Returns
    -------
    dict shell -> (r_low, r_high)
    """
    centres = {}
    for shell in shells:
        d = (distances or {}).get(shell)
        if d is None:
            pair = [p.capitalize() for p in shell.replace("_", "-").split("-", 1)]
            if len(pair) != 2:
                raise DataError(f"shell {shell!r} is not of the form 'Absorber-Scatterer'")
            try:
                d = default_distance(*pair)
            except ConfigError:
                raise DataError(f"no distance known for shell {shell!r}; give "
                                f"distances={{'{shell}': d}}") from None
        centres[shell] = float(d) - PHASE_SHIFT
    order = sorted(centres, key=centres.get)
    out = {}
    for i, shell in enumerate(order):
        c = centres[shell]
        lo, hi = c - half_width, c + half_width
        if i > 0:
            lo = max(lo, (c + centres[order[i - 1]]) / 2)
        if i < len(order) - 1:
            hi = min(hi, (c + centres[order[i + 1]]) / 2)
        out[shell] = (max(lo, 0.0), hi)
    return {s: out[s] for s in shells}


def lobe_positions(wt: WaveletTransform, windows: Mapping[str, tuple[float, float]], *,
                   kmin: float | None = None, kmax: float | None = None) -> pd.DataFrame:
    """Where each shell's lobe sits: the (k, R) of the largest modulus in its R window.

    Parameters
    ----------
    wt : WaveletTransform
    windows : dict name -> (r_low, r_high)
        R windows in Angstrom (e.g. :func:`shell_windows`).
    kmin, kmax : float, optional
        k range searched (default the transform's k window, else all k).

    Returns
    -------
    DataFrame
        One row per map and window: ``label, shell, k, r, modulus, lobe, r_low,
        r_high`` (k in 1/Angstrom, r in Angstrom; NaN for an empty map).  ``lobe`` is
        False when the maximum lies on the edge of the window (in R or k): then the
        window holds the tail of a lobe outside it, not a lobe of its own.
    """
    kmin = wt.settings.get("kmin") if kmin is None else kmin
    kmax = wt.settings.get("kmax") if kmax is None else kmax
    kmask = np.ones(wt.k.size, bool)
    if kmin is not None:
        kmask &= wt.k >= kmin
    if kmax is not None:
        kmask &= wt.k <= kmax
    ki = np.flatnonzero(kmask)
    n = len(wt.labels)
    columns = ["label", "shell", "k", "r", "modulus", "lobe", "r_low", "r_high"]
    parts: dict[str, list] = {c: [] for c in columns}
    for name, (lo, hi) in windows.items():
        rmask = (wt.r >= lo) & (wt.r <= hi)
        if not rmask.any() or not kmask.any():
            raise DataError(f"lobe window {name!r} R {lo}-{hi} A holds no point of the map "
                            f"(R {wt.r[0]:.2f}-{wt.r[-1]:.2f} A, k {wt.k[0]:.2f}-{wt.k[-1]:.2f})")
        ri = np.flatnonzero(rmask)
        # every map at once: the window's moduli, flattened R by k
        sub = np.abs(wt.wt[:, ri[0]:ri[-1] + 1][:, :, ki]).reshape(n, ri.size * ki.size)
        empty = ~np.isfinite(sub).any(axis=1)
        j = np.argmax(np.where(np.isfinite(sub), sub, -np.inf), axis=1)
        a, b = np.divmod(j, ki.size)
        inside = (0 < a) & (a < ri.size - 1) & (0 < b) & (b < ki.size - 1) & ~empty
        nan = np.full(n, math.nan)
        for c, v in (("label", list(wt.labels)), ("shell", [name] * n),
                     ("k", np.where(empty, nan, wt.k[ki[b]])),
                     ("r", np.where(empty, nan, wt.r[ri[a]])),
                     ("modulus", np.where(empty, nan, sub[np.arange(n), j])), ("lobe", inside),
                     ("r_low", np.full(n, lo)), ("r_high", np.full(n, hi))):
            parts[c].append(v)
    # one row per map and window, maps within a window in order (as the loop over windows
    # then maps wrote them); one table built at the end (a table per window costs more
    # than the search when the maps are few)
    if not windows:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame({c: (sum(v, []) if c in ("label", "shell") else np.concatenate(v))
                         for c, v in parts.items()})
