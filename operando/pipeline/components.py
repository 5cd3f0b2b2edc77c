"""Component analysis in a run (``[components]``): standards resolved once, LCF per chunk,
PCA and MCR on the series.

With standards (``method = "lcf"``) the standards are read and normalised once, with
the series' own settings about the series' E0 (:mod:`operando.components`), stored in the
``prepare`` checkpoint, and every chunk fits its steps against the same arrays, so the
fractions do not depend on the chunking.  Without standards (``method = "mcr"``) the
component spectra come from PCA and MCR-ALS of the analysed steps (at most
:data:`~.analyses.COMPONENT_ROWS`, evenly spaced), and every step's concentrations from a fit of its
spectrum against those spectra (closure on, non-negative).  Either way the columns are
``frac_<name>, frac_<name>_err, lcf_rfactor, lcf_redchi, lcf_ok`` and ``summary.json``
gets a ``components`` object.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..components import lcf, mcr, pca, resolve_standards
from ..errors import ConfigError, DataError
from ..io import read_series
from ..schema import is_lcf_column
from ..series import Series
from ..xanes import NormalizedSeries, calibrate, normalize
from .source import rows_of
from .store import RunStore

log = logging.getLogger(__name__)



def resolve(plan, series, normalize_kwargs: dict) -> tuple[dict, list]:
    """``(arrays, info)``: every standard as ``name -> (energy, values)`` and its record.

    ``first``/``last``/``step:N`` are steps of the series, ``reference_channel`` the
    reference (foil) channel of the first step; files are read and normalised with the
    series' settings.  One trial fit of the first step surfaces every standard problem
    (other edge, not covering the range, two identical standards) before the run.
    """
    c = plan.components
    rows = reference_rows(plan, series)
    sub = rows_of(series, rows)
    norm = normalize(sub, **normalize_kwargs)
    if not np.asarray(norm.ok).any():
        raise DataError("[components]: neither the first nor the last step could be normalised "
                        "to resolve the standards")
    items = [(name or (source if source in ("first", "last", "reference_channel") else None),
              _spec(source, sub, rows, series, name, plan.calibrate))
             for name, source in c["standards"]]
    series_e0 = float(np.median(np.asarray(norm.e0, float)[np.asarray(norm.ok)]))
    refs = resolve_standards(norm, [spec for _, spec in items], e0=series_e0)
    for (name, _), ref in zip(items, refs):
        if name is not None:
            object.__setattr__(ref, "name", name)
    names = [r.name for r in refs]
    if len(set(names)) != len(names):
        raise ConfigError(f"[components] standard names must be unique, got {names}; give "
                          "standards as a table name = source")
    space = "flat" if c["space"] == "flat" else "norm"
    arrays = {r.name: (np.asarray(r.energy, float), np.asarray(r.values(space), float)) for r in refs}
    lcf(norm, arrays, **c["kwargs"])  # trial fit: every standard problem stops the run here
    return arrays, [r.info() for r in refs]


def reference_rows(plan, series) -> list[int]:
    """The rows of the series the standards are resolved from: the first, the last and
    those named (``step:N``, ``steps:A-B``)."""
    rows = {0, len(series) - 1}
    for _, source in plan.components["standards"]:
        if source.startswith("step:"):
            rows.add(_step_row(series, source))
        elif source.startswith("steps:"):
            rows.update(_steps_rows(series, source))
    return sorted(rows)


def _step_row(series, source: str) -> int:
    try:
        step = int(source.split(":", 1)[1])
    except ValueError:
        raise ConfigError(f"[components] standard {source!r}: give step:N with N a step number"
                          ) from None
    hits = np.flatnonzero(np.asarray(series.steps) == step)
    if hits.size == 0:
        raise ConfigError(f"[components] standard {source!r}: no step {step} in the series")
    return int(hits[0])


def _steps_rows(series, source: str) -> list[int]:
    """The rows of ``steps:A-B`` (a stretch of the series, e.g. a segment: their mean)."""
    try:
        a, b = (int(x) for x in source.split(":", 1)[1].split("-"))
    except ValueError:
        raise ConfigError(f"[components] standard {source!r}: give steps:A-B with A <= B step "
                          "numbers") from None
    steps = np.asarray(series.steps)
    rows = np.flatnonzero((steps >= a) & (steps <= b)).tolist()
    if a > b or not rows:
        raise ConfigError(f"[components] standard {source!r}: no steps {a}-{b} in the series")
    return rows


def _spec(source: str, sub: Series, rows: list, series, name, calibrate_kwargs):
    if source in ("first", "last"):
        return source
    if source.startswith("step:"):
        return int(sub.steps[rows.index(_step_row(series, source))])
    if source.startswith("steps:"):
        wanted = _steps_rows(series, source)
        return slice(rows.index(wanted[0]), rows.index(wanted[-1]) + 1)
    if source == "reference_channel":
        if sub.reference is None:
            raise ConfigError("[components] standard \"reference_channel\": the series has no "
                              "reference channel")
        return sub.take([0]).replace(mu=np.asarray(sub.reference[:1]), reference=None)
    return _read_standard(source, name, series, calibrate_kwargs)


def _read_standard(source: str, name, series, calibrate_kwargs) -> Series:
    """A standard's file as a one-spectrum Series, on the series' energy scale.

    When the series is calibrated, so is the reference: on its own reference channel
    when it has one, else on its own edge when it is the metal (its name or file says
    foil/metal: its edge *is* the tabulated edge); any other reference is taken as
    measured, and the record says so.
    """
    path, _, group = source.partition("#")
    ref = read_series(path, element=series.element, edge=series.edge)
    if group:
        rows = [i for i, f in enumerate(ref.files) if f.split("#", 1)[-1] == group]
        if not rows:
            raise DataError(f"[components] standard {source}: no group {group!r}; it has "
                            + ", ".join(f.split("#", 1)[-1] for f in ref.files[:10]))
        ref = ref.take(rows[:1])
    elif len(ref) != 1:
        raise DataError(f"[components] standard {source} holds {len(ref)} spectra; name one "
                        "group as file#group")
    label = (name or Path(path).stem).lower()
    how = "as measured (no reference channel, not a metal foil)"
    if calibrate_kwargs is not None:
        if ref.reference is not None:
            ref, _ = calibrate(ref, **calibrate_kwargs)
            how = "calibrated on its reference channel"
        elif any(word in label for word in ("foil", "metal")):
            ref, _ = calibrate(ref.replace(reference=ref.mu), **calibrate_kwargs)
            how = "calibrated on its own edge (a metal foil)"
    log.info("[components] reference %s: %s", source, how)
    return ref.replace(metadata={**ref.metadata, "calibration_note": how})


def fit_columns(norm: NormalizedSeries, references: dict, kwargs: dict) -> pd.DataFrame:
    """The ``frac_*`` and ``lcf_*`` columns of a chunk's steps (row order of the chunk)."""
    table = lcf(norm, references, **kwargs).to_dataframe()
    keep = [c for c in table.columns if is_lcf_column(c)]
    return table[keep]


def save(store: RunStore, name: str, arrays: dict, meta: dict) -> None:
    flat = {}
    for i, (ref, (energy, values)) in enumerate(arrays.items()):
        flat[f"r{i}_energy"], flat[f"r{i}_values"] = energy, values
    store.save_checkpoint(name, flat, {**meta, "standard_names": list(arrays)})


def load(store: RunStore, name: str) -> tuple[dict, dict]:
    flat, meta = store.load_checkpoint(name)
    arrays = {ref: (flat[f"r{i}_energy"], flat[f"r{i}_values"])
              for i, ref in enumerate(meta["standard_names"])}
    return arrays, meta


def series_analysis(plan, energy, steps: pd.DataFrame, norm_rows: np.ndarray, rows,
                    settings: dict) -> tuple[dict | None, dict, dict]:
    """PCA of the steps at positions ``rows`` (their spectra ``norm_rows``), and with
    ``method = "mcr"`` MCR-ALS of them.

    Returns ``(spectra, record, results)``: with MCR the component spectra as ``name ->
    (energy, values)`` (every step is then fitted against them), else None; the summary
    record (method, the PCA estimate of the number of components, MCR lack of fit); and
    the :class:`~operando.components.PCAResult` / :class:`~operando.components.MCRResult`
    as ``{"pca": ..., "mcr": ...}`` (None where not made) for the figures.
    """
    c = plan.components
    sampled = steps.iloc[rows].reset_index(drop=True)
    ok = sampled["ok"].astype(bool).to_numpy() & np.isfinite(norm_rows).all(axis=1)
    normalized = as_normalized(energy, sampled, norm_rows, ok, settings)
    record = {"method": c["method"], "erange_eV": list(c["kwargs"]["erange"]),
              "n_steps_analysed": int(ok.sum())}
    results: dict = {"pca": None, "mcr": None}
    try:
        p = pca(normalized, erange=c["kwargs"]["erange"], steps=sampled["step"][ok].tolist())
        record.update(n_components=int(p.n_components), pca_criterion="Malinowski F-test",
                      eigenvalues=[float(v) for v in p.eigenvalues[:10]])
        results["pca"] = p
    except (DataError, ConfigError) as exc:
        record.update(n_components=None, pca_note=str(exc))
    if c["method"] != "mcr":
        return None, record, results
    k = c["n_components"] or record.get("n_components") or 2
    result = mcr(normalized, max(int(k), 1), erange=c["kwargs"]["erange"], bands=False,
                 steps=sampled["step"][ok].tolist())
    record.update(mcr_components=list(result.names), lack_of_fit_percent=result.lack_of_fit,
                  lack_of_fit_pca_percent=result.lack_of_fit_pca,
                  ambiguity="MCR spectra and concentrations are defined up to a rotation; "
                            "fix a known spectrum to narrow it")
    results["mcr"] = result
    if len(result.names) < 2:
        # one component's weight is 1 at every step: no fraction columns (see lcf)
        record["mcr_note"] = "one component: the series holds one species, no fractions"
        return None, record, results
    spectra = {name: (np.asarray(result.x, float), np.asarray(result.spectra[j], float))
               for j, name in enumerate(result.names)}
    return spectra, record, results


def as_normalized(energy, table, norm_rows, ok, settings, flat=None) -> NormalizedSeries:
    """A NormalizedSeries of rows kept by the run (``table``: their steps-table rows;
    ``flat`` defaults to ``norm_rows``)."""
    n = len(table)
    conditions = table[[c for c in ("step", "file") if c in table]].copy()
    series = Series(energy=np.asarray(energy, float), mu=np.where(np.isfinite(norm_rows), norm_rows, 0.0),
                    conditions=conditions, metadata={})
    nan = np.full(n, np.nan)
    return NormalizedSeries(series=series, norm=norm_rows, flat=norm_rows if flat is None else flat,
                            e0=pd.to_numeric(table["e0"], errors="coerce").to_numpy(float),
                            edge_step=np.ones(n), pre_offset=nan, pre_slope=nan,
                            norm_coefs=np.full((n, 1), np.nan), ok=ok,
                            reason=["" if o else "not normalised" for o in ok],
                            settings=dict(settings))
