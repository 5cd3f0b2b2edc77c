"""The spectrum model: energy grid, arctangent edge, white line, post-edge decay, chi.

Noise-free absorption of many rows (scans) at once; see the package docstring
for the model and its parameters.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .._util.larch_compat import ETOK
from .chi import CHI_TAPER, chi_taper, shell_chi
from .spec import SeriesSpec, Shell

#: k step (A^-1) of the table chi is computed on before cubic interpolation
#: (interpolation error < 1e-8 for first shells).
_CHI_TABLE_STEP = 0.01


# ------------------------------------------------------------ energy grid
def energy_grid(e0: float, *, pre_start: float = -200.0, pre_stop: float = -30.0,
                pre_step: float = 10.0, xanes_stop: float = 40.0, xanes_step: float = 0.4,
                kstep: float = 0.05, kmax: float = 15.0) -> np.ndarray:
    """A beamline-like step-scan energy grid.

    Parameters
    ----------
    e0 : float
        Edge energy, eV.
    pre_start, pre_stop, pre_step : float
        Pre-edge region relative to e0 (eV): ``pre_start`` up to but not
        including ``pre_stop``, in ``pre_step`` steps.
    xanes_stop, xanes_step : float
        Edge region from ``pre_stop`` up to but not including ``xanes_stop``
        (eV above e0) in ``xanes_step`` steps.
    kstep, kmax : float
        EXAFS region in constant k steps (A^-1), from the first multiple of
        ``kstep`` at or above ``xanes_stop`` up to ``kmax`` inclusive.

    Returns
    -------
    (n,) array
        Strictly increasing energies in eV.
    """
    n_pre = int(round((pre_stop - pre_start) / pre_step))
    pre = pre_start + pre_step * np.arange(n_pre)
    n_xanes = int(round((xanes_stop - pre_stop) / xanes_step))
    xanes = pre_stop + xanes_step * np.arange(n_xanes)
    i_first = int(math.ceil(math.sqrt(xanes_stop * ETOK) / kstep - 1e-9))
    i_last = int(math.floor(kmax / kstep + 1e-9))
    k = kstep * np.arange(i_first, i_last + 1)
    return e0 + np.concatenate([pre, xanes, k * k / ETOK])


# ------------------------------------------------------------ model parts
class StateModel:
    """Per-state (segment or foil) constants: edge position, white line, chi table."""

    def __init__(self, spec: SeriesSpec, shells: Sequence[Shell], kmax: float):
        from scipy.interpolate import CubicSpline

        model = spec.edge_model
        n_lig = sum(s.cn for s in shells if s.label in spec.ligand_shells)
        oxidation = min(n_lig / model.ligand_cn_max, 1.0) if model.ligand_cn_max > 0 else 0.0
        self.chem_shift = model.edge_shift_oxidised * oxidation
        # provisional; the series module puts the unligated edge where the foil's inflection
        # point lands on the tabulated energy
        self.e0 = spec.e0_tabulated + self.chem_shift
        self.wl_amplitude = model.wl_base + model.wl_per_ligand * n_lig
        self.shells = tuple(shells)
        k_table = _CHI_TABLE_STEP * np.arange(int(math.ceil((kmax + 1.0) / _CHI_TABLE_STEP)) + 1)
        chi = shell_chi(shells, k_table, s02=spec.s02, edge=spec.edge)
        self.has_chi = bool(np.any(chi))
        self.k_table = k_table
        # cubic-spline coefficients, highest power first: evaluated by direct
        # indexing on the uniform table (much faster than a searchsorted lookup)
        self.coefs = CubicSpline(k_table, chi).c if self.has_chi else None

    def chi(self, k: np.ndarray) -> np.ndarray:
        """Untapered chi at k (A^-1), from the spline of the ff2chi table."""
        if not self.has_chi:
            return np.zeros_like(k)
        n = self.k_table.size
        i = np.clip((k * (1.0 / _CHI_TABLE_STEP)).astype(np.intp), 0, n - 2)
        t = np.minimum(k, self.k_table[-1]) - self.k_table[i]
        c = self.coefs
        return c[3, i] + t * (c[2, i] + t * (c[1, i] + t * c[0, i]))


def wavenumber(x: np.ndarray) -> np.ndarray:
    """Photoelectron wavenumber k (A^-1) at x eV above the edge; 0 at and below it."""
    return np.sqrt(np.maximum(x, 0.0) * ETOK)


#: |2 x / core_width| beyond which arctan is evaluated by its asymptotic series
#: (truncation error < 1e-16).
_ATAN_SERIES = 50.0


def _columns(xlo: np.ndarray, xhi: np.ndarray, lo: float, hi: float) -> slice:
    """Contiguous columns whose x range [xlo, xhi] meets [lo, hi] (x increases with column)."""
    idx = np.flatnonzero((xhi >= lo) & (xlo <= hi))
    return slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)


def model_parts(spec: SeriesSpec, energy: np.ndarray, states: Sequence[StateModel],
                state_idx: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free model parts for m rows on the recorded energies (n,).

    Returns ``mu0`` (edge + white line + post-edge decay, edge-step units),
    ``chi`` as applied (tapered) and ``chi_raw`` (untapered; 0 below e0), each (m, n).
    The expensive functions are evaluated only on the columns where they
    matter; elsewhere exact series are used (differences < 1e-15).
    """
    model = spec.edge_model
    e0_rows = np.array([states[i].e0 for i in state_idx])
    wl_rows = np.array([states[i].wl_amplitude for i in state_idx])
    x = energy[None, :] - (shift + e0_rows)[:, None]
    xlo = energy - np.max(shift + e0_rows)
    xhi = energy - np.min(shift + e0_rows)
    n = energy.size

    # arctangent edge: exact near the edge, asymptotic series far from it
    scale = 2.0 / model.core_width
    y = x * scale
    edge = np.empty_like(x)
    near = _columns(xlo, xhi, -_ATAN_SERIES / scale, _ATAN_SERIES / scale)
    edge[:, near] = 0.5 + np.arctan(y[:, near]) / np.pi
    for far in (slice(0, near.start), slice(near.stop, n)) if near.stop > near.start else (slice(0, n),):
        if far.stop > far.start:
            yy = y[:, far]
            inv = 1.0 / yy
            inv2 = inv * inv
            atan = np.sign(yy) * (0.5 * np.pi) - inv * (1.0 - inv2 * (1.0 / 3 - inv2 * (0.2 - inv2 / 7.0)))
            edge[:, far] = 0.5 + atan / np.pi

    # pseudo-Voigt white line: the Gaussian is below 1e-30 beyond 6 FWHM
    u = (x - model.wl_position) * (2.0 / model.wl_fwhm)
    peak = model.wl_eta / (1.0 + u * u)
    wl_cols = _columns(xlo, xhi, model.wl_position - 6 * model.wl_fwhm, model.wl_position + 6 * model.wl_fwhm)
    peak[:, wl_cols] += (1.0 - model.wl_eta) * np.exp(-math.log(2.0) * u[:, wl_cols] ** 2)
    mu0 = edge + wl_rows[:, None] * peak

    # Victoreen-like decay (e0 / (E - shift))^p = (e0 / E)^p (1 - shift / E)^-p
    p = model.victoreen_power
    base = np.exp(-p * np.log(energy / spec.e0_tabulated))
    ratio = shift[:, None] / energy[None, :]
    if np.max(np.abs(shift)) / energy[0] < 1e-3:
        c1, c2 = p, p * (p + 1) / 2
        c3, c4 = c2 * (p + 2) / 3, c2 * (p + 2) * (p + 3) / 12
        decay = 1.0 + ratio * (c1 + ratio * (c2 + ratio * (c3 + ratio * c4)))
    else:
        decay = np.exp(-p * np.log1p(-ratio))
    mu0 *= base[None, :] * decay

    # chi: above the edge only, switched on over CHI_TAPER
    chi_raw = np.zeros_like(x)
    above = _columns(xlo, xhi, 1e-12, np.inf)
    if above.stop > above.start:
        k = wavenumber(x[:, above])
        for s in np.unique(state_idx):
            if states[s].has_chi:
                rows = state_idx == s
                chi_raw[rows, above] = states[s].chi(k[rows])
    chi = chi_raw.copy()
    lo, hi = CHI_TAPER
    below = _columns(xlo, xhi, -np.inf, lo * lo / ETOK)
    ramp = _columns(xlo, xhi, lo * lo / ETOK, hi * hi / ETOK)
    chi[:, below] = 0.0
    if ramp.stop > ramp.start:
        chi[:, ramp] = chi_raw[:, ramp] * chi_taper(wavenumber(x[:, ramp]))
    return mu0, chi, chi_raw


def model_rows(spec, energy, states, state_idx, shift, step, offset, slope):
    """Noise-free mu for rows (each row: a state index, shift, edge step, pre-edge)."""
    mu0, chi, _ = model_parts(spec, energy, states, state_idx, shift)
    pre = offset[:, None] + slope * (energy[None, :] - shift[:, None] - spec.e0_tabulated)
    return pre + step[:, None] * mu0 * (1.0 + chi)
