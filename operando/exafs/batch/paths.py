"""Tabulated FEFF paths: Larch's path chi(k) for many parameter sets at once.

Larch (``FeffPathGroup._calc_chi``) evaluates, at the e0-shifted wavenumber
``q = sign(en) sqrt(|en|)``, ``en = k^2 - e0 * ETOK``, four ``s=0``
``UnivariateSpline`` interpolants of the feffNNNN.dat columns (``pha``,
``amp``, ``rep``, ``lam``), then the EXAFS equation.  The splines are piecewise
cubics whose knots lie on the FEFF k grid (multiples of 0.1 1/Angstrom for
FEFF6), so we store each one as cubic polynomials on a uniform grid of step
``h`` that divides the knot spacing: within every cell the stored cubic *is*
the spline's piece (up to rounding), lookup is an index computation plus a
Horner step, and derivatives with respect to q come for free.  Cells are
chosen by clipping the cell index, so beyond the table the end polynomials
extrapolate exactly as FITPACK's ``splev`` does.  The table step is checked
against the spline at cell midpoints when the table is built (files are splined
with :class:`operando.exafs.batch.splines.NotAKnotSpline`, the same s=0 spline
without importing scipy).

Several paths for many parameter sets in one pass: :class:`~.stack.PathStack`
(:meth:`PathTable.chi` is its one-path case).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import factorial
from pathlib import Path

import numpy as np

from ..._util.larch_compat import read_feffdat
from .splines import NotAKnotSpline
from .stack import PathStack

_FUNCS = ("pha", "amp", "rep", "lam")


@dataclass(frozen=True, eq=False)
class PathTable:
    """One FEFF path tabulated for fast, batched EXAFS-equation evaluation.

    Attributes
    ----------
    label : str
        Shell label, e.g. ``"Cu-N"``.
    filename : str
        The feffNNNN.dat file.
    reff : float
        Half path length, Angstrom.
    degen : float
        Degeneracy in the FEFF file (informational: the fit's ``cn`` replaces it).
    nleg : int
        Number of legs.
    q0, h : float
        Start and step (1/Angstrom) of the uniform cell grid.
    coefs : ndarray, shape (4, n_cells, 4)
        Per function (``pha, amp, rep, lam``) and cell, the cubic coefficients
        ``c0 + c1 t + c2 t^2 + c3 t^3`` in the cell coordinate ``t = (q - q_i) / h``.
    k : ndarray or None
        Default k grid (1/Angstrom) for :meth:`chi`.
    """

    label: str
    filename: str
    reff: float
    degen: float
    nleg: int
    q0: float
    h: float
    coefs: np.ndarray = field(repr=False)
    k: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        # (function, power) -> contiguous 1-d coefficient arrays for fast np.take
        flat = np.ascontiguousarray(np.transpose(self.coefs, (0, 2, 1)))
        object.__setattr__(self, "_flat", flat)

    def chi(self, k=None, *, amp=1.0, e0=0.0, deltar=0.0, sigma2=0.0, c3=0.0,
            jacobian=False, wrt=("amp", "e0", "deltar", "sigma2", "c3")):
        """Path chi(k) for one or many parameter sets (Larch's EXAFS equation).

        Same as Larch's ``FeffPathGroup`` with ``degen=1, s02=amp, e0=e0,
        deltar=deltar, sigma2=sigma2, third=c3`` (``fourth = ei = 0``).  The
        complex equation is evaluated in real arithmetic: with ``p = a + i b``
        (``a = real[p]``, ``b = 1/lambda``) and ``x = deltar - 2 sigma2 / reff``,
        ``chi = amp |F| exp(D) sin(Phi) / (q (reff + deltar)^2)`` where
        ``D = -2 reff b - 2 sigma2 (a^2 - b^2) - 2 b x + 4/3 c3 (3 a^2 b - b^3)`` and
        ``Phi = 2 q reff + phase + 2 a x - 4 sigma2 a b - 4/3 c3 (a^3 - 3 a b^2)``.

        Parameters
        ----------
        k : ndarray, shape (n_k,), optional
            Wavenumbers, 1/Angstrom; default the table's ``k``.  If ``k[0] == 0``
            the first point is extrapolated linearly as Larch does.
        amp : float or ndarray, shape (n,)
            Amplitude ``N * S0^2``.
        e0 : float or ndarray, shape (n,)
            Energy shift, eV.
        deltar : float or ndarray, shape (n,)
            Change of half path length, Angstrom.
        sigma2 : float or ndarray, shape (n,)
            Mean-square relative displacement, Angstrom^2.
        c3 : float or ndarray, shape (n,)
            Third cumulant, Angstrom^3.
        jacobian : bool
            Also return the analytic derivatives.
        wrt : tuple of str
            Parameters whose derivatives are wanted (others are skipped).

        Returns
        -------
        chi : ndarray, shape (n, n_k) (or (n_k,) when every parameter is scalar)
        jac : dict, only with ``jacobian=True``
            parameter name -> d chi / d parameter (per unit of the parameter),
            each shaped like ``chi``.
        """
        if k is None:
            k = self.k
            if k is None:
                raise ValueError(f"path {self.label}: no k grid given and none tabulated")
        pars = [np.asarray(v, dtype=float) for v in (amp, e0, deltar, sigma2, c3)]
        scalar = all(p.ndim == 0 for p in pars)
        pars = np.broadcast_arrays(*[np.atleast_1d(p) for p in pars])
        want = tuple(wrt) if jacobian else ()
        out = PathStack([self], k).chi(*[p[None, :] for p in pars], want=want)
        chi, jac = out if want else (out, {})
        if not jacobian:
            return chi[0, 0] if scalar else chi[0]
        if scalar:
            return chi[0, 0], {n: v[0, 0] for n, v in jac.items()}
        return chi[0], {n: v[0] for n, v in jac.items()}


def _feff_data(path):
    """(feff data with ``k, pha, amp, rep, lam, geom, filename, reff, degen, nleg``,
    splines ``{func: spline}`` (``UnivariateSpline(s=0)`` or the same spline from
    :class:`~.splines.NotAKnotSpline`), default label).

    A larch ``FeffPathGroup`` is used as is; files are read with the
    larch-free copy of Larch's reader (:func:`operando._util.larch_compat.read_feffdat`)
    and splined as Larch's ``create_spline_coefs`` does (``s=0``).
    """
    if hasattr(path, "_feffdat") and hasattr(path, "create_spline_coefs"):  # FeffPathGroup
        if getattr(path, "spline_coefs", None) is None:
            path.create_spline_coefs()
        return path._feffdat, path.spline_coefs, str(getattr(path, "label", "") or "")
    label = ""
    if hasattr(path, "file") and hasattr(path, "label"):   # operando.feffpaths.FeffPath
        label = path.label
        path = path.file
    fname = Path(path)
    if not fname.is_file():
        raise FileNotFoundError(f"FEFF path file not found: {fname}")
    # NotAKnotSpline is UnivariateSpline(s=0) (FITPACK's interpolating cubic) without
    # importing scipy.interpolate in every worker; tests/exafs/test_batch.py checks it

    fdat = read_feffdat(str(fname))
    splines = {f: NotAKnotSpline(fdat.k, getattr(fdat, f)) for f in _FUNCS}
    return fdat, splines, label


def tabulate_path(path, k=None, *, label: str | None = None, h: float | None = None,
                  tol: float = 1e-9) -> PathTable:
    """Tabulate a FEFF path for :meth:`PathTable.chi` and :func:`batch_fit`.

    Parameters
    ----------
    path : str, Path, operando.feffpaths.FeffPath or larch FeffPathGroup
        The feffNNNN.dat (read as Larch's ``feffdat`` reader does) or a path object.
    k : ndarray, optional
        Default k grid, 1/Angstrom.
    label : str, optional
        Shell label; default the FeffPath label, else ``"<absorber>-<scatterer>"``
        from the file geometry.
    h : float, optional
        Cell width, 1/Angstrom; default the largest of 0.05, 0.025, 0.01, ...
        that reproduces the splines to ``tol``.
    tol : float
        Largest accepted relative deviation from the spline at cell midpoints.

    Returns
    -------
    PathTable
    """
    fdat, spline_coefs, default_label = _feff_data(path)
    if label is None:
        label = default_label
    if not label:
        geom = fdat.geom
        label = f"{geom[0][0]}-{geom[1][0]}" if len(geom) > 1 else Path(fdat.filename).stem
    splines = [spline_coefs[f] for f in _FUNCS]
    kf = np.asarray(fdat.k, dtype=float)
    q0, q1 = float(kf[0]), float(kf[-1])
    steps = [h] if h is not None else [0.05, 0.025, 0.01, 0.005, 0.0025, 0.001]
    for step in steps:
        coefs = _cell_coefs(splines, q0, q1, step)
        err = _check_cells(splines, coefs, q0, step)
        if err <= tol or h is not None:
            break
    if err > tol:
        raise ValueError(f"path {label}: could not tabulate the FEFF splines to {tol:g} "
                         f"(best relative error {err:.2e}); pass a smaller h")
    return PathTable(label=label, filename=str(fdat.filename), reff=float(fdat.reff),
                     degen=float(fdat.degen), nleg=int(fdat.nleg), q0=q0, h=float(step),
                     coefs=coefs, k=None if k is None else np.asarray(k, dtype=float))


def _cell_coefs(splines, q0, q1, h):
    n_cells = max(1, int(np.ceil((q1 - q0) / h - 1e-9)))
    mid = q0 + h * (np.arange(n_cells) + 0.5)
    coefs = np.zeros((4, n_cells, 4))
    for f, spl in enumerate(splines):
        # Taylor expansion of the (cubic) piece at the cell midpoint, in t = (q - q_i)/h
        der = [spl(mid, nu=m) * h**m / factorial(m) for m in range(4)]
        # f(q_i + t h) = sum_m der_m (t - 1/2)^m ; expand in powers of t
        d0, d1, d2, d3 = der
        coefs[f, :, 0] = d0 - d1 / 2 + d2 / 4 - d3 / 8
        coefs[f, :, 1] = d1 - d2 + 3 * d3 / 4
        coefs[f, :, 2] = d2 - 3 * d3 / 2
        coefs[f, :, 3] = d3
    return coefs


def _check_cells(splines, coefs, q0, h):
    n_cells = coefs.shape[1]
    worst = 0.0
    for frac in (0.13, 0.71):
        q = q0 + h * (np.arange(n_cells) + frac)
        t = frac
        for f, spl in enumerate(splines):
            c = coefs[f]
            val = ((c[:, 3] * t + c[:, 2]) * t + c[:, 1]) * t + c[:, 0]
            ref = spl(q)
            scale = np.abs(ref).max() + 1e-300
            worst = max(worst, float(np.abs(val - ref).max() / scale))
    return worst
