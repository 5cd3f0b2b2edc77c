"""The pipeline end to end: run folder, checkpoints, interruption, resume, CLI."""

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from operando.config import load_config
from operando.errors import ConfigError, OperandoError
from operando.pipeline import RunInterrupted, run
from operando.pipeline import steps as steps_module
from operando.schema import STEP_COLUMNS, TRACKING_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
N_GOOD = 10  # spectra in the small series (plus one flat frame and one unreadable file)


def _write_series(folder: Path) -> None:
    """A small Cu K XANES series in plain column files, white line growing with step.

    Step 5 is a flat (dead) frame, which must become a failed step, and
    ``zz_broken.dat`` is not a spectrum at all, which the reader must skip.
    """
    folder.mkdir(parents=True, exist_ok=True)
    energy = np.linspace(8880.0, 9300.0, 500)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(N_GOOD + 1):
        if i == 5:
            mu = np.full(energy.size, 0.3)
        else:
            wl = 0.4 + 0.05 * i
            mu = (0.2 - 1e-5 * (energy - 8880) + 0.5 + np.arctan((energy - 8980) / 2) / np.pi
                  + wl * np.exp(-0.5 * ((energy - 8986) / 4) ** 2) + rng.normal(0, 1e-3, energy.size))
        name = f"s{i:02d}.dat"
        np.savetxt(folder / name, np.column_stack([energy, mu]), header="energy mu", comments="# ")
        rows.append({"file": name, "potential_V": round(0.1 * i, 2) if i < N_GOOD else "OCP"})
    (folder / "zz_broken.dat").write_text("this is not a spectrum\n")
    rows.append({"file": "zz_broken.dat", "potential_V": 0.0})
    pd.DataFrame(rows).to_csv(folder / "conditions.csv", index=False)


CONFIG = """
[series]
source = "data"
pattern = "*.dat"
conditions = "data/conditions.csv"
element = "Cu"
edge = "K"

[normalize]
e0 = "first"
wl_window = [-10.0, 30.0]

[output]
dir = "out"

[run]
chunk_size = 3
workers = 1   # inline, so the tests can count chunk calls; pools are tested separately
"""


@pytest.fixture
def project(tmp_path):
    _write_series(tmp_path / "data")
    (tmp_path / "run.toml").write_text(CONFIG)
    return tmp_path


def _config(project, out="out", **run):
    cfg = load_config(project / "run.toml").with_output(dir=project / out)
    return cfg.with_run(**run) if run else cfg


def _count_analyse(monkeypatch, fail_at_call=None):
    """Wrap the per-chunk analysis: count calls, optionally Ctrl-C on call k."""
    calls = []
    real = steps_module.analyse

    def wrapper(series, *args):
        calls.append([int(s) for s in series.steps])
        if fail_at_call is not None and len(calls) == fail_at_call:
            raise KeyboardInterrupt
        return real(series, *args)

    monkeypatch.setattr(steps_module, "analyse", wrapper)
    return calls


@pytest.fixture
def reference_run(project):
    """An uninterrupted run (the truth for resume tests)."""
    result = run(_config(project, "reference"), progress=False)
    return result


def test_run_writes_complete_run_folder(project, reference_run):
    result = reference_run
    out = result.dir
    steps = pd.read_csv(out / "steps.csv")
    # One row per readable spectrum, input order, the stable columns in order.
    assert steps["step"].tolist() == list(range(N_GOOD + 1))
    assert list(steps.columns[:3]) == ["step", "file", "potential_V"]
    assert list(steps.columns[3:12]) == list(STEP_COLUMNS)
    assert list(steps.columns[-5:]) == list(TRACKING_COLUMNS)  # segment, state, ...
    # The flat frame is a failed step with a reason; the others are fine.
    assert steps["ok"].tolist() == [i != 5 for i in range(N_GOOD + 1)]
    assert steps.loc[5, "reason"] and not steps["reason"].drop(index=5).notna().any()
    good = steps[steps["ok"]]
    # The synthetic white line grows by 0.05 per step; its height must follow.
    assert np.all(np.diff(good["wl_height"].to_numpy()) > 0)
    assert np.allclose(good["e0"], good["e0"].iloc[0])  # e0 = "first": one e0 for all

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_steps"] == N_GOOD + 1 and summary["n_ok"] == N_GOOD
    assert summary["n_failed"] == 1 and summary["failures"][0]["step"] == 5
    assert summary["n_skipped_files"] == 1 and summary["skipped_files"][0]["file"] == "zz_broken.dat"
    assert summary["chunks_total"] == 4 and summary["chunks_computed"] == 4
    assert result.summary == summary | {"outputs": summary["outputs"]}

    settings = json.loads((out / "settings.json").read_text())
    assert settings["resolved"]["e0"] == pytest.approx(good["e0"].iloc[0])
    assert settings["versions"]["numpy"] == np.__version__
    assert settings["config"]["normalize"]["wl_window"] == [-10.0, 30.0]
    assert settings["resolved"]["normalize"]  # the stage's own resolved settings

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "chunk_00000.npz", "chunk_00001.npz", "chunk_00002.npz", "chunk_00003.npz", "prepare.npz"]
    for name in ("white_line.png", "xanes_map.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "<html" in (out / "report.html").read_text()
    assert (out / "athena.prj").stat().st_size > 0
    assert not [p for p in out.rglob(".*")]  # no temporary files left


def test_interrupt_then_resume_equals_uninterrupted(project, reference_run, monkeypatch):
    cfg = _config(project)
    calls = _count_analyse(monkeypatch, fail_at_call=3)  # Ctrl-C during the 3rd chunk
    with pytest.raises(RunInterrupted) as info:
        run(cfg, progress=False)
    assert info.value.chunks_done == 2 and info.value.chunks_total == 4
    out = project / "out"
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    assert not (out / "steps.csv").exists()

    with pytest.raises(ConfigError, match="--resume"):  # no silent clobbering
        run(cfg, progress=False)

    calls = _count_analyse(monkeypatch)
    result = run(cfg, resume=True, progress=False)
    # Only chunks 2 and 3 were computed (steps 6..10); 0 and 1 came from checkpoints.
    assert calls == [[6, 7, 8], [9, 10]]
    assert result.summary["chunks_loaded"] == 2 and result.summary["chunks_computed"] == 2
    assert (out / "steps.csv").read_bytes() == (reference_run.dir / "steps.csv").read_bytes()
    assert json.loads((out / "manifest.json").read_text())["resumed"] == 1




def _wait_for_chunks(out: Path, n: int, proc, timeout=40.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list((out / "checkpoints").glob("chunk_*.npz"))) >= n:
            return
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError(f"no {n} chunk checkpoints after {timeout} s")


def test_sigkill_then_resume_equals_uninterrupted(project, reference_run, monkeypatch,
                                                   slow_operando):
    out = project / "killed"
    proc = subprocess.Popen(slow_operando(0.25, "--library", project / "run.toml", out),
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for_chunks(out, 2, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = sorted(p.stem for p in (out / "checkpoints").glob("chunk_*.npz"))
    assert 2 <= len(done) < 4
    # Killed: the manifest still says running, but its process is gone.
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    calls = _count_analyse(monkeypatch)
    result = run(_config(project, "killed"), resume=True, progress=False)
    assert len(calls) == 4 - len(done)
    assert result.summary["chunks_loaded"] == len(done)
    assert (out / "steps.csv").read_bytes() == (reference_run.dir / "steps.csv").read_bytes()


def test_sigterm_exits_cleanly_and_marks_interrupted(project, slow_operando):
    out = project / "termed"
    proc = subprocess.Popen(
        slow_operando(0.25, "run", project / "run.toml", "--out", out),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_chunks(out, 1, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert "Traceback" not in err
    assert "interrupted (SIGTERM)" in err and "--resume" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["signal"] == "SIGTERM"


def test_thread_executor_gives_same_steps(project, reference_run):
    with ThreadPoolExecutor(max_workers=3) as pool:
        result = run(_config(project, "threads"), executor=pool, progress=False)
    assert (result.dir / "steps.csv").read_bytes() == (reference_run.dir / "steps.csv").read_bytes()


def test_process_pool_gives_same_steps(project, reference_run):
    result = run(_config(project, "procs", workers=2), progress=False)
    assert result.summary["chunks_computed"] == 4
    assert (result.dir / "steps.csv").read_bytes() == (reference_run.dir / "steps.csv").read_bytes()


def test_resume_with_changed_settings_is_refused(project, reference_run):
    changed = load_config(CONFIG.replace('e0 = "first"', 'e0 = "each"'), base_dir=project)
    changed = changed.with_output(dir=reference_run.dir)
    with pytest.raises(ConfigError, match=r"settings differ.*normalize\.e0 'first' -> 'each'"):
        run(changed, resume=True, progress=False)
    # A refused resume leaves the finished run as it was.
    assert json.loads((reference_run.dir / "manifest.json").read_text())["status"] == "complete"


def test_overwrite_recomputes(project, reference_run, monkeypatch):
    calls = _count_analyse(monkeypatch)
    result = run(_config(project, "reference"), overwrite=True, progress=False)
    assert len(calls) == 4 and result.summary["chunks_loaded"] == 0


def test_progress_callback(project):
    seen = []
    run(_config(project, "progress"), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 11), (6, 11), (9, 11), (11, 11)]


def _operando(*args, cwd):
    exe = Path(sys.executable).with_name("operando")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "operando.cli"]
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_end_to_end(project):
    first = _operando("run", "run.toml", "--out", "cli-out", "--no-progress", cwd=project)
    assert first.returncode == 0, first.stderr
    assert "11 steps: 10 ok, 1 failed" in first.stdout
    assert "1 input files skipped" in first.stdout
    assert str(project / "cli-out") in first.stdout
    assert (project / "cli-out" / "steps.csv").is_file()

    again = _operando("run", "run.toml", "--out", "cli-out", cwd=project)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr
    assert again.stderr.count("\n") == 1 and "already holds a run" in again.stderr

    resumed = _operando("run", "run.toml", "--out", "cli-out", "--resume", cwd=project)
    assert resumed.returncode == 0 and "4/4 chunks resumed" in resumed.stdout


def test_cli_errors_are_one_line_exit_2(project, capsys, monkeypatch):
    from operando.cli import main

    monkeypatch.chdir(project)
    (project / "bad.toml").write_text(CONFIG.replace("chunk_size", "chunk_sise"))
    assert main(["run", "bad.toml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'chunk_size'?" in err
    assert main(["run", "missing.toml"]) == 2
    assert "configuration file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("operando ")
    with pytest.raises(SystemExit) as info:
        main(["run", "run.toml", "--workers", "-2"])
    assert info.value.code == 2


def test_exafs_run_on_simulated_pt_series(tmp_path):
    """Shell fits and tracking wired in: a few steps of the simulated Pt series."""
    simulate = pytest.importorskip("operando.simulate")
    simulate.write_samples(tmp_path / "samples")
    folder = tmp_path / "samples" / "pt_co_oxidation"
    files = [f"pt_co_oxidation_{i:03d}.xdi" for i in (0, 1, 8, 9)]  # isolated, then particles
    cfg = load_config({
        "series": {"source": files, "conditions": "conditions.csv", "element": "Pt", "edge": "L3"},
        "normalize": {"calibrate": True},
        "foil": {"s02": 0.85},
        "exafs": {"shells": ["Pt-O", "Pt-Pt"], "kmin": 3.0, "kmax": 12.0, "rmin": 1.2, "rmax": 3.2},
        "output": {"dir": str(tmp_path / "out"), "plots": []},
        "run": {"chunk_size": 2},
    }, base_dir=folder)
    result = run(cfg, progress=False)
    steps = pd.read_csv(tmp_path / "out" / "steps.csv")
    assert steps["ok"].all()
    for col in ("cn_Pt-O", "cn_Pt-O_err", "cn_Pt-Pt", "r_Pt-Pt", "fit_ok", "state"):
        assert col in steps.columns
    # Truth (simulate.pt_co_oxidation): Pt-Pt CN 0 for steps 0-1 and 6.5 for 8-9;
    # 1.5 is several times the CN error bars (~0.2-0.4) of these fits.
    assert np.all(np.abs(steps["cn_Pt-Pt"].iloc[:2]) < 1.5)
    assert np.all(np.abs(steps["cn_Pt-Pt"].iloc[2:] - 6.5) < 1.5)
    assert steps["energy_shift"].abs().max() > 0  # calibration applied
    assert steps["state"].iloc[0] == "isolated" and steps["state"].iloc[-1] != "isolated"
    assert (tmp_path / "out" / "events.csv").is_file() and result.summary["n_events"] >= 1
    assert result.settings["resolved"]["s02"] == 0.85


def test_chunk_failure_is_retried_step_by_step(project, monkeypatch):
    """A chunk that raises is redone per step: only the guilty step fails, with a reason."""
    real = steps_module.analyse

    def fragile(series, *args):
        if 7 in series.steps.tolist():
            raise ValueError("synthetic failure on step 7")
        return real(series, *args)

    monkeypatch.setattr(steps_module, "analyse", fragile)
    result = run(_config(project, "fragile"), progress=False)
    steps = result.steps.set_index("step")
    assert not steps.loc[7, "ok"]
    assert steps.loc[7, "reason"] == "ValueError: synthetic failure on step 7"
    assert steps.loc[[6, 8], "ok"].all()  # same chunk, analysed one by one
    assert result.summary["n_failed"] == 2  # the flat frame and step 7


def test_unreadable_input_fails_cleanly_and_leaves_folder_reusable(project):
    cfg = load_config(CONFIG.replace('source = "data"', 'source = "no_such_folder"'),
                      base_dir=project).with_output(dir=project / "broken")
    with pytest.raises(OperandoError):
        run(cfg, progress=False)
    assert not (project / "broken").exists()


def test_demo_configs_are_valid_and_samples_regenerate(tmp_path, monkeypatch):
    """The built-in demo configs load; without sample_spectra the demo regenerates them."""
    pytest.importorskip("operando.simulate")
    from operando import cli

    monkeypatch.setattr(cli, "REPO_SAMPLES", tmp_path / "not-installed")
    folder = cli._sample_folder(tmp_path / "demo")
    assert folder == tmp_path / "demo" / "sample_spectra"
    for name, toml in cli.DEMOS.items():
        cfg = load_config(toml, base_dir=folder / name)
        assert Path(cfg.foil.file).is_file()
        for source in cfg.series.source:
            assert Path(source).exists()
        assert Path(cfg.series.conditions).is_file()


def test_auto_chunk_size_and_athena(project, monkeypatch):
    """chunk_size = "auto" resolves from n_steps (recorded, hashed); athena = "auto" skips
    long series with a note."""
    cfg = _config(project, out="auto", chunk_size="auto").with_output(plots=[], report=False)
    assert cfg.chunk_size_for(N_GOOD + 1) == 256  # fast engines: at least 256 steps
    assert cfg.chunk_size_for(10_000) == 1667 and cfg.chunk_size_for(1000) == 500
    # an even number of equal chunks, each at most AUTO_CHUNK_MAX steps
    for n in (4001, 9900, 100_000, 123_457):
        size = cfg.chunk_size_for(n)
        count = -(-n // size)
        assert count % 2 == 0 and size <= 2000 and n - (count - 1) * size > size - count, n
    monkeypatch.setattr("operando.config.sections.ATHENA_AUTO_MAX_STEPS", 5)
    result = run(cfg)
    assert result.settings["resolved"]["chunk_size"] == 256
    assert result.settings["resolved"]["athena"] is False
    assert result.settings["config_hash"] == cfg.config_hash(N_GOOD + 1) != cfg.config_hash()
    assert result.summary["chunks_total"] == 1
    assert not (result.dir / "athena.prj").exists()
    assert any("Athena export skipped" in n and "athena = true" in n for n in result.summary["notes"])
    forced = run(cfg.with_output(dir=project / "forced", athena=True))
    assert (forced.dir / "athena.prj").stat().st_size > 0


def test_demo_runs_twice(tmp_path, capsys):
    """The README's set-up command must work when run again: the second demo continues its
    own finished runs from their checkpoints instead of refusing the folder."""
    from operando import cli

    out = str(tmp_path / "demo")
    assert cli.main(["demo", "--out", out, "--no-progress"]) == 0
    assert cli.main(["demo", "--out", out, "--no-progress"]) == 0
    assert capsys.readouterr().out.count("chunks resumed from checkpoints") == 2


# ------------------------------------------------------------------- figures
def _pt_figures_config(tmp_path, out, **run_settings):
    simulate = pytest.importorskip("operando.simulate")
    folder = tmp_path / "samples" / "pt_co_oxidation"
    if not folder.is_dir():
        simulate.write_samples(tmp_path / "samples")
    files = [f"pt_co_oxidation_{i:03d}.xdi" for i in (0, 1, 8, 9)]
    return load_config({
        "series": {"source": files, "conditions": "conditions.csv", "element": "Pt", "edge": "L3"},
        "foil": {"s02": 0.85},
        "exafs": {"shells": ["Pt-O", "Pt-Pt"], "kmin": 3.0, "kmax": 12.0, "rmin": 1.2, "rmax": 3.2},
        "output": {"dir": str(tmp_path / out), "plots": ["png"]},
        "run": {"chunk_size": 4, **run_settings},
    }, base_dir=folder)


def test_figures_are_drawn_and_a_failing_figure_is_noted_once(tmp_path, monkeypatch):
    """Every run figure is a PNG; a figure that fails is one note, the run completes."""
    good = run(_pt_figures_config(tmp_path, "good"), progress=False)
    names = [k for k in good.outputs if k.endswith(".png")]
    assert names == ["xanes_map.png", "xanes_difference.png", "white_line.png", "cn.png",
                     "fit_parameters.png", "wavelet.png", "summary.png"]
    for name in names:
        assert (good.dir / name).read_bytes()[:4] == b"\x89PNG"
    assert not list(good.dir.glob(".*"))  # no temporary file left behind
    from operando import viz

    def broken(*args, **kwargs):
        raise ValueError("no room for the legend")

    monkeypatch.setattr(viz, "plot_summary", broken)
    result = run(_pt_figures_config(tmp_path, "out"), progress=False)
    notes = [n for n in result.summary["notes"] if n.startswith("plot summary")]
    assert notes == ["plot summary not made: ValueError: no room for the legend"]
    assert not (result.dir / "summary.png").exists()
    # the report, built while the figures were drawn, says so and embeds the others
    report = (result.dir / "report.html").read_text()
    assert "plot summary not made: ValueError: no room for the legend" in report
    assert report.count("<img") == len(names) - 1
    for name in ("xanes_map.png", "white_line.png", "cn.png", "wavelet.png"):
        assert (result.dir / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((result.dir / "manifest.json").read_text())["status"] == "complete"
