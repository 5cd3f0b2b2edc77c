"""Real measured reference spectra on one absolute energy scale, one grid, one normalisation.

:func:`load_references` reads each file with :func:`operando.read_series`,
puts it on an absolute energy scale, interpolates it onto a QEXAFS-like grid
over the overlap of all files and normalises every reference with one policy
(:func:`operando.normalize` with the same E0 and the same pre-/post-edge
ranges).  Because the normalisation is linear in mu once E0 and the ranges are
fixed, a fraction-weighted sum of the normalised references is itself the
normalised spectrum of the mixture (for fractions summing to 1).

Energy scale
------------
* A file with a reference channel (``irefer``/``iref`` column, e.g. the CuO
  file): that channel's edge is put on the tabulated edge energy with
  :func:`operando.calibrate` (8979.0 eV for Cu K).
* The element's metal foil (``cu_foil``, ``fe_foil``, ``pt_foil`` or the file
  given as ``foil``) is its own reference: its own edge goes to the tabulated
  energy.
* Any other file (the Fe oxides) has no reference: its energy axis is trusted
  as written; ``summary["calibration"]`` says so.

The shift measured on the file's own grid is refined once on the common grid
(the channel re-interpolated there and measured again), so that
:func:`operando.calibrate` on a generated series finds the foil edge exactly
where it was put.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from operando._util.validate import suggest
from operando.errors import ConfigError, DataError, ReadError
from operando.series import Series

from ._noise import ETOK, estimate_noise
from ._sources import (
    FOIL_OF,
    SHORTHANDS,
    energy_grid,
    read_reference,
    resolve_sources,
    shared_data_dir,
)


#: Fractions must sum to 1 within this, and be >= -this.
FRACTION_TOL = 1.0e-6


@dataclass(frozen=True, eq=False)
class References:
    """Normalised reference spectra of one element and edge on one grid.

    Attributes
    ----------
    names : tuple of str
        Reference names, in the order of the ``norm`` rows and of fraction columns.
    element, edge : str
    e0 : float
        The one E0 of the normalisation, eV: the tabulated edge energy (the foil
        edge after calibration).
    energy : (n_e,) array
        Grid, eV: ``pre_step`` below ``xanes[0]`` eV from E0, ``xanes_step`` within
        ``xanes``, constant k steps ``kstep`` above; ``margin`` eV inside the overlap
        of all files on each side, so that shifted copies stay covered.
    norm : (n_ref, n_e) array
        Normalised mu (:func:`operando.normalize` ``norm``) of each reference.
    foil : str or None
        Name of the reference-channel foil; ``foil_norm`` its normalised mu.
    cn : dict
        First-shell truth per reference, ``{name: {shell: CN}}``.
    settings : dict
        ``normalize`` (the keyword arguments used for every reference), ``grid``,
        ``edge_energy``, ``margin``.
    summary : DataFrame
        One row per file read: ``name, file, role`` ("reference", or "foil" for
        a foil read only for the reference channel), ``is_foil, sample, temperature,
        calibration, energy_shift`` (eV added to the file's energy),
        ``e0_own`` (find_e0 on the calibrated file), ``edge_step_own``,
        ``kmax_own`` (k of the last point from ``e0_own``), ``kmax_common``
        (from ``e0``), ``noise_rms`` (:func:`estimate_noise`, k >= 3), ``notes``.
    k_range : (float, float)
        k covered by the EXAFS part of the grid, from ``e0``, A^-1.
    """

    names: tuple
    element: str
    edge: str
    e0: float
    energy: np.ndarray
    norm: np.ndarray
    foil: str | None
    foil_norm: np.ndarray | None
    cn: dict
    settings: dict
    summary: pd.DataFrame
    k_range: tuple
    _curves: dict = field(repr=False, default_factory=dict)

    def __repr__(self) -> str:
        return (f"<References {self.element} {self.edge}: {list(self.names)}, foil {self.foil}, "
                f"{self.energy.size} points {self.energy[0]:.1f}-{self.energy[-1]:.1f} eV, "
                f"k {self.k_range[0]:.2f}-{self.k_range[1]:.2f} A^-1>")

    @property
    def normalization(self) -> dict:
        """Keyword arguments of :func:`operando.normalize` that reproduce ``norm``."""
        return dict(self.settings["normalize"])

    @property
    def margin(self) -> float:
        """Largest energy shift (eV) a generated scan may have."""
        return float(self.settings["margin"])

    def index(self, name: str) -> int:
        if name not in self.names:
            raise ConfigError(f"no reference {name!r}{suggest(name, self.names)}; "
                              f"references are {list(self.names)}")
        return self.names.index(name)

    def _curve_at(self, name: str, energy) -> np.ndarray:
        interp, intercept, slope, step = self._curves[name]
        energy = np.asarray(energy, dtype=float)
        lo, hi = self._curves["_range"]
        if energy.size and (energy.min() < lo - 1e-9 or energy.max() > hi + 1e-9):
            raise DataError(f"energies {energy.min():.2f}-{energy.max():.2f} eV leave the range "
                            f"covered by every reference, {lo:.2f}-{hi:.2f} eV")
        return (interp(energy) - intercept - slope * (energy - self.e0)) / step

    def norm_at(self, energy) -> np.ndarray:
        """Normalised references at any energies (eV) inside the covered range.

        Returns an array of shape ``(n_ref, *energy.shape)``; on ``energy`` it
        equals ``norm`` (same interpolant, same pre-edge line and edge step).
        """
        return np.stack([self._curve_at(name, energy) for name in self.names])

    def foil_norm_at(self, energy) -> np.ndarray:
        """Normalised foil (reference channel) at any energies, eV."""
        if self.foil is None:
            raise DataError("these references have no foil for a reference channel")
        return self._curve_at("_foil", energy)

    def mix(self, fractions) -> np.ndarray:
        """Fraction-weighted normalised spectra on ``energy``: ``(n, n_e)``.

        ``fractions``: ``(n, n_ref)`` or ``(n_ref,)``, validated as in
        :func:`operando.mixtures.mix_series`.
        """
        f = check_fractions(self, fractions)
        return f @ self.norm


def _edge_shift(energy, channel, target, element, edge) -> tuple[float, float]:
    """(shift to add to ``energy`` so the channel's edge is at ``target``, target used)."""
    from operando import calibrate

    probe = Series(energy=energy, mu=channel[None, :],
                   conditions=pd.DataFrame({"step": [0], "file": ["channel"]}),
                   element=element, edge=edge, reference=channel[None, :])
    calibrated, shifts = calibrate(probe, edge_energy=target)
    if not calibrated.metadata["energy_shift_ok"][0]:
        raise DataError(calibrated.metadata["energy_shift_reason"][0])
    return float(shifts[0]), float(calibrated.metadata["calibration"]["edge_energy"])


def _interpolant(energy, values):
    from scipy.interpolate import Akima1DInterpolator

    return Akima1DInterpolator(energy, values, method="makima")


def load_references(references, *, element: str | None = None, edge: str | None = None,
                    foil="auto", data_dir=None, edge_energy: float | None = None,
                    erange: tuple = (None, None), margin: float = 5.0, pre_step: float = 2.0,
                    xanes: tuple = (-30.0, 50.0), xanes_step: float = 0.5, kstep: float = 0.05,
                    pre1: float | None = None, pre2: float = -30.0, norm1: float | None = None,
                    norm2: float | None = None, nnorm: int | None = None,
                    cn: dict | None = None) -> References:
    """Read real reference spectra and put them on one energy scale, grid and normalisation.

    Parameters
    ----------
    references : list of str, or dict name -> str
        Shorthands (``"cu_foil", "cuo", "fe_foil", "feo", "fe2o3", "fe3o4",
        "pt_foil"``, files under the shared data folder) or paths.  A dict names
        them; otherwise a shorthand is its own name and a path its file stem.
    element, edge : str, optional
        Expected element and edge; default those of the first file.  Every file
        must agree.
    foil : "auto", str or None
        The metal foil whose spectrum goes into the reference channel of
        generated scans and which calibrates itself: ``"auto"`` = the shorthand
        foil of the edge (:data:`FOIL_OF`) when available, a shorthand or path, or
        None (no reference channel).
    data_dir : path, optional
        The shared data folder (see :func:`shared_data_dir`).
    edge_energy : float, optional
        Where calibrated edges go and the one E0 of the normalisation, eV.
        Default: the tabulated edge energy (8979.0 eV Cu K, 7112.0 Fe K,
        11564.0 Pt L3).
    erange : (float or None, float or None)
        Limit the grid to ``e0 + erange`` (eV), e.g. ``(None, 200)`` for XANES only.
    margin : float
        eV kept free at each end of the overlap, the largest shift a generated
        scan may have.
    pre_step, xanes, xanes_step, kstep
        Grid (see :func:`energy_grid`), eV, eV, eV, A^-1.
    pre1, pre2, norm1, norm2, nnorm
        Normalisation ranges relative to E0 (eV) and post-edge order, as
        :func:`operando.normalize`.  Defaults: ``pre1`` = max(-150, grid start
        rounded up to 5 eV), ``pre2 = -30``, ``norm2`` = grid end rounded down to
        5 eV, ``norm1`` = 150 if ``norm2 >= 400`` else 0.4 ``norm2`` (to 5 eV),
        ``nnorm`` = 2 if ``norm2 - norm1 >= 300`` else 1.
    cn : dict, optional
        First-shell truth for references that are not shorthands,
        ``{name: {"Cu-O": 4}}`` (shorthands have theirs, :data:`SHORTHANDS`).

    Returns
    -------
    References
        Cached: the same arguments return the same (read-only) object.

    Raises
    ------
    ConfigError
        Unknown shorthand (with a suggestion), duplicate names, bad ranges.
    DataError
        Files of different elements/edges, a calibration shift beyond 20 eV,
        an overlap without room for the pre-edge and XANES regions, a
        normalisation that fails.
    ReadError
        A file cannot be read, or no shared data folder is found.
    """
    for label, value in (("margin", margin), ("pre_step", pre_step), ("xanes_step", xanes_step),
                         ("kstep", kstep)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{label} must be a positive number, got {value!r}")
    for label, pair in (("erange", erange), ("xanes", xanes)):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ConfigError(f"{label} must be a (low, high) pair in eV relative to E0, "
                              f"got {pair!r}")
    if not xanes[0] < 0 < xanes[1]:
        raise ConfigError(f"xanes must bracket E0, (low < 0 < high) eV; got {xanes!r}")
    sources = tuple(resolve_sources(references, data_dir))
    if foil == "auto" or foil is None:
        foil_key = foil
    else:
        foil_key = str(foil)
        if foil_key not in SHORTHANDS and not Path(foil_key).is_file():
            raise ConfigError(f"unknown foil {foil_key!r}{suggest(foil_key, SHORTHANDS)}; give a "
                              "shorthand, a path, 'auto' or None")
    cn_key = tuple(sorted((str(k), tuple(sorted(v.items()))) for k, v in (cn or {}).items()))
    options = (element, edge, foil_key, None if data_dir is None else str(data_dir), edge_energy,
               tuple(erange), margin, pre_step, tuple(xanes), xanes_step, kstep, pre1, pre2,
               norm1, norm2, nnorm, cn_key)
    return _load(tuple((n, str(p), s) for n, p, s in sources), options)


@functools.lru_cache(maxsize=16)
def _load(sources, options) -> References:
    (element, edge, foil_key, data_dir, edge_energy, erange, margin, pre_step, xanes, xanes_step,
     kstep, pre1, pre2, norm1, norm2, nnorm, cn_key) = options
    read = []
    for name, path, short in sources:
        series, notes = read_reference(name, path, element, edge)
        element, edge = element or series.element, edge or series.edge
        read.append(dict(name=name, path=path, short=short, series=series, notes=notes,
                         role="reference"))
    foil_name = _add_foil(read, foil_key, data_dir, element, edge)

    e0 = _calibrate(read, foil_name, edge_energy, element, edge)
    lo = max(r["series"].energy[0] + r["shift"] for r in read) + margin
    hi = min(r["series"].energy[-1] + r["shift"] for r in read) - margin
    lo = lo if erange[0] is None else max(lo, e0 + erange[0])
    hi = hi if erange[1] is None else min(hi, e0 + erange[1])
    if lo > e0 + pre2 - 20.0 or hi < e0 + xanes[1] + 20.0:
        raise DataError(
            f"the references overlap (after calibration, less {margin:g} eV margins and erange) "
            f"only from {lo - e0:+.1f} to {hi - e0:+.1f} eV around E0 = {e0:.1f} eV; at least "
            f"{pre2 - 20:+.0f} to {xanes[1] + 20:+.0f} eV is needed: " +
            ", ".join(f"{r['name']} {r['series'].energy[0] + r['shift']:.1f}-"
                      f"{r['series'].energy[-1] + r['shift']:.1f} eV" for r in read))
    grid = energy_grid(e0, lo, hi, pre_step=pre_step, xanes=xanes, xanes_step=xanes_step,
                       kstep=kstep)
    for r in read:       # the generated scans are calibrated on this grid: measure there
        if r["channel"] is not None:
            channel = _interpolant(r["series"].energy + r["shift"], r["channel"])(grid)
            r["shift"] += _edge_shift(grid, channel, e0, element, edge)[0]

    norm_kw = _policy(grid - e0, e0, pre1, pre2, norm1, norm2, nnorm)
    curves = {"_range": (grid[0] - margin, grid[-1] + margin)}
    norms, rows = {}, []
    for r in read:
        curves[r["name"]], norms[r["name"]] = _normalise(r, grid, norm_kw, element, edge)
        rows.append(_describe(r, e0, foil_name))
    names = tuple(n for n, _, _ in sources)
    norm = np.stack([norms[n] for n in names])
    foil_norm = None
    if foil_name is not None:
        curves["_foil"], foil_norm = curves[foil_name], norms[foil_name]
    cn_extra = {k: dict(v) for k, v in cn_key}
    cn = {name: dict(cn_extra.get(name, SHORTHANDS[short][1] if short else {}))
          for name, _, short in sources}
    for array in (grid, norm) + ((foil_norm,) if foil_norm is not None else ()):
        array.setflags(write=False)
    settings = dict(normalize=norm_kw, edge_energy=e0, margin=float(margin),
                    grid=dict(pre_step=pre_step, xanes=list(xanes), xanes_step=xanes_step,
                              kstep=kstep, erange=list(erange)))
    return References(names=names, element=element, edge=edge, e0=e0, energy=grid, norm=norm,
                      foil=foil_name, foil_norm=foil_norm, cn=cn, settings=settings,
                      summary=pd.DataFrame(rows),
                      k_range=(float(np.sqrt(xanes[1] * ETOK)),
                               float(np.sqrt((grid[-1] - e0) * ETOK))),
                      _curves=curves)


def _add_foil(read: list, foil_key, data_dir, element, edge) -> str | None:
    """Name of the reference-channel foil, reading its file when it is not a reference."""
    if foil_key == "auto":
        foil_key = FOIL_OF.get((element, edge))
        if foil_key is not None:
            try:
                shared_data_dir(data_dir)
            except ReadError:
                return None
    if foil_key is None:
        return None
    for r in read:
        if foil_key in (r["short"], r["name"], r["path"]):
            return r["name"]
    (name, path, short), = resolve_sources([foil_key], data_dir)
    series, notes = read_reference(name, path, element, edge)
    read.append(dict(name=name, path=str(path), short=short, series=series, notes=notes,
                     role="foil"))
    return name


def _calibrate(read: list, foil_name, edge_energy, element, edge) -> float:
    """Set each file's ``channel``, ``calibration`` and ``shift``; return the target (E0), eV."""
    target = edge_energy
    for r in read:
        s = r["series"]
        if s.reference is not None:
            r["channel"], r["calibration"] = s.reference[0], "reference channel (file's iref column)"
        elif r["name"] == foil_name:
            r["channel"], r["calibration"] = s.mu[0], "self (metal foil)"
        else:
            r["channel"], r["calibration"] = None, "none: file energy trusted (no reference channel)"
        r["shift"] = 0.0
        if r["channel"] is not None:
            try:
                r["shift"], target = _edge_shift(s.energy, r["channel"], target, element, edge)
            except DataError as exc:
                raise DataError(f"{r['path']}: calibration failed: {exc}") from None
    if target is None:
        import xraydb

        target = float(xraydb.xray_edge(element, edge).energy)
    return float(target)


def _policy(rel, e0, pre1, pre2, norm1, norm2, nnorm) -> dict:
    """Keyword arguments of ``operando.normalize`` for grid energies ``rel`` (eV from e0)."""
    pre1 = max(-150.0, float(5.0 * np.ceil(rel[0] / 5.0))) if pre1 is None else float(pre1)
    norm2 = float(5.0 * np.floor(rel[-1] / 5.0)) if norm2 is None else float(norm2)
    if norm1 is None:
        norm1 = 150.0 if norm2 >= 400 else float(5.0 * round(0.4 * norm2 / 5.0))
    nnorm = (2 if norm2 - float(norm1) >= 300 else 1) if nnorm is None else int(nnorm)
    if not (rel[0] <= pre1 < pre2 < 0 < norm1 < norm2 <= rel[-1] + 1e-9):
        raise ConfigError(f"normalisation ranges pre1={pre1}, pre2={pre2}, norm1={norm1}, "
                          f"norm2={norm2} eV must increase inside the grid "
                          f"{rel[0]:+.1f}..{rel[-1]:+.1f} eV around E0 (pre2 < 0 < norm1)")
    return dict(e0=e0, pre1=pre1, pre2=float(pre2), norm1=float(norm1), norm2=norm2, nnorm=nnorm)


def _normalise(r: dict, grid, norm_kw: dict, element, edge):
    """(curve, norm on grid): curve = (interpolant of mu, pre-edge intercept, slope, edge step)."""
    from operando import normalize

    interp = _interpolant(r["series"].energy + r["shift"], r["series"].mu[0])
    mu = interp(grid)
    one = Series(energy=grid, mu=mu[None, :],
                 conditions=pd.DataFrame({"step": [0], "file": [Path(r["path"]).name]}),
                 element=element, edge=edge)
    result = normalize(one, **norm_kw)
    if not result.ok[0]:
        raise DataError(f"{r['path']}: normalisation on the common grid failed: {result.reason[0]}")
    step = float(result.edge_step[0])
    # nvict = 0: mu - norm * edge_step is exactly the fitted pre-edge line
    slope, intercept = np.polyfit(grid - norm_kw["e0"], mu - result.norm[0] * step, 1)
    return (interp, intercept, slope, step), result.norm[0]


def _describe(r: dict, e0: float, foil_name) -> dict:
    """The ``summary`` row of one file: calibration, own E0, k reach, noise."""
    from operando import normalize

    s = r["series"]
    energy = s.energy + r["shift"]
    own = normalize(s.replace(energy=energy), e0="each")
    e0_own = float(own.e0[0])
    try:
        noise = float(estimate_noise(own.energy, own.norm[0], e0_own))
    except DataError:
        noise = np.nan
    header = s.metadata.get("header", {})
    return dict(
        name=r["name"], file=Path(r["path"]).name, role=r["role"], is_foil=r["name"] == foil_name,
        sample=header.get("Sample.name", header.get("Sample.formula", "")),
        temperature=header.get("Sample.temperature", ""), calibration=r["calibration"],
        energy_shift=r["shift"], e0_own=e0_own, edge_step_own=float(own.edge_step[0]),
        kmax_own=float(np.sqrt(max(energy[-1] - e0_own, 0) * ETOK)),
        kmax_common=float(np.sqrt(max(energy[-1] - e0, 0) * ETOK)),
        noise_rms=noise, notes="; ".join(r["notes"]))


def check_fractions(refs: References, fractions) -> np.ndarray:
    """Fractions as an ``(n, n_ref)`` float array, validated.

    Accepts an array ``(n, n_ref)`` or ``(n_ref,)``, or a DataFrame with one
    column per reference named ``frac_<name>`` (or ``<name>``).  Every row must
    be finite, >= 0 and sum to 1 (within 1e-6).

    Raises
    ------
    ConfigError
        Naming the row and reference (or the missing/unknown columns).
    """
    if isinstance(fractions, pd.DataFrame):
        prefixed = [f"frac_{n}" for n in refs.names]
        if all(c in fractions.columns for c in prefixed):
            cols = prefixed
        elif all(n in fractions.columns for n in refs.names):
            cols = list(refs.names)
        else:
            raise ConfigError(f"fractions table needs the columns {prefixed} (or {list(refs.names)}); "
                              f"it has {list(fractions.columns)}")
        extra = [c for c in fractions.columns if str(c).startswith("frac_") and c not in cols]
        if extra:
            raise ConfigError(f"fractions table has columns {extra} for references that are not "
                              f"loaded ({list(refs.names)})")
        values = fractions[cols].to_numpy(dtype=float)
    else:
        try:
            values = np.array(fractions, dtype=float)
        except (TypeError, ValueError):
            raise ConfigError("fractions must be numbers: an (n_steps, n_refs) array or a table "
                              "with frac_<name> columns") from None
        if values.ndim == 1:
            values = values[None, :]
    if values.ndim != 2 or values.shape[1] != len(refs.names) or values.shape[0] == 0:
        raise ConfigError(f"fractions must have shape (n_steps, {len(refs.names)}) for the "
                          f"references {list(refs.names)}; got {values.shape}")
    for row, f in enumerate(values):
        if not np.all(np.isfinite(f)):
            raise ConfigError(f"fractions row {row}: non-finite value in {f.tolist()}")
        if np.any(f < -FRACTION_TOL):
            bad = int(np.argmin(f))
            raise ConfigError(f"fractions row {row}: {refs.names[bad]} = {f[bad]:g} is negative; "
                              "fractions must be >= 0")
        if abs(f.sum() - 1.0) > FRACTION_TOL:
            raise ConfigError(f"fractions row {row} sums to {f.sum():.6g}, not 1 ({f.tolist()}); "
                              "each row gives the share of every absorbing atom")
    return np.clip(values, 0.0, None)
