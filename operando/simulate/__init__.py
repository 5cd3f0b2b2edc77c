"""Deterministic simulated operando XAS series with truth tables.

The simulator makes transmission spectra that look like a beamline's: a
sloped pre-edge line, an arctangent edge with a white line whose height grows
with the number of O/N ligands, a gently decaying (Victoreen-like) post-edge,
and EXAFS oscillations computed by xraylarch from FEFF paths
(:mod:`operando.feffpaths`) for the shells of a truth table.  Every scan also
carries a metal-foil reference channel and a per-scan energy miscalibration,
so that calibration on the reference channel is exercised, plus Gaussian
noise.  Everything is seeded.

Spectrum model
--------------
For a scan of state *s* with energy miscalibration ``delta`` (eV) the recorded
absorption at the recorded energy ``E`` is the true spectrum at ``E - delta``
(a feature at true energy ``T`` appears at ``T + delta`` in the file, so a
calibration must *subtract* ``energy_shift``).  With ``x = E - delta - e0_s``::

    mu(E) = pre_offset + pre_slope * (E - delta - e0)
            + edge_step * mu0(x) * (1 + taper(k) * chi_s(k)),   k = sqrt(max(x, 0) * ETOK)
    mu0(x) = [0.5 + arctan(2 x / core_width) / pi + W_s * pV(x - wl_position)]
             * (e0 / (E - delta)) ** victoreen_power

``e0`` is the tabulated edge energy (xraydb).  ``e0_s`` (``e0_true`` in the
truth) is the arctangent centre and the origin of k: ``e0_metal + chemical
shift``, the shift being ``edge_shift_oxidised * min(N_ligand /
ligand_cn_max, 1)``, where ``e0_metal`` is set so that the noise-free foil's
maximum-derivative point lies exactly at ``e0`` (the white line pulls the
inflection above the arctangent centre: by 0.87 eV for Pt L3).  ``pV`` is a
peak-normalised pseudo-Voigt of FWHM ``wl_fwhm`` and Lorentzian fraction
``wl_eta``; its amplitude ``W_s = wl_base + wl_per_ligand * N_ligand``
(edge-step units) rises with the number of O/N neighbours.
``chi_s(k)`` is ``larch.xafs.ff2chi`` of the state's shells (degeneracy = CN,
``deltar = R - reff``, ``sigma2``, ``e0 = de0``, ``s02``), with ``k`` measured
from ``e0_s``.  ``taper`` is 0 below k = 1, 1 above k = 2 A^-1 (a sin^2 ramp),
because single-scattering chi is not a model of the near edge and would
otherwise distort the white line.  Noise is Gaussian in mu with standard
deviation ``noise * edge_step`` (``noise`` is 5e-4 for the Pt and 8e-4 for the
Cu series, the range of good transmission data), independent at every point.

Energy grid
-----------
:func:`energy_grid`: 10 eV steps from e0-200 to e0-40, 0.4 eV from e0-30 to
e0+39.6, then constant k steps of 0.05 A^-1 from k = 3.25 to 15 A^-1 (428
points for both named series).

Randomness
----------
``simulate_series(spec, seed=...)`` draws the noise from
``numpy.random.default_rng(seed)`` (one child generator each for the sample
and reference channels).  The "experiment" -- per-scan energy drift (an
AR(1) walk of stationary standard deviation ``drift_sd`` eV) and the
per-scan edge-step / pre-edge jitter -- is drawn from
``numpy.random.default_rng(spec.drift_seed)``, so it is part of the truth: two
noise seeds give different noise and the same truth table.

Named series
------------
:data:`PT_CO_OXIDATION` (:func:`pt_co_oxidation`) and :data:`CU_NC_POTENTIAL`
(:func:`cu_nc_potential`); :func:`write_samples` writes both to files
(``python -m operando.simulate sample_spectra``).

Modules
-------
=====================  ==========================================================
:mod:`.spec`           :class:`SeriesSpec`, :class:`Segment`, :class:`Shell`,
                       :class:`EdgeModel`: the truth of a simulation
:mod:`.named`          the two named series
:mod:`.chi`            :func:`shell_chi` (xraylarch ``ff2chi``), :func:`chi_taper`
:mod:`.edge`           :func:`energy_grid` and the noise-free spectrum model
:mod:`.series`         :func:`simulate_series`, :func:`simulate_foil`,
                       :func:`truth_table`, :func:`model_spectrum`
:mod:`.samples`        :func:`write_samples` (files, truth, README) and the command line
=====================  ==========================================================
"""

from .._util.larch_compat import ETOK
from .chi import CHI_TAPER, chi_taper, shell_chi
from .edge import energy_grid
from .named import CU_NC_POTENTIAL, PT_CO_OXIDATION, cu_nc_potential, pt_co_oxidation
from .samples import SAMPLE_SEED, main, write_samples
from .series import model_spectrum, simulate_foil, simulate_series, truth_table
from .spec import STATES, EdgeModel, Segment, SeriesSpec, Shell

__all__ = ["SeriesSpec", "Segment", "Shell", "EdgeModel", "STATES", "PT_CO_OXIDATION",
           "CU_NC_POTENTIAL", "pt_co_oxidation", "cu_nc_potential", "simulate_series",
           "simulate_foil", "truth_table", "model_spectrum", "energy_grid", "shell_chi",
           "chi_taper", "CHI_TAPER", "ETOK", "SAMPLE_SEED", "write_samples", "main"]
