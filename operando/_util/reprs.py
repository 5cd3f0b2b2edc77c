"""HTML for notebooks: the ``_repr_html_`` of the package's objects.

Each object's ``_repr_html_`` calls one function here with itself; the functions read
attributes only (no import of the classes, so every stage may use them).  The output
is a compact header, one or two short tables and, where a picture says more, a small
inline SVG line chart drawn here from the numbers (no matplotlib: a repr must be
quick and light, and keeps a stored notebook small).  What a view shows of a series
is chosen as in the figures (:mod:`operando.viz`), which take it from here: the
rows of a long series (:func:`evenly_spaced`) and the edge region (:data:`EDGE_WINDOW`).
"""

from __future__ import annotations

import html
import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..schema import lcf_columns

_STYLE = ("<style>.op-repr{font-size:12px;line-height:1.3}.op-repr table{font-size:11px;"
          "border-collapse:collapse}.op-repr td,.op-repr th{padding:1px 6px;text-align:right}"
          ".op-repr .op-h{font-weight:bold;margin-bottom:4px}.op-repr .op-row{display:flex;"
          "gap:16px;align-items:flex-start;flex-wrap:wrap}.op-repr .op-note{color:#666}</style>")
#: Line colours of the charts.
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
_MAX_ROWS = 12


def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return "" if v != v else str(v)
        return f"{v:.6g}" if abs(v) >= 1000 else f"{v:.4g}"
    return html.escape(str(value))


def table(df: pd.DataFrame, max_rows: int = _MAX_ROWS) -> str:
    """A small HTML table: the first and last rows when longer than ``max_rows``."""
    if df is None or not len(df.columns):
        return ""
    n = len(df)
    if n > max_rows:
        head, tail = df.head(max_rows - max_rows // 3), df.tail(max_rows // 3)
        rows = [r for _, r in head.iterrows()] + [None] + [r for _, r in tail.iterrows()]
    else:
        rows = [r for _, r in df.iterrows()]
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
           + "</tr></thead><tbody>"]
    for row in rows:
        if row is None:
            out.append(f"<tr><td colspan='{len(df.columns)}' style='text-align:center'>"
                       f"... {n - max_rows} more rows ...</td></tr>")
        else:
            out.append("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row.tolist()) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def pairs(items: Sequence[tuple[str, object]]) -> str:
    """A two-column table of ``(name, value)``."""
    return ("<table><tbody>" + "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                                       f"<td style='text-align:left'>{_fmt(v)}</td></tr>"
                                       for k, v in items) + "</tbody></table>")


def svg_lines(x, series: Sequence[tuple[np.ndarray, str]], *, xlabel: str = "", ylabel: str = "",
              vlines: Sequence[float] = (), width: int = 320, height: int = 150,
              markers: bool = False) -> str:
    """An inline SVG chart of one or more lines over ``x``: ``series`` = ``(y, label)``.

    Non-finite values break a line.  The axes carry their ranges and labels; the
    lines a small legend.  ``vlines``: x positions marked by dashed lines (events).
    """
    x = np.asarray(x, dtype=float)
    ys = [np.asarray(y, dtype=float) for y, _ in series]
    finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.array([])
    xf = x[np.isfinite(x)]
    if not finite.size or not xf.size:
        return ""
    x0, x1 = float(xf.min()), float(xf.max())
    y0, y1 = float(finite.min()), float(finite.max())
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    left, right, top, bottom = 46, 8, 8, 26
    pw, ph = width - left - right, height - top - bottom

    def px(v):
        return left + (v - x0) / (x1 - x0) * pw

    def py(v):
        return top + (1 - (v - y0) / (y1 - y0)) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'style="font:10px sans-serif">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for v in vlines:
        if x0 <= v <= x1:
            parts.append(f'<line x1="{px(v):.1f}" x2="{px(v):.1f}" y1="{top}" y2="{top + ph}" '
                         'stroke="#9467bd" stroke-dasharray="3,2"/>')
    for j, ((_, label), y) in enumerate(zip(series, ys)):
        color = COLORS[j % len(COLORS)]
        ok = np.isfinite(y) & np.isfinite(x)
        runs = np.split(np.flatnonzero(ok), np.flatnonzero(np.diff(np.flatnonzero(ok)) > 1) + 1)
        for run in runs:
            if run.size:
                pts = " ".join(f"{px(x[i]):.1f},{py(y[i]):.1f}" for i in run)
                parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                             'stroke-width="1.3"/>')
                if markers:
                    parts += [f'<circle cx="{px(x[i]):.1f}" cy="{py(y[i]):.1f}" r="1.8" '
                              f'fill="{color}"/>' for i in run]
        parts.append(f'<text x="{left + 6}" y="{top + 12 + 11 * j}" fill="{color}">'
                     f'{html.escape(label)}</text>')
    parts += [f'<text x="{left - 3}" y="{top + 8}" text-anchor="end">{y1:.4g}</text>',
              f'<text x="{left - 3}" y="{top + ph}" text-anchor="end">{y0:.4g}</text>',
              f'<text x="{left}" y="{height - 12}" text-anchor="middle">{x0:.6g}</text>',
              f'<text x="{left + pw}" y="{height - 12}" text-anchor="middle">{x1:.6g}</text>',
              f'<text x="{left + pw / 2}" y="{height - 2}" text-anchor="middle">'
              f'{html.escape(xlabel)}</text>',
              f'<text x="10" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 10 '
              f'{top + ph / 2})">{html.escape(ylabel)}</text>', "</svg>"]
    return "".join(parts)


def block(title: str, *bodies: str, note: str = "") -> str:
    """The whole repr: a header line, the bodies side by side, an optional note."""
    inner = "".join(f"<div>{b}</div>" for b in bodies if b)
    extra = f"<div class='op-note'>{html.escape(note)}</div>" if note else ""
    return (f"{_STYLE}<div class='op-repr'><div class='op-h'>{html.escape(title)}</div>"
            f"<div class='op-row'>{inner}</div>{extra}</div>")


def evenly_spaced(n: int, k: int = 6) -> np.ndarray:
    """Up to ``k`` row indices evenly spaced over ``n`` rows (first and last included): the
    rows a repr or a figure shows of a long series."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n else np.array([], int)


#: Energy window of the XANES figures and views around E0 (eV): the edge, where the change is.
EDGE_WINDOW = (-30.0, 70.0)


def edge_range(energy, e0=None, window=EDGE_WINDOW, erange=None):
    """The energy range (eV) of a XANES figure or view: ``erange`` if given, else ``window``
    around ``e0`` (a number, or per-step values: their median), else everything."""
    if erange is not None:
        return float(erange[0]), float(erange[1])
    if e0 is None or window is None:
        return None
    e0 = np.asarray(e0, dtype=float)
    e0 = e0[np.isfinite(e0)]
    if not e0.size:
        return None
    centre = float(np.median(e0))
    lo, hi = centre + float(window[0]), centre + float(window[1])
    energy = np.asarray(energy, dtype=float)
    if hi <= energy[0] or lo >= energy[-1]:
        return None
    return lo, hi


def fit_counts(steps: pd.DataFrame) -> str:
    """``"12 good, 3 poor, 1 failed"``: the shell fits of a table by ``fit_quality``."""
    q = steps["fit_quality"].fillna("failed").astype(str)
    return ", ".join(f"{int((q == k).sum())} {k}" for k in ("good", "poor", "failed"))


# --------------------------------------------------------------------------- objects
def series_html(s) -> str:
    """A :class:`~operando.Series`: header, conditions, raw mu of a few steps."""
    n = len(s)
    meta = s.metadata or {}
    info = pairs([("source", meta.get("source", "")), ("format", meta.get("format", "")),
                  ("mu from", meta.get("mu_from", "")),
                  ("reference channel", s.reference is not None),
                  ("skipped files", len(meta.get("skipped") or []))])
    rows = evenly_spaced(n, 4)
    chart = svg_lines(s.energy, [(s.mu[i], f"step {s.steps[i]}") for i in rows],
                      xlabel="Energy (eV)", ylabel="mu")
    title = (f"Series {s.element or ''} {s.edge or ''}: {n} spectra x {s.energy.size} points, "
             f"{s.energy[0]:.1f}-{s.energy[-1]:.1f} eV")
    return block(title, table(s.conditions), info, chart)


def normalized_html(nz) -> str:
    """A :class:`~operando.NormalizedSeries`: settings, per-step E0 / edge step, spectra."""
    s = nz.series
    settings = nz.settings or {}
    keys = ("e0", "e0_value", "pre1", "pre2", "norm1", "norm2", "nnorm", "engine")
    info = pairs([(k, settings[k] if not isinstance(settings[k], list) else "per step")
                  for k in keys if k in settings])
    lo, hi = edge_range(s.energy, nz.e0) or (s.energy[0], s.energy[-1])
    keep = (s.energy >= lo) & (s.energy <= hi)
    keep = keep if keep.sum() > 3 else np.ones(s.energy.size, bool)
    rows = [i for i in evenly_spaced(len(s), 5) if np.isfinite(nz.norm[i]).all()]
    chart = svg_lines(s.energy[keep], [(nz.norm[i][keep], f"step {s.steps[i]}") for i in rows],
                      xlabel="Energy (eV)", ylabel="normalised mu")
    n_ok = int(np.asarray(nz.ok).sum())
    return block(f"NormalizedSeries: {len(s)} steps, {n_ok} ok", table(nz.to_dataframe()), info, chart)


def fit_html(fr) -> str:
    """A :class:`~operando.ShellFitResult`: per-step CN, R, R-factor and quality; CN chart."""
    t = fr.table
    shells = [sh["label"] for sh in fr.settings.get("model", {}).get("shells", [])]
    cols = ["step"] + [c for sh in shells for c in (f"cn_{sh}", f"cn_{sh}_err", f"r_{sh}")
                       if c in t] + [c for c in ("r_factor", "fit_quality", "fit_ok") if c in t]
    chart = svg_lines(t["step"], [(t[f"cn_{sh}"], f"CN({sh})") for sh in shells if f"cn_{sh}" in t],
                      xlabel="Step", ylabel="CN", markers=True)
    quality = fit_counts(t) if "fit_quality" in t else f"{int(t['fit_ok'].sum())}/{len(t)} ok"
    s02 = fr.settings.get("s02")
    title = (f"ShellFitResult: {len(t)} steps, shells {', '.join(shells)}, "
             f"S0^2 = {_fmt(s02)}, engine {fr.settings.get('engine')}; fits {quality}")
    return block(title, table(t[cols]), chart)


def lcf_html(r) -> str:
    """A :class:`~operando.components.LCFResult`: fractions with errors per step; chart."""
    df = r.to_dataframe()
    cols = ["step"] + [c for c in lcf_columns(r.names, shifts=True) if c in df.columns]
    chart = svg_lines(r.steps, [(r.weights[:, j], n) for j, n in enumerate(r.names)],
                      xlabel="Step", ylabel="fraction", markers=True)
    s = r.settings
    title = (f"LCFResult: {len(r)} steps ({int(np.asarray(r.ok).sum())} fitted) against "
             f"{', '.join(r.names)}; range {s.get('erange')}, space {s.get('space')}")
    return block(title, table(df[[c for c in cols if c in df]]), chart)


def tracking_html(tr) -> str:
    """A :class:`~operando.Tracking`: states per segment, events, the main channel."""
    seg = tr.segments
    seg_cols = [c for c in ("segment", "condition", "first_step", "last_step", "n_ok", "state",
                            "xanes_state", "metal_evidence") if c in seg]
    ev_cols = [c for c in ("event", "step", "condition_before", "condition_after", "z", "strongest",
                           "confidence") if c in tr.events]
    events = table(tr.events[ev_cols]) if len(tr.events) else "<p>No events.</p>"
    channel = next((c for c in tr.channels if c.startswith("cn_")), None) or \
        next(iter(tr.channels), None)
    chart = ""
    if channel is not None and channel in tr.steps:
        y = pd.to_numeric(tr.steps[channel], errors="coerce").to_numpy(dtype=float)
        chart = svg_lines(tr.steps["step"], [(y, channel)], xlabel="Step", ylabel=channel,
                          vlines=[float(s) for s in tr.events["step"]] if len(tr.events) else (),
                          markers=True)
    title = (f"Tracking: {len(tr.steps)} steps, {len(seg)} segments, {len(tr.events)} events "
             f"(evidence: {', '.join(tr.channels) or 'none'})")
    return block(title, table(seg[seg_cols]), events, chart)


def run_html(rr) -> str:
    """A :class:`~operando.RunResult`: counts, files written, and its tracking."""
    s = rr.summary
    info = pairs([("folder", str(rr.dir)), ("steps", s.get("n_steps")), ("ok", s.get("n_ok")),
                  ("failed", s.get("n_failed")), ("events", s.get("n_events", 0)),
                  ("fits", ", ".join(f"{v} {k}" for k, v in (s.get("fits") or {}).items())),
                  ("components", (s.get("components") or {}).get("method", "")),
                  ("seconds", s.get("seconds"))])
    files = "<br>".join(html.escape(str(k)) for k in sorted(rr.outputs))
    body = block(f"RunResult {s.get('run_id', '')}", info, f"<b>files</b><br>{files}",
                 note="; ".join(s.get("notes") or []))
    if rr.tracking is not None:
        body += tracking_html(rr.tracking)
    return body
