"""EXAFS: background removal, Fourier transforms and shell fits of a series.

The reference engine is xraylarch (``engine="larch"``): :func:`remove_background`
calls ``larch.xafs.autobk`` per step, :func:`fourier_transform` calls
``larch.xafs.xftf`` and :func:`fit_shells` calls ``larch.xafs.feffit`` per step.
The default ``engine="fast"`` does the same maths for all steps at once with
:mod:`operando.batch` (``batch_autobk``, ``batch_fit``) and applies the same
robustness rules in batched passes (:mod:`operando._exafs_fast`); it gives the
same result table.  Not offered by the fast engine (:data:`FAST_UNSUPPORTED`,
ConfigError when requested): ``fit_space="q"`` and joint segment fits
(:func:`fit_shells_segment`).  :func:`calibrate_s02` takes ``engine`` too.

A shell fit models each shell ``S`` (``"Pt-Pt"``, ``"Cu-N"`` ...) by one FEFF
single-scattering path with degeneracy 1 and amplitude ``CN_S * S0^2``
(``S0^2`` fixed, from :func:`calibrate_s02` on a foil), a distance change
``dR_S`` (reported as ``r_S = reff + dR_S``), a Debye-Waller factor
``sigma2_S`` and an energy shift ``dE0`` (shared by all shells unless
``share_e0=False``).

Per step, the fit is done by one internal function (:func:`_fit_step`) that
returns a flat dict of the result columns (:func:`result_columns`) plus the
model chi(k); a batch engine fills the same columns so both engines give the
same :class:`ShellFitResult`.

Robustness rules applied to every step (all recorded in ``fit_message``):

* warm start from the previous good step;
* a fit that fails, ends on a bound, or whose R-factor jumps above
  ``rfactor_jump`` x the running median of the good steps (and above
  ``rfactor_floor``) is retried from deterministic starts and the best
  (lowest chi-square among the acceptable ones) is kept; if none is
  acceptable the step gets ``fit_ok=False``;
* an absent shell (CN consistent with zero: CN < 2 sigma) is refitted with its
  ``dR = 0`` and ``sigma2`` fixed at ``absent_sigma2`` so only its CN varies,
  with CN allowed down to ``absent_cn_min`` (negative) so that the error bar is
  not truncated by a bound; CN and its error are reported as fitted.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import time
import warnings
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .feffpaths import FeffPath, parse_label, path_for_shell

log = logging.getLogger(__name__)

#: Larch's uniform k grid step (1/Angstrom) used by autobk and feffit.
KSTEP = 0.05
_WINDOWS = ("hanning", "kaiser", "parzen", "welch", "gaussian", "sine", "fhanning")
_FIT_SPACES = ("r", "k", "q")
_PAR_KINDS = ("cn", "r", "sigma2", "de0")
_ENGINES = ("fast", "larch")
#: Smallest chunk the fast engine hands to an executor (batching is its speed).
FAST_MIN_CHUNK = 256
#: Larch-engine features the fast engine does not offer (requesting them with
#: engine="fast" raises ConfigError naming them).
FAST_UNSUPPORTED = {"fit_space='q'": "batch_fit fits in R or k space only",
                    "fit_shells_segment": "joint multi-spectrum fits are larch-only"}


# ============================================================ background / FT
@dataclass(frozen=True, eq=False)
class ChiSeries:
    """chi(k) of every step on one common k grid.

    Attributes
    ----------
    k : (n_k,) array
        Photoelectron wavenumber in 1/Angstrom on Larch's 0.05 grid, common to
        all steps (cut at the shortest usable step).
    chi : (n_steps, n_k) array
        chi(k), dimensionless; NaN rows for steps that are not ``ok``.
    e0, edge_step : (n_steps,) arrays
        Edge energy (eV) and edge step used for each step.
    ok : (n_steps,) bool array
    reason : list of str
        Why a step is not ok ("" when it is).
    settings : dict
        Every background-removal setting.
    normalized : object
        The normalised series this came from (``.series.conditions`` is used
        for step numbers and conditions).
    """

    k: np.ndarray
    chi: np.ndarray
    e0: np.ndarray
    edge_step: np.ndarray
    ok: np.ndarray
    reason: list
    settings: dict
    normalized: Any = None

    def __len__(self) -> int:
        return self.chi.shape[0]

    @property
    def conditions(self) -> pd.DataFrame:
        series = getattr(self.normalized, "series", None)
        if series is not None:
            return series.conditions
        return pd.DataFrame({"step": np.arange(len(self)), "file": [""] * len(self)})

    @property
    def steps(self) -> np.ndarray:
        return self.conditions["step"].to_numpy()

    def table(self) -> pd.DataFrame:
        """``step, e0, edge_step, ok, reason``."""
        return pd.DataFrame({"step": self.steps, "e0": self.e0, "edge_step": self.edge_step,
                             "ok": self.ok, "reason": self.reason})


@dataclass(frozen=True, eq=False)
class RSeries:
    """Fourier transforms chi(R) of a :class:`ChiSeries`.

    Attributes
    ----------
    r : (n_r,) array
        Radial distance in Angstrom (not phase corrected).
    chir : (n_steps, n_r) complex array
        chi(R) in 1/Angstrom^(kweight+1); NaN rows for steps not ok.
    chir_mag : (n_steps, n_r) array
        ``abs(chir)``.
    ok : (n_steps,) bool array
    settings : dict
    """

    r: np.ndarray
    chir: np.ndarray
    chir_mag: np.ndarray
    ok: np.ndarray
    settings: dict


def remove_background(normalized, *, rbkg: float = 1.0, kweight: float = 2, kmin: float = 0.0,
                      kmax: float | None = None, dk: float = 0.1, window: str = "hanning",
                      nclamp: int = 3, clamp_lo: float = 0, clamp_hi: float = 1,
                      engine: str = "fast") -> ChiSeries:
    """Extract chi(k) from every step with the AUTOBK spline background.

    Parameters
    ----------
    normalized : NormalizedSeries
        From ``operando.xanes.normalize``; uses ``series.energy`` (eV),
        ``series.mu``, ``e0`` (eV), ``edge_step``, ``ok`` and ``reason``.
    rbkg : float
        Distance (Angstrom) below which chi(R) is treated as background.
    kweight, kmin, kmax, dk, window
        k-weight and window (k in 1/Angstrom) of the transform AUTOBK
        minimises; ``kmax=None`` uses the full data range.
    nclamp, clamp_lo, clamp_hi
        AUTOBK end-point clamps.
    engine : {"fast", "larch"}
        ``"larch"`` calls ``larch.xafs.autobk`` per step with that step's e0
        and edge step.  ``"fast"`` (default) solves the same AUTOBK objective
        for all steps at once with :func:`operando.batch.batch_autobk` (exact
        stationary point of Larch's objective; Larch stops at ``ftol=1e-6``,
        so chi(k) agrees to well under 1 % of its rms).  e0 is rounded to
        0.01 eV (``settings["e0_round"]``, and the ``e0`` recorded) so steps
        share one operator.  Every option above is supported by both engines.

    Returns
    -------
    ChiSeries
        A step whose background removal fails gets ``ok=False`` and a reason;
        the series completes.
    """
    _check_choice("engine", engine, _ENGINES)
    _check_choice("window", window, _WINDOWS)
    series = normalized.series
    n = len(series)
    e0 = np.asarray(normalized.e0, dtype=float).reshape(-1)
    edge_step = np.asarray(normalized.edge_step, dtype=float).reshape(-1)
    if e0.size != n or edge_step.size != n:
        raise DataError(f"normalized series has {e0.size} e0 / {edge_step.size} edge_step values "
                        f"for {n} spectra")
    ok = np.array(getattr(normalized, "ok", np.ones(n, bool)), dtype=bool).copy()
    reason = list(getattr(normalized, "reason", [""] * n))
    settings = dict(rbkg=rbkg, kweight=kweight, kmin=kmin, kmax=kmax, dk=dk, window=window,
                    nclamp=nclamp, clamp_lo=clamp_lo, clamp_hi=clamp_hi, engine=engine,
                    kstep=KSTEP)
    problems: dict[int, str] = {}
    for i in np.flatnonzero(ok):
        mu = series.mu[i]
        if not np.all(np.isfinite(mu)):
            problems[i] = "mu holds non-finite values"
        elif not (np.isfinite(e0[i]) and series.energy[0] < e0[i] < series.energy[-1]):
            problems[i] = f"e0 {e0[i]} eV is outside the energy range"
        elif not (np.isfinite(edge_step[i]) and edge_step[i] > 0):
            problems[i] = f"edge step {edge_step[i]} is not positive"
    todo = [i for i in np.flatnonzero(ok) if i not in problems]
    rows: list[np.ndarray | None] = [None] * n
    if engine == "fast":
        from ._exafs_fast import E0_ROUND, background_rows

        done, failed = background_rows(series.energy, series.mu, e0, edge_step, todo,
                                       rbkg=rbkg, kweight=kweight, kmin=kmin, kmax=kmax, dk=dk,
                                       window=window, nclamp=nclamp, clamp_lo=clamp_lo,
                                       clamp_hi=clamp_hi, kstep=KSTEP)
        for i, row in done.items():
            rows[i] = row
        problems.update(failed)
        e0 = np.where(np.isfinite(e0), np.round(e0 / E0_ROUND) * E0_ROUND, e0)
        settings["e0_round"] = E0_ROUND
        todo = []
    if todo:  # the larch engine: importing larch costs ~1.5 s, so only when it is used
        from larch import Group
        from larch.xafs import autobk
    for i in todo:
        group = Group()
        try:
            autobk(series.energy, series.mu[i], group=group, rbkg=rbkg, e0=e0[i],
                   edge_step=edge_step[i], kmin=kmin, kmax=kmax, kweight=kweight, dk=dk,
                   win=window, nclamp=nclamp, clamp_lo=clamp_lo, clamp_hi=clamp_hi)
        except Exception as exc:  # larch raises bare exceptions on bad spectra
            problems[i] = f"autobk failed: {type(exc).__name__}: {exc}"
            continue
        chi = getattr(group, "chi", None)
        if chi is None or not np.all(np.isfinite(chi)) or len(chi) < 40:
            problems[i] = "autobk returned no usable chi(k)"
        else:
            rows[i] = np.asarray(chi, dtype=float)
    for i, problem in sorted(problems.items()):
        ok[i] = False
        reason[i] = f"background: {problem}"
        log.warning("step %s: %s", series.conditions["step"].iloc[i], reason[i])

    lengths = [len(r) for r in rows if r is not None]
    n_k = min(lengths) if lengths else 1
    k = KSTEP * np.arange(n_k)
    chi = np.full((n, n_k), np.nan)
    for i, row in enumerate(rows):
        if row is not None:
            chi[i] = row[:n_k]
    settings["k_common_max"] = float(k[-1])
    return ChiSeries(k=k, chi=chi, e0=e0.copy(), edge_step=edge_step.copy(), ok=ok,
                     reason=reason, settings=settings, normalized=normalized)


def fourier_transform(chi_series: ChiSeries, *, kmin: float = 2, kmax: float | None = None,
                      dk: float = 1, window: str = "kaiser", kweight: float = 2,
                      rmax_out: float = 10) -> RSeries:
    """Forward Fourier transform of every step, identical to ``larch.xafs.xftf``.

    Parameters
    ----------
    chi_series : ChiSeries
    kmin, kmax, dk : float
        k window (1/Angstrom); ``kmax=None`` uses the end of the common grid.
    window : str
        Larch window name.
    kweight : float
    rmax_out : float
        Largest R (Angstrom) kept in the output.

    Returns
    -------
    RSeries
    """
    from larch import Group
    from larch.xafs import xftf

    _check_choice("window", window, _WINDOWS)
    k = chi_series.k
    if kmax is None:
        kmax = float(k[-1])
    settings = dict(kmin=kmin, kmax=kmax, dk=dk, window=window, kweight=kweight,
                    rmax_out=rmax_out, kstep=KSTEP)
    r = None
    out = []
    for i in range(len(chi_series)):
        if not chi_series.ok[i]:
            out.append(None)
            continue
        group = Group()
        xftf(k, chi_series.chi[i], group=group, kmin=kmin, kmax=kmax, dk=dk, window=window,
             kweight=kweight, rmax_out=rmax_out)
        r = group.r
        out.append(group.chir)
    if r is None:
        r = np.pi / (KSTEP * 2048) * np.arange(int(min(1024, 1.01 + rmax_out / (np.pi / (KSTEP * 2048)))))
    chir = np.full((len(chi_series), r.size), np.nan + 0j)
    for i, row in enumerate(out):
        if row is not None:
            chir[i] = row
    return RSeries(r=np.asarray(r), chir=chir, chir_mag=np.abs(chir),
                   ok=np.array(chi_series.ok, bool), settings=settings)


# =================================================================== the model
_SHELL_KEYS = ("label", "distance", "file", "edge", "cn", "cn_min", "cn_max", "sigma2",
               "absent_sigma2")


@dataclass(frozen=True)
class ShellSpec:
    """One shell of a :class:`ShellModel` (resolved; CN initial value and bounds)."""

    label: str
    distance: float | None = None
    file: str | None = None
    edge: str | None = None
    cn: float | None = None
    cn_min: float = 0.0
    cn_max: float = 16.0
    sigma2: float | None = None
    absent_sigma2: float | None = None

    @property
    def name(self) -> str:
        """Parameter-safe name: ``"Pt-Pt"`` -> ``"pt_pt"``."""
        return self.label.replace("-", "_").lower()

    @property
    def is_metal(self) -> bool:
        absorber, scatterer = parse_label(self.label)
        return absorber == scatterer


@dataclass(frozen=True)
class ShellModel:
    """What to fit: shells, k/R ranges and physical bounds.

    Parameters
    ----------
    shells : list of str or dict
        Shell labels (``"Pt-O"``) or dicts with ``label`` and optionally
        ``distance`` (Angstrom, model path distance), ``file`` (user
        ``feffNNNN.dat``), ``edge``, ``cn`` (initial CN), ``cn_min``,
        ``cn_max``, ``sigma2`` (initial, A^2), ``absent_sigma2`` (A^2).
    share_e0 : bool
        One dE0 for all shells (default) or one per shell.
    kmin, kmax, dk : float
        k window in 1/Angstrom.
    kweight : float
    window : str
        Larch k-window name.
    rmin, rmax : float
        Fit range in R (Angstrom).
    fit_space : {"r", "k", "q"}
    cn_max : float
        Upper CN bound (default 16, above any close-packed first shell).
    de0_max : float
        ``|dE0| <= de0_max`` eV.
    sigma2_min, sigma2_max : float
        sigma2 bounds in A^2.
    dr_max : float
        ``|dR| <= dr_max`` Angstrom.
    absent_sigma2 : float
        sigma2 (A^2) at which an absent shell is held while only its CN varies.
        0.006 A^2 is typical of room-temperature first shells (metal-ligand
        0.003-0.006, metal-metal in nanoparticles 0.005-0.008).
    absent_cn_min : float
        Lower CN bound in that refit; negative so the CN error bar of an absent
        shell is not truncated at 0.
    """

    shells: tuple = ("Pt-O", "Pt-Pt")
    share_e0: bool = True
    kmin: float = 3.0
    kmax: float = 12.0
    kweight: float = 2
    dk: float = 1.0
    window: str = "hanning"
    # Above the usual rbkg (1.0): chi(R) below rbkg is shaped by the background spline,
    # and a window that starts there inflates short M-O/M-N shells (see the README).
    rmin: float = 1.2
    rmax: float = 3.2
    fit_space: str = "r"
    cn_max: float = 16.0
    de0_max: float = 10.0
    sigma2_min: float = 0.001
    sigma2_max: float = 0.03
    dr_max: float = 0.25
    absent_sigma2: float = 0.006
    absent_cn_min: float = -2.0

    def __post_init__(self):
        shells = self.shells
        if isinstance(shells, (str, Mapping)):
            shells = [shells]
        specs = []
        for item in shells:
            if isinstance(item, ShellSpec):
                specs.append(item)
                continue
            if isinstance(item, str):
                item = {"label": item}
            if not isinstance(item, Mapping):
                raise ConfigError(f"a shell must be a label such as 'Pt-O' or a dict, got {item!r}")
            for key in item:
                _check_key(key, _SHELL_KEYS, "shell")
            if "label" not in item:
                raise ConfigError(f"shell {dict(item)} needs a 'label' such as 'Pt-O'")
            parse_label(item["label"])
            spec = ShellSpec(**{k: item[k] for k in item if k != "cn_max"},
                             cn_max=float(item.get("cn_max", self.cn_max)))
            specs.append(spec)
        if not specs:
            raise ConfigError("a shell model needs at least one shell")
        labels = [s.label for s in specs]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"shell labels must be unique, got {labels}")
        object.__setattr__(self, "shells", tuple(specs))
        _check_choice("window", self.window, _WINDOWS)
        _check_choice("fit_space", self.fit_space, _FIT_SPACES)
        if not 0 <= self.kmin < self.kmax:
            raise ConfigError(f"kmin {self.kmin} must be >= 0 and below kmax {self.kmax} (1/A)")
        if not 0 <= self.rmin < self.rmax:
            raise ConfigError(f"rmin {self.rmin} must be >= 0 and below rmax {self.rmax} (A)")
        if not 0 < self.sigma2_min < self.sigma2_max:
            raise ConfigError("need 0 < sigma2_min < sigma2_max (A^2)")
        if not self.absent_cn_min <= 0:
            raise ConfigError("absent_cn_min must be <= 0")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ShellModel":
        """Build from a config dict (e.g. the ``[exafs]`` section).

        Unknown keys raise :class:`ConfigError` naming the key and the closest
        valid one.
        """
        valid = [f.name for f in fields(cls)]
        for key in config:
            _check_key(key, valid, "shell model")
        return cls(**dict(config))

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.shells]

    def n_idp(self) -> float:
        """Nyquist number of independent points ``1 + 2 dR dk / pi``."""
        return 1 + 2 * (self.rmax - self.rmin) * (self.kmax - self.kmin) / np.pi

    def to_dict(self) -> dict:
        out = asdict(self)
        out["shells"] = [asdict(s) for s in self.shells]
        return out


def result_columns(model: ShellModel) -> list[str]:
    """The columns of :meth:`ShellFitResult.to_dataframe`, in order."""
    cols = ["step"]
    for label in model.labels:
        for kind in _PAR_KINDS:
            cols += [f"{kind}_{label}", f"{kind}_{label}_err"]
    cols += ["s02", "s02_err", "r_factor", "redchi", "chi_square", "n_idp", "n_varys",
             "fit_ok", "fit_message"]
    return cols


# ================================================================ fit results
@dataclass(frozen=True, eq=False)
class ShellFitResult:
    """Shell-fit results of a series: one row per fitted step.

    Attributes
    ----------
    table : DataFrame
        :func:`result_columns` (plus ``merged_steps`` when repeats were merged).
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
class S02Calibration:
    """S0^2 from a reference foil with the bulk CN fixed.

    Attributes
    ----------
    s02, s02_err : float
        Amplitude reduction factor and its 1-sigma error.
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


# ========================================================== public fit calls
def fit_shells(chi_series: ChiSeries, model: ShellModel, *, s02: float, engine: str = "fast",
               warm_start: bool = True, retries: int = 4, merge_repeats: str | None = None,
               executor: Executor | None = None, chunk_size: int = 8,
               rfactor_jump: float = 3.0, rfactor_floor: float = 0.02) -> ShellFitResult:
    """Fit the shells of ``model`` to every step.

    Parameters
    ----------
    chi_series : ChiSeries
    model : ShellModel
    s02 : float
        Amplitude reduction factor S0^2 (fixed), e.g. ``calibrate_s02(...).s02``.
    engine : {"fast", "larch"}
        ``"larch"``: one ``larch.xafs.feffit`` per step.  ``"fast"``
        (default): all steps at once with :func:`operando.batch.batch_fit`
        (Larch's residual, statistics and error bars; a projected
        Levenberg-Marquardt instead of lmfit's bound transform, which gives the
        same optimum when no bound is active) and the same robustness rules,
        applied in batched passes (see :mod:`operando._exafs_fast`).  Not
        supported by the fast engine (ConfigError): ``fit_space="q"``; joint
        fits (:func:`fit_shells_segment`) are larch-only.  With an
        ``executor`` the fast engine fits chunks of at least
        ``FAST_MIN_CHUNK`` steps (batching is its speed).
    warm_start : bool
        Start each step from the previous good step's result (fast engine: a
        second batched pass seeded from the previous good step's first pass,
        keeping the better fit).
    retries : int
        Number of extra deterministic starts tried for a bad step.
    merge_repeats : str, optional
        Condition column: consecutive steps with equal value are averaged
        before fitting (row ``step`` = first step; ``merged_steps`` lists all).
    executor : concurrent.futures.Executor, optional
        Fits contiguous chunks of ``chunk_size`` steps in parallel (warm start
        restarts at each chunk).
    rfactor_jump, rfactor_floor : float
        A step is "bad" when its R-factor exceeds ``rfactor_jump`` x the running
        median of the good steps and also ``rfactor_floor`` (0.02: below it a
        fit is good by usual EXAFS standards, so no jump is a failure).

    Returns
    -------
    ShellFitResult
        Failed steps have ``fit_ok=False`` and a ``fit_message``; never raises
        for one bad step.
    """
    _check_choice("engine", engine, _ENGINES)
    if not isinstance(model, ShellModel):
        raise ConfigError(f"model must be a ShellModel, got {type(model).__name__}")
    if engine == "fast" and model.fit_space == "q":
        reason = FAST_UNSUPPORTED["fit_space='q'"]
        raise ConfigError(f"fit_space='q' is not supported by engine='fast' ({reason}); "
                          "use engine='larch' or fit_space='r'/'k'")
    s02 = _positive("s02", s02)
    k, chi, steps, ok, reasons, merged = _prepare_data(chi_series, merge_repeats)
    model = _clip_kmax(model, k)
    n_shells = len(model.shells)
    _check_information(model, 3 * n_shells + (1 if model.share_e0 else n_shells))
    paths = _resolve_paths(model)
    opts = dict(warm_start=warm_start, retries=int(retries), rfactor_jump=rfactor_jump,
                rfactor_floor=rfactor_floor)

    t0 = time.perf_counter()
    fit_chunk = _fit_chunk
    size = max(1, int(chunk_size))
    if engine == "fast":
        from ._exafs_fast import fit_rows as fit_chunk
        size = max(size, FAST_MIN_CHUNK)
    if executor is None:
        rows = fit_chunk(k, chi, ok, reasons, steps, model, paths, s02, opts)
    else:
        bounds = list(range(0, len(steps), size)) + [len(steps)]
        futures = [executor.submit(fit_chunk, k, chi[a:b], ok[a:b], reasons[a:b], steps[a:b],
                                   model, paths, s02, opts) for a, b in zip(bounds[:-1], bounds[1:])]
        rows = [row for fut in futures for row in fut.result()]
    elapsed = time.perf_counter() - t0
    log.info("fitted %d steps in %.2f s", len(steps), elapsed)

    settings = _settings(model, paths, s02, engine)
    settings.update(opts, merge_repeats=merge_repeats,
                    chunk_size=size if executor else None, seconds=elapsed)
    return _make_result(rows, k, chi, model, settings, merged)


def fit_shells_segment(chi_series: ChiSeries, model: ShellModel, *, s02: float,
                       steps: Sequence[int] | None = None,
                       shared: Iterable[str] = ("r", "sigma2", "de0"),
                       engine: str = "larch") -> ShellFitResult:
    """Fit several steps simultaneously (one feffit with several datasets).

    Parameters
    ----------
    chi_series : ChiSeries
    model : ShellModel
    s02 : float
    steps : sequence of int, optional
        ``step`` numbers to fit together (default: all ok steps).
    shared : iterable of {"cn", "r", "sigma2", "de0"}
        Parameter kinds shared by all steps; the others are fitted per step.
        Default shares distances, sigma2 and dE0 so only the CNs differ.

    Returns
    -------
    ShellFitResult
        One row per step; shared parameters repeat, ``r_factor``, ``redchi``,
        ``n_idp``, ``n_varys`` are those of the joint fit.
    """
    if engine == "fast":
        raise ConfigError("fit_shells_segment is not supported by engine='fast' "
                          f"({FAST_UNSUPPORTED['fit_shells_segment']}); use engine='larch'")
    _check_choice("engine", engine, ("larch",))
    shared = tuple(shared)
    for kind in shared:
        _check_choice("shared", kind, _PAR_KINDS)
    s02 = _positive("s02", s02)
    k, chi, all_steps, ok, reasons, _ = _prepare_data(chi_series, None)
    if steps is None:
        idx = np.flatnonzero(ok)
    else:
        idx = []
        for step in steps:
            hits = np.flatnonzero(all_steps == step)
            if hits.size == 0:
                raise DataError(f"step {step} is not in the series")
            if not ok[hits[0]]:
                raise DataError(f"step {step} cannot be fitted: {reasons[hits[0]]}")
            idx.append(int(hits[0]))
        idx = np.array(idx, dtype=int)
    if idx.size == 0:
        raise DataError("no usable step to fit")
    model = _clip_kmax(model, k)
    paths = _resolve_paths(model)
    rows = _fit_segment(k, chi[idx], [int(s) for s in all_steps[idx]], model, paths, s02, shared)
    settings = _settings(model, paths, s02, engine)
    settings.update(segment_steps=[int(s) for s in all_steps[idx]], shared=list(shared))
    return _make_result(rows, k, chi[idx], model, settings, None)


def calibrate_s02(chi_series_or_normalized, *, shell: str = "Pt-Pt", cn: float = 12.0,
                  step: int = 0, file: str | Path | None = None, distance: float | None = None,
                  kmin: float = 3.0, kmax: float = 12.0, kweight: float = 2, dk: float = 1.0,
                  window: str = "hanning", rmin: float | None = None, rmax: float | None = None,
                  fit_space: str = "r", rbkg: float = 1.0, engine: str = "fast") -> S02Calibration:
    """S0^2 from a reference (foil) spectrum with the coordination number fixed.

    Fits the first shell with ``CN = cn`` fixed and the amplitude ``S0^2``,
    ``dE0``, ``dR`` and ``sigma2`` free; the result is reported like any fit.

    Parameters
    ----------
    chi_series_or_normalized : ChiSeries or NormalizedSeries
        A normalised series gets :func:`remove_background` (``rbkg``,
        ``kweight``) first.
    shell : str
        First-shell label, e.g. ``"Pt-Pt"``.
    cn : float
        Bulk coordination number (12 for fcc metals).
    step : int
        ``step`` number of the reference spectrum.
    file, distance
        User FEFF path file / model distance (Angstrom) for the shell.
    kmin, kmax, kweight, dk, window, fit_space
        Transform settings (k in 1/Angstrom).
    rmin, rmax : float, optional
        Fit range (Angstrom); default ``reff - 1.1`` .. ``reff + 0.5``, i.e.
        the first-shell peak of chi(R), which sits about 0.3-0.5 A below reff.
    engine : {"fast", "larch"}
        ``"larch"``: one ``larch.xafs.feffit``.  ``"fast"`` (default): the same
        fit (model, start, bounds 0.2 <= S0^2 <= 2, acceptance rules, Larch's
        error bars) with :func:`operando.batch.batch_fit`, so a fast run never
        imports Larch's fitting machinery; the two agree within a small fraction
        of the error bars (tests/test_exafs_fast.py).

    Returns
    -------
    S02Calibration
    """
    _check_choice("engine", engine, _ENGINES)
    chi_series = chi_series_or_normalized
    if not isinstance(chi_series, ChiSeries):
        chi_series = remove_background(chi_series, rbkg=rbkg, kweight=kweight, engine=engine)
    spec = {"label": shell, "cn": float(cn)}
    if file is not None:
        spec["file"] = str(file)
    if distance is not None:
        spec["distance"] = distance
    reff = _resolve_paths(ShellModel(shells=[spec]))[shell].reff
    model = ShellModel(shells=[spec], kmin=kmin, kmax=kmax, kweight=kweight, dk=dk,
                       window=window, fit_space=fit_space,
                       rmin=reff - 1.1 if rmin is None else rmin,
                       rmax=reff + 0.5 if rmax is None else rmax)
    k, chi, steps, ok, reasons, _ = _prepare_data(chi_series, None)
    hits = np.flatnonzero(steps == step)
    if hits.size == 0:
        raise DataError(f"reference step {step} is not in the series (steps {steps.tolist()})")
    i = int(hits[0])
    if not ok[i]:
        raise DataError(f"reference step {step} cannot be used: {reasons[i]}")
    model = _clip_kmax(model, k)
    _check_information(model, 4)  # amplitude, dE0, sigma2, dR
    paths = _resolve_paths(model)
    t0 = time.perf_counter()
    fixed_cn = {shell: float(cn)}
    if engine == "fast":
        from ._exafs_fast import calibrate_row

        rows = [calibrate_row(k, chi[i], model, paths, fixed_cn)]
    else:
        rows = [_fit_step(k, chi[i], model, paths, s02=1.0, start=None, vary_s02=True,
                          fixed_cn=fixed_cn)]
    rows[0]["step"] = int(step)
    settings = _settings(model, paths, None, engine)
    settings.update(calibration=dict(shell=shell, cn=float(cn), step=int(step)),
                    seconds=time.perf_counter() - t0)
    result = _make_result(rows, k, chi[i:i + 1], model, settings, None)
    row = result.table.iloc[0]
    if not row["fit_ok"]:
        log.warning("S0^2 calibration fit not ok: %s", row["fit_message"])
    return S02Calibration(s02=float(row["s02"]), s02_err=float(row["s02_err"]), fit=row,
                          settings=settings, result=result)


# ================================================================ internals
def _check_key(key, valid, what):
    if key not in valid:
        close = difflib.get_close_matches(str(key), list(valid), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown {what} key '{key}'{hint} (valid keys: {', '.join(valid)})")


def _check_choice(name, value, options, extra=""):
    if value not in options:
        raise ConfigError(f"{name}={value!r} is not one of {list(options)} {extra}".rstrip())


def _positive(name, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be positive and finite, got {value}")
    return value


def _pm(err) -> str:
    try:
        err = float(err)
    except (TypeError, ValueError):
        return ""
    return f" +/- {err:.3g}" if math.isfinite(err) else ""


def _resolve_paths(model: ShellModel) -> dict[str, FeffPath]:
    return {s.label: path_for_shell(s.label, distance=s.distance, edge=s.edge, file=s.file)
            for s in model.shells}


def _clip_kmax(model: ShellModel, k: np.ndarray) -> ShellModel:
    kend = float(k[-1])
    if model.kmax > kend + 1e-9:
        if model.kmin >= kend - 1.0:
            raise DataError(f"data end at k = {kend:.2f} 1/A, below kmin {model.kmin} + 1")
        log.warning("kmax %.2f beyond the data (k <= %.2f 1/A); using kmax = %.2f",
                    model.kmax, kend, kend)
        return replace(model, kmax=kend)
    return model


def n_independent(model: ShellModel) -> float:
    """Independent points of the fit window, as xraylarch counts them:
    ``1 + 2 (kmax - kmin)(rmax - rmin) / pi``."""
    return 1.0 + 2.0 * (model.kmax - model.kmin) * (model.rmax - model.rmin) / math.pi


def _check_information(model: ShellModel, n_varys: int) -> None:
    """Refuse a fit with no more independent points than parameters.

    Such a fit is underdetermined: it still "converges", but shells trade
    amplitude freely and the error bars mean nothing (k 3-4.5 with two shells
    returned CN(Cu-N) consistent with 0 for a Cu-N4 site).
    """
    n_idp = n_independent(model)
    if n_idp <= n_varys:  # a setting, not the data: ConfigError stops a run with one message
        labels = [s.label for s in model.shells]
        raise ConfigError(
            f"the fit window k {model.kmin:g}-{model.kmax:g} 1/A, R {model.rmin:g}-{model.rmax:g} A "
            f"holds {n_idp:.1f} independent points, not more than the {n_varys} parameters of "
            f"shells {labels}; widen kmax or rmax, or fit fewer shells")


def _prepare_data(chi_series: ChiSeries, merge_repeats: str | None):
    """k, chi rows, step numbers, ok, reasons, merged-step lists (None if no merge)."""
    if not isinstance(chi_series, ChiSeries):
        raise ConfigError(f"expected a ChiSeries (from remove_background), got "
                          f"{type(chi_series).__name__}")
    k = np.asarray(chi_series.k, float)
    chi = np.asarray(chi_series.chi, float)
    steps = np.asarray(chi_series.steps).astype(int)
    ok = np.array(chi_series.ok, bool)
    reasons = [str(r) for r in chi_series.reason]
    if merge_repeats is None:
        return k, chi, steps, ok, reasons, None
    cond = chi_series.conditions
    if merge_repeats not in cond.columns:
        raise ConfigError(f"merge_repeats column '{merge_repeats}' is not a condition column; "
                          f"columns are {list(cond.columns)}")
    values = cond[merge_repeats].tolist()
    groups: list[list[int]] = []
    for i, value in enumerate(values):
        if groups and _equal(values[groups[-1][0]], value):
            groups[-1].append(i)
        else:
            groups.append([i])
    m_chi, m_steps, m_ok, m_reason, merged = [], [], [], [], []
    for group in groups:
        good = [i for i in group if ok[i]]
        m_steps.append(steps[group[0]])
        merged.append([int(steps[i]) for i in good] or [int(steps[group[0]])])
        if good:
            m_chi.append(chi[good].mean(axis=0))
            m_ok.append(True)
            m_reason.append("")
        else:
            m_chi.append(np.full(k.size, np.nan))
            m_ok.append(False)
            m_reason.append("; ".join(reasons[i] for i in group))
    return k, np.array(m_chi), np.array(m_steps), np.array(m_ok), m_reason, merged


def _equal(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _settings(model, paths, s02, engine) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        larch_version = version("xraylarch")
    except PackageNotFoundError:
        larch_version = "?"
    return {
        "model": model.to_dict(),
        "paths": {label: {**p.to_dict(), "file": str(p.file)} for label, p in paths.items()},
        "s02": s02,
        "engine": engine,
        "larch_version": larch_version,
        "degeneracy": "paths used with degeneracy 1; amplitude = CN * S0^2",
    }


def _defaults(spec: ShellSpec, model: ShellModel) -> dict:
    """Default start of one shell: CN, dR, sigma2, dE0."""
    cn = spec.cn if spec.cn is not None else (8.0 if spec.is_metal else 4.0)
    ss = spec.sigma2 if spec.sigma2 is not None else (0.007 if spec.is_metal else 0.005)
    return {"cn": float(cn), "dr": 0.0, "sigma2": float(ss), "de0": 0.0}


def _starts(model: ShellModel, retries: int) -> list[dict]:
    """Deterministic starts for retries: the defaults and spread perturbations."""
    base = {s.label: _defaults(s, model) for s in model.shells}
    moves = [(1.0, 0.0, 1.0, 0.0), (1.0, 0.05, 1.6, 4.0), (1.0, -0.05, 0.6, -4.0),
             (0.5, 0.02, 1.0, 7.0), (1.5, -0.02, 2.0, -7.0), (0.7, 0.1, 0.8, 2.0),
             (1.2, -0.1, 1.3, -2.0)]
    out = []
    for cn_f, dr, ss_f, de0 in moves[:max(1, retries)]:
        out.append({label: {"cn": v["cn"] * cn_f, "dr": dr,
                            "sigma2": float(np.clip(v["sigma2"] * ss_f, model.sigma2_min * 1.5,
                                                    model.sigma2_max * 0.8)),
                            "de0": de0} for label, v in base.items()})
    return out


def _fit_step(k, chi, model: ShellModel, paths: Mapping[str, FeffPath], *, s02: float,
              start: Mapping[str, Mapping[str, float]] | None = None,
              absent: Iterable[str] = (), vary_s02: bool = False,
              fixed_cn: Mapping[str, float] | None = None) -> dict:
    """One feffit of one step; never raises.

    Returns the result columns (:func:`result_columns` without ``step``) plus
    ``_model_chi`` (on ``k``), ``_params`` and ``_chi_square`` / ``_bad``
    internals used by the retry logic.
    """
    from larch.fitting import param, param_group
    from larch.xafs import feffit, feffit_dataset, feffit_transform, feffpath
    from larch import Group

    absent = set(absent)
    fixed_cn = dict(fixed_cn or {})
    pars = {"s02": param(s02, vary=vary_s02, min=0.2 if vary_s02 else -np.inf,
                         max=2.0 if vary_s02 else np.inf)}
    if model.share_e0:
        de0_start = np.mean([(start or {}).get(s.label, _defaults(s, model))["de0"]
                             for s in model.shells])
        pars["de0"] = param(float(np.clip(de0_start, -model.de0_max * 0.9, model.de0_max * 0.9)),
                            vary=True, min=-model.de0_max, max=model.de0_max)
    feff_paths = []
    for spec in model.shells:
        name = spec.name
        init = (start or {}).get(spec.label) or _defaults(spec, model)
        if spec.label in fixed_cn:
            pars[f"cn_{name}"] = param(fixed_cn[spec.label], vary=False)
        elif spec.label in absent:
            pars[f"cn_{name}"] = param(float(np.clip(init["cn"], 0.0, spec.cn_max * 0.9)),
                                       vary=True, min=model.absent_cn_min, max=spec.cn_max)
        else:
            pars[f"cn_{name}"] = param(float(np.clip(init["cn"], 0.3, spec.cn_max * 0.9)),
                                       vary=True, min=spec.cn_min, max=spec.cn_max)
        if spec.label in absent:
            ss = spec.absent_sigma2 if spec.absent_sigma2 is not None else model.absent_sigma2
            pars[f"dr_{name}"] = param(0.0, vary=False)
            pars[f"ss_{name}"] = param(float(ss), vary=False)
        else:
            pars[f"dr_{name}"] = param(float(np.clip(init["dr"], -0.8 * model.dr_max, 0.8 * model.dr_max)),
                                       vary=True, min=-model.dr_max, max=model.dr_max)
            pars[f"ss_{name}"] = param(float(np.clip(init["sigma2"], model.sigma2_min * 1.2,
                                                     model.sigma2_max * 0.9)),
                                       vary=True, min=model.sigma2_min, max=model.sigma2_max)
        e0_name = "de0" if model.share_e0 else f"de0_{name}"
        if not model.share_e0:
            pars[e0_name] = param(float(np.clip(init["de0"], -model.de0_max * 0.9, model.de0_max * 0.9)),
                                  vary=True, min=-model.de0_max, max=model.de0_max)
        feff_paths.append(feffpath(str(paths[spec.label].file), label=name, degen=1.0,
                                   s02=f"s02*cn_{name}", e0=e0_name, deltar=f"dr_{name}",
                                   sigma2=f"ss_{name}"))

    out: dict[str, Any] = {}
    nan = float("nan")
    for spec in model.shells:
        for kind in _PAR_KINDS:
            out[f"{kind}_{spec.label}"] = nan
            out[f"{kind}_{spec.label}_err"] = nan
    out.update(s02=float(s02), s02_err=nan, r_factor=nan, redchi=nan, chi_square=nan,
               n_idp=float(model.n_idp()), n_varys=0, fit_ok=False, fit_message="",
               _model_chi=np.full(k.size, np.nan), _params={}, _bad="")
    if not np.all(np.isfinite(chi)) or not np.any(chi[(k >= model.kmin) & (k <= model.kmax)]):
        out["fit_message"] = out["_bad"] = "chi(k) is not finite or all zero in the k range"
        return out

    transform = feffit_transform(kmin=model.kmin, kmax=model.kmax, kweight=model.kweight,
                                 dk=model.dk, window=model.window, rmin=model.rmin,
                                 rmax=model.rmax, fitspace=model.fit_space)
    data = Group(k=np.asarray(k, float), chi=np.asarray(chi, float))
    try:
        dataset = feffit_dataset(data=data, paths=feff_paths, transform=transform)
        with _quiet_larch():
            result = feffit(param_group(**pars), dataset, path_outputs=False)
    except Exception as exc:  # lmfit/larch raise ValueError etc. on NaN residuals
        out["fit_message"] = out["_bad"] = f"feffit failed: {type(exc).__name__}: {exc}"
        return out

    params = result.params

    def value(name):
        return float(params[name].value)

    def stderr(name):
        par = params[name]
        if not par.vary or par.stderr is None:
            return nan
        return float(par.stderr)

    for spec in model.shells:
        name, label = spec.name, spec.label
        e0_name = "de0" if model.share_e0 else f"de0_{name}"
        out[f"cn_{label}"] = value(f"cn_{name}")
        out[f"cn_{label}_err"] = stderr(f"cn_{name}")
        out[f"r_{label}"] = paths[label].reff + value(f"dr_{name}")
        out[f"r_{label}_err"] = stderr(f"dr_{name}")
        out[f"sigma2_{label}"] = value(f"ss_{name}")
        out[f"sigma2_{label}_err"] = stderr(f"ss_{name}")
        out[f"de0_{label}"] = value(e0_name)
        out[f"de0_{label}_err"] = stderr(e0_name)
    out["s02"] = value("s02")
    out["s02_err"] = stderr("s02")
    out.update(r_factor=float(result.rfactor), redchi=float(result.chi2_reduced),
               chi_square=float(result.chi_square), n_idp=float(result.n_independent),
               n_varys=int(result.nvarys))
    model_chi = np.interp(k, dataset.model.k, dataset.model.chi, right=np.nan)
    out["_model_chi"] = model_chi
    out["_params"] = _param_table(params, pars)
    problems = []
    if not result.success:
        problems.append(f"did not converge ({result.message})")
    at_bound = []
    for n, p in params.items():
        if n not in pars or not p.vary:
            continue
        span = (p.max - p.min) if np.isfinite(p.max - p.min) else max(1.0, abs(p.value))
        if (np.isfinite(p.min) and p.value - p.min <= 1e-3 * span) or \
                (np.isfinite(p.max) and p.max - p.value <= 1e-3 * span):
            at_bound.append(n)
    if at_bound:
        problems.append("at bound: " + ", ".join(at_bound))
    if not result.errorbars:
        problems.append("no error bars (singular covariance)")
    out["_bad"] = "; ".join(problems)
    out["fit_ok"] = not problems
    out["fit_message"] = out["_bad"]
    return out


@contextlib.contextmanager
def _quiet_larch():
    """Silence the 'UFloat with std_dev==0' warning larch triggers for fixed parameters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using UFloat objects with std_dev==0")
        yield


def _param_table(params, names) -> dict:
    """``{name: (value, stderr, vary, min, max)}``; stderr NaN for fixed/undetermined."""
    out = {}
    for name, par in params.items():
        if name not in names:
            continue
        err = float(par.stderr) if (par.vary and par.stderr is not None) else float("nan")
        out[name] = (float(par.value), err, bool(par.vary), float(par.min), float(par.max))
    return out


def _start_from(row: Mapping[str, Any], model: ShellModel, absent=()) -> dict:
    """Warm start from a fitted row (absent shells restart from defaults)."""
    out = {}
    for spec in model.shells:
        label = spec.label
        d = _defaults(spec, model)
        cn = row.get(f"cn_{label}")
        if label in absent or cn is None or not np.isfinite(cn):
            out[label] = {**d, "de0": row.get(f"de0_{label}", 0.0)}
            continue
        out[label] = {"cn": max(float(cn), 0.5), "dr": row[f"r_{label}"] - row["_reff"][label],
                      "sigma2": row[f"sigma2_{label}"], "de0": row[f"de0_{label}"]}
    return out


def _constraint_acceptable(free: Mapping, constrained: Mapping, n_fixed: int) -> bool:
    """Whether fixing ``n_fixed`` parameters is statistically acceptable.

    Hamilton-type test: the constrained chi-square may exceed the free one by
    up to the 95 % point of a chi-square with ``n_fixed`` degrees of freedom,
    in units of the free fit's reduced chi-square (Larch's scaling).
    """
    from scipy.stats import chi2

    c_free, c_con = free["chi_square"], constrained["chi_square"]
    if not np.isfinite(c_con):
        return False
    if not (np.isfinite(c_free) and np.isfinite(free["redchi"]) and free["redchi"] > 0):
        return True
    return (c_con - c_free) / free["redchi"] <= chi2.ppf(0.95, n_fixed)


def _zero_shells(row: Mapping[str, Any], model: ShellModel) -> list[str]:
    """Shells whose CN is consistent with zero (CN < 2 sigma, or pinned near 0
    without an error bar)."""
    out = []
    for spec in model.shells:
        cn, err = row[f"cn_{spec.label}"], row[f"cn_{spec.label}_err"]
        if not np.isfinite(cn):
            continue
        if np.isfinite(err) and cn < 2 * err:
            out.append(spec.label)
        elif not np.isfinite(err) and cn < 0.5:
            out.append(spec.label)
    return out


def _fit_robust(k, chi, model, paths, s02, start, running_rf, opts) -> dict:
    """Fit one step with retries and absent-shell handling; never raises."""
    reff = {label: p.reff for label, p in paths.items()}

    def fit(start_, absent_=()):
        row = _fit_step(k, chi, model, paths, s02=s02, start=start_, absent=absent_)
        row["_reff"] = reff
        row["_absent"] = tuple(absent_)
        if row["fit_ok"] and running_rf and len(running_rf) >= 3:
            median = float(np.median(running_rf[-15:]))
            if row["r_factor"] > max(opts["rfactor_jump"] * median, opts["rfactor_floor"]):
                row["_bad"] = (f"R-factor {row['r_factor']:.4g} > {opts['rfactor_jump']:g} x "
                               f"running median {median:.4g}")
        return row

    def better(a, b):  # prefer acceptable fits, then lower chi-square
        key = lambda r: (bool(r["_bad"]), r["chi_square"] if np.isfinite(r["chi_square"]) else np.inf)
        return a if key(a) <= key(b) else b

    def settle(row):
        """Absent-shell handling on a finished fit."""
        if not np.isfinite(row["chi_square"]):
            return row
        absent = _zero_shells(row, model)
        if not absent:
            return row
        constrained = fit(_start_from(row, model, absent), absent)
        if not _constraint_acceptable(row, constrained, 2 * len(absent)):
            return row  # pinning the shell makes the fit significantly worse: it is there
        # A shell that is clearly present once its distance is pinned gets released again.
        back = [s for s in absent if np.isfinite(constrained[f"cn_{s}_err"])
                and constrained[f"cn_{s}"] > 2 * constrained[f"cn_{s}_err"]]
        if back:
            still = [s for s in absent if s not in back]
            released = fit(_start_from(constrained, model, still), still)
            if not released["_bad"] and not _zero_shells(released, model):
                return released
        return constrained

    row = settle(fit(start))
    if row["_bad"] and not row["_bad"].startswith("chi(k)"):
        first = row["_bad"]
        tries = 1
        for s in _starts(model, opts["retries"]):
            row = better(row, settle(fit(s)))
            tries += 1
            if not row["_bad"]:
                break
        row["_note_retry"] = f"retried from {tries - 1} starts after: {first}"
        if row["_bad"] == first:
            row["_bad"] = "still " + first
    notes = []
    if row.get("_note_retry"):
        notes.append(row["_note_retry"])
    for label in row["_absent"]:
        spec = next(s for s in model.shells if s.label == label)
        ss = spec.absent_sigma2 if spec.absent_sigma2 is not None else model.absent_sigma2
        notes.append(f"{label} CN consistent with 0: refitted with dR=0, sigma2={ss:g} A^2 "
                     f"fixed, CN >= {model.absent_cn_min:g}")
    if row["_bad"]:
        notes.append(row["_bad"])
        row["fit_ok"] = False
    else:
        row["fit_ok"] = True
    row["fit_message"] = "; ".join(notes)
    return row


def _fit_chunk(k, chi, ok, reasons, steps, model, paths, s02, opts) -> list[dict]:
    """Fit consecutive steps with warm start (module level so executors can pickle it)."""
    rows = []
    start = None
    running_rf: list[float] = []
    for i in range(len(steps)):
        if not ok[i]:
            row = _fit_step(k, np.full(k.size, np.nan), model, paths, s02=s02)
            row["fit_message"] = f"not fitted: {reasons[i] or 'step not ok'}"
        else:
            row = _fit_robust(k, chi[i], model, paths, s02, start if opts["warm_start"] else None,
                              running_rf, opts)
            if row["fit_ok"]:
                running_rf.append(row["r_factor"])
                start = _start_from(row, model, row["_absent"])
        row["step"] = int(steps[i])
        log.debug("step %s: fit_ok=%s %s", steps[i], row["fit_ok"], row["fit_message"])
        rows.append(row)
    return rows


def _fit_segment(k, chis, steps, model, paths, s02, shared) -> list[dict]:
    """Joint feffit of several steps sharing the ``shared`` parameter kinds."""
    from larch import Group
    from larch.fitting import param, param_group
    from larch.xafs import feffit, feffit_dataset, feffit_transform, feffpath

    kind_name = {"cn": "cn", "r": "dr", "sigma2": "ss", "de0": "de0"}
    pars = {"s02": param(s02, vary=False)}
    datasets = []
    for j in range(len(steps)):
        feff_paths = []
        for spec in model.shells:
            d = _defaults(spec, model)
            names = {}
            for kind in _PAR_KINDS:
                base = kind_name[kind] + ("" if kind == "de0" and model.share_e0 else f"_{spec.name}")
                pname = base if kind in shared else f"{base}_{j}"
                names[kind] = pname
                if pname in pars:
                    continue
                if kind == "cn":
                    pars[pname] = param(d["cn"], vary=True, min=spec.cn_min, max=spec.cn_max)
                elif kind == "r":
                    pars[pname] = param(0.0, vary=True, min=-model.dr_max, max=model.dr_max)
                elif kind == "sigma2":
                    pars[pname] = param(d["sigma2"], vary=True, min=model.sigma2_min,
                                        max=model.sigma2_max)
                else:
                    pars[pname] = param(0.0, vary=True, min=-model.de0_max, max=model.de0_max)
            feff_paths.append(feffpath(str(paths[spec.label].file), label=f"{spec.name}_{j}",
                                       degen=1.0, s02=f"s02*{names['cn']}", e0=names["de0"],
                                       deltar=names["r"], sigma2=names["sigma2"]))
        transform = feffit_transform(kmin=model.kmin, kmax=model.kmax, kweight=model.kweight,
                                     dk=model.dk, window=model.window, rmin=model.rmin,
                                     rmax=model.rmax, fitspace=model.fit_space)
        datasets.append(feffit_dataset(data=Group(k=k, chi=chis[j]), paths=feff_paths,
                                       transform=transform))
    rows = []
    try:
        with _quiet_larch():
            result = feffit(param_group(**pars), datasets, path_outputs=False)
        failure = None
    except Exception as exc:
        result, failure = None, f"feffit failed: {type(exc).__name__}: {exc}"
    for j, step in enumerate(steps):
        row = _fit_step(k, np.full(k.size, np.nan), model, paths, s02=s02)  # empty row
        row["step"] = int(step)
        if result is None:
            row["fit_message"] = failure
            rows.append(row)
            continue
        params = result.params
        for spec in model.shells:
            for kind in _PAR_KINDS:
                base = kind_name[kind] + ("" if kind == "de0" and model.share_e0 else f"_{spec.name}")
                pname = base if kind in shared else f"{base}_{j}"
                par = params[pname]
                val = float(par.value) + (paths[spec.label].reff if kind == "r" else 0.0)
                row[f"{kind}_{spec.label}"] = val
                row[f"{kind}_{spec.label}_err"] = float("nan") if par.stderr is None else float(par.stderr)
        ds = result.datasets[j]
        row["_model_chi"] = np.interp(k, ds.model.k, ds.model.chi, right=np.nan)
        row["_params"] = _param_table(params, pars)
        row.update(r_factor=float(result.rfactor), redchi=float(result.chi2_reduced),
                   chi_square=float(result.chi_square), n_idp=float(result.n_independent),
                   n_varys=int(result.nvarys), fit_ok=bool(result.success and result.errorbars),
                   fit_message=f"segment fit of steps {steps} sharing {list(shared)}"
                   + ("" if result.errorbars else "; no error bars"))
        rows.append(row)
    return rows


def _make_result(rows, k, data_chi, model, settings, merged) -> ShellFitResult:
    columns = result_columns(model)
    table = pd.DataFrame([{c: row[c] for c in columns} for row in rows], columns=columns)
    table["step"] = table["step"].astype(int)
    table["n_varys"] = table["n_varys"].astype(int)
    table["fit_ok"] = table["fit_ok"].astype(bool)
    if merged is not None:
        table["merged_steps"] = [",".join(str(s) for s in m) for m in merged]
    model_chi = np.array([row["_model_chi"] for row in rows]).reshape(len(rows), k.size)
    return ShellFitResult(table=table, k=k, data_chi=np.array(data_chi, float).reshape(len(rows), k.size),
                          model_chi=model_chi, params=[row["_params"] for row in rows],
                          settings=settings)
