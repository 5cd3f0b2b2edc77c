"""The fixed part of a batched shell fit: grids, the compressed FT matrix, noise.

See :mod:`.fit` for why one dense matrix maps chi(k) to Larch's residual.
"""

from __future__ import annotations

import numpy as np

from ..._util.larch_compat import ftwindow
from .ft import SQRT_PI, ft_matrix


class _Problem:
    """Fixed part of a batch fit: grids, FT matrix, parameter layout."""

    def __init__(self, k, paths, *, kmin, kmax, kweight, dk, dk2, window, rmin, rmax,
                 fit_space, nfft, kstep):
        self.kstep, self.nfft = kstep, nfft
        ikmax = int(1.01 + max(k) / kstep)
        k_full = kstep * np.arange(nfft, dtype="float64")
        self.model_k = k_full[:ikmax]
        kwin = ftwindow(k_full, xmin=kmin, xmax=kmax, dx=dk, dx2=dk2, window=window)
        self.kwin_ave = kwin.sum() * kstep / (kmax - kmin)
        self.fft_weight = kwin[:ikmax] * self.model_k**kweight
        if fit_space == "r":
            rstep = np.pi / (kstep * nfft)
            irmin = int(max(0, 0.01 + rmin / rstep))
            irmax = int(min(nfft / 2, 0.01 + rmax / rstep))
            cols = np.flatnonzero(self.fft_weight != 0)
            self.M = ft_matrix(cols, np.arange(irmin, irmax), nfft, kstep) * self.fft_weight[cols]
        elif fit_space == "k":
            iqmin = int(max(0, 0.01 + kmin / kstep))
            iqmax = int(min(nfft / 2, 0.01 + kmax / kstep, ikmax))
            cols = np.arange(iqmin, iqmax)
            self.M = np.diag(self.model_k[cols] ** kweight)
        else:
            raise ValueError(f"fit_space must be 'r' or 'k'; got {fit_space!r}")
        if len(cols) == 0 or self.M.shape[0] == 0:
            raise ValueError("empty fit range: check kmin/kmax/rmin/rmax against the data k range")
        self.cols = cols
        self.kk = self.model_k[cols]
        self.npts = self.M.shape[0]
        self.paths = paths
        self.WT = self._compressed(self.M)

    @staticmethod
    def _compressed(M):
        """``W^T`` with ``|W v| = |M v|`` for every ``v`` to rounding, ``W`` with fewer rows.

        The residual enters the fit only through its sum of squares, ``J^T J`` and
        ``J^T r``, all invariant under an orthogonal map of the residual space.  With
        ``M = U S V^T``, ``W = S V^T`` (``= U^T M``) has those invariants.  The windowed,
        R-limited Fourier transform has few significant singular values (~3 n_idp: 36
        of 144 for k 3-12, R 1-3.2), so the rows with ``s_i <= 1e-10 s_0`` are dropped:
        that changes ``|M v|^2`` by at most ``1e-20 s_0^2 |v|^2``, below the rounding of
        the sum itself.  Returns ``M^T`` when nothing drops.
        """
        if M.shape[0] < 2:
            return np.ascontiguousarray(M.T)
        _, sv, vt = np.linalg.svd(M, full_matrices=False)
        keep = int(np.count_nonzero(sv > 1e-10 * sv[0]))
        if keep >= M.shape[0]:
            return np.ascontiguousarray(M.T)
        return np.ascontiguousarray((sv[:keep, None] * vt[:keep]).T)


_PROBLEMS: dict = {}
#: Rows per path evaluation in :func:`batch_fit` (element-wise temporaries stay in cache).
EVAL_CHUNK = 64


def cached_problem(k, paths, **kw) -> _Problem:
    """A cached :class:`_Problem` (the FT matrix depends only on the grid and settings;
    a pipeline fits chunk after chunk with the same ones)."""
    key = (float(max(k)), tuple(sorted(kw.items())))
    prob = _PROBLEMS.get(key)
    if prob is None:
        if len(_PROBLEMS) >= 16:
            _PROBLEMS.clear()
        prob = _PROBLEMS[key] = _Problem(k, None, **kw)
    if prob.paths is paths:
        return prob
    import copy

    prob = copy.copy(prob)          # shares the arrays; only the paths differ
    prob.paths = paths
    return prob


def estimate_noise_rows(chi_model_grid, prob: _Problem, kmin, kmax, kweight):
    """Larch's ``FeffitDataSet.estimate_noise`` for every row: (eps_k, eps_r)."""
    nfft, kstep = prob.nfft, prob.kstep
    x = chi_model_grid * prob.fft_weight
    rstep = np.pi / (kstep * nfft)
    irmin = int(0.01 + 15.0 / rstep)
    irmax = int(min(nfft / 2, 1.01 + 30.0 / rstep))
    # numpy.fft: the same pocketfft as scipy.fft (bit-identical) without importing scipy;
    # only the 15..30 A part is scaled (element-wise: the same numbers as scaling it all)
    high = np.fft.rfft(x, n=nfft, axis=-1)[:, irmin:irmax] * (kstep / SQRT_PI)
    ms = (high.real**2 + high.imag**2).sum(axis=1) / (2 * high.shape[1])
    eps_r = np.sqrt(ms) / prob.kwin_ave
    w = 2 * kweight + 1
    eps_k = np.sqrt((2 * np.pi * w) / (kstep * (kmax**w - kmin**w))) * eps_r
    return eps_k, eps_r
