"""Ready-made seeded series with known truth, for the acceptance tests of several issues."""

from __future__ import annotations

import numpy as np
import pandas as pd

from operando.errors import ConfigError

from ._mix import Acquisition, check_count, mix_series
from ._references import load_references

#: Cu electrode in CO2/H2O electroreduction, as a potential program (V vs RHE):
#: CuO stays oxidised down to 0.0 V, metal grows in steps from -0.2 V, and at open
#: circuit ("OCP") everything is oxidised again (redispersion).
CU_POTENTIAL_PROGRAM = pd.DataFrame({
    "potential_V": pd.Series([0.4, 0.2, 0.0, -0.2, -0.4, -0.6, -0.8, -1.0, "OCP"], dtype=object),
    "frac_cu_foil": [0.0, 0.0, 0.0, 0.1, 0.25, 0.4, 0.6, 0.8, 0.0],
})

#: Fe2O3 under O2, reduced in H2 at rising temperature through Fe3O4 and FeO to Fe,
#: then re-oxidised in O2 (fractions of the absorbing Fe atoms).
FE_GAS_PROGRAM = pd.DataFrame({
    "gas": ["O2", "H2", "H2", "H2", "H2", "H2", "H2", "O2", "O2"],
    "temperature_K": [298.0, 573.0, 623.0, 673.0, 723.0, 773.0, 823.0, 573.0, 673.0],
    "frac_fe_foil": [0.0, 0.0, 0.0, 0.1, 0.3, 0.7, 0.9, 0.1, 0.0],
    "frac_feo": [0.0, 0.0, 0.1, 0.4, 0.5, 0.3, 0.1, 0.0, 0.0],
    "frac_fe2o3": [1.0, 0.7, 0.3, 0.0, 0.0, 0.0, 0.0, 0.5, 0.9],
    "frac_fe3o4": [0.0, 0.3, 0.6, 0.5, 0.2, 0.0, 0.0, 0.4, 0.1],
})


def _start_times(n_rows: int, repeats: int, scan_time_s: float, settle_s: float) -> np.ndarray:
    """Start of the first scan of each row: a settling time, then the repeats."""
    return settle_s * np.arange(1, n_rows + 1) + repeats * scan_time_s * np.arange(n_rows)


def cu_potential_series(*, cycles: int = 1, repeats: int = 3, noise="qexafs",
                        noise_model: str = "counting", energy_jitter: float = 0.2, seed: int = 0,
                        settle_s: float = 120.0, acquisition: Acquisition | None = None,
                        data_dir=None):
    """Cu foil + CuO (tenorite) along :data:`CU_POTENTIAL_PROGRAM`.

    +0.4, +0.2, 0.0 V vs RHE: CuO only; -0.2 ... -1.0 V: metal fraction 0.1,
    0.25, 0.4, 0.6, 0.8; then "OCP": CuO only again.  ``repeats`` scans per
    potential, the whole program ``cycles`` times with fresh noise.

    Parameters
    ----------
    cycles, repeats : int
    noise, noise_model, energy_jitter, seed, acquisition
        As :func:`operando.mixtures.mix_series` (``noise`` default: the real
        QEXAFS scan's level, 6.5e-4).
    settle_s : float
        Time between the last scan at one potential and the first at the next, s.
    data_dir : path, optional
        The shared data folder.

    Returns
    -------
    series, truth
        Conditions ``potential_V`` (floats and ``"OCP"``), ``cycle``, ``time_s``;
        truth ``frac_cu_foil``, ``frac_cuo``, ``cn_Cu-Cu_metal`` (12 x metal
        fraction: the metallic shell only), ``cn_Cu-O`` (4 x oxide fraction), ...
    """
    cycles, repeats = check_count("cycles", cycles), check_count("repeats", repeats)
    refs = load_references(["cu_foil", "cuo"], data_dir=data_dir)
    acq = acquisition or Acquisition()
    program = pd.concat([CU_POTENTIAL_PROGRAM.assign(cycle=c) for c in range(cycles)],
                        ignore_index=True)
    program["frac_cuo"] = 1.0 - program["frac_cu_foil"]
    program["time_s"] = _start_times(len(program), repeats, acq.scan_time_s, settle_s)
    return mix_series(refs, program[["frac_cu_foil", "frac_cuo"]],
                      conditions=program[["potential_V", "cycle", "time_s"]], repeats=repeats,
                      noise=noise, noise_model=noise_model, energy_jitter=energy_jitter,
                      seed=seed, acquisition=acq, name="cu_potential")


def fe_gas_series(*, repeats: int = 3, noise="qexafs", noise_model: str = "counting",
                  energy_jitter: float = 0.2, seed: int = 0, xanes_end: float = 200.0,
                  settle_s: float = 600.0, acquisition: Acquisition | None = None,
                  data_dir=None):
    """Fe foil + FeO + Fe2O3 + Fe3O4 XANES along :data:`FE_GAS_PROGRAM`.

    The grid stops ``xanes_end`` eV above E0 (7112 eV) and the references are
    normalised over that range (``refs.normalization``: post-edge from 0.4 x
    ``xanes_end``), so the series is XANES only.  Up to three components per
    step.

    Returns
    -------
    series, truth
        Conditions ``gas``, ``temperature_K``, ``time_s``; truth
        ``frac_fe_foil, frac_feo, frac_fe2o3, frac_fe3o4`` and first-shell CNs.
    """
    repeats = check_count("repeats", repeats)
    refs = load_references(["fe_foil", "feo", "fe2o3", "fe3o4"], erange=(None, xanes_end),
                           data_dir=data_dir)
    acq = acquisition or Acquisition()
    program = FE_GAS_PROGRAM.copy()
    program["time_s"] = _start_times(len(program), repeats, acq.scan_time_s, settle_s)
    return mix_series(refs, program, repeats=repeats, noise=noise, noise_model=noise_model,
                      energy_jitter=energy_jitter, seed=seed, acquisition=acq, name="fe_gas")


def cu_fraction_series(n_steps: int = 21, *, repeats: int = 1, noise="qexafs",
                       noise_model: str = "counting", energy_jitter: float = 0.0, seed: int = 0,
                       acquisition: Acquisition | None = None, data_dir=None):
    """Cu foil + CuO with the metallic fraction going evenly from 0 to 1 over ``n_steps``.

    For linear-combination-fit recovery tests: ``frac_cu_foil =
    linspace(0, 1, n_steps)``.

    Returns
    -------
    series, truth
        Conditions ``time_s``; truth ``frac_cu_foil``, ``frac_cuo``, CNs.
    """
    n_steps = check_count("n_steps", n_steps)
    if n_steps < 2:
        raise ConfigError(f"n_steps must be >= 2 to go from 0 to 1, got {n_steps}")
    refs = load_references(["cu_foil", "cuo"], data_dir=data_dir)
    metal = np.linspace(0.0, 1.0, n_steps)
    return mix_series(refs, np.column_stack([metal, 1.0 - metal]), repeats=repeats, noise=noise,
                      noise_model=noise_model, energy_jitter=energy_jitter, seed=seed,
                      acquisition=acquisition, name="cu_fraction")
