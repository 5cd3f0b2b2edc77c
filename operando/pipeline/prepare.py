"""Settings shared by every step of a series, resolved once and checkpointed.

* E0 of the series when the policy takes it from one scan (``"first"``,
  ``"reference"``): a chunk on its own would use its own first scan;
* with EXAFS: the engine (checked against the model before any work), S0^2 from the
  ``[foil]`` foil (or the given value) fitted in the sample's own k/R window, and
  the shells with what the foil gives the metal shell applied (sigma2, dR, dE0:
  :func:`operando.exafs.apply_foil`), stored resolved; with ``[exafs] two_phase`` and a
  cluster model of more than one shell (bcc metals), the foil calibrated on those shells
  (:func:`operando.pipeline.two_phase.cluster_calibration`).

The result is stored as the ``prepare`` checkpoint (the LCF standards as the
``components`` one), each with the hash of what it depends on.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ConfigError, DataError
from ..exafs import (FoilValues, apply_foil, calibrate_s02, cluster_model, processing_variants,
                     remove_background, shell_path)
from ..exafs.systematics import foil_fits
from ..exafs.engines import get_engine
from ..io import read_series
from ..options import FitOptions
from ..xanes import calibrate, normalize
from .components import load as load_standards, reference_rows
from .components import resolve as resolve_standards
from .components import save as save_standards
from .settings import RunPlan, StepSettings
from .source import rows_of
from .store import RunStore
from .two_phase import cluster_calibration

PREPARE = "prepare"
#: Largest relative error of a calibrated S0^2 a run accepts: S0^2 scales every CN, and
#: beyond this the CNs' errors are dominated by it (a foil read wrong, or its k range
#: far shorter than the fit window).
S02_MAX_RELATIVE_ERROR = 0.2
COMPONENTS = "components"


def prepare(store: RunStore, plan: RunPlan, series, inputs: dict) -> tuple[dict, StepSettings]:
    """``(record, step_settings)``: the series-wide values (for settings.json) and the
    settings every chunk uses.

    Each part is loaded from its checkpoint when the hash of what it depends on
    (:func:`shared_key`, :func:`standards_key`; ``inputs`` maps every input to its
    hash) is the one recorded with it, and computed (and checkpointed) otherwise: a
    resumed run uses the same values, a watch recomputes them only when their own
    inputs changed.
    """
    shared = None
    if store.has_checkpoint(PREPARE):
        _, shared = store.load_checkpoint(PREPARE)
        if shared.get("key") != shared_key(series, plan, shared, inputs):
            shared = None
    if shared is None:
        shared = _resolve_shared(plan, series)
        shared["key"] = shared_key(series, plan, shared, inputs)
        store.save_checkpoint(PREPARE, meta=shared)
    standards = None
    if plan.components is not None and plan.components["method"] == "lcf":
        key = standards_key(series, plan, shared, inputs)
        meta = None
        if store.has_checkpoint(COMPONENTS):
            standards, meta = load_standards(store, COMPONENTS)
            if meta.get("key") != key:
                meta = None
        if meta is None:
            standards, info = resolve_standards(plan, series,
                                                {**plan.normalize, "e0": shared["e0"]})
            meta = {"method": "lcf", "standards": info, "key": key}
            save_standards(store, COMPONENTS, standards, meta)
        shared = {**shared, "components": {k: v for k, v in meta.items()
                                           if k not in ("standard_names", "key")}}
    settings = plan.step_settings(e0=shared["e0"], s02=shared.get("s02"),
                                  shells=shared.get("shells"), standards=standards,
                                  s02_err=shared.get("s02_err"),
                                  systematics=shared.get("systematics"),
                                  two_phase_cluster=shared.get("two_phase_cluster"))
    return shared, settings


def shared_key(series, plan: RunPlan, shared: dict, inputs: dict) -> str:
    """Hash of what the series-wide values depend on: the settings, the input files
    (foil, FEFF files, standards), the grid, element and edge, and the scans E0 came
    from (``"first"``: up to that scan; ``"median"``: all)."""
    h = hashlib.sha256(repr((series.element, series.edge, plan.normalize, plan.fit, plan.foil,
                             plan.calibrate, plan.read_options, plan.two_phase,
                             sorted((k, v) for k, v in inputs.items()
                                    if k not in ("spectra", "conditions")))).encode())
    h.update(np.ascontiguousarray(series.energy).tobytes())
    policy = plan.normalize.e0
    if policy == "median":
        h.update(str(inputs.get("spectra")).encode())
    elif shared.get("e0_from_step") is not None:
        upto = int(np.searchsorted(series.steps, int(shared["e0_from_step"]))) + 1
        h.update(np.ascontiguousarray(rows_of(series, np.arange(upto)).mu).tobytes())
    return h.hexdigest()[:16]


def standards_key(series, plan: RunPlan, shared: dict, inputs: dict) -> str:
    """Hash of what the LCF standards depend on: the series-wide values, the
    ``[components]`` settings and files, and the steps they read (first, last, named)."""
    h = hashlib.sha256(repr((shared.get("key"), shared.get("e0"), plan.components)).encode())
    sub = rows_of(series, reference_rows(plan, series))
    for array in (sub.mu, sub.reference):
        if array is not None:
            h.update(np.ascontiguousarray(array).tobytes())
    h.update(sub.conditions.to_csv(index=False).encode())
    return h.hexdigest()[:16]


def _resolve_shared(plan: RunPlan, series) -> dict:
    policy = plan.normalize["e0"]
    shared: dict = {"e0": policy, "e0_from_step": None, "s02": None}
    if policy in ("first", "reference"):
        shared["e0"], shared["e0_from_step"] = _first_e0(plan, series)
    elif policy == "median":
        shared["e0"], shared["e0_from_steps"] = _median_e0(plan, series)
    if plan.exafs:
        shells = list(plan.shells or _default_shells(series))
        get_engine(plan.fit.engine, model=plan.model(shells))
        shared["exafs_engine"] = {"background": plan.fit.engine, "fit": plan.fit.engine}
        found = _s02(plan, series, plan.model(shells))
        values = found.pop("_foil_values", None)
        foil = found.pop("_foil", None)
        shared.update(found)
        model = _with_foil(plan, plan.model(shells), values)
        if plan.fit.systematics:
            shared["systematics"] = _systematics(plan, shells, shared, foil)
        shared["shells"] = [spec.to_dict() for spec in model.shells]
        if values is not None:
            shared["foil_values"] = values.to_dict()
        if plan.two_phase is not None and shared.get("two_phase_cluster") is None:
            shell = plan.two_phase["shell"] or f"{series.element}-{series.element}"
            if len(cluster_model(model, shell).shells) > 1:
                raise ConfigError(f"[exafs] two_phase: the cluster model of {shell} has more "
                                  "than one shell; it needs [foil] file (calibrated on them), "
                                  "not [foil] s02")
    return shared


def _with_foil(plan: RunPlan, model, values):
    """The model with ``[foil]`` sigma2 / dR / dE0 applied to the reference shell."""
    ref = plan.foil
    shell = ref.shell or values.shell if values is not None else ref.shell
    if shell is None:
        return model
    if isinstance(ref.sigma2, float):        # a given value overrides the foil's
        base = values or FoilValues(shell=shell)
        values = FoilValues(shell=shell, sigma2=ref.sigma2, sigma2_err=0.0,
                                 deltar=base.deltar, edge_energy=base.edge_energy)
    if values is None:
        return model
    return apply_foil(model, values, shell=shell, **ref.shell_options())


def _first_e0(plan: RunPlan, series) -> tuple[float, int]:
    for i in range(len(series)):
        norm = normalize(series[i], **plan.normalize)
        if bool(np.asarray(norm.ok)[0]) and np.isfinite(norm.e0[0]):
            return float(norm.e0[0]), int(series.steps[i])
    raise DataError(f"e0 = \"{plan.normalize['e0']}\": no scan of the series could be normalised")


#: Spectra whose E0 make the series' median E0 (evenly spaced over the series).
MEDIAN_E0_SAMPLE = 200


def _median_e0(plan: RunPlan, series) -> tuple[float, int]:
    """The median of every sampled spectrum's own E0 (``e0 = "median"``), and how many."""
    n = len(series)
    rows = np.unique(np.round(np.linspace(0, n - 1, min(n, MEDIAN_E0_SAMPLE))).astype(int))
    norm = normalize(rows_of(series, rows), **{**plan.normalize, "e0": "median"})
    value = norm.settings.get("e0_value")
    if value is None or not np.isfinite(value):
        raise DataError('e0 = "median": no scan of the series could be normalised')
    return float(value), int(np.count_nonzero(norm.ok))


def _default_shells(series) -> list[str]:
    el = series.element
    if not el:
        raise ConfigError("[exafs] shells is not set and the element is unknown; give shells = "
                          "[\"Pt-O\", \"Pt-Pt\"] or [series] element")
    return [f"{el}-O", f"{el}-{el}"]


def _s02(plan: RunPlan, series, model) -> dict:
    ref = plan.foil
    if ref.s02 is not None:
        return {"s02": float(ref.s02), "s02_err": None, "s02_source": "user value"}
    shell = ref.shell or f"{series.element}-{series.element}"
    options = dict(plan.read_options)
    if ref.mu is not None:
        options.update(mu=ref.mu, channels=None)
    foil = read_series(ref.file, element=series.element, edge=series.edge, reference=False,
                       **options)
    if plan.calibrate is not None:
        # the foil on the series' energy scale: its own edge at the calibration target,
        # as every scan's reference channel (dE0 is taken from the foil)
        foil, _ = calibrate(foil.replace(reference=foil.mu.copy()), **plan.calibrate)
    norm = normalize(foil, **{**plan.normalize, "e0": "each"})
    chi = remove_background(norm, **plan.fit.background())
    # a metal whose cluster model has two shells (bcc): the foil fitted on both, its
    # first shell's values for the metal shell (one shell cannot describe the foil)
    metal = plan.model([{"label": shell, **shell_path(model, shell)}])
    cluster = cluster_calibration(chi, metal, shell, S02_MAX_RELATIVE_ERROR, ref)
    if cluster is not None:
        cal, record = cluster
        n = len(cal.cluster.shells)
        return {"s02": cal.s02, "s02_err": cal.s02_err,
                "s02_source": f"calibrated on {ref.file} ({shell}, CN {ref.cn:g}; "
                              f"{cal.cluster.structure} cluster model of {n} shells) in the fit window",
                "s02_path": record["model"]["shells"][0]["path"], "s02_fit": record,
                "two_phase_cluster": record,
                "_foil_values": FoilValues(shell=shell, sigma2=cal.sigma2[0],
                                           sigma2_err=cal.sigma2_err[0], deltar=cal.deltar,
                                           edge_energy=cal.edge_energy), "_foil": norm}
    # the sample's own k and R window: the foil's sigma2 (given to the sample's metal
    # shell) and S0^2 both depend on it
    # on the path of the shell it calibrates (its own file, distance, geometry)
    cal = calibrate_s02(chi, shell=shell, cn=ref.cn, step=int(foil.steps[0]),
                        **shell_path(model, shell), **plan.fit.fit_window(), rbkg=plan.fit.rbkg,
                        engine=plan.fit.engine)
    if not (np.isfinite(cal.s02) and cal.s02 > 0):
        raise DataError(f"{ref.file}: S0^2 calibration on {shell} failed (s02 = {cal.s02}); "
                        "check [foil] or give s02 directly")
    quality = str(cal.fit.get("fit_quality", "good"))
    relative = _plain(cal.s02_err) / cal.s02 if np.isfinite(cal.s02_err) else np.inf
    if quality == "failed" or relative > S02_MAX_RELATIVE_ERROR:
        # S0^2 scales every CN of the run: an undetermined one must stop it, not pass silently
        raise DataError(
            f"{ref.file}: S0^2 = {cal.s02:.3g} +/- {_plain(cal.s02_err):.3g} on {shell} is not "
            f"determined (fit {quality}: {cal.fit.get('fit_message', '')}; relative error "
            f"above {S02_MAX_RELATIVE_ERROR:.0%}); check the foil's k range against [exafs] "
            "kmin/kmax, how it is read ([foil] mu), or give [foil] s02")
    fit = {k: _plain(v) for k, v in dict(cal.fit).items()}
    return {"s02": float(cal.s02), "s02_err": _plain(cal.s02_err),
            "s02_source": f"calibrated on {ref.file} ({shell}, CN {ref.cn:g}) in the fit window",
            "s02_path": cal.settings["paths"][shell],
            "s02_fit": fit, "_foil_values": FoilValues.of(cal), "_foil": norm}


def _systematics(plan: RunPlan, shells, shared: dict, foil) -> dict:
    """What every chunk needs for ``[exafs] systematics``: the processing variants and,
    with a foil, its calibration in each variant's window (done once here)."""
    ref = plan.foil
    model = plan.model(shells)
    variants = processing_variants(model, rbkg=plan.fit.rbkg, e0=shared["e0"])
    out = {"shells": list(shells), "window": dict(FitOptions.of(plan.fit)), "variants": variants,
           "rbkg": plan.fit.rbkg, "bkg_kmin": plan.fit.bkg_kmin,
           "engine": plan.fit.engine, "foil_options": ref.shell_options(),
           "s02": shared["s02"], "s02_err": shared.get("s02_err")}
    if foil is not None:
        out["foil_fits_by_variant"] = foil_fits(foil, model, variants, shell=ref.shell, cn=ref.cn,
                                           bkg_kmin=plan.fit.bkg_kmin, engine=plan.fit.engine)
        if isinstance(ref.sigma2, float):
            for r in out["foil_fits_by_variant"].values():
                r["values"]["sigma2"] = ref.sigma2
    return out


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
