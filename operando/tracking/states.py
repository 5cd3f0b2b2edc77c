"""Which shells are metal and ligand, and the state of each step or segment."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..errors import DataError
from .settings import TrackSettings

#: Scatterers accepted as the ligand shell, in order of preference.
_LIGANDS = ("O", "N", "C", "S", "Cl", "P", "F", "Br", "I")

#: States of a step or segment (``unknown``: failed or not interpretable).
STATES = ("isolated", "cluster", "particle", "unknown")


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
