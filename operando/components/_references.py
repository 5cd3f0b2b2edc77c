"""Reference spectra for component analysis: resolve, normalise like the series, check, interpolate.

A reference may be given as

* a path to any single spectrum :func:`operando.read_series` reads (XDI,
  column file), or one group of a multi-spectrum file as ``"file.prj#group"``;
* a :class:`~operando.series.Series` holding one spectrum (raw mu);
* a :class:`~operando.xanes.NormalizedSeries` holding one spectrum (taken as
  normalised already);
* ``"first"``, ``"last"``, a step number (the ``step`` column) or a
  ``slice`` of row positions (the mean of those steps) of the series itself;
* a 1-D array on the series' energy grid, or an ``(energy, values)`` pair,
  both taken as normalised already.

Raw references (paths and Series) are normalised with the series' own
settings (``pre1, pre2, norm1, norm2, nnorm, nvict`` relative to E0, from
``NormalizedSeries.settings``), by default about the series' E0: data and
references then share the same absolute pre-edge and post-edge windows, so
normalisation is the same linear operation on all of them and a mixture of
the references normalises to the same mixture of their normalised spectra.
About each reference's own E0 (Larch ``find_e0``, the habit in Athena/Larix)
is an option; on mixtures of the real Fe references (edges up to ~15 eV apart)
it biased the fractions by up to 0.065 where the series' E0 gave 0.022.
Raw references are resampled onto the series' grid before normalisation (so
the pre-edge and post-edge fits use the same points as the data's); others
are interpolated onto it.  Interpolation is a not-a-knot cubic spline (what
``larch.math.lincombo_fit`` uses).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from operando.errors import ConfigError, DataError, OperandoWarning
from operando.series import Series
from operando.xanes import NormalizedSeries

log = logging.getLogger(__name__)

#: A reference whose E0 lies further than this from the series' E0 is taken to
#: be on another edge or element, eV.  Chemical shifts of one edge stay below
#: ~20 eV; the closest edges of different elements are ~50 eV apart (As K / Au L3).
MAX_EDGE_OFFSET = 40.0
_NORM_KEYS = ("pre1", "pre2", "norm1", "norm2", "nnorm", "nvict")


@dataclass(frozen=True, eq=False)
class Reference:
    """One reference spectrum, normalised, on its own energy grid.

    Attributes
    ----------
    name : str
        Label used in result columns (``frac_<name>``).
    energy : (n,) array
        Its own energy grid, eV.
    norm, flat : (n,) arrays
        Normalised and flattened mu (``flat`` equals ``norm`` for references
        given as arrays).
    e0 : float or None
        Its edge energy, eV (None when given as an array without one).
    source : str
        Where it came from (file, step of the series, array).
    element, edge : str or None
        From the file header, when known.
    normalization : dict
        The settings used to normalise it, or a note that it was given normalised.
    """

    name: str
    energy: np.ndarray
    norm: np.ndarray
    flat: np.ndarray
    e0: float | None
    source: str
    element: str | None = None
    edge: str | None = None
    normalization: dict = field(default_factory=dict)

    def values(self, space: str) -> np.ndarray:
        """The array fitted in ``space`` (``"flat"`` -> flat, else norm), on its own grid."""
        return self.flat if space == "flat" else self.norm

    def spline(self, space: str):
        """Not-a-knot cubic spline of :meth:`values` (as scipy ``interp1d(kind="cubic")``)."""
        from scipy.interpolate import make_interp_spline

        return make_interp_spline(self.energy, self.values(space), k=3)

    def info(self) -> dict:
        """JSON-safe description for ``settings``."""
        return {"name": self.name, "source": self.source, "e0": self.e0,
                "element": self.element, "edge": self.edge,
                "energy_range": [float(self.energy[0]), float(self.energy[-1])],
                "normalization": dict(self.normalization)}


# --------------------------------------------------------------------------- resolving
def series_norm_settings(normalized: NormalizedSeries) -> dict:
    """The series' normalisation settings as keyword arguments for :func:`operando.normalize`.

    A setting that varied between steps (``e0="each"`` with Larch's defaults)
    is taken from the first step that was normalised.
    """
    settings = normalized.settings or {}
    out = {}
    for key in _NORM_KEYS:
        value = settings.get(key)
        if isinstance(value, (list, tuple)):
            value = next((v for v in value if v is not None), None)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            out[key] = int(value) if key in ("nnorm", "nvict") else float(value)
    return out


def resolve(normalized: NormalizedSeries, references: Any, *, e0: float | None = None
            ) -> list[Reference]:
    """Turn the user's references (a dict name -> spec, or a list of specs) into :class:`Reference`.

    Raw references are normalised with the series' settings about ``e0`` (eV;
    the series' E0, so data and references share the same absolute pre-edge
    and post-edge windows) or, when ``e0`` is None, about their own E0.

    Raises
    ------
    ConfigError
        No references, a reference of an unsupported type, or duplicate names.
    DataError, ReadError
        A reference that cannot be read or normalised (the message names it).
    """
    if isinstance(references, dict):
        items = [(str(name), spec) for name, spec in references.items()]
    elif isinstance(references, (str, Path, Series, NormalizedSeries, int, np.integer, slice)):
        items = [(None, references)]
    else:
        try:
            items = [(None, spec) for spec in references]
        except TypeError:
            raise ConfigError(
                f"references must be a dict name -> reference or a list of references, "
                f"got {type(references).__name__}") from None
    if not items:
        raise ConfigError("no references given (give at least one file, Series, step or array)")
    norm_kw = series_norm_settings(normalized)
    out = [_one(normalized, spec, name, i, norm_kw, e0) for i, (name, spec) in enumerate(items)]
    names = [r.name for r in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"reference names must be unique; {dup} appear more than once "
                          "(give references as a dict name -> reference)")
    return out


def _clean_name(text: str) -> str:
    return "_".join(str(text).split())


def _file_stem(file: str) -> str:
    file = str(file)
    if "#" in file:
        return file.split("#", 1)[1].split("[")[0]
    return Path(file).stem


def _one(normalized, spec, name, i, norm_kw, e0) -> Reference:
    series = normalized.series
    if isinstance(spec, str) and spec in ("first", "last"):
        rows = np.flatnonzero(normalized.ok)
        if rows.size == 0:
            raise DataError(f"reference {spec!r}: the series has no normalised step")
        row = int(rows[0] if spec == "first" else rows[-1])
        return _from_rows(normalized, [row], name or spec,
                          f"{spec} good step of the series (step {series.steps[row]})")
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        rows = np.flatnonzero(series.steps == int(spec))
        if rows.size == 0:
            raise DataError(f"reference step {int(spec)}: no such step in the series "
                            f"(steps {series.steps.min()}..{series.steps.max()})")
        return _from_rows(normalized, rows[:1], name or f"step_{int(spec)}",
                          f"step {int(spec)} of the series")
    if isinstance(spec, slice):
        rows = np.arange(len(normalized))[spec]
        if rows.size == 0:
            raise DataError(f"reference {spec}: selects no step of the series")
        label = name or f"steps_{series.steps[rows[0]]}_{series.steps[rows[-1]]}"
        return _from_rows(normalized, rows, label,
                          f"mean of steps {series.steps[rows[0]]}..{series.steps[rows[-1]]}")
    if isinstance(spec, (str, Path)):
        return _from_file(spec, name, norm_kw, e0, normalized.energy)
    if isinstance(spec, NormalizedSeries):
        label = name or _clean_name(_file_stem(spec.series.files[0]) or f"ref{i}")
        _single(spec.series, label)
        if not spec.ok[0]:
            raise DataError(f"reference {label!r}: not normalised ({spec.reason[0]})")
        return Reference(label, spec.energy, spec.norm[0], spec.flat[0], float(spec.e0[0]),
                         f"NormalizedSeries {spec.series.files[0]}", spec.series.element,
                         spec.series.edge, {"given": "normalised", **dict(spec.settings)})
    if isinstance(spec, Series):
        label = name or _clean_name(_file_stem(spec.files[0]) or f"ref{i}")
        return _normalise(spec, label, f"Series {spec.files[0]}", norm_kw, e0, normalized.energy)
    return _from_array(normalized, spec, name or f"ref{i}")


def _single(series: Series, label: str) -> None:
    if series.n_steps != 1:
        names = ", ".join(series.files[:12])
        raise DataError(f"reference {label!r} holds {series.n_steps} spectra; give one "
                        f"(e.g. 'file.prj#group' or series[i]); it holds: {names}")


def _from_rows(normalized, rows, label, source) -> Reference:
    rows = np.asarray(rows, dtype=int)
    bad = rows[~normalized.ok[rows]]
    if bad.size == len(rows):
        raise DataError(f"reference {label!r} ({source}): not normalised "
                        f"({normalized.reason[int(bad[0])]})")
    good = rows[normalized.ok[rows]]
    e0 = float(np.nanmean(normalized.e0[good]))
    return Reference(_clean_name(label), normalized.energy, normalized.norm[good].mean(axis=0),
                     normalized.flat[good].mean(axis=0), e0, source,
                     normalized.series.element, normalized.series.edge,
                     {"given": "steps of the series", "steps": normalized.series.steps[good].tolist()})


def _from_file(spec, name, norm_kw, e0, grid) -> Reference:
    from operando import read_series

    text = str(spec)
    group = None
    path = Path(text)
    if "#" in text and not path.exists():
        text, group = text.split("#", 1)
        path = Path(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = read_series(path)
    for w in caught:
        log.info("reference %s: %s", path.name, w.message)
    label = _clean_name(name or group or path.stem)
    if group is not None:
        rows = [i for i, f in enumerate(series.files) if f.split("#", 1)[-1].split("[")[0] == group]
        if not rows:
            raise DataError(f"reference {label!r}: {path.name} has no group {group!r}; it has "
                            + ", ".join(f.split("#", 1)[-1] for f in series.files))
        series = series.take(rows[:1])
    return _normalise(series, label, str(path) + (f"#{group}" if group else ""), norm_kw, e0,
                      grid)


#: The normalisation windows (eV from E0).
_WINDOWS = ("pre1", "pre2", "norm1", "norm2")


def _normalise(series: Series, label: str, source: str, norm_kw: dict, e0: float | None,
               grid: np.ndarray) -> Reference:
    """Normalise a raw reference like the data: resampled onto the series' grid first.

    Its raw mu is interpolated (not-a-knot cubic spline) onto the points of
    the series' grid inside its own range, then normalised with the series'
    settings about ``e0`` (or its own E0).  The pre-edge line and post-edge
    polynomial are then fitted over the same points as for the data, so
    normalisation is the same linear operation on data and references.
    """
    from scipy.interpolate import make_interp_spline

    from operando import normalize

    _single(series, label)
    # Its own E0 first, with the engine's own windows: a standard on another edge is named
    # as such (below), not as a window outside its data.
    own = normalize(series, e0="first", **{k: v for k, v in norm_kw.items() if k not in _WINDOWS})
    if not own.ok[0]:
        raise DataError(f"reference {label!r} ({source}) could not be normalised: "
                        f"{own.reason[0]}")
    own_e0 = float(own.e0[0])
    if e0 is not None:
        _check_offset(label, source, own_e0, e0, None, None)
    inside = grid[(grid >= series.energy[0] - 1e-9) & (grid <= series.energy[-1] + 1e-9)]
    if inside.size < 20:
        raise DataError(f"reference {label!r} ({source}) covers {series.energy[0]:.1f}-"
                        f"{series.energy[-1]:.1f} eV: fewer than 20 points of the series' grid "
                        f"({grid[0]:.1f}-{grid[-1]:.1f} eV)")
    mu = make_interp_spline(series.energy, series.mu[0], k=3)(inside)
    resampled = series.replace(energy=inside, mu=mu[None, :], reference=None)
    try:
        normed = normalize(resampled, e0=own_e0 if e0 is None else float(e0), **norm_kw)
    except ConfigError as exc:   # a window outside this standard's data
        raise DataError(f"reference {label!r} ({source}): {exc}") from None
    if not normed.ok[0]:
        raise DataError(f"reference {label!r} ({source}) could not be normalised on the series' "
                        f"grid: {normed.reason[0]}")
    used = {k: normed.settings.get(k) for k in _NORM_KEYS}
    clipped = {k: (norm_kw[k], used[k]) for k in ("pre1", "pre2", "norm1", "norm2")
               if k in norm_kw and used[k] is not None and abs(float(used[k]) - norm_kw[k]) > 1e-6}
    if clipped:
        warnings.warn(f"reference {label!r}: its energy range does not reach the series' "
                      f"normalisation ranges; used (series -> reference) {clipped} eV",
                      OperandoWarning, stacklevel=4)
    about = "the series' E0" if e0 is not None else "its own E0"
    return Reference(label, normed.energy, normed.norm[0], normed.flat[0], own_e0,
                     source, series.element, series.edge,
                     {"given": f"raw mu resampled onto the series' grid (cubic spline), "
                               f"normalised with the series' settings about {about}",
                      "e0_used": float(normed.e0[0]), **used})


def _from_array(normalized, spec, label) -> Reference:
    energy = normalized.energy
    if isinstance(spec, tuple) and len(spec) == 2:
        x = np.asarray(spec[0], dtype=float)
        y = np.asarray(spec[1], dtype=float)
        if x.ndim != 1 or y.shape != x.shape or x.size < 4:
            raise DataError(f"reference {label!r}: (energy, values) need two 1-D arrays of the "
                            f"same length >= 4, got shapes {x.shape} and {y.shape}")
        if np.any(np.diff(x) <= 0):
            raise DataError(f"reference {label!r}: its energy must be strictly increasing")
        source = "(energy, values) arrays"
    else:
        try:
            y = np.asarray(spec, dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(
                f"reference {label!r}: unsupported type {type(spec).__name__} (accepted: a "
                "path, Series, NormalizedSeries, 'first', 'last', a step number, a slice, an "
                "array on the series grid or an (energy, values) pair)") from None
        if y.ndim != 1 or y.size != energy.size:
            raise DataError(f"reference {label!r}: an array reference must be 1-D on the series "
                            f"grid ({energy.size} points), got shape {y.shape}")
        x = energy
        source = "array on the series grid"
    if not np.all(np.isfinite(y)):
        raise DataError(f"reference {label!r}: holds non-finite values")
    return Reference(_clean_name(label), x, y, y, None, source, None, None,
                     {"given": "normalised array (flat = norm)"})


def resolve_checked(normalized: NormalizedSeries, references: Any, series_e0: float,
                    standard_e0: str) -> list[Reference]:
    """:func:`resolve` about the series' E0 (``standard_e0="series"``) or their own,
    then :func:`check_edge`."""
    refs = resolve(normalized, references, e0=series_e0 if standard_e0 == "series" else None)
    check_edge(refs, normalized, series_e0)
    return refs


# --------------------------------------------------------------------------- checks
def check_edge(refs: list[Reference], normalized: NormalizedSeries, series_e0: float) -> None:
    """DataError naming the first reference on another edge or element than the series."""
    for ref in refs:
        _check_offset(ref.name, ref.source, ref.e0, series_e0, ref.element, ref.edge,
                      normalized.series.element, normalized.series.edge)


def _check_offset(name, source, ref_e0, series_e0, ref_element, ref_edge, element=None,
                  edge=None) -> None:
    if element and ref_element and (ref_element, str(ref_edge or edge).upper()) != \
            (element, str(edge).upper()):
        raise DataError(
            f"reference {name!r} ({source}) is {ref_element} {ref_edge or '?'}, "
            f"the series is {element} {edge}: use references measured at the series' edge")
    if ref_e0 is not None and abs(ref_e0 - series_e0) > MAX_EDGE_OFFSET:
        series_label = f" ({element} {edge})" if element else ""
        raise DataError(
            f"reference {name!r} ({source}) has its edge at {ref_e0:.1f} eV{_guess(ref_e0)}, "
            f"the series at {series_e0:.1f} eV{series_label}: another edge or element "
            f"(accepted: edges within {MAX_EDGE_OFFSET:g} eV of the series' E0)")


def _guess(e0: float) -> str:
    try:
        import xraydb

        elem, edge = xraydb.guess_edge(e0)
        return f" ({elem} {edge}?)"
    except Exception:  # noqa: BLE001 - only decorates the message
        return ""


def check_coverage(refs: list[Reference], emin: float, emax: float, margin: float = 0.0) -> None:
    """DataError naming the first reference whose grid does not cover ``[emin, emax]`` (+ margin)."""
    lo, hi = emin - margin, emax + margin
    for ref in refs:
        if ref.energy[0] > lo + 1e-9 or ref.energy[-1] < hi - 1e-9:
            extra = f" (the fit range +- the {margin:g} eV shift bound)" if margin else ""
            raise DataError(
                f"reference {ref.name!r} ({ref.source}) covers {ref.energy[0]:.1f}-"
                f"{ref.energy[-1]:.1f} eV but the fit needs {lo:.1f}-{hi:.1f} eV{extra}: "
                "narrow erange or give a reference measured over the fit range")


def check_basis(A: np.ndarray, names: list[str], where: str = "") -> None:
    """DataError naming the references that are linearly dependent over the fit range.

    ``A`` is (m points, k references).  The basis is singular when its
    smallest singular value (columns scaled to unit norm) is below 1e-8 of the
    largest; the references carrying that null vector are named.
    """
    norms = np.linalg.norm(A, axis=0)
    zero = [names[j] for j in np.flatnonzero(norms <= 1e-12 * max(norms.max(), 1e-300))]
    if zero:
        raise DataError(f"reference(s) {zero} are zero over the fit range{where}: singular basis")
    if A.shape[1] < 2:
        return
    An = A / norms
    _, s, vt = np.linalg.svd(An, full_matrices=False)
    if s[-1] > 1e-8 * s[0]:
        return
    null = np.abs(vt[-1])
    involved = [names[j] for j in np.flatnonzero(null > 0.1 * null.max())]
    raise DataError(
        f"references {involved} are linearly dependent over the fit range{where} (singular "
        f"basis, condition number {s[0] / max(s[-1], 1e-300):.3g}): e.g. two identical references; "
        "remove one of them")


def on_grid(refs: list[Reference], energy: np.ndarray, space: str) -> np.ndarray:
    """References interpolated onto ``energy`` (k, n) (the fitted shifts of an LCF
    evaluate their splines themselves, :class:`._linear.ShiftModel`).

    A reference on exactly the target grid is copied, not interpolated.  Points
    outside a reference's own grid are NaN.
    """
    out = np.empty((len(refs), energy.size))
    for j, ref in enumerate(refs):
        if ref.energy.shape == energy.shape and np.array_equal(ref.energy, energy):
            out[j] = ref.values(space)
            continue
        out[j] = ref.spline(space)(energy)
        out[j, (energy < ref.energy[0] - 1e-9) | (energy > ref.energy[-1] + 1e-9)] = np.nan
    return out
