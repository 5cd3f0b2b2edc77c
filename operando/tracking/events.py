"""Events between consecutive segments and the reversibility of returning conditions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .settings import TrackSettings

#: Columns of :attr:`Tracking.events`.
EVENT_COLUMNS = [
    "event", "step", "segment", "segment_before", "condition_before", "condition_after",
    "state_before", "state_after", "cn_before", "cn_after", "delta_cn", "delta_cn_err", "z",
    "delta_wl", "z_wl", "delta_edge_eV", "z_edge", "xanes", "confidence", "origin", "evidence",
]#: Columns of :attr:`Tracking.reversibility`.
REVERSIBILITY_COLUMNS = [
    "segment", "condition", "reference_segment", "reference_condition", "state_before",
    "state_after", "cn_before", "cn_after", "delta_cn", "z", "changed_between", "returned",
    "cn_recovered", "verdict",
]


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
