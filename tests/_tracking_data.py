"""Synthetic steps tables with a known truth, for the tracking tests and the figures drawn
from a tracking (tests/tracking, tests/viz): per condition the CN of each shell, the white
line and the edge position, plus Gaussian noise with per-step errors between 0.3 and 0.8
(typical of EXAFS CN fits on operando data)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_steps(conditions: list[dict], truth: list[dict], *, metal: str, ligand: str, repeats,
               seed: int, fail: tuple = ()) -> pd.DataFrame:
    """A steps.csv-like table: ``repeats`` steps per condition, noise with realistic errors.

    ``truth`` rows hold ``cn_m, cn_l, wl, edge`` of each condition; failed steps
    (positions in ``fail``) get ok=False and NaN results like a failed fit.
    """
    rng = np.random.default_rng(seed)
    repeats = [repeats] * len(conditions) if np.isscalar(repeats) else repeats
    rows = []
    step = 0
    for cond, tr, n in zip(conditions, truth, repeats):
        for _ in range(n):
            em, el = rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.6)
            row = {"step": step, "file": f"scan_{step:04d}.dat", **cond, "ok": True,
                   "e0": tr["edge"], "edge_step": 1.0,
                   "wl_height": tr["wl"] + rng.normal(0, 0.005), "wl_position": tr["edge"] + 3.0,
                   "wl_area": 5.0 * tr["wl"], "edge_position": tr["edge"] + rng.normal(0, 0.05),
                   f"cn_{metal}": tr["cn_m"] + rng.normal(0, em), f"cn_{metal}_err": em,
                   f"r_{metal}": 2.70, f"r_{metal}_err": 0.01,
                   f"sigma2_{metal}": 0.006, f"sigma2_{metal}_err": 0.001,
                   f"de0_{metal}": 1.0, f"de0_{metal}_err": 0.5,
                   f"cn_{ligand}": tr["cn_l"] + rng.normal(0, el), f"cn_{ligand}_err": el,
                   f"r_{ligand}": 2.0, f"r_{ligand}_err": 0.01,
                   f"sigma2_{ligand}": 0.004, f"sigma2_{ligand}_err": 0.001,
                   f"de0_{ligand}": 1.0, f"de0_{ligand}_err": 0.5, "fit_ok": True}
            if step in fail:
                row["ok"] = row["fit_ok"] = False
                for key in list(row):
                    if key.startswith(("cn_", "r_", "sigma2_", "de0_", "wl_", "e0", "edge")):
                        row[key] = np.nan
            rows.append(row)
            step += 1
    return pd.DataFrame(rows)


# Pt single atoms on an oxide under a gas sequence.  White line of oxidised Pt
# falls as Pt-Pt bonds replace Pt-O bonds; the edge moves down on reduction.
PT_GASES = ["O2", "CO+O2", "H2", "CO+O2"]
PT_TRUTH = [dict(cn_m=0.0, cn_l=4.0, wl=1.90, edge=11566.0),
            dict(cn_m=5.0, cn_l=1.5, wl=1.55, edge=11564.8),
            dict(cn_m=8.0, cn_l=0.3, wl=1.35, edge=11564.2),
            dict(cn_m=6.0, cn_l=1.2, wl=1.48, edge=11564.6)]
PT_FAIL = (8,)  # one dead QEXAFS frame inside the first CO+O2 segment
PT_EVENTS = [("aggregation", 6, 1, "O2", "CO+O2"),
             ("growth", 12, 2, "CO+O2", "H2"),
             ("partial_redispersion", 18, 3, "H2", "CO+O2")]
PT_STATES = ["isolated", "cluster", "cluster", "cluster"]

# Cu-N-C under a potential sequence (V vs RHE), 3 repeats per potential.
CU_POTENTIALS = [0.82, 0.50, 0.10, -0.2, -0.4, -0.6, -0.8, -1.0, "OCP"]
CU_CN = [0.0, 0.0, 0.0, 2.5, 4.5, 6.5, 8.5, 10.8, 0.0]
CU_TRUTH = [dict(cn_m=c, cn_l=4.0 * (1 - c / 12), wl=1.45 - 0.03 * c, edge=8984.0 - 0.35 * c)
            for c in CU_CN]
CU_FAIL = (12,)  # the first step at -0.4 V failed: its event is seen at step 13
CU_EVENTS = [("aggregation", 9, 3, "-0.20 V", "-0.20 V"),
             ("growth", 13, 4, "-0.20 V", "-0.40 V"),
             ("growth", 15, 5, "-0.40 V", "-0.60 V"),
             ("growth", 18, 6, "-0.60 V", "-0.80 V"),
             ("growth", 21, 7, "-0.80 V", "-1.00 V"),
             ("redispersion", 24, 8, "-1.00 V", "OCP")]
CU_STATES = ["isolated"] * 3 + ["cluster"] * 4 + ["particle", "isolated"]


def pt_steps(seed=0):
    return make_steps([{"gas": g, "temperature_K": 423.0, "time_s": 60.0 * i}
                       for i, g in enumerate(PT_GASES)], PT_TRUTH, metal="Pt-Pt", ligand="Pt-O",
                      repeats=6, seed=seed, fail=PT_FAIL)


def cu_steps(seed=0):
    return make_steps([{"potential_V": p} for p in CU_POTENTIALS], CU_TRUTH, metal="Cu-Cu",
                      ligand="Cu-N", repeats=3, seed=seed, fail=CU_FAIL)


def qexafs_series(seed, change_at=None, n=1000, before=4.0, after=6.0, noise=0.6):
    rng = np.random.default_rng(seed)
    truth = np.full(n, before)
    if change_at is not None:
        truth[change_at:] = after
    err = rng.uniform(0.4, 0.8, n)
    return pd.DataFrame({"step": np.arange(n), "gas": ["CO"] * n, "ok": True, "fit_ok": True,
                         "wl_height": 1.6 - 0.05 * truth + rng.normal(0, 0.01, n),
                         "edge_position": 11564.0 + rng.normal(0, 0.05, n),
                         "cn_Pt-Pt": truth + rng.normal(0, noise, n), "cn_Pt-Pt_err": err,
                         "cn_Pt-O": 1.0 + rng.normal(0, 0.3, n), "cn_Pt-O_err": 0.3})
