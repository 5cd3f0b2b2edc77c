"""A self-contained HTML report of a run: summary, figures, tables, settings.

The report is one file (figures embedded as base64 PNG, no external CSS or
scripts) so it can be mailed, archived next to the data or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .._util.files import write_text_atomic
from .._util.jsonsafe import to_json_ready
from .._util.reprs import fit_counts
from ..errors import DataError

log = logging.getLogger(__name__)

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
pre.wrap { white-space: pre-wrap; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; position: sticky; top: 0; } tr:nth-child(even) { background: #fafafa; }
td .long { display: inline-block; white-space: normal; min-width: 28em; max-width: 48em;
           text-align: left; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
figure.wide img { width: 100%; max-width: 1200px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 1em; }
.grid figure { margin: 0; } .grid img { width: 100%; }
img { max-width: 100%; height: auto; }
.scroll { max-height: 480px; overflow: auto; border: 1px solid #eee; }
details > summary { cursor: pointer; color: #555; }
"""

#: Captions of the figures a pipeline run writes (other names are shown as they are).
_CAPTIONS = {
    "summary": "Overview: (a) normalised XANES of every step, (b) white-line height, "
               "(c) coordination numbers with events, (d) |chi(R)| of every step.",
    "cn": "Coordination numbers per segment (large symbols, error bars) and step (small); "
          "triangles mark events.",
    "white_line": "White-line height (normalised) per segment and step.",
    "xanes_map": "Normalised XANES of every step over the edge region (colour: normalised "
                 "mu); lines: condition boundaries.",
    "xanes_difference": "Difference XANES: every step minus the reference (starting) state, as "
                        "an image with the condition boundaries (left) and per segment (right).",
    "fit_parameters": "Shell-fit parameters per step: sigma^2, R, dE0 and the R-factor (good fits "
                      "filled, poor and failed hollow grey, outliers ringed; lines: segment means "
                      "of the good fits).",
    "fractions": "Component fractions per step (points, error bars; hollow grey: LCF not ok) and "
                 "segment (lines, bands); triangles and names mark events.",
    "pca": "PCA of the sampled steps: eigenvalues and Malinowski's IND (the number of components "
           "chosen ringed), and the abstract components.",
    "mcr": "MCR-ALS: resolved spectra and concentration profiles (shaded: feasible bands, the "
           "rotational ambiguity, when computed).",
    "wavelet": "Cauchy wavelet transform (modulus over k and R) of the mean chi(k) of segments, "
               "with each shell's lobe marked: light neighbours (O, N) sit at lower k than metal "
               "ones.",
}
#: Figures shown side by side in the report (CN next to its parameter trends).
_PAIRS = (("cn", "fit_parameters"), ("fractions", "lcf_fit"))
#: Text cells longer than this many characters wrap in a fixed-width block instead of
#: stretching the row (keeps e.g. the events' evidence readable in a narrow column).
_LONG_TEXT = 40


def _figure_png(fig, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _is_figure(obj) -> bool:
    """A matplotlib Figure (without importing matplotlib for a report of image files)."""
    if "matplotlib.figure" not in sys.modules:
        return False
    return isinstance(obj, sys.modules["matplotlib.figure"].Figure)


def _image_tag(name: str, figure: Any, dpi: int, captions: Mapping[str, str] | None = None) -> str:
    if _is_figure(figure):
        data, mime = _figure_png(figure, dpi), "image/png"
    else:
        path = Path(figure)
        if not path.is_file():
            raise DataError(f"report figure '{name}': file {path} not found "
                            "(accepted: a matplotlib Figure or a .png / .svg file)")
        suffix = path.suffix.lower()
        mimes = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
        if suffix not in mimes:
            raise DataError(f"report figure '{name}': unsupported file type '{suffix}' "
                            "(accepted: .png, .svg, .jpg)")
        data, mime = path.read_bytes(), mimes[suffix]
    b64 = base64.b64encode(data).decode("ascii")
    alt = html.escape(name)
    caption = html.escape((captions or {}).get(name) or _CAPTIONS.get(name, name))
    css = ' class="wide"' if name in ("summary", "wavelet", "xanes_difference") else ""
    return (f'<figure{css}><img alt="{alt}" src="data:{mime};base64,{b64}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _cell(value) -> str:
    """One table cell as HTML: numbers compact but never losing the integer part of an
    energy (``11564.13``, not ``1.156e+04``), long text wrapped."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _float_cell(float(value))
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    text = html.escape(str(value))
    return f'<span class="long">{text}</span>' if len(text) > _LONG_TEXT else text


def _float_cell(value: float) -> str:
    """A float cell: 4 significant digits, more from 1000 up so the integer part of
    an energy stays (``11564.13``); NaN empty, infinities spelt out."""
    if value != value:
        return ""
    magnitude = abs(value)
    if magnitude < 1000:
        return f"{value:.4g}"
    if magnitude == math.inf:
        return str(value)
    return f"{value:.{min(int(math.log10(magnitude)) + 3, 12)}g}"


def _column_cells(column: pd.Series) -> list[str]:
    """The cells of one column: per dtype, not per value (a 1,000-step table has 40,000)."""
    kind = getattr(column.dtype, "kind", "O")
    values = column.tolist()
    if kind == "f" and isinstance(column.dtype, np.dtype):
        return [_float_cell(v) for v in values]
    if kind in "biu" and isinstance(column.dtype, np.dtype):
        return [str(v) for v in values]
    return [_cell(v) for v in values]


def _table(df: pd.DataFrame | None, name: str, max_rows: int) -> str:
    if df is None:
        return f"<p>No {html.escape(name)} table.</p>"
    if len(df) == 0:
        return f"<p>No {html.escape(name)}.</p>"
    shown = df if len(df) <= max_rows else df.head(max_rows)
    note = "" if len(df) <= max_rows else (f"<p>First {max_rows} of {len(df)} rows "
                                            "(the full table is in the run folder).</p>")
    # Cells are formatted (and escaped) here so long text can wrap in a block of its own;
    # the markup is what pandas' ``to_html(index=False, escape=False, border=0)`` writes,
    # filled from the per-column cells.
    columns = [_column_cells(shown.iloc[:, j]) for j in range(shown.shape[1])]
    lines = [f'<table class="dataframe table-{name}">', "  <thead>",
             '    <tr style="text-align: right;">']
    lines += [f"      <th>{html.escape(str(c))}</th>" for c in shown.columns]
    lines += ["    </tr>", "  </thead>", "  <tbody>"]
    for row in zip(*columns):
        lines.append("    <tr>")
        lines += [f"      <td>{v}</td>" for v in row]
        lines.append("    </tr>")
    lines += ["  </tbody>", "</table>"]
    return f'{note}<div class="scroll">' + "\n".join(lines) + "</div>"


#: Event columns a reader needs first; the rest (z scores, XANES deltas) follow.
_EVENT_KEY_COLUMNS = ("event", "step", "condition_before", "condition_after", "confidence",
                      "evidence")


def _key_columns_first(df: pd.DataFrame | None, columns) -> pd.DataFrame | None:
    """``df`` with those of ``columns`` it has first, the rest after in their order."""
    if df is None:
        return None
    key = [c for c in columns if c in df.columns]
    return df[key + [c for c in df.columns if c not in key]]


#: Columns of the per-event evidence table: which channels, their change and z.
_EVIDENCE_COLUMNS = ("event", "step", "condition_before", "condition_after", "strongest", "z",
                     "p_value", "z_cn", "z_frac_metal", "z_wl", "z_edge", "xanes", "confidence",
                     "evidence")
#: Columns of the states-per-segment table.
_STATE_COLUMNS = ("segment", "condition", "first_step", "last_step", "n_steps", "n_ok", "state",
                  "xanes_state", "metal_evidence", "size_note")
#: Step columns shown first (the rest follow in their order).
_STEP_KEY_COLUMNS = ("step", "file", "ok", "reason", "fit_quality", "fit_message", "state",
                     "xanes_state", "outlier", "outlier_reason", "segment")


def _pick(df: pd.DataFrame | None, columns) -> pd.DataFrame | None:
    if df is None:
        return None
    return df[[c for c in columns if c in df.columns]]


def _fit_counts(steps: pd.DataFrame | None) -> str:
    if steps is None or "fit_quality" not in steps.columns:
        return ""
    return (f"<p>Shell fits: {fit_counts(steps)}. Every step is listed, whatever its fit; poor and failed "
            "fits are drawn hollow grey in the figures.</p>")


def _record_text(value) -> str:
    """A value of the components record as one line of text."""
    if isinstance(value, dict):
        name = value.get("name")
        rest = ", ".join(f"{k} {v}" for k, v in value.items() if k != "name" and not isinstance(v, dict))
        return f"{name}: {rest}" if name is not None else rest
    if isinstance(value, (list, tuple)):
        return "; ".join(_record_text(v) for v in value)
    if isinstance(value, float):
        return _float_cell(value)
    return str(value)


def _components_section(record: Mapping[str, Any] | None) -> list[str]:
    if not record:
        return []
    table = pd.DataFrame({"item": list(record), "value": [_record_text(v) for v in record.values()]})
    return ["<h2>Component analysis</h2>", _table(table, "components", len(table) + 1)]


def _figures_section(figures: Mapping[str, Any], dpi: int, captions) -> list[str]:
    figures = dict(figures)
    parts = ["<h2>Figures</h2>"]
    if "summary" in figures:
        parts.append(_image_tag("summary", figures.pop("summary"), dpi, captions))
    for pair in _PAIRS:
        if all(name in figures for name in pair):
            parts.append('<div class="grid">')
            parts += [_image_tag(name, figures.pop(name), dpi, captions) for name in pair]
            parts.append("</div>")
    wide = [name for name in ("xanes_difference", "wavelet") if name in figures]
    if figures:
        parts.append('<div class="grid">')
        parts += [_image_tag(name, fig, dpi, captions) for name, fig in figures.items()
                  if name not in wide]
        parts.append("</div>")
    parts += [_image_tag(name, figures[name], dpi, captions) for name in wide]
    return parts


def write_report(path, *, title: str, summary_text: str | Callable[[], str] = "",
                 steps: pd.DataFrame | None = None, segments: pd.DataFrame | None = None,
                 events: pd.DataFrame | None = None,
                 figures: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
                 settings: Mapping[str, Any] | None = None,
                 reversibility: pd.DataFrame | None = None, components: Mapping[str, Any] | None = None,
                 tables: Mapping[str, pd.DataFrame] | None = None,
                 captions: Mapping[str, str] | None = None, max_rows: int = 2000,
                 dpi: int = 110) -> Path:
    """Write a self-contained ``report.html``.

    Sections: summary; events and, per event, its evidence (the strongest channel,
    the combined z and each channel's z); figures; states per segment;
    reversibility; the component analysis; further ``tables``; the full segments
    and steps tables (every step, failed or not, with its fit quality first);
    settings.

    Parameters
    ----------
    path : str or Path
        The HTML file, or a run folder (then ``<folder>/report.html``).
    title : str
    summary_text : str or callable
        Plain text (e.g. ``Tracking.report()``), shown preformatted.
    steps, segments, events, reversibility : DataFrame, optional
        Tables shown as HTML (``steps`` truncated to ``max_rows`` rows).
    figures : dict name -> Figure or image path
        Embedded as base64 (Figures rendered to PNG at ``dpi``; .png, .svg,
        .jpg files embedded as they are).
        ``figures`` and ``summary_text`` may be callables returning them: they are
        called after every table is built, figures first (a run draws its figures,
        and notes what failed, meanwhile).
    settings : dict
        Every setting of the run, shown as indented JSON.
    components : dict, optional
        The ``components`` record of ``summary.json`` (method, references, PCA
        estimate, MCR lack of fit).
    tables : dict title -> DataFrame, optional
        Further tables, one section each (e.g. the wavelet lobes).
    captions : dict name -> str, optional
        Captions replacing the standard ones of those figures.
    max_rows : int
    dpi : int

    Returns
    -------
    Path
        The file written.  It is written atomically
        (:func:`operando._util.files.write_text_atomic`), so a reader never
        sees a half-written report.
    """
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / "report.html"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
        "<h2>Summary</h2>",
    ]
    summary_at = len(parts)                    # the summary text, filled in last
    parts += [
        # Events right after the summary: they are the answer most readers open the report for.
        "<h2>Events</h2>", _table(_key_columns_first(events, _EVENT_KEY_COLUMNS), "events", max_rows),
    ]
    if events is not None and len(events):
        parts += ["<h3>Evidence per event</h3>",
                  "<p>The combined z is the strongest channel's after a Bonferroni correction over "
                  "the channels compared; z_cn, z_frac_metal, z_wl and z_edge are each channel's "
                  "own (CN of the metal shell, metallic fraction, white line, edge).</p>",
                  _table(_pick(events, _EVIDENCE_COLUMNS), "evidence", max_rows)]
    figures_at = len(parts)                    # the figures, filled in last
    if segments is not None:
        parts += ["<h2>States per segment</h2>", _table(_pick(segments, _STATE_COLUMNS), "states",
                                                         max_rows)]
    if reversibility is not None:
        parts += ["<h2>Reversibility</h2>", _table(reversibility, "reversibility", max_rows)]
    parts += _components_section(components)
    for name, table in (tables or {}).items():
        parts += [f"<h2>{html.escape(name.capitalize())}</h2>",
                  _table(table, name.replace(" ", "_"), max_rows)]
    parts += ["<h2>Segments</h2>", _table(segments, "segments", max_rows),
              "<h2>Steps</h2>", _fit_counts(steps),
              _table(_key_columns_first(steps, _STEP_KEY_COLUMNS), "steps", max_rows),
              "<h2>Settings</h2>",
              "<details><summary>Every setting of the run (JSON)</summary>",
              f"<pre>{html.escape(json.dumps(to_json_ready(dict(settings or {})), indent=2), quote=False)}</pre>",
              "</details>",
              "</body></html>"]
    figures = figures() if callable(figures) else figures
    summary_text = summary_text() if callable(summary_text) else summary_text
    if figures:
        parts[figures_at:figures_at] = _figures_section(figures, dpi, captions)
    parts.insert(summary_at,
                 f'<pre class="wrap">{html.escape(summary_text or "(none)", quote=False)}</pre>')
    write_text_atomic(path, "\n".join(parts))
    log.info("report written to %s", path)
    return path
