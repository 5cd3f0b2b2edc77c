"""Simulated series, foil and truth table of a spec, and the noise-free parts of one spectrum."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..series import Series
from .edge import StateModel, energy_grid, model_parts, model_rows, wavenumber
from .spec import SeriesSpec, as_spec

#: Rows simulated at a time (bounds temporary memory; results do not depend on it).
_CHUNK = 2048


# ------------------------------------------------------------ simulation
def _experiment(spec: SeriesSpec, n: int):
    """Per-scan drift (eV), edge-step and pre-edge-offset factors from ``drift_seed``."""
    rng = np.random.default_rng(spec.drift_seed)
    eps = rng.standard_normal(n)
    # AR(1) about drift_mean: s_0 ~ N(0, sd^2), s_i = phi s_(i-1) + sd sqrt(1 - phi^2) eps_i.
    phi = spec.drift_corr
    shift = np.zeros(n)
    if n:
        from scipy.signal import lfilter

        shift[0] = spec.drift_sd * eps[0]
        innovation = spec.drift_sd * math.sqrt(1.0 - phi * phi)
        shift[1:] = lfilter([innovation], [1.0, -phi], eps[1:], zi=[phi * shift[0]])[0]
        shift += spec.drift_mean
    jitter = rng.standard_normal((2, n)) * spec.step_jitter
    return shift, 1.0 + jitter[0], 1.0 + jitter[1]


def _grid(spec: SeriesSpec) -> np.ndarray:
    return energy_grid(spec.e0_tabulated, kmax=spec.kmax)


def _times(spec: SeriesSpec) -> np.ndarray:
    times, t = [], 0.0
    for i, segment in enumerate(spec.segments):
        if i:
            t += spec.settle_time_s
        for _ in range(segment.repeats):
            times.append(t)
            t += spec.scan_time_s
    return np.array(times)


def _states(spec: SeriesSpec) -> tuple[list[StateModel], StateModel]:
    kmax = spec.kmax + 1.0
    key = (spec.name, spec.element, spec.edge, spec.s02, spec.edge_model, spec.foil,
           spec.ligand_shells, spec.e0, kmax, spec.reference_edge_step,
           spec.reference_pre_offset, spec.reference_pre_slope)
    states = [_cached_state(key, spec, seg.shells) for seg in spec.segments]
    foil = _cached_state(key, spec, (spec.foil,))
    base = _edge_origin(key, spec, foil)
    for state in (*states, foil):
        state.e0 = base + state.chem_shift
    return states, foil


_ORIGIN_CACHE: dict = {}


def _edge_origin(key, spec: SeriesSpec, foil: StateModel) -> float:
    """Arctangent centre (eV) of an unligated site such that the noise-free foil's
    maximum-derivative point sits exactly at the tabulated edge energy."""
    if key in _ORIGIN_CACHE:
        return _ORIGIN_CACHE[key]
    target = spec.e0_tabulated
    base = target
    for _ in range(3):
        foil.e0 = base + foil.chem_shift
        e = target + np.arange(-10.0, 10.0, 0.002)
        mu = model_rows(spec, e, [foil], np.zeros(1, dtype=int), np.zeros(1),
                        np.array([spec.reference_edge_step]), np.array([spec.reference_pre_offset]),
                        spec.reference_pre_slope)[0]
        deriv = np.gradient(mu, e)
        i = int(np.argmax(deriv))
        # parabola through the three points around the maximum
        y0, y1, y2 = deriv[i - 1], deriv[i], deriv[i + 1]
        vertex = e[i] + 0.5 * 0.002 * (y0 - y2) / (y0 - 2 * y1 + y2)
        base -= vertex - target
    _ORIGIN_CACHE[key] = base
    return base


_STATE_CACHE: dict = {}


def _cached_state(key, spec, shells) -> StateModel:
    full = (key, tuple(shells))
    if full not in _STATE_CACHE:
        if len(_STATE_CACHE) > 256:
            _STATE_CACHE.clear()
        _STATE_CACHE[full] = StateModel(spec, shells, spec.kmax + 1.0)
    return _STATE_CACHE[full]


def _white_line_truth(spec: SeriesSpec, state: StateModel) -> tuple[float, float, float]:
    """From the noise-free normalised spectrum: white-line peak height, its
    position (eV) and the edge position (maximum derivative, eV), true scale."""
    e = state.e0 + np.arange(-15.0, 30.0, 0.005)
    mu0, chi, _ = model_parts(spec, e, [state], np.zeros(1, dtype=int), np.zeros(1))
    norm = (mu0 * (1.0 + chi))[0]
    i = int(np.argmax(norm))
    j = int(np.argmax(np.gradient(norm, e)))
    return float(norm[i]), float(e[i]), float(e[j])


def truth_table(spec: SeriesSpec | Mapping, *, seed: int = 0) -> pd.DataFrame:
    """The per-step truth table of a spec (no spectra are made).

    Columns: ``step, file, <condition columns>, time_s, segment, state``, then
    per shell S ``cn_S, r_S, sigma2_S, de0_S`` (r, sigma2 and de0 are NaN where
    cn is 0), then ``s02, e0_true`` (eV, true edge: tabulated + chemical
    shift; the origin of k and de0), ``chem_shift`` (eV), ``edge_step``,
    ``energy_shift`` (eV, miscalibration added to the recorded energy axis),
    ``wl_amplitude`` (white-line amplitude parameter, edge-step units),
    ``wl_height_true`` (peak of the noise-free normalised spectrum),
    ``wl_position_true`` (eV, true energy scale; appears at + energy_shift),
    ``edge_position_true`` (eV, maximum derivative of the noise-free
    normalised spectrum, true scale),
    ``noise`` (fraction of the edge step), ``noise_sigma`` (absolute, mu
    units), ``seed`` (noise seed), ``drift_seed``.
    """
    spec = as_spec(spec)
    n = spec.n_steps
    states, _ = _states(spec)
    shift, step_factor, _ = _experiment(spec, n)
    seg_idx = np.repeat(np.arange(len(spec.segments)), [s.repeats for s in spec.segments])
    rows: dict[str, Any] = {
        "step": np.arange(n),
        "file": [spec.file_pattern.format(step=i) for i in range(n)],
    }
    for col in spec.condition_columns:
        values = [spec.segments[i].conditions[col] for i in seg_idx]
        rows[col] = pd.Series(values, dtype=object if _mixed(values) else None)
    rows["time_s"] = _times(spec)
    rows["segment"] = seg_idx
    rows["state"] = [spec.segments[i].state for i in seg_idx]
    for label in spec.shell_labels:
        per_seg = []
        for segment in spec.segments:
            s = segment.shell(label)
            if s is None or s.cn <= 0:
                per_seg.append((0.0, np.nan, np.nan, np.nan))
            else:
                per_seg.append((s.cn, s.r, s.sigma2, s.de0))
        arr = np.array(per_seg, dtype=float)[seg_idx]
        for j, name in enumerate(("cn", "r", "sigma2", "de0")):
            rows[f"{name}_{label}"] = arr[:, j]
    wl = [_white_line_truth(spec, st) for st in states]
    rows["s02"] = np.full(n, spec.s02)
    rows["e0_true"] = np.array([states[i].e0 for i in seg_idx])
    rows["chem_shift"] = np.array([states[i].chem_shift for i in seg_idx])
    rows["edge_step"] = spec.edge_step * step_factor
    rows["energy_shift"] = shift
    rows["wl_amplitude"] = np.array([states[i].wl_amplitude for i in seg_idx])
    rows["wl_height_true"] = np.array([wl[i][0] for i in seg_idx])
    rows["wl_position_true"] = np.array([wl[i][1] for i in seg_idx])
    rows["edge_position_true"] = np.array([wl[i][2] for i in seg_idx])
    rows["noise"] = np.full(n, spec.noise)
    rows["noise_sigma"] = spec.noise * rows["edge_step"]
    rows["seed"] = np.full(n, int(seed))
    rows["drift_seed"] = np.full(n, int(spec.drift_seed))
    return pd.DataFrame(rows)


def _mixed(values) -> bool:
    return any(isinstance(v, str) for v in values) and not all(isinstance(v, str) for v in values)


def simulate_series(spec: SeriesSpec | Mapping, *, seed: int = 0, noise: bool = True,
                    drift: bool = True, reference: bool = True) -> tuple[Series, pd.DataFrame]:
    """Simulate a series of transmission spectra and its truth table.

    Parameters
    ----------
    spec : SeriesSpec or dict
        The series (e.g. :data:`PT_CO_OXIDATION`, ``CU_NC_POTENTIAL.scaled(100_000)``).
    seed : int
        Noise seed (``numpy.random.default_rng(seed)``).  The truth --
        including the per-scan energy drift -- depends on ``spec.drift_seed``
        only.
    noise : bool
        False: noise-free spectra (the truth's ``noise`` columns become 0).
    drift : bool
        False: no energy miscalibration and no edge-step / pre-edge jitter
        (``energy_shift`` 0 and ``edge_step`` nominal in the truth).
    reference : bool
        Whether to simulate the foil reference channel (False halves the work).

    Returns
    -------
    series : Series
        ``mu`` and ``reference`` (n, n_energy) on :func:`energy_grid`;
        ``conditions`` with ``step, file, <condition columns>, time_s``.
    truth : DataFrame
        See :func:`truth_table`.
    """
    spec = as_spec(spec)
    energy = _grid(spec)
    truth = truth_table(spec, seed=seed)
    n = len(truth)
    if not drift:
        truth["energy_shift"] = 0.0
        truth["edge_step"] = spec.edge_step
        truth["noise_sigma"] = spec.noise * spec.edge_step
    if not noise:
        truth["noise"] = 0.0
        truth["noise_sigma"] = 0.0
    _, step_factor, offset_factor = _experiment(spec, n)
    if not drift:
        offset_factor = np.ones(n)
    states, foil = _states(spec)
    state_idx = truth["segment"].to_numpy()
    shift = truth["energy_shift"].to_numpy(dtype=float)
    step = truth["edge_step"].to_numpy(dtype=float)
    offset = spec.pre_offset * offset_factor
    rng_mu, rng_ref = np.random.default_rng(seed).spawn(2)

    mu = np.empty((n, energy.size))
    ref = np.empty((n, energy.size)) if reference else None
    ref_step = np.full(n, spec.reference_edge_step)
    ref_offset = np.full(n, spec.reference_pre_offset)
    foil_idx = np.zeros(n, dtype=int)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        sl = slice(lo, hi)
        mu[sl] = model_rows(spec, energy, states, state_idx[sl], shift[sl], step[sl], offset[sl],
                            spec.pre_slope)
        if noise and spec.noise > 0:
            mu[sl] += rng_mu.standard_normal((hi - lo, energy.size)) * (spec.noise * step[sl])[:, None]
        if reference:
            ref[sl] = model_rows(spec, energy, [foil], foil_idx[sl], shift[sl], ref_step[sl],
                                 ref_offset[sl], spec.reference_pre_slope)
            if noise and spec.reference_noise > 0:
                ref[sl] += (rng_ref.standard_normal((hi - lo, energy.size))
                            * spec.reference_noise * spec.reference_edge_step)

    conditions = truth[["step", "file", *spec.condition_columns, "time_s"]].copy()
    series = Series(
        energy=energy, mu=mu, conditions=conditions, element=spec.element, edge=spec.edge,
        reference=ref,
        metadata={"source": f"operando.simulate:{spec.name}", "format": "simulated",
                  "mu_from": "transmission", "interpolated": False, "spec": spec.name,
                  "seed": int(seed), "drift_seed": int(spec.drift_seed), "noise": bool(noise),
                  "drift": bool(drift), "e0_tabulated": spec.e0_tabulated,
                  "description": spec.description},
    )
    return series, truth


def simulate_foil(spec: SeriesSpec | Mapping, *, seed: int = 0, noise: bool = True
                  ) -> tuple[Series, pd.DataFrame]:
    """The standalone metal-foil reference of a series (no miscalibration).

    Bulk fcc metal, ``spec.foil`` shell (CN 12) with ``spec.s02``; edge step
    ``reference_edge_step``, noise ``reference_noise`` of it.  The noise is
    drawn from the third child of ``numpy.random.default_rng(seed)``.

    Returns
    -------
    series : Series
        One spectrum, ``file`` = ``spec.foil_file``, no reference channel.
    truth : DataFrame
        One row: ``file, cn_S, r_S, sigma2_S, de0_S, s02, e0_true, edge_step,
        energy_shift (0), noise, noise_sigma, seed``.
    """
    spec = as_spec(spec)
    energy = _grid(spec)
    _, foil = _states(spec)
    one = np.ones(1)
    mu = model_rows(spec, energy, [foil], np.zeros(1, dtype=int), np.zeros(1),
                    spec.reference_edge_step * one, spec.reference_pre_offset * one,
                    spec.reference_pre_slope)
    rng = np.random.default_rng(seed).spawn(3)[2]
    sigma = spec.reference_noise * spec.reference_edge_step if noise else 0.0
    if sigma:
        mu = mu + rng.standard_normal(mu.shape) * sigma
    s = spec.foil
    truth = pd.DataFrame([{
        "file": spec.foil_file, f"cn_{s.label}": s.cn, f"r_{s.label}": s.r,
        f"sigma2_{s.label}": s.sigma2, f"de0_{s.label}": s.de0, "s02": spec.s02,
        "e0_true": foil.e0, "edge_step": spec.reference_edge_step, "energy_shift": 0.0,
        "noise": spec.reference_noise if noise else 0.0, "noise_sigma": sigma, "seed": int(seed),
    }])
    conditions = pd.DataFrame({"step": [0], "file": [spec.foil_file]})
    series = Series(energy=energy, mu=mu, conditions=conditions, element=spec.element,
                    edge=spec.edge, metadata={"source": f"operando.simulate:{spec.name}:foil",
                                              "format": "simulated", "mu_from": "transmission",
                                              "interpolated": False, "seed": int(seed)})
    return series, truth


def model_spectrum(spec: SeriesSpec | Mapping, segment: int | None, *, energy: np.ndarray | None = None,
                   energy_shift: float = 0.0) -> dict[str, np.ndarray]:
    """The noise-free parts of one spectrum, for checks and plots.

    Parameters
    ----------
    spec : SeriesSpec or dict
    segment : int or None
        Segment index; None for the metal foil.
    energy : array, optional
        Recorded energies (eV); default the series grid.
    energy_shift : float
        Miscalibration, eV.

    Returns
    -------
    dict
        ``energy``, ``k`` (A^-1 from ``e0_true``, 0 below it), ``pre_edge``
        (mu units, nominal edge step and offset), ``mu0`` (edge + white line
        + post-edge decay, edge-step units), ``chi`` (tapered, as applied),
        ``chi_untapered`` and ``mu``.
    """
    spec = as_spec(spec)
    energy = _grid(spec) if energy is None else np.asarray(energy, dtype=float)
    states, foil = _states(spec)
    if segment is None:
        state, step, offset, slope = foil, spec.reference_edge_step, spec.reference_pre_offset, \
            spec.reference_pre_slope
    else:
        state, step, offset, slope = states[segment], spec.edge_step, spec.pre_offset, spec.pre_slope
    mu0, chi, raw = model_parts(spec, energy, [state], np.zeros(1, dtype=int),
                                np.array([float(energy_shift)]))
    mu0, chi, raw = mu0[0], chi[0], raw[0]
    e_true = energy - energy_shift
    k = wavenumber(e_true - state.e0)
    pre = offset + slope * (e_true - spec.e0_tabulated)
    return {"energy": energy, "k": k, "pre_edge": pre, "mu0": mu0, "chi": chi,
            "chi_untapered": raw, "mu": pre + step * mu0 * (1.0 + chi)}
