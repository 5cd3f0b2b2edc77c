"""EXAFS: background removal, Fourier transforms and shell fits of a series.

=====================  ===========================================================
:mod:`.background`     :func:`remove_background` (AUTOBK) -> :class:`ChiSeries`;
                       :func:`fourier_transform` -> :class:`RSeries`
:mod:`.model`          :class:`ShellModel` / :class:`ShellSpec`: what is fitted
:mod:`.fit`            :func:`fit_shells`, :func:`fit_shells_segment`,
                       :func:`calibrate_s02`
:mod:`.results`        :class:`ShellFitResult`, :class:`S02Calibration`
:mod:`.wavelet`        :func:`wavelet_transform` (Cauchy as Larch's, Morlet) ->
                       :class:`WaveletTransform`; :func:`lobe_positions`
:mod:`.policy`         the rules both engines apply (starts, acceptance, absent shells)
:mod:`.engines`        ``"fast"`` (batched, default) and ``"larch"`` (xraylarch per
                       step, the reference); one place picks them
:mod:`.batch`          the batched numerics (AUTOBK, FT, FEFF path tables, fits)
=====================  ===========================================================

A shell fit models each shell ``S`` (``"Pt-Pt"``, ``"Cu-N"`` ...) by one FEFF
single-scattering path with degeneracy 1 and amplitude ``CN_S * S0^2``
(``S0^2`` fixed, from :func:`calibrate_s02` on a foil), a distance change
``dR_S`` (reported as ``r_S = reff + dR_S``), a Debye-Waller factor
``sigma2_S`` and an energy shift ``dE0`` (shared by all shells unless
``share_e0=False``).  Both engines fill the same result columns
(:func:`result_columns`), so they give the same :class:`ShellFitResult`.

Robustness rules applied to every step (all recorded in ``fit_message``):

* warm start from the previous good step;
* a fit that does not converge, has no error bars or ends on a bound is retried
  from deterministic starts and the best (lowest chi-square among the acceptable
  ones) is kept;
* every fit is then judged on absolute criteria only (``fit_quality``: ``"good"``,
  ``"poor"`` -- on a bound, R-factor above ``rfactor_max`` or reduced chi-square
  above ``redchi_max`` -- or ``"failed"``; ``fit_ok`` means good), never against
  its neighbours; a poor fit is reported with its reason, never dropped;
* an absent shell (CN consistent with zero: CN < 2 sigma) is refitted with its
  ``dR = 0`` and ``sigma2`` fixed at ``absent_sigma2`` so only its CN varies,
  with CN allowed down to ``absent_cn_min`` (negative) so that the error bar is
  not truncated by a bound; CN and its error are reported as fitted.
"""

from .background import KSTEP, ChiSeries, RSeries, fourier_transform, remove_background
from .fit import calibrate_s02, fit_shells, fit_shells_segment
from .model import ShellModel, ShellSpec, n_independent, result_columns
from .results import S02Calibration, ShellFitResult
from .wavelet import WaveletTransform, lobe_positions, shell_windows, wavelet_transform

__all__ = ["ChiSeries", "RSeries", "ShellModel", "ShellSpec", "ShellFitResult",
           "S02Calibration", "remove_background", "fourier_transform", "fit_shells",
           "fit_shells_segment", "calibrate_s02", "result_columns", "n_independent", "KSTEP",
           "WaveletTransform", "wavelet_transform", "lobe_positions", "shell_windows"]
