"""Plots, report and Athena export on tracked synthetic series with truth tables."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from operando.errors import DataError, OperandoWarning
from operando.tracking import track
from operando.viz import (athena_group_names, plot_chir_waterfall, plot_cn, plot_fit, plot_summary,
                          plot_white_line, plot_xanes_map, save_figure, write_athena, write_report)

from _tracking_data import cu_steps, pt_steps, qexafs_series


def spectra(tr, e0):
    """Model XANES (arctan edge + white line of the tracked height) and |chi(R)|
    (ligand peak at 1.6 A, metal peak at 2.5 A scaling with the CNs)."""
    st = tr.steps
    e = np.linspace(e0 - 30, e0 + 80, 300)
    wl = st["wl_height"].to_numpy()
    norm = (0.5 + np.arctan((e - e0) / 2) / np.pi)[None, :] + (wl[:, None] - 1) * np.exp(-((e - e0 - 4) / 4) ** 2)
    r = np.linspace(0, 6, 200)
    m = np.clip(st[f"cn_{tr.metal_shell}"].to_numpy(), 0, None)
    lig = np.clip(st[f"cn_{tr.ligand_shell}"].to_numpy(), 0, None)
    chir = lig[:, None] * 0.25 * np.exp(-((r - 1.6) / 0.25) ** 2) + m[:, None] * 0.2 * np.exp(-((r - 2.5) / 0.25) ** 2)
    return e, norm, r, chir


@pytest.fixture(scope="module")
def pt():
    return track(pt_steps(0))


@pytest.fixture(scope="module")
def pt_summary(pt):
    e, norm, r, chir = spectra(pt, 11566.0)
    return plot_summary(pt, e, norm, r, chir, title="Pt under gas sequence")


@pytest.fixture(scope="module")
def cu():
    return track(cu_steps(0))


# --------------------------------------------------------------------------- plots
def test_cn_plot_steps_axis_with_gas_bands_and_events(pt):
    fig = plot_cn(pt)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Step"
    texts = [t.get_text() for t in ax.texts]
    # one band label per gas block (CO+O2 twice) and one label per event
    assert texts.count("CO+O2") == 2 and "O2" in texts and "H2" in texts
    assert {"aggregation", "growth", "partial redispersion"} <= set(texts)
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["CN(Pt-Pt)", "CN(Pt-O)"]


def test_cn_plot_potential_axis_with_ocp_tick(cu):
    fig = plot_cn(cu)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Potential (V vs RHE)"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[-1] == "OCP"
    # OCP sits to the right of every measured potential
    assert ax.get_xticks()[-1] > 0.82
    assert sum(t.get_text() == "growth" for t in ax.texts) == 4


def test_white_line_and_map_and_waterfall(cu):
    e, norm, r, chir = spectra(cu, 8984.0)
    fig = plot_white_line(cu)
    assert len(fig.axes) == 1 and "White-line" in fig.axes[0].get_ylabel()
    fig = plot_xanes_map(e, norm, tracking=cu)
    assert len(fig.axes) == 2  # map + colour bar
    assert "OCP" in [t.get_text() for t in fig.axes[0].texts]
    fig = plot_chir_waterfall(r, chir, labels=cu.steps["step"], max_traces=10)
    # the traces are one LineCollection (one artist however many), a label each
    (traces,) = fig.axes[0].collections
    assert len(fig.axes) == 1 and len(traces.get_segments()) == 10 and len(fig.axes[0].texts) == 10
    with pytest.raises(DataError):
        plot_xanes_map(e[:-1], norm)


def test_fit_overlay_and_summary(pt_summary, tmp_path):
    k = np.linspace(2, 12, 200)
    chi = np.sin(2 * k * 2.75) * np.exp(-0.01 * k**2) / k
    r = np.linspace(0, 6, 100)
    fig = plot_fit(k, chi, 0.9 * chi, r, np.exp(-(r - 2.5) ** 2), 0.9 * np.exp(-(r - 2.5) ** 2), title="step 3")
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 2
    fig = pt_summary
    assert len(fig.axes) == 5  # 2 x 2 panels + colour bar of the map
    assert [ax.get_title(loc="left") for ax in fig.axes[:4]] == ["(a)", "(b)", "(c)", "(d)"]
    paths = save_figure(fig, tmp_path / "summary")
    assert [p.name for p in paths] == ["summary.png", "summary.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:2000]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.png", "summary.svg"]  # no temp left


def test_outputs_written_atomically_with_plain_permissions(cu, tmp_path, monkeypatch):
    """Figures, report and Athena project go through operando._util.files: the permissions
    a plain open() gives (not mkstemp's 0600), and a failed write leaves only the old
    file, no temporary (nor one the run folder would not recognise by TMP_SUFFIX)."""
    import os

    from operando._util.files import TMP_SUFFIX

    umask = os.umask(0o022)
    try:
        energy = np.linspace(8900.0, 9400.0, 300)
        mu = np.array([np.arctan((energy - 8980) / 3) / np.pi + 0.5] * 2)
        paths = [*save_figure(plot_cn(cu), tmp_path / "cn"),
                 write_report(tmp_path, title="t", figures={"cn": tmp_path / "cn.png"}),
                 write_athena(tmp_path / "cu.prj", energy, mu, ["a", "b"], element="Cu", edge="K")]
    finally:
        os.umask(umask)
    assert [p.name for p in paths] == ["cn.png", "cn.svg", "report.html", "cu.prj"]
    for p in paths:
        assert p.stat().st_mode & 0o777 == 0o644, p.name
    before = (tmp_path / "cn.png").read_bytes()
    seen = []

    def failing_savefig(self, fname, **kwargs):
        seen.append(Path(fname).name)
        Path(fname).write_bytes(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="disk full"):
        save_figure(plot_cn(cu), tmp_path / "cn.png")
    assert seen and seen[0].startswith(".cn.png.") and seen[0].endswith(TMP_SUFFIX)
    assert (tmp_path / "cn.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cn.png", "cn.svg", "cu.prj", "report.html"]


def test_change_point_segment_drawn_in_map():
    tr = track(qexafs_series(0, change_at=612))
    e, norm, r, chir = spectra(tr, 11566.0)
    ax = plot_xanes_map(e, norm, tracking=tr).axes[0]
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(611.5)


# --------------------------------------------------------------------------- report
def test_report_self_contained(pt, pt_summary, tmp_path):
    png = save_figure(plot_cn(pt), tmp_path / "cn.png")[0]
    out = write_report(tmp_path, title="Pt <single atoms>", summary_text=pt.report(), steps=pt.steps,
                       segments=pt.segments, events=pt.events, reversibility=pt.reversibility,
                       figures={"summary": pt_summary, "cn": png},
                       settings={"track": pt.settings.to_dict(), "s02": np.float64(0.85)})
    assert out == tmp_path / "report.html"
    text = out.read_text(encoding="utf-8")
    assert "<title>Pt &lt;single atoms&gt;</title>" in text  # escaped
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2
    assert base64.b64decode(images[1]) == png.read_bytes()
    # events, evidence per event, states per segment, reversibility, segments, steps
    assert text.count("<table") == 6
    assert "partial_redispersion" in text and "table-events" in text
    assert text.index("Evidence per event") < text.index("<h2>Figures</h2>")
    assert "table-evidence" in text and "table-states" in text
    assert '"particle_cn": 10.0' in text and '"s02": 0.85' in text
    assert "http://" not in text and "https://" not in text  # nothing fetched from outside
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(DataError, match="not found"):
        write_report(tmp_path / "r2.html", title="x", figures={"missing": tmp_path / "nope.png"})


# --------------------------------------------------------------------------- Athena
def test_athena_round_trip(tmp_path):
    from larch.io import read_athena

    rng = np.random.default_rng(0)
    energy = np.linspace(11450.0, 12100.0, 500)
    e0s = np.array([11564.0, 11564.5, 11565.0, 11563.5])
    mu = np.array([0.2 + 0.0001 * (energy - 11450) + np.arctan((energy - e0) / 3) / np.pi + 0.5
                   + rng.normal(0, 1e-3, energy.size) for e0 in e0s])
    names = ["step_0000", "step_0001 O2", "step-0002", "OCP"]
    path = write_athena(tmp_path / "series.prj", energy, mu, names, element="Pt", edge="L3", e0s=e0s)
    data = read_athena(str(path))
    assert list(data.groups) == athena_group_names(names) == ["step_0000", "step_0001_O2", "step_0002", "OCP"]
    for (name, group), row, e0 in zip(data.groups.items(), mu, e0s):
        np.testing.assert_array_equal(group.energy, energy)  # written with full repr precision
        np.testing.assert_array_equal(group.mu, row)
        assert group.atsym == "Pt" and group.edge == "L3"
        assert float(group.athena_params.bkg.e0) == e0


def test_athena_skips_failed_rows_and_rejects_clashing_names(tmp_path):
    from larch.io import read_athena

    energy = np.linspace(8900.0, 9400.0, 300)
    mu = np.array([np.arctan((energy - 8980) / 3) / np.pi + 0.5] * 3)
    mu[1, 10] = np.nan
    with pytest.warns(OperandoWarning, match="skipped 1"):
        path = write_athena(tmp_path / "cu.prj", energy, mu, ["a", "b", "c"], element="Cu", edge="K")
    assert list(read_athena(str(path)).groups) == ["a", "c"]
    with pytest.raises(DataError, match="both become"):
        write_athena(tmp_path / "x.prj", energy, mu[[0, 2]], ["s 1", "s_1"], element="Cu", edge="K")
    with pytest.raises(DataError, match="names given"):
        write_athena(tmp_path / "x.prj", energy, mu, ["a"], element="Cu", edge="K")


@pytest.mark.parametrize("which", ["pt", "cu"])
def test_cn_plot_labels_do_not_collide(which, pt, cu):
    """Condition labels sit in a strip above the axes, event names inside below the top
    without overlapping each other or the data, and the legend outside the axes."""
    tr = {"pt": pt, "cu": cu}[which]
    for fig in (plot_cn(tr), plot_white_line(tr)):
        fig.draw_without_rendering()
        ax = fig.axes[0]
        frame = ax.get_window_extent()
        strip = [t for t in ax.texts if t.get_gid() == "condition-label"]
        assert all(t.get_window_extent().y0 >= frame.y1 for t in strip)
        events = [t for t in ax.texts if t.get_gid() != "condition-label"]
        boxes = [t.get_window_extent() for t in events]
        for i, a in enumerate(boxes):
            assert frame.x0 - 1 <= a.x0 and a.x1 <= frame.x1 + 1 and a.y1 <= frame.y1 + 1
            assert a.y0 >= frame.y0 + 0.5 * frame.height  # in the top half
            assert not any(a.overlaps(b) for b in boxes[i + 1:])
        if events:
            # Every plotted point (markers, error bars) lies below the lowest name.
            lowest = min(b.y0 for b in boxes)
            for line in ax.lines:
                xy = line.get_xydata()
                xy = xy[np.isfinite(xy).all(axis=1)]
                if len(xy) and line.get_transform() == ax.transData:
                    assert ax.transData.transform(xy)[:, 1].max() < lowest
            assert ax.get_legend().get_window_extent().x0 >= frame.x1


def test_report_tables_read_in_a_browser(pt, tmp_path):
    """Energies keep their digits, long evidence text wraps in its own block, and the
    events come before the figures (what the reader opens the report for)."""
    import html

    import pandas as pd

    steps = pt.steps.assign(e0=11564.1268, fit_message="x" * 80)
    out = write_report(tmp_path, title="t", steps=steps, events=pt.events,
                       figures={"cn": plot_cn(pt)}, settings={"a": 1})
    text = out.read_text(encoding="utf-8")
    assert "11564.13" in text and "1.156e+04" not in text
    assert '<span class="long">' + "x" * 80 + "</span>" in text
    evidence = pt.events["evidence"].iloc[0]
    assert len(evidence) > 40 and f'<span class="long">{html.escape(evidence)}</span>' in text
    assert text.index("<h2>Events</h2>") < text.index("<h2>Figures</h2>")
    assert "white-space: nowrap" in text  # numbers never wrap inside a cell
    # A missing value stays empty, not "nan" / "None".
    one = write_report(tmp_path / "one.html", title="t",
                       steps=pd.DataFrame({"a": [np.nan, 1.5], "b": [None, "ok"]}))
    assert "<td>nan</td>" not in one.read_text() and "<td>None</td>" not in one.read_text()


def test_report_cells_per_column_equal_per_value():
    """The per-dtype cell formatting gives exactly the per-value ``_cell`` text."""
    import pandas as pd

    from operando.viz.report import _cell, _column_cells

    rng = np.random.default_rng(11)
    floats = np.concatenate([rng.normal(0, 1, 300) * 10.0 ** rng.integers(-8, 9, 300),
                             [0.0, -0.0, 999.99995, 1000.0, 999.9999, 1e12, 11564.13, -25000.5,
                              np.nan, np.inf, -np.inf, 5e-324]])
    table = pd.DataFrame({
        "f": floats, "i": np.arange(len(floats)), "b": np.arange(len(floats)) % 3 == 0,
        "s": [None if i % 7 == 0 else f"<step {i}>" * (i % 30) for i in range(len(floats))],
        "f32": floats.astype(np.float32),
        "nullable": pd.array([None if i % 5 == 0 else i for i in range(len(floats))], dtype="Int64"),
    })
    for name in table.columns:
        assert _column_cells(table[name]) == [_cell(v) for v in table[name].tolist()], name


def _gas_cycles(cycles: int, repeats: int = 2):
    """A gas/temperature program of 6 conditions with long names, ``cycles`` times."""
    from _tracking_data import make_steps

    gases = [("O2", 673.0), ("CO+O2", 473.0), ("H2", 573.0), ("CO+O2", 523.0), ("He", 298.0),
             ("H2+H2O", 623.0)]
    truth = [dict(cn_m=m, cn_l=4.0 - 0.4 * m, wl=1.9 - 0.05 * m, edge=11566.0 - 0.2 * m)
             for m in (0.0, 3.0, 6.0, 4.0, 0.0, 5.0)]
    conditions = [{"gas": g, "temperature_K": t} for g, t in gases] * cycles
    return track(make_steps(conditions, truth * cycles, metal="Pt-Pt", ligand="Pt-O",
                            repeats=repeats, seed=2))


def _condition_boxes(fig):
    fig.draw_without_rendering()
    out = []
    for ax in fig.axes:
        artists = [a for a in [*ax.texts, *ax.artists] if a.get_gid() == "condition-label"]
        out += [a.get_window_extent() for a in artists]
    return out


@pytest.mark.parametrize("cycles", [1, 500])
def test_condition_labels_never_overlap_at_any_length(cycles):
    """Six narrow blocks with long names (the case that overlapped) and 3,000 blocks:
    names above their bands only where every name fits its band, else one key entry per
    condition; no two condition labels overlap, and a long series draws a bounded number
    of texts (one key, the event counts), not one per segment or event."""
    tr = _gas_cycles(cycles)
    e, norm, r, chir = spectra(tr, 11566.0)
    for fig in (plot_cn(tr), plot_white_line(tr), plot_xanes_map(e, norm, tracking=tr),
                plot_summary(tr, e, norm, r, chir)):
        boxes = _condition_boxes(fig)
        assert boxes
        for i, a in enumerate(boxes):
            assert not any(a.overlaps(b) for b in boxes[i + 1:])
        for ax in fig.axes:
            assert len(ax.texts) <= 30  # 24 band names at most, the event count
            for key in [a for a in ax.artists if a.get_gid() == "condition-label"]:
                # one entry per condition class (6), however many blocks
                assert len(key.get_texts()) == 6
