"""EXAFS: background removal, Fourier transforms and shell fits of a series.

=====================  ===========================================================
:mod:`.background`     :func:`remove_background` (AUTOBK) -> :class:`ChiSeries`;
                       :func:`fourier_transform` -> :class:`RSeries`
:mod:`.shells`         :class:`ShellSpec` / :class:`Rule`: a shell and how each of its
                       parameters is treated (free, bounded, fixed, tied, reference)
:mod:`.model`          :class:`ShellModel`: shells, window, bounds, dE0 groups, tests
:mod:`.plan`           the parameters of one fit, resolved once for both engines
:mod:`.fit`            :func:`fit_shells`, :func:`fit_shells_global`,
                       :func:`calibrate_s02`
:mod:`.reference`      :func:`apply_foil`: the foil's sigma2 / dR / dE0 for the
                       sample's metal shell (temperature-corrected if asked)
:mod:`.significance`   F-test of a shell and the detection limit of its CN
:mod:`.phases`         reference-phase shells (an oxide's outer shells tied to its
                       ligand CN; FEFF on a crystal cluster; fit of a phase reference)
:mod:`.systematics`    :func:`cn_systematics`: the CN band over processing choices
:mod:`.two_phase`      :func:`fit_two_phase`: (1 - x) measured chi_iso + x FEFF metal
                       shell(s), the clusters' own CN apart from the fraction x
:mod:`.cluster_shells` the clusters' metal shells (bcc: two, tied by the lattice) and
                       :func:`calibrate_cluster`, the foil fitted on the same shells
:mod:`.results`        :class:`ShellFitResult`, :class:`S02Calibration`
:mod:`.wavelet`        :func:`wavelet_transform` (Cauchy as Larch's, Morlet) ->
                       :class:`WaveletTransform`; :func:`lobe_positions`
:mod:`.policy`         the rules both engines apply (starts, acceptance, absent shells)
:mod:`.engines`        ``"fast"`` (batched, default) and ``"larch"`` (xraylarch per
                       step, the oracle); one place picks them
:mod:`.batch`          the batched numerics (AUTOBK, FT, FEFF path tables, fits,
                       global fits)
=====================  ===========================================================

A shell fit models each shell ``S`` (``"Pt-Pt"``, ``"Cu-N"``, ``"Cu-Cu_ox1"`` ...) by
one FEFF single-scattering path with degeneracy 1 and amplitude ``CN_S * S0^2``
(``S0^2`` fixed, from :func:`calibrate_s02` on a foil), a distance change ``dR_S``
(reported as ``r_S = reff + dR_S``), a Debye-Waller factor ``sigma2_S`` and an
energy shift ``dE0`` (one per dE0 group: all shells by default, ``share_e0=False``
one each, ``"phase"`` metal vs the rest, or ``e0_group`` per shell).  Any of them may
be fixed, bounded, tied to another shell's (a CN times a factor) or taken from the
reference foil.  Both engines fill the same result columns (:func:`result_columns`),
so they give the same :class:`ShellFitResult`.

With a reference foil (:func:`apply_foil`, the pipeline's default) the metal
shell's sigma2 is fixed at the foil's, fitted in the sample's own k/R window, and its
dE0 is held at the foil's energy origin; its CN is then right on real Cu foil + CuO
mixtures within 0.5 at every fraction (README, "Physics defaults, and why").

Robustness rules applied to every step (all recorded in ``fit_message``):

* warm start from the previous good step;
* a fit that does not converge, has no error bars or ends on a bound is retried
  from deterministic starts and the best (lowest chi-square among the acceptable
  ones) is kept;
* every fit is then judged on absolute criteria only (``fit_quality``: ``"good"``,
  ``"poor"`` -- on a bound, R-factor above ``rfactor_max`` or reduced chi-square
  above ``redchi_max`` -- or ``"failed"``; ``fit_ok`` means good), never against
  its neighbours; a poor fit is reported with its reason, never dropped;
* an absent shell (a varied CN consistent with zero: CN < 2 sigma) is refitted with
  its free ``dR`` held at 0 and its free ``sigma2`` at ``absent_sigma2`` (the foil's
  with a reference), CN allowed down to ``absent_cn_min`` (negative) so that the
  error bar is not truncated by a bound; CN and its error are reported as fitted;
* whether a shell is *there* is decided by the F-test on the free fit (``p_S``,
  ``sig_S``), never by the pinned refit; ``cn_S_limit`` is the 95 % upper limit.
"""

from importlib import import_module

#: Public names -> their module, imported on first use (PEP 562), so that reading a
#: configuration (which checks [exafs] shells with ShellSpec and ShellModel) does not load
#: the fitting engines.
_WHERE = {
    **dict.fromkeys(("KSTEP", "ChiSeries", "RSeries", "fourier_transform", "remove_background"), "background"),
    **dict.fromkeys(("calibrate_s02", "fit_shells", "fit_shells_global"), "fit"),
    **dict.fromkeys(("ShellModel", "n_independent", "result_columns"), "model"),
    **dict.fromkeys(("FoilValues", "apply_foil", "shell_path"), "foil"),
    **dict.fromkeys(("S02Calibration", "ShellFitResult"), "results"),
    **dict.fromkeys(("Rule", "ShellSpec"), "shells"),
    **dict.fromkeys(("Systematics", "cn_systematics", "processing_variants"), "systematics"),
    **dict.fromkeys(("TwoPhaseResult", "fit_two_phase"), "two_phase"),
    **dict.fromkeys(("ClusterCalibration", "ClusterModel", "MetalPath", "calibrate_cluster",
                     "cluster_model"), "cluster_shells"),
    **dict.fromkeys(("WaveletTransform", "lobe_positions", "shell_windows", "wavelet_transform"), "wavelet"),
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
