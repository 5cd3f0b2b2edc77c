"""The public shell fits: :func:`fit_shells` (every step), :func:`fit_shells_global`
(several steps in one joint fit) and :func:`calibrate_s02` (a foil with its CN fixed).

Each resolves the engine (:func:`operando.exafs.engines.get_engine`, which refuses
what an engine does not support), checks the model against the data (paths, k range,
information content), and returns a :class:`~.results.ShellFitResult`.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._util.validate import check_choice, positive
from ..errors import ConfigError, DataError
from ..options import BackgroundOptions, FitOptions, FoilOptions
from ..schema import SHELL_KINDS
from ..xanes.merge import consecutive_groups
from .background import ChiSeries, remove_background
from .engines import get_engine
from .model import ShellModel, check_information, clip_kmax, n_independent, resolve_paths
from .plan import COLUMN_KIND, plan_structure
from .significance import LIMIT_LEVEL, P_SIGNIFICANT, WALD_Z
from .policy import REDCHI_MAX, RFACTOR_MAX
from .results import S02Calibration, ShellFitResult, make_result

log = logging.getLogger(__name__)


def fit_shells(chi_series: ChiSeries, model: ShellModel, *, s02: float | None = None,
               s02_err: float | None = None, foil: S02Calibration | None = None,
               engine: str = BackgroundOptions.engine, warm_start: bool = True, retries: int = 4,
               merge_repeats: str | None = None, executor: Executor | None = None,
               chunk_size: int = 8, rfactor_max: float = RFACTOR_MAX,
               redchi_max: float | None = None) -> ShellFitResult:
    """Fit the shells of ``model`` to every step.

    Parameters
    ----------
    chi_series : ChiSeries
    model : ShellModel
    s02 : float
        Amplitude reduction factor S0^2 (fixed), e.g. ``calibrate_s02(...).s02``.
    s02_err : float, optional
        Its 1-sigma error: fills ``s02_err`` and ``cn_S_err_s02`` (the CN error with the
        relative S0^2 error added in quadrature).
    foil : S02Calibration, optional
        Instead of ``s02``: the foil calibration (fitted in the sample's k/R window);
        gives S0^2, its error, and the metal shell's sigma2 with
        :func:`~operando.exafs.apply_foil`'s defaults (sigma2 fixed at the
        foil's).  Call :func:`~operando.exafs.apply_foil` yourself for other
        choices and pass ``s02``.
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
    model, s02, s02_err, foil_record = _with_foil(model, s02, s02_err, foil)
    eng = get_engine(engine, model=model)
    k, chi, steps, ok, reasons, merged, e0 = _prepare_data(chi_series, merge_repeats)
    model = clip_kmax(model, k)
    check_information(model, plan_structure(model).n_varys)
    paths = resolve_paths(model)
    opts = dict(warm_start=warm_start, retries=int(retries), rfactor_max=positive(
        "rfactor_max", rfactor_max), redchi_max=REDCHI_MAX if redchi_max is None else positive(
        "redchi_max", redchi_max))

    t0 = time.perf_counter()
    fit_chunk = eng.fit_rows
    size = max(1, int(chunk_size), eng.min_chunk)
    if executor is None:
        rows = fit_chunk(k, chi, ok, reasons, steps, model, paths, s02, opts, e0)
    else:
        bounds = list(range(0, len(steps), size)) + [len(steps)]
        futures = [executor.submit(fit_chunk, k, chi[a:b], ok[a:b], reasons[a:b], steps[a:b],
                                   model, paths, s02, opts, e0[a:b])
                   for a, b in zip(bounds[:-1], bounds[1:])]
        rows = [row for fut in futures for row in fut.result()]
    elapsed = time.perf_counter() - t0
    log.info("fitted %d steps in %.2f s", len(steps), elapsed)

    settings = _settings(model, paths, s02, engine, s02_err, foil_record)
    settings.update(opts, merge_repeats=merge_repeats,
                    chunk_size=size if executor else None, seconds=elapsed)
    return make_result(rows, k, chi, model, settings, merged, s02_err)


def fit_shells_global(chi_series: ChiSeries, model: ShellModel, *, s02: float | None = None,
                      s02_err: float | None = None, foil: S02Calibration | None = None,
                      steps: Sequence[int] | None = None,
                      shared: Iterable[str] = ("sigma2", "r", "de0"),
                      engine: str = BackgroundOptions.engine) -> ShellFitResult:
    """Fit several steps -- a segment, or the whole series -- in one joint fit.

    The parameter kinds ``shared`` have one value per shell for all the steps (dE0
    one per dE0 group), the others (by default only the CNs) one per step; ties and
    fixed or bounded parameters of ``model`` apply as in :func:`fit_shells`.  The
    statistics are ``larch.xafs.feffit``'s with several datasets: ``n_idp`` and the
    residual points summed over the steps, ``n_varys`` counting every per-step and
    shared parameter, error bars from the joint covariance scaled by the joint
    reduced chi-square (tests/exafs/test_exafs_global.py checks both engines against
    feffit on the same input).

    Parameters
    ----------
    chi_series : ChiSeries
    model : ShellModel
    s02, s02_err, foil
        As :func:`fit_shells`.
    steps : sequence of int, optional
        ``step`` numbers to fit together (default: all ok steps).
    shared : iterable of {"cn", "r", "sigma2", "de0"}
        Parameter kinds shared by all steps.  The default shares sigma2, dR and dE0,
        so only the CNs differ: right when the steps differ by how much of each phase
        there is, not by its structure.
    engine : {"fast", "larch"}
        ``"fast"`` (default): :func:`operando.exafs.batch.batch_fit_global` (the
        joint normal equations are block-sparse, so 1,000 steps cost about one
        batched per-step fit); ``"larch"``: one feffit with a dataset per step.

    Returns
    -------
    ShellFitResult
        One row per step; shared parameters repeat; ``r_factor``, ``redchi``,
        ``chi_square``, ``n_idp``, ``n_varys`` are the joint fit's (the step's own
        R-factor is in ``fit_message``).  The F-test / detection-limit columns are
        not computed for a joint fit (NaN, ``sig_S`` False).
    """
    model, s02, s02_err, foil_record = _with_foil(model, s02, s02_err, foil)
    eng = get_engine(engine, model=model, joint=True)
    shared = tuple(dict.fromkeys(shared))
    for kind in shared:
        check_choice("shared", kind, SHELL_KINDS)
    k, chi, all_steps, ok, reasons, _, e0 = _prepare_data(chi_series, None)
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
    n_local = sum(p.vary for p in plan_structure(model).pars.values()
                  if COLUMN_KIND[p.kind] not in shared)
    n_shared = plan_structure(model).n_varys - n_local
    n_idp = n_independent(model)
    if idx.size * n_idp <= idx.size * n_local + n_shared:
        raise ConfigError(f"{idx.size} steps of {n_idp:.1f} independent points hold no more "
                          f"than the {idx.size * n_local + n_shared} parameters of the joint fit; "
                          "widen the fit window or share more parameters")
    paths = resolve_paths(model)
    t0 = time.perf_counter()
    rows = eng.fit_joint(k, chi[idx], [int(s) for s in all_steps[idx]], model, paths, s02, shared,
                         e0[idx])
    settings = _settings(model, paths, s02, engine, s02_err, foil_record)
    settings.update(global_fit=dict(steps=[int(s) for s in all_steps[idx]], shared=list(shared),
                                    cn_lower_bound=model.absent_cn_min,
                                    significance="not computed for joint fits"),
                    seconds=time.perf_counter() - t0)
    return make_result(rows, k, chi[idx], model, settings, None, s02_err)


def _with_foil(model, s02, s02_err, foil):
    """(model, s02, s02_err, record) with a foil calibration's S0^2, sigma2 and dE0
    applied (``record``: what was taken from it, for the settings; None without)."""
    record = None
    if foil is not None:
        if s02 is not None:
            raise ConfigError("give s02 or foil (a foil calibration), not both")
        from .foil import FoilValues, apply_foil

        model = apply_foil(model, foil)
        s02 = foil.s02
        s02_err = foil.s02_err if s02_err is None else s02_err
        record = {"values": FoilValues.of(foil).to_dict(),
                  "applied": "apply_foil defaults: sigma2 fix, deltar free, de0 fix",
                  "window": foil.window}
    if s02 is None:
        raise ConfigError("fit_shells needs s02 (a number) or foil (calibrate_s02 of a foil)")
    s02 = positive("s02", s02)
    if s02_err is not None and not np.isfinite(float(s02_err)):
        s02_err = None
    return model, s02, None if s02_err is None else float(s02_err), record


def calibrate_s02(chi_series_or_normalized, *, shell: str = "Pt-Pt", cn: float = FoilOptions.cn,
                  step: int = 0, file: str | Path | None = None, distance: float | None = None,
                  edge: str | None = None, geometry: str | None = None,
                  kmin: float = FitOptions.kmin, kmax: float = FitOptions.kmax,
                  kweight: float = FitOptions.kweight, dk: float = FitOptions.dk,
                  window: str = FitOptions.window, rmin: float | None = None,
                  rmax: float | None = None, fit_space: str = FitOptions.fit_space,
                  rbkg: float = BackgroundOptions.rbkg,
                  engine: str = BackgroundOptions.engine) -> S02Calibration:
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
    file, distance, edge, geometry
        The shell's FEFF path: a user file, or the model distance (Angstrom), edge and
        cluster geometry of :func:`operando.feffpaths.feff_path`.  Calibrating a sample's
        metal shell: give its own path (:func:`operando.exafs.shell_path`), since
        S0^2, sigma2 and dR are properties of the path they were fitted with.
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
        of the error bars (tests/exafs/test_exafs_fast.py).

    Returns
    -------
    S02Calibration
    """
    eng = get_engine(engine)
    chi_series = chi_series_or_normalized
    if not isinstance(chi_series, ChiSeries):
        chi_series = remove_background(chi_series, rbkg=rbkg, kweight=kweight, engine=engine)
    spec = {"label": shell, "cn": float(cn)}
    for key, value in (("file", file), ("distance", distance), ("edge", edge),
                       ("geometry", geometry)):
        if value is not None:
            spec[key] = str(value) if key == "file" else value
    reff = resolve_paths(ShellModel(shells=[spec]))[shell].reff
    model = ShellModel(shells=[spec], kmin=kmin, kmax=kmax, kweight=kweight, dk=dk,
                       window=window, fit_space=fit_space,
                       rmin=reff - 1.1 if rmin is None else rmin,
                       rmax=reff + 0.5 if rmax is None else rmax)
    k, chi, steps, ok, reasons, _, e0 = _prepare_data(chi_series, None)
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
    settings.update(calibration=dict(shell=shell, cn=float(cn), step=int(step),
                                     e0=float(e0[i])),
                    seconds=time.perf_counter() - t0)
    result = make_result(rows, k, chi[i:i + 1], model, settings, None)
    row = result.table.iloc[0]
    if not row["fit_ok"]:
        log.warning("S0^2 calibration fit not ok: %s", row["fit_message"])
    return S02Calibration(s02=float(row["s02"]), s02_err=float(row["s02_err"]), fit=row,
                          settings=settings, result=result)


def _prepare_data(chi_series: ChiSeries, merge_repeats: str | None):
    """k, chi rows, step numbers, ok, reasons, merged-step lists (None if no merge), E0 of
    each row (eV; the mean of the merged steps')."""
    if not isinstance(chi_series, ChiSeries):
        raise ConfigError(f"expected a ChiSeries (from remove_background), got "
                          f"{type(chi_series).__name__}")
    k = np.asarray(chi_series.k, float)
    chi = np.asarray(chi_series.chi, float)
    steps = np.asarray(chi_series.steps).astype(int)
    ok = np.array(chi_series.ok, bool)
    reasons = [str(r) for r in chi_series.reason]
    e0 = np.broadcast_to(np.asarray(chi_series.e0, float), (len(chi),)).copy()
    if merge_repeats is None:
        return k, chi, steps, ok, reasons, None, e0
    cond = chi_series.conditions
    if merge_repeats not in cond.columns:
        raise ConfigError(f"merge_repeats column '{merge_repeats}' is not a condition column; "
                          f"columns are {list(cond.columns)}")
    m_chi, m_steps, m_ok, m_reason, merged, m_e0 = [], [], [], [], [], []
    for group in consecutive_groups(cond, [merge_repeats]):
        good = [i for i in group if ok[i]]
        m_e0.append(float(np.mean(e0[good or group])))
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
    return k, np.array(m_chi), np.array(m_steps), np.array(m_ok), m_reason, merged, np.array(m_e0)


def _settings(model, paths, s02, engine, s02_err=None, foil=None) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        larch_version = version("xraylarch")
    except PackageNotFoundError:
        larch_version = "?"
    return {
        "model": model.to_dict(),
        "paths": {label: {**p.to_dict(), "file": str(p.file)} for label, p in paths.items()},
        "s02": s02,
        "s02_err": s02_err,
        "foil": foil,
        "significance": {"shells": model.tested_shells(), "p_significant": P_SIGNIFICANT,
                         "limit_level": LIMIT_LEVEL, "wald_z": WALD_Z, "limit_refits": 1,
                         "test": "F-test of removing the shell, on the free fit, chi-square "
                                 "scaled to reduced chi-square 1"},
        "engine": engine,
        "larch_version": larch_version,
        "degeneracy": "paths used with degeneracy 1; amplitude = CN * S0^2",
    }
