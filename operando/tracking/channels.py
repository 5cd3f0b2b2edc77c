"""The evidence channels of a steps table: every quantity that says something about the
metal's state, with its per-step value, error and meaning.

==================  ==========  ===========================================================
channel             kind        moves when metal aggregates / the metal is reduced
==================  ==========  ===========================================================
``cn_<M-M>``        exafs       up (metal-metal neighbours appear)
``cn_<M-L>``        exafs       down (ligands are lost)
``frac_<metal>``    xanes       up (metallic fraction from a linear-combination fit)
``frac_<other>``    xanes       either way (other components; evidence of change only)
``wl_height``       xanes       down (fewer empty final states as the metal is reduced)
``edge_position``   xanes       down (lower oxidation state) at K edges; either way at L
                                edges, where the white line moves the half-step point
==================  ==========  ===========================================================

EXAFS channels use the steps whose shell fit converged with error bars: a ``good``
fit as it is, a ``poor`` one (R-factor above its limit, a parameter on a bound) with
its CN error widened by ``sqrt(R-factor) x CN`` (the amplitude its misfit leaves
unexplained), so it counts for what it is worth; a ``failed`` fit is no evidence.
CN errors are the fit's, without the S0^2 uncertainty: every verdict compares steps,
and S0^2 (one value for the run) scales them all alike; the absolute size of a
cluster carries it (:func:`operando.tracking.track`).  XANES channels use
every step whose XANES is ``ok``.  The white line and edge fall on reduction for K
edges of 3d metals and L3 edges of 5d metals alike (higher oxidation state: more
empty final states, higher binding energy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..options import TrackSettings

#: Scatterers accepted as the ligand shell, in order of preference.
_LIGANDS = ("O", "N", "C", "S", "Cl", "P", "F", "Br", "I")
#: Words that mark a component as the metal.
_METAL_WORDS = ("foil", "metal")


@dataclass(frozen=True, eq=False)
class Channel:
    """One evidence channel over the steps of a series.

    Attributes
    ----------
    name : str
        Column it comes from (``"cn_Cu-Cu"``, ``"wl_height"``, ``"frac_cu_foil"``).
    label : str
        Human name (``"CN(Cu-Cu)"``, ``"white line"``).
    kind : {"exafs", "xanes"}
    role : {"metal", "ligand", "size", "fraction", "white_line", "edge"}
        ``metal``: the channel measures metal directly (CN(M-M), metallic fraction).
    sign : int
        +1 / -1: how the value moves as metal appears (the metal is reduced);
        0: no known direction.
    value, error : (n,) arrays
        Per-step value and statistical error; NaN where the step is not usable or
        has no error of its own.
    floor : float
        One step's uncertainty when there are no repeats to measure it.
    limit : (n,) array or None
        Detection limit of the quantity per step (CN of a metal shell), if known.
    """

    name: str
    label: str
    kind: str
    role: str
    sign: int
    value: np.ndarray
    error: np.ndarray
    floor: float
    limit: np.ndarray | None = None

    @property
    def usable(self) -> np.ndarray:
        return np.isfinite(self.value)


def split_shell(shell: str) -> tuple[str, str]:
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
    shells = {}   # shell -> (absorber, scatterer), for the names of that form
    for c in columns:
        if c.startswith("cn_") and not c.endswith(("_err", "_limit", "_err_s02", "_sys")):
            try:
                shells[c[3:]] = split_shell(c[3:])
            except DataError:
                continue
    if metal is None:
        metal = next((shell for shell, (a, s) in shells.items() if a == s), None)
    if metal is None:
        return None, None
    absorber = split_shell(metal)[0]
    ligands = sorted((_LIGANDS.index(s), shell) for shell, (a, s) in shells.items()
                     if a == absorber and s in _LIGANDS)
    return metal, ligands[0][1] if ligands else None


def numeric(df: pd.DataFrame, name: str | None) -> np.ndarray:
    if name is None or name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)


def flags(df: pd.DataFrame, name: str, default: bool = True) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), default, dtype=bool)
    col = df[name]
    if col.dtype == bool:
        return col.to_numpy()
    text = col.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0", "yes"]).to_numpy()


def metal_fraction_column(df: pd.DataFrame, element: str | None, s: TrackSettings) -> str | None:
    """The ``frac_*`` column of the metallic component, if the table has one."""
    if s.metal_fraction is not None:
        name = s.metal_fraction if s.metal_fraction.startswith("frac_") else f"frac_{s.metal_fraction}"
        if name not in df.columns:
            raise DataError(f"metal_fraction column '{name}' is not in the steps table; fraction "
                            f"columns are {fraction_columns(df)}")
        return name
    for name in fraction_columns(df):
        stem = name[5:].lower()
        words = set(re.split(r"[^a-z0-9]+", stem))
        if any(w in stem for w in _METAL_WORDS) or (element and element.lower() in words):
            return name
    return None


def fraction_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("frac_") and not c.endswith("_err")]


def build(df: pd.DataFrame, metal: str | None, ligand: str | None, s: TrackSettings,
          edge: str | None = None) -> list[Channel]:
    """Every channel the table holds (see the module docstring)."""
    # a scan during which a setpoint changed belongs to neither condition: no evidence
    ok = flags(df, "ok") & ~flags(df, "conditions_mixed", default=False)
    if "fit_quality" in df.columns:
        quality = df["fit_quality"].astype(str).to_numpy()
        fitted = ok & np.isin(quality, ("good", "poor"))
        poor = quality == "poor"
    else:
        fitted = ok & flags(df, "fit_ok", default=False)
        poor = np.zeros(len(df), dtype=bool)
    rfactor = numeric(df, "r_factor")
    channels = []
    for shell, role, sign in ((metal, "metal", 1), (ligand, "ligand", -1)):
        if shell is None:
            continue
        value = numeric(df, f"cn_{shell}")
        err = numeric(df, f"cn_{shell}_err")
        # A poor fit counts for what it is worth: the part of the signal it leaves
        # unexplained (R-factor R) is an amplitude error of about sqrt(R) of the CN.
        misfit = np.where(poor & np.isfinite(rfactor), np.sqrt(np.abs(rfactor)) * np.abs(value), 0.0)
        err = np.hypot(err, misfit)
        use = fitted & np.isfinite(value) & np.isfinite(err)
        limit = numeric(df, f"cn_{shell}_limit") if f"cn_{shell}_limit" in df.columns else None
        channels.append(Channel(f"cn_{shell}", f"CN({shell})", "exafs", role, sign,
                                np.where(use, value, np.nan), np.where(use, err, np.nan),
                                s.cn_floor, None if limit is None else np.where(use, limit, np.nan)))
    if "cluster_cn" in df.columns:
        # the clusters' own CN (two-phase fit): the size channel, apart from the fraction
        value, err = numeric(df, "cluster_cn"), numeric(df, "cluster_cn_err")
        use = ok & flags(df, "two_phase_ok", default=False) & np.isfinite(value) & np.isfinite(err)
        channels.append(Channel("cluster_cn", "cluster CN", "exafs", "size", 1,
                                np.where(use, value, np.nan), np.where(use, err, np.nan),
                                s.cn_floor))
    element = split_shell(metal)[0] if metal else None
    metal_frac = metal_fraction_column(df, element, s)
    lcf_ok = ok & flags(df, "lcf_ok")
    for name in fraction_columns(df):
        value = numeric(df, name)
        use = lcf_ok & np.isfinite(value)
        is_metal = name == metal_frac
        channels.append(Channel(name, f"fraction {name[5:]}", "xanes",
                                "metal" if is_metal else "fraction", 1 if is_metal else 0,
                                np.where(use, value, np.nan),
                                np.where(use, numeric(df, f"{name}_err"), np.nan), s.frac_floor))
    # The half-step edge position falls on reduction at K edges; at L edges a strong white
    # line moves it either way (Au L3: +0.5 eV as Au(III) is reduced), so there it is
    # evidence of change without a direction.
    edge_sign = -1 if edge is None or str(edge).upper().startswith("K") else 0
    for name, label, role, floor, sign in (
            ("wl_height", "white line", "white_line", s.wl_floor, -1),
            ("edge_position", "edge", "edge", s.edge_floor, edge_sign)):
        value = numeric(df, name)
        if np.isfinite(value).any():
            channels.append(Channel(name, label, "xanes", role, sign,
                                    np.where(ok, value, np.nan), np.full(len(df), np.nan), floor))
    return [c for c in channels if c.usable.any()]
