"""The result of :func:`~.fit.batch_fit` and the parameter vocabulary of the batched fit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


SHELL_PARAMS = ("cn", "deltar", "sigma2", "c3")
DEFAULT_VARY = {"cn": True, "deltar": True, "sigma2": True, "c3": False, "de0": True}
DEFAULT_INIT = {"deltar": 0.0, "sigma2": 0.005, "c3": 0.0, "de0": 0.0}  # cn: path degeneracy
DEFAULT_BOUNDS = {"cn": (0.0, np.inf), "deltar": (-0.5, 0.5), "sigma2": (-0.01, 0.05),
                  "c3": (-0.01, 0.01), "de0": (-20.0, 20.0)}


@dataclass
class BatchFitResult:
    """Results of :func:`batch_fit`: one value per spectrum for everything.

    Attributes
    ----------
    labels : list of str
        Shell labels, in the order of ``paths``.
    param_names : list of str
        ``"<param>_<label>"`` for shell parameters (``cn``, ``deltar``, ``sigma2``,
        ``c3``) and ``"de0"`` (shared) or ``"de0_<label>"``.
    var_names : list of str
        The varied parameters, in the order of ``covar``.
    value, stderr : dict of str -> ndarray (n,)
        Best values and 1-sigma errors (Larch's scaling; 0 for fixed parameters).
        Units: cn 1, deltar Angstrom, sigma2 Angstrom^2, c3 Angstrom^3, de0 eV.
    at_bound : dict of str -> ndarray (n,) bool
        Varied parameter ended on a bound.
    covar : ndarray (n, n_varys, n_varys)
        Scaled covariance of the varied parameters.
    chi_square, redchi, r_factor : ndarray (n,)
        Larch's ``chi_square``, ``chi2_reduced`` and ``rfactor``.
    n_idp : float
        Number of independent points.
    n_varys, npts : int
        Number of varied parameters and of residual points.
    epsilon_k, epsilon_r : ndarray (n,)
        Noise used to scale the residual.
    success : ndarray (n,) bool
    message : ndarray (n,) of str
    nfev : ndarray (n,) int
        Residual + Jacobian evaluations per spectrum.
    model_k : ndarray (n_m,)
        Model k grid, 1/Angstrom.
    model_chi : ndarray (n, n_m)
        Best-fit model chi(k) on the window support (zero elsewhere).
    reff : dict of label -> float
        Path half lengths, Angstrom.
    settings : dict
        Every resolved setting.
    shared : list of str
        :func:`~.global_fit.batch_fit_global`: the parameters shared by all spectra
        (empty for :func:`~.fit.batch_fit`).
    row_chi_square, row_r_factor : ndarray (n,) or None
        :func:`~.global_fit.batch_fit_global`: each spectrum's part of the joint fit
        (chi-square scaled to one spectrum's n_idp, R-factor).
    """

    labels: list
    param_names: list
    var_names: list
    value: dict
    stderr: dict
    at_bound: dict
    covar: np.ndarray
    chi_square: np.ndarray
    redchi: np.ndarray
    r_factor: np.ndarray
    n_idp: float
    n_varys: int
    npts: int
    epsilon_k: np.ndarray
    epsilon_r: np.ndarray
    success: np.ndarray
    message: np.ndarray
    nfev: np.ndarray
    model_k: np.ndarray = field(repr=False)
    model_chi: np.ndarray = field(repr=False)
    reff: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    shared: list = field(default_factory=list)
    row_chi_square: np.ndarray | None = field(default=None, repr=False)
    row_r_factor: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.success)

    def to_dataframe(self):
        """One row per spectrum: ``cn_S, cn_S_err, r_S, r_S_err, sigma2_S, sigma2_S_err,
        de0_S, de0_S_err`` per shell S (``c3_S`` when varied), then ``r_factor, redchi,
        chi_square, n_idp, n_varys, fit_ok, fit_message, nfev``."""
        import pandas as pd

        cols = {}
        for lab in self.labels:
            e0name = "de0" if "de0" in self.value else f"de0_{lab}"
            for name, src in (("cn", f"cn_{lab}"), ("r", f"deltar_{lab}"),
                              ("sigma2", f"sigma2_{lab}"), ("de0", e0name)):
                val = self.value[src]
                if name == "r":
                    val = val + self.reff[lab]
                cols[f"{name}_{lab}"] = val
                cols[f"{name}_{lab}_err"] = self.stderr[src]
            if f"c3_{lab}" in self.var_names:
                cols[f"c3_{lab}"] = self.value[f"c3_{lab}"]
                cols[f"c3_{lab}_err"] = self.stderr[f"c3_{lab}"]
        cols.update(r_factor=self.r_factor, redchi=self.redchi, chi_square=self.chi_square,
                    n_idp=np.full(len(self), self.n_idp), n_varys=np.full(len(self), self.n_varys),
                    fit_ok=self.success, fit_message=self.message, nfev=self.nfev)
        return pd.DataFrame(cols)
