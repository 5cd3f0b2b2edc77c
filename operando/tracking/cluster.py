"""Cluster size (atoms, diameter) from an average coordination number: cuboctahedra or spheres."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..feffpaths import DEFAULT_DISTANCES
from ..schema import SIZE_COLUMNS


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
    # Bisection: func is monotonic, so it converges surely, without a root finder's
    # bracketing rules.
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




def size_determinable(cn, cn_err, fraction, bulk_cn: float = 12.0, fraction_err=None):
    """Whether the clusters' own CN pins a size.

    ``N_c = A / x`` (``A`` the metal amplitude ``x N_c``), so ``err(N_c)`` grows as
    ``1 / x`` and the propagation holds only while ``x`` is clearly above zero.  The size
    is determinable when (1) there are clusters: ``x - 2 err(x) > 0`` (without an error
    of x, ``x > 0``), and (2) the two-sigma (95 %) interval of ``N_c`` maps to a
    *bounded* size: above a lone atom (``N_c - 2 err > 0``) and below the bulk
    (``N_c + 2 err < bulk_cn``, where the CN-size relation runs off to infinity: a
    bulk-like CN is only a lower bound on the size; the tracker's bulk-like rule).  No
    cut on ``x`` itself."""
    cn, err, x = (np.asarray(v, dtype=float) for v in (cn, cn_err, fraction))
    x_err = np.zeros_like(x) if fraction_err is None else np.nan_to_num(
        np.asarray(fraction_err, dtype=float))
    with np.errstate(invalid="ignore"):
        return (np.isfinite(cn) & np.isfinite(err) & (x - 2 * x_err > 0) & (cn - 2 * err > 0)
                & (cn + 2 * err < bulk_cn))


def size_columns(cn, cn_err, fraction, *, fraction_err=None, bond_length=None,
                 element: str | None = None, bulk_cn: float = 12.0,
                 model: str = "cuboctahedron"):
    """Per row the clusters' size from their own CN (two-phase ``cluster_cn``).

    Parameters
    ----------
    cn, cn_err : array
        ``N_c`` and its error (the two-phase fit's ``cluster_cn, cluster_cn_err``).
    fraction, fraction_err : array
        The metal fraction x and its error: where ``x <= 0`` or unknown there are no
        clusters and every size column is NaN.
    bond_length : array, optional
        Per row M-M distance, Angstrom (the fitted ``cluster_r``); NaN rows fall back
        to ``element``'s bulk distance.
    element, bulk_cn, model
        As :func:`cluster_size_from_cn` (cuboctahedra by default: Benfield 1992;
        Jentys 1999).

    Returns
    -------
    DataFrame
        :data:`SIZE_COLUMNS`; ``n_atoms_lo/hi`` at ``N_c -/+ err``;
        ``size_determinable`` from :func:`size_determinable`; where it is False (no
        clusters, or x and its error leave N_c meaningless) the sizes are NaN.
    """
    import pandas as pd

    cn, err, x = (np.asarray(v, dtype=float).reshape(-1) for v in (cn, cn_err, fraction))
    bonds = (np.full(cn.size, np.nan) if bond_length is None
             else np.asarray(bond_length, dtype=float).reshape(-1))
    out = {k: np.full(cn.size, math.nan) for k in SIZE_COLUMNS[:4]}
    for i in range(cn.size):
        if not (np.isfinite(x[i]) and x[i] > 0 and np.isfinite(cn[i])):
            continue
        bond = float(bonds[i]) if np.isfinite(bonds[i]) else None
        cs = cluster_size_from_cn(cn[i], err[i] if np.isfinite(err[i]) else 0.0, bulk_cn=bulk_cn,
                                  bond_length=bond, element=element if bond is None else None,
                                  model=model)
        out["n_atoms"][i], out["n_atoms_lo"][i] = cs.n_atoms, cs.n_atoms_lo
        out["n_atoms_hi"][i], out["diameter_nm"][i] = cs.n_atoms_hi, cs.diameter_nm
    determinable = size_determinable(cn, err, x, bulk_cn, fraction_err)
    frame = pd.DataFrame({k: np.where(determinable, v, math.nan) for k, v in out.items()})
    frame["size_determinable"] = determinable
    return frame


def segment_two_phase(df, segment, n_seg: int, size_stats, fraction_stats, metal_state, *,
                      element, bulk_cn: float, model: str, fraction_floor: float = 0.0):
    """Per segment the two-phase columns: ``cluster_fraction`` (x: the XANES metal
    fraction's segment estimate when there is one, else the mean fitted x) with its
    error, ``cluster_cn`` (the size channel's estimate; NaN where ``metal_state`` says
    the segment holds no metal), the sizes (:func:`size_columns`),
    and the consistency of the XANES and EXAFS fractions: ``cluster_fraction_exafs`` (its
    inverse-variance mean), ``fraction_z`` and ``fraction_consistent`` (|z| <= 2: within
    their combined errors at 95 %; each error at least ``fraction_floor``, the tracker's
    floor of a fraction, since repeats shrink the statistical errors below the
    systematic ones of either method)."""
    import pandas as pd

    from .segments import segment_bounds

    # segments are runs of consecutive steps: slices, not a search of the series each
    bounds = segment_bounds(segment, n_seg)
    parts = list(zip(bounds[:-1], bounds[1:]))

    def column(name):  # a missing column is NaN at every step
        values = np.asarray(pd.to_numeric(df.get(name), errors="coerce"), dtype=float)
        return np.broadcast_to(values, np.shape(segment))

    def weighted(name):
        v, e = column(name), column(f"{name}_err")
        mean, err = np.full(n_seg, math.nan), np.full(n_seg, math.nan)
        usable = np.isfinite(v) & np.isfinite(e) & (e > 0)
        for g, (a, b) in enumerate(parts):
            use = usable[a:b]
            if use.any():
                vv, w = v[a:b][use], 1.0 / e[a:b][use] ** 2
                mean[g], err[g] = float(np.sum(w * vv) / w.sum()), float(w.sum() ** -0.5)
        return mean, err

    if fraction_stats is not None:
        x, x_err = np.asarray(fraction_stats.mean, float), np.asarray(fraction_stats.err, float)
    else:
        x, x_err = weighted("cluster_fraction")
    cn, cn_err = np.asarray(size_stats.mean, float), np.asarray(size_stats.err, float)
    r = column("cluster_r")
    bond = np.array([np.nanmean(r[a:b]) if np.isfinite(r[a:b]).any() else math.nan
                     for a, b in parts])
    # a segment the tracker found without metal (``metal_state`` False) has no clusters
    has = np.asarray(metal_state, dtype=bool) & (x > 0)
    out = pd.DataFrame({"cluster_fraction": x, "cluster_fraction_err": x_err,
                        "cluster_cn": np.where(has, cn, math.nan),
                        "cluster_cn_err": np.where(has, cn_err, math.nan)})
    sizes = size_columns(out["cluster_cn"], out["cluster_cn_err"], x, fraction_err=x_err,
                         bond_length=bond, element=element, bulk_cn=bulk_cn, model=model)
    x_ex, x_ex_err = weighted("cluster_fraction_exafs")
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x_ex - x) / np.hypot(np.fmax(x_ex_err, fraction_floor),
                                  np.fmax(np.nan_to_num(x_err), fraction_floor))
    out = pd.concat([out, sizes], axis=1)
    out["cluster_fraction_exafs"], out["cluster_fraction_exafs_err"] = x_ex, x_ex_err
    out["fraction_z"] = z
    out["fraction_consistent"] = np.where(np.isfinite(z), np.abs(z) <= 2.0, True)
    return out


def two_phase_table(fits, *, element: str | None = None, bulk_cn: float = 12.0,
                    model: str = "cuboctahedron"):
    """The two-phase columns of steps.csv: a :class:`~operando.exafs.TwoPhaseResult` (or
    its table) with the sizes (:func:`size_columns`) from each step's ``cluster_cn``,
    ``cluster_fraction`` and ``cluster_r``; ``element`` gives the bond length where the
    fit has none.  The notebook gets the table a run writes."""
    import pandas as pd

    table = fits.to_dataframe() if hasattr(fits, "to_dataframe") else pd.DataFrame(fits).copy()
    table = table.reset_index(drop=True)
    sizes = size_columns(table["cluster_cn"], table["cluster_cn_err"], table["cluster_fraction"],
                         fraction_err=table["cluster_fraction_err"],
                         bond_length=table.get("cluster_r"), element=element, bulk_cn=bulk_cn,
                         model=model)
    return pd.concat([table.drop(columns=[c for c in SIZE_COLUMNS if c in table]), sizes], axis=1)
