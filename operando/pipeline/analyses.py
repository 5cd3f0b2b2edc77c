"""The series-wide analyses of a run: steps of the session after tracking, before (and
independent of) the figures, which only draw their results.

* :func:`component_analysis` (``[components]``): PCA, and with ``method = "mcr"``
  MCR-ALS, of up to :data:`COMPONENT_ROWS` steps evenly spaced over the series (all
  of them up to that many), their spectra read from the chunk checkpoints; with MCR
  every step's concentrations from a fit against the MCR spectra, chunk by chunk.
* :func:`wavelet_analysis` (EXAFS with tracking): per tracking segment, the wavelet
  transform of the mean chi(k) of *all* its steps (summed chunk by chunk from the
  checkpoints, so memory does not grow with the series) and each shell's lobe
  (``wavelet_lobes.csv``).
* :func:`lcf_overlay`: the LCF fit of the step the run shows (the largest metallic
  fraction), its spectrum read back from its checkpoint.

None of them reads what the figures sample (:data:`~.chunks.PLOT_ROWS`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd

from ..components import lcf, lcf_arrays
from ..schema import is_lcf_column
from ..exafs.wavelet import lobe_positions, shell_windows, wavelet_transform
from ..tracking.channels import flags, fraction_columns
from .chunks import chunk_name, sample_rows, submit
from .components import as_normalized, load as load_standards, series_analysis
from .prepare import COMPONENTS
from .steps import unpack_chunk
from .store import RunStore

#: Steps the PCA and MCR of a run analyse at most (evenly spaced over the series).
COMPONENT_ROWS = 2000
#: Wavelet maps kept for the figure (segments, evenly spaced over the run).
WAVELET_MAPS = 6
#: Segments transformed at once (each map is ~1 MB).
_WAVELET_BLOCK = 16


def _chunks(store: RunStore, parts: list, keys: tuple[str, ...]):
    """``(first row, table, arrays)`` of every chunk, one at a time: its table from
    ``parts`` (what the run keeps of each chunk), the arrays ``keys`` read from its
    checkpoint."""
    start = 0
    for i, (kept, _) in enumerate(parts):
        table, _ = unpack_chunk(kept)
        yield start, table, store.load_checkpoint(chunk_name(i), keys=keys)[0]
        start += len(table)


def component_analysis(store: RunStore, plan, series, shared: dict, steps: pd.DataFrame,
                       meta0: dict, parts: list) -> tuple[dict, dict]:
    """PCA (and MCR) of the analysed steps; with MCR every step's concentrations join
    ``steps`` as ``frac_<component>`` columns.  Returns the summary record and the
    PCA / MCR results (``{"pca": ..., "mcr": ...}``)."""
    rows = sample_rows(len(steps), COMPONENT_ROWS)
    norm = np.full((rows.size, series.energy.size), np.nan)
    for start, table, rest in _chunks(store, parts, ("norm",)):
        inside = (rows >= start) & (rows < start + len(table))
        norm[inside] = rest["norm"][rows[inside] - start]
    spectra, record, results = series_analysis(plan, series.energy, steps, norm, rows,
                                               meta0.get("normalize_settings", {}))
    if "components" in shared:
        record["standards"] = shared["components"].get("standards")
    if spectra is None:
        return record, results
    names = list(spectra)
    x = next(iter(spectra.values()))[0]
    basis = np.array([spectra[n][1] for n in names])
    cols: dict[str, list] = {}
    for _, table, rest in _chunks(store, parts, ("norm",)):
        fit_rows = np.array([np.interp(x, series.energy, r) for r in rest["norm"]])
        part = lcf_arrays(x, fit_rows, basis, names=names,
                          steps=table["step"].to_numpy()).to_dataframe()
        for c in part.columns:
            if is_lcf_column(c):
                cols.setdefault(c, []).append(part[c].to_numpy())
    for c, values in cols.items():
        steps[c] = np.concatenate(values)
    return record, results


def wavelet_analysis(store: RunStore, ft: dict, parts: list, steps: pd.DataFrame, tracking,
                     shells, executor=None):
    """Cauchy wavelet maps of the mean chi(k) of each segment's steps (k^w and k window of
    the run's transform), and the (k, R) of each shell's lobe.

    Returns a callable (None without chi(k), tracking or shells) that returns
    ``(WaveletTransform, lobes)``: the maps of up to :data:`WAVELET_MAPS` segments
    evenly spaced over the run (the figure), and ``lobes`` for every segment and shell
    (``segment, condition, state, shell, k, r, modulus, r_low, r_high``).  The
    transforms run on ``executor`` (the run's workers, a few parts per worker) until it
    is called, so the run writes its tables meanwhile; without one, here when it is called.  A step whose
    chi(k) is not finite on the run's k grid is left out of its segment's mean.
    """
    widths = [arrays["k"].size for arrays, _ in parts if "k" in arrays]
    if not widths or tracking is None or not shells:
        return None
    n_k = max(widths)
    k = next(arrays["k"] for arrays, _ in parts if "k" in arrays and arrays["k"].size == n_k)
    seg_of = dict(zip(tracking.steps["step"], tracking.steps["segment"]))
    groups = np.array([seg_of.get(s, -1) for s in steps["step"].to_numpy()])
    labels = list(dict.fromkeys(groups.tolist()))
    index = {g: i for i, g in enumerate(labels)}
    sums = np.zeros((len(labels), n_k))
    counts = np.zeros(len(labels), dtype=int)
    for start, table, rest in _chunks(store, parts, ("chi",)):
        chi = rest.get("chi")
        if chi is not None and chi.shape[1] == n_k:
            finite = np.isfinite(chi).all(axis=1)
            where = np.array([index[g] for g in groups[start:start + len(table)]], dtype=int)
            np.add.at(sums, where[finite], chi[finite])
            np.add.at(counts, where[finite], 1)
    means = np.full_like(sums, np.nan)
    means[counts > 0] = sums[counts > 0] / counts[counts > 0, None]
    shown = {labels[i] for i in np.unique(np.linspace(0, len(labels) - 1, min(len(labels),
                                                       WAVELET_MAPS)).round().astype(int))}
    # shells are labels or tables (resolved [exafs] shells); a tagged further shell of a
    # pair (an oxide's "Cu-Cu_ox1") has no window of its own
    tables = [{"label": sh} if isinstance(sh, str) else sh for sh in shells]
    main = [t for t in tables if "_" not in t["label"]]
    windows = shell_windows([t["label"] for t in main],
                            {t["label"]: t["distance"] for t in main if t.get("distance")})
    kwargs = dict(ft, rmax_out=6.0)
    # the lobes need only the R points of the shells' windows (the same numbers there as
    # the whole map, a third of its cost); whole maps only for the segments drawn
    rrange = ((min(w[0] for w in windows.values()), max(w[1] for w in windows.values()))
              if windows else None)
    labels_array = np.array(labels, dtype=object)
    drawn = np.array([g in shown for g in labels])
    # a few parts per worker, each of whole blocks (the same numbers however it is split)
    size = _WAVELET_BLOCK * max(1, -(-len(labels) // (8 * _WAVELET_BLOCK)))
    jobs = [(k, means[a:a + size], labels_array[a:a + size], counts[a:a + size],
             drawn[a:a + size], rrange, windows, kwargs) for a in range(0, len(labels), size)]
    return partial(_wavelet_result, [submit(executor, _wavelet_part, *job) for job in jobs],
                   tracking.segments)


def _wavelet_result(parts: list, segments: pd.DataFrame):
    """``(WaveletTransform, lobes)`` of the parts (futures) of :func:`wavelet_analysis`."""
    done = [part.result() for part in parts]
    lobes = pd.concat([part for part, _ in done], ignore_index=True)
    wt = _joined([m for _, m in done if m is not None])
    seg = segments.set_index("segment")
    lobes.insert(0, "segment", lobes.pop("label"))
    condition, state = seg["condition"].to_dict(), seg["state"].to_dict()
    lobes.insert(1, "condition", [condition.get(g, "") for g in lobes["segment"]])
    lobes.insert(2, "state", [state.get(g, "") for g in lobes["segment"]])
    return wt, lobes


def _wavelet_part(k, means, labels, counts, drawn, rrange, windows: dict, kwargs: dict):
    """``(lobes, map)`` of some segments, block by block: the lobes of all of them, the
    whole maps of the ``drawn`` ones in one transform (None if none is)."""
    lobes, maps = [], []
    for a in range(0, len(labels), _WAVELET_BLOCK):
        block = slice(a, a + _WAVELET_BLOCK)
        wt = wavelet_transform(k, means[block], groups=labels[block], rrange=rrange, **kwargs)
        lobes.append(lobe_positions(replace(wt, n_steps=counts[block].copy()), windows))
        keep = a + np.flatnonzero(drawn[block])
        if keep.size:
            whole = wavelet_transform(k, means[keep], groups=labels[keep], **kwargs)
            maps.append(replace(whole, n_steps=counts[keep].copy()))
    return pd.concat(lobes, ignore_index=True), _joined(maps) if maps else None


def _joined(maps: list):
    """One WaveletTransform of the segments of ``maps`` (transforms on one grid)."""
    return replace(maps[0], wt=np.concatenate([m.wt for m in maps]),
                   labels=[g for m in maps for g in m.labels],
                   n_steps=np.concatenate([m.n_steps for m in maps]))


def lcf_overlay(store: RunStore, plan, energy, steps: pd.DataFrame, analysis: dict):
    """The LCF fit the run shows: ``(LCFResult, step, why)`` or None.

    The step is the one with the largest metallic fraction (a reference named foil or
    metal, or the ``[components] metal`` one): it shows how well the standards
    describe the state furthest from the oxidised start, where an error in the metal
    reference matters most.  Without a metallic component, the last fitted step (the
    end of the run).  Its spectrum is read back from its chunk's checkpoint, so any
    step can be shown.
    """
    c = plan.components
    ok = np.array(flags(steps, "lcf_ok", default=False)) & np.array(flags(steps, "ok"))
    if c is None or not ok.any():
        return None
    fracs = fraction_columns(steps)
    wanted = f"frac_{c['metal']}" if c.get("metal") else None
    metal = wanted if wanted in fracs else next(
        (col for col in fracs if any(w in col.lower() for w in ("foil", "metal"))), None)
    if metal is not None:
        values = np.where(ok, pd.to_numeric(steps[metal], errors="coerce"), -np.inf)
        row = int(np.nanargmax(values))
        why = (f"the step with the largest {metal[5:]} fraction ({values[row]:.3f}), the state "
               "furthest from the start, where the metallic reference is tested hardest")
    else:
        row = int(np.flatnonzero(ok)[-1])
        why = "the last fitted step (no metallic component to choose by)"
    step = int(steps["step"].iloc[row])
    i, j = divmod(row, plan.chunk_size)
    arrays, _ = store.load_checkpoint(chunk_name(i))
    norm, flat = arrays["norm"][j:j + 1], arrays.get("flat", arrays["norm"])[j:j + 1]
    if c["method"] == "mcr":
        mcr = analysis.get("mcr")
        if mcr is None or len(mcr.names) < 2:     # one component: no fit to draw
            return None
        x = np.asarray(mcr.x, float)
        result = lcf_arrays(x, np.interp(x, energy, norm[0])[None, :], np.asarray(mcr.spectra),
                            names=list(mcr.names), steps=[step])
        return result, step, why
    standards, _ = load_standards(store, COMPONENTS)
    one = as_normalized(energy, steps.iloc[[row]].reset_index(drop=True), norm, np.ones(1, bool),
                        {}, flat=flat)
    return lcf(one, standards, **c["kwargs"]), step, why
