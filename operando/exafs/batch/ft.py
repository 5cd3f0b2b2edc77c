"""Batched forward XAFS Fourier transform, identical to ``larch.xafs.xftf``.

The window is built by Larch's own :func:`larch.xafs.xafsft.ftwindow` (it is the
reference definition, and building it is negligible next to the transforms), so
only the interpolation onto the uniform grid and the FFT are vectorised here.
"""

from __future__ import annotations

import numpy as np

from ..._util.larch_compat import ftwindow
from ...options import FTOptions

SQRT_PI = float(np.sqrt(np.pi))
#: Rows per FFT block in batch_xftf.
_FT_BLOCK = 512



def _as_rows(chi: np.ndarray, n_k: int, name: str = "chi") -> tuple[np.ndarray, bool]:
    arr = np.asarray(chi, dtype=float)
    single = arr.ndim == 1
    if single:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n_k:
        raise ValueError(f"{name} must have shape (n, {n_k}) to match k; got {np.shape(chi)}")
    return arr, single


def linear_interp_matrix_rows(k: np.ndarray, k_new: np.ndarray):
    """Indices and weights reproducing ``np.interp(k_new, k, y)`` for any y.

    Returns ``(i0, i1, w)`` with ``y_new = y[..., i0] * (1 - w) + y[..., i1] * w``;
    outside ``k`` the end values are held, as ``np.interp`` does.
    """
    k = np.asarray(k, dtype=float)
    idx = np.searchsorted(k, k_new, side="right") - 1
    idx = np.clip(idx, 0, len(k) - 2)
    k0, k1 = k[idx], k[idx + 1]
    w = (k_new - k0) / (k1 - k0)
    w = np.clip(w, 0.0, 1.0)
    return idx, idx + 1, w


def resample_rows(k: np.ndarray, chi: np.ndarray, k_new: np.ndarray) -> np.ndarray:
    """``np.interp(k_new, k, row)`` for every row of ``chi`` (n, n_k) at once.

    Exact copy (no arithmetic) when ``k_new`` is a prefix of ``k``.
    """
    k = np.asarray(k, dtype=float)
    n_new = len(k_new)
    if n_new <= len(k) and np.array_equal(k[:n_new], k_new):
        return chi[:, :n_new].copy()
    i0, i1, w = linear_interp_matrix_rows(k, k_new)
    return chi[:, i0] * (1.0 - w) + chi[:, i1] * w


def batch_xftf(
    k: np.ndarray,
    chi: np.ndarray,
    *,
    kmin: float = FTOptions.kmin,
    kmax: float = FTOptions.kmax,
    dk: float = FTOptions.dk,
    dk2: float | None = None,
    window: str = FTOptions.window,
    kweight: float = FTOptions.kweight,
    rmax_out: float = 10.0,
    nfft: int = 2048,
    kstep: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Forward XAFS Fourier transform of many chi(k) spectra on one k grid.

    Reproduces ``larch.xafs.xftf`` (``xftf_prep`` + ``xftf_fast``) row by row:
    chi is linearly interpolated onto ``kstep * arange(...)`` up to
    ``max(max(k), kmax + dk2)``, truncated at ``max(k)``, weighted by
    ``k**int(kweight)`` and the window, zero-padded to ``nfft`` and transformed
    with the normalisation ``kstep / sqrt(pi)``.

    Parameters
    ----------
    k : ndarray, shape (n_k,)
        Photo-electron wavenumber, 1/Angstrom, increasing.
    chi : ndarray, shape (n, n_k) or (n_k,)
        chi(k), dimensionless.
    kmin, kmax : float
        Window range, 1/Angstrom.
    dk, dk2 : float
        Window tapering parameters, 1/Angstrom (``dk2`` defaults to ``dk``).
    window : str
        Larch window name: ``"kaiser"``, ``"hanning"``, ``"parzen"``, ``"welch"``,
        ``"gaussian"``, ``"sine"``, ``"bessel"``, ``"fhanning"``.
    kweight : float
        Exponent of the k weighting (truncated to int, as Larch does).
    rmax_out : float
        Highest R returned, Angstrom.
    nfft : int
        FFT length.
    kstep : float, optional
        Uniform k step, 1/Angstrom; default ``k[1] - k[0]`` as in Larch.

    Returns
    -------
    r : ndarray, shape (n_r,)
        Distance grid, Angstrom (``pi / (kstep * nfft)`` spacing).
    chir : ndarray of complex, shape (n, n_r) (or (n_r,) for 1-d input)
        chi(R), Angstrom^(-kweight-1).
    """
    k = np.asarray(k, dtype=float)
    chi2d, single = _as_rows(chi, len(k))
    if kstep is None:
        kstep = float(k[1] - k[0])
    if dk2 is None:
        dk2 = dk
    kweight = int(kweight)
    npts = int(1.01 + max(k) / kstep)
    k_max = max(max(k), kmax + dk2)
    k_ = kstep * np.arange(int(1.01 + k_max / kstep), dtype="float64")
    win = ftwindow(k_, xmin=kmin, xmax=kmax, dx=dk, dx2=dk2, window=window)
    weight = (k_[:npts] ** kweight) * win[:npts]
    rstep = np.pi / (kstep * nfft)
    irmax = int(min(nfft / 2, 1.01 + rmax_out / rstep))
    out = np.empty((len(chi2d), irmax), dtype=complex)
    # blocks of rows: the (rows, nfft/2 + 1) spectrum stays small and only the
    # R < rmax_out part is kept (the full spectrum of 10^4 rows would be 160 MB)
    for a in range(0, len(chi2d), _FT_BLOCK):
        chi_ = resample_rows(k, chi2d[a:a + _FT_BLOCK], k_[:npts])
        chi_ *= weight
        # numpy.fft: the same pocketfft as scipy.fft (bit-identical results) without
        # importing scipy in every worker
        out[a:a + _FT_BLOCK] = np.fft.rfft(chi_, n=nfft, axis=-1)[:, :irmax]
    out *= kstep / SQRT_PI
    r = rstep * np.arange(irmax)
    return r, (out[0] if single else out)


def ft_matrix(cols: np.ndarray, rows: np.ndarray, nfft: int, kstep: float) -> np.ndarray:
    """Real matrix of ``realimag(xftf_fast(x)[rows])`` restricted to input indices ``cols``.

    ``x`` lives on the ``kstep * arange(...)`` grid and is zero outside ``cols``.
    Row ``2*j`` is the real part and ``2*j + 1`` the imaginary part of chi(R) at
    index ``rows[j]`` (Larch's ``realimag`` interleaving).
    """
    cols = np.asarray(cols, dtype=np.int64)
    # integer product modulo nfft keeps the phase exact for large indices
    phase = 2.0 * np.pi * (np.outer(np.asarray(rows, dtype=np.int64), cols) % nfft) / nfft
    mat = np.empty((2 * len(rows), len(cols)))
    mat[0::2] = np.cos(phase)
    mat[1::2] = -np.sin(phase)
    return mat * (kstep / SQRT_PI)
