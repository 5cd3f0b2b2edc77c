"""The run folder is safe to reuse (#15): --overwrite replaces only an operando run and
never an input, and one run at a time holds the folder (an advisory lock)."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from operando.config import load_config
from operando.errors import ConfigError
from operando.pipeline import run
from operando.pipeline.lock import LOCK_NAME, FolderInUse, RunLock
from operando.pipeline.store import RUN_FORMAT, RunStore

from test_pipeline import CONFIG, _config, _write_series


@pytest.fixture
def project(tmp_path):
    _write_series(tmp_path / "data")
    (tmp_path / "run.toml").write_text(CONFIG)
    return tmp_path


# ------------------------------------------------------------------ overwrite
def test_manifest_carries_the_run_format_marker(project):
    result = run(_config(project), progress=False)
    manifest = json.loads((result.dir / "manifest.json").read_text())
    assert manifest["format"] == RUN_FORMAT == "operando-run"
    assert isinstance(manifest["format_version"], int)
    assert "steps.csv" in manifest["outputs"] and "report.html" in manifest["outputs"]


@pytest.mark.parametrize("foreign", [{"name": "my-web-app", "version": "1.0.0"},
                                     {"run_id": "x", "status": "complete"}, [1, 2, 3]])
def test_overwrite_refuses_a_folder_whose_manifest_is_not_an_operando_run(project, foreign):
    """Any JSON named manifest.json (a web or Python project) is not a run: refused, kept."""
    folder = project / "out"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(foreign))
    (folder / "index.html").write_text("<html>precious</html>")
    for kwargs in ({"overwrite": True}, {"resume": True}, {}):
        with pytest.raises(ConfigError, match="not an operando run") as info:
            run(_config(project), progress=False, **kwargs)
        assert "\n" not in str(info.value)
    assert (folder / "index.html").read_text() == "<html>precious</html>"
    assert json.loads((folder / "manifest.json").read_text()) == foreign


@pytest.mark.parametrize("what", ["source", "conditions", "config"])
def test_overwrite_refuses_a_run_whose_inputs_lie_inside_the_output_folder(project, what):
    first = run(_config(project), progress=False)
    before = sorted(p.name for p in first.dir.iterdir())
    inside = first.dir / "inputs"
    shutil.copytree(project / "data", inside)
    text = CONFIG
    if what == "source":
        text = text.replace('source = "data"', f'source = "{inside}"')
    elif what == "conditions":
        text = text.replace('conditions = "data/conditions.csv"',
                            f'conditions = "{inside / "conditions.csv"}"')
    config_path = project / "run.toml"
    if what == "config":
        config_path = first.dir / "run.toml"
        text = text.replace('"data', f'"{project / "data"}')
    config_path.write_text(text)
    cfg = load_config(config_path).with_output(dir=first.dir)
    with pytest.raises(ConfigError, match="inside the output folder") as info:
        run(cfg, overwrite=True, progress=False)
    assert "\n" not in str(info.value)
    # Nothing was deleted: the inputs and the earlier run are as they were.
    assert (inside / "conditions.csv").is_file() and len(list(inside.iterdir())) == 13
    assert sorted(p.name for p in first.dir.iterdir()) == sorted(before + ["inputs"]
                                                                 + (["run.toml"] if what == "config" else []))
    assert json.loads((first.dir / "manifest.json").read_text())["status"] == "complete"


def test_overwrite_says_what_it_removes_and_keeps_other_files(project, caplog):
    first = run(_config(project), progress=False)
    (first.dir / "notes.txt").write_text("beamtime notes")
    caplog.set_level(logging.WARNING, logger="operando")
    again = run(_config(project), overwrite=True, progress=False)
    said = " ".join(r.getMessage() for r in caplog.records if "replac" in r.getMessage())
    assert "steps.csv" in said and "checkpoints" in said and "manifest.json" in said
    assert "notes.txt" in said  # named as kept
    assert (again.dir / "notes.txt").read_text() == "beamtime notes"
    assert (again.dir / "steps.csv").read_bytes() == (first.dir / "steps.csv").read_bytes()


def test_overwrite_of_a_foreign_file_in_a_run_folder_named_like_an_output_is_kept(project):
    """Only the files the run recorded as its own are removed."""
    first = run(_config(project).with_output(plots=[], report=False, athena=False),
                progress=False)
    assert "report.html" not in json.loads((first.dir / "manifest.json").read_text())["outputs"]
    (first.dir / "report.html").write_text("my own report")
    run(_config(project).with_output(plots=[], report=False, athena=False), overwrite=True,
        progress=False)
    assert (first.dir / "report.html").read_text() == "my own report"


# ----------------------------------------------------------------------- lock
def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from operando.pipeline.lock import RunLock
        lock = RunLock({str(folder)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderInUse) as info:
            RunLock(folder).acquire()
        msg = str(info.value)
        assert f"pid {holder.pid}" in msg and socket.gethostname() in msg and "started" in msg
        assert "\n" not in msg
    finally:
        holder.kill()  # kill -9: the kernel drops the lock
        holder.wait()
    lock = RunLock(folder).acquire()  # a dead holder's lock is no obstacle
    assert (folder / LOCK_NAME).is_file()
    lock.release()
    assert not (folder / LOCK_NAME).exists()  # a finished run leaves no lock file




def test_two_runs_started_together_on_one_folder(project, slow_operando):
    """The issue's repro: two runs on one folder both exited 0 and mixed steps.csv."""
    cmd = slow_operando(0.4, "run", project / "run.toml", "--out", project / "shared",
                        "--no-progress")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = next(err for p, (_, err) in zip(procs, outs) if p.returncode == 2)
    winner = next(p for p in procs if p.returncode == 0)
    # one line of error (warnings about the input, read before the folder is locked, are
    # one line each too)
    errors = [ln for ln in loser.splitlines() if not ln.startswith("operando: warning:")]
    assert "Traceback" not in loser and len(errors) == 1
    # Refused while the other runs (lock) or, had it come late, as a finished run's folder.
    assert (f"pid {winner.pid}" in loser and "started" in loser) or "already holds a run" in loser
    manifest = json.loads((project / "shared" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["pid"] == winner.pid


def test_resume_of_a_folder_in_use_is_refused(project):
    folder = project / "out"
    store = RunStore(folder)
    store.begin("h")
    with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
        RunStore(folder, resume=True)
    store.close()
    assert RunStore(folder, resume=True).resumed
