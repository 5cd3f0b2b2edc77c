"""Normalisation of every spectrum of a series: Larch's ``pre_edge``, batched.

``engine="larch"`` loops over the spectra calling :func:`larch.xafs.pre_edge` and
is the oracle; ``engine="fast"`` (default) solves the same least-squares fits
for all spectra sharing index ranges at once (:mod:`.prepost`) and finds E0 with
the batched ``find_e0`` (:mod:`.e0`).  The fast engine agrees with Larch to
rounding error (the tests hold it to 1e-3 on real spectra; in practice ~1e-12).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .._util.blas import single_threaded_blas
from ..errors import ConfigError, DataError
from ..options import NormalizeOptions
from ..series import Series
from .e0 import find_e0_rows, check_rows, dedup_energy
from .prepost import MAX_NNORM, collapse_setting, empty_out, normalize_rows_fast, normalize_row_larch, PrePostPlan, resolve_plan
from .result import NormalizedSeries

log = logging.getLogger(__name__)

_E0_POLICIES = ("median", "first", "each", "reference")
# The smallest edge step that is an edge (NormalizeOptions.min_edge_snr, 10 x the
# point-to-point noise): a dilute single-atom sample in fluorescence is still 20-100 x its
# noise per point; a scan with no absorber (foil-only, empty cell) fits an "edge step" of a
# few noise units.


def _point_noise(rows: np.ndarray) -> np.ndarray:
    """Robust point-to-point noise of each normalised spectrum (row; edge-step units),
    over its finite points: NaN for a row with fewer than 11 of them.

    Rows that are finite throughout (nearly all) go in one call; the medians are the
    same order statistics whether taken row by row or along the axis.
    """
    rows = np.asarray(rows, dtype=float)
    noise = np.full(len(rows), np.nan)
    finite = np.isfinite(rows)
    whole = finite.all(axis=1)
    if whole.any() and rows.shape[1] > 10:
        d = np.diff(rows[whole], axis=1)
        mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
        noise[whole] = 1.4826 * mad / np.sqrt(2)
    for i in np.flatnonzero(~whole):
        d = np.diff(rows[i][finite[i]])
        if d.size >= 10:
            noise[i] = 1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2)
    return noise
_ENGINES = ("fast", "larch")


# ------------------------------------------------------------------------ normalize
def normalize(
    series: Series,
    *,
    e0: str | float = NormalizeOptions.e0,
    pre1: float | None = NormalizeOptions.pre1,
    pre2: float | None = NormalizeOptions.pre2,
    norm1: float | None = NormalizeOptions.norm1,
    norm2: float | None = NormalizeOptions.norm2,
    nnorm: int | None = NormalizeOptions.nnorm,
    nvict: int = NormalizeOptions.nvict,
    engine: str = NormalizeOptions.engine,
    min_edge_snr: float = NormalizeOptions.min_edge_snr,
) -> NormalizedSeries:
    """Pre-edge subtraction and normalisation of every spectrum (Larch ``pre_edge``).

    Parameters
    ----------
    series : Series
        Spectra on one energy grid (eV).
    e0 : {"median", "first", "each", "reference"} or float
        Edge energy policy (default ``"median"``).  ``"median"``: the median of Larch's ``find_e0`` over every
        spectrum, used for every step (one odd spectrum cannot move it).
        ``"first"``: Larch's ``find_e0`` on the first good
        spectrum (finite, not constant, positive edge step), used for every
        step.  ``"each"``: ``find_e0`` on every spectrum.  ``"reference"``:
        ``find_e0`` on the reference channel of the first good step (use after
        :func:`calibrate`), used for every step.  A number: that E0 in eV for
        every step (must lie within the grid's 2nd..2nd-last points).
    pre1, pre2 : float, optional
        Pre-edge fit range relative to E0, eV.  Default as Larch: ``pre1`` =
        (2nd energy point - E0) rounded to 5 eV (2 eV if E0 is within 20 points
        of the start); ``pre2 = pre1 / 2``.
    norm1, norm2 : float, optional
        Post-edge fit range relative to E0, eV.  Default as Larch: ``norm2`` =
        (last energy - E0) rounded to 5 eV; ``norm1 = min(25, norm2 / 15``
        rounded to 5 eV).
    nnorm : int, optional
        Post-edge polynomial order (0..5).  Default as Larch: 2 if
        ``norm2 - norm1 >= 300`` eV, 1 if >= 30 eV, else 0.
    nvict : int
        Victoreen exponent: the pre-edge line is fitted to ``mu * E**nvict``.
    engine : {"fast", "larch"}
        ``"fast"``: batched linear algebra (same maths); ``"larch"``: loop over
        ``larch.xafs.pre_edge`` (the oracle the fast engine is tested against).
    min_edge_snr : float
        A spectrum whose edge step is less than this many times its point-to-point
        noise has no edge to speak of (a foil-only or empty-cell scan read as the
        sample): not ok, with that reason.  The noise is the robust standard
        deviation of successive differences (median absolute deviation), which the
        edge itself and the EXAFS wiggles barely move.  0 turns the test off.

    Returns
    -------
    NormalizedSeries
        Steps that cannot be normalised (non-finite or constant mu, edge step
        <= 0 or not finite, E0 not found) have ``ok=False``, a reason and NaN
        ``norm``/``flat`` rows; they never raise.

    Raises
    ------
    ConfigError
        Unknown ``e0`` policy or engine, a numeric ``e0`` outside the grid, or a pre-edge
        (``pre2``) or post-edge (``norm1``) window outside the data.
    DataError
        ``e0="reference"`` for a series without a reference channel.
    """
    with single_threaded_blas():
        return _normalize(series, e0=e0, pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2,
                          nnorm=nnorm, nvict=nvict, engine=engine, min_edge_snr=min_edge_snr)


def check_windows(energy, e0_values, *, pre2=None, norm1=None) -> None:
    """Refuse a pre- or post-edge window that lies outside the data (ConfigError naming
    the setting), before any spectrum is normalised.

    Larch moves ``pre1`` and ``norm2`` inside the data silently, but a pre-edge window
    that ends before the first point (``pre2``) or a post-edge window that starts after
    the last (``norm1``) holds no point at all: the fit would be of nothing.  Judged at
    the median E0 of the scans (eV); windows are relative to E0.
    """
    e0_values = np.asarray(e0_values, float)
    if e0_values.size == 0:
        return
    e0 = float(np.median(e0_values))
    below, above = float(energy[0]) - e0, float(energy[-1]) - e0
    if pre2 is not None and not float(pre2) > below:
        raise ConfigError(f"[normalize] pre2 = {pre2:g} eV: the pre-edge window ends before the "
                          f"data, which start {below:.0f} eV from E0 ({e0:.1f} eV)")
    if norm1 is not None and not float(norm1) < above:
        raise ConfigError(f"[normalize] norm1 = {norm1:g} eV: the post-edge window starts beyond "
                          f"the data, which end {above:.0f} eV above E0 ({e0:.1f} eV)")


def _normalize(series, *, e0, pre1, pre2, norm1, norm2, nnorm, nvict, engine, min_edge_snr):
    if not isinstance(series, Series):
        raise ConfigError(f"normalize needs an operando Series, got {type(series).__name__}")
    if engine not in _ENGINES:
        raise ConfigError(f"engine must be one of {_ENGINES}, got {engine!r}")
    number = isinstance(e0, (int, float, np.integer, np.floating)) and not isinstance(e0, bool)
    if not (number or isinstance(e0, str) and e0 in _E0_POLICIES):
        raise ConfigError(f"e0 must be one of {_E0_POLICIES} or a number in eV, got {e0!r}")
    if nnorm is not None and not (0 <= int(nnorm) <= MAX_NNORM):
        raise ConfigError(f"nnorm must be between 0 and {MAX_NNORM}, got {nnorm!r}")

    energy = dedup_energy(series.energy)
    mu = series.mu
    n, n_e = mu.shape
    if n_e < 20:
        raise DataError(f"normalize needs at least 20 energy points, the grid has {n_e}")

    ok, problems = check_rows(mu)
    e0_arr = np.full(n, np.nan)
    e0_value: float | None = None
    e0_source: int | None = None

    def _candidate_e0(rows: np.ndarray) -> np.ndarray:
        # find_e0 on finite rows; failures make the row not ok
        vals = np.full(rows.size, np.nan)
        if rows.size:
            try:
                vals, _ = find_e0_rows(energy, mu[rows])
            except Exception as exc:  # noqa: BLE001 - recorded per step below
                log.debug("batched find_e0 failed (%s); per-row fallback", exc)
                for j, r in enumerate(rows):
                    try:
                        vals[j] = find_e0_rows(energy, mu[r : r + 1])[0][0]
                    except Exception:  # noqa: BLE001
                        vals[j] = np.nan
        return vals

    if isinstance(e0, str) and e0 == "each":
        rows = np.flatnonzero(ok)
        e0_arr[rows] = _candidate_e0(rows)
    elif isinstance(e0, str) and e0 == "median":
        rows = np.flatnonzero(ok)
        found = np.asarray(_candidate_e0(rows), dtype=float) if rows.size else np.array([])
        found = found[np.isfinite(found)]
        if found.size == 0:
            for i in rows:
                ok[i] = False
                problems[i] = "no spectrum in the series to find E0 from"
        else:
            # the median of every spectrum's own E0: one odd spectrum (an 8 eV-off oxide in a
            # metal series, a glitch at the edge) cannot move it
            e0_value = float(np.median(found))
            e0_arr[:] = e0_value
    elif isinstance(e0, str) and e0 in ("first", "reference"):
        if e0 == "reference":
            if series.reference is None:
                raise DataError(
                    "e0='reference' needs a reference channel, but this series has none "
                    "(use e0='first', 'each' or a number in eV)"
                )
            ref_ok, _ = check_rows(series.reference)
            candidates = np.flatnonzero(ref_ok)
            source = series.reference
        else:
            candidates = np.flatnonzero(ok)
            source = mu
        for r in candidates:
            try:
                val = float(find_e0_rows(energy, source[r : r + 1])[0][0])
            except Exception:  # noqa: BLE001 - try the next spectrum
                continue
            if e0 == "first":
                # the first *good* spectrum: it must also normalise to a positive step
                plan = resolve_plan(energy, val, pre1, pre2, norm1, norm2, nnorm, nvict)
                probe = empty_out(1, n_e)
                normalize_rows_fast(energy, mu[r : r + 1], plan, probe, np.array([0]))
                if not probe["fit_ok"][0]:
                    continue
            e0_value, e0_source = val, int(series.steps[r])
            break
        if e0_value is None:
            log.warning("normalize: no good %s spectrum to find E0 from; every step flagged",
                        "reference" if e0 == "reference" else "")
            for i in range(n):
                if ok[i]:
                    ok[i] = False
                    problems[i] = f"no good {'reference ' if e0 == 'reference' else ''}" \
                                  "spectrum in the series to find E0 from"
        else:
            e0_arr[:] = e0_value
    else:
        e0_value = float(e0)
        if not (energy[1] <= e0_value <= energy[-2]):
            raise ConfigError(
                f"e0={e0_value} eV is outside the energy grid "
                f"({energy[1]:.2f}..{energy[-2]:.2f} eV accepted)"
            )
        e0_arr[:] = e0_value

    for i in np.flatnonzero(ok & ~np.isfinite(e0_arr)):
        ok[i] = False
        problems[i] = "find_e0 failed (no edge found)"
    check_windows(energy, e0_arr[ok & np.isfinite(e0_arr)], pre2=pre2, norm1=norm1)

    out = empty_out(n, n_e)
    per_step: dict[str, np.ndarray] = {k: np.full(n, np.nan) for k in
                                       ("pre1", "pre2", "norm1", "norm2", "nnorm", "nvict", "npre")}
    plan_kw = dict(pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2, nnorm=nnorm, nvict=nvict)

    if engine == "fast":
        plans: dict[tuple, tuple[PrePostPlan, list[np.ndarray]]] = {}
        good_rows = np.flatnonzero(ok)
        values, inverse = np.unique(e0_arr[good_rows], return_inverse=True)
        for j, val in enumerate(values):
            plan = resolve_plan(energy, float(val), pre1, pre2, norm1, norm2, nnorm, nvict)
            idx = good_rows[inverse.ravel() == j] if values.size > 1 else good_rows
            plans.setdefault(plan.key(), (plan, []))[1].append(idx)
            for k in per_step:
                per_step[k][idx] = getattr(plan, k)
        for plan, parts in plans.values():
            normalize_rows_fast(energy, mu, plan, out, np.sort(np.concatenate(parts)))
    else:
        for i in np.flatnonzero(ok):
            try:
                res = normalize_row_larch(energy, mu[i], None if e0 == "each" else e0_arr[i],
                                       plan_kw)
            except Exception as exc:  # noqa: BLE001 - recorded as the step's reason
                problems[i] = f"larch pre_edge failed: {exc}"
                ok[i] = False
                continue
            e0_arr[i] = res["e0"]
            for key in ("norm", "flat", "pre_offset", "pre_slope"):
                out[key][i] = res[key]
            out["edge_step"][i] = res["raw_step"]
            coefs = res["norm_coefs"]
            out["norm_coefs"][i] = 0.0
            out["norm_coefs"][i, : len(coefs)] = coefs
            good = np.isfinite(res["raw_step"]) and res["raw_step"] > 0
            out["fit_ok"][i] = good
            if not good:
                out["norm"][i] = np.nan
                out["flat"][i] = np.nan
            for k in per_step:
                per_step[k][i] = res["settings"][k]

    for i in np.flatnonzero(ok & ~out["fit_ok"]):
        ok[i] = False
        problems[i] = "normalised mu is not finite (overflow)" if out["overflow"][i] else (
            f"edge step is {out['edge_step'][i]:.4g} (<= 0 or not finite): no absorption edge"
        )
    if min_edge_snr > 0:
        live = np.flatnonzero(ok)
        noise = _point_noise(out["norm"][live])
        weak = np.isfinite(noise) & (noise * min_edge_snr > 1.0)
        for i, level in zip(live[weak], noise[weak]):
            ok[i] = False
            problems[i] = (f"no absorption edge above the noise: edge step "
                           f"{out['edge_step'][i]:.3g} is {1 / level:.1f} x the point-to-point "
                           f"noise (at least {min_edge_snr:g} x needed)")
    bad = ~ok
    out["norm"][bad] = np.nan
    out["flat"][bad] = np.nan
    for k in ("pre_offset", "pre_slope"):
        out[k][bad & ~np.isfinite(out["edge_step"])] = np.nan
    out["norm_coefs"][bad & ~np.isfinite(out["edge_step"])] = np.nan
    reason = ["" if ok[i] else f"normalize: {problems[i]}" for i in range(n)]
    if bad.any():
        log.info("normalize: %d of %d steps not ok", int(bad.sum()), n)

    settings: dict[str, Any] = {
        "e0": e0 if isinstance(e0, str) else float(e0),
        "e0_value": e0_value,
        "e0_source_step": e0_source,
        "engine": engine,
        "min_edge_snr": float(min_edge_snr),
    }
    for k, values in per_step.items():
        settings[k] = collapse_setting(values[ok], values, integer=k in ("nnorm", "nvict", "npre"))
    settings["requested"] = dict(plan_kw)

    ncoef = out["norm_coefs"].shape[1]
    used = settings["nnorm"]
    if isinstance(used, int):
        ncoef = used + 1
    return NormalizedSeries(
        series=series,
        norm=out["norm"],
        flat=out["flat"],
        e0=e0_arr,
        edge_step=out["edge_step"],
        pre_offset=out["pre_offset"],
        pre_slope=out["pre_slope"],
        norm_coefs=out["norm_coefs"][:, :ncoef].copy(),
        ok=ok,
        reason=reason,
        settings=settings,
    )
