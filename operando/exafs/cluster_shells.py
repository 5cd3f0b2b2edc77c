"""The clusters' metal shells: the first shell of the metal, and the second where the
physics needs it, tied to the first by the bulk lattice.

bcc metals (Fe, Cr, Mo, W, V, Nb, Ta): the first two shells, 8 at ``r1`` and 6 at
``a = 2 r1 / sqrt(3)`` (2.48 and 2.87 A in Fe), lie 0.39 A apart and overlap in chi(R) at
any usual k range; one shell cannot describe them (the Fe foil alone fits only to
R-factor ~0.06 with one).  Both are modelled: the second shell's CN tied to the first's
by the bulk ratio 6/8, its distance by the lattice ratio 2/sqrt(3) (an isotropic
expansion or contraction), its sigma2 the foil's for that shell.  fcc metals: the first
shell (12 at ``r1``); the second (6 at ``sqrt(2) r1``, ratio 6/12) only when that
distance is inside the fit's ``rmax``.  ``N_c`` is always the first shell's CN (the
CN-size relations are first-shell ones).

The foil is calibrated on the same shells (:func:`calibrate_cluster`: CNs fixed at the
bulk values, S0^2, one dE0, the tied dR and each shell's sigma2 fitted), the rule of
:func:`~operando.exafs.shell_path`: S0^2, sigma2 and the energy origin belong to the
paths they were fitted with.

Fits follow xraylarch's feffit conventions (:class:`FitWindow`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .._util.larch_compat import ETOK, ftwindow
from .._util.result import Result
from ..errors import DataError
from ..feffpaths import LATTICE_RATIOS, FeffPath, feff_path
from .batch import tabulate_path
from .batch.ft import ft_matrix
from .model import ShellModel, n_independent, resolve_paths

KSTEP, NFFT = 0.05, 2048
#: Metals with the bcc structure (their clusters take two shells).
BCC_METALS = frozenset({"Fe", "Cr", "Mo", "W", "V", "Nb", "Ta"})
#: Bulk CN of the first and the second shell.
BULK_CN = {"fcc": (12.0, 6.0), "bcc": (8.0, 6.0)}


@dataclass(frozen=True)
class ClusterShell:
    """One metal shell of the cluster model: its FEFF path, its CN over the first
    shell's and its distance over the first shell's (1, 1 for the first shell)."""

    label: str
    path: FeffPath
    cn_ratio: float
    r_ratio: float

    def to_dict(self) -> dict:
        return {"label": self.label, "path": str(self.path.file), "reff": self.path.reff,
                "cn_ratio": self.cn_ratio, "r_ratio": self.r_ratio}


@dataclass(frozen=True)
class ClusterModel:
    """The clusters' shells (first shell first) and the lattice they come from."""

    structure: str
    shells: tuple

    @property
    def bulk_cn(self) -> float:
        return BULK_CN[self.structure][0]

    def to_dict(self) -> dict:
        ties = "CN_j = N_c cn_ratio_j; R_j = R_1 r_ratio_j; dE0 shared"
        return {"structure": self.structure, "ties": ties,
                "shells": [s.to_dict() for s in self.shells]}


def cluster_model(model: ShellModel, shell: str, structure: str | None = None) -> ClusterModel:
    """The cluster model of the metal shell ``shell`` of ``model``.

    The first shell is ``model``'s own (its file, distance, geometry); the second is the
    FEFF path of the lattice's second shell at ``r_ratio`` times the first's reff.
    ``structure``: ``"bcc"`` for :data:`BCC_METALS`, else ``"fcc"``.
    """
    first = resolve_paths(model)[shell]
    metal = first.absorber
    structure = structure or ("bcc" if metal in BCC_METALS else "fcc")
    ratio = LATTICE_RATIOS[structure]
    shells = [ClusterShell(shell, first, 1.0, 1.0)]
    if structure == "bcc" or first.reff * ratio <= model.rmax:
        second = feff_path(metal, first.scatterer, distance=first.reff, edge=first.edge,
                           geometry=structure, shell=2)
        n1, n2 = BULK_CN[structure]
        shells.append(ClusterShell(f"{shell}.2", second, n2 / n1, ratio))
    return ClusterModel(structure=structure, shells=tuple(shells))


class FitWindow:
    """The fixed part of a fit in feffit's conventions: grid, windowed FT matrix in the R
    window, n_idp, Larch's noise estimate."""

    def __init__(self, k, model: ShellModel):
        if abs(float(k[1] - k[0]) - KSTEP) > 1e-9 or abs(float(k[0])) > 1e-9:
            raise DataError("chi(k) must be on the 0.05 1/A grid from k = 0 "
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

    def statistics(self, res, r, resid_r, data_r, scale_covar: bool = True):
        """feffit's ``(redchi, rfactor, varied names, covariance, errors)`` of an lmfit
        result from its residual ``r`` and the model's and data's ``resid_r``, ``data_r``."""
        chi_square = float(np.sum(r**2)) * self.n_idp / self.npts
        redchi = chi_square / max(self.n_idp - res.nvarys, 1e-9)
        rfactor = float(np.sum(resid_r**2) / np.sum(data_r**2))
        names = [name for name, q in res.params.items() if q.vary]
        cov = None if res.covar is None else np.asarray(res.covar, float)
        if cov is not None and scale_covar:
            cov = cov * redchi                      # feffit: errors scaled by sqrt(redchi)
        err = {name: (math.sqrt(cov[j, j]) if cov is not None and cov[j, j] >= 0 else math.nan)
               for j, name in enumerate(names)}
        return redchi, rfactor, names, cov, err



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


class ClusterChi:
    """chi(k) of the cluster model on a fit's k points for one parameter set: the
    shells with ``CN_j = cn cn_ratio_j``, ``R_j = (reff_1 + dR) r_ratio_j``, ``sigma2_j =
    sigma2 + offset_j`` and one dE0."""

    def __init__(self, cluster: ClusterModel, k, sigma2_offsets=None):
        self.cluster = cluster
        self.paths = [MetalPath(tabulate_path(s.path, label=s.label), k)
                      for s in cluster.shells]
        n = len(cluster.shells)
        self.offsets = np.zeros(n) if sigma2_offsets is None else np.asarray(sigma2_offsets, float)
        self.reff = self.paths[0].reff

    def chi(self, amp, e0, deltar, sigma2) -> np.ndarray:
        r1 = self.reff + deltar
        out = 0.0
        for s, path, off in zip(self.cluster.shells, self.paths, self.offsets):
            out = out + path.chi(amp * s.cn_ratio, e0, r1 * s.r_ratio - path.reff, sigma2 + off)
        return out


@dataclass(frozen=True)
class ClusterCalibration(Result):
    """The foil fitted with the cluster model (CNs fixed at the bulk values).

    Attributes
    ----------
    cluster : ClusterModel
    s02, s02_err : float
    sigma2, sigma2_err : tuple of float
        Per shell, A^2.
    deltar, deltar_err : float
        First shell's dR (the others follow by the lattice ratio), A.
    edge_energy : float
        The foil's E0 + dE0, eV.
    de0 : float
    rfactor, redchi : float
    n_idp : float
    at_bound : tuple of str
    """

    cluster: ClusterModel
    s02: float
    s02_err: float
    sigma2: tuple
    sigma2_err: tuple
    deltar: float
    deltar_err: float
    edge_energy: float
    de0: float
    rfactor: float
    redchi: float
    n_idp: float
    at_bound: tuple = ()

    def to_dataframe(self):
        """One row per cluster shell (its CN and distance ratios to the first shell, its
        sigma2 with error), with the fit's S0^2, dR, dE0 and R-factor on every row."""
        import pandas as pd

        return pd.DataFrame({
            "shell": [sh.label for sh in self.cluster.shells],
            "reff": [sh.path.reff for sh in self.cluster.shells],
            "cn_ratio": [sh.cn_ratio for sh in self.cluster.shells],
            "r_ratio": [sh.r_ratio for sh in self.cluster.shells],
            "sigma2": list(self.sigma2), "sigma2_err": list(self.sigma2_err),
            "s02": self.s02, "s02_err": self.s02_err, "deltar": self.deltar,
            "deltar_err": self.deltar_err, "de0": self.de0, "rfactor": self.rfactor})

    def title(self) -> str:
        return (f"ClusterCalibration ({self.cluster.structure}, {len(self.cluster.shells)} "
                f"shell(s)): S0^2 = {self.s02:.3f} +/- {self.s02_err:.3f}, "
                f"R-factor {self.rfactor:.4f}")

    def to_dict(self) -> dict:
        """Every field in order, the cluster model as ``model``, tuples as lists."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cluster"}
        return {"model": self.cluster.to_dict(),
                **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}

    @classmethod
    def from_dict(cls, values: dict, cluster: ClusterModel) -> "ClusterCalibration":
        """Back from :meth:`to_dict` (a run's checkpoint) for the model ``cluster`` it was
        fitted with (its paths checked against the recorded ones)."""
        recorded = [s["path"] for s in values["model"]["shells"]]
        if recorded != [str(s.path.file) for s in cluster.shells]:
            raise DataError(f"cluster calibration recorded on paths {recorded}, not on the "
                            "cluster model's; recalibrate the foil")
        return cls(cluster=cluster, **{f.name: tuple(values[f.name]) if f.type == "tuple"
                                       else float(values[f.name])
                                       for f in fields(cls) if f.name != "cluster"})


def calibrate_cluster(chi, e0: float, model: ShellModel, cluster: ClusterModel, *,
                      cn: float | None = None) -> ClusterCalibration:
    """Fit the foil's chi(k) (on the 0.05 1/A grid from k = 0, its E0 ``e0``) with the
    cluster model in ``model``'s window: first-shell CN ``cn`` (default the bulk
    value) and the others by their ratios fixed; S0^2, dE0, dR and each shell's sigma2
    varied (bounds of ``model``).  Errors from the covariance scaled by sqrt(redchi)."""
    import lmfit   # here: a run without two_phase never imports lmfit (and scipy)

    k = np.arange(len(chi)) * KSTEP
    chi = np.asarray(chi, dtype=float)
    win = FitWindow(k, model)
    if not np.all(np.isfinite(chi[win.cols])):
        raise DataError(f"foil: chi(k) does not cover the fit window k {model.kmin:g}-"
                        f"{model.kmax:g} 1/A")
    n = len(cluster.shells)
    if win.n_idp <= 3 + n:
        raise DataError(f"foil: {win.n_idp:.1f} independent points for {3 + n} parameters "
                        "of the cluster model; widen the k or R window")
    model_chi = ClusterChi(cluster, win.k)
    cn = cluster.bulk_cn if cn is None else float(cn)
    data = chi[win.cols]
    eps = win.noise(chi)
    p = lmfit.Parameters()
    p.add("s02", value=0.9, min=0.2, max=2.0)
    p.add("de0", value=0.0, min=-model.de0_max, max=model.de0_max)
    p.add("deltar", value=0.0, min=-model.dr_max, max=model.dr_max)
    for j in range(n):
        p.add(f"sigma2_{j}", value=0.006, min=model.sigma2_min, max=model.sigma2_max)

    def calc(v):
        out = 0.0
        for j, (s, path) in enumerate(zip(cluster.shells, model_chi.paths)):
            out = out + path.chi(v["s02"] * cn * s.cn_ratio, v["de0"],
                                 (model_chi.reff + v["deltar"]) * s.r_ratio - path.reff,
                                 v[f"sigma2_{j}"])
        return out

    def residual(params):
        return win.M @ (data - calc(params.valuesdict())) / eps

    res = lmfit.minimize(residual, p, method="leastsq", scale_covar=False)
    redchi, rfactor, names, _, err = win.statistics(
        res, residual(res.params), win.M @ (data - calc(res.params.valuesdict())), win.M @ data)
    v = res.params
    at_bound = tuple(name for name in names if on_bound(v[name]))
    return ClusterCalibration(
        cluster=cluster, s02=float(v["s02"].value), s02_err=err["s02"],
        sigma2=tuple(float(v[f"sigma2_{j}"].value) for j in range(n)),
        sigma2_err=tuple(err[f"sigma2_{j}"] for j in range(n)),
        deltar=float(v["deltar"].value), deltar_err=err["deltar"],
        edge_energy=float(e0) + float(v["de0"].value), de0=float(v["de0"].value),
        rfactor=rfactor, redchi=redchi, n_idp=win.n_idp, at_bound=at_bound)


def on_bound(p) -> bool:
    """Whether an lmfit parameter sits on one of its bounds."""
    span = (p.max - p.min) if np.isfinite(p.max) and np.isfinite(p.min) else 1.0
    return bool(abs(p.value - p.min) < 1e-4 * span or abs(p.max - p.value) < 1e-4 * span)
