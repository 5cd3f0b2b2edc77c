"""The steps table (``steps.csv``, ``RunResult.steps``): its columns, declared once.

One row per spectrum, in input order:

==============  ===============================================================
``step, file``  then the condition columns (potential, gas, ...)
XANES           :data:`STEP_COLUMNS`: :data:`NORMALIZE_COLUMNS` and the white
                line, :data:`WHITE_LINE_COLUMNS`
components      :func:`lcf_columns`: ``frac_C, frac_C_err`` per component C
                (``shift_C, shift_C_err`` with fitted shifts), then
                :data:`LCF_COLUMNS`
EXAFS           :func:`shell_columns`: per shell S ``cn_S, cn_S_err, r_S, ...``,
                the S0^2-widened CN error, the significance of tested shells,
                then :data:`FIT_COLUMNS`; with systematics ``cn_S_sys, _min, _max``;
                with two_phase :data:`TWO_PHASE_COLUMNS`, :data:`SIZE_COLUMNS`
tracking        :data:`TRACKING_COLUMNS`
==============  ===============================================================

Every stage that writes or reads these columns takes their names from here.
"""

from __future__ import annotations

from typing import Iterable

#: Normalisation and calibration of a step: ``ok`` is the step's XANES.
NORMALIZE_COLUMNS = ("ok", "reason", "energy_shift", "e0", "edge_step")
#: :func:`operando.xanes.white_line` (besides ``step``).
WHITE_LINE_COLUMNS = ("wl_height", "wl_position", "wl_area", "edge_position")
#: The XANES columns, after ``step, file, <conditions>``.
STEP_COLUMNS = NORMALIZE_COLUMNS + WHITE_LINE_COLUMNS
#: The LCF statistics kept in the steps table, after the fractions.
LCF_COLUMNS = ("lcf_rfactor", "lcf_redchi", "lcf_ok")
#: Per-shell parameters, each with its ``_err``: ``cn_S, r_S, sigma2_S, de0_S``.
SHELL_KINDS = ("cn", "r", "sigma2", "de0")
#: The statistics of a step's shell fit, after the shell columns.
FIT_COLUMNS = ("s02", "s02_err", "r_factor", "redchi", "chi_square", "n_idp", "n_varys",
               "fit_ok", "fit_quality", "fit_message")
#: ``[exafs] two_phase`` (:func:`operando.exafs.fit_two_phase`), after the fit columns.
TWO_PHASE_COLUMNS = (
    "cluster_fraction", "cluster_fraction_err", "cluster_fraction_source",
    "cluster_cn", "cluster_cn_err", "cluster_r", "cluster_r_err", "cluster_sigma2",
    "cluster_sigma2_err", "cluster_cn_sigma2_corr", "cluster_de0",
    "cluster_fraction_exafs", "cluster_fraction_exafs_err", "fraction_z",
    "two_phase_rfactor", "two_phase_redchi", "two_phase_n_varys", "two_phase_ok",
    "two_phase_message")
#: The clusters' size from their own CN (:func:`operando.tracking.cluster.size_columns`).
SIZE_COLUMNS = ("n_atoms", "n_atoms_lo", "n_atoms_hi", "diameter_nm", "size_determinable")
#: Added by :func:`operando.tracking.track`.
TRACKING_COLUMNS = ("segment", "state", "xanes_state", "outlier", "outlier_reason")
#: Prefixes of the per-component and per-shell columns (and MCR/PCA profiles).
RESULT_PREFIXES = ("cn_", "r_", "sigma2_", "de0_", "frac_", "lcf_", "shift_", "p_", "sig_",
                   "mcr_", "pca_")
_RESULT_COLUMNS = frozenset(("step", "file") + STEP_COLUMNS + FIT_COLUMNS + TRACKING_COLUMNS
                            + TWO_PHASE_COLUMNS + SIZE_COLUMNS + ("fraction_consistent",))


def lcf_columns(names: Iterable[str], *, shifts: bool) -> list[str]:
    """The component columns of the steps table for components ``names``."""
    names = list(names)
    cols = [c for n in names for c in (f"frac_{n}", f"frac_{n}_err")]
    if shifts:
        cols += [c for n in names for c in (f"shift_{n}", f"shift_{n}_err")]
    return cols + list(LCF_COLUMNS)


def is_lcf_column(name: str) -> bool:
    """A component column of the steps table (:func:`lcf_columns`)."""
    return name.startswith(("frac_", "shift_")) or name in LCF_COLUMNS


def shell_columns(labels: Iterable[str], tested: Iterable[str]) -> list[str]:
    """The EXAFS columns for shells ``labels`` of which ``tested`` get the F-test and the
    detection limit: per shell ``<kind>_S, <kind>_S_err`` (:data:`SHELL_KINDS`), per
    shell ``cn_S_err_s02``, per tested shell ``cn_S_limit, p_S, sig_S``, then
    :data:`FIT_COLUMNS`."""
    labels = list(labels)
    cols = [c for label in labels for kind in SHELL_KINDS
            for c in (f"{kind}_{label}", f"{kind}_{label}_err")]
    cols += [f"cn_{label}_err_s02" for label in labels]
    cols += [c for label in tested for c in (f"cn_{label}_limit", f"p_{label}", f"sig_{label}")]
    return cols + list(FIT_COLUMNS)


def is_result_column(name: str) -> bool:
    """A column the analysis wrote (not a condition of the experiment)."""
    return name in _RESULT_COLUMNS or name.startswith(RESULT_PREFIXES)
