"""Test data for operando.components: real Au L3 series (Athena project) and mixtures of real
references with known fractions.  Helpers only; the tests are in test_components_*.py."""

from __future__ import annotations

import dataclasses
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.interpolate import make_interp_spline

import operando as op

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
REFS = DATA / "references"
AU_PRJ = DATA / "series" / "au_l3_cyanobacteria.prj"

#: Time steps of the Au series (hours, from the group names) and the standards.
AU_TIMES = ["d_0_12", "d_2_42", "d_4_73", "d_7_03", "d_9_33", "d_20", "d_33", "d_720"]
AU_STANDARDS = ["Au_foil", "Au3_Cl_aq", "Au_hydroxide", "Au_thiocyanide", "Au_sulphide",
                "Au_thiosulphate_aq", "Au1_Cl", "Au_cyanide", "Au_thiomalate_aq"]
#: xraylarch's examples/pca/pca_aucyano.py normalisation
AU_NORM = dict(pre1=-150, pre2=-30, nnorm=1, norm1=150, norm2=850)

CU = ["cu_foil_rt.xdi", "cuo_tenorite_13K.xdi"]
FE = ["fe_foil_rt_2016foils.xdi", "feo_rt_01.xdi", "fe2o3_rt_01.xdi", "fe3o4_rt_01.xdi"]


@lru_cache(maxsize=1)
def athena():
    """The Au project read by larch (operando.read_series cannot read gzipped projects yet)."""
    from larch.io import read_athena

    return read_athena(str(AU_PRJ), do_fft=False, do_bkg=False)


def au_group_series(name: str) -> op.Series:
    g = getattr(athena(), name)
    return op.Series(g.energy, g.mu[None, :],
                     pd.DataFrame({"step": [0], "file": [f"{AU_PRJ.name}#{name}"]}),
                     element="Au", edge="L3")


@lru_cache(maxsize=1)
def au_series() -> op.Series:
    """The 8 time steps on the first scan's grid (cubic spline), over the common range."""
    prj = athena()
    groups = [getattr(prj, t) for t in AU_TIMES]
    lo = max(g.energy[0] for g in groups)
    hi = min(g.energy[-1] for g in groups)
    e = groups[0].energy
    e = e[(e >= lo) & (e <= hi)]
    mu = np.array([make_interp_spline(g.energy, g.mu, k=3)(e) for g in groups])
    cond = pd.DataFrame({"step": np.arange(len(AU_TIMES)),
                         "file": [f"{AU_PRJ.name}#{t}" for t in AU_TIMES],
                         "time_h": [float(t[2:].replace("_", ".")) for t in AU_TIMES]})
    return op.Series(e, mu, cond, element="Au", edge="L3")


@lru_cache(maxsize=1)
def au_normalized():
    return op.normalize(au_series(), e0="each", **AU_NORM)


@lru_cache(maxsize=None)
def reference_norms(files: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Each reference normalised with operando.normalize (its defaults) and splined onto the
    first one's grid over the common range: (energy, (k, n) normalised spectra)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.OperandoWarning)
        series = [op.read_series(REFS / f) for f in files]
    norms = [op.normalize(s) for s in series]
    lo = max(s.energy[0] for s in series)
    hi = min(s.energy[-1] for s in series)
    e = series[0].energy
    e = e[(e >= lo) & (e <= hi)]
    N = np.array([make_interp_spline(n.energy, n.norm[0], k=3)(e) for n in norms])
    return e, N


def mixture_series(files, fractions, *, noise=0.003, seed=0, raw_noise=True):
    """Mixtures of the normalised references with known fractions, as raw-looking mu.

    mu = a + b E + edge_step * (fractions @ references + noise): a sloped
    pre-edge line and an edge step of 1.7.  With ``raw_noise`` the Gaussian
    noise (sd ``noise`` in normalised units, 0.3 % of the edge step) is in mu
    and the series is normalised with operando.normalize (noise then also
    enters each step's normalisation); otherwise the noise-free mu is
    normalised and the noise added to the normalised spectra (the recipe of
    mixing normalised spectra).  Returns the NormalizedSeries.
    """
    e, N = reference_norms(tuple(files))
    rng = np.random.default_rng(seed)
    fractions = np.asarray(fractions, dtype=float)
    z = noise * rng.standard_normal((fractions.shape[0], e.size))
    mix = fractions @ N + (z if raw_noise else 0.0)
    mu = 0.3 - 2e-5 * (e - e[0]) + 1.7 * mix
    cond = pd.DataFrame({"step": np.arange(fractions.shape[0]),
                         "file": [f"mix_{i:03d}" for i in range(fractions.shape[0])]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.OperandoWarning)
        element = op.read_series(REFS / files[0]).element
        edge = op.read_series(REFS / files[0]).edge
    normalized = op.normalize(op.Series(e, mu, cond, element=element, edge=edge))
    if raw_noise:
        return normalized
    return dataclasses.replace(normalized, norm=normalized.norm + z, flat=normalized.flat + z)


def reaction_path(k: int, n: int = 24, width: float = 0.25) -> np.ndarray:
    """Smooth concentration profiles A -> B -> ... (Gaussian bumps, closure), (n, k)."""
    t = np.linspace(0, 1, n)[:, None]
    centers = np.linspace(0, 1, k)[None, :]
    w = np.exp(-((t - centers) / width) ** 2)
    return w / w.sum(axis=1, keepdims=True)


def ref_paths(files) -> list[str]:
    return [str(REFS / f) for f in files]
