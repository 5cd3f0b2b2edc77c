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
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .errors import DataError

log = logging.getLogger(__name__)

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; }
.scroll { max-height: 480px; overflow: auto; }
"""


def _figure_png(fig: Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _image_tag(name: str, figure: Any, dpi: int) -> str:
    if isinstance(figure, Figure):
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
    return (f'<figure><img alt="{alt}" src="data:{mime};base64,{b64}">'
            f"<figcaption>{alt}</figcaption></figure>")


def _table(df: pd.DataFrame | None, name: str, max_rows: int) -> str:
    if df is None:
        return f"<p>No {html.escape(name)} table.</p>"
    if len(df) == 0:
        return f"<p>No {html.escape(name)}.</p>"
    shown = df if len(df) <= max_rows else df.head(max_rows)
    note = "" if len(df) <= max_rows else (f"<p>First {max_rows} of {len(df)} rows "
                                            "(the full table is in the run folder).</p>")
    table = shown.to_html(index=False, float_format=lambda x: f"{x:.4g}", na_rep="",
                          escape=True, border=0, classes=f"table-{name}")
    return f'{note}<div class="scroll">{table}</div>'


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    return repr(obj)


def write_report(path, *, title: str, summary_text: str = "", steps: pd.DataFrame | None = None,
                 segments: pd.DataFrame | None = None, events: pd.DataFrame | None = None,
                 figures: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
                 reversibility: pd.DataFrame | None = None, max_rows: int = 2000,
                 dpi: int = 110) -> Path:
    """Write a self-contained ``report.html``.

    Parameters
    ----------
    path : str or Path
        The HTML file, or a run folder (then ``<folder>/report.html``).
    title : str
    summary_text : str
        Plain text (e.g. ``Tracking.summary()``), shown preformatted.
    steps, segments, events, reversibility : DataFrame, optional
        Tables shown as HTML (``steps`` truncated to ``max_rows`` rows).
    figures : dict name -> Figure or image path
        Embedded as base64 (Figures rendered to PNG at ``dpi``; .png, .svg,
        .jpg files embedded as they are).
    settings : dict
        Every setting of the run, shown as indented JSON.
    max_rows : int
    dpi : int

    Returns
    -------
    Path
        The file written.  It is written to a temporary name in the same
        folder and renamed, so a reader never sees a half-written report.
    """
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
        "<h2>Summary</h2>", f"<pre>{html.escape(summary_text or '(none)', quote=False)}</pre>",
    ]
    if figures:
        parts.append("<h2>Figures</h2>")
        parts += [_image_tag(name, fig, dpi) for name, fig in figures.items()]
    parts += ["<h2>Events</h2>", _table(events, "events", max_rows)]
    if reversibility is not None:
        parts += ["<h2>Reversibility</h2>", _table(reversibility, "reversibility", max_rows)]
    parts += ["<h2>Segments</h2>", _table(segments, "segments", max_rows),
              "<h2>Steps</h2>", _table(steps, "steps", max_rows),
              "<h2>Settings</h2>",
              f"<pre>{html.escape(json.dumps(dict(settings or {}), indent=2, default=_json_default), quote=False)}</pre>",
              "</body></html>"]
    text = "\n".join(parts)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("report written to %s", path)
    return path
