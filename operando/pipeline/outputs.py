"""The end of a run: the steps table, tracking, and every output file, each atomically.

``steps.csv`` (written block by block), ``segments.csv``, ``events.csv``,
``reversibility.csv``, ``settings.json``, the figures, ``report.html``,
``athena.prj`` and last ``summary.json``.
"""

from __future__ import annotations

import sys
import time
import warnings
from concurrent.futures import BrokenExecutor
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, OperandoError
from ..schema import TRACKING_COLUMNS
from .analyses import component_analysis, lcf_overlay, wavelet_analysis
from .chunks import PLOT_ROWS
from .figures import figure_captions, figure_list, save_figures, submit_figures
from .settings import RunPlan
from .source import is_streamed
from .steps import unpack_chunk
from .store import RunStore

#: A streamed series gets an Athena project only up to this many spectra (it holds them all).
ATHENA_MAX_STREAMED = 2000
#: Rows per block when writing steps.csv.
_CSV_BLOCK = 10_000


def finish(store: RunStore, plan: RunPlan, series, shared: dict, state: dict,
           record: dict, *, executor=None) -> tuple:
    """Assemble the steps table, track, write the outputs.

    The wavelet maps and the figures are computed on ``executor`` (the run's worker
    processes) while this process writes the tables; ``timings["figures"]`` is the
    wait for the figures after the tables.

    Returns ``(steps, summary, settings, outputs, tracking)``.
    """
    timings = dict(record.get("timings", {}))
    lap = [time.perf_counter()]

    def done(stage: str) -> None:  # seconds of each stage, in summary.json "timings"
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - lap[0]
        lap[0] = now

    parts = state["results"]
    steps = _steps_table(store, series, parts)
    plot_rows = state["plot_rows"]
    norm = np.concatenate([arrays["norm"] for arrays, _ in parts])
    meta0 = next((m for _, m in parts if m), {})
    outputs: dict[str, Path] = {}
    notes: list[str] = list(record.get("notes", []))

    done("tables")
    components_record, analysis = None, {}
    if plan.components is not None:
        components_record, analysis = component_analysis(store, plan, series, shared, steps,
                                                         meta0, parts)
        done("components")
    tracking = None
    if plan.track is not None:
        from ..tracking import track

        tracking = track(steps, edge=series.edge, **plan.track)
        found = tracking.steps.set_index("step").reindex(steps["step"])
        for col in TRACKING_COLUMNS:
            steps[col] = found[col].to_numpy()
    done("tracking")
    chi = _chi_rows(parts) if plan.exafs else None
    # the wavelet maps and the figures are computed on the executor while this process
    # writes the tables
    wavelet = _noted("wavelet", notes, wavelet_analysis, store, plan.ft, parts, steps, tracking,
                     shared.get("shells"), executor)
    done("wavelet")
    if plan.components is not None:
        analysis["overlay"] = _noted("lcf_fit", notes, lcf_overlay, store, plan, series.energy,
                                     steps, analysis)
    if len(plot_rows) < len(steps):
        notes.append(f"XANES map, chi(R) and the step points of the trend figures show "
                     f"{len(plot_rows)} of {len(steps)} steps, evenly spaced (the trend figures "
                     "also every outlier; segment means use every step)")
    analysis["logs"] = series.metadata.get("condition_logs")

    def figures():
        if not plan.plots:
            return []
        return figure_list(plan.ft, series.energy, steps, norm, chi, tracking, plot_rows,
                           analysis=analysis)

    pending = submit_figures(figures(), plan.plots, executor)  # all but the wavelet's (below)
    outputs["steps"] = _write_steps(store, steps)
    if tracking is not None:
        outputs["segments"] = store.write_csv("segments.csv", tracking.segments)
        outputs["events"] = store.write_csv("events.csv", tracking.events)
        if isinstance(getattr(tracking, "reversibility", None), pd.DataFrame):
            outputs["reversibility"] = store.write_csv("reversibility.csv", tracking.reversibility)
    settings = _settings_record(record, store, plan, series, shared, meta0)
    outputs["settings"] = store.write_json("settings.json", settings)
    done("outputs")
    if wavelet is not None:
        analysis["wavelet"] = _noted("wavelet", notes, wavelet)
        done("wavelet")
        if analysis["wavelet"] is not None:
            outputs["wavelet_lobes"] = store.write_csv("wavelet_lobes.csv", analysis["wavelet"][1])
            # the same list with the wavelet's figure: it takes its place among the others
            for i, (name, make) in enumerate(figures()):
                if name == "wavelet":
                    pending[i:i] = submit_figures([(name, make)], plan.plots, executor)
            done("outputs")
    failed = steps.loc[~steps["ok"].astype(bool), ["step", "file", "reason"]]
    skipped = list(series.metadata.get("skipped", []) or [])
    summary = {
        "status": "complete",
        "run_id": store.manifest.get("run_id"),
        "dir": str(store.dir),
        "n_steps": int(len(steps)),
        "n_ok": int(steps["ok"].sum()),
        "n_failed": int(len(failed)),
        "failures": [{"step": int(r.step), "file": str(r.file), "reason": str(r.reason)}
                     for r in failed.itertuples()],
        "fits": _fit_counts(steps) if plan.exafs else None,
        "components": components_record,
        "n_skipped_files": len(skipped),
        "skipped_files": skipped,
        "n_events": int(len(tracking.events)) if tracking is not None else 0,
        "n_segments": int(len(tracking.segments)) if tracking is not None else 0,
        "chunks_total": len(parts),
        "chunks_computed": state["computed"],
        "chunks_loaded": state["loaded"],
        "seconds": None,                       # the whole run's: set last
        "notes": notes,
    }

    def figures_and_athena(before: str) -> dict:
        """Wait for the figures and write them, then ``athena.prj`` (``before``: the stage
        whose time ends here); the report's figures."""
        done(before)
        if plan.plots:
            outputs.update(save_figures(store, pending, notes))
            done("figures")
        outputs.update(athena_project(store, plan, series, steps, notes))
        done("athena")
        return {name.rsplit(".", 1)[0]: path for name, path in outputs.items()
                if str(path).endswith(".png")}

    if plan.report:  # it builds its tables while the workers finish the figures
        outputs["report"] = _report(store, series, steps, partial(figures_and_athena, "report"),
                                    summary, tracking, settings, analysis)
        done("report")
    else:
        figures_and_athena("outputs")
    summary["seconds"] = round(time.perf_counter() - record["t_start"], 3)
    summary["timings"] = {k: round(v, 3) for k, v in timings.items()}
    summary["outputs"] = {k: str(v) for k, v in outputs.items()}
    outputs["summary"] = store.write_json("summary.json", summary)
    return steps, summary, settings, outputs, tracking


def _noted(name: str, notes: list, make, *args):
    """A series-wide analysis; a failure (or a worker process lost) is noted (the run goes on)."""
    try:
        return make(*args)
    except (OperandoError, ValueError, KeyError, IndexError, BrokenExecutor) as exc:
        notes.append(f"{name} not computed: {type(exc).__name__}: {exc}")
        return None


def _fit_counts(steps: pd.DataFrame) -> dict:
    """How many shell fits were good, poor, failed (absolute criteria, exafs.policy)."""
    quality = steps["fit_quality"].fillna("failed").astype(str)
    return {q: int((quality == q).sum()) for q in ("good", "poor", "failed")}


def _steps_table(store, series, parts) -> pd.DataFrame:
    computed = pd.concat([unpack_chunk(arrays)[0] for arrays, _ in parts], ignore_index=True)
    steps = series.conditions.reset_index(drop=True).copy()
    if not np.array_equal(computed["step"].to_numpy(), steps["step"].to_numpy()):
        raise ConfigError(f"checkpoints in {store.dir} do not cover the series in order; "
                          "use --overwrite to start again")
    for col in computed.columns:
        if col != "step":
            steps[col] = computed[col].to_numpy()
    return steps


def _chi_rows(parts):
    """``(k, chi)`` of the sampled rows of every chunk, on the longest chunk's k grid."""
    chi_parts = [(arrays.get("k"), arrays.get("chi")) for arrays, _ in parts]
    n_k = max((c.shape[1] for _, c in chi_parts if c is not None), default=0)
    if not n_k:
        return None
    k = next(kk for kk, c in chi_parts if c is not None and c.shape[1] == n_k)
    return k, np.concatenate([
        np.pad(c, ((0, 0), (0, n_k - c.shape[1])), constant_values=np.nan) if c is not None
        else np.full((len(arrays["norm"]), n_k), np.nan)
        for (_, c), (arrays, _) in zip(chi_parts, parts)])


def _write_steps(store: RunStore, steps: pd.DataFrame):
    """``steps.csv`` written block by block (atomically): no whole-file text in memory.

    Same bytes as ``DataFrame.to_csv(index=False)`` (blocks of one frame share
    its dtypes, and each value is formatted on its own).
    """
    def writer(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for start in range(0, max(len(steps), 1), _CSV_BLOCK):
                steps.iloc[start:start + _CSV_BLOCK].to_csv(fh, index=False, header=start == 0,
                                                           lineterminator="\n")
    return store.write_with("steps.csv", writer)


def _settings_record(record, store, plan: RunPlan, series, shared, meta0) -> dict:
    versions = {name: package_version(name) for name in
                ("operando", "numpy", "scipy", "pandas", "matplotlib", "xraylarch", "lmfit")}
    versions["python"] = sys.version.split()[0]
    return {
        "config": record["config"],
        "config_hash": record["config_hash"],
        "run_id": store.manifest.get("run_id"),
        "data_hash": store.manifest.get("data_hash"),
        "resolved": {
            "e0": shared.get("e0"), "e0_from_step": shared.get("e0_from_step"),
            "s02": shared.get("s02"), "s02_err": shared.get("s02_err"),
            "s02_source": shared.get("s02_source"), "s02_fit": shared.get("s02_fit"),
            "s02_path": shared.get("s02_path"),
            "shells": shared.get("shells"), "exafs_engine": shared.get("exafs_engine"),
            "foil_values": shared.get("foil_values"),
            "systematics": shared.get("systematics"),
            "normalize": meta0.get("normalize_settings"),
            "background": meta0.get("background_settings"),
            "fit": meta0.get("fit_settings"),
            "two_phase": meta0.get("two_phase_settings"),
            "options": plan.options_record(),
            "chunk_size": plan.chunk_size,
            "athena": plan.athena,
            "project_settings": record.get("project_settings") or None,
            "project_settings_used": record.get("project_settings_used", False),
        },
        "series": {
            "n_steps": len(series), "element": series.element, "edge": series.edge,
            "energy_range_eV": [float(series.energy[0]), float(series.energy[-1])],
            "n_energy": int(series.energy.size),
            "condition_columns": series.condition_columns(),
            "metadata": {k: v for k, v in series.metadata.items() if k in
                         ("source", "format", "mu_from", "interpolated", "skipped")},
        },
        "versions": versions,
    }


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def athena_project(store, plan: RunPlan, series, steps, notes) -> dict:
    """``athena.prj``: the calibrated raw mu of every step, with its E0."""
    n = len(series)
    if not plan.athena:
        if plan.athena_limit is not None:
            notes.append(f"Athena export skipped: {n} steps (athena = \"auto\" writes "
                         f"athena.prj for series up to {plan.athena_limit} steps; Athena and "
                         "Larix cannot usefully show more groups); set [output] athena = true to "
                         "write it, or export a selection with operando.viz.write_athena")
        return {}
    if is_streamed(series) and n > ATHENA_MAX_STREAMED:
        notes.append(f"Athena export skipped: {n} spectra streamed from HDF5 (more than "
                     f"{ATHENA_MAX_STREAMED}); export a selection with operando.viz.write_athena")
        return {}
    from ..viz import write_athena

    names = [f"step_{int(st):04d}_{Path(str(f)).stem}" for st, f in zip(steps["step"], steps["file"])]
    mu = series.take(slice(0, n)).mu if is_streamed(series) else series.mu
    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out["athena"] = write_athena(
                store.path("athena.prj"), series.energy, mu, names, element=series.element or "",
                edge=series.edge or "",
                e0s=pd.to_numeric(steps["e0"], errors="coerce").to_numpy(dtype=float))
        except OperandoError as exc:
            notes.append(f"Athena export not written: {exc}")
    notes += [f"Athena export: {w.message}" for w in caught]
    return out


def add_athena_project(store: RunStore, plan: RunPlan, series, steps) -> None:
    """``athena.prj`` written after the other outputs (a watch writes it when it stops);
    ``summary.json`` names it."""
    import json

    notes: list[str] = []
    written = athena_project(store, plan, series, steps, notes)
    path = store.dir / "summary.json"
    if not (written or notes) or not path.is_file():
        return
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary["outputs"] = {**summary.get("outputs", {}), **{k: str(v) for k, v in written.items()}}
    summary["notes"] = summary.get("notes", []) + notes
    store.write_json("summary.json", summary)


def _report(store, series, steps, figures, summary, tracking, settings, analysis) -> Path:
    """``report.html``; ``figures()`` (called once its tables are built) writes the figures
    and ``athena.prj`` and returns the figures' files; the summary text follows, with
    their notes."""
    from ..viz import write_report

    text = tracking.report() if tracking is not None else ""
    return write_report(
        store.path("report.html"),
        title=f"operando run {summary.get('run_id')}: {series.element or ''} {series.edge or ''}",
        summary_text=lambda: "\n".join([summary_text(summary), "", text]).strip(), steps=steps,
        segments=None if tracking is None else tracking.segments,
        events=None if tracking is None else tracking.events,
        reversibility=None if tracking is None else tracking.reversibility,
        figures=figures, settings=settings, components=summary.get("components"),
        captions=figure_captions(analysis),
        tables={"wavelet lobes": analysis["wavelet"][1]} if analysis.get("wavelet") else None)


def summary_text(summary: dict) -> str:
    lines = [f"{summary['n_steps']} steps: {summary['n_ok']} ok, {summary['n_failed']} failed; "
             f"{summary['n_events']} events; {summary['n_skipped_files']} input files skipped"]
    if summary.get("fits"):
        f = summary["fits"]
        lines.append(f"shell fits: {f['good']} good, {f['poor']} poor, {f['failed']} failed")
    lines += [f"  step {f['step']} ({f['file']}): {f['reason']}" for f in summary["failures"][:50]]
    lines += [f"  skipped {f.get('file')}: {f.get('reason')}" for f in summary["skipped_files"][:50]]
    lines += [f"  note: {n}" for n in summary["notes"]]
    return "\n".join(lines)


__all__ = ["finish", "summary_text", "package_version", "add_athena_project", "PLOT_ROWS"]
