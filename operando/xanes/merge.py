"""Merge repeated scans of one condition: align on the reference channel, reject outliers
with a stated test, average, and keep the noise estimate.

Groups
    A group is a run of consecutive steps whose ``by`` condition values are
    equal (default: every condition column except ``label`` and ``time_s``;
    without condition columns the whole series is one group).
Alignment (``align="reference"``)
    Each scan's reference-channel edge is found as :func:`operando.xanes.calibrate`
    finds it (Larch ``find_e0`` refined on the unsmoothed derivative); the scan
    is shifted by ``median(edges of its group) - its edge`` and interpolated
    (linearly) back onto the series grid, trimmed to what every shifted scan
    covers.  A scan whose reference edge is more than ``max_shift`` eV from
    its group's median is rejected (a foil missing or a mono jump, not a
    repeat).  ``align="none"`` averages the scans as they are.
Outlier test (groups of at least 3 usable scans)
    For scan i, d_i = y_i - median_{j != i}(y_j) point by point; its
    point-to-point noise s_i = median(|d_i[k+2] - d_i[k]|) / (0.6745 sqrt(2))
    (a systematic deviation, smooth over several points, hardly changes it;
    lag 2 because the alignment's interpolation correlates neighbours);
    the ratio T_i = rms(d_i) / s_i is ~1 for a scan that differs from the
    others by noise only.  Scan i is rejected when its modified z-score
    (Iglewicz & Hoaglin 1993), z_i = 0.6745 (T_i - median T) / MAD(T), exceeds
    ``outlier_z`` (3.5) *and* T_i exceeds ``min_ratio`` (1.5: its systematic
    deviation is at least ~1.1 noise units).  At most (n - 1) // 2 scans of a
    group are rejected (the majority defines the group), largest z first.
Noise
    The merged spectrum is the mean of the kept scans.  ``stderr`` is the
    standard deviation of the kept scans at each point over sqrt(n_kept)
    (ddof=1; NaN with one scan), and each scan's noise is the point-to-point
    noise (lag 2) of y_i - mean_{j != i}(y_j) times sqrt((n - 1) / n) (exact
    for equal white noise), both in mu units.  Aligning interpolates, which
    smooths the noise of a shifted scan (by up to 30 % at half-step shifts):
    both figures describe the aligned data that were averaged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._util.result import Result
from ..errors import ConfigError, DataError
from ..series import Series
from .e0 import find_e0_rows, refine_on_raw_derivative, check_rows, dedup_energy

log = logging.getLogger(__name__)

#: 0.6745 = Phi^-1(3/4): median(|x|) of a unit normal; turns a MAD into a sigma.
_Q3 = 0.6744897501960817
#: Conditions that differ between repeats of one condition (never grouped on).
_NOT_CONDITIONS = ("label", "time_s")


@dataclass(frozen=True, eq=False)
class MergeReport(Result):
    """What :func:`merge_repeats` did.

    Attributes
    ----------
    scans : DataFrame
        One row per input step: ``step``, ``file``, ``group`` (output step),
        ``kept``, ``shift`` (eV applied), ``ratio`` (T_i), ``z`` (modified
        z-score), ``noise`` (mu units), ``reason`` (why rejected, else "").
    groups : DataFrame
        One row per merged step: ``step``, ``steps`` (input steps, comma
        separated), ``n_scans``, ``n_kept``, ``noise_scan`` (median scan noise),
        ``stderr`` (root mean square of the standard error over the merged
        points: the typical noise of the merged spectrum), mu units.
    stderr : (m, n_e) array
        Standard error of every merged point, mu units (NaN with one scan).
    settings : dict
    """

    scans: pd.DataFrame
    groups: pd.DataFrame
    stderr: np.ndarray
    settings: dict = field(default_factory=dict)

    @property
    def rejected(self) -> pd.DataFrame:
        return self.scans[~self.scans["kept"]]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per input scan (``scans``, a copy)."""
        return self.scans.copy()

    def title(self) -> str:
        return self.report().splitlines()[0]

    def report(self) -> str:
        lines = [f"merged {len(self.scans)} scans into {len(self.groups)} step(s); "
                 f"{int((~self.scans['kept']).sum())} rejected"]
        for row in self.rejected.itertuples():
            lines.append(f"  step {row.step} ({row.file}): {row.reason}")
        return "\n".join(lines)


def merge_repeats(series: Series, *, by=None, align: str = "reference",
                  max_shift: float = 2.0, outlier_z: float = 3.5,
                  min_ratio: float = 1.5) -> tuple[Series, MergeReport]:
    """Merge consecutive repeats of each condition into one spectrum.

    Parameters
    ----------
    series : Series
    by : str or list of str, optional
        Condition columns defining a condition (see the module docstring).
    align : {"reference", "none"}
        Align on the reference-channel edge before averaging.  ``"reference"``
        on a series without a reference channel is a DataError.
    max_shift : float
        Largest alignment shift (eV) of a scan from its group's median edge.
    outlier_z, min_ratio : float
        The outlier test's thresholds (module docstring).

    Returns
    -------
    merged : Series
        One step per group; conditions of the group's first scan with ``step``
        renumbered, ``time_s`` (when present) the mean over kept scans, and
        ``n_merged`` / ``merged_steps`` columns.  ``metadata["merge"]`` holds
        the settings, the rejected scans with reasons and each merged step's
        noise (``stderr_rms``, mu units).
    report : MergeReport
    """
    if align not in ("reference", "none"):
        raise ConfigError(f"align={align!r}; use 'reference' or 'none'")
    for name, value in (("max_shift", max_shift), ("outlier_z", outlier_z),
                        ("min_ratio", min_ratio)):
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if align == "reference" and series.reference is None:
        raise DataError("merge_repeats(align='reference') needs a reference channel; this "
                        "series has none (pass align='none' to average unaligned scans)")
    columns = _group_columns(series, by)
    groups = consecutive_groups(series.conditions, columns)
    n = len(series)
    usable, reason = check_rows(series.mu)
    reason = [f"dead frame ({r})" if r else "" for r in reason]
    shifts = np.zeros(n)
    if align == "reference":
        shifts, reason, usable = _alignment(series, groups, usable, reason, max_shift)
    grid, mu, ref = _shifted(series, shifts)
    ratio, z, noise = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    kept = usable.copy()
    for members in groups:
        live = [i for i in members if usable[i]]
        _test_group(mu, live, ratio, z, noise, kept, reason, outlier_z, min_ratio)
    out_mu, out_ref, stderr, rows, group_rows = [], [], [], [], []
    for g, members in enumerate(groups):
        keep = [i for i in members if kept[i]]
        if not keep:   # every scan dead or misaligned: keep the group, as a NaN step
            out_mu.append(np.full(grid.size, np.nan))
            out_ref.append(np.full(grid.size, np.nan))
            stderr.append(np.full(grid.size, np.nan))
        else:
            out_mu.append(mu[keep].mean(axis=0))
            out_ref.append(ref[keep].mean(axis=0) if ref is not None else None)
            stderr.append(mu[keep].std(axis=0, ddof=1) / np.sqrt(len(keep)) if len(keep) > 1
                          else np.full(grid.size, np.nan))
        for i in members:
            rows.append({"step": int(series.steps[i]), "file": series.files[i], "group": g,
                         "kept": bool(kept[i]), "shift": float(shifts[i]),
                         "ratio": float(ratio[i]), "z": float(z[i]),
                         "noise": float(noise[i]), "reason": reason[i]})
        group_rows.append({"step": g, "steps": ",".join(str(int(series.steps[i]))
                                                       for i in members),
                           "n_scans": len(members), "n_kept": len(keep),
                           "noise_scan": float(np.nanmedian(noise[keep])) if keep and
                           np.isfinite(noise[keep]).any() else float("nan"),
                           "stderr": float(np.sqrt(np.nanmean(stderr[-1] ** 2)))
                           if np.isfinite(stderr[-1]).any() else float("nan")})
    report = MergeReport(scans=pd.DataFrame(rows), groups=pd.DataFrame(group_rows),
                         stderr=np.vstack(stderr),
                         settings={"by": columns, "align": align, "max_shift": max_shift,
                                   "outlier_z": outlier_z, "min_ratio": min_ratio,
                                   "test": "modified z-score of rms/point-to-point noise "
                                           "of each scan's difference from the others' "
                                           "median"})
    for row in report.rejected.itertuples():
        log.warning("merge: step %s (%s) rejected: %s", row.step, row.file, row.reason)
    merged = _merged_series(series, groups, kept, grid, out_mu, out_ref, report)
    return merged, report


# ------------------------------------------------------------------------ groups
def _group_columns(series: Series, by) -> list[str]:
    if by is None:
        return [c for c in series.condition_columns() if c not in _NOT_CONDITIONS]
    columns = [by] if isinstance(by, str) else list(by)
    missing = [c for c in columns if c not in series.conditions.columns]
    if missing:
        raise ConfigError(f"merge_repeats(by=...): no condition column {missing}; columns are "
                          f"{series.condition_columns()}")
    return columns


def consecutive_groups(conditions: pd.DataFrame, columns: list[str]) -> list[list[int]]:
    """Runs of consecutive rows with equal values in ``columns`` (missing values equal)."""
    n = len(conditions)
    if not columns:
        return [list(range(n))]
    keys = [tuple("<NA>" if pd.isna(v) else v for v in row)
            for row in conditions[columns].itertuples(index=False)]
    groups = [[0]]
    for i in range(1, n):
        if keys[i] == keys[i - 1]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


# --------------------------------------------------------------------- alignment
def _alignment(series, groups, usable, reason, max_shift):
    n = len(series)
    energy = dedup_energy(series.energy)
    ref_ok, ref_problem = check_rows(series.reference)
    edges = np.full(n, np.nan)
    rows = np.flatnonzero(ref_ok & usable)
    if rows.size:
        _, guess = find_e0_rows(energy, series.reference[rows])
        edges[rows] = refine_on_raw_derivative(energy, series.reference[rows], guess)
    shifts = np.zeros(n)
    usable = usable.copy()
    for members in groups:
        found = [i for i in members if np.isfinite(edges[i])]
        if not found:
            continue
        target = float(np.median(edges[found]))
        for i in members:
            if not usable[i]:
                continue
            if not np.isfinite(edges[i]):
                reason[i] = f"reference channel unusable ({ref_problem[i] or 'no edge'})"
                usable[i] = False
            elif abs(target - edges[i]) > max_shift:
                reason[i] = (f"reference edge {edges[i] - target:+.2f} eV from its group's "
                             f"median (max_shift {max_shift:g} eV): not a repeat")
                usable[i] = False
            else:
                shifts[i] = target - edges[i]
    return shifts, reason, usable


def _shifted(series: Series, shifts: np.ndarray):
    """mu and reference of every scan shifted and put back on the (trimmed) grid."""
    energy = series.energy
    if not np.any(shifts):
        return energy, series.mu, series.reference
    lo = energy[0] + max(0.0, shifts.max())
    hi = energy[-1] + min(0.0, shifts.min())
    grid = energy[(energy >= lo - 1e-9) & (energy <= hi + 1e-9)]
    if grid.size < 20:
        raise DataError(f"after aligning by up to {np.abs(shifts).max():.2f} eV fewer than 20 "
                        "energy points are covered by every scan")
    mu = np.vstack([np.interp(grid, energy + s, row) for s, row in zip(shifts, series.mu)])
    ref = np.vstack([np.interp(grid, energy + s, row)
                     for s, row in zip(shifts, series.reference)])
    return grid, mu, ref


# -------------------------------------------------------------------------- test
def point_noise(residual: np.ndarray, lag: int = 2) -> np.ndarray:
    """Robust point-to-point noise of each row: median |r[k + lag] - r[k]| / (0.6745 sqrt 2).

    Lag 2, not 1: the linear interpolation that aligns a scan mixes each point
    with its neighbour, which correlates adjacent noise values and shrinks
    first differences (by up to 30 % at half-step shifts); points two apart
    share no source point, so their difference has variance 2 sigma^2 whatever
    the shift.
    """
    step = np.abs(residual[..., lag:] - residual[..., :-lag])
    return np.median(step, axis=-1) / (_Q3 * np.sqrt(2.0))


def _test_group(mu, live, ratio, z, noise, kept, reason, outlier_z, min_ratio) -> None:
    n = len(live)
    if n < 2:
        return
    y = mu[live]
    total = y.sum(axis=0)
    others_mean = (total[None, :] - y) / (n - 1)
    noise[live] = point_noise(y - others_mean) * np.sqrt((n - 1) / n)
    if n < 3:
        return
    d = np.vstack([y[k] - np.median(np.delete(y, k, axis=0), axis=0) for k in range(n)])
    s = point_noise(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(np.mean(d * d, axis=1)) / s
    center = np.median(t)
    mad = np.median(np.abs(t - center))
    with np.errstate(divide="ignore", invalid="ignore"):
        zz = np.where(mad > 0, _Q3 * (t - center) / mad, np.where(t > center, np.inf, 0.0))
    ratio[live], z[live] = t, zz
    candidates = [k for k in np.argsort(-zz) if zz[k] > outlier_z and t[k] > min_ratio]
    for k in candidates[: (n - 1) // 2]:
        i = live[k]
        kept[i] = False
        reason[i] = (f"outlier: differs from the other scans by {t[k]:.2f}x its point-to-point "
                     f"noise (modified z-score {zz[k]:.1f} > {outlier_z:g})")


# ---------------------------------------------------------------------- output
def _merged_series(series, groups, kept, grid, out_mu, out_ref, report) -> Series:
    first = [members[0] for members in groups]
    conditions = series.conditions.iloc[first].reset_index(drop=True).copy()
    conditions["step"] = np.arange(len(groups))
    if "time_s" in conditions.columns and pd.api.types.is_numeric_dtype(
            series.conditions["time_s"]):
        times = series.conditions["time_s"].to_numpy(dtype=float)
        conditions["time_s"] = [float(np.mean(times[[i for i in m if kept[i]] or m]))
                                for m in groups]
    conditions["n_merged"] = report.groups["n_kept"].to_numpy()
    conditions["merged_steps"] = [",".join(str(int(series.steps[i])) for i in m if kept[i])
                                  for m in groups]
    reference = None if out_ref[0] is None else np.vstack(out_ref)
    metadata = dict(series.metadata)
    metadata["merge"] = {
        **report.settings,
        "groups": len(groups),
        "rejected": [{"step": int(r.step), "file": r.file, "reason": r.reason}
                     for r in report.rejected.itertuples()],
        "stderr_rms": [None if not np.isfinite(v) else float(v)
                       for v in report.groups["stderr"]],
    }
    metadata["interpolated"] = bool(metadata.get("interpolated")) or bool(
        np.any(report.scans["shift"].to_numpy() != 0))
    return series.replace(energy=grid, mu=np.vstack(out_mu), reference=reference,
                          conditions=conditions, metadata=metadata)
