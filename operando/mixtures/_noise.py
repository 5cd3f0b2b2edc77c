"""Point-to-point noise of normalised spectra: the estimator, the presets, the scan model.

The estimator
-------------
:func:`estimate_noise` measures the noise of a normalised spectrum in the EXAFS
region without a model of the signal.  Over every run of ``order + 1``
consecutive points it takes the divided difference of that ``order`` in k
(the combination that is exactly zero for any polynomial of lower degree, on
any grid), scaled to unit norm, so that for white noise of standard deviation
sigma each value has standard deviation sigma.  A smooth signal leaves almost
nothing: on the real references the estimate stops changing from order 6 up
(order 2 still leaks the EXAFS of the Cu foil: a median-based 2.6e-3 at k 3-6
A^-1 where order 6 gives 2e-4), so order 6 is the default.

The measured numbers (order 6, k >= 3 A^-1, each file normalised with
``operando.normalize``; ``rms`` is the root mean square over the region,
``median`` the median-based robust value) are in :data:`MEASURED_NOISE`.  The
one real QEXAFS scan, Ru foil from NSLS-II QAS (30 s, dk = 0.04 A^-1 bins,
edge step 0.87), has rms 1.1e-3 at k 3-5, 8.3e-4 at 5-7, 5.7e-4 at 7-9, 5.3e-4
at 9-11, 3.5e-4 at 11-13, 1.7e-4 at 13-15 and 1.1e-4 above 15 A^-1: its noise
per point *falls* with k (by ~10x), unlike a counting model with a constant
time per point; the step-scan references have 1-3e-4.  ``noise="qexafs"``
is that scan's rms.

The scan model
--------------
``noise`` everywhere in :mod:`operando.mixtures` is a standard deviation of
normalised mu (edge-step units) per point, as the root mean square over the
grid points with k >= 3 A^-1 (the region :func:`estimate_noise` measures).
Two shapes are offered (``noise_model``):

``"counting"``
    Transmission counting statistics with a constant time per point: with
    N0(E) = flux * i0_shape(E) photons in i0 and Nt = N0 exp(-mu) in itrans,
    var(mu) = 1/N0 + 1/Nt = (1 + exp(mu)) / N0.  The noise therefore grows with
    the total absorbance (largest on the white line of a thick sample) and as
    i0 falls with energy.  ``flux`` is chosen per scan so that the requested
    level holds for that scan.  The reference channel ln(it/iref) gets
    var = (1 + exp(mu_ref)) / Nt from the same counts.
``"white"``
    The same standard deviation at every point, sample and reference channel
    alike (reference in its own edge-step units).
"""

from __future__ import annotations

import numpy as np

from operando._util.larch_compat import ETOK
from operando.errors import ConfigError, DataError

#: Median of a chi-square variable with one degree of freedom (robust variance).
_CHI2_1_MEDIAN = 0.45493642311957283

#: Noise measured on the real files in /work/shared/data (see the module docstring),
#: edge-step units per point over k >= 3 A^-1: (rms, median-based, k step of the file).
MEASURED_NOISE = {
    "ru_k_foil_qas_nsls2 (QEXAFS, 30 s)": (6.5e-4, 5.1e-4, 0.04),
    "cu_foil_rt": (2.4e-4, 1.4e-4, 0.05),
    "cuo_tenorite_13K": (1.0e-4, 0.7e-4, 0.035),
    "fe_foil_rt_2016foils": (1.7e-4, 1.2e-4, 0.05),
    "feo_rt_01": (2.8e-4, 0.8e-4, 0.05),
    "fe2o3_rt_01": (1.4e-4, 0.9e-4, 0.05),
    "fe3o4_rt_01": (2.8e-4, 2.9e-4, 0.05),
    "pt_foil_rt": (1.7e-4, 1.6e-4, 0.05),
}

#: Named noise levels (edge-step units per point, rms over k >= 3 A^-1).
#: ``qexafs``: the real 30 s QAS scan; ``step_scan``: a good step-scan reference
#: (the median of the reference files); ``operando``: "0.3 %" of the issues, a
#: dilute sample in a cell (edge step ~0.2 at the flux of the QAS foil scan).
NOISE_PRESETS = {"qexafs": 6.5e-4, "step_scan": 1.7e-4, "operando": 3.0e-3}

NOISE_MODELS = ("counting", "white")


def resolve_noise(noise) -> float:
    """A noise level (float >= 0) from a number or a :data:`NOISE_PRESETS` name."""
    if isinstance(noise, str) and noise in NOISE_PRESETS:
        return NOISE_PRESETS[noise]
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)):
        raise ConfigError(f"noise must be a number >= 0 or one of {sorted(NOISE_PRESETS)}, "
                          f"got {noise!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ConfigError(f"noise must be a finite number >= 0 (edge-step units), got {noise!r}")
    return float(noise)


def noise_residuals(energy, norm, e0: float, *, kmin: float = 3.0, kmax: float | None = None,
                    order: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm divided differences of ``norm`` in k (see the module docstring).

    Parameters
    ----------
    energy : (n_e,) array
        Energy, eV, increasing.
    norm : (n_e,) or (m, n_e) array
        Normalised mu (edge-step units).
    e0 : float
        Edge energy defining k, eV.
    kmin, kmax : float
        k range, A^-1: only runs of points that lie entirely inside it are used.
    order : int
        Order of the difference (2..12).

    Returns
    -------
    k : (n_r,) array
        k at the centre of each run, A^-1.
    residual : (n_r,) or (m, n_r) array
        Values whose standard deviation equals the white-noise sigma per point.
    """
    if not (2 <= int(order) <= 12):
        raise ConfigError(f"order must be between 2 and 12, got {order!r}")
    order = int(order)
    energy = np.asarray(energy, dtype=float)
    y = np.asarray(norm, dtype=float)
    k = np.sqrt(np.clip(energy - e0, 0.0, None) * ETOK)
    inside = (energy > e0) & (k >= kmin) & (k <= (np.inf if kmax is None else kmax))
    idx = np.flatnonzero(inside)
    if idx.size < order + 20:
        raise DataError(f"noise estimate needs at least {order + 20} points with k in "
                        f"[{kmin}, {kmax if kmax is not None else 'end'}] A^-1 above e0 = "
                        f"{e0:.1f} eV; there are {idx.size}")
    windows = np.lib.stride_tricks.sliding_window_view(idx, order + 1)
    windows = windows[np.all(np.diff(windows, axis=1) == 1, axis=1)]
    kw = k[windows]                                          # (n_r, order+1)
    diff = kw[:, :, None] - kw[:, None, :]
    diff[:, np.arange(order + 1), np.arange(order + 1)] = 1.0
    # scale k per run first: the products of small differences underflow otherwise
    span = (kw[:, -1] - kw[:, 0])[:, None, None]
    weights = 1.0 / np.prod(diff / span, axis=2)
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    residual = np.einsum("rj,...rj->...r", weights, y[..., windows])
    return kw[:, order // 2], residual


def estimate_noise(energy, norm, e0: float, *, kmin: float = 3.0, kmax: float | None = None,
                   order: int = 6, statistic: str = "rms"):
    """Point-to-point noise of normalised mu in the EXAFS region, edge-step units.

    Parameters
    ----------
    energy, norm, e0, kmin, kmax, order
        As :func:`noise_residuals`.
    statistic : {"rms", "median"}
        ``"rms"``: root mean square (unbiased for white noise, the meaning of
        ``noise`` in :func:`operando.mixtures.mix_series`); ``"median"``: from the
        median of the squares (robust to glitches; below the rms when the noise
        varies along the spectrum).

    Returns
    -------
    float or (m,) array
        One value per spectrum.
    """
    if statistic not in ("rms", "median"):
        raise ConfigError(f"statistic must be 'rms' or 'median', got {statistic!r}")
    _, r = noise_residuals(energy, norm, e0, kmin=kmin, kmax=kmax, order=order)
    if statistic == "rms":
        return np.sqrt(np.mean(r * r, axis=-1))
    return np.sqrt(np.median(r * r, axis=-1) / _CHI2_1_MEDIAN)


def noise_sigma(mu, i0_shape, edge_step, in_region, noise: float, model: str):
    """Per-point standard deviation of mu for each scan, and the i0 flux.

    Parameters
    ----------
    mu : (n, n_e) array
        Noise-free absorbance of every scan.
    i0_shape : (n, n_e) array
        Relative i0 of every scan (1 at E0).
    edge_step : (n,) array
        Edge step of every scan, mu units.
    in_region : (n_e,) bool array
        Points over which the requested level is the rms (k >= 3 A^-1).
    noise : float
        Requested level, edge-step units.
    model : {"counting", "white"}
        As checked by :func:`~operando.mixtures.mix_series`, the one caller.

    Returns
    -------
    sigma : (n, n_e) array
        Standard deviation of mu per point (mu units).
    flux : (n,) array
        Photons per point in i0 at E0 (``inf`` for ``noise == 0``); for the
        white model the flux that the counting model would need for the same
        level, so that the written i0 has a plausible size.
    """
    relative = (1.0 + np.exp(mu)) / i0_shape            # var(mu) * flux
    mean_relative = relative[:, in_region].mean(axis=1)
    with np.errstate(divide="ignore"):
        flux = mean_relative / (noise * edge_step) ** 2
    if model == "counting":
        sigma = np.sqrt(relative / flux[:, None])
    else:
        sigma = np.broadcast_to((noise * edge_step)[:, None], mu.shape).copy()
    return sigma, flux
