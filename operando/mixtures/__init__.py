"""Test series mixed from real measured spectra, with a known truth.

XANES and EXAFS are linear in the fractions of the absorbing atoms, so a
fraction-weighted sum of normalised real reference spectra is the normalised
spectrum of the mixture.  This package turns the real references in the
shared data folder (``../shared/data/references``) into raw-looking, seeded
transmission series with a truth table, for acceptance tests of every verdict
of :mod:`operando` (fit acceptance, CN accuracy, component analysis,
transition tracking)::

    from operando import mixtures

    refs = mixtures.load_references(["cu_foil", "cuo"])     # Cu K, E0 = 8979.0 eV
    series, truth = mixtures.mix_series(refs, [[0.2, 0.8], [0.6, 0.4]], repeats=3,
                                        noise=0.003, energy_jitter=0.3, seed=1)
    series, truth = mixtures.cu_potential_series(cycles=1)   # ready-made
    mixtures.write_folder(series, truth, "cu_potential/")     # XDI + conditions.csv + truth.csv

Public names
------------
:func:`load_references`, :class:`References`
    Real spectra on one absolute energy scale (reference channel or foil
    calibrated to the tabulated edge, files without one trusted), one
    QEXAFS-like grid (0.5 eV from -30 to +50 eV, 0.05 A^-1 in k above) over the
    overlap of all files, one normalisation (same E0, same ranges; recorded in
    ``refs.normalization``).  ``refs.summary`` reports each file's calibration,
    own E0, k reach and noise.
:func:`mix_series`, :class:`Acquisition`
    Mixed normalised spectra -> pre-edge line + edge step x mixture, i0, itrans,
    irefer (the foil through the same energy shift), noise; truth table.
:func:`cu_potential_series`, :func:`fe_gas_series`, :func:`cu_fraction_series`
    Ready-made seeded series.
:func:`write_folder`, :func:`write_hdf5_with_truth`
    Files that :func:`operando.read_series` reads back to the same numbers.
:func:`estimate_noise`, :data:`NOISE_PRESETS`, :data:`MEASURED_NOISE`
    The point-to-point noise estimator and the levels measured on the real files.

Meaning of ``noise``
--------------------
The standard deviation of normalised mu per point, in edge-step units, as
the root mean square over the grid points with k >= 3 A^-1: ``noise=0.003``
is the "0.3 % noise" of the issues.  ``noise="qexafs"`` (6.5e-4) is what the
real 30 s QEXAFS scan (Ru foil, NSLS-II QAS) has.  See
:mod:`operando.mixtures._noise` for the two noise models.

Truth of the CN columns
-----------------------
``cn_<shell>`` is the fraction-weighted first-shell CN of the pure references
(:data:`SHORTHANDS`): ``cn_Cu-Cu_metal = 12 x frac_cu_foil`` is the *metallic*
Cu-Cu shell (2.55 A); the Cu...Cu of CuO at 2.9-3.1 A is not counted in it.
``cn_Cu-O = 4 x frac_cuo`` (the 4 short Cu-O at 1.95 A), ``cn_Pt-Pt_metal =
12 x frac_pt_foil``.

Things to know about the real references
----------------------------------------
CuO was measured at 13 K, the Cu foil at room temperature: the oxide's EXAFS
is less damped than a room-temperature oxide's would be.  The CuO file's
``irefer`` channel has a Cu-metal-like edge at 8979.15 eV (file energy) but a distorted shape
(features exaggerated, post-edge rising); only its edge position is used.
The Fe oxides have no reference channel and come from other beamlines and
years than the Fe foil: their energy is trusted as written.
"""

from ._mix import Acquisition, check_fractions, mix_series
from ._noise import MEASURED_NOISE, NOISE_MODELS, NOISE_PRESETS, estimate_noise, noise_residuals
from ._presets import (CU_POTENTIAL_PROGRAM, FE_GAS_PROGRAM, cu_fraction_series,
                       cu_potential_series, fe_gas_series)
from ._references import References, load_references
from ._sources import FOIL_OF, SHORTHANDS, energy_grid, shared_data_dir
from ._write import write_folder, write_hdf5_with_truth

__all__ = [
                       "CU_POTENTIAL_PROGRAM",
                       "FE_GAS_PROGRAM",
                       "FOIL_OF",
                       "MEASURED_NOISE",
                       "NOISE_MODELS",
                       "NOISE_PRESETS",
                       "SHORTHANDS",
                       "Acquisition",
                       "References",
                       "check_fractions",
                       "cu_fraction_series",
                       "cu_potential_series",
                       "energy_grid",
                       "estimate_noise",
                       "fe_gas_series",
                       "load_references",
                       "mix_series",
                       "noise_residuals",
                       "shared_data_dir",
                       "write_folder",
                       "write_hdf5_with_truth",
]
