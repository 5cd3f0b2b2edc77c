"""Two-phase EXAFS: the isolated state measured, the clusters modelled.

A step holding a fraction ``x`` of its absorbers in metal clusters and the rest in the
isolated (ionic, single-atom) state has

    chi(k) = (1 - x) chi_iso(k) + x chi_cluster(k),

with ``chi_iso`` the *measured* chi(k) of the isolated state (a reference spectrum, the
first step or a stretch of steps, processed exactly as the series) and ``chi_cluster``
the FEFF metal shell with the clusters' own coordination number ``N_c``, distance and
disorder.  The classic per-step shell fit reads the mixture's CN(M-M) = ``x N_c``; the
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

from .._util.larch_compat import ETOK, ftwindow
from .._util.validate import check_choice
from .._util.result import Result
from ..errors import ConfigError, DataError
from ..schema import TWO_PHASE_COLUMNS
from .background import ChiSeries
from .batch import tabulate_path
from .batch.ft import ft_matrix
from .model import ShellModel, n_independent, resolve_paths

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
KSTEP, NFFT = 0.05, 2048


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


class _Window:
    """The fixed part: grid, windowed FT matrix in the R window, n_idp."""

    def __init__(self, k, model: ShellModel):
        if abs(float(k[1] - k[0]) - KSTEP) > 1e-9 or abs(float(k[0])) > 1e-9:
            raise DataError("two-phase fit: chi(k) must be on the 0.05 1/A grid from k = 0 "
                            "(as remove_background gives it)")
        kmax = min(model.kmax, float(k[-1]))
        win = ftwindow(k, xmin=model.kmin, xmax=kmax, dx=model.dk, dx2=model.dk,
                       window=model.window)
        weight = win * k ** int(model.kweight)
        self.cols = np.flatnonzero(weight != 0)
        rstep = np.pi / (KSTEP * NFFT)
        rows = np.arange(int(max(0, 0.01 + model.rmin / rstep)),
                         int(min(NFFT / 2, 0.01 + model.rmax / rstep)))
        self.M = ft_matrix(self.cols, rows, NFFT, KSTEP) * weight[self.cols]
        self.k = k[self.cols]
        self.weight = weight
        self.kwin_ave = win.sum() * KSTEP / (kmax - model.kmin)
        self.n_idp = n_independent(model)
        self.npts = self.M.shape[0]

    def noise(self, chi_row) -> float:
        """Larch's ``estimate_noise``: eps_r from chi(R) at 15-30 A."""
        x = np.zeros(NFFT)
        n = min(len(chi_row), NFFT)
        x[:n] = np.nan_to_num(chi_row[:n] * self.weight[:n])
        chir = np.fft.rfft(x) * (KSTEP / math.sqrt(math.pi))
        rstep = np.pi / (KSTEP * NFFT)
        high = chir[int(0.01 + 15.0 / rstep):int(min(NFFT / 2, 1.01 + 30.0 / rstep))]
        eps = math.sqrt(float((high.real**2 + high.imag**2).sum()) / (2 * high.size))
        return eps / self.kwin_ave if eps > 0 else 1.0


def fit_two_phase(chi_series: ChiSeries, chi_iso, model: ShellModel, *, shell: str, s02: float,
                  fraction=None, fraction_err=None, fraction_mode: str = "xanes",
                  disorder: str = "foil", s02_err: float | None = None) -> TwoPhaseResult:
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
    fraction, fraction_err : array (n,), optional
        The XANES metal fraction per step and its error (needed unless
        ``fraction_mode = "fit"``).
    fraction_mode : {"xanes", "xanes_prior", "fit"}
    disorder : {"foil", "free"}

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
    if disorder == "foil" and spec.sigma2.mode != "fixed":
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
    win = _Window(k, model)
    if not np.all(np.isfinite(iso[win.cols])):
        raise DataError("two-phase fit: the isolated state's chi(k) does not cover the fit "
                        f"window k {model.kmin:g}-{model.kmax:g} 1/A")
    table = resolve_paths(model)[shell]
    path = MetalPath(tabulate_path(table, label=shell), win.k)
    fixed = _fixed_values(model, spec, disorder)
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
                "rmin": model.rmin, "rmax": model.rmax, "path": str(table.file),
                "fixed": {k_: v for k_, v in fixed.items() if k_ != "de0_edge"},
                "de0_edge": fixed.get("de0_edge"), "engine": "lmfit leastsq (feffit statistics)"}
    return TwoPhaseResult(table=out, settings=settings)


def _fixed_values(model: ShellModel, spec, disorder: str) -> dict:
    out = {}
    if disorder == "foil":
        out["sigma2"] = float(spec.sigma2.value)
    else:
        start = spec.sigma2.value if spec.sigma2.mode == "fixed" else spec.absent_sigma2
        out["sigma2_start"] = float(start) if start is not None else float(model.absent_sigma2)
        out["sigma2_bounds"] = (model.sigma2_min, model.sigma2_max)
    if spec.deltar.mode == "fixed":
        out["deltar"] = float(spec.deltar.value)
    out["deltar_max"] = float(model.dr_max)
    if spec.de0.mode == "edge":
        out["de0_edge"] = float(spec.de0.value)
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


class MetalPath:
    """The metal path on the fit's k points: Larch's EXAFS equation for one parameter set
    (the equation of :meth:`~operando.exafs.batch.PathTable.chi`, ``c3 = 0``), with the
    table functions looked up once per dE0 -- held fixed at the foil's origin, they are
    looked up once per step.  Tested equal to ``PathTable.chi``."""

    def __init__(self, table, k):
        self.reff = float(table.reff)
        self.k2 = np.asarray(k, dtype=float) ** 2
        self.q0, self.h, self.coefs = float(table.q0), float(table.h), table.coefs
        self._e0 = None
        self._funcs = None

    def _lookup(self, e0: float):
        if e0 != self._e0:
            en = self.k2 - e0 * ETOK
            q = np.copysign(np.sqrt(np.abs(en)), en)
            u = (q - self.q0) / self.h
            i = np.clip(np.floor(u), 0, self.coefs.shape[1] - 1).astype(np.intp)
            t = u - i
            c = self.coefs[:, i, :]                                  # (4, n_k, 4)
            pha, famp, a, lam = c[..., 0] + t * (c[..., 1] + t * (c[..., 2] + t * c[..., 3]))
            self._e0, self._funcs = e0, (q, pha, famp, a, 1.0 / lam)
        return self._funcs

    def chi(self, amp, e0, deltar, sigma2) -> np.ndarray:
        q, pha, famp, a, b = self._lookup(float(e0))
        reff = self.reff
        x = deltar - 2.0 * sigma2 / reff
        dexp = -2.0 * reff * b - 2.0 * sigma2 * (a * a - b * b) - 2.0 * b * x
        phi = 2.0 * reff * q + pha + 2.0 * a * x - 4.0 * sigma2 * a * b
        return amp * famp * np.exp(dexp) * np.sin(phi) / (q * (reff + deltar) ** 2)


class _Step:
    """One step's fits (x fixed, prior or free)."""

    def __init__(self, win: _Window, path, chi, iso, s02, fixed, e0, model):
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
        r = self.residual(res.params, scale)
        w = self.win
        chi_square = float(np.sum(r**2)) * w.n_idp / w.npts
        redchi = chi_square / max(w.n_idp - res.nvarys, 1e-9)
        rfactor = float(np.sum((w.M @ (self.data - self.model_chi(res.params.valuesdict())))**2)
                        / np.sum(self.data_r**2))
        names = [n for n, q in res.params.items() if q.vary]
        cov = None if res.covar is None else np.asarray(res.covar, float)
        if cov is not None and prior is None:
            cov = cov * redchi                      # feffit: errors scaled by sqrt(redchi)
        errs = {n: (math.sqrt(cov[j, j]) if cov is not None and cov[j, j] >= 0 else math.nan)
                for j, n in enumerate(names)}
        corr = math.nan
        if cov is not None and "sigma2" in names:
            a, b = names.index("cn"), names.index("sigma2")
            corr = float(cov[a, b] / math.sqrt(cov[a, a] * cov[b, b]))
        at_bound = [n for n in names if _on_bound(res.params[n])]
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


def _on_bound(p) -> bool:
    span = (p.max - p.min) if np.isfinite(p.max) and np.isfinite(p.min) else 1.0
    return bool(abs(p.value - p.min) < 1e-4 * span or abs(p.max - p.value) < 1e-4 * span)
