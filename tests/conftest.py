"""Shared fixtures: the real measured data in ../shared/data (skipped when absent)."""

import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "sample_spectra"


#: The slow lane, measured with ``pytest --durations=0``: modules of end-to-end runs (a
#: run folder, the CLI, notebooks, child processes), and single tests over ~1 s.
#: ``pytest -m "not slow"`` is the fast lane (about a minute); ``pytest`` runs everything.
SLOW_MODULES = {"test_pipeline.py", "test_notebooks.py", "test_run_folder.py",
                "test_verdicts_real.py", "test_scale.py", "test_faults.py", "test_acceptance.py",
                "test_watch.py", "test_run_figures.py", "test_watch_logs.py"}
SLOW_TESTS = {
    ("test_exafs_significance.py", "test_detection_limit_matches_a_dense_grid_of_feffit_refits"),
    ("test_io_safety.py", "test_one_long_first_row_is_refused_with_memory_bounded_by_the_file"),
    ("test_io_safety.py", "test_gzip_bomb_refused_fast_with_bounded_memory"),
    ("test_runstore.py", "test_sigkill_during_writes_never_exposes_partial_file"),
    ("test_runstore.py", "test_refuses_folder_in_use_by_live_process"),
    ("test_exafs_fast.py", "test_fast_fits_match_larch_on_sample_steps"),
    ("test_exafs_global.py", "test_global_fit_is_feffit_with_several_datasets"),
    ("test_plotting_report.py", "test_report_self_contained"),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        if name in SLOW_MODULES or (name, getattr(item, "originalname", item.name)) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (CI always has it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def samples() -> Path:
    if not (SAMPLES / "pt_co_oxidation").is_dir() or not (SAMPLES / "cu_nc_potential").is_dir():
        pytest.skip(f"sample spectra not found in {SAMPLES}")
    return SAMPLES


_SLOW_RUN = """
import sys, time
from operando.pipeline import steps
real = steps.analyse
def slow(*args):
    time.sleep({delay})
    return real(*args)
steps.analyse = slow
if sys.argv[1] == "--library":
    from operando import pipeline
    from operando.config import load_config
    pipeline.run(load_config(sys.argv[2]).with_output(dir=sys.argv[3]), progress=False)
else:
    from operando.cli import main
    sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="session")
def slow_operando():
    """``slow_operando(delay, *args)``: the command line of ``operando *args`` in a fresh
    Python whose chunk analysis first sleeps ``delay`` s, so a test can signal, kill or race
    a run mid-way.  ``slow_operando(delay, "--library", config, out_dir)`` runs
    ``pipeline.run`` instead of the command."""
    def command(delay: float, *args) -> list[str]:
        return [sys.executable, "-c", _SLOW_RUN.format(delay=delay), *map(str, args)]
    return command
