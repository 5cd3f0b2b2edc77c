"""Wavelet-transform EXAFS (operando.exafs.wavelet) against xraylarch and on real spectra.

The Cauchy transform is compared with ``larch.xafs.cauchy_wavelet`` on the same chi(k)
(the real Cu foil through operando.normalize + remove_background, and a step of the
bundled Cu sample series); the Morlet transform with a direct numerical integral of its
definition.  The maps of the real Cu foil and CuO are checked for where their lobes sit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.ndimage import maximum_filter

import operando as op
from operando.errors import ConfigError, DataError
from operando.exafs.wavelet import (cauchy_wavelet, lobe_positions, morlet_wavelet, shell_windows,
                                    wavelet_transform)


def _chi(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.OperandoWarning)
        series = op.read_series(path, **kwargs)
    return op.remove_background(op.normalize(series))


@pytest.fixture(scope="module")
def cu_foil(shared_data):
    return _chi(shared_data / "references" / "cu_foil_rt.xdi")


@pytest.fixture(scope="module")
def cuo(shared_data):
    return _chi(shared_data / "references" / "cuo_tenorite_13K.xdi")


@pytest.fixture(scope="module")
def cu_sample(samples):
    folder = samples / "cu_nc_potential"
    return _chi(folder / "cu_nc_potential.dat", conditions=folder / "conditions.csv",
                element="Cu", edge="K")


def _larch(k, chi, **kwargs):
    from larch import Group
    from larch.xafs import cauchy_wavelet as larch_cauchy

    group = Group()
    larch_cauchy(k, chi, group=group, **kwargs)
    return group


@pytest.mark.parametrize("kweight", [0, 2, 3])
def test_cauchy_equals_larch_on_the_real_cu_foil(cu_foil, kweight):
    """Same grid, same filter, same FFTs: equal to Larch's to floating point (1e-12 of
    the largest modulus; the operations are the same, only batched)."""
    g = _larch(cu_foil.k, cu_foil.chi[0], kweight=kweight)
    r, wt = cauchy_wavelet(cu_foil.k, cu_foil.chi[0], kweight=kweight)
    assert wt.shape == g.wcauchy.shape
    np.testing.assert_array_equal(r, g.wcauchy_r)
    scale = np.abs(g.wcauchy).max()
    np.testing.assert_allclose(wt, g.wcauchy, rtol=0, atol=1e-12 * scale)


def test_cauchy_batched_equals_larch_per_step_on_sample_steps(cu_sample):
    """A batch of steps (one FFT per chunk of rows) gives each step's Larch transform."""
    rows = [0, 9, 20]
    r, wt = cauchy_wavelet(cu_sample.k, cu_sample.chi[rows], kweight=2, rmax_out=6)
    assert wt.shape[0] == 3
    for j, i in enumerate(rows):
        g = _larch(cu_sample.k, cu_sample.chi[i], kweight=2, rmax_out=6)
        np.testing.assert_allclose(wt[j], g.wcauchy, rtol=0, atol=1e-12 * np.abs(g.wcauchy).max())


def test_morlet_equals_its_defining_integral():
    """The Fourier-space Morlet equals the direct integral sqrt(a) sum chi(k')
    conj(psi(a (k' - k))) dk' at a few (k, r); tolerance 1e-6 of the modulus: the
    Riemann sum of a smooth integrand on the 0.05 grid versus the exact transform."""
    k = 0.05 * np.arange(300)
    chi = np.sin(2 * 2.5 * k + 0.3) * np.exp(-0.005 * k ** 2) * (k > 2)
    eta, sigma = 10.0, 1.0
    r, wt = morlet_wavelet(k, chi, kweight=2, eta=eta, sigma=sigma, rmax_out=5)
    y = chi * k ** 2
    for ri in (40, 81, 120):
        for ki in (60, 150, 240):
            a = 2 * r[ri] / eta
            t = a * (k - k[ki])
            psi = np.exp(1j * eta * t) * np.exp(-t ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
            direct = np.sqrt(a) * np.sum(y * np.conj(psi)) * 0.05
            assert abs(wt[ri, ki] - direct) < 1e-6 * np.abs(wt).max()


def test_a_single_sine_puts_its_lobe_at_its_distance():
    """chi = sin(2 k R) with R = 2.5 A: both wavelets peak at r = 2.5 A (within one grid
    step of R, 0.03 A)."""
    k = 0.05 * np.arange(320)
    chi = np.sin(2 * 2.5 * k) * ((k > 3) & (k < 13))
    for method in ("cauchy", "morlet"):
        w = wavelet_transform(k, chi[None, :], method=method, kweight=0, rmax_out=5)
        lobes = w.lobes({"all": (1.0, 4.0)})
        assert lobes["r"].iloc[0] == pytest.approx(2.5, abs=0.035)


def _peaks(w, rlo, rhi, klo=3.0, khi=12.0, level=0.25):
    """Local maxima of the modulus above ``level`` of the largest, in the R/k box."""
    mod = w.modulus[0]
    box = (w.r[:, None] >= rlo) & (w.r[:, None] <= rhi) & (w.k[None, :] >= klo) & (w.k[None, :] <= khi)
    m = np.where(box, mod, 0.0)
    peaks = (m == maximum_filter(m, size=9)) & (m > level * m.max())
    return [(w.r[a], w.k[b]) for a, b in zip(*np.nonzero(peaks))]


@pytest.mark.parametrize("method", ["cauchy", "morlet"])
def test_cu_foil_has_one_cu_lobe_and_cuo_an_o_lobe_at_lower_k(cu_foil, cuo, method):
    """Physics of the maps (k^2, k 3-12): the Cu foil's first-shell region (R 1-3 A) holds
    one lobe, Cu-Cu near R 2.2 A (2.556 A less the phase shift) at k 6.5-8.5; CuO has an
    O lobe near R 1.5 A (Cu-O 1.95 A) at low k and a Cu lobe near R 3 A (Cu-Cu 2.9-3.1
    A) at high k, the O lobe at least 2 1/A lower in k than either Cu lobe."""
    w_foil = wavelet_transform(cu_foil, method=method, kmin=3, kmax=12, rmax_out=4)
    w_cuo = wavelet_transform(cuo, method=method, kmin=3, kmax=12, rmax_out=4)
    peaks = _peaks(w_foil, 1.0, 3.0)
    assert len(peaks) == 1
    (r_cu, k_cu), = peaks
    assert 2.0 < r_cu < 2.5 and 6.5 < k_cu < 8.5
    lobes = w_cuo.lobes({"O": (1.2, 1.9), "Cu": (2.8, 3.3)}).set_index("shell")
    assert 1.3 < lobes.loc["O", "r"] < 1.8
    assert lobes.loc["O", "k"] < 6.5 and lobes.loc["Cu", "k"] > 8.5
    assert lobes.loc["O", "k"] < k_cu - 1.0
    assert lobes.loc["O", "k"] < lobes.loc["Cu", "k"] - 2.0


def test_segment_average_is_the_transform_of_the_mean_chi(cu_sample):
    """Grouped maps are the transform of the mean chi(k) of each group's finite rows
    (the transform is linear: equal to the mean of the per-step transforms)."""
    groups = np.repeat(np.arange(9), 3)[: len(cu_sample)]
    per_step = wavelet_transform(cu_sample, kmin=3, kmax=11, rmax_out=4)
    grouped = wavelet_transform(cu_sample, kmin=3, kmax=11, rmax_out=4, groups=groups)
    assert grouped.labels == list(range(9)) and list(grouped.n_steps) == [3] * 9
    assert per_step.labels == list(cu_sample.steps)
    np.testing.assert_allclose(grouped.wt[1], per_step.wt[3:6].mean(axis=0), atol=1e-12)


def test_shell_windows_and_bad_input():
    win = shell_windows(["Cu-N", "Cu-Cu"])
    lo_n, hi_n = win["Cu-N"]
    lo_cu, hi_cu = win["Cu-Cu"]
    assert lo_n < 1.6 < hi_n <= lo_cu < 2.2 < hi_cu  # no overlap; each holds its first peak
    k = 0.05 * np.arange(200)
    with pytest.raises(DataError, match="must start at 0"):
        cauchy_wavelet(k + 1.0, np.zeros(200))
    with pytest.raises(ConfigError, match="accepted: cauchy, morlet"):
        wavelet_transform(k, np.zeros((1, 200)), method="haar")
    with pytest.raises(ConfigError, match="both kmin and kmax"):
        wavelet_transform(k, np.zeros((1, 200)), kmin=3)
    with pytest.raises(DataError, match="no distance known"):
        shell_windows(["Xx-Yy"])
    w = wavelet_transform(k, np.full((1, 200), np.nan))
    assert w.n_steps[0] == 0 and lobe_positions(w, {"a": (1, 2)})["k"].isna().all()
