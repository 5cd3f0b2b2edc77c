"""Single atoms <-> clusters: segments, states, events and reversibility.

This stage turns the per-step table of a processed series (``steps.csv``: the
condition of every step, the white line and the EXAFS shell fits) into the
answer the experiment is after: *when*, under which potential or gas, the
single metal atoms aggregated into clusters, and whether they came back.

The steps are grouped into **segments** -- consecutive steps under the same
condition (potential, gas, temperature) -- whose repeats are averaged with
their errors.  Every step and every segment gets a **state** from the
metal-metal coordination number (CN) with its error, the metal-ligand CN and
(as corroborating evidence) the white line:

``isolated``
    CN(M-M) consistent with zero at ``z_significance`` sigma while a ligand
    shell (M-N / M-O) is present: single atoms.
``cluster``
    CN(M-M) significantly above zero but below ``particle_cn``.
``particle``
    CN(M-M) >= ``particle_cn`` (bulk-like, ``bulk_cn`` = 12 for fcc).
``unknown``
    The step failed, or the fit is not interpretable (no M-M and no ligand
    shell, or a significantly negative CN).

**Events** are reported between consecutive segments whose CN(M-M) differs
significantly (``|z| >= z_significance``): ``aggregation``, ``growth``,
``redispersion`` and ``partial_redispersion``.  Long constant-condition
segments (QEXAFS under one gas) are first split at change points found by
binary segmentation of the CN (see :func:`find_change_points`), so a change
under constant conditions is reported too.  **Reversibility** compares a
segment that returns to an earlier condition with the state reached there
before.

Cluster sizes follow from the average CN through the cuboctahedral magic-number
clusters or the spherical-particle model (:func:`cluster_size_from_cn`).
"""

from __future__ import annotations

import difflib
import logging
import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..feffpaths import DEFAULT_DISTANCES

log = logging.getLogger(__name__)

#: The default condition columns, in the order they label a segment.
DEFAULT_CONDITION_COLUMNS = ("potential_V", "gas", "temperature_K")

#: Units appended to condition values in labels.
_UNITS = {"potential_V": "V", "temperature_K": "K"}

#: Scatterers accepted as the ligand shell, in order of preference.
_LIGANDS = ("O", "N", "C", "S", "Cl", "P", "F", "Br", "I")

STATES = ("isolated", "cluster", "particle", "unknown")
EVENT_COLUMNS = [
    "event", "step", "segment", "segment_before", "condition_before", "condition_after",
    "state_before", "state_after", "cn_before", "cn_after", "delta_cn", "delta_cn_err", "z",
    "delta_wl", "z_wl", "delta_edge_eV", "z_edge", "xanes", "confidence", "origin", "evidence",
]
REVERSIBILITY_COLUMNS = [
    "segment", "condition", "reference_segment", "reference_condition", "state_before",
    "state_after", "cn_before", "cn_after", "delta_cn", "z", "changed_between", "returned",
    "cn_recovered", "verdict",
]


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class TrackSettings:
    """Thresholds of the state and event classification.

    Parameters
    ----------
    z_significance : float
        A quantity is *significant* when it exceeds this many standard errors
        (2 -> ~95 % two-sided for Gaussian errors).  Used for "CN(M-M)
        consistent with zero", for "ligand shell present" and for the CN
        change between segments that makes an event.  EXAFS CN errors from
        the fit covariance are honest to within a factor of ~1.5, so a
        one-sigma rule would flag noise and a three-sigma rule would miss
        real sub-nanometre clusters (CN 2-3 with errors ~0.8).
    z_high : float
        An event is ``high`` confidence when its CN change reaches this z
        (3 -> ~0.3 % false-alarm rate per comparison) *and* the XANES agrees.
    particle_cn : float
        Average CN(M-M) at or above which the metal is a (bulk-like) particle.
        For fcc metals (bulk 12) CN 10 corresponds to cuboctahedra of ~900
        atoms, ~3 nm for Pt: beyond this EXAFS can no longer resolve the size
        (CN saturates while the error stays ~0.5).
    bulk_cn : float
        First-shell CN of the bulk metal (12 for fcc: Pt, Pd, Cu, Au, Ag, Ni,
        Rh, Ir).
    min_ligand_cn : float
        A ligand shell (M-N, M-O) is *present* when its CN is at least this and
        significant.  A single-atom site carries 2-6 light neighbours (M-N4 in
        M-N-C catalysts, Pt-O4 on oxides); a fitted ligand CN below 1 is not a
        defined coordination, so an M-M-free step without it is ``unknown``
        rather than ``isolated``.
    min_cn_err : float
        Floor on every CN error (dimensionless).  Fits sometimes return
        unrealistically small errors; 0.1 is below any published EXAFS CN
        uncertainty, so it only guards against zero or tiny errors.
    wl_err : float
        Floor on the error of a segment's mean white-line height (normalised
        units).  Normalisation (post-edge line choice) reproduces the white
        line to ~1 % of the edge step.
    edge_err : float
        Floor on the error of a segment's mean edge position in eV:
        reference-foil calibration reproduces edges to ~0.1 eV.
    changepoint_min_steps : int
        Constant-condition segments with at least this many successful steps
        are searched for change points.  Shorter segments are repeats whose
        scatter is already in the segment error.
    changepoint_min_size : int
        Minimum number of steps on each side of a change point.
    changepoint_z : float
        Threshold of the standardised CUSUM statistic (mean difference over its
        error, the noise estimated robustly from the median absolute
        first-difference).  Under pure Gaussian noise the maximum of this
        statistic over 1,000 steps stays below ~3.5; 5 keeps false change
        points negligible while a CN step of 1 with per-step noise 0.5 over 50
        steps is still found (z ~ 10).
    potential_decimals : int
        Potentials are compared after rounding to this many decimals of a volt
        (4 -> 0.1 mV), so 0.1 and 0.10000001 are the same condition.
    rest_labels : tuple of str
        Text labels of a potential column that mean "back to rest" (open
        circuit).  Returning to one of them is compared with the first segment
        when no earlier segment carried that label.
    cluster_model : str
        ``"cuboctahedron"`` or ``"sphere"`` (see :func:`cluster_size_from_cn`).
    """

    z_significance: float = 2.0
    z_high: float = 3.0
    particle_cn: float = 10.0
    bulk_cn: float = 12.0
    min_ligand_cn: float = 1.0
    min_cn_err: float = 0.1
    wl_err: float = 0.01
    edge_err: float = 0.1
    changepoint_min_steps: int = 20
    changepoint_min_size: int = 5
    changepoint_z: float = 5.0
    potential_decimals: int = 4
    rest_labels: tuple = ("OCP",)
    cluster_model: str = "cuboctahedron"

    def __post_init__(self):
        positive = ("z_significance", "z_high", "particle_cn", "bulk_cn", "min_cn_err",
                    "wl_err", "edge_err", "changepoint_z")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"track setting '{name}' must be a positive number, got {value!r}")
        if self.min_ligand_cn < 0:
            raise ConfigError(f"track setting 'min_ligand_cn' must be >= 0, got {self.min_ligand_cn!r}")
        for name in ("changepoint_min_steps", "changepoint_min_size", "potential_decimals"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"track setting '{name}' must be a non-negative integer, got {value!r}")
        if self.changepoint_min_size < 1:
            raise ConfigError("track setting 'changepoint_min_size' must be at least 1")
        if self.particle_cn > self.bulk_cn:
            raise ConfigError(
                f"track setting 'particle_cn' ({self.particle_cn}) must not exceed 'bulk_cn' ({self.bulk_cn})")
        if self.z_high < self.z_significance:
            raise ConfigError(
                f"track setting 'z_high' ({self.z_high}) must be >= 'z_significance' ({self.z_significance})")
        labels = self.rest_labels
        if isinstance(labels, str):
            labels = (labels,)
        object.__setattr__(self, "rest_labels", tuple(str(x) for x in labels))
        if self.cluster_model not in ("cuboctahedron", "sphere"):
            raise ConfigError(
                f"track setting 'cluster_model' must be 'cuboctahedron' or 'sphere', got {self.cluster_model!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "TrackSettings":
        """Settings from a ``[track]`` config section.

        Unknown keys raise :class:`~operando.errors.ConfigError` naming the key
        and the closest valid one.
        """
        config = dict(config or {})
        known = [f.name for f in fields(cls)]
        for key in config:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(
                    f"unknown [track] setting '{key}'{hint} (valid: {', '.join(known)})")
        return cls(**config)

    def to_dict(self) -> dict:
        """Every setting, JSON-serialisable (for settings.json)."""
        out = asdict(self)
        out["rest_labels"] = list(self.rest_labels)
        return out


# --------------------------------------------------------------------------- cluster size
@dataclass(frozen=True)
class ClusterSize:
    """Cluster size from an average coordination number.

    Attributes are floats for scalar input and arrays otherwise; ``_lo`` and
    ``_hi`` bound the value for ``cn - cn_err`` and ``cn + cn_err``.
    ``inf`` means the CN is bulk-like (no finite size), ``nan`` an invalid CN.

    Attributes
    ----------
    n_atoms, n_atoms_lo, n_atoms_hi : float
        Atoms per cluster (continuous interpolation between magic numbers for
        the cuboctahedron).
    diameter_nm, diameter_nm_lo, diameter_nm_hi : float
        Particle diameter in nm (``nan`` without a bond length).
    magic_n_atoms : float
        The nearest closed-shell cuboctahedral cluster (13, 55, 147, 309, ...);
        ``nan`` for the sphere model.
    model : str
    bond_length : float or None
        Nearest-neighbour distance used, Angstrom.
    """

    n_atoms: Any
    n_atoms_lo: Any
    n_atoms_hi: Any
    diameter_nm: Any
    diameter_nm_lo: Any
    diameter_nm_hi: Any
    magic_n_atoms: Any
    model: str
    bond_length: float | None


def cuboctahedron_atoms(shells):
    """Atoms in a cuboctahedron of ``shells`` closed shells around one atom.

    ``N = (10 n^3 + 15 n^2 + 11 n + 3) / 3``: 13, 55, 147, 309, 561, ...
    (Benfield, J. Chem. Soc. Faraday Trans. 88 (1992) 1107).
    """
    n = np.asarray(shells, dtype=float)
    return (10 * n**3 + 15 * n**2 + 11 * n + 3) / 3


def cuboctahedron_cn(shells, bulk_cn: float = 12.0):
    """Average first-shell CN of a cuboctahedron of ``shells`` closed shells.

    The cluster has ``20 n^3 + 12 n^2 + 4 n`` nearest-neighbour bonds, so the
    average CN is ``2 * bonds / N``: 5.54 (13 atoms), 7.85 (55), 8.98 (147),
    9.63 (309) ... -> 12 (Benfield 1992; Jentys, Phys. Chem. Chem. Phys. 1
    (1999) 4059).  ``bulk_cn`` rescales for a bulk CN other than 12.
    """
    n = np.asarray(shells, dtype=float)
    bonds = 20 * n**3 + 12 * n**2 + 4 * n
    return 2 * bonds / cuboctahedron_atoms(n) * (bulk_cn / 12.0)


def sphere_cn(radius_over_r, bulk_cn: float = 12.0):
    """Average CN of a spherical particle of radius ``R`` (in units of the
    absorber-scatterer distance ``r``):
    ``CN = CN_bulk [1 - 3/4 (r/R) + 1/16 (r/R)^3]`` for ``R >= r/2``
    (Calvin et al., J. Appl. Phys. 94 (2003) 778)."""
    x = 1.0 / np.asarray(radius_over_r, dtype=float)
    return bulk_cn * (1 - 0.75 * x + x**3 / 16)


def _invert(func, target: float, lo: float, hi: float) -> float:
    """Solve func(x) = target for monotonic increasing func on [lo, inf)."""
    if not np.isfinite(target):
        return math.nan
    f_lo = float(func(lo))
    if target <= f_lo:
        return lo
    while float(func(hi)) < target:
        hi *= 2
        if hi > 1e9:
            return math.inf
    # Bisection: func is monotonic, so it converges surely, and it spares every run the
    # ~0.5 s import of scipy.optimize that brentq would bring.
    while hi - lo > 1e-10 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if float(func(mid)) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def cluster_size_from_cn(cn, cn_err=0.0, *, bulk_cn: float = 12.0, bond_length: float | None = None,
                         element: str | None = None, model: str = "cuboctahedron") -> ClusterSize:
    """Atoms per cluster and diameter of an fcc cluster from its average CN.

    Parameters
    ----------
    cn : float or array
        Average first-shell metal-metal coordination number.
    cn_err : float or array
        Its standard error; the size is also evaluated at ``cn - cn_err`` and
        ``cn + cn_err`` (``_lo`` / ``_hi``), which propagates the error through
        the strongly non-linear relation (the upper bound is ``inf`` once
        ``cn + cn_err`` reaches the bulk value).
    bulk_cn : float
        First-shell CN of the bulk (12 for fcc).
    bond_length : float, optional
        Nearest-neighbour distance in Angstrom (the fitted R(M-M) is best);
        defaults to the bulk distance of ``element``.  Without either the
        diameter is ``nan``.
    element : str, optional
        Metal symbol for the default bond length (Pt 2.775, Cu 2.556 A, ...).
    model : {"cuboctahedron", "sphere"}
        ``"cuboctahedron"``: closed-shell fcc cuboctahedra (magic numbers 13,
        55, 147, 309, ...; Benfield, J. Chem. Soc. Faraday Trans. 88 (1992)
        1107; Jentys, Phys. Chem. Chem. Phys. 1 (1999) 4059), interpolated in
        the (continuous) shell number ``n``; diameter ``(2 n + 1) d`` -- the
        vertex-to-vertex span ``2 n d`` plus one atomic diameter.
        ``"sphere"``: a homogeneous fcc sphere of radius ``R`` with
        ``CN = CN_bulk [1 - 3/4 (d/R) + 1/16 (d/R)^3]`` (Calvin et al.,
        J. Appl. Phys. 94 (2003) 778); atoms ``N = (4 pi sqrt 2 / 3) (R/d)^3``
        (fcc atomic volume ``d^3 / sqrt 2``); diameter ``2 R``.

    Returns
    -------
    ClusterSize
        ``n_atoms`` is 1 for CN 0, ``inf`` for CN >= ``bulk_cn``, ``nan`` for
        non-finite CN.  A negative CN consistent with zero (``cn + 2 cn_err >=
        0``, e.g. -0.03 +/- 0.09 from a fit of an isolated atom) is an isolated
        atom: ``n_atoms`` 1, ``n_atoms_lo`` 1 and ``n_atoms_hi`` the size at
        ``max(cn + cn_err, 0)``.  A CN more than two standard errors below zero
        is unphysical and gives ``nan``.

    Examples
    --------
    >>> round(float(cluster_size_from_cn(7.854).n_atoms))
    55
    """
    if model not in ("cuboctahedron", "sphere"):
        raise ConfigError(f"model must be 'cuboctahedron' or 'sphere', got {model!r}")
    if bond_length is None and element is not None:
        key = (str(element).capitalize(), str(element).capitalize())
        if key not in DEFAULT_DISTANCES:
            raise DataError(
                f"no default bond length for element '{element}'; give bond_length= in Angstrom "
                f"(known: {', '.join(sorted(k[0] for k in DEFAULT_DISTANCES))})")
        bond_length = DEFAULT_DISTANCES[key]
    scalar = np.ndim(cn) == 0 and np.ndim(cn_err) == 0
    cn_arr, err_arr = np.broadcast_arrays(np.asarray(cn, dtype=float), np.asarray(cn_err, dtype=float))
    err_arr = np.where(np.isfinite(err_arr), np.abs(err_arr), 0.0)

    def size(value: float) -> tuple[float, float, float]:
        """(n_atoms, diameter_nm, magic) for one CN."""
        if not np.isfinite(value) or value < 0:
            return math.nan, math.nan, math.nan
        if value >= bulk_cn:
            return math.inf, math.inf, math.inf
        if model == "cuboctahedron":
            n = _invert(lambda s: cuboctahedron_cn(s, bulk_cn), value, 0.0, 4.0)
            atoms = float(cuboctahedron_atoms(n))
            magic = float(cuboctahedron_atoms(max(1, round(n)))) if value > 0 else 1.0
            diam = (2 * n + 1) * bond_length / 10 if bond_length else math.nan
            return atoms, diam, magic
        if value == 0:
            return 1.0, (bond_length / 10 if bond_length else math.nan), math.nan
        # CN(R) of the sphere model is monotonic for R >= r/2 (CN = 0 at R = r/2).
        ratio = _invert(lambda x: sphere_cn(x, bulk_cn), value, 0.5, 8.0)
        atoms = max(1.0, 4 * math.pi * math.sqrt(2) / 3 * ratio**3)
        diam = 2 * ratio * bond_length / 10 if bond_length else math.nan
        return atoms, diam, math.nan

    out = {k: np.full(cn_arr.shape, math.nan) for k in
           ("n", "n_lo", "n_hi", "d", "d_lo", "d_hi", "magic")}
    for idx in np.ndindex(cn_arr.shape):
        c, e = cn_arr[idx], err_arr[idx]
        if np.isfinite(c) and c < 0 <= c + 2 * e:
            # A fit of an isolated atom scatters around CN 0; two standard errors (95 %)
            # decide whether a negative value is noise (an isolated atom) or unphysical.
            out["n"][idx], out["d"][idx], out["magic"][idx] = size(0.0)
            out["n_lo"][idx], out["d_lo"][idx], _ = size(0.0)
            out["n_hi"][idx], out["d_hi"][idx], _ = size(max(c + e, 0.0))
            continue
        out["n"][idx], out["d"][idx], out["magic"][idx] = size(c)
        lo = max(c - e, 0.0) if np.isfinite(c) and c >= 0 else c
        out["n_lo"][idx], out["d_lo"][idx], _ = size(lo)
        out["n_hi"][idx], out["d_hi"][idx], _ = size(c + e)

    def pick(a):
        return float(a) if scalar else a

    return ClusterSize(
        n_atoms=pick(out["n"]), n_atoms_lo=pick(out["n_lo"]), n_atoms_hi=pick(out["n_hi"]),
        diameter_nm=pick(out["d"]), diameter_nm_lo=pick(out["d_lo"]), diameter_nm_hi=pick(out["d_hi"]),
        magic_n_atoms=pick(out["magic"]), model=model, bond_length=bond_length)


# --------------------------------------------------------------------------- change points
def _robust_noise(x: np.ndarray) -> float:
    """Gaussian sigma of ``x`` from the median absolute first difference.

    Differences cancel a step change except at one point, so the estimate is
    insensitive to the very changes we look for.
    """
    if x.size < 3:
        return math.nan
    d = np.diff(x)
    mad = np.median(np.abs(d - np.median(d)))
    return float(1.4826 * mad / math.sqrt(2))


def find_change_points(values, *, min_size: int = 5, threshold: float = 5.0,
                       noise: float | None = None) -> list[int]:
    """Step changes in a noisy sequence by binary segmentation of the CUSUM.

    For every admissible split ``k`` the statistic
    ``T_k = |mean(x[:k]) - mean(x[k:])| / (sigma sqrt(1/k + 1/(n-k)))`` is the
    difference of the two means over its standard error; the split with the
    largest ``T`` is accepted when ``T >= threshold`` and both halves are
    searched again.

    Parameters
    ----------
    values : (n,) array
        The sequence (e.g. CN(M-M) per step); non-finite values are ignored.
    min_size : int
        Minimum number of finite points on each side of a change.
    threshold : float
        Significance threshold in units of the standard error of the mean
        difference.
    noise : float, optional
        Per-point noise sigma; estimated robustly from the median absolute
        first difference of the whole sequence when omitted.

    Returns
    -------
    list of int
        Positions (indices into ``values``) where a new regime starts, sorted.
    """
    x_all = np.asarray(values, dtype=float)
    finite = np.flatnonzero(np.isfinite(x_all))
    x = x_all[finite]
    if x.size < 2 * min_size:
        return []
    sigma = _robust_noise(x) if noise is None else float(noise)
    if not np.isfinite(sigma) or sigma <= 0:
        # A noiseless sequence: any difference is a change, scale by the data span instead.
        sigma = max(float(np.ptp(x)) * 1e-9, 1e-300)
    found: list[int] = []
    stack = [(0, x.size)]
    while stack:
        a, b = stack.pop()
        n = b - a
        if n < 2 * min_size:
            continue
        seg = x[a:b]
        csum = np.cumsum(seg)
        k = np.arange(min_size, n - min_size + 1)
        left = csum[k - 1] / k
        right = (csum[-1] - csum[k - 1]) / (n - k)
        stat = np.abs(left - right) / (sigma * np.sqrt(1.0 / k + 1.0 / (n - k)))
        best = int(np.argmax(stat))
        if stat[best] >= threshold:
            split = a + int(k[best])
            found.append(split)
            stack.append((a, split))
            stack.append((split, b))
    return sorted(int(finite[i]) for i in found)


# --------------------------------------------------------------------------- helpers
def _split_shell(shell: str) -> tuple[str, str]:
    parts = re.split(r"[-_]", shell, maxsplit=1)
    if len(parts) != 2:
        raise DataError(f"shell name '{shell}' is not of the form 'Absorber-Scatterer' (e.g. 'Pt-Pt')")
    return parts[0], parts[1]


def detect_shells(columns: Sequence[str], metal: str | None = None) -> tuple[str | None, str | None]:
    """(metal shell, ligand shell) from the ``cn_<shell>`` columns of a steps table.

    The metal shell is the first whose absorber and scatterer are the same
    element (``Pt-Pt``); the ligand shell the first of the same absorber with a
    light scatterer, preferring O, then N, C, S, Cl.  ``metal`` fixes the
    metal shell and only the ligand is searched.
    """
    shells = [c[3:] for c in columns if c.startswith("cn_") and not c.endswith("_err")]
    ligand = None
    for shell in shells if metal is None else []:
        try:
            a, s = _split_shell(shell)
        except DataError:
            continue
        if a == s:
            metal = shell
            break
    if metal is not None:
        absorber = _split_shell(metal)[0]
        candidates = []
        for shell in shells:
            try:
                a, s = _split_shell(shell)
            except DataError:
                continue
            if a == absorber and s in _LIGANDS:
                candidates.append((_LIGANDS.index(s), shell))
        if candidates:
            ligand = sorted(candidates)[0][1]
    return metal, ligand


def _condition_value(column: str, value: Any, decimals: int) -> tuple[Any, str]:
    """(comparison key, display label) of one condition value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ("", ""), "?"
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return ("s", text.casefold()), text
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool):
        v = float(value)
        if math.isnan(v):
            return ("", ""), "?"
        v = round(v, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
        unit = _UNITS.get(column, "")
        label = f"{v:g}" if column != "potential_V" else f"{v:.2f}"
        return ("n", v), f"{label} {unit}".strip()
    text = str(value).strip()
    return ("s", text.casefold()), text


def _weighted_mean(values: np.ndarray, errors: np.ndarray, floor: float) -> tuple[float, float, int]:
    """Error-weighted mean, its error max(weighted error, std / sqrt(n)), and n."""
    ok = np.isfinite(values) & np.isfinite(errors)
    x, e = values[ok], np.maximum(errors[ok], floor)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    w = 1.0 / e**2
    mean = float(np.sum(w * x) / np.sum(w))
    err = float(1.0 / math.sqrt(np.sum(w)))
    if n >= 2:
        err = max(err, float(np.std(x, ddof=1) / math.sqrt(n)))
    return mean, err, n


def _plain_mean(values: np.ndarray, floor: float) -> tuple[float, float]:
    """Mean and max(std / sqrt(n), floor) of the finite values."""
    x = values[np.isfinite(values)]
    if x.size == 0:
        return math.nan, math.nan
    err = float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size >= 2 else 0.0
    return float(np.mean(x)), max(err, floor)


def _numeric_column(df: pd.DataFrame, name: str | None) -> np.ndarray:
    if name is None or name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)


def _bool_column(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.ones(len(df), dtype=bool)
    col = df[name]
    if col.dtype == bool:
        return col.to_numpy()
    text = col.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0", "yes"]).to_numpy()


def classify(cn_metal, cn_metal_err, cn_ligand=None, cn_ligand_err=None,
             settings: TrackSettings | None = None) -> np.ndarray:
    """State of each step (or segment) from CN(M-M) and CN(M-ligand) with errors.

    Parameters
    ----------
    cn_metal, cn_metal_err : array
        Metal-metal CN and its standard error (errors are floored at
        ``settings.min_cn_err``).
    cn_ligand, cn_ligand_err : array or None
        Metal-ligand CN and error; ``None`` when no ligand shell was fitted,
        in which case "isolated" rests on CN(M-M) alone.
    settings : TrackSettings

    Returns
    -------
    array of str
        ``isolated``, ``cluster``, ``particle`` or ``unknown`` (non-finite
        values, a significantly negative CN(M-M), or neither M-M nor a ligand
        shell).
    """
    s = settings or TrackSettings()
    cn = np.atleast_1d(np.asarray(cn_metal, dtype=float))
    err = np.maximum(np.atleast_1d(np.asarray(cn_metal_err, dtype=float)), s.min_cn_err)
    valid = np.isfinite(cn) & np.isfinite(err)
    z = s.z_significance
    with np.errstate(invalid="ignore"):
        negative = cn < -z * err
        no_mm = np.abs(cn) <= z * err
        if cn_ligand is None:
            ligand = np.ones_like(cn, dtype=bool)
        else:
            cl = np.atleast_1d(np.asarray(cn_ligand, dtype=float))
            el = np.atleast_1d(np.asarray(cn_ligand_err if cn_ligand_err is not None else np.nan, dtype=float))
            el = np.where(np.isfinite(el), np.maximum(el, s.min_cn_err), s.min_cn_err)
            ligand = np.isfinite(cl) & (cl >= s.min_ligand_cn) & (cl > z * el)
        particle = cn >= s.particle_cn
    state = np.where(particle, "particle", "cluster").astype(object)
    state[no_mm] = np.where(ligand[no_mm], "isolated", "unknown")
    state[negative | ~valid] = "unknown"
    return state


_ORDER = {"isolated": 0, "cluster": 1, "particle": 2}


# --------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class Tracking:
    """Segments, states, events and reversibility of one series.

    Attributes
    ----------
    steps : DataFrame
        The input table plus ``segment`` (int, -1 never happens: every step is
        in a segment) and ``state``.
    segments : DataFrame
        One row per segment: ``segment, block, origin, first_step, last_step,
        n_steps, n_ok, condition`` (label), the condition columns,
        ``cn_<metal>, cn_<metal>_err, cn_<ligand>, cn_<ligand>_err`` (error-
        weighted means), ``r_<metal>``, ``wl_height, wl_height_err,
        edge_position, edge_position_err`` (eV), ``state``, ``n_atoms,
        n_atoms_lo, n_atoms_hi, diameter_nm`` (for cluster/particle).
        ``block`` numbers the constant-condition blocks; a block split at a
        change point has several segments (``origin`` = "change point").
    events : DataFrame
        Columns :data:`EVENT_COLUMNS`.
    reversibility : DataFrame
        Columns :data:`REVERSIBILITY_COLUMNS`.
    metal_shell, ligand_shell : str or None
    condition_columns : list of str
    settings : TrackSettings
    """

    steps: pd.DataFrame
    segments: pd.DataFrame
    events: pd.DataFrame
    reversibility: pd.DataFrame
    metal_shell: str
    ligand_shell: str | None
    condition_columns: list = field(default_factory=list)
    settings: TrackSettings = field(default_factory=TrackSettings)

    def summary(self) -> str:
        """Plain-text account: segments, events with evidence, reversibility."""
        s = self.segments.rename(columns={f"cn_{self.metal_shell}": "cn_metal",
                                          f"cn_{self.metal_shell}_err": "cn_metal_err"})
        m = self.metal_shell
        lines = [f"Tracking of {len(self.steps)} steps in {len(s)} segments "
                 f"(metal shell {m}, ligand shell {self.ligand_shell or 'none'}; "
                 f"conditions: {', '.join(self.condition_columns) or 'none'})", "", "Segments:"]
        for row in s.itertuples(index=False):
            r = row._asdict()
            size = ""
            if r["state"] in ("cluster", "particle") and np.isfinite(r["n_atoms"]):
                size = f", ~{r['n_atoms']:.0f} atoms"
            lines.append(
                f"  {r['segment']:>3}  steps {r['first_step']}-{r['last_step']} ({r['n_ok']}/{r['n_steps']} ok)  "
                f"{r['condition']:<20} CN({m}) = {_fmt(r['cn_metal'])} +/- {_fmt(r['cn_metal_err'])}  "
                f"-> {r['state']}{size}")
        lines += ["", "Events:" if len(self.events) else "Events: none"]
        for ev in self.events.itertuples(index=False):
            lines.append(f"  step {ev.step} (segment {ev.segment}): {ev.event} [{ev.confidence}] "
                         f"{ev.condition_before} -> {ev.condition_after}; {ev.evidence}")
        if len(self.reversibility):
            lines += ["", "Reversibility:"]
            for rv in self.reversibility.itertuples(index=False):
                lines.append(f"  segment {rv.segment} ({rv.condition}) vs segment {rv.reference_segment} "
                             f"({rv.reference_condition}): {rv.verdict}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Tracking {len(self.steps)} steps, {len(self.segments)} segments, "
                f"{len(self.events)} events>")


def _fmt(x: float, digits: int = 2) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


# --------------------------------------------------------------------------- track
def track(steps: pd.DataFrame, *, metal_shell: str | None = None, ligand_shell: str | None = None,
          condition_columns: Sequence[str] | None = None,
          settings: TrackSettings | Mapping[str, Any] | None = None) -> Tracking:
    """Segments, states, events and reversibility of a processed series.

    Parameters
    ----------
    steps : DataFrame
        Per-step table with the ``steps.csv`` columns: ``step``, condition
        columns, ``ok``, ``wl_height``, ``edge_position`` (eV), and per shell
        ``cn_S, cn_S_err`` (``fit_ok``).  NaN where a step failed.
    metal_shell, ligand_shell : str, optional
        Shell names as in the column names (``"Pt-Pt"``, ``"Cu-N"``);
        auto-detected from the ``cn_*`` columns when omitted.  The ligand shell
        is optional (``None`` if absent from the table).
    condition_columns : list of str, optional
        Columns whose value defines a condition.  Default: those present among
        ``potential_V``, ``gas``, ``temperature_K`` (time is never a
        condition).  An empty list makes the whole series one block, searched
        for change points.
    settings : TrackSettings or dict, optional

    Returns
    -------
    Tracking
    """
    if isinstance(settings, Mapping):
        settings = TrackSettings.from_config(settings)
    s = settings or TrackSettings()
    if not isinstance(steps, pd.DataFrame):
        raise DataError(f"track() needs the per-step DataFrame, got {type(steps).__name__}")
    df = steps.reset_index(drop=True).copy()
    if "step" not in df.columns:
        df.insert(0, "step", np.arange(len(df)))
    if len(df) == 0:
        raise DataError("track() got an empty steps table")

    auto_metal, _ = detect_shells(list(df.columns))
    metal = metal_shell or auto_metal
    if metal is None:
        raise DataError("no metal-metal shell column (cn_M-M, e.g. 'cn_Pt-Pt') in the steps table; "
                        f"columns are {list(df.columns)}; pass metal_shell=")
    ligand = ligand_shell if ligand_shell is not None else detect_shells(list(df.columns), metal)[1]
    for shell in [metal] + ([ligand] if ligand else []):
        for col in (f"cn_{shell}", f"cn_{shell}_err"):
            if col not in df.columns:
                raise DataError(f"shell '{shell}' needs column '{col}' in the steps table; "
                                f"columns are {list(df.columns)}")

    if condition_columns is None:
        condition_columns = [c for c in DEFAULT_CONDITION_COLUMNS if c in df.columns]
    else:
        condition_columns = list(condition_columns)
        for c in condition_columns:
            if c not in df.columns:
                raise DataError(f"condition column '{c}' is not in the steps table; "
                                f"columns are {list(df.columns)}")

    # --- per-step quantities and state
    ok = _bool_column(df, "ok") & _bool_column(df, "fit_ok")
    cn_m = _numeric_column(df, f"cn_{metal}")
    cn_m_err = _numeric_column(df, f"cn_{metal}_err")
    cn_l = _numeric_column(df, f"cn_{ligand}") if ligand else None
    cn_l_err = _numeric_column(df, f"cn_{ligand}_err") if ligand else None
    ok &= np.isfinite(cn_m) & np.isfinite(cn_m_err)
    cn_m = np.where(ok, cn_m, np.nan)
    cn_m_err = np.where(ok, cn_m_err, np.nan)
    if cn_l is not None:
        cn_l = np.where(ok, cn_l, np.nan)
        cn_l_err = np.where(ok, cn_l_err, np.nan)
    wl = _numeric_column(df, "wl_height")
    edge = _numeric_column(df, "edge_position")
    r_m = _numeric_column(df, f"r_{metal}")
    step_state = classify(cn_m, cn_m_err, cn_l, cn_l_err, s)

    # --- constant-condition blocks
    keys, parts_all = [], []
    for row in df[condition_columns].itertuples(index=False) if condition_columns else [()] * len(df):
        parts = [_condition_value(c, v, s.potential_decimals) for c, v in zip(condition_columns, row)]
        keys.append(tuple(p[0] for p in parts))
        parts_all.append([p[1] for p in parts])
    # Labels name only the columns that vary: "CO+O2" rather than "CO+O2, 423 K" throughout.
    varying = [j for j in range(len(condition_columns)) if len({k[j] for k in keys}) > 1]
    shown = varying or list(range(len(condition_columns)))
    labels = [", ".join(p[j] for j in shown) if shown else "all" for p in parts_all]
    block = np.zeros(len(df), dtype=int)
    for i in range(1, len(df)):
        block[i] = block[i - 1] + (keys[i] != keys[i - 1])

    # --- split long blocks at change points (CN(M-M); the white line when no CN at all)
    signal = cn_m if np.isfinite(cn_m).any() else np.where(_bool_column(df, "ok"), wl, np.nan)
    segment = np.zeros(len(df), dtype=int)
    origin: list[str] = []
    seg_id = -1
    for b in range(block[-1] + 1):
        idx = np.flatnonzero(block == b)
        cuts: list[int] = []
        if np.isfinite(signal[idx]).sum() >= max(s.changepoint_min_steps, 2 * s.changepoint_min_size):
            cuts = find_change_points(signal[idx], min_size=s.changepoint_min_size, threshold=s.changepoint_z)
        bounds = [0] + cuts + [idx.size]
        for j in range(len(bounds) - 1):
            seg_id += 1
            segment[idx[bounds[j]:bounds[j + 1]]] = seg_id
            origin.append("condition" if j == 0 else "change point")

    # --- segment table
    rows = []
    for g in range(seg_id + 1):
        idx = np.flatnonzero(segment == g)
        first = idx[0]
        cm, cme, n_ok = _weighted_mean(cn_m[idx], cn_m_err[idx], s.min_cn_err)
        if cn_l is not None:
            cl, cle, _ = _weighted_mean(cn_l[idx], cn_l_err[idx], s.min_cn_err)
        else:
            cl = cle = math.nan
        wl_mean, wl_err = _plain_mean(wl[idx], s.wl_err)
        ed_mean, ed_err = _plain_mean(edge[idx], s.edge_err)
        r_mean = float(np.nanmean(r_m[idx])) if np.isfinite(r_m[idx]).any() else math.nan
        row = {"segment": g, "block": int(block[first]), "origin": origin[g],
               "first_step": df["step"].iloc[idx[0]], "last_step": df["step"].iloc[idx[-1]],
               "n_steps": int(idx.size), "n_ok": n_ok, "condition": labels[first]}
        for c in condition_columns:
            row[c] = df[c].iloc[first]
        row.update({"cn_metal": cm, "cn_metal_err": cme, "cn_ligand": cl, "cn_ligand_err": cle,
                    "r_metal": r_mean, "wl_height": wl_mean, "wl_height_err": wl_err,
                    "edge_position": ed_mean, "edge_position_err": ed_err})
        rows.append(row)
    seg = pd.DataFrame(rows)
    seg["state"] = classify(seg["cn_metal"], seg["cn_metal_err"],
                            seg["cn_ligand"] if ligand else None,
                            seg["cn_ligand_err"] if ligand else None, s)
    element = _split_shell(metal)[0]
    element_known = (element.capitalize(), element.capitalize()) in DEFAULT_DISTANCES
    bond = np.where(np.isfinite(seg["r_metal"]), seg["r_metal"], np.nan)
    sizes = {k: [] for k in ("n_atoms", "n_atoms_lo", "n_atoms_hi", "diameter_nm")}
    for row, d in zip(seg.itertuples(index=False), bond):
        if row.state in ("cluster", "particle"):
            cs = cluster_size_from_cn(row.cn_metal, row.cn_metal_err, bulk_cn=s.bulk_cn,
                                      bond_length=float(d) if np.isfinite(d) else None,
                                      element=element if element_known and not np.isfinite(d) else None,
                                      model=s.cluster_model)
            vals = (cs.n_atoms, cs.n_atoms_lo, cs.n_atoms_hi, cs.diameter_nm)
        elif row.state == "isolated":
            vals = (1.0, 1.0, 1.0, math.nan)
        else:
            vals = (math.nan,) * 4
        for k, v in zip(sizes, vals):
            sizes[k].append(v)
    for k, v in sizes.items():
        seg[k] = v
    seg_state = seg["state"].to_numpy()

    # --- events between consecutive segments with a known state
    events = []
    prev = None
    for g in range(len(seg)):
        if seg_state[g] == "unknown":
            continue
        if prev is not None:
            ev = _event(seg.iloc[prev], seg.iloc[g], df, segment, ok, s)
            if ev is not None:
                events.append(ev)
        prev = g
    events_df = pd.DataFrame(events, columns=EVENT_COLUMNS)

    # --- reversibility
    rev_df = pd.DataFrame(_reversibility(seg, keys, block, segment, s), columns=REVERSIBILITY_COLUMNS)

    out_steps = df.copy()
    out_steps["segment"] = segment
    out_steps["state"] = step_state
    # Present the shell-specific names alongside the generic ones the plots use.
    seg = seg.rename(columns={"cn_metal": f"cn_{metal}", "cn_metal_err": f"cn_{metal}_err",
                              "cn_ligand": f"cn_{ligand or 'ligand'}",
                              "cn_ligand_err": f"cn_{ligand or 'ligand'}_err",
                              "r_metal": f"r_{metal}"})
    log.info("tracked %d steps: %d segments, %d events", len(df), len(seg), len(events_df))
    return Tracking(steps=out_steps, segments=seg, events=events_df, reversibility=rev_df,
                     metal_shell=metal, ligand_shell=ligand, condition_columns=list(condition_columns),
                     settings=s)


def _xanes_verdict(direction: int, z_wl: float, s: TrackSettings) -> str:
    """Whether the white line moved as expected: it falls when atoms aggregate
    (fewer empty d states / less ligand-field character as M-M bonds replace
    M-O/N bonds) and rises on redispersion (re-oxidation)."""
    if not np.isfinite(z_wl):
        return "n/a"
    if abs(z_wl) < s.z_significance:
        return "silent"
    return "agrees" if np.sign(z_wl) == -direction else "contradicts"


def _event(a: pd.Series, b: pd.Series, df: pd.DataFrame, segment: np.ndarray, ok: np.ndarray,
           s: TrackSettings) -> dict | None:
    sa, sb = a["state"], b["state"]
    delta = b["cn_metal"] - a["cn_metal"]
    err = math.hypot(a["cn_metal_err"], b["cn_metal_err"])
    z = delta / err if err > 0 else math.nan
    if not np.isfinite(z) or abs(z) < s.z_significance:
        return None
    if z > 0:
        if sa == "isolated" and sb in ("cluster", "particle"):
            kind = "aggregation"
        elif sa in ("cluster", "particle") and sb in ("cluster", "particle"):
            kind = "growth"
        else:
            return None
    else:
        if sa in ("cluster", "particle") and sb == "isolated":
            kind = "redispersion"
        elif sa in ("cluster", "particle") and sb in ("cluster", "particle"):
            kind = "partial_redispersion"
        else:
            return None
    direction = 1 if z > 0 else -1
    d_wl = b["wl_height"] - a["wl_height"]
    z_wl = d_wl / math.hypot(a["wl_height_err"], b["wl_height_err"])
    d_edge = b["edge_position"] - a["edge_position"]
    z_edge = d_edge / math.hypot(a["edge_position_err"], b["edge_position_err"])
    xanes = _xanes_verdict(direction, z_wl, s)
    if abs(z) >= s.z_high and xanes == "agrees":
        confidence = "high"
    elif (abs(z) >= s.z_high and xanes in ("silent", "n/a")) or xanes == "agrees":
        confidence = "medium"
    else:
        confidence = "low"
    idx = np.flatnonzero((segment == b["segment"]) & ok)
    if idx.size == 0:
        idx = np.flatnonzero(segment == b["segment"])
    step = df["step"].iloc[idx[0]]
    wl_txt = ("white line n/a" if not np.isfinite(z_wl) else
              f"white line {d_wl:+.3f} (z = {z_wl:+.1f})")
    edge_txt = ("edge shift n/a" if not np.isfinite(z_edge) else
                f"edge shift {d_edge:+.2f} eV (z = {z_edge:+.1f})")
    expect = "fall" if direction > 0 else "rise"
    evidence = (f"CN(M-M) {a['cn_metal']:.2f} +/- {a['cn_metal_err']:.2f} -> {b['cn_metal']:.2f} "
                f"+/- {b['cn_metal_err']:.2f} (delta {delta:+.2f}, z = {z:+.1f}); {wl_txt}; {edge_txt}; "
                f"XANES {xanes} (white line expected to {expect})")
    return {"event": kind, "step": step, "segment": int(b["segment"]), "segment_before": int(a["segment"]),
            "condition_before": a["condition"], "condition_after": b["condition"],
            "state_before": sa, "state_after": sb, "cn_before": a["cn_metal"], "cn_after": b["cn_metal"],
            "delta_cn": delta, "delta_cn_err": err, "z": z, "delta_wl": d_wl, "z_wl": z_wl,
            "delta_edge_eV": d_edge, "z_edge": z_edge, "xanes": xanes, "confidence": confidence,
            "origin": b["origin"], "evidence": evidence}


def _reversibility(seg: pd.DataFrame, keys: list, block: np.ndarray, segment: np.ndarray,
                   s: TrackSettings) -> list[dict]:
    """Blocks that return to an earlier condition, compared with the state reached there.

    Each block is represented by its last segment (the state reached under that
    condition).  The reference is the most recent earlier block with the same
    condition; a rest label (OCP) with no earlier match refers to the first block.
    """
    rest = {label.casefold() for label in s.rest_labels}
    first_pos = {}
    for i, b in enumerate(block):
        first_pos.setdefault(int(b), i)
    block_key = {b: keys[i] for b, i in first_pos.items()}
    last_seg = {b: int(seg.loc[seg["block"] == b, "segment"].max()) for b in block_key}
    out = []
    for b in sorted(block_key):
        ref = None
        for earlier in range(b - 1, -1, -1):
            if block_key[earlier] == block_key[b]:
                ref = earlier
                break
        if ref is None and b > 0 and any(k == ("s", r) for k in block_key[b] for r in rest):
            ref = 0
        if ref is None or ref == b - 1:
            continue
        before, after = seg.iloc[last_seg[ref]], seg.iloc[last_seg[b]]
        between = seg[(seg["block"] > ref) & (seg["block"] < b)]["state"]
        changed = bool((between.isin(["isolated", "cluster", "particle"])
                        & (between != before["state"])).any())
        delta = after["cn_metal"] - before["cn_metal"]
        err = math.hypot(before["cn_metal_err"], after["cn_metal_err"])
        z = delta / err if err > 0 else math.nan
        known = "unknown" not in (before["state"], after["state"])
        returned = bool(known and before["state"] == after["state"])
        recovered = bool(known and np.isfinite(z) and abs(z) < s.z_significance)
        if not known:
            verdict = "undetermined (a state is unknown)"
        elif returned and recovered:
            verdict = f"returned: {after['state']} again, CN(M-M) recovered (z = {z:+.1f})"
        elif returned:
            verdict = (f"state returned ({after['state']}) but CN(M-M) differs by {delta:+.2f} "
                       f"(z = {z:+.1f})")
        else:
            verdict = f"not returned: {before['state']} before, {after['state']} now (delta CN {delta:+.2f})"
        out.append({"segment": int(after["segment"]), "condition": after["condition"],
                    "reference_segment": int(before["segment"]), "reference_condition": before["condition"],
                    "state_before": before["state"], "state_after": after["state"],
                    "cn_before": before["cn_metal"], "cn_after": after["cn_metal"], "delta_cn": delta,
                    "z": z, "changed_between": changed, "returned": returned, "cn_recovered": recovered,
                    "verdict": verdict})
    return out
