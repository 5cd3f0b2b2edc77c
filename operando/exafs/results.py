"""Shell-fit results: :class:`ShellFitResult` (a table, the chi(k) fitted and its
model, every parameter, every setting) and :class:`S02Calibration`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._util.result import Result
from ..errors import DataError
from .model import result_columns


@dataclass(frozen=True, eq=False)
class ShellFitResult(Result):
    """Shell-fit results of a series: one row per fitted step.

    Columns of ``table`` (:func:`~operando.exafs.model.result_columns`, in that order):

    ``step``
        The step number (the first of merged repeats).
    ``cn_S, cn_S_err, r_S, r_S_err, sigma2_S, sigma2_S_err, de0_S, de0_S_err``
        Per shell S: CN, distance ``reff + dR`` (Angstrom), sigma2 (A^2) and dE0 (eV,
        the value of S's dE0 group) with their 1-sigma errors (Larch's scaling); a fixed
        parameter has NaN error, a tied one the propagated error of its source.
    ``cn_S_err_s02``
        Per shell: the CN error with the relative S0^2 error added in quadrature,
        ``sqrt(cn_S_err^2 + (cn_S s02_err / s02)^2)`` (= ``cn_S_err`` without an S0^2
        error): the error to quote when CNs are compared with another S0^2 or with a
        bulk value.
    ``cn_S_limit``
        Per tested shell (``model.tested_shells()``): the detection limit, how far above
        its fitted value the CN could be at 95 % one-sided (the half-width of its
        chi-square profile, :mod:`operando.exafs.significance`): the CN a shell must
        exceed to stand out of this step's noise; for an absent shell (pinned geometry)
        the largest CN that could hide there (its upper limit is ``cn_S + cn_S_limit``).
    ``p_S``
        Per tested shell: the F-test p-value of adding the shell to the model without
        it, on the free fit, chi-square scaled so that the reduced chi-square is 1.
    ``sig_S``
        Per tested shell: ``p_S < 0.05`` and the free-fit CN > 0.  Never decided on the
        refit of an absent shell with its geometry pinned.
    ``s02, s02_err``
        S0^2 used and its error (the reference's for sample fits; fitted for a foil).
    ``r_factor, redchi, chi_square, n_idp, n_varys``
        Larch's statistics of the fit (of the joint fit for a global fit).
    ``fit_ok, fit_quality, fit_message``
        ``fit_quality``: good / poor / failed (:func:`operando.exafs.policy.fit_quality`);
        ``fit_ok``: good; the message says why, and which shells were pinned as absent.

    Attributes
    ----------
    table : DataFrame
        The columns above (plus ``merged_steps`` when repeats were merged).
    k : (n_k,) array
        k grid (1/Angstrom) of ``data_chi`` / ``model_chi``.
    data_chi, model_chi : (n_rows, n_k) arrays
        The chi(k) fitted and the best-fit model (NaN where no fit).
    params : list of dict
        Per row, every parameter: ``{name: (value, stderr, vary, min, max)}``.
    settings : dict
        Every fit setting, the paths used (label, file, reff), S0^2, engine.
    """

    table: pd.DataFrame
    k: np.ndarray
    data_chi: np.ndarray
    model_chi: np.ndarray
    params: list
    settings: dict

    def __len__(self) -> int:
        return len(self.table)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per step (a copy)."""
        return self.table.copy()

    def to_xarray(self):
        """An ``xarray.Dataset``: every table column over ``step``; ``data_chi`` and
        ``model_chi`` over ``(step, k)``."""
        from .._util.xr import fit_dataset

        return fit_dataset(self)

    def _repr_html_(self) -> str:
        from .._util.reprs import fit_html

        return fit_html(self)

    def _row(self, step: int) -> int:
        hits = np.flatnonzero(self.table["step"].to_numpy() == step)
        if hits.size == 0:
            raise DataError(f"no fit for step {step}; steps are {self.table['step'].tolist()}")
        return int(hits[0])

    def report(self, step: int | None = None) -> str:
        """A text report: ``step=None`` gives a summary table, else one step
        in the style of lmfit's ``fit_report`` (values +/- errors)."""
        labels = [s["label"] for s in self.settings["model"]["shells"]]
        if step is None:
            head = (f"[[Shell fits]] {len(self)} steps, shells {labels}, S0^2 = "
                    f"{self.settings['s02']:.4g}, engine {self.settings['engine']}\n"
                    f"    fits ok: {int(self.table['fit_ok'].sum())}/{len(self)}\n")
            cols = ["step"]
            for label in labels:
                cols += [f"cn_{label}", f"cn_{label}_err", f"r_{label}"]
            cols += ["r_factor", "fit_ok"]
            with pd.option_context("display.width", 160, "display.max_columns", 40):
                body = self.table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
            return head + body
        i = self._row(step)
        row = self.table.iloc[i]
        lines = [f"[[Shell fit, step {step}]]",
                 f"    fit_ok          = {bool(row['fit_ok'])}",
                 f"    n_idp           = {row['n_idp']:.3f}",
                 f"    n_varys         = {int(row['n_varys'])}",
                 f"    chi-square      = {row['chi_square']:.6g}",
                 f"    reduced chi-sq  = {row['redchi']:.6g}",
                 f"    r-factor        = {row['r_factor']:.6g}",
                 f"    S0^2            = {row['s02']:.5g}" + _pm(row["s02_err"]),
                 f"    message         = {row['fit_message'] or 'ok'}",
                 "[[Variables]]"]
        for name, (value, stderr, vary, lo, hi) in self.params[i].items():
            tag = "" if vary else "(fixed)"
            lines.append(f"    {name:14s} = {value: .6g}{_pm(stderr)} {tag} bounds [{lo:g}, {hi:g}]")
        lines.append("[[Shells]]")
        for label in labels:
            lines.append(
                f"    {label:6s} CN {row[f'cn_{label}']:.3f}{_pm(row[f'cn_{label}_err'])}, "
                f"R {row[f'r_{label}']:.4f}{_pm(row[f'r_{label}_err'])} A, "
                f"sigma2 {row[f'sigma2_{label}']:.5f}{_pm(row[f'sigma2_{label}_err'])} A^2, "
                f"dE0 {row[f'de0_{label}']:.3f}{_pm(row[f'de0_{label}_err'])} eV")
        return "\n".join(lines)

    def plot(self, step: int):
        """Data and best fit of one step, k^w chi(k) and |chi(R)|.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from larch import Group
        from larch.xafs import xftf
        from matplotlib.figure import Figure

        i = self._row(step)
        model = self.settings["model"]
        kw = model["kweight"]
        fig = Figure(figsize=(10, 4))
        ax_k, ax_r = fig.subplots(1, 2)
        k = self.k
        for chi, style, label in ((self.data_chi[i], "k-", "data"), (self.model_chi[i], "r--", "fit")):
            if not np.all(np.isfinite(chi)):
                continue
            ax_k.plot(k, chi * k ** kw, style, label=label)
            group = Group()
            xftf(k, chi, group=group, kmin=model["kmin"], kmax=model["kmax"], dk=model["dk"],
                 window=model["window"], kweight=kw, rmax_out=6)
            ax_r.plot(group.r, group.chir_mag, style, label=label)
        ax_k.axvspan(model["kmin"], model["kmax"], color="0.9", zorder=0)
        ax_r.axvspan(model["rmin"], model["rmax"], color="0.9", zorder=0)
        ax_k.set_xlabel(r"$k$ ($\AA^{-1}$)")
        ax_k.set_ylabel(rf"$k^{{{kw:g}}}\chi(k)$")
        ax_r.set_xlabel(r"$R$ ($\AA$)")
        ax_r.set_ylabel(r"$|\chi(R)|$")
        ok = bool(self.table["fit_ok"].iloc[i])
        ax_k.set_title(f"step {step}" + ("" if ok else " (fit not ok)"))
        ax_r.set_title(f"R-factor {self.table['r_factor'].iloc[i]:.4g}")
        ax_k.legend()
        fig.tight_layout()
        return fig


@dataclass(frozen=True, eq=False)
class S02Calibration(Result):
    """S0^2 (and the foil's sigma2 and dR) from a reference foil with the bulk CN fixed.

    Attributes
    ----------
    s02, s02_err : float
        Amplitude reduction factor and its 1-sigma error.
    shell, sigma2, sigma2_err, deltar, edge_energy, window
        (properties) the calibrated shell, its sigma2 (A^2) and error, its dR
        (Angstrom), its E0 + dE0 (eV) and the k/R window of the fit: what
        :func:`operando.exafs.apply_foil` gives the sample's metal shell.
    fit : pandas.Series
        The fit row (same columns as :meth:`ShellFitResult.to_dataframe`).
    settings : dict
    result : ShellFitResult
        The full fit (``.report()``, ``.plot()``).
    """

    s02: float
    s02_err: float
    fit: pd.Series
    settings: dict
    result: ShellFitResult

    def to_dataframe(self) -> pd.DataFrame:
        """One row: ``shell, s02, s02_err, sigma2, sigma2_err, deltar, edge_energy`` and
        the fit's own columns."""
        head = pd.DataFrame([{"shell": self.shell, "s02": self.s02, "s02_err": self.s02_err,
                              "sigma2": self.sigma2, "sigma2_err": self.sigma2_err,
                              "deltar": self.deltar, "edge_energy": self.edge_energy}])
        rest = self.fit.drop(labels=[c for c in ("s02", "s02_err") if c in self.fit.index])
        return pd.concat([head, rest.to_frame().T.reset_index(drop=True)], axis=1)

    def title(self) -> str:
        return (f"S02Calibration: S0^2 = {self.s02:.4g}{_pm(self.s02_err)} from {self.shell}, "
                f"sigma2 {self.sigma2:.4g}{_pm(self.sigma2_err)} A^2")

    def report(self) -> str:
        """The calibration and the foil's fit (:meth:`ShellFitResult.report` of its step)."""
        return f"{self.title()}\n{self.result.report(int(self.result.table['step'].iloc[0]))}"

    @property
    def shell(self) -> str:
        """The calibrated shell (``"Cu-Cu"``)."""
        return self.settings["calibration"]["shell"]

    @property
    def sigma2(self) -> float:
        """The foil's sigma2 (A^2) in the calibration window."""
        return float(self.fit[f"sigma2_{self.shell}"])

    @property
    def sigma2_err(self) -> float:
        return float(self.fit[f"sigma2_{self.shell}_err"])

    @property
    def deltar(self) -> float:
        """The foil's dR (Angstrom) from the path's reff."""
        return float(self.fit[f"r_{self.shell}"]) - float(self.settings["paths"][self.shell]["reff"])

    @property
    def edge_energy(self) -> float:
        """The foil's E0 plus its fitted dE0 (eV): the energy origin of the metal's
        path; a sample step with E0 ``e`` holds the metal's dE0 at ``edge_energy - e``."""
        return float(self.settings["calibration"]["e0"]) + float(self.fit[f"de0_{self.shell}"])

    @property
    def window(self) -> dict:
        """The calibration's k and R window (kmin, kmax, kweight, dk, window, rmin, rmax)."""
        m = self.settings["model"]
        return {key: m[key] for key in ("kmin", "kmax", "kweight", "dk", "window", "rmin", "rmax")}


def _pm(err) -> str:
    try:
        err = float(err)
    except (TypeError, ValueError):
        return ""
    return f" +/- {err:.3g}" if math.isfinite(err) else ""


def make_result(rows, k, data_chi, model, settings, merged, s02_err=None) -> ShellFitResult:
    """The result table from the engines' row dicts; ``s02_err`` (the reference's S0^2
    error) fills ``s02_err`` where the fit did not vary S0^2 and gives ``cn_S_err_s02``."""
    columns = result_columns(model)
    derived = {f"cn_{lab}_err_s02" for lab in model.labels}
    table = pd.DataFrame([{c: row[c] for c in columns if c not in derived} for row in rows],
                         columns=[c for c in columns if c not in derived])
    if s02_err is not None:
        table["s02_err"] = table["s02_err"].where(np.isfinite(table["s02_err"].astype(float)),
                                                  float(s02_err))
    rel = (table["s02_err"].astype(float) / table["s02"].astype(float)).where(
        lambda v: np.isfinite(v), 0.0)
    for lab in model.labels:
        cn, err = table[f"cn_{lab}"].astype(float), table[f"cn_{lab}_err"].astype(float)
        table[f"cn_{lab}_err_s02"] = np.sqrt(err ** 2 + (cn * rel) ** 2)
    for lab in model.tested_shells():
        table[f"sig_{lab}"] = table[f"sig_{lab}"].astype(bool)
    table = table[columns]
    table["step"] = table["step"].astype(int)
    table["n_varys"] = table["n_varys"].astype(int)
    table["fit_ok"] = table["fit_ok"].astype(bool)
    if merged is not None:
        table["merged_steps"] = [",".join(str(s) for s in m) for m in merged]
    model_chi = np.array([row["_model_chi"] for row in rows]).reshape(len(rows), k.size)
    return ShellFitResult(table=table, k=k, data_chi=np.array(data_chi, float).reshape(len(rows), k.size),
                          model_chi=model_chi, params=[row["_params"] for row in rows],
                          settings=settings)
