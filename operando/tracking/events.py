"""Events at condition changes (and trends within a condition), and returns to a state.

An **event** is a difference between consecutive segments that the combined evidence
of every channel (:mod:`.evidence`) makes significant at ``z_event`` -- and, in a
long series, at the level that keeps the chance of any false event over all its
comparisons at ``family_alpha`` (:func:`event_threshold`); nothing else is ever an
event, so a constant stretch has none.  Its kind follows the states on
either side (:mod:`.states`): ``aggregation`` (isolated -> cluster / particle),
``growth`` (more metal, or cluster -> particle), ``redispersion`` (cluster /
particle -> isolated), ``partial_redispersion`` (less metal, still metal); with the
two-phase size channel (``cluster_cn``) between two metal states: ``growth`` (the
clusters' own CN up at constant or rising fraction), ``aggregation`` (fraction up at
constant size: more clusters), ``partial_redispersion`` (fraction down);
without a change of metal state it is named by the XANES direction, ``reduction``
or ``oxidation``, or ``change`` when no channel has a known direction.  A segment of
``min_trend_steps`` or more is also tested for a trend in time (``origin`` "trend").

**Confidence**: ``high`` when the strongest channel reaches ``z_high`` and both kinds
of evidence (EXAFS and XANES) show the change in the same direction; ``medium``
when one of the two holds; else ``low``.  A significant channel pointing the other
way is named in the evidence (``contradicted``) and caps the confidence at low.

**Reversibility** compares a block that returns to an earlier condition (or to a
rest label such as OCP, compared with the baseline state) with the state reached
there: like with like.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .channels import Channel
from .evidence import Difference, combine, two_sided_p
from .segments import ChannelStats, difference, trend
from ..options import TrackSettings

#: Columns of :attr:`Tracking.events`.
EVENT_COLUMNS = [
    "event", "step", "segment", "segment_before", "condition_before", "condition_after",
    "state_before", "state_after", "z", "p_value", "strongest", "cn_before", "cn_after",
    "delta_cn", "delta_cn_err", "z_cn", "delta_frac_metal", "z_frac_metal", "delta_wl", "z_wl",
    "delta_edge_eV", "z_edge", "xanes", "confidence", "origin", "evidence",
]
#: Columns of :attr:`Tracking.reversibility`.
REVERSIBILITY_COLUMNS = [
    "segment", "condition", "baseline_segment", "baseline_condition", "state_before",
    "state_after", "z", "p_value", "strongest", "changed_between", "returned", "verdict",
]
_METAL_STATES = ("cluster", "particle")
#: The event a change of metal state is, whatever the channels' directions.
_STATE_EVENTS = {("isolated", "cluster"): "aggregation", ("isolated", "particle"): "aggregation",
                 ("cluster", "isolated"): "redispersion", ("particle", "isolated"): "redispersion",
                 ("cluster", "particle"): "growth", ("particle", "cluster"): "partial_redispersion"}
#: The direction (+1: more metal / reduced) each kind of event means.
_KIND_DIRECTION = {"aggregation": 1, "growth": 1, "reduction": 1, "redispersion": -1,
                   "partial_redispersion": -1, "oxidation": -1}


def _kind(before: str, after: str, diffs: list[Difference], strongest: Difference) -> str:
    direction = _direction(diffs)
    if before == after == "trend":  # a change within one segment: named by its direction
        if strongest.kind == "exafs" and strongest.sign > 0 and direction:
            return "growth" if direction > 0 else "partial_redispersion"
    elif (before, after) in _STATE_EVENTS:
        return _STATE_EVENTS[before, after]
    elif before in _METAL_STATES and after in _METAL_STATES:
        metal_dir = _direction([d for d in diffs if d.channel.startswith(("cn_", "frac_"))
                                and d.sign > 0])
        split = _nucleation_or_growth(diffs)
        if split or metal_dir:
            return split or ("growth" if metal_dir > 0 else "partial_redispersion")
    return {1: "reduction", -1: "oxidation"}.get(direction, "change")


#: |z| a two-phase channel (cluster size, metal fraction) must reach to name the event.
_SPLIT_Z = 2.0


def _nucleation_or_growth(diffs: list[Difference]) -> str | None:
    """With the two-phase size channel (``cluster_cn``) the size and the fraction are
    separate: the clusters grew (``growth``: sintering, their own CN up, the fraction
    constant or rising), more atoms aggregated into clusters like those there were
    (``aggregation``: fraction up, size not), or clusters redispersed (fraction down).
    None without the size channel (the mixture CN cannot tell them apart)."""
    size = next((d for d in diffs if d.channel == "cluster_cn" and np.isfinite(d.z)), None)
    if size is None:
        return None
    frac = [d for d in diffs if d.sign > 0 and np.isfinite(d.z) and d.channel.startswith("frac_")]
    frac_z = frac[0].z if frac else 0.0
    if size.z >= _SPLIT_Z and frac_z > -_SPLIT_Z:
        return "growth"
    if frac_z >= _SPLIT_Z:
        return "aggregation"
    if frac_z <= -_SPLIT_Z:
        return "partial_redispersion"
    return None


def _direction(diffs: list[Difference]) -> int:
    """+1 more metal / reduced, -1 less, 0 unknown: from the strongest signed channel."""
    signed = [d for d in diffs if d.sign != 0 and np.isfinite(d.p)]
    if not signed:
        return 0
    best = min(signed, key=lambda d: d.p)
    return int(np.sign(best.sign * best.delta))


def _confidence(diffs: list[Difference], strongest: Difference, direction: int,
                s: TrackSettings) -> tuple[str, str, list[str]]:
    """(confidence, xanes verdict, labels of the significant channels pointing the other way)."""
    threshold = two_sided_p(s.z_event)
    agree, contra = set(), []
    for d in diffs:
        if d.sign == 0 or not np.isfinite(d.p) or d.p > threshold:
            continue
        if int(np.sign(d.sign * d.delta)) == direction:
            agree.add(d.kind)
        else:
            contra.append(d.label)
    xanes_diffs = [d for d in diffs if d.kind == "xanes" and d.sign != 0 and np.isfinite(d.p)]
    if not xanes_diffs:
        xanes = "n/a"
    elif "xanes" in agree:
        xanes = "agrees"
    elif any(d.label in contra for d in xanes_diffs):
        xanes = "contradicts"
    else:
        xanes = "silent"
    strong = abs(strongest.z) >= s.z_high
    both = {"exafs", "xanes"} <= agree
    if contra:
        return "low", xanes, contra
    if strong and both:
        return "high", xanes, contra
    return ("medium" if strong or both else "low"), xanes, contra


def event_row(kind_before, kind_after, diffs, a_seg, b_seg, step, origin, s: TrackSettings,
              p_max: float, cn_stats=None) -> dict | None:
    """The event of ``diffs`` (segment a -> b), or None when its combined p exceeds ``p_max``."""
    z, p, strongest = combine(diffs)
    if strongest is None or not p <= p_max:
        return None
    kind = _kind(kind_before, kind_after, diffs, strongest)
    direction = _KIND_DIRECTION.get(kind) or _direction(diffs) or 1
    confidence, xanes, contra = _confidence(diffs, strongest, direction, s)
    text = "; ".join(f"{d.label} {d.delta:+.3g} +/- {d.err:.2g} (z = {d.z:+.1f})"
                     for d in sorted(diffs, key=lambda d: d.p) if np.isfinite(d.z))
    if contra:
        text += f"; contradicted by {', '.join(contra)}"
    cn = next((d for d in diffs if d.channel.startswith("cn_") and d.sign > 0), None)
    fr = next((d for d in diffs if d.channel.startswith("frac_") and d.sign > 0), None)
    wl = next((d for d in diffs if d.channel == "wl_height"), None)
    ed = next((d for d in diffs if d.channel == "edge_position"), None)
    nan = math.nan
    before_cn = after_cn = nan
    if cn is not None and cn_stats is not None:
        before_cn, after_cn = cn_stats.mean[a_seg["segment"]], cn_stats.mean[b_seg["segment"]]
    return {"event": kind, "step": step, "segment": int(b_seg["segment"]),
            "segment_before": int(a_seg["segment"]), "condition_before": a_seg["condition"],
            "condition_after": b_seg["condition"], "state_before": kind_before,
            "state_after": kind_after, "z": z, "p_value": p, "strongest": strongest.label,
            "cn_before": before_cn, "cn_after": after_cn,
            "delta_cn": cn.delta if cn else nan, "delta_cn_err": cn.err if cn else nan,
            "z_cn": cn.z if cn else nan, "delta_frac_metal": fr.delta if fr else nan,
            "z_frac_metal": fr.z if fr else nan, "delta_wl": wl.delta if wl else nan,
            "z_wl": wl.z if wl else nan, "delta_edge_eV": ed.delta if ed else nan,
            "z_edge": ed.z if ed else nan, "xanes": xanes, "confidence": confidence,
            "origin": origin, "evidence": text}


def event_threshold(n_tests: int, s: TrackSettings) -> float:
    """The combined p an event needs: ``z_event``, made stricter in a long series so that
    the chance of any false event over its ``n_tests`` comparisons stays at
    ``family_alpha`` (Bonferroni over the comparisons)."""
    return min(two_sided_p(s.z_event), s.family_alpha / max(n_tests, 1))


def find_events(seg: pd.DataFrame, channels: list[Channel], all_stats: dict[str, ChannelStats],
                first_ok_step, segment_steps, order, s: TrackSettings) -> list[dict]:
    """Events between consecutive segments, then trends within long segments, by step."""
    cn = next((c for c in channels if c.role == "metal" and c.kind == "exafs"), None)
    cn_stats = all_stats[cn.name] if cn is not None else None
    events = []
    states = seg["state"].tolist()
    trended = [g for g in range(len(seg)) if segment_steps(g).size >= s.min_trend_steps]
    p_max = event_threshold(len(seg) - 1 + len(trended), s)
    # plain records: a pandas row per comparison would cost more than the comparison
    rows = seg[["segment", "condition", "origin", "first_step", "last_step"]].to_dict("records")
    for b in range(1, len(seg)):
        a = b - 1
        diffs = [difference(c, all_stats[c.name], a, b) for c in channels]
        ev = event_row(states[a], states[b], diffs, rows[a], rows[b], first_ok_step(b),
                       rows[b]["origin"], s, p_max, cn_stats)
        if ev is not None:
            events.append(ev)
    for g in trended:
        idx = segment_steps(g)
        diffs = [d for c in channels if (d := trend(c, idx, order)) is not None]
        row = rows[g]
        ev = event_row("trend", "trend", diffs, row, row, first_ok_step(g), "trend", s, p_max)
        if ev is not None:
            ev["state_before"] = ev["state_after"] = states[g]
            ev["condition_before"] = ev["condition_after"] = row["condition"]
            ev["evidence"] = f"over steps {row['first_step']}-{row['last_step']}: {ev['evidence']}"
            events.append(ev)
    events.sort(key=lambda e: (e["step"], e["origin"] == "trend"))
    return events


def reversibility(seg: pd.DataFrame, keys: list, block: np.ndarray, channels: list[Channel],
                  all_stats: dict, ref: int, s: TrackSettings) -> list[dict]:
    """Blocks that return to an earlier condition, compared with the state reached there.

    Each block is represented by its last segment (the state reached under that
    condition).  The baseline is the most recent earlier block with the same
    condition; a rest label (OCP) with no earlier match refers to the baseline state.
    """
    rest = {label.casefold() for label in s.rest_labels}
    # an index of conditions instead of a search over all blocks and segments: each
    # block's key and last segment, and for every condition the latest block under it
    blocks_of_seg = seg["block"].to_numpy()
    last_seg = {int(b): g for g, b in enumerate(blocks_of_seg)}  # segments run in order
    first_seg = {int(b): g for g, b in reversed(list(enumerate(blocks_of_seg)))}
    starts = np.flatnonzero(np.r_[True, np.diff(block) != 0])
    block_key = {int(block[i]): keys[i] for i in starts}
    states = seg["state"].tolist()
    conditions = seg["condition"].tolist()
    # run_end[g]: the last segment of the run of equal states that holds segment g
    run_end = np.arange(len(states))
    for g in range(len(states) - 2, -1, -1):
        if states[g] == states[g + 1]:
            run_end[g] = run_end[g + 1]
    ref_block = int(blocks_of_seg[ref])
    threshold = two_sided_p(s.z_event)
    latest: dict = {}
    out = []
    for b in sorted(block_key):
        earlier = latest.get(block_key[b])
        latest[block_key[b]] = b
        if earlier is None and b > ref_block and any(k == ("s", r) for k in block_key[b] for r in rest):
            earlier = ref_block
        if earlier is None or earlier == b - 1:
            continue
        i, j = last_seg[earlier], last_seg[b]
        before = {"state": states[i], "condition": conditions[i]}
        after = {"state": states[j], "condition": conditions[j]}
        # did any segment of the blocks in between hold another state than ``before``?
        lo, hi = last_seg[earlier] + 1, first_seg[b] - 1
        changed = bool(lo <= hi and (states[lo] != before["state"] or run_end[lo] < hi))
        diffs = [difference(c, all_stats[c.name], i, j) for c in channels]
        z, p, strongest = combine(diffs)
        same = before["state"] == after["state"] and "unknown" not in (before["state"], after["state"])
        differs = np.isfinite(p) and p <= threshold
        if "unknown" in (before["state"], after["state"]):
            verdict = "undetermined (a state is unknown)"
        elif same and not differs:
            verdict = f"returned: {after['state']} again, no channel differs (strongest " \
                      f"{strongest.label if strongest else 'n/a'}, z = {z:+.1f})"
        elif same:
            verdict = (f"state returned ({after['state']}) but {strongest.label} differs by "
                       f"{strongest.delta:+.3g} (z = {strongest.z:+.1f})")
        else:
            verdict = f"not returned: {before['state']} before, {after['state']} now"
        out.append({"segment": j, "condition": after["condition"], "baseline_segment": i,
                    "baseline_condition": before["condition"], "state_before": before["state"],
                    "state_after": after["state"], "z": z, "p_value": p,
                    "strongest": strongest.label if strongest else "", "changed_between": changed,
                    "returned": bool(same and not differs), "verdict": verdict})
    return out
