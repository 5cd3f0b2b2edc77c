"""Atomic writes (operando._util.files) and the run folder (operando.pipeline.store)."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from operando._util import files
from operando.errors import ConfigError
from operando._util.files import write_csv_atomic, write_json_atomic, write_text_atomic
from operando.pipeline.store import RunStore, arrays_to_table, table_to_arrays


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_write_text_atomic_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "one")
    write_text_atomic(path, "two")
    assert path.read_text() == "two"
    assert _leftovers(tmp_path) == []
    # mkstemp makes 0600 files; outputs must be readable like any file we create.
    expected = 0o666 & ~files._umask()
    assert path.stat().st_mode & 0o777 == expected


def test_crash_mid_write_leaves_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "steps.csv"
    write_csv_atomic(path, pd.DataFrame({"step": [0, 1], "x": [1.5, 2.5]}))
    before = path.read_bytes()

    def crash(fd):  # the process dies after writing, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        write_csv_atomic(path, pd.DataFrame({"step": [0, 1, 2], "x": [9.0, 9.0, 9.0]}))
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []  # the temporary file was removed


def test_sigkill_during_writes_never_exposes_partial_file(tmp_path):
    """A writer killed at a random moment leaves a complete old or new version."""
    path = tmp_path / "big.csv"
    script = textwrap.dedent(f"""
        import pandas as pd, numpy as np
        from operando._util.files import write_csv_atomic
        i = 0
        while True:
            n = 20000 + (i % 7) * 1000
            write_csv_atomic({str(path)!r}, pd.DataFrame({{"step": np.arange(n), "v": np.full(n, i)}}))
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 20
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    table = pd.read_csv(path)
    n = len(table)
    assert (n - 20000) % 1000 == 0 and 20000 <= n <= 26000
    assert table["step"].tolist() == list(range(n))
    assert table["v"].nunique() == 1
    # The killed writer's temporary file is hidden and cleaned by the next RunStore.
    RunStore(tmp_path / "run")  # unrelated folder: must not fail
    for leftover in tmp_path.glob(".big.csv.*"):
        assert leftover.name.endswith(files.TMP_SUFFIX)


def test_write_json_atomic_strict_json(tmp_path):
    path = write_json_atomic(tmp_path / "s.json",
                             {"a": np.float64(np.nan), "b": np.int64(3), "c": (1, 2),
                              "d": np.array([1.0, np.inf]), "e": tmp_path})
    data = json.loads(path.read_text())
    assert data == {"a": None, "b": 3, "c": [1, 2], "d": [1.0, None], "e": str(tmp_path)}


def test_table_arrays_roundtrip_is_exact():
    table = pd.DataFrame({"step": np.arange(3), "ok": [True, False, True],
                          "reason": ["", "dead frame", ""], "e0": [11564.123456789012, np.nan, 1 / 3]})
    back = arrays_to_table(table_to_arrays(table))
    assert list(back.columns) == list(table.columns)
    assert back["e0"].to_numpy().tobytes() == table["e0"].to_numpy().tobytes()
    assert back.to_csv(index=False) == table.to_csv(index=False)


def test_runstore_refuses_existing_run_unless_asked(tmp_path):
    store = RunStore(tmp_path / "run")
    store.begin("hash1")
    store.finish("complete")
    store.close()
    with pytest.raises(ConfigError) as info:
        RunStore(tmp_path / "run")
    msg = str(info.value)
    assert "already holds a run" in msg and "--resume" in msg and "--overwrite" in msg
    with pytest.raises(ConfigError, match="not both"):
        RunStore(tmp_path / "run", overwrite=True, resume=True)


def test_runstore_refuses_foreign_folder_even_with_overwrite(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not empty"):
        RunStore(folder)
    with pytest.raises(ConfigError, match="no operando run"):
        RunStore(folder, overwrite=True)
    assert (folder / "chapter1.tex").read_text() == "precious"
    RunStore(tmp_path / "empty")  # an empty or missing folder is fine


def test_overwrite_starts_fresh(tmp_path):
    store = RunStore(tmp_path / "run")
    store.begin("h")
    store.save_checkpoint("chunk_00000", {"x": np.arange(3)})
    store.write_text("steps.csv", "old")
    store.close()
    fresh = RunStore(tmp_path / "run", overwrite=True)
    assert fresh.completed_steps() == []
    # The old run survives until the new one really starts (reading may still fail).
    assert (tmp_path / "run" / "steps.csv").exists()
    manifest = fresh.begin("h2")
    assert not (tmp_path / "run" / "steps.csv").exists()
    assert manifest["status"] == "running" and manifest["config_hash"] == "h2"


def test_resume_keeps_checkpoints_and_checks_hash(tmp_path):
    store = RunStore(tmp_path / "run")
    first = store.begin("abc", data_hash="d1", config={"exafs": {"kmax": 12}})
    store.save_checkpoint("chunk_00000", {"x": np.arange(3)}, {"note": "hi"})
    store.save_checkpoint("chunk_00001", {"x": np.arange(4)})
    store.finish("interrupted")
    store.close()

    resumed = RunStore(tmp_path / "run", resume=True)
    assert resumed.completed_steps() == ["chunk_00000", "chunk_00001"]
    arrays, meta = resumed.load_checkpoint("chunk_00000")
    assert arrays["x"].tolist() == [0, 1, 2] and meta == {"note": "hi"}
    manifest = resumed.begin("abc", data_hash="d1", config={"exafs": {"kmax": 12}})
    assert manifest["run_id"] == first["run_id"] and manifest["resumed"] == 1
    resumed.close()

    other = RunStore(tmp_path / "run", resume=True)
    with pytest.raises(ConfigError) as info:
        other.begin("xyz", data_hash="d1", config={"exafs": {"kmax": 14}})
    assert "settings differ" in str(info.value) and "exafs.kmax 12 -> 14" in str(info.value)
    other.close()
    with pytest.raises(ConfigError, match="changed since it started: spectra or conditions"):
        RunStore(tmp_path / "run", resume=True).begin("abc", data_hash="d2")


def test_resume_of_missing_folder_starts_new_run(tmp_path):
    store = RunStore(tmp_path / "new", resume=True)
    assert store.completed_steps() == [] and not store.resumed
    assert not (tmp_path / "new").exists()  # nothing is created before begin()


def test_refuses_folder_in_use_by_live_process(tmp_path):
    """The folder's lock, held by another live process, refuses a second run (not the
    manifest's pid, which a recycled pid could fake)."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from operando.pipeline.store import RunStore
        store = RunStore({str(tmp_path / "run")!r})
        store.begin("h")
        print("running", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "running"
        with pytest.raises(ConfigError, match=f"in use by another operando run .pid {holder.pid}"):
            RunStore(tmp_path / "run", resume=True)
    finally:
        holder.kill()
        holder.wait()
    # Its process gone (killed), the run counts as interrupted and can be resumed.
    assert RunStore(tmp_path / "run", resume=True).resumed


def test_checkpoint_names_are_checked(tmp_path):
    store = RunStore(tmp_path / "run")
    with pytest.raises(ValueError):
        store.save_checkpoint("../escape", {})
