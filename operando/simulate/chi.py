"""chi(k) of a set of shells (xraylarch ``ff2chi`` on FEFF paths) and its near-edge taper."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..feffpaths import feff_path, parse_label
from .spec import Shell

#: k range (A^-1) over which chi is switched on (sin^2 ramp).
CHI_TAPER = (1.0, 2.0)


def shell_chi(shells: Iterable[Shell], k: np.ndarray, *, s02: float, edge: str | None = None) -> np.ndarray:
    """chi(k) of a set of shells, computed by ``larch.xafs.ff2chi``.

    Parameters
    ----------
    shells : iterable of Shell
        Shells with ``cn > 0`` contribute; each uses the shipped/cached FEFF
        path of its pair (``operando.feffpaths.feff_path``) with degeneracy
        ``cn``, ``deltar = r - reff``, ``sigma2``, ``e0 = de0`` and ``s02``.
    k : array
        Photo-electron wavenumbers, A^-1 (any increasing values).
    s02 : float
        Amplitude reduction factor.
    edge : str, optional
        Absorber edge; default ``operando.feffpaths.default_edge``.

    Returns
    -------
    array
        chi at ``k`` (dimensionless).
    """
    from larch.xafs import feffpath, ff2chi

    k = np.asarray(k, dtype=float)
    paths = []
    for shell in shells:
        if shell.cn <= 0:
            continue
        absorber, scatterer = parse_label(shell.label)
        fp = feff_path(absorber, scatterer, edge=edge)
        paths.append(feffpath(str(fp.file), label=shell.label.replace("-", "_"), degen=float(shell.cn),
                              s02=float(s02), e0=float(shell.de0), deltar=float(shell.r - fp.reff),
                              sigma2=float(shell.sigma2)))
    if not paths:
        return np.zeros_like(k)
    # ff2chi replaces its first point by a linear extrapolation: give it a dummy one.
    kk = np.concatenate([[k[0] - 0.01 if k.size else 0.0], k])
    return np.asarray(ff2chi(paths, k=kk).chi[1:], dtype=float)


def chi_taper(k: np.ndarray) -> np.ndarray:
    """The sin^2 ramp (0 below ``CHI_TAPER[0]``, 1 above ``CHI_TAPER[1]`` A^-1)."""
    lo, hi = CHI_TAPER
    t = np.clip((np.asarray(k, dtype=float) - lo) / (hi - lo), 0.0, 1.0)
    return np.sin(0.5 * np.pi * t) ** 2
