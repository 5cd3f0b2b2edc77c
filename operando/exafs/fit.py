"""The public shell fits: :func:`fit_shells` (every step), :func:`fit_shells_segment`
(several steps in one joint fit) and :func:`calibrate_s02` (a foil with its CN fixed).

Each resolves the engine (:func:`operando.exafs.engines.get_engine`, which refuses
what an engine does not support), checks the model against the data (paths, k range,
information content), and returns a :class:`~.results.ShellFitResult`.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._util.validate import check_choice, positive
from ..errors import ConfigError, DataError
from .background import ChiSeries, remove_background
from .engines import get_engine
from .model import (PAR_KINDS, ShellModel, check_information, clip_kmax, resolve_paths)
from .policy import REDCHI_MAX, RFACTOR_MAX
from .results import S02Calibration, ShellFitResult, make_result

log = logging.getLogger(__name__)


def fit_shells(chi_series: ChiSeries, model: ShellModel, *, s02: float, engine: str = "fast",
               warm_start: bool = True, retries: int = 4, merge_repeats: str | None = None,
               executor: Executor | None = None, chunk_size: int = 8,
               rfactor_max: float = RFACTOR_MAX, redchi_max: float | None = None
               ) -> ShellFitResult:
    """Fit the shells of ``model`` to every step.

    Parameters
    ----------
    chi_series : ChiSeries
    model : ShellModel
    s02 : float
        Amplitude reduction factor S0^2 (fixed), e.g. ``calibrate_s02(...).s02``.
    engine : {"fast", "larch"}
        ``"larch"``: one ``larch.xafs.feffit`` per step.  ``"fast"``
        (default): all steps at once with :func:`operando.exafs.batch.batch_fit`
        (Larch's residual, statistics and error bars; a projected
        Levenberg-Marquardt instead of lmfit's bound transform, which gives the
        same optimum when no bound is active) and the same robustness rules,
        applied in batched passes (see :mod:`operando.exafs.engines.fast`).  What
        an engine does not support (the fast engine: ``fit_space="q"``) is a
        ConfigError (:mod:`operando.exafs.engines`).  With an ``executor`` the
        fast engine fits chunks of at least its ``min_chunk`` steps (batching
        is its speed).
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
    rfactor_max, redchi_max : float
        Absolute acceptance (:func:`operando.exafs.policy.fit_quality`): a converged
        fit with error bars is ``"poor"`` when a varied parameter ends on a bound,
        its R-factor exceeds ``rfactor_max`` (default 0.05, the usual EXAFS
        standard) or its reduced chi-square exceeds ``redchi_max`` (default: no
        limit, see :data:`operando.exafs.policy.REDCHI_MAX`); else ``"good"``.
        Poor fits are reported, never dropped; ``fit_ok`` is True for good fits.

    Returns
    -------
    ShellFitResult
        Failed steps have ``fit_ok=False`` and a ``fit_message``; never raises
        for one bad step.
    """
    if not isinstance(model, ShellModel):
        raise ConfigError(f"model must be a ShellModel, got {type(model).__name__}")
    eng = get_engine(engine, model=model)
    s02 = positive("s02", s02)
    k, chi, steps, ok, reasons, merged = _prepare_data(chi_series, merge_repeats)
    model = clip_kmax(model, k)
    n_shells = len(model.shells)
    check_information(model, 3 * n_shells + (1 if model.share_e0 else n_shells))
    paths = resolve_paths(model)
    opts = dict(warm_start=warm_start, retries=int(retries), rfactor_max=positive(
        "rfactor_max", rfactor_max), redchi_max=REDCHI_MAX if redchi_max is None else positive(
        "redchi_max", redchi_max))

    t0 = time.perf_counter()
    fit_chunk = eng.fit_rows
    size = max(1, int(chunk_size), eng.min_chunk)
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
    return make_result(rows, k, chi, model, settings, merged)


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
    eng = get_engine(engine, joint=True)
    shared = tuple(shared)
    for kind in shared:
        check_choice("shared", kind, PAR_KINDS)
    s02 = positive("s02", s02)
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
    model = clip_kmax(model, k)
    paths = resolve_paths(model)
    rows = eng.fit_joint(k, chi[idx], [int(s) for s in all_steps[idx]], model, paths, s02, shared)
    settings = _settings(model, paths, s02, engine)
    settings.update(segment_steps=[int(s) for s in all_steps[idx]], shared=list(shared))
    return make_result(rows, k, chi[idx], model, settings, None)


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
        error bars) with :func:`operando.exafs.batch.batch_fit`, so a fast run never
        imports Larch's fitting machinery; the two agree within a small fraction
        of the error bars (tests/test_exafs_fast.py).

    Returns
    -------
    S02Calibration
    """
    eng = get_engine(engine)
    chi_series = chi_series_or_normalized
    if not isinstance(chi_series, ChiSeries):
        chi_series = remove_background(chi_series, rbkg=rbkg, kweight=kweight, engine=engine)
    spec = {"label": shell, "cn": float(cn)}
    if file is not None:
        spec["file"] = str(file)
    if distance is not None:
        spec["distance"] = distance
    reff = resolve_paths(ShellModel(shells=[spec]))[shell].reff
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
    model = clip_kmax(model, k)
    check_information(model, 4)  # amplitude, dE0, sigma2, dR
    paths = resolve_paths(model)
    t0 = time.perf_counter()
    fixed_cn = {shell: float(cn)}
    rows = [eng.calibrate_row(k, chi[i], model, paths, fixed_cn)]
    rows[0]["step"] = int(step)
    settings = _settings(model, paths, None, engine)
    settings.update(calibration=dict(shell=shell, cn=float(cn), step=int(step)),
                    seconds=time.perf_counter() - t0)
    result = make_result(rows, k, chi[i:i + 1], model, settings, None)
    row = result.table.iloc[0]
    if not row["fit_ok"]:
        log.warning("S0^2 calibration fit not ok: %s", row["fit_message"])
    return S02Calibration(s02=float(row["s02"]), s02_err=float(row["s02_err"]), fit=row,
                          settings=settings, result=result)


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
