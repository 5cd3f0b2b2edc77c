"""The state of every segment, judged against the baseline state and detection limits.

``state`` (metal aggregation), from the metal channels (CN(M-M) from EXAFS, the
metallic fraction from a linear-combination fit):

``isolated``
    no metal beyond the baseline state: no metal channel shows more metal than the
    baseline (first) segment at ``z_state``, or none shows metal at all.
``cluster``
    metal present: a metal channel is above its detection limit (CN(M-M) above the
    steps' 95 % detection limit; a fraction of at least ``min_metal_fraction``),
    significantly above zero, and -- unless the baseline itself holds metal --
    significantly above the baseline.  Each test uses the Bonferroni-corrected
    strongest channel (:mod:`.evidence`).
``particle``
    a cluster whose own CN (the two-phase ``cluster_cn`` when the table has it, else
    CN(M-M), or without EXAFS 12 x the metallic fraction) is at least ``particle_cn``:
    bulk-like metal.
``unknown``
    the segment has no usable metal-channel value (every fit failed).

A series with no metal channel (XANES without a metallic standard) gets the
XANES state as its state.  ``xanes_state``: with a metallic fraction
``oxidised`` / ``mixed`` / ``reduced``; without, relative to the baseline from the
white line and edge: ``as_start`` / ``reduced`` / ``oxidised``.

Steps take their segment's state; a step that disagrees with its repeats is an
``outlier`` (:func:`.segments.outliers`), reported with the reason.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import ConfigError
from .channels import Channel
from .evidence import combine, two_sided_p
from .segments import ChannelStats, difference
from ..options import TrackSettings

#: States of a segment (``unknown``: nothing usable to judge).
STATES = ("isolated", "cluster", "particle", "unknown")
#: XANES states.
XANES_STATES = ("oxidised", "mixed", "reduced", "as_start", "unknown")


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _label_key(label) -> str:
    """A condition label compared as a user writes it: case and white space aside, numbers by
    value ("-0.2 V" is the tracker's "-0.20 V")."""
    text = "".join(str(label).split()).casefold()
    return _NUMBER.sub(lambda m: f"{float(m.group()):g}", text)


def baseline_segment(labels: list[str], s: TrackSettings) -> int:
    """The segment the others are compared with (``baseline``: "first" or a label)."""
    if s.baseline == "first":
        return 0
    wanted = _label_key(s.baseline)
    for g, label in enumerate(labels):
        if _label_key(label) == wanted:
            return g
    raise ConfigError(f"[track] baseline = {s.baseline!r} matches no condition; "
                      f"conditions are {sorted(set(map(str, labels)))}")


def _absolute(ch: Channel, st: ChannelStats, g: int, s: TrackSettings) -> tuple[float, bool]:
    """(p of "more than zero", above the detection limit) of one metal channel."""
    m, e = st.mean[g], st.err[g]
    if not (np.isfinite(m) and np.isfinite(e) and e > 0):
        return math.nan, False
    if ch.kind == "exafs":
        limit = st.limit[g] if st.limit is not None else math.nan
        above = bool(m > limit) if np.isfinite(limit) else True
    else:
        above = bool(m >= s.min_metal_fraction)
    p = two_sided_p(m / e) if m > 0 else 1.0
    return p, above


def metal_states(channels: list[Channel], all_stats: dict, n_seg: int, ref: int,
                 s: TrackSettings) -> tuple[np.ndarray, list[str]]:
    """``(present, evidence)`` per segment from the metal channels (module docstring)."""
    metal = [c for c in channels if c.role == "metal"]
    present = np.zeros(n_seg, dtype=bool)
    evidence = [""] * n_seg
    if not metal:
        return present, evidence
    threshold = two_sided_p(s.z_state)

    def absolute_hits(g):
        hits = []
        for ch in metal:
            p, above = _absolute(ch, all_stats[ch.name], g, s)
            if np.isfinite(p) and above and p * len(metal) <= threshold:
                hits.append(ch)
        return hits

    present[ref] = bool(absolute_hits(ref))
    for g in range(n_seg):
        hits = absolute_hits(g)
        if g != ref and hits and not present[ref]:
            diffs = [difference(ch, all_stats[ch.name], ref, g) for ch in hits]
            z, p, strongest = combine(diffs)
            # the Bonferroni count is over every metal channel, not only those that hit
            p = min(1.0, p / max(len(hits), 1) * len(metal)) if np.isfinite(p) else p
            hits = hits if (strongest is not None and strongest.delta > 0 and p <= threshold) else []
        present[g] = bool(hits)
        parts = []
        for ch in metal:
            st = all_stats[ch.name]
            if np.isfinite(st.mean[g]):
                lim = ""
                if st.limit is not None and np.isfinite(st.limit[g]):
                    lim = f", limit {st.limit[g]:.2f}"
                parts.append(f"{ch.label} {st.mean[g]:.3g} +/- {st.err[g]:.2g}{lim}")
        evidence[g] = "; ".join(parts)
    return present, evidence


def segment_states(channels: list[Channel], all_stats: dict, n_seg: int, ref: int,
                   s: TrackSettings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(state, xanes_state, evidence)`` of every segment."""
    present, evidence = metal_states(channels, all_stats, n_seg, ref, s)
    metal = [c for c in channels if c.role == "metal"]
    cn = next((c for c in metal if c.kind == "exafs"), None)
    frac = next((c for c in metal if c.kind == "xanes"), None)
    size_ch = next((c for c in channels if c.role == "size"), None)
    xanes = xanes_states(channels, all_stats, n_seg, ref, s, frac)
    if not metal:
        return xanes.copy(), xanes, evidence
    state = np.full(n_seg, "unknown", dtype=object)
    for g in range(n_seg):
        if not any(np.isfinite(all_stats[c.name].mean[g]) for c in metal):
            continue
        if not present[g]:
            state[g] = "isolated"
            continue
        if size_ch is not None and np.isfinite(all_stats[size_ch.name].mean[g]):
            size = all_stats[size_ch.name].mean[g]      # the clusters' own CN (two-phase)
        elif cn is not None and np.isfinite(all_stats[cn.name].mean[g]):
            size = all_stats[cn.name].mean[g]
        else:
            size = s.bulk_cn * all_stats[frac.name].mean[g]
        state[g] = "particle" if size >= s.particle_cn else "cluster"
    return state, xanes, evidence


def xanes_states(channels, all_stats, n_seg, ref, s: TrackSettings, frac) -> np.ndarray:
    out = np.full(n_seg, "unknown", dtype=object)
    if frac is not None:
        st = all_stats[frac.name]
        for g in range(n_seg):
            m, e = st.mean[g], st.err[g]
            if not np.isfinite(m):
                continue
            if m < s.min_metal_fraction or m < s.z_state * e:
                out[g] = "oxidised"
            elif 1 - m < s.min_metal_fraction or 1 - m < s.z_state * e:
                out[g] = "reduced"
            else:
                out[g] = "mixed"
        return out
    xan = [c for c in channels if c.role in ("white_line", "edge")]
    threshold = two_sided_p(s.z_state)
    for g in range(n_seg):
        if not any(np.isfinite(all_stats[c.name].mean[g]) for c in xan):
            continue
        if g == ref:
            out[g] = "as_start"
            continue
        diffs = [difference(c, all_stats[c.name], ref, g) for c in xan]
        z, p, strongest = combine(diffs)
        if strongest is None or not p <= threshold:
            out[g] = "as_start"
        else:
            out[g] = "reduced" if strongest.sign * strongest.delta > 0 else "oxidised"
    return out


__all__ = ["STATES", "XANES_STATES", "segment_states", "baseline_segment"]
