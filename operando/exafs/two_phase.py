"""Two-phase EXAFS: the isolated state measured, the clusters modelled.

A step holding a fraction ``x`` of its absorbers in metal clusters and the rest in the
isolated (ionic, single-atom) state has

    chi(k) = (1 - x) chi_iso(k) + x chi_cluster(k),

with ``chi_iso`` the *measured* chi(k) of the isolated state (a reference spectrum, the
first step or a stretch of steps, processed exactly as the series) and ``chi_cluster``
the FEFF metal shell(s) with the clusters' own (first-shell) coordination number
``N_c``, distance and disorder: :mod:`~operando.exafs.cluster_shells` (bcc metals two
shells tied by the lattice, fcc one unless the second is inside ``rmax``; a model of two
shells takes the foil calibrated on the same shells, ``cluster``).  The classic per-step shell fit reads the mixture's CN(M-M) = ``x N_c``; the
two-phase fit keeps ``x`` (how many atoms aggregated) and ``N_c`` (how big the clusters
are) apart, and the isolated state's own shells (M-O, an oxide's M...M at 2.9-3.1 A,
M-Cl) are modelled by data, not by the user's shell list.

``x`` is taken from the XANES fraction (``fraction = "xanes"``: fixed, its error
propagated into ``N_c``), used as a Gaussian prior (``"xanes_prior"``) or fitted from
the EXAFS alone (``"fit"``).  The metal shell's sigma2 is the foil's (``disorder =
"foil"``, with its temperature correction: the model's metal shell as
:func:`~operando.exafs.apply_foil` resolved it) or free within the model's bounds
(``"free"``: the N_c-sigma2 correlation is reported).  Its dE0 is held at the foil's
energy origin when the model says so, else free.

Every fit also refits ``x`` from the EXAFS alone (``cluster_fraction_exafs``): the
consistency check between the XANES and the EXAFS fraction.

Fit: lmfit (Levenberg-Marquardt) per step in xraylarch's feffit conventions -- the
residual is the windowed, k-weighted Fourier transform in the R window (real and
imaginary parts), divided by Larch's noise estimate (``estimate_noise``: chi(R) at
15-30 A); ``chi_square = sum(r^2) n_idp / n_pts``, ``redchi = chi_square / (n_idp -
n_varys)``, errors from the covariance scaled by ``sqrt(redchi)`` (feffit's).  With the
prior, the EXAFS residual is first scaled so that its reduced chi-square is 1 (a fit
with ``x`` at the XANES value), then the prior term ``(x - x_xanes) / err`` is added and
the covariance is used as it is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._util.validate import check_choice
from .._util.result import Result
from ..errors import ConfigError, DataError
from ..schema import TWO_PHASE_COLUMNS
from .background import ChiSeries
from .cluster_shells import ClusterCalibration, ClusterChi, FitWindow, cluster_model, on_bound
from .model import ShellModel

log = logging.getLogger(__name__)

#: Where ``x`` comes from.
FRACTION_MODES = ("xanes", "xanes_prior", "fit")
#: The clusters' sigma2.
DISORDER_MODES = ("foil", "free")
#: Largest R-factor of an acceptable fit (the project's absolute standard).
RFACTOR_MAX = 0.05
#: Bounds: N_c may go below 0 and above bulk so its error bar is not cut at a bound;
#: ``x`` a little outside [0, 1] for the same reason.
CN_BOUNDS = (-2.0, 24.0)
X_BOUNDS = (-0.1, 1.1)


@dataclass(frozen=True)
class TwoPhaseResult(Result):
    """Per-step two-phase fits.

    Attributes
    ----------
    table : DataFrame
        ``step`` and :data:`TWO_PHASE_COLUMNS`: ``cluster_fraction`` (x) with its error
        and source (``"xanes"`` fixed, ``"xanes_prior"``, ``"exafs"``), ``cluster_cn``
        (N_c, the clusters' own CN(M-M)) with its error (x's error propagated when x is
        fixed), the clusters' R (A), sigma2 (A^2) and dE0 (eV), the N_c-sigma2
        correlation (sigma2 free only), ``cluster_fraction_exafs`` (x from the EXAFS
        alone) and ``fraction_z`` (its difference from the XANES x in combined standard
        errors), the fit's R-factor, reduced chi-square, varied parameter count,
        ``two_phase_ok`` and a message.  ``cluster_cn`` is NaN where x = 0.
    settings : dict
        Everything the fit used (recorded in settings.json).
    """

    table: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def to_dataframe(self) -> pd.DataFrame:
        return self.table.copy()

    def title(self) -> str:
        return (f"two-phase EXAFS fit of {len(self.table)} steps (x from "
                f"{self.settings.get('fraction')}, disorder {self.settings.get('disorder')})")

    def report(self) -> str:
        cols = ["step", "cluster_fraction", "cluster_cn", "cluster_cn_err", "two_phase_rfactor"]
        return (self.title() + "\n"
                + self.table[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def fit_two_phase(chi_series: ChiSeries, chi_iso, model: ShellModel, *, shell: str,
                  s02: float | None = None, fraction=None, fraction_err=None,
                  fraction_mode: str = "xanes", disorder: str = "foil",
                  s02_err: float | None = None,
                  cluster: ClusterCalibration | None = None) -> TwoPhaseResult:
    """Fit every step as ``(1 - x) chi_iso + x chi_cluster``.

    Parameters
    ----------
    chi_series : ChiSeries
        The steps (from :func:`operando.exafs.remove_background`).
    chi_iso : ndarray, shape (n_k,)
        chi(k) of the isolated state on the same grid, processed as the series.
    model : ShellModel
        The fit window (k, R, k-weight, window) and the metal shell ``shell`` as the
        run resolved it (:func:`~operando.exafs.apply_foil`: its sigma2 fixed at
        the foil's with the temperature correction, dE0 held at the foil's energy
        origin, dR fixed or free); the other shells are not used.
    shell : str
        The metal shell, e.g. ``"Cu-Cu"``.
    s02 : float
        Amplitude reduction factor (from the foil); ``s02_err`` is added to N_c's error.
        Not given with ``cluster`` (whose S0^2 is used).
    fraction, fraction_err : array (n,), optional
        The XANES metal fraction per step and its error (needed unless
        ``fraction_mode = "fit"``).
    fraction_mode : {"xanes", "xanes_prior", "fit"}
    disorder : {"foil", "free"}
    cluster : ClusterCalibration, optional
        The foil fitted with the cluster model
        (:func:`~operando.exafs.cluster_shells.calibrate_cluster`); needed when the
        model has more than one shell (bcc metals; fcc with the second shell inside
        ``rmax``): its S0^2, per-shell sigma2 (``disorder = "foil"``; with ``"free"``
        the first shell's sigma2 varies and the others keep their offsets from it), dR
        (when the shell's dR is fixed) and energy origin (when its dE0 is held at the
        foil's) are used.  Without it the one-shell model takes ``shell``'s values in
        ``model`` (as :func:`~operando.exafs.apply_foil` resolved them) and ``s02``.

    Returns
    -------
    TwoPhaseResult
    """
    check_choice("fraction_mode", fraction_mode, FRACTION_MODES)
    check_choice("disorder", disorder, DISORDER_MODES)
    if shell not in model.labels:
        raise ConfigError(f"two-phase fit: metal shell {shell!r} is not among the shells "
                          f"{model.labels}")
    spec = model.spec(shell)
    shells = cluster.cluster if cluster is not None else cluster_model(model, shell)
    if cluster is None and len(shells.shells) > 1:
        raise ConfigError(f"two-phase fit: the {shells.structure} cluster model of {shell} has "
                          f"{len(shells.shells)} shells; it needs the foil calibrated on them "
                          "(cluster = calibrate_cluster(...))")
    if cluster is not None:
        if s02 is not None:
            raise ConfigError("two-phase fit: give s02 or cluster, not both (the cluster "
                              "calibration's S0^2 belongs to its shells)")
        s02, s02_err = cluster.s02, cluster.s02_err
    elif s02 is None:
        raise ConfigError("two-phase fit: needs s02 (the foil's) or cluster")
    if cluster is None and disorder == "foil" and spec.sigma2.mode != "fixed":
        raise ConfigError(f"two-phase disorder = \"foil\" needs the foil's sigma2 for {shell} "
                          "([foil] file, sigma2 = \"fix\"); or use disorder = \"free\"")
    n = len(chi_series)
    if fraction_mode != "fit":
        if fraction is None:
            raise ConfigError(f"two-phase fraction = \"{fraction_mode}\" needs the XANES "
                              "metal fraction ([components] with a metal reference)")
        x0 = np.asarray(fraction, dtype=float).reshape(n)
        x0_err = (np.zeros(n) if fraction_err is None
                  else np.nan_to_num(np.asarray(fraction_err, dtype=float).reshape(n)))
    else:
        x0 = np.full(n, np.nan) if fraction is None else np.asarray(fraction, float).reshape(n)
        x0_err = np.full(n, np.nan) if fraction_err is None else \
            np.asarray(fraction_err, float).reshape(n)
    k = np.asarray(chi_series.k, dtype=float)
    iso = np.asarray(chi_iso, dtype=float).reshape(-1)
    if iso.size < k.size:
        iso = np.concatenate([iso, np.full(k.size - iso.size, np.nan)])
    win = FitWindow(k, model)
    if not np.all(np.isfinite(iso[win.cols])):
        raise DataError("two-phase fit: the isolated state's chi(k) does not cover the fit "
                        f"window k {model.kmin:g}-{model.kmax:g} 1/A")
    fixed = _fixed_values(model, spec, disorder, cluster)
    path = ClusterChi(shells, win.k, fixed.pop("sigma2_offsets"))
    rows = []
    for i in range(n):
        step = int(chi_series.steps[i])
        chi = np.asarray(chi_series.chi[i], dtype=float)
        if not bool(chi_series.ok[i]) or not np.all(np.isfinite(chi[win.cols])):
            rows.append(_empty(step, "no chi(k) for this step"))
            continue
        if fraction_mode != "fit" and not np.isfinite(x0[i]):
            rows.append(_empty(step, "no XANES fraction for this step"))
            continue
        try:
            one = _Step(win, path, chi, iso, s02, fixed, float(chi_series.e0[i]), model)
            rows.append(one.run(step, x0[i], x0_err[i], fraction_mode, s02, s02_err))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            # one step's numerical failure is that step's result, never the chunk's
            log.warning("step %d: two-phase fit failed: %s", step, exc)
            rows.append(_empty(step, f"fit failed: {type(exc).__name__}: {exc}"))
    out = pd.DataFrame(rows, columns=["step", *TWO_PHASE_COLUMNS])
    settings = {"shell": shell, "fraction": fraction_mode, "disorder": disorder, "s02": s02,
                "s02_err": s02_err, "kmin": model.kmin, "kmax": model.kmax,
                "kweight": model.kweight, "dk": model.dk, "window": model.window,
                "rmin": model.rmin, "rmax": model.rmax,
                "path": str(shells.shells[0].path.file), "cluster_model": shells.to_dict(),
                "cluster_calibration": None if cluster is None else cluster.to_dict(),
                "fixed": {k_: v for k_, v in fixed.items() if k_ != "de0_edge"},
                "de0_edge": fixed.get("de0_edge"), "engine": "lmfit leastsq (feffit statistics)"}
    return TwoPhaseResult(table=out, settings=settings)


def _fixed_values(model: ShellModel, spec, disorder: str, cluster) -> dict:
    out = {}
    if cluster is not None:
        s2 = np.asarray(cluster.sigma2, dtype=float)
        out["sigma2_offsets"] = s2 - s2[0]
        first = float(s2[0])
    else:
        out["sigma2_offsets"] = None
        first = spec.sigma2.value if spec.sigma2.mode == "fixed" else None
    if disorder == "foil":
        out["sigma2"] = float(first)
    else:
        start = first if first is not None else spec.absent_sigma2
        out["sigma2_start"] = float(start) if start is not None else float(model.absent_sigma2)
        out["sigma2_bounds"] = (model.sigma2_min, model.sigma2_max)
    if spec.deltar.mode == "fixed":
        out["deltar"] = float(spec.deltar.value if cluster is None else cluster.deltar)
    out["deltar_max"] = float(model.dr_max)
    if spec.de0.mode == "edge":
        out["de0_edge"] = float(spec.de0.value if cluster is None else cluster.edge_energy)
    elif spec.de0.mode == "fixed":
        out["de0"] = float(spec.de0.value)
    out["de0_max"] = float(model.de0_max)
    return out


def _empty(step: int, message: str) -> list:
    row = [step] + [np.nan] * len(TWO_PHASE_COLUMNS)
    cols = list(TWO_PHASE_COLUMNS)
    row[1 + cols.index("cluster_fraction_source")] = ""
    row[1 + cols.index("two_phase_ok")] = False
    row[1 + cols.index("two_phase_message")] = message
    row[1 + cols.index("two_phase_n_varys")] = 0
    return row


class _Step:
    """One step's fits (x fixed, prior or free)."""

    def __init__(self, win: FitWindow, path, chi, iso, s02, fixed, e0, model):
        self.win, self.path, self.s02, self.fixed = win, path, float(s02), fixed
        self.data = chi[win.cols]
        self.iso = iso[win.cols]
        self.eps = win.noise(chi)
        self.data_r = win.M @ self.data
        de0 = fixed.get("de0")
        if "de0_edge" in fixed:
            de0 = fixed["de0_edge"] - e0
        self.de0 = de0
        self.model = model

    def params(self, x, vary_x: bool):
        import lmfit   # here: a run without two_phase never imports lmfit (and scipy)

        p = lmfit.Parameters()
        f = self.fixed
        p.add("x", value=float(np.clip(x, 0.0, 1.0)) if np.isfinite(x) else 0.5, vary=vary_x,
              min=X_BOUNDS[0], max=X_BOUNDS[1])
        p.add("cn", value=8.0, min=CN_BOUNDS[0], max=CN_BOUNDS[1])
        p.add("deltar", value=f["deltar"] if "deltar" in f else 0.0, vary="deltar" not in f,
              min=-f["deltar_max"], max=f["deltar_max"])
        if "sigma2" in f:
            p.add("sigma2", value=f["sigma2"], vary=False)
        else:
            lo, hi = f["sigma2_bounds"]
            p.add("sigma2", value=float(np.clip(f["sigma2_start"], lo, hi)), min=lo, max=hi)
        p.add("de0", value=0.0 if self.de0 is None else self.de0, vary=self.de0 is None,
              min=-f["de0_max"], max=f["de0_max"])
        return p

    def model_chi(self, v) -> np.ndarray:
        metal = self.path.chi(self.s02 * v["cn"], v["de0"], v["deltar"], v["sigma2"])
        return (1.0 - v["x"]) * self.iso + v["x"] * metal

    def residual(self, p, scale=1.0, prior=None):
        v = p.valuesdict()
        r = self.win.M @ (self.data - self.model_chi(v)) / (self.eps * scale)
        if prior is not None:
            r = np.append(r, (v["x"] - prior[0]) / prior[1])
        return r

    def fit(self, x, vary_x, scale=1.0, prior=None):
        import lmfit

        res = lmfit.minimize(self.residual, self.params(x, vary_x), method="leastsq",
                             kws={"scale": scale, "prior": prior}, scale_covar=False)
        redchi, rfactor, names, cov, errs = self.win.statistics(
            res, self.residual(res.params, scale),
            self.win.M @ (self.data - self.model_chi(res.params.valuesdict())), self.data_r,
            scale_covar=prior is None)
        corr = math.nan
        if cov is not None and "sigma2" in names:
            a, b = names.index("cn"), names.index("sigma2")
            corr = float(cov[a, b] / math.sqrt(cov[a, a] * cov[b, b]))
        at_bound = [n for n in names if on_bound(res.params[n])]
        return res, errs, corr, redchi, rfactor, at_bound

    def run(self, step, x0, x0_err, mode, s02, s02_err) -> list:
        # x from the EXAFS alone: the fit itself in "fit" mode, the consistency check otherwise
        free = self.fit(x0, True)
        x_ex, x_ex_err = free[0].params["x"].value, free[1].get("x", math.nan)
        if mode == "fit":
            chosen, source, x, x_err = free, "exafs", x_ex, x_ex_err
        elif mode == "xanes" or not (np.isfinite(x0_err) and x0_err > 0):
            source, x, x_err = "xanes", float(x0), float(x0_err)
            if x <= 0:                                      # no clusters: nothing to size
                chosen = None
            else:
                chosen = self.fit(x, False)
        else:
            source = "xanes_prior"
            first = self.fit(x0, False)
            scale = math.sqrt(max(first[3], 1e-12))          # EXAFS reduced chi-square -> 1
            chosen = self.fit(x0, True, scale=scale, prior=(float(x0), float(x0_err)))
            x, x_err = chosen[0].params["x"].value, chosen[1].get("x", math.nan)
        messages = []
        if chosen is None:
            v = self.params(0.0, False).valuesdict()
            resid = self.win.M @ (self.data - self.model_chi(v))
            rfactor = float(np.sum(resid**2) / np.sum(self.data_r**2))
            chi_square = float(np.sum((resid / self.eps)**2)) * self.win.n_idp / self.win.npts
            redchi = chi_square / self.win.n_idp
            cn = cn_err = r = r_err = s2 = s2_err = corr = de0 = math.nan
            n_varys, at_bound = 0, []
            messages.append("x = 0: no clusters, no cluster CN")
        else:
            res, errs, corr, redchi, rfactor, at_bound = chosen
            p = res.params
            cn, cn_err = p["cn"].value, errs.get("cn", math.nan)
            if source == "xanes" and x > 0 and np.isfinite(x_err):
                # x fixed: its error moves N_c as N_c x / x (the metal amplitude is x N_c)
                cn_err = math.hypot(cn_err, cn * x_err / x)
            if s02_err:
                cn_err = math.hypot(cn_err, cn * float(s02_err) / float(s02))
            r = self.path.reff + p["deltar"].value
            # a parameter held fixed has no error of its own
            r_err = errs["deltar"] if "deltar" in errs else (math.nan if p["deltar"].vary else 0.0)
            s2, s2_err = p["sigma2"].value, errs["sigma2"] if "sigma2" in errs else 0.0
            de0 = p["de0"].value
            n_varys = res.nvarys
            if not res.success or not np.isfinite(cn_err):
                messages.append("no error bars" if res.success else "not converged")
        z = math.nan
        if mode != "fit" and np.isfinite(x0) and np.isfinite(x_ex_err):
            z = (x_ex - x0) / math.hypot(x_ex_err, x0_err if np.isfinite(x0_err) else 0.0)
        if at_bound:
            messages.append("on a bound: " + ", ".join(at_bound))
        if rfactor > RFACTOR_MAX:
            messages.append(f"R-factor {rfactor:.3f} above {RFACTOR_MAX}")
        ok = not messages or messages == ["x = 0: no clusters, no cluster CN"]
        return [step, x, x_err, source, cn, cn_err, r, r_err, s2, s2_err, corr, de0, x_ex,
                x_ex_err, z, rfactor, redchi, n_varys, bool(ok), "; ".join(messages)]
