"""Energy calibration: every scan shifted so its reference-channel edge sits at the
tabulated (or given) edge energy."""

from __future__ import annotations

import logging

import numpy as np

from .._util.blas import single_threaded_blas
from .._util.elements import edge_energy
from ..errors import ConfigError, DataError
from ..series import Series
from .e0 import find_e0_rows, refine_on_raw_derivative, check_rows, dedup_energy

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------ calibrate
_E0_METHODS = ("refined", "find_e0")


def calibrate(
    series: Series,
    *,
    edge_energy: float | None = None,
    e0_method: str = "refined",
    max_shift: float = 20.0,
) -> tuple[Series, np.ndarray]:
    """Align every scan on its reference channel (e.g. a metal foil).

    For each step the reference edge E_ref is found on the reference-channel mu
    as the maximum of the smoothed derivative (Larch's ``find_e0``), the shift
    ``edge_energy - E_ref`` is added to that scan's energy axis, and mu and the
    reference are linearly interpolated back onto the common grid.  The grid is
    trimmed to the points covered by every shifted scan, so nothing is
    extrapolated (a few points at each end are lost, at most the largest shift).

    Parameters
    ----------
    series : Series
        Must have a reference channel.
    edge_energy : float, optional
        Target reference edge energy, eV.  Default: the tabulated edge energy
        ``xraydb.xray_edge(series.element, series.edge).energy``.
    e0_method : {"refined", "find_e0"}
        ``"find_e0"``: Larch's ``find_e0`` exactly, which returns an energy grid
        point, so the alignment is only good to half a grid step.
        ``"refined"`` (default): the same maximum refined to sub-grid precision
        by a least-squares parabola through the unsmoothed derivative within
        +/- 1 eV of it (smoothing would pull the maximum of an asymmetric edge
        towards the white line by ~0.2 eV at Pt L3).
    max_shift : float
        Largest believable shift, eV.  A larger one (usually a glitch or a
        missing foil picked as the "edge") is not applied: that step keeps its
        energy axis (shift 0) and is flagged in the metadata, because shifting
        a scan by tens of eV on a wrong edge would silently corrupt it.  The
        same holds when no reference edge can be found for a step (dead
        reference frame).

    Returns
    -------
    calibrated : Series
        The aligned series.  ``metadata`` gains ``energy_shifts`` (applied
        shifts, eV), ``energy_shift_measured`` (measured, eV; NaN where not
        found), ``energy_shift_ok`` (bool per step), ``energy_shift_reason``
        (``""`` when applied), ``calibration`` (edge_energy, e0_method,
        max_shift) and ``interpolated=True``.
    shifts : (n,) array
        The applied shifts, eV (0 for flagged steps).

    Raises
    ------
    DataError
        No reference channel; no edge energy given and none tabulated for the
        series' element/edge; nothing left of the grid after shifting.
    ConfigError
        Unknown ``e0_method`` or non-positive ``max_shift``.
    """
    if series.reference is None:
        raise DataError(
            "calibrate needs a reference channel (e.g. a foil between it and iref), "
            "but this series has none; read it with reference=True or skip calibration"
        )
    if e0_method not in _E0_METHODS:
        raise ConfigError(f"e0_method must be one of {_E0_METHODS}, got {e0_method!r}")
    if not (np.isfinite(max_shift) and max_shift > 0):
        raise ConfigError(f"max_shift must be a positive number of eV, got {max_shift!r}")
    if edge_energy is None:
        edge_energy = _tabulated_edge(series)
    edge_energy = float(edge_energy)

    energy = dedup_energy(series.energy)
    ref = series.reference
    n = ref.shape[0]
    ref_ok, ref_problem = check_rows(ref)
    measured = np.full(n, np.nan)
    rows = np.flatnonzero(ref_ok)
    if rows.size:
        with single_threaded_blas():
            grid_e0, refined_e0 = find_e0_rows(energy, ref[rows])
            if e0_method == "refined":
                refined_e0 = refine_on_raw_derivative(energy, ref[rows], refined_e0)
        measured[rows] = edge_energy - (refined_e0 if e0_method == "refined" else grid_e0)
    applied = np.where(np.isfinite(measured), measured, 0.0)
    shift_ok = np.isfinite(measured)
    reason = [""] * n
    for i in range(n):
        if not ref_ok[i]:
            reason[i] = f"calibrate: reference channel unusable ({ref_problem[i]}); not shifted"
        elif not np.isfinite(measured[i]):
            reason[i] = "calibrate: no reference edge found; not shifted"
        elif abs(measured[i]) > max_shift:
            shift_ok[i] = False
            applied[i] = 0.0
            reason[i] = (
                f"calibrate: measured shift {measured[i]:+.2f} eV exceeds max_shift "
                f"{max_shift:g} eV; not applied"
            )
    for i in np.flatnonzero(~shift_ok):
        log.warning("step %s: %s", series.steps[i], reason[i])

    lo = energy[0] + max(0.0, applied.max())
    hi = energy[-1] + min(0.0, applied.min())
    keep = (energy >= lo - 1e-9) & (energy <= hi + 1e-9)
    if keep.sum() < 20:
        raise DataError(
            f"after shifting by up to {np.abs(applied).max():.1f} eV fewer than 20 energy "
            "points are covered by every scan"
        )
    new_energy = series.energy[keep]
    new_mu = np.empty((n, new_energy.size))
    new_ref = np.empty((n, new_energy.size))
    for i in range(n):
        src = energy + applied[i]
        new_mu[i] = np.interp(new_energy, src, series.mu[i])
        new_ref[i] = np.interp(new_energy, src, ref[i])
        # np.interp spreads a NaN to its neighbours' intervals only; keep dead rows dead
        if not np.all(np.isfinite(series.mu[i])):
            new_mu[i] = _interp_with_nan(new_energy, src, series.mu[i])
        if not np.all(np.isfinite(ref[i])):
            new_ref[i] = _interp_with_nan(new_energy, src, ref[i])

    metadata = dict(series.metadata)
    metadata.update(
        energy_shifts=applied.copy(),
        energy_shift_measured=measured,
        energy_shift_ok=shift_ok,
        energy_shift_reason=reason,
        calibration={"edge_energy": edge_energy, "e0_method": e0_method,
                     "max_shift": float(max_shift)},
        interpolated=True,
    )
    calibrated = series.replace(energy=new_energy, mu=new_mu, reference=new_ref,
                                metadata=metadata)
    return calibrated, applied


def _interp_with_nan(x_new, x, y):
    good = np.isfinite(y)
    if good.sum() < 2:
        return np.full(x_new.size, np.nan)
    out = np.interp(x_new, x[good], y[good])
    # points whose bracketing source point was bad stay bad
    bad_x = x[~good]
    if bad_x.size:
        step = np.median(np.diff(x))
        near = np.min(np.abs(x_new[:, None] - bad_x[None, :]), axis=1) < step
        out[near] = np.nan
    return out


def _tabulated_edge(series: Series) -> float:
    if not series.element or not series.edge:
        raise DataError(
            "calibrate needs edge_energy, or a series with element and edge set "
            f"(got element={series.element!r}, edge={series.edge!r})"
        )
    try:
        return edge_energy(series.element, series.edge)
    except ConfigError as exc:
        raise DataError(
            f"no tabulated {series.element} {series.edge} edge energy ({exc}); "
            "pass edge_energy in eV"
        ) from None
