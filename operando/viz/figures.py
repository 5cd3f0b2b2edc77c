"""Figures of a tracked series: CN and white line versus condition, XANES map,
chi(R) waterfall, fit overlays and a paper-style summary.

Every function returns a :class:`matplotlib.figure.Figure` (or draws into a
given ``ax`` and returns its figure) and never shows it; :func:`save_figure`
writes PNG / SVG atomically, :func:`write_png` the same pixels as ``savefig``
at a fraction of its encoding cost.  Figures are built with the object-oriented
API (no pyplot state), so they are safe in scripts, threads and the Agg backend.

The condition axis follows the experiment: when the only varying condition is
the potential, the x axis is the potential in V vs RHE (text labels such as
``OCP`` sit on extra ticks to the right); otherwise it is the step number with
shaded bands labelled by condition (gas sequences keep their order, a gas that
returns gets the same colour).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..errors import DataError

log = logging.getLogger(__name__)

STATE_COLORS = {"isolated": "#1f77b4", "cluster": "#ff7f0e", "particle": "#d62728", "unknown": "#7f7f7f"}
EVENT_MARKERS = {"aggregation": "^", "growth": "^", "redispersion": "v", "partial_redispersion": "v"}
_BAND_COLORS = ["#dbe9f6", "#fde2c8", "#d9f0d3", "#eadcf2", "#f8d7da", "#fff3bf", "#d7f2f0", "#e9e9e9"]


# --------------------------------------------------------------------------- saving
def save_figure(fig: Figure, path, *, dpi: int = 150, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write a figure atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    fig : Figure
    path : str or Path
        Target file.  With a suffix (``.png``, ``.svg``, ``.pdf``) that one
        format is written; without a suffix one file per entry of ``formats``.
    dpi : int
        Resolution of raster formats, dots per inch.
    formats : sequence of str
        Formats written when ``path`` has no suffix.

    Returns
    -------
    list of Path
        The files written.
    """
    path = Path(path)
    targets = [path] if path.suffix else [path.with_suffix(f".{f.lstrip('.')}") for f in formats]
    written = []
    for target in targets:
        fmt = target.suffix.lstrip(".").lower()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fig.savefig(fh, format=fmt, dpi=dpi, bbox_inches="tight")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written


def write_png(fig: Figure, file, *, dpi: float | None = None, compress_level: int = 6) -> None:
    """Draw ``fig`` with Agg and write it as PNG: the pixels ``fig.savefig(file,
    format="png", dpi=dpi)`` writes, encoded at a fraction of the cost.

    Matplotlib hands the image to Pillow, whose PNG encoder tries every row
    filter on every row (about 30 ms for 1320 x 960 pixels even without
    compression); here rows are not filtered, an opaque figure is written as RGB
    (no alpha channel), and zlib does the rest.  Plot images (flat colours, thin
    lines) come out ~15% smaller than Pillow's at the same level.

    Parameters
    ----------
    fig : Figure
    file : str, Path or binary file object
        Written as is (no temporary file: see :func:`save_figure` for atomic writes).
    dpi : float, optional
        Resolution, dots per inch (default: the figure's).
    compress_level : int
        zlib level, 0 (none) to 9; 1 is ~2x faster than 6 for files ~20% larger.
    """
    import struct
    import zlib

    from matplotlib import __version__ as mpl_version
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    saved_dpi = fig.dpi
    if dpi is not None and dpi != saved_dpi:
        fig.dpi = dpi
    try:
        if fig.get_layout_engine() is not None:
            fig.draw_without_rendering()  # as savefig does: the layout is run twice
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        dpi = fig.dpi
    finally:
        fig.dpi = saved_dpi
    height, width = rgba.shape[:2]
    opaque = int(rgba[..., 3].min()) == 255
    channels = 3 if opaque else 4
    rows = np.empty((height, 1 + width * channels), dtype=np.uint8)
    rows[:, 0] = 0  # filter type of each row: none
    for c in range(channels):  # channel by channel: ~7x faster than one strided copy
        rows[:, 1 + c::channels] = rgba[..., c]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    per_metre = round(dpi / 0.0254)
    png = b"".join([
        b"\x89PNG\r\n\x1a\n",
        chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2 if opaque else 6, 0, 0, 0)),
        chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
        chunk(b"tEXt", f"Software\0Matplotlib version{mpl_version}, https://matplotlib.org/".encode()),
        chunk(b"IDAT", zlib.compress(rows, compress_level)),
        chunk(b"IEND", b""),
    ])
    if hasattr(file, "write"):
        file.write(png)
    else:
        with open(file, "wb") as fh:
            fh.write(png)


# --------------------------------------------------------------------------- condition axis
# Fixed margins, in inches, instead of constrained layout: that engine measures every tick
# label of every axes on each draw and was most of the time spent on a run's figures.  The
# margins hold tick labels plus axis label at 10 pt (left: up to 6 characters such as
# "8984.5"); the parts that vary (legend, condition strip, colour bar) are measured or
# added where they are made.
_MARGIN = {"left": 0.85, "right": 0.2, "bottom": 0.55, "top": 0.15}
_GAP = 0.08  # inches between the axes and a legend beside it


class _InViewLocator(MaxNLocator):
    """:class:`MaxNLocator` without the ticks outside the view limits.

    Matplotlib makes a tick object (three lines, two texts; ~0.3 ms) for every
    location the locator returns, also the one or two beyond each end that are
    never drawn (a third of those made for a run's figures).  The ticks drawn
    and their labels are the same: the formatter works from the ticks in view.
    """

    def __call__(self):
        locs = np.asarray(super().__call__())
        lo, hi = sorted(self.axis.get_view_interval())
        tol = 1e-9 * (hi - lo)
        inside = locs[(locs >= lo - tol) & (locs <= hi + tol)]
        return inside if inside.size >= 2 else locs


def _auto_locator(**kwargs) -> _InViewLocator:
    """The locator of matplotlib's default (AutoLocator), in-view ticks only."""
    return _InViewLocator(**({"nbins": "auto", "steps": [1, 2, 2.5, 5, 10]} | kwargs))


def _add_axes(fig, rect=None):
    """A new axes (``rect`` in figure fractions, or one subplot filling the figure)
    with in-view tick locators."""
    ax = fig.add_subplot(1, 1, 1) if rect is None else fig.add_axes(rect)
    ax.xaxis.set_major_locator(_auto_locator())
    ax.yaxis.set_major_locator(_auto_locator())
    return ax


def _new_axes(ax, figsize=(6.4, 4.2)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize)
    return fig, _add_axes(fig)


def _renderer(fig):
    """The Agg renderer text is measured with (made once per figure and size)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def _place_axes(fig, ax, left, bottom, right, top) -> None:
    """Put ``ax`` at fixed margins (inches) from the figure edges."""
    w, h = fig.get_size_inches()
    ax.set_position([left / w, bottom / h, max(w - left - right, 0.5) / w, max(h - bottom - top, 0.5) / h])


def _extra_margins(ax, renderer) -> tuple[float, float]:
    """Room (inches) the condition strip and a legend outside the axes need above and to
    the right of ``ax`` at its current position: only these artists are measured."""
    fig = ax.figure
    frame = ax.get_window_extent(renderer)
    top = right = 0.0
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == "condition-label"]
    legend = ax.get_legend()
    if legend is not None:
        boxes.append(legend.get_window_extent(renderer))
    for box in boxes:
        top = max(top, box.y1 - frame.y1)
        right = max(right, box.x1 - frame.x1)
    return top / fig.dpi, right / fig.dpi


def _fit_single(fig, ax) -> None:
    """Margins of a one-panel figure: the fixed ones plus what the condition strip and a
    legend on the right take.  Measured twice: a rotated label of the last band hangs
    further past the frame once the axes are narrower."""
    m = _MARGIN
    right, top = m["right"], m["top"]
    renderer = _renderer(fig)
    for _ in range(2):
        _place_axes(fig, ax, m["left"], m["bottom"], right, top)
        strip, extra = _extra_margins(ax, renderer)
        right, top = max(right, extra + _GAP), max(top, strip + _GAP)
    _place_axes(fig, ax, m["left"], m["bottom"], right, top)


def _varying_conditions(tracking) -> list[str]:
    seg = tracking.segments
    out = []
    for c in tracking.condition_columns:
        if c in seg.columns and seg[c].astype(str).nunique() > 1:
            out.append(c)
    return out


class _ConditionAxis:
    """Where each step and segment sits on the x axis, and how to label it."""

    def __init__(self, tracking):
        self.seg = tracking.segments
        self.steps = tracking.steps
        varying = _varying_conditions(tracking)
        self.mode = "potential" if varying == ["potential_V"] else "steps"
        if self.mode == "potential":
            numeric = pd.to_numeric(self.seg["potential_V"], errors="coerce").to_numpy(dtype=float)
            finite = numeric[np.isfinite(numeric)]
            if finite.size == 0:
                self.mode = "steps"
            else:
                span = max(float(np.ptp(finite)), 0.2)
                extra = {}
                x = numeric.copy()
                for i, value in enumerate(numeric):
                    if not np.isfinite(value):
                        label = str(self.seg["potential_V"].iloc[i]).strip()
                        if label not in extra:
                            extra[label] = finite.max() + 0.15 * span * (len(extra) + 1)
                        x[i] = extra[label]
                self.seg_x = x
                self.extra_ticks = extra
                seg_of_step = self.steps["segment"].to_numpy()
                self.step_x = x[seg_of_step]
                self.xlabel = "Potential (V vs RHE)"
        if self.mode == "steps":
            self.seg_x = ((self.seg["first_step"] + self.seg["last_step"]) / 2).to_numpy(dtype=float)
            self.step_x = self.steps["step"].to_numpy(dtype=float)
            self.extra_ticks = {}
            self.xlabel = "Step"

    def path(self, y):
        """``y`` with NaN at labelled potentials (OCP), so the line joining the
        segments in measurement order is not drawn across the axis to them."""
        y = np.asarray(y, dtype=float).copy()
        y[np.isin(self.seg_x, list(self.extra_ticks.values()))] = np.nan
        return y

    def decorate(self, ax, label_bands: bool = True):
        """Shaded condition bands (steps mode) or extra potential ticks.

        Band labels go in a strip just above the axes (not inside, where they
        would sit on the data and on the event labels); they are rotated when
        the bands are too narrow for them side by side.
        """
        if self.mode == "potential":
            if self.extra_ticks:
                numeric = self.seg_x[~np.isin(self.seg_x, list(self.extra_ticks.values()))]
                lo, hi = float(np.min(numeric)), float(np.max(numeric))
                ticks = [t for t in MaxNLocator(nbins=6).tick_values(lo, hi) if lo - 1e-9 <= t <= hi + 1e-9]
                ax.set_xticks(ticks + list(self.extra_ticks.values()),
                              [f"{t:g}" for t in ticks] + list(self.extra_ticks))
                pad = 0.06 * (max(self.extra_ticks.values()) - lo)
                ax.set_xlim(lo - pad, max(self.extra_ticks.values()) + pad)
            ax.set_xlabel(self.xlabel)
            return
        ax.xaxis.set_major_locator(_InViewLocator(integer=True))  # steps are whole numbers
        colors = {}
        extent = self.seg.groupby("block", sort=False).agg(first=("first_step", "min"),
                                                           last=("last_step", "max"))
        bands, faces = [], []
        for row in self.seg.drop_duplicates("block").itertuples(index=False):
            first, last = extent.loc[row.block, "first"], extent.loc[row.block, "last"]
            faces.append(colors.setdefault(row.condition, _BAND_COLORS[len(colors) % len(_BAND_COLORS)]))
            bands.append((first, last, str(row.condition)))
        # One collection for all bands (full height, like axvspan), not one patch each.
        _add_rects(ax, [(first - 0.5, last + 0.5, 0.0, 1.0) for first, last, _ in bands], faces,
                   alpha=0.8, transform=ax.get_xaxis_transform(), zorder=0, autolim=False)
        if label_bands and bands:
            # Rough fit test (label ~0.6 em per character at 8 pt against the band width on
            # a ~5 inch axis): rotate all labels when any would spill into its neighbour.
            n_steps = max(float(self.seg["last_step"].max() - self.seg["first_step"].min() + 1), 1.0)
            tight = any(len(text) * 8 * 0.6 > (last - first + 1) / n_steps * 5 * 72
                        for first, last, text in bands)
            for first, last, text in bands:
                label = ax.annotate(
                    text, ((first + last) / 2, 1.0), xycoords=ax.get_xaxis_transform(),
                    xytext=(0, 3), textcoords="offset points", fontsize=8, annotation_clip=False,
                    ha="left" if tight else "center", va="bottom", rotation=35 if tight else 0,
                    rotation_mode="anchor")
                label.set_gid("condition-label")
        ax.set_xlabel(self.xlabel)


def _add_rects(ax, rects, colors, *, transform=None, autolim=True, **kwargs):
    """Rectangles ``(x0, x1, y0, y1)`` as one PolyCollection (one artist, however many)."""
    verts = [[(x0, y0), (x0, y1), (x1, y1), (x1, y0)] for x0, x1, y0, y1 in rects]
    coll = PolyCollection(verts, facecolors=colors, linewidths=0, **kwargs)
    if transform is not None:
        coll.set_transform(transform)
    ax.add_collection(coll, autolim=autolim)
    if autolim:
        ax.autoscale_view()
    return coll


def _label_events(ax, events, *, fontsize: float = 7, color: str = "#9467bd") -> None:
    """Event names in rows just inside the top of the axes, with headroom for them.

    ``events``: (x in data units, name).  Names are placed left-aligned at their x
    on the first row where they do not overlap an earlier name (measured with the
    renderer), and the y limit is raised so no data point reaches the rows.
    """
    if not events:
        return
    fig = ax.figure
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()  # a caller's layout engine sets the axes size on draw
    renderer = _renderer(fig)
    ax.get_xlim()  # settle autoscaling so the names' x positions are final
    frame = ax.get_window_extent(renderer)
    rows: list[list[tuple[float, float]]] = []
    line = fontsize * 1.35
    texts = []
    for x, name in sorted(events, key=lambda e: e[0]):
        # Only the names are measured (no draw of the figure).
        text = ax.annotate(name, (x, 1.0), xycoords=ax.get_xaxis_transform(), xytext=(2, -2),
                           textcoords="offset points", ha="left", va="top", fontsize=fontsize,
                           color=color, annotation_clip=False, zorder=7,
                           bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.7))
        box = text.get_window_extent(renderer)
        if box.x1 > frame.x1:
            # Near the right edge: hang the name to the left of its line instead.
            text.set_horizontalalignment("right")
            text.xyann = (-2, -2)
            box = text.get_window_extent(renderer)
        span = (box.x0 - 4, box.x1 + 4)
        for level, taken in enumerate(rows):
            if all(span[1] <= a or span[0] >= b for a, b in taken):
                taken.append(span)
                break
        else:
            level = len(rows)
            rows.append([span])
        text.xyann = (text.xyann[0], -2 - level * line)
        texts.append(text)
    # Headroom: the label rows take this fraction of the axes height (plus a margin for
    # marker size); stretch the y range so the data stay below them.
    height_pt = frame.height * 72 / fig.dpi
    frac = min((len(rows) * line + 6) / max(height_pt, 1.0), 0.5)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, lo + (hi - lo) / (1 - frac))


# --------------------------------------------------------------------------- CN and white line
def plot_cn(tracking, *, ax=None, show_steps: bool = True, show_events: bool = True) -> Figure:
    """Coordination numbers of both shells versus condition, with events.

    Segment means (error-weighted, with their errors) are large symbols, the
    metal shell coloured by state; single steps are small translucent points.
    Events are marked with triangles (up: aggregation/growth, down:
    (partial) redispersion) and named.

    Parameters
    ----------
    tracking : Tracking
    ax : matplotlib Axes, optional
    show_steps, show_events : bool

    Returns
    -------
    Figure
    """
    own = ax is None
    fig, ax = _new_axes(ax)
    labels = _draw_cn(ax, tracking, show_steps=show_steps, show_events=show_events)
    if own:
        _fit_single(fig, ax)
    _label_events(ax, labels)
    return fig


def _draw_cn(ax, tracking, *, show_steps: bool = True, show_events: bool = True) -> list:
    """The CN panel without its event names; returns the names, (x, text), to place
    once the axes have their final size."""
    cx = _ConditionAxis(tracking)
    seg, st = tracking.segments, tracking.steps
    shells = [(tracking.metal_shell, "o", "k")]
    if tracking.ligand_shell:
        shells.append((tracking.ligand_shell, "s", "#2ca02c"))
    ok = st["state"].to_numpy() != "unknown"
    for shell, marker, color in shells:
        y = pd.to_numeric(st[f"cn_{shell}"], errors="coerce").to_numpy(dtype=float)
        if show_steps:
            ax.plot(cx.step_x[ok], y[ok], marker, ms=3, color=color, alpha=0.25, ls="none", zorder=2)
        mean = seg[f"cn_{shell}"].to_numpy(dtype=float)
        err = seg[f"cn_{shell}_err"].to_numpy(dtype=float)
        if cx.mode == "potential":
            ax.plot(cx.seg_x, cx.path(mean), "-", color=color, lw=0.8, alpha=0.5, zorder=3)
            ax.errorbar(cx.seg_x, mean, yerr=err, fmt="none", ecolor=color, capsize=3, zorder=4)
        else:
            x0 = seg["first_step"].to_numpy(dtype=float) - 0.4
            x1 = seg["last_step"].to_numpy(dtype=float) + 0.4
            ax.hlines(mean, x0, x1, color=color, lw=1.5, zorder=4)
            ok_err = np.isfinite(mean) & np.isfinite(err)
            _add_rects(ax, list(zip(x0[ok_err], x1[ok_err], (mean - err)[ok_err], (mean + err)[ok_err])),
                       color, alpha=0.15, zorder=3)
        faces = ([STATE_COLORS.get(s, "#7f7f7f") for s in seg["state"]] if shell == tracking.metal_shell
                 else color)
        ax.scatter(cx.seg_x, mean, marker=marker, s=45, c=faces, edgecolors=color, zorder=5,
                   label=f"CN({shell})")
    labels = []
    if show_events and len(tracking.events):
        metal = seg.set_index("segment")[f"cn_{tracking.metal_shell}"]
        pos = dict(zip(seg["segment"], cx.seg_x))
        xs, markers = [], {}
        for ev in tracking.events.itertuples(index=False):
            x = float(ev.step) - 0.5 if cx.mode == "steps" else pos[ev.segment]
            xs.append(x)
            markers.setdefault(EVENT_MARKERS.get(ev.event, "*"), []).append((x, metal[ev.segment]))
            labels.append((x, ev.event.replace("_", " ")))
        # One artist per kind (event lines, each marker shape), not one per event.
        if cx.mode == "steps":
            _vlines(ax, xs, color="0.3", ls="--", lw=0.8, zorder=1)
        else:
            # Ties the name at the top to its marker on the data.
            _vlines(ax, xs, color="#9467bd", ls=":", lw=0.7, alpha=0.6, zorder=1)
        for marker, xy in markers.items():
            ax.plot(*np.array(xy, dtype=float).T, marker, ms=11, mfc="none", mec="#9467bd", mew=1.5,
                    zorder=6, ls="none")
    for state, color in STATE_COLORS.items():
        if state in set(seg["state"]):
            ax.scatter([], [], s=30, c=color, label=state)
    cx.decorate(ax)
    ax.set_ylabel("Coordination number")
    ax.axhline(0, color="0.6", lw=0.6, zorder=1)
    # Outside, to the right: inside it would cover data or the event names wherever it goes.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              framealpha=0.8)
    return labels


def plot_white_line(tracking, *, ax=None, column: str = "wl_height") -> Figure:
    """White-line height (normalised) versus condition.

    Parameters
    ----------
    tracking : Tracking
    ax : Axes, optional
    column : str
        Step column to plot (``wl_height``, ``wl_area`` or ``edge_position``).

    Returns
    -------
    Figure
    """
    own = ax is None
    fig, ax = _new_axes(ax)
    _draw_white_line(ax, tracking, column)
    if own:
        _fit_single(fig, ax)
    return fig


def _draw_white_line(ax, tracking, column: str = "wl_height") -> None:
    st, seg = tracking.steps, tracking.segments
    if column not in st.columns:
        raise DataError(f"steps table has no '{column}' column to plot")
    cx = _ConditionAxis(tracking)
    y = pd.to_numeric(st[column], errors="coerce").to_numpy(dtype=float)
    ax.plot(cx.step_x, y, "o", ms=3, color="#1f77b4", alpha=0.3, zorder=2)
    seg_of_step = st["segment"].to_numpy()
    means = np.array([np.nanmean(y[seg_of_step == g]) if np.isfinite(y[seg_of_step == g]).any() else np.nan
                      for g in seg["segment"]])
    if cx.mode == "potential":
        ax.plot(cx.seg_x, cx.path(means), "-", color="#1f77b4", lw=0.8, alpha=0.6)
    else:
        ax.hlines(means, seg["first_step"].to_numpy(dtype=float) - 0.4,
                  seg["last_step"].to_numpy(dtype=float) + 0.4, color="#1f77b4", lw=1.5, zorder=4)
    ax.scatter(cx.seg_x, means, s=45, c=[STATE_COLORS.get(s, "#7f7f7f") for s in seg["state"]],
               edgecolors="#1f77b4", zorder=5)
    cx.decorate(ax)
    names = {"wl_height": "White-line height (norm.)", "wl_area": "White-line area (eV)",
             "edge_position": "Edge position (eV)"}
    ax.set_ylabel(names.get(column, column))


# --------------------------------------------------------------------------- spectra
def plot_xanes_map(energy, norm, *, steps=None, tracking=None, ax=None, erange=None,
                   cmap: str = "viridis", colorbar: bool = True) -> Figure:
    """Normalised XANES of every step as an image (energy x step).

    Parameters
    ----------
    energy : (n_e,) array
        Energy in eV.
    norm : (n, n_e) array
        Normalised mu, one row per step (NaN rows, failed steps, show blank).
    steps : (n,) array, optional
        Step numbers of the rows (default 0..n-1).
    tracking : Tracking, optional
        Draws segment boundaries and condition labels on the right.
    ax : Axes, optional
    erange : (float, float), optional
        Energy window in eV.
    cmap : str
    colorbar : bool

    Returns
    -------
    Figure
    """
    energy = np.asarray(energy, dtype=float)
    norm = np.atleast_2d(np.asarray(norm, dtype=float))
    if norm.shape[1] != energy.size:
        raise DataError(f"norm has {norm.shape[1]} points per row but energy has {energy.size}")
    steps = np.arange(norm.shape[0]) if steps is None else np.asarray(steps)
    if erange is not None:
        keep = (energy >= erange[0]) & (energy <= erange[1])
        energy, norm = energy[keep], norm[:, keep]
    own = ax is None
    fig, ax = _new_axes(ax)
    if own:
        # Right margin: tick labels and label of the colour bar.
        _place_axes(fig, ax, _MARGIN["left"], _MARGIN["bottom"], 0.75 if colorbar else _MARGIN["right"],
                    _MARGIN["top"])
    finite_all = bool(np.isfinite(norm).all())
    finite = norm if finite_all else norm[np.isfinite(norm)]
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    # An image on the (non-uniform) energy grid, cells centred on the points as
    # pcolormesh(shading="nearest") draws them, at a fraction of the cost of a
    # mesh of n_steps x n_energy quads.
    mesh = ax.pcolorfast(_cell_edges(energy), np.arange(norm.shape[0] + 1) - 0.5,
                         norm if finite_all else np.ma.masked_invalid(norm), cmap=cmap, vmin=0.0,
                         vmax=vmax)
    ax.set_xlabel("Energy (eV)")
    ax.set_ylabel("Step")
    if norm.shape[0] <= 12:
        ax.set_yticks(np.arange(norm.shape[0]), [str(s) for s in steps])
    if tracking is not None:
        seg = tracking.segments
        pos = {s: i for i, s in enumerate(steps)}
        changes = [pos[s] - 0.5 for s in seg.loc[seg["origin"] == "change point", "first_step"]
                   if s in pos]
        last_of = seg.groupby("block", sort=False)["last_step"].max()
        blocks = []
        for row in seg.drop_duplicates("block").itertuples(index=False):
            last = last_of[row.block]
            if row.first_step in pos and pos[row.first_step] > 0:
                blocks.append(pos[row.first_step] - 0.5)
            if row.first_step in pos and last in pos:
                ax.text(0.01, (pos[row.first_step] + pos[last]) / 2, row.condition, color="w",
                        transform=ax.get_yaxis_transform(), fontsize=7, va="center", ha="left")
        # Segment (dashed) and block boundaries across the map: one line each kind.
        _hlines(ax, changes, color="w", lw=0.8, ls="--")
        _hlines(ax, blocks, color="w", lw=0.8)
    if colorbar:
        # use_gridspec=False: take the bar's room from the axes where they are now (a
        # gridspec bar would move them back to the default subplot margins).  Plain-text
        # mu: a mathtext label costs ~40 ms the first time (the parser is built).
        fig.colorbar(mesh, ax=ax, label="Normalised μ", pad=0.02, use_gridspec=False)
    return fig


def _hlines(ax, ys, **kwargs):
    """Full-width horizontal lines at data ``ys`` as one Line2D (NaN-separated pieces):
    what one ``axhline`` each draws, for one artist."""
    _axlines(ax, ys, ax.get_yaxis_transform(), horizontal=True, **kwargs)


def _vlines(ax, xs, **kwargs):
    """Full-height vertical lines at data ``xs`` as one Line2D, as :func:`_hlines`."""
    _axlines(ax, xs, ax.get_xaxis_transform(), horizontal=False, **kwargs)


def _axlines(ax, values, transform, *, horizontal, **kwargs):
    values = np.asarray(values, dtype=float)
    if not values.size:
        return None
    at = np.repeat(values, 3)
    at[2::3] = np.nan
    span = np.tile([0.0, 1.0, np.nan], values.size)
    xy = (span, at) if horizontal else (at, span)
    line = Line2D(*xy, transform=transform, **kwargs)
    ax.add_line(line)
    return line


def _cell_edges(x):
    """Edges of cells centred on the points ``x`` (midpoints; half a step beyond the ends)."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return np.array([x[0] - 0.5, x[0] + 0.5]) if x.size else np.array([0.0, 1.0])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def plot_chir_waterfall(r, chir_mag, *, labels=None, colors=None, offset: float | None = None,
                        ax=None, rmax: float = 6.0, max_traces: int = 30) -> Figure:
    """|chi(R)| of many steps stacked with a vertical offset.

    Parameters
    ----------
    r : (n_r,) array
        Radial distance in Angstrom (not phase corrected).
    chir_mag : (n, n_r) array
        |chi(R)| per step, in Angstrom^-(kweight+1).
    labels : sequence of str, optional
        One label per row, written at the right end of each trace.
    colors : sequence of colours, optional
        One per row (e.g. by state); default a viridis ramp in step order.
    offset : float, optional
        Vertical spacing; default 0.6 x the largest |chi(R)|.
    ax : Axes, optional
    rmax : float
        Upper R limit in Angstrom.
    max_traces : int
        At most this many rows are drawn (evenly subsampled).

    Returns
    -------
    Figure
        The traces are one LineCollection of the axes, the labels its texts.
    """
    r = np.asarray(r, dtype=float)
    mag = np.atleast_2d(np.asarray(chir_mag, dtype=float))
    if mag.shape[1] != r.size:
        raise DataError(f"chir_mag has {mag.shape[1]} points per row but r has {r.size}")
    n = mag.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, max_traces)).round().astype(int)) if n else np.array([], int)
    own = ax is None
    fig, ax = _new_axes(ax)
    keep = r <= rmax
    peak = np.nanmax(mag[:, keep]) if np.isfinite(mag[:, keep]).any() else 1.0
    offset = 0.6 * peak if offset is None else offset
    cmap = fig.colormaps["viridis"] if hasattr(fig, "colormaps") else None
    if cmap is None:
        from matplotlib import colormaps
        cmap = colormaps["viridis"]
    trace_colors = [colors[i] if colors is not None else cmap(j / max(len(rows) - 1, 1))
                    for j, i in enumerate(rows)]
    # One collection for all traces, not one Line2D each (drawn in order, so with the
    # same overlaps; caps and joins of plotted lines).
    traces = LineCollection([np.column_stack([r[keep], mag[i, keep] + j * offset])
                             for j, i in enumerate(rows)],
                            colors=trace_colors, linewidths=1.0, capstyle="projecting",
                            joinstyle="round")
    ax.add_collection(traces)
    if labels is not None:
        for j, (i, color) in enumerate(zip(rows, trace_colors)):
            ax.text(r[keep][-1], j * offset + 0.1 * offset, str(labels[i]), fontsize=6, ha="right",
                    va="bottom", color=color)
    ax.set_xlim(0, rmax)
    ax.set_xlabel("R (Å, not phase corrected)")
    ax.set_ylabel("|χ(R)| + offset")
    if own:
        _fit_single(fig, ax)
    return fig


def plot_fit(k, chi_data, chi_fit, r, chir_data, chir_fit, *, kweight: int = 2, title: str | None = None,
             rmax: float = 6.0) -> Figure:
    """Data and fit of one step in k and R space (two panels).

    Parameters
    ----------
    k : (n_k,) array
        Photoelectron wavenumber in 1/Angstrom.
    chi_data, chi_fit : (n_k,) arrays
        chi(k) of data and model (not k-weighted; weighted here by ``kweight``).
    r : (n_r,) array
        R in Angstrom.
    chir_data, chir_fit : (n_r,) arrays
        |chi(R)| of data and model (complex input is converted to magnitude).
    kweight : int
    title : str, optional
    rmax : float

    Returns
    -------
    Figure
        Two axes: k space, R space.
    """
    k = np.asarray(k, dtype=float)
    r = np.asarray(r, dtype=float)
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    axk, axr = fig.subplots(1, 2)
    axk.plot(k, k**kweight * np.asarray(chi_data, dtype=float), "k-", lw=1.0, label="data")
    axk.plot(k, k**kweight * np.asarray(chi_fit, dtype=float), "r--", lw=1.2, label="fit")
    axk.set_xlabel("k (Å$^{-1}$)")
    axk.set_ylabel(f"k$^{kweight}$χ(k) (Å$^{{-{kweight}}}$)")
    axk.legend(fontsize=8)
    keep = r <= rmax
    axr.plot(r[keep], np.abs(np.asarray(chir_data))[keep], "k-", lw=1.0, label="data")
    axr.plot(r[keep], np.abs(np.asarray(chir_fit))[keep], "r--", lw=1.2, label="fit")
    axr.set_xlabel("R (Å, not phase corrected)")
    axr.set_ylabel(f"|χ(R)| (Å$^{{-{kweight + 1}}}$)")
    axr.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- summary
def plot_summary(tracking, energy, norm, r, chir_mag, *, title: str | None = None,
                 erange=None, rmax: float = 6.0, max_traces: int = 30) -> Figure:
    """A 2 x 2 paper-style figure: (a) XANES map, (b) white line, (c) CN of both
    shells with events, (d) chi(R) waterfall coloured by state.

    Parameters
    ----------
    tracking : Tracking
    energy, norm : arrays
        As :func:`plot_xanes_map` (rows in the order of ``tracking.steps``).
    r, chir_mag : arrays
        As :func:`plot_chir_waterfall`.
    title : str, optional
    erange : (float, float), optional
    rmax : float
    max_traces : int

    Returns
    -------
    Figure
        Four panels plus the colour bar of the map (5 axes).
    """
    width, height = 11.0, 8.0
    fig = Figure(figsize=(width, height))
    head = 0.4 if title else 0.0  # inches for the suptitle
    cell_w, cell_h = width / 2, (height - head) / 2
    # Fixed geometry in inches (no layout engine): each panel sits in its quarter with
    # the single-panel margins, plus room measured for condition strips and the legend.
    axes = np.array([[_add_axes(fig, [0.5 * c, 0.5 - 0.5 * r, 0.4, 0.4]) for c in range(2)]
                     for r in range(2)])  # created in reading order: (a), (b), (c), (d)

    def place(ax, row, col, top, right, left=_MARGIN["left"], bottom=_MARGIN["bottom"]):
        x0 = col * cell_w + left
        y0 = height - head - (row + 1) * cell_h + bottom
        ax.set_position([x0 / width, y0 / height, (cell_w - left - right) / width,
                         (cell_h - bottom - top) / height])

    steps = tracking.steps["step"].to_numpy()
    _draw_white_line(axes[0, 1], tracking)
    events = _draw_cn(axes[1, 0], tracking)
    states = tracking.steps["state"].to_numpy()
    plot_chir_waterfall(r, chir_mag, ax=axes[1, 1], rmax=rmax, max_traces=max_traces,
                        colors=[STATE_COLORS.get(s, "#7f7f7f") for s in states],
                        labels=[f"{s}" for s in steps])
    letter = 16.0 / 72  # the bold 10 pt panel letter and its 6 pt pad, inches
    renderer = _renderer(fig)
    right = {(0, 0): 0.75, (0, 1): _MARGIN["right"], (1, 0): _MARGIN["right"], (1, 1): _MARGIN["right"]}
    strip = dict.fromkeys(right, 0.0)

    def above(row, col):
        # Panels of a row align (same top, letters level) over a one-line strip; a taller
        # (rotated) strip takes room from its own panel only.
        tallest = max(v for (r_, _), v in strip.items() if r_ == row)
        return tallest if tallest <= 0.35 else strip[row, col]

    for _ in range(2):  # measured twice, as in _fit_single
        for (row, col), r_in in right.items():
            place(axes[row, col], row, col, letter + above(row, col) + 0.05, r_in)
        for row, col in ((0, 1), (1, 0)):
            top, extra = _extra_margins(axes[row, col], renderer)
            strip[row, col] = max(strip[row, col], top + (_GAP if top > 0 else 0.0))
            right[row, col] = max(right[row, col], extra + _GAP)
    for (row, col), r_in in right.items():
        place(axes[row, col], row, col, letter + above(row, col) + 0.05, r_in)
    # The map's colour bar takes its room from (a) where it now sits.
    plot_xanes_map(energy, norm, steps=steps, tracking=tracking, ax=axes[0, 0], erange=erange)
    _label_events(axes[1, 0], events)
    for (row, col), letter_text in zip(((0, 0), (0, 1), (1, 0), (1, 1)), "abcd"):
        # Above the strip of condition labels, if its row has one; letters of a row align.
        # An explicit y: matplotlib would otherwise measure every tick label on each draw
        # to keep titles clear of top tick labels, which these axes do not have.
        axes[row, col].set_title(f"({letter_text})", loc="left", fontweight="bold", fontsize=10,
                                 pad=6.0 + above(row, col) * 72, y=1.0)
    axes[1, 1].set_title("colour: state", loc="right", fontsize=8, y=1.0)
    if title:
        fig.suptitle(title, y=1 - 0.12 / height, va="top")
    return fig
