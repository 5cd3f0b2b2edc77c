"""Mix normalised references with known fractions into raw-looking transmission scans.

Scan model
----------
For scan j with fractions f_j (summing to 1) and energy shift s_j, at the
recorded energy E (the grid of the references) the sample absorbance is ::

    mu_j(E) = pre_offset_j + pre_slope_j (E + s_j - e0) + edge_step_j * sum_i f_ji norm_i(E + s_j)

i.e. a feature at true energy T appears in the file at T - s_j, and
:func:`operando.calibrate` returns ``+s_j`` (the ``energy_shift`` of the
truth).  The reference channel is the foil through the same shift::

    mu_ref_j(E) = ref_pre_offset + ref_pre_slope (E + s_j - e0) + ref_edge_step * norm_foil(E + s_j)

The written counts are ``i0 = flux_j * i0_shape_j(E)`` with
``i0_shape_j(E) = (E / e0) ** -i0_power * (1 + i0_tilt_j (E - e0) / 1000 eV)``,
``itrans = i0 exp(-mu)``, ``irefer = itrans exp(-mu_ref)``, so that
``ln(i0/itrans)`` is the noisy mu and ``ln(itrans/irefer)`` the noisy reference
channel.  i0 is written noise-free: its counting noise is folded into mu
(see :mod:`operando.mixtures._noise` for the two noise models and the
meaning of ``noise``).

Randomness
----------
``numpy.random.SeedSequence(seed)`` spawns three independent streams: the scan
parameters (edge step, pre-edge line, i0 tilt), the energy shifts, and the
noise.  The same seed with another noise level (or ``noise=0``) therefore gives
the same truth table and the same noise pattern scaled, so a noise-free twin
of any series is one call away.  Every stream is drawn scan by scan, so the
first m scans of a longer series equal the m-scan series with the same seed
(``cu_potential_series(cycles=10)`` starts with ``cycles=1``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from operando.errors import ConfigError
from operando.series import Series

from ._noise import ETOK, NOISE_MODELS, noise_sigma, resolve_noise
from ._references import References, check_fractions

#: Photons per point in i0 at E0 written for noise-free series.
NOMINAL_FLUX = 1.0e6
#: Lowest k (A^-1) of the region over which ``noise`` is the rms.
NOISE_KMIN = 3.0
#: Truth/condition columns that a conditions table may not hold (mix_series sets them).
_RESERVED = ("step", "file", "repeat")
#: Per-scan truth columns: dropped when a truth table is passed as ``fractions``.
TRUTH_COLUMNS = ("energy_shift", "edge_step", "pre_offset", "pre_slope", "i0_flux", "i0_tilt",
                 "noise")


@dataclass(frozen=True)
class Acquisition:
    """Scan-to-scan variation of a simulated transmission measurement.

    Every ``*_jitter`` is the standard deviation of an independent Gaussian
    draw per scan.

    Attributes
    ----------
    edge_step : float
        Edge jump of the sample, mu units; ``edge_step_jitter`` relative sd
        (thickness and beam-position drift).
    pre_offset, pre_offset_jitter : float
        Pre-edge line at E0, mu units, and its sd.
    pre_slope, pre_slope_jitter : float
        Pre-edge slope, mu per eV, and its sd.
    i0_power : float
        i0 falls as (E / e0) ** -i0_power.
    i0_tilt_jitter : float
        sd of a per-scan linear tilt of i0, relative change per 1000 eV.
    reference_edge_step, reference_pre_offset, reference_pre_slope : float
        The foil in the reference channel, mu units (slope per eV).
    scan_time_s : float
        Time per scan, s: ``time_s`` of consecutive repeats.
    """

    edge_step: float = 1.0
    edge_step_jitter: float = 0.01
    pre_offset: float = 0.5
    pre_offset_jitter: float = 0.02
    pre_slope: float = -1.0e-4
    pre_slope_jitter: float = 1.0e-5
    i0_power: float = 2.0
    i0_tilt_jitter: float = 0.03
    reference_edge_step: float = 1.5
    reference_pre_offset: float = 0.3
    reference_pre_slope: float = -5.0e-5
    scan_time_s: float = 30.0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not np.isfinite(value):
                raise ConfigError(f"Acquisition.{name} must be finite, got {value!r}")
            if name.endswith("_jitter") and value < 0:
                raise ConfigError(f"Acquisition.{name} is a standard deviation, >= 0; got {value!r}")
        for name in ("edge_step", "reference_edge_step", "scan_time_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"Acquisition.{name} must be > 0, got {getattr(self, name)!r}")


def i0_shape(energy, e0: float, power: float, tilt) -> np.ndarray:
    """Relative i0 (1 at e0) for each scan: ``(n,)`` tilts -> ``(n, n_e)``."""
    energy = np.asarray(energy, dtype=float)
    tilt = np.atleast_1d(np.asarray(tilt, dtype=float))
    return (energy / e0) ** -power * (1.0 + tilt[:, None] * (energy - e0) / 1000.0)


def check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _shifts(energy_jitter, n: int, margin: float, rng) -> np.ndarray:
    if np.ndim(energy_jitter) == 0:
        sd = float(energy_jitter)
        if not (np.isfinite(sd) and 0 <= sd <= margin / 4):
            raise ConfigError(f"energy_jitter (sd, eV) must be between 0 and {margin / 4:g} "
                              f"(a quarter of the references' {margin:g} eV margin); got {sd!r}")
        return np.clip(sd * rng.standard_normal(n), -margin, margin)
    shifts = np.asarray(energy_jitter, dtype=float)
    if shifts.shape != (n,) or not np.all(np.isfinite(shifts)) or np.abs(shifts).max() > margin:
        raise ConfigError(f"energy_jitter as explicit shifts must be {n} finite values within "
                          f"+/-{margin:g} eV (the references' margin); got shape {shifts.shape}")
    return shifts


def _conditions(fractions, conditions, n_rows: int) -> pd.DataFrame:
    if conditions is None:
        if isinstance(fractions, pd.DataFrame):
            keep = [c for c in fractions.columns if not str(c).startswith(("frac_", "cn_"))
                    and c not in _RESERVED + TRUTH_COLUMNS]
            conditions = fractions[keep]
        else:
            conditions = pd.DataFrame(index=range(n_rows))
    conditions = pd.DataFrame(conditions).reset_index(drop=True)
    if len(conditions) != n_rows:
        raise ConfigError(f"conditions has {len(conditions)} rows but there are {n_rows} rows of "
                          "fractions (one condition row per fraction row, before repeats)")
    return conditions.drop(columns=[c for c in _RESERVED if c in conditions.columns])


def mix_series(refs: References, fractions, *, conditions=None, repeats: int = 1,
               noise=0.0, noise_model: str = "counting", energy_jitter=0.0, seed: int = 0,
               acquisition: Acquisition | None = None, name: str = "mix"):
    """A transmission series mixed from real references with known fractions.

    Parameters
    ----------
    refs : References
        From :func:`operando.mixtures.load_references`.
    fractions : array (n_rows, n_refs) or DataFrame
        Share of the absorbing atoms in each reference, per row (rows sum to 1).
        A DataFrame with ``frac_<name>`` columns may carry the condition
        columns too; a truth table of an earlier call is accepted (its
        ``step, file, repeat, cn_*`` and per-scan truth columns are ignored).
    conditions : DataFrame, optional
        One row per fraction row (``potential_V``, ``gas``, ``temperature_K``,
        ``time_s``, ...).  ``time_s``, if given, is the start of the row's
        first repeat; otherwise ``time_s = step * scan_time_s``.
    repeats : int
        Consecutive scans per row.
    noise : float or str
        sd of normalised mu per point (edge-step units), rms over k >= 3 A^-1:
        0.003 is "0.3 % noise".  Or a preset name (``"qexafs"``, ``"step_scan"``,
        ``"operando"``; :data:`operando.mixtures.NOISE_PRESETS`).
    noise_model : {"counting", "white"}
        See :mod:`operando.mixtures._noise`.
    energy_jitter : float or (n,) array
        sd (eV) of a Gaussian per-scan energy shift (clipped at the references'
        margin), or the explicit shift of every scan.
    seed : int
    acquisition : Acquisition, optional
        Scan-to-scan variation (edge step, pre-edge line, i0, reference foil).
    name : str
        File name stem: ``file`` is ``<name>_<step:05d>.xdi``.

    Returns
    -------
    series : Series
        Raw mu = ln(i0/itrans) and reference ln(itrans/irefer) on
        ``refs.energy``; conditions ``step, file``, the condition columns,
        ``time_s``.  ``metadata["mixture"]`` records every setting.
    truth : DataFrame
        One row per step: ``step, file``, conditions, ``repeat``,
        ``frac_<name>`` per reference, ``cn_<shell>`` (first-shell CN of the
        mixture: sum of fraction x CN of the pure reference, see
        :data:`operando.mixtures.SHORTHANDS`; ``cn_Cu-Cu_metal`` is the metallic
        Cu-Cu shell only, not the Cu...Cu of the oxide), ``energy_shift`` (eV,
        what :func:`operando.calibrate` should return), ``edge_step``,
        ``pre_offset``, ``pre_slope``, ``i0_flux``, ``i0_tilt``, ``noise``.

    Raises
    ------
    ConfigError
        Bad fractions (see :func:`check_fractions`), conditions of the wrong
        length, repeats < 1, a noise or jitter out of range, an unknown model.
    """
    if not isinstance(refs, References):
        raise ConfigError(f"refs must come from load_references, got {type(refs).__name__}")
    f_rows = check_fractions(refs, fractions)
    repeats = check_count("repeats", repeats)
    level = resolve_noise(noise)
    if noise_model not in NOISE_MODELS:
        raise ConfigError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}")
    acq = acquisition if acquisition is not None else Acquisition()
    if not isinstance(acq, Acquisition):
        raise ConfigError(f"acquisition must be an Acquisition, got {type(acq).__name__}")
    cond_rows = _conditions(fractions, conditions, len(f_rows))

    row = np.repeat(np.arange(len(f_rows)), repeats)
    repeat = np.tile(np.arange(repeats), len(f_rows))
    n, e0, energy = row.size, refs.e0, np.array(refs.energy)
    scan_seq, shift_seq, noise_seq = np.random.SeedSequence(seed).spawn(3)
    scan_rng = np.random.default_rng(scan_seq)
    draws = scan_rng.standard_normal((n, 4))          # scan by scan: prefix-stable
    edge_step = acq.edge_step * (1.0 + acq.edge_step_jitter * draws[:, 0])
    pre_offset = acq.pre_offset + acq.pre_offset_jitter * draws[:, 1]
    pre_slope = acq.pre_slope + acq.pre_slope_jitter * draws[:, 2]
    tilt = acq.i0_tilt_jitter * draws[:, 3]
    shift = _shifts(energy_jitter, n, refs.margin, np.random.default_rng(shift_seq))

    fractions_n = f_rows[row]
    true_e = energy[None, :] + shift[:, None]
    mixed = np.einsum("nr,rne->ne", fractions_n, refs.norm_at(true_e))
    mu = pre_offset[:, None] + pre_slope[:, None] * (true_e - e0) + edge_step[:, None] * mixed
    ref_mu = None
    if refs.foil is not None:
        ref_mu = (acq.reference_pre_offset + acq.reference_pre_slope * (true_e - e0)
                  + acq.reference_edge_step * refs.foil_norm_at(true_e))
    shape = i0_shape(energy, e0, acq.i0_power, tilt)
    if level > 0:
        in_region = (energy - e0) * ETOK >= NOISE_KMIN ** 2
        sigma, flux = noise_sigma(mu, shape, edge_step, in_region, level, noise_model)
        gauss = np.random.default_rng(noise_seq).standard_normal((n, 2, energy.size))
        gauss = gauss.transpose(1, 0, 2)
        if ref_mu is not None:
            if noise_model == "counting":
                counts_t = flux[:, None] * shape * np.exp(-mu)
                ref_sigma = np.sqrt((1.0 + np.exp(ref_mu)) / counts_t)
            else:
                ref_sigma = level * acq.reference_edge_step
            ref_mu = ref_mu + ref_sigma * gauss[1]
        mu = mu + sigma * gauss[0]
    else:
        flux = np.full(n, NOMINAL_FLUX)

    steps = np.arange(n)
    files = [f"{name}_{i:05d}.xdi" for i in steps]
    cond = cond_rows.iloc[row].reset_index(drop=True)
    if "time_s" in cond.columns:
        cond["time_s"] = pd.to_numeric(cond["time_s"]).to_numpy(float) + repeat * acq.scan_time_s
    else:
        cond["time_s"] = steps * acq.scan_time_s
    conditions_out = pd.concat([pd.DataFrame({"step": steps, "file": files}), cond], axis=1)

    truth = conditions_out.copy()
    truth["repeat"] = repeat
    for i, ref_name in enumerate(refs.names):
        truth[f"frac_{ref_name}"] = fractions_n[:, i]
    shells = sorted({shell for cns in refs.cn.values() for shell in cns})
    for shell in shells:
        weights = np.array([refs.cn[r].get(shell, 0.0) for r in refs.names])
        truth[f"cn_{shell}"] = fractions_n @ weights
    truth["energy_shift"] = shift
    truth["edge_step"] = edge_step
    truth["pre_offset"] = pre_offset
    truth["pre_slope"] = pre_slope
    truth["i0_flux"] = flux
    truth["i0_tilt"] = tilt
    truth["noise"] = level

    metadata = {
        "source": "operando.mixtures", "format": "mixture", "mu_from": "transmission",
        "interpolated": False,
        "mixture": {
            "references": list(refs.names), "foil": refs.foil, "element": refs.element,
            "edge": refs.edge, "e0": e0,
            "files": {r["name"]: r["file"] for _, r in refs.summary.iterrows()},
            "seed": int(seed), "noise": level, "noise_model": noise_model,
            "noise_definition": "sd of normalised mu per point, rms over k >= 3 A^-1",
            "energy_jitter": float(energy_jitter) if np.ndim(energy_jitter) == 0 else "explicit",
            "repeats": int(repeats), "acquisition": asdict(acq),
            "normalize": refs.normalization, "grid": refs.settings["grid"],
        },
    }
    series = Series(energy=energy, mu=mu, conditions=conditions_out, element=refs.element,
                    edge=refs.edge, reference=ref_mu, metadata=metadata)
    return series, truth
