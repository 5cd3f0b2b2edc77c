"""Background removal (AUTOBK) and Fourier transforms of a normalised series.

:func:`remove_background` extracts chi(k) of every step with the engine chosen
(:mod:`operando.exafs.engines`: ``"fast"`` batched, ``"larch"`` one
``larch.xafs.autobk`` per step); :func:`fourier_transform` is
``larch.xafs.xftf`` per step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._util.larch_compat import FT_WINDOWS
from .._util.result import Result
from .._util.validate import check_choice
from ..errors import DataError
from ..options import BackgroundOptions, FTOptions
from .engines import get_engine

log = logging.getLogger(__name__)

#: Larch's uniform k grid step (1/Angstrom) used by autobk and feffit.
KSTEP = 0.05


@dataclass(frozen=True, eq=False)
class ChiSeries(Result):
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

    def to_xarray(self):
        """An ``xarray.Dataset``: ``chi`` over ``(step, k)``; ``e0``, ``edge_step``, ``ok``
        over ``step``; conditions as coordinates."""
        from .._util.xr import chi_dataset

        return chi_dataset(self)

    def title(self) -> str:
        return (f"ChiSeries: {len(self)} steps, {int(np.sum(self.ok))} ok, "
                f"k {self.k[0]:.2f}-{self.k[-1]:.2f} 1/A")

    def to_dataframe(self) -> pd.DataFrame:
        """``step, e0, edge_step, ok, reason``."""
        return pd.DataFrame({"step": self.steps, "e0": self.e0, "edge_step": self.edge_step,
                             "ok": self.ok, "reason": self.reason})


@dataclass(frozen=True, eq=False)
class RSeries(Result):
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

    def title(self) -> str:
        return (f"RSeries: {self.chir.shape[0]} transforms, {int(np.sum(self.ok))} ok, "
                f"R {self.r[0]:.2f}-{self.r[-1]:.2f} A")

    def to_dataframe(self) -> pd.DataFrame:
        """One row per transform: ``row``, ``ok``, ``r_peak`` (Angstrom, not phase
        corrected) and ``chir_peak``, the largest ``|chi(R)|``."""
        mag = np.asarray(self.chir_mag, float)
        ok = np.asarray(self.ok, bool) & np.isfinite(mag).any(axis=1)
        peak = np.where(ok, np.argmax(np.where(np.isfinite(mag), mag, -np.inf), axis=1), 0)
        rows = np.arange(mag.shape[0])
        return pd.DataFrame({"row": rows, "ok": np.asarray(self.ok, bool),
                             "r_peak": np.where(ok, np.asarray(self.r)[peak], np.nan),
                             "chir_peak": np.where(ok, mag[rows, peak], np.nan)})

    def to_xarray(self, conditions: pd.DataFrame | None = None):
        """An ``xarray.Dataset``: ``chir_mag``, ``chir_re``, ``chir_im`` over ``(step, r)``
        (``conditions``, e.g. the ChiSeries', give the step labels and coordinates)."""
        from .._util.xr import rseries_dataset

        return rseries_dataset(self, conditions)


def remove_background(normalized, *, rbkg: float = BackgroundOptions.rbkg,
                      kweight: float = BackgroundOptions.kweight,
                      kmin: float = BackgroundOptions.kmin,
                      kmax: float | None = BackgroundOptions.kmax,
                      dk: float = BackgroundOptions.dk, window: str = BackgroundOptions.window,
                      nclamp: int = BackgroundOptions.nclamp,
                      clamp_lo: float = BackgroundOptions.clamp_lo,
                      clamp_hi: float = BackgroundOptions.clamp_hi,
                      engine: str = BackgroundOptions.engine) -> ChiSeries:
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
        for all steps at once with :func:`operando.exafs.batch.batch_autobk` (exact
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
    eng = get_engine(engine)
    check_choice("window", window, FT_WINDOWS)
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
    live = np.flatnonzero(ok)
    finite_mu = np.isfinite(series.mu[live]).all(axis=1)
    with np.errstate(invalid="ignore"):
        e0_live = e0[live]
        e0_in = np.isfinite(e0_live) & (series.energy[0] < e0_live) & (e0_live < series.energy[-1])
        step_ok = np.isfinite(edge_step[live]) & (edge_step[live] > 0)
    for i in live[~(finite_mu & e0_in & step_ok)]:
        if not np.all(np.isfinite(series.mu[i])):
            problems[i] = "mu holds non-finite values"
        elif not (np.isfinite(e0[i]) and series.energy[0] < e0[i] < series.energy[-1]):
            problems[i] = f"e0 {e0[i]} eV is outside the energy range"
        elif not (np.isfinite(edge_step[i]) and edge_step[i] > 0):
            problems[i] = f"edge step {edge_step[i]} is not positive"
    todo = [i for i in live if i not in problems]
    rows: list[np.ndarray | None] = [None] * n
    done, failed, e0, extra = eng.background(
        series.energy, series.mu, e0, edge_step, todo, settings)
    settings.update(extra)
    for i, row in done.items():
        rows[i] = row
    problems.update(failed)
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


def fourier_transform(chi_series: ChiSeries, *, kmin: float = FTOptions.kmin,
                      kmax: float | None = FTOptions.kmax, dk: float = FTOptions.dk,
                      window: str = FTOptions.window, kweight: float = FTOptions.kweight,
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

    check_choice("window", window, FT_WINDOWS)
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
